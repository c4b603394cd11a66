//! What the runtime service tells Identity: the authorizer a runtime's own workload identity
//! validates user tokens with (GetWorkloadAccessTokenForJWT): that of the runtime's latest
//! version, the one its DEFAULT endpoint follows.

use super::ControlPlane;
use crate::kernel::error::{Error, Result};
use crate::kernel::jwt::JwtAuthorizer;
use crate::services::identity::RuntimeAuthorizers;

impl RuntimeAuthorizers for ControlPlane {
    fn authorizer<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        runtime_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<JwtAuthorizer>>> + Send + 'a>> {
        let (account, region, id) = (account.to_string(), region.to_string(), runtime_id.to_string());
        Box::pin(async move {
            self.store
                .read(move |tx| {
                    // A runtime that is gone has no authorizer; its identity goes with it.
                    let Some(rt) = tx.runtime(&account, &region, &id)?.filter(|r| !r.deleting) else {
                        return Ok(None);
                    };
                    let Some(version) = tx.version(&rt.id, rt.latest_version)? else { return Ok(None) };
                    JwtAuthorizer::of_config(&version.config)
                        .transpose()
                        .map_err(|e| Error::internal(format!("runtime '{id}': {e}")))
                })
                .await
        })
    }
}
