//! Who sent a request: SigV4 verification against configured credentials (or, with `--auth off`,
//! a best-effort reading of the credential scope).

use crate::config::{AuthMode, Config};
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::sigv4::{self, AuthError, Payload, RequestParts, UriEncoding, Verifier};

/// The authenticated caller and the service its signature is scoped to.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: String,
    pub region: String,
    /// SigV4 signing name of the credential scope, e.g. `bedrock-agentcore`, `s3`, `logs`.
    pub service: String,
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn auth_error(e: &AuthError) -> Error {
    let (code, message) = e.json_code_and_message();
    Error::new(ErrorKind::Auth { code }, message)
}

/// The signing name decides the URI encoding rule: S3 alone signs its path encoded once.
fn encoding_for(service: &str) -> UriEncoding {
    if service == "s3" {
        UriEncoding::SingleEncode
    } else {
        UriEncoding::NormalizeAndDoubleEncode
    }
}

pub fn authenticate(config: &Config, parts: &RequestParts<'_>, body: &[u8]) -> Result<Identity, AuthError> {
    let scope = sigv4::verify::credential_scope(parts);
    if config.auth == AuthMode::Off {
        let (region, service) = scope.unwrap_or_else(|| (config.region.clone(), "bedrock-agentcore".into()));
        return Ok(Identity { account: config.account_id.clone(), region, service });
    }
    let service = scope.map(|(_, s)| s).unwrap_or_default();
    let verified = Verifier::new(&config.credentials).verify(
        parts,
        Payload::Buffered(body),
        encoding_for(&service),
        unix_now(),
    )?;
    Ok(Identity { account: verified.account_id, region: verified.region, service: verified.service })
}

/// Who the caller of an AWS operation is, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A SigV4-signed request (its account and Region are the `Call`'s caller).
    SigV4,
    /// A bearer token a JWT-authorized runtime's authorizer accepted; `user` is its `iss` and `sub`
    /// (`WorkloadPrincipal::user_from_jwt`), `token` the token itself.
    Bearer { user: String, token: String },
}
