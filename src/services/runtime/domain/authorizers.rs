//! What the runtime service tells Identity: the authorizer a runtime's own workload identity
//! validates user tokens with (GetWorkloadAccessTokenForJWT), from the version DEFAULT serves.

use super::{Caller, ControlPlane};
use crate::kernel::error::{ErrorKind, Result};
use crate::kernel::jwt::JwtAuthorizer;
use crate::services::identity::api::RuntimeAuthorizers;

impl RuntimeAuthorizers for ControlPlane {
    fn authorizer<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        runtime_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<JwtAuthorizer>>> + Send + 'a>> {
        Box::pin(async move {
            let caller = Caller { account: account.to_string(), region: region.to_string() };
            match self.resolve_invocation(caller, runtime_id.to_string(), None, None).await {
                Ok(target) => Ok(target.authorizer),
                // A runtime that is gone has no authorizer; its identity goes with it.
                Err(e) if e.kind == ErrorKind::ResourceNotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}
