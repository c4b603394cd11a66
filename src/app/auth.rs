//! Who sent a request: SigV4 verification against configured credentials (or, with `--auth off`,
//! a best-effort reading of the credential scope), giving the request's `Caller`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::config::{AuthMode, Config};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::sigv4::{
    self, AuthError, Credential, CredentialLookup, Payload, RequestParts, SigningKeyCache, UriEncoding, Verifier,
};

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
    fn credential(&self, access_key_id: &str) -> Option<std::borrow::Cow<'_, Credential>> {
        self.configured
            .get(access_key_id)
            .map(std::borrow::Cow::Borrowed)
            .or_else(|| self.issued?.credential(access_key_id))
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

/// Signing keys derived by this process, shared by every verification (see `SigningKeyCache`).
static SIGNING_KEYS: SigningKeyCache = SigningKeyCache::new();

fn verifier<'c>(credentials: &'c KnownCredentials<'c>) -> Verifier<'c> {
    Verifier::new(credentials).with_key_cache(&SIGNING_KEYS)
}

/// The caller of a SigV4-signed request and the signing name of its credential scope (e.g.
/// `bedrock-agentcore`, `s3`, `logs`), which picks the API. With `--auth off` nothing is verified:
/// the configured account, the scope's Region and service if the request has a scope.
pub fn authenticate(config: &Config, parts: &RequestParts<'_>, body: &[u8]) -> Result<(Caller, String), AuthError> {
    authenticate_prechecked(config, precheck(config, parts)?, parts, body)
}

/// What [`precheck`] established, for [`authenticate_prechecked`]: nothing with `--auth off`.
pub struct Prechecked<'a>(Option<sigv4::Prechecked<'a, 'static>>);

/// The checks [`authenticate`] makes that need no body (see `Verifier::precheck`); `Ok` when
/// authentication is off.
pub fn precheck<'a>(config: &Config, parts: &RequestParts<'a>) -> Result<Prechecked<'a>, AuthError> {
    if config.auth == AuthMode::Off {
        return Ok(Prechecked(None));
    }
    Verifier::new(&known_credentials(config)).precheck(parts, unix_now()).map(|p| Prechecked(Some(p)))
}

/// [`authenticate`] of a request that passed [`precheck`], without parsing and checking its
/// signature's headers again.
pub fn authenticate_prechecked(
    config: &Config,
    prechecked: Prechecked<'_>,
    parts: &RequestParts<'_>,
    body: &[u8],
) -> Result<(Caller, String), AuthError> {
    let Prechecked(Some(prechecked)) = prechecked else {
        // `--auth off`: nothing was checked, and nothing is verified.
        let (region, service) = sigv4::verify::credential_scope(parts)
            .unwrap_or_else(|| (config.region.clone(), "bedrock-agentcore".into()));
        return Ok((Caller::new(config.account_id.clone(), region), service));
    };
    let encoding = encoding_for(prechecked.service());
    let verified =
        verifier(&known_credentials(config)).verify_prechecked(prechecked, parts, Payload::Buffered(body), encoding)?;
    Ok((Caller::signed(verified.account_id, verified.region, verified.access_key_id), verified.service))
}

/// How the caller of a runtime's data plane proved itself: which of a runtime's two inbound
/// methods it used, not who it is (that is the `Call`'s [`Caller`]). A runtime with a
/// `customJWTAuthorizer` takes bearer tokens only, any other SigV4 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// A SigV4-signed request.
    SigV4,
    /// A bearer token a JWT-authorized runtime's authorizer accepted; `user` is its `iss` and `sub`
    /// (`WorkloadPrincipal::user_from_jwt`), `token` the token itself.
    Bearer { user: String, token: String },
}
