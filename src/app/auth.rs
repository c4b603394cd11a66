//! Who sent a request: SigV4 verification against configured credentials (or, with `--auth off`,
//! a best-effort reading of the credential scope).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::config::{AuthMode, Config};
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::sigv4::{
    self, AuthError, Credential, CredentialLookup, Payload, RequestParts, UriEncoding, Verifier,
};

/// The authenticated caller and the service its signature is scoped to.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: String,
    pub region: String,
    /// SigV4 signing name of the credential scope, e.g. `bedrock-agentcore`, `s3`, `logs`.
    pub service: String,
    /// The access key that signed (empty with `--auth off`).
    pub access_key_id: String,
}

/// Credentials issued while the emulator runs (STS, the metadata service), installed once at
/// start-up and consulted after the configured ones.
#[derive(Clone, Default)]
pub struct IssuedCredentials(Arc<OnceLock<Arc<dyn CredentialLookup + Send + Sync>>>);

impl std::fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "IssuedCredentials(installed)" } else { "IssuedCredentials(none)" })
    }
}

impl IssuedCredentials {
    pub fn install(&self, source: Arc<dyn CredentialLookup + Send + Sync>) {
        let _ = self.0.set(source);
    }
}

/// Every credential a request may be signed with: the configured ones, then the issued ones.
pub struct KnownCredentials<'a> {
    configured: &'a HashMap<String, Credential>,
    issued: Option<&'a (dyn CredentialLookup + Send + Sync)>,
}

impl CredentialLookup for KnownCredentials<'_> {
    fn credential(&self, access_key_id: &str) -> Option<Credential> {
        self.configured.get(access_key_id).cloned().or_else(|| self.issued?.credential(access_key_id))
    }
}

pub fn known_credentials(config: &Config) -> KnownCredentials<'_> {
    KnownCredentials { configured: &config.credentials, issued: config.issued_credentials.0.get().map(|a| a.as_ref()) }
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
        return Ok(Identity { account: config.account_id.clone(), region, service, access_key_id: String::new() });
    }
    let service = scope.map(|(_, s)| s).unwrap_or_default();
    let verified = Verifier::new(&known_credentials(config)).verify(
        parts,
        Payload::Buffered(body),
        encoding_for(&service),
        unix_now(),
    )?;
    Ok(Identity {
        account: verified.account_id,
        region: verified.region,
        service: verified.service,
        access_key_id: verified.access_key_id,
    })
}

/// The checks [`authenticate`] makes that need no body (see `Verifier::precheck`); `Ok` when
/// authentication is off.
pub fn precheck(config: &Config, parts: &RequestParts<'_>) -> Result<(), AuthError> {
    if config.auth == AuthMode::Off {
        return Ok(());
    }
    Verifier::new(&known_credentials(config)).precheck(parts, unix_now())
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
