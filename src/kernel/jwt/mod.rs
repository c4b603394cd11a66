//! Inbound JSON Web Token validation, as AgentCore's `customJWTAuthorizer` performs it before a
//! bearer request reaches an agent, and as AgentCore Identity performs it on the user tokens of
//! GetWorkloadAccessTokenForJWT and CompleteResourceTokenAuth.
//!
//! The order of checks: the token parses; its algorithm is an asymmetric one (RS*/PS*/ES*; `none`
//! and shared-secret HS* are refused, since a public key must never double as an HMAC secret); the
//! issuer's keys come from its discovery document; the signature verifies with the key its `kid`
//! names; `exp`/`nbf` hold within [`CLOCK_SKEW_SECS`]; `iss` is the discovery document's issuer;
//! then the authorizer's claim rules ([`JwtAuthorizer::check_claims`]). Each failure says which
//! check failed, for the emulator's log and the caller's error message.

mod authorizer;
mod keys;

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

pub use authorizer::{scopes_of, ClaimValueType, CustomClaim, JwtAuthorizer, MatchOperator};
pub use keys::{check_fetchable, KeyCache, JWKS_REFETCH_MIN_INTERVAL, JWKS_TTL};

/// Tolerance for clocks that disagree, applied to `exp` and `nbf`.
pub const CLOCK_SKEW_SECS: i64 = 30;
/// Where OIDC discovery lives under an issuer URL (OpenID Connect Discovery 1.0 §4).
pub const OIDC_DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the bearer token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error(
        "the token is signed with {0}, which the authorizer does not accept (RS256/384/512, PS256/384/512, ES256/384)"
    )]
    Algorithm(String),
    #[error("the issuer metadata at {url} could not be used: {reason}")]
    Discovery { url: String, reason: String },
    #[error("the token's signing key (kid {kid:?}) is not in the issuer's JWKS at {jwks_uri}")]
    UnknownKey { kid: Option<String>, jwks_uri: String },
    #[error("the token's signature does not verify with the issuer's key")]
    Signature,
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token's issuer {found:?} is not the discovery document's issuer {expected:?}")]
    Issuer { found: Option<String>, expected: String },
    #[error("the token's audience {found:?} is not one of the allowed audiences {allowed:?}")]
    Audience { found: Vec<String>, allowed: Vec<String> },
    #[error("the token's client_id {found:?} is not one of the allowed clients {allowed:?}")]
    Client { found: Option<String>, allowed: Vec<String> },
    #[error("the token's scopes {found:?} include none of the allowed scopes {allowed:?}")]
    Scope { found: Vec<String>, allowed: Vec<String> },
    #[error("the token's claim '{claim}' {reason}")]
    CustomClaim { claim: String, reason: String },
}

impl JwtError {
    /// Short name of the failed check, for logs and metrics.
    pub fn check(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "format",
            JwtError::Algorithm(_) => "algorithm",
            JwtError::Discovery { .. } => "discovery",
            JwtError::UnknownKey { .. } | JwtError::Signature => "signature",
            JwtError::Expired { .. } | JwtError::NoExpiry => "exp",
            JwtError::NotYetValid { .. } => "nbf",
            JwtError::Issuer { .. } => "iss",
            JwtError::Audience { .. } => "aud",
            JwtError::Client { .. } => "client_id",
            JwtError::Scope { .. } => "scope",
            JwtError::CustomClaim { .. } => "customClaims",
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedJwt {
    pub issuer: String,
    /// `sub`; together with the issuer it names the end user (get-workload-access-token in the
    /// developer guide).
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// Validates tokens against authorizers; one per emulator (it owns the key cache).
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Arc<KeyCache>,
}

impl JwtVerifier {
    pub fn new(http: reqwest::Client) -> Self {
        JwtVerifier { keys: Arc::new(KeyCache::new(http)) }
    }

    /// The issuer a discovery document names (cached with its keys).
    pub async fn issuer(&self, discovery_url: &str) -> Result<String, JwtError> {
        Ok(self.keys.issuer(discovery_url).await?.issuer.clone())
    }

    /// Verify `token` as the runtime's authorizer would, at unix time `now`.
    pub async fn verify(&self, token: &str, authorizer: &JwtAuthorizer, now: i64) -> Result<VerifiedJwt, JwtError> {
        let verified = self.verify_signed_by(token, &authorizer.discovery_url, now).await?;
        authorizer.check_claims(&verified.claims)?;
        Ok(verified)
    }

    /// Verify a user token with no authorizer to follow: its own `iss` names where the keys are
    /// (`<iss>/.well-known/openid-configuration`); signature, issuer and lifetime are checked.
    pub async fn verify_from_issuer(&self, token: &str, now: i64) -> Result<VerifiedJwt, JwtError> {
        let claims = unverified_claims(token)?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| JwtError::Issuer { found: None, expected: "an iss claim naming the issuer".into() })?;
        let discovery = format!("{}{OIDC_DISCOVERY_SUFFIX}", iss.trim_end_matches('/'));
        self.verify_signed_by(token, &discovery, now).await
    }

    async fn verify_signed_by(&self, token: &str, discovery_url: &str, now: i64) -> Result<VerifiedJwt, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if !accepted(header.alg) {
            return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
        }
        let (issuer, keys) = self.keys.keys_for(discovery_url, header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        // Lifetime, audience and issuer are checked below with messages of our own.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = keys
            .iter()
            .find_map(|key| jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).ok())
            .ok_or(JwtError::Signature)?
            .claims;
        check_lifetime(&claims, now)?;
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss != Some(issuer.issuer.as_str()) {
            return Err(JwtError::Issuer { found: iss.map(String::from), expected: issuer.issuer.clone() });
        }
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(VerifiedJwt { issuer: issuer.issuer.clone(), subject, claims })
    }
}

fn accepted(alg: Algorithm) -> bool {
    use Algorithm::*;
    matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384)
}

fn check_lifetime(claims: &Map<String, Value>, now: i64) -> Result<(), JwtError> {
    let number = |name: &str| claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    let exp = number("exp").ok_or(JwtError::NoExpiry)?;
    if now > exp + CLOCK_SKEW_SECS {
        return Err(JwtError::Expired { exp, now });
    }
    if let Some(nbf) = number("nbf") {
        if now + CLOCK_SKEW_SECS < nbf {
            return Err(JwtError::NotYetValid { nbf, now });
        }
    }
    Ok(())
}

/// The claims of a token before its signature is checked: only to learn where to find its keys.
fn unverified_claims(token: &str) -> Result<Map<String, Value>, JwtError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let payload = token.split('.').nth(1).ok_or_else(|| JwtError::Malformed("it has no payload segment".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| JwtError::Malformed(format!("the payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| JwtError::Malformed(format!("the payload is not a JSON object: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetime_allows_a_small_skew_only() {
        let c = |v: Value| v.as_object().unwrap().clone();
        assert!(check_lifetime(&c(json!({"exp": 1000})), 1000 + CLOCK_SKEW_SECS).is_ok());
        assert!(matches!(
            check_lifetime(&c(json!({"exp": 1000})), 1001 + CLOCK_SKEW_SECS),
            Err(JwtError::Expired { .. })
        ));
        assert!(matches!(
            check_lifetime(&c(json!({"exp": 5000, "nbf": 2000})), 1000),
            Err(JwtError::NotYetValid { .. })
        ));
        assert!(matches!(check_lifetime(&c(json!({})), 1000), Err(JwtError::NoExpiry)));
    }

    #[test]
    fn refuses_symmetric_and_unsigned_algorithms() {
        assert!(accepted(Algorithm::RS256) && accepted(Algorithm::ES256));
        assert!(!accepted(Algorithm::HS256));
    }
}
