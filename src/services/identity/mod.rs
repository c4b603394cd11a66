//! AgentCore Identity: workload identities, workload access tokens, credential providers with a
//! token vault (API keys, OAuth2 M2M and USER_FEDERATION), and the built-in OIDC issuer.
//!
//! - `workloads.rs`: Create/Get/Update/Delete/ListWorkloadIdentities; the identity each runtime owns.
//! - `access_tokens.rs`: GetWorkloadAccessToken(ForJWT|ForUserId): signed, expiring, bound to
//!   workload and user.
//! - `api_keys.rs`, `oauth2/`: credential providers and GetResourceApiKey / GetResourceOauth2Token /
//!   CompleteResourceTokenAuth; `oauth2/browser.rs` serves the authorization URL and the provider
//!   callback a user's browser visits.
//! - `token_vault.rs`: GetTokenVault, SetTokenVaultCMK.
//! - `vault.rs`: encryption at rest of every secret; `tables.rs`: the service's SQL.
//! - `issuer/`: the built-in OpenID Connect issuer.
//! - `api.rs`: the wire (typed inputs per operation, outputs in the model's shapes).
//!
//! The domain knows no HTTP except where the protocol is HTTP itself (issuer endpoints, browser
//! redirects, calls to token endpoints).

pub mod access_tokens;
pub mod api;
mod api_keys;
pub mod browser;
pub mod issuer;
pub mod oauth2;
mod providers;
pub mod tables;
mod token_vault;
pub mod vault;
mod workloads;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, ErrorKind, Result};
use crate::kernel::jwt::{JwtAuthorizer, JwtVerifier};
use crate::kernel::store::Store;
use access_tokens::AccessTokens;
use issuer::{Issuer, IssuerConfig, SigningKey};
use tables::Tables;
use vault::{Vault, VaultError};

pub use access_tokens::WorkloadPrincipal;
pub use workloads::workload_identity_arn;

/// Timeout of every outbound call (issuer metadata, JWKS, token endpoints).
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Vault keys of the emulator's own secrets.
const ISSUER_KEY: &str = "issuer-es256-pkcs8";
const ACCESS_TOKEN_KEY: &str = "workload-access-token-hs256";

/// What Identity needs to know about agent runtimes: the authorizer a runtime's own workload
/// identity validates user tokens with. Implemented by the runtime service.
pub trait RuntimeAuthorizers: Send + Sync {
    fn authorizer<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        runtime_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<JwtAuthorizer>>> + Send + 'a>>;
}

/// The AgentCore Identity service (its store, token vault, JWT verifier, issuer and access-token
/// key). Not a caller identity: who calls an operation is a `kernel::caller::Caller`, and the
/// subject of a workload access token a [`WorkloadPrincipal`].
pub struct IdentityService {
    store: Store,
    vault: Arc<Vault>,
    verifier: JwtVerifier,
    http: reqwest::Client,
    issuer: Issuer,
    access_tokens: AccessTokens,
    /// `http://127.0.0.1:<port>`: base of callback and authorization URLs.
    emulator_url: OnceLock<String>,
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `DecryptionFailure`, as the service answers when it cannot open a secret.
pub(crate) fn vault_error(e: VaultError) -> Error {
    match e {
        VaultError::Decrypt => Error::new(ErrorKind::DecryptionFailure, e.to_string()),
        other => Error::internal(other.to_string()),
    }
}

fn tables<'a, 'tx>(tx: &'a crate::kernel::store::Tx<'tx>) -> Tables<'a, 'tx> {
    Tables::new(tx)
}

impl IdentityService {
    /// The service over `store`, with its vault key beside the database (`data_dir`), or in memory.
    pub async fn open(
        store: Store,
        data_dir: Option<&Path>,
        issuer_config: IssuerConfig,
    ) -> std::result::Result<IdentityService, String> {
        let vault = Arc::new(
            match data_dir {
                Some(dir) => Vault::open(dir),
                None => Vault::ephemeral(),
            }
            .map_err(|e| e.to_string())?,
        );
        store.write(tables::migrate).await.map_err(|e| format!("identity tables: {}", e.message))?;
        let http = reqwest::Client::builder()
            .timeout(OUTBOUND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("agentcore-local/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let issuer_pkcs8 = own_key(&store, &vault, ISSUER_KEY, || SigningKey::generate().map(|k| k.pkcs8)).await?;
        let signing = SigningKey::from_pkcs8(&issuer_pkcs8)?;
        let access_key =
            own_key(&store, &vault, ACCESS_TOKEN_KEY, || vault.random_bytes(32).map_err(|e| e.to_string())).await?;
        Ok(IdentityService {
            store,
            verifier: JwtVerifier::new(http.clone()),
            http,
            issuer: Issuer::new(issuer_config, signing),
            access_tokens: AccessTokens::new(&access_key),
            vault,
            emulator_url: OnceLock::new(),
        })
    }

    /// Called once the listener is bound. A wildcard listen address is reached on loopback.
    pub fn set_listen_addr(&self, addr: std::net::SocketAddr) {
        let host = if addr.ip().is_unspecified() {
            match addr {
                std::net::SocketAddr::V4(_) => "127.0.0.1".to_string(),
                std::net::SocketAddr::V6(_) => "[::1]".to_string(),
            }
        } else {
            match addr {
                std::net::SocketAddr::V4(a) => a.ip().to_string(),
                std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        let url = format!("http://{host}:{}", addr.port());
        self.issuer.set_emulator_url(&url);
        let _ = self.emulator_url.set(url);
    }

    pub fn emulator_url(&self) -> &str {
        self.emulator_url.get().map(String::as_str).unwrap_or("http://127.0.0.1:4599")
    }

    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn vault(&self) -> &Vault {
        &self.vault
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Mint a workload access token (the runtime does this for every invocation it forwards).
    pub fn mint_access_token(&self, principal: &WorkloadPrincipal) -> String {
        self.access_tokens.mint(principal, now_secs())
    }

    /// The principal of a workload access token presented by `caller`: valid, unexpired, of the
    /// caller's account and Region.
    pub fn principal_of(&self, caller: &Caller, token: &str) -> Result<WorkloadPrincipal> {
        let principal = self.access_tokens.verify(token, now_secs()).map_err(|e| {
            Error::new(ErrorKind::AccessDenied, format!("The workloadIdentityToken is not valid: {e}."))
        })?;
        if principal.account != caller.account || principal.region != caller.region {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "The workloadIdentityToken was issued for account {} in {}, not for the account and Region of this request.",
                    principal.account, principal.region
                ),
            ));
        }
        Ok(principal)
    }
}

/// One of the emulator's own keys: read from the vault, or made by `create` and stored sealed on
/// first start (a concurrent first start keeps whichever committed first).
async fn own_key(
    store: &Store,
    vault: &Arc<Vault>,
    name: &'static str,
    create: impl FnOnce() -> std::result::Result<Vec<u8>, String>,
) -> std::result::Result<Vec<u8>, String> {
    let context = format!("emulator-key:{name}");
    let existing = store.read(move |tx| tables(tx).key(name)).await.map_err(|e| e.to_string())?;
    let sealed = match existing {
        Some(sealed) => sealed,
        None => {
            let fresh = vault.seal(&context, &create()?).map_err(|e| e.to_string())?;
            let now = now_secs();
            store.write(move |tx| tables(tx).key_or_insert(name, &fresh, now)).await.map_err(|e| e.to_string())?
        }
    };
    vault.open_sealed(&context, &sealed).map_err(|e| format!("the emulator's {name} key: {e}"))
}
