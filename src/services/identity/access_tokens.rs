//! Workload access tokens: what an agent presents to GetResourceApiKey and GetResourceOauth2Token.
//!
//! On AWS they are opaque tokens signed by the service and bound to a workload identity and,
//! optionally, an end user (get-workload-access-token in the developer guide). Here they are
//! HS256 JWTs under a key the token vault keeps; the agent never needs to read them. They expire
//! after [`WORKLOAD_ACCESS_TOKEN_TTL_SECS`], and only this emulator's key verifies them.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a workload access token is accepted (the runtime mints a fresh one per invocation).
pub const WORKLOAD_ACCESS_TOKEN_TTL_SECS: i64 = 3600;
const TOKEN_TYPE: &str = "agentcore-local/workload-access-token";

/// Who a workload access token speaks for: its subject (workload and end user), not the caller
/// presenting it (a `kernel::caller::Caller`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadPrincipal {
    pub account: String,
    pub region: String,
    pub workload: String,
    /// The end user: `id:<userId>` (GetWorkloadAccessTokenForUserId, or the runtime user-id header)
    /// or `jwt:<iss>|<sub>` (a verified user JWT). `None` for GetWorkloadAccessToken.
    pub user: Option<String>,
}

impl WorkloadPrincipal {
    pub fn user_from_id(user_id: &str) -> String {
        format!("id:{user_id}")
    }

    pub fn user_from_jwt(issuer: &str, subject: &str) -> String {
        format!("jwt:{issuer}|{subject}")
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    typ: String,
    #[serde(flatten)]
    principal: WorkloadPrincipal,
    iat: i64,
    exp: i64,
    jti: String,
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    #[error("the workload access token is not one this emulator issued (or it was altered)")]
    Invalid,
    #[error("the workload access token expired at {0}")]
    Expired(i64),
}

impl AccessTokens {
    pub fn new(key: &[u8]) -> Self {
        AccessTokens { encoding: EncodingKey::from_secret(key), decoding: DecodingKey::from_secret(key) }
    }

    pub fn mint(&self, principal: &WorkloadPrincipal, now: i64) -> String {
        let claims = Claims {
            typ: TOKEN_TYPE.into(),
            principal: principal.clone(),
            iat: now,
            exp: now + WORKLOAD_ACCESS_TOKEN_TTL_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing")
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<WorkloadPrincipal, AccessTokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| AccessTokenError::Invalid)?
            .claims;
        if claims.typ != TOKEN_TYPE {
            return Err(AccessTokenError::Invalid);
        }
        if claims.exp < now {
            return Err(AccessTokenError::Expired(claims.exp));
        }
        Ok(claims.principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_workload_user_and_key_and_expiring() {
        let tokens = AccessTokens::new(&[7u8; 32]);
        let p = WorkloadPrincipal {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            workload: "agent-1".into(),
            user: Some(WorkloadPrincipal::user_from_id("alice")),
        };
        let t = tokens.mint(&p, 1_000);
        assert_eq!(tokens.verify(&t, 1_000).unwrap(), p);
        assert_eq!(
            tokens.verify(&t, 1_000 + WORKLOAD_ACCESS_TOKEN_TTL_SECS + 1),
            Err(AccessTokenError::Expired(4_600))
        );
        assert_eq!(AccessTokens::new(&[8u8; 32]).verify(&t, 1_000), Err(AccessTokenError::Invalid));
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"typ":"agentcore-local/workload-access-token","account":"123456789012","region":"us-east-1","workload":"agent-1","user":"id:mallory","iat":1000,"exp":9999,"jti":"x"}"#,
        );
        parts[1] = &forged;
        assert_eq!(tokens.verify(&parts.join("."), 1_000), Err(AccessTokenError::Invalid));
    }
}

/// GetWorkloadAccessToken, …ForUserId, …ForJWT.
mod operations {
    use super::WorkloadPrincipal;
    use crate::kernel::caller::Caller;
    use crate::kernel::error::{Error, ErrorKind, Result};
    use crate::kernel::jwt::JwtAuthorizer;
    use crate::services::identity::{now_secs, IdentityService};

    impl IdentityService {
        async fn principal_for(
            &self,
            caller: Caller,
            workload: String,
            user: Option<String>,
        ) -> Result<WorkloadPrincipal> {
            let row = self.get_workload(caller.clone(), workload).await?;
            Ok(WorkloadPrincipal { account: caller.account, region: caller.region, workload: row.name, user })
        }

        pub async fn workload_access_token(&self, caller: Caller, workload: String) -> Result<String> {
            let principal = self.principal_for(caller, workload, None).await?;
            Ok(self.mint_access_token(&principal))
        }

        pub async fn workload_access_token_for_user_id(
            &self,
            caller: Caller,
            workload: String,
            user_id: String,
        ) -> Result<String> {
            let principal =
                self.principal_for(caller, workload, Some(WorkloadPrincipal::user_from_id(&user_id))).await?;
            Ok(self.mint_access_token(&principal))
        }

        /// The user token is checked against `authorizer` (the runtime's, for a runtime's own
        /// identity), else against its own issuer's keys; its `iss` and `sub` name the user.
        pub async fn workload_access_token_for_jwt(
            &self,
            caller: Caller,
            workload: String,
            user_token: String,
            authorizer: Option<JwtAuthorizer>,
        ) -> Result<String> {
            // The workload must exist before any token is fetched.
            self.get_workload(caller.clone(), workload.clone()).await?;
            let now = now_secs();
            let verified = match &authorizer {
                Some(a) => self.verifier().verify(&user_token, a, now).await,
                None => self.verifier().verify_from_issuer(&user_token, now).await,
            }
            .map_err(|e| {
                tracing::info!(%workload, check = e.check(), error = %e, "GetWorkloadAccessTokenForJWT refused the user token");
                Error::new(ErrorKind::AccessDenied, format!("The userToken was refused: {e}."))
            })?;
            let user = WorkloadPrincipal::user_from_jwt(&verified.issuer, &verified.subject);
            let principal = self.principal_for(caller, workload, Some(user)).await?;
            Ok(self.mint_access_token(&principal))
        }
    }
}
