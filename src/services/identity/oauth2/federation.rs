//! USER_FEDERATION (3-legged OAuth): the authorization session behind an `authorizationUrl`.
//!
//! 1. GetResourceOauth2Token finds no token for the user and opens a session: it answers
//!    `authorizationUrl` (`<emulator>/identities/oauth2/authorize?request_uri=<sessionUri>`) and
//!    the `sessionUri`.
//! 2. The user's browser opens that URL and is sent to the provider's authorization endpoint
//!    (with PKCE S256, `state`, and the provider's `callbackUrl` as `redirect_uri`).
//! 3. The provider sends the browser back to `callbackUrl` with a `code`; the emulator exchanges
//!    it for tokens at once. With a `resourceOauth2ReturnUrl`, the browser then goes there with
//!    `session_id=<sessionUri>` and the token waits for CompleteResourceTokenAuth, which binds
//!    the session to the user who started it (oauth2-authorization-url-session-binding in the
//!    developer guide); without one, the session completes right away.
//! 4. The agent, polling GetResourceOauth2Token with the `sessionUri`, gets the token.

use serde::{Deserialize, Serialize};

use super::client::{self, TokenSet};
use super::providers::stored_config;
use super::tokens::{TokenOutcome, TokenRequest};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, ErrorKind, Result};
use crate::services::identity::issuer::endpoints::with_query;
use crate::services::identity::tables::{ProviderKind, ProviderRow, SessionRow, SessionStatus, TokenKey, WorkloadRow};
use crate::services::identity::{now_secs, tables, vault_error, IdentityService, WorkloadPrincipal};

/// How long a user has to complete an authorization (the SDK polls for 600 s).
pub const AUTH_SESSION_TTL_SECS: i64 = 600;
/// Where the authorization URL points, under the emulator's URL.
pub const AUTHORIZE_PATH: &str = "/identities/oauth2/authorize";
const SESSION_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The parts of the authorization request kept until the callback (sealed: the PKCE verifier is
/// a secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingRequest {
    code_verifier: String,
    scopes: Vec<String>,
    audiences: Vec<String>,
    resources: Vec<String>,
    custom_parameters: std::collections::BTreeMap<String, String>,
    custom_state: Option<String>,
}

fn session_context(session_uri: &str) -> String {
    format!("auth-session:{session_uri}")
}

fn random_token(identity: &IdentityService, bytes: usize) -> Result<String> {
    use base64::Engine;
    let raw = identity.vault().random_bytes(bytes).map_err(vault_error)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// Who completes a session (CompleteResourceTokenAuth's `userIdentifier`).
#[derive(Debug, Clone)]
pub enum UserIdentifier {
    UserId(String),
    UserToken(String),
}

/// What the browser is shown after the provider's callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowserOutcome {
    Redirect(String),
    Page { status: u16, title: String, message: String },
}

fn page(status: u16, title: &str, message: impl Into<String>) -> BrowserOutcome {
    BrowserOutcome::Page { status, title: title.into(), message: message.into() }
}

fn invalid_session() -> Error {
    Error::new(ErrorKind::AccessDenied, "Invalid or expired session.")
}

impl IdentityService {
    pub(crate) async fn start_session(
        &self,
        provider: &ProviderRow,
        key: TokenKey,
        req: &TokenRequest,
    ) -> Result<TokenOutcome> {
        let session_uri = format!("{SESSION_URI_PREFIX}{}", random_token(self, 24)?);
        let pending = PendingRequest {
            code_verifier: random_token(self, 32)?,
            scopes: req.scopes.clone(),
            audiences: req.audiences.clone(),
            resources: req.resources.clone(),
            custom_parameters: req.custom_parameters.clone(),
            custom_state: req.custom_state.clone(),
        };
        let now = now_secs();
        let row = SessionRow {
            sealed_request: self
                .vault()
                .seal_str(&session_context(&session_uri), &serde_json::to_string(&pending).unwrap_or_default())
                .map_err(vault_error)?,
            session_uri: session_uri.clone(),
            token_key: key,
            return_url: req.return_url.clone(),
            state: random_token(self, 24)?,
            status: SessionStatus::InProgress,
            sealed_token: None,
            failure: None,
            created_at: now,
            expires_at: now + AUTH_SESSION_TTL_SECS,
        };
        self.store()
            .write(move |tx| {
                let t = tables(tx);
                t.delete_sessions_expired_before(now - AUTH_SESSION_TTL_SECS)?;
                t.insert_session(&row)
            })
            .await?;
        tracing::info!(provider = %provider.name, %session_uri, "USER_FEDERATION: the user must authorize");
        Ok(TokenOutcome::Authorize { authorization_url: self.authorization_url(&session_uri), session_uri })
    }

    /// A return URL must be one the workload identity registered (session binding sends the
    /// user's browser there).
    pub(crate) fn check_return_url(workload: &WorkloadRow, return_url: Option<&str>) -> Result<()> {
        match return_url {
            Some(url) if !workload.return_urls.iter().any(|u| u == url) => Err(Error::invalid_field(
                "resourceOauth2ReturnUrl",
                format!(
                    "resourceOauth2ReturnUrl {url} is not one of the allowedResourceOauth2ReturnUrls of workload identity '{}' \
                     (UpdateWorkloadIdentity registers it).",
                    workload.name
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn authorization_url(&self, session_uri: &str) -> String {
        with_query(&format!("{}{AUTHORIZE_PATH}", self.emulator_url()), &[("request_uri", session_uri)])
    }

    /// GetResourceOauth2Token with a `sessionUri`: the token once the session completed.
    pub(crate) async fn poll_session(
        &self,
        provider: &ProviderRow,
        key: &TokenKey,
        session_uri: &str,
    ) -> Result<TokenOutcome> {
        let uri = session_uri.to_string();
        let session = self.store().read(move |tx| tables(tx).session(&uri)).await?.ok_or_else(invalid_session)?;
        if session.token_key.account != key.account
            || session.token_key.region != key.region
            || session.token_key.provider != key.provider
            || session.token_key.workload != key.workload
            || session.token_key.user_key != key.user_key
        {
            return Err(invalid_session());
        }
        match session.status {
            SessionStatus::Completed => match self.vault_token(provider, &session.token_key).await? {
                Some(token) => Ok(TokenOutcome::Token(token)),
                None => Ok(TokenOutcome::Failed { session_uri: session.session_uri }),
            },
            SessionStatus::Failed => Ok(TokenOutcome::Failed { session_uri: session.session_uri }),
            _ if session.expires_at < now_secs() => Ok(TokenOutcome::Failed { session_uri: session.session_uri }),
            _ => Ok(TokenOutcome::Authorize {
                authorization_url: self.authorization_url(&session.session_uri),
                session_uri: session.session_uri,
            }),
        }
    }

    /// The browser opened an authorization URL: where the provider's login is.
    pub async fn authorize_redirect(&self, request_uri: &str) -> BrowserOutcome {
        let uri = request_uri.to_string();
        let session = match self.store().read(move |tx| tables(tx).session(&uri)).await {
            Ok(Some(s)) if s.status == SessionStatus::InProgress && s.expires_at >= now_secs() => s,
            Ok(_) => {
                return page(
                    400,
                    "Authorization link expired",
                    "This authorization link is unknown, used or expired. Ask the agent again.",
                )
            }
            Err(e) => return page(500, "Error", e.message),
        };
        match self.provider_redirect(&session).await {
            Ok(location) => BrowserOutcome::Redirect(location),
            Err(e) => {
                tracing::warn!(session = %session.session_uri, error = %e, "could not send the browser to the provider");
                page(502, "Provider unavailable", e.message)
            }
        }
    }

    async fn provider_redirect(&self, session: &SessionRow) -> Result<String> {
        let k = &session.token_key;
        let caller = Caller::new(k.account.clone(), k.region.clone());
        let provider = self.provider(ProviderKind::OAuth2, caller, k.provider.clone()).await?;
        let config = stored_config(&provider)?;
        let endpoints = client::endpoints(self.http(), &config.discovery().unwrap_or_default()).await?;
        let authorize = endpoints.authorization_endpoint.ok_or_else(|| {
            Error::invalid_field(
                "oauthDiscovery",
                format!("Credential provider '{}' has no authorization endpoint.", provider.name),
            )
        })?;
        let pending = self.pending_request(session)?;
        let challenge = {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(pending.code_verifier.as_bytes()))
        };
        let callback = self.callback_url(&provider);
        let scope = pending.scopes.join(" ");
        let mut pairs: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", config.client_id().unwrap_or_default()),
            ("redirect_uri", &callback),
            ("state", &session.state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        pairs.extend(pending.audiences.iter().map(|a| ("audience", a.as_str())));
        pairs.extend(pending.resources.iter().map(|r| ("resource", r.as_str())));
        pairs.extend(pending.custom_parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Ok(with_query(&authorize, &pairs))
    }

    fn pending_request(&self, session: &SessionRow) -> Result<PendingRequest> {
        let text = self
            .vault()
            .open_str(&session_context(&session.session_uri), &session.sealed_request)
            .map_err(vault_error)?;
        serde_json::from_str(&text).map_err(|e| Error::internal(format!("stored authorization request: {e}")))
    }

    /// The provider sent the browser back to `callbackUrl`.
    pub async fn provider_callback(&self, callback_id: &str, params: &[(String, String)]) -> BrowserOutcome {
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let Some(state) = get("state") else {
            return page(400, "Authorization failed", "The provider's redirect carries no state.");
        };
        let (id, st) = (callback_id.to_string(), state.clone());
        let found = self
            .store()
            .read(move |tx| {
                let t = tables(tx);
                Ok((t.provider_by_callback(&id)?, t.session_by_state(&st)?))
            })
            .await;
        let (provider, session) = match found {
            Ok((Some(p), Some(s))) if s.token_key.provider == p.name && s.token_key.account == p.account => (p, s),
            Ok(_) => return page(400, "Authorization failed", "This callback matches no authorization in progress."),
            Err(e) => return page(500, "Error", e.message),
        };
        if session.status != SessionStatus::InProgress || session.expires_at < now_secs() {
            return page(400, "Authorization link expired", "This authorization was already used or has expired.");
        }
        if let Some(error) = get("error") {
            let why = format!("{error} {}", get("error_description").unwrap_or_default()).trim().to_string();
            self.fail_session(&session, &why).await;
            return page(400, "Authorization denied", format!("The provider answered: {why}"));
        }
        let Some(code) = get("code") else {
            self.fail_session(&session, "no code in the provider's redirect").await;
            return page(400, "Authorization failed", "The provider's redirect carries no code.");
        };
        let tokens = match self.exchange_code(&provider, &session, &code).await {
            Ok(t) => t,
            Err(e) => {
                self.fail_session(&session, &e.message).await;
                return page(502, "Authorization failed", e.message);
            }
        };
        match self.record_authorization(&session, &tokens).await {
            Ok(()) => {}
            Err(e) => return page(500, "Error", e.message),
        }
        match &session.return_url {
            Some(url) => {
                let pending = self.pending_request(&session).ok();
                let mut pairs = vec![("session_id", session.session_uri.as_str())];
                if let Some(state) = pending.as_ref().and_then(|p| p.custom_state.as_deref()) {
                    pairs.push(("state", state));
                }
                BrowserOutcome::Redirect(with_query(url, &pairs))
            }
            None => page(200, "Authorization complete", "You can close this window and return to the agent."),
        }
    }

    async fn exchange_code(&self, provider: &ProviderRow, session: &SessionRow, code: &str) -> Result<TokenSet> {
        let pending = self.pending_request(session)?;
        let params = vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("redirect_uri".to_string(), self.callback_url(provider)),
            ("code_verifier".to_string(), pending.code_verifier),
        ];
        self.call_token_endpoint(provider, params).await
    }

    /// The provider gave tokens: without a return URL the session is complete (the token goes to
    /// the vault); with one, it waits for CompleteResourceTokenAuth.
    async fn record_authorization(&self, session: &SessionRow, tokens: &TokenSet) -> Result<()> {
        if session.return_url.is_none() {
            self.store_vault_token(&session.token_key, tokens).await?;
            let uri = session.session_uri.clone();
            return self
                .store()
                .write(move |tx| tables(tx).set_session_outcome(&uri, SessionStatus::Completed, None, None))
                .await;
        }
        let sealed = self
            .vault()
            .seal_str(&session_context(&session.session_uri), &serde_json::to_string(tokens).unwrap_or_default())
            .map_err(vault_error)?;
        let uri = session.session_uri.clone();
        self.store()
            .write(move |tx| tables(tx).set_session_outcome(&uri, SessionStatus::Authorized, Some(&sealed), None))
            .await
    }

    async fn fail_session(&self, session: &SessionRow, why: &str) {
        tracing::info!(session = %session.session_uri, reason = why, "USER_FEDERATION session failed");
        let (uri, why) = (session.session_uri.clone(), why.to_string());
        if let Err(e) = self
            .store()
            .write(move |tx| tables(tx).set_session_outcome(&uri, SessionStatus::Failed, None, Some(&why)))
            .await
        {
            tracing::warn!(error = %e, "could not record a failed authorization session");
        }
    }

    /// CompleteResourceTokenAuth: the application confirms which user came back; it must be the
    /// user who started the session.
    pub async fn complete_session(&self, caller: Caller, session_uri: String, user: UserIdentifier) -> Result<()> {
        let uri = session_uri.clone();
        let session = self.store().read(move |tx| tables(tx).session(&uri)).await?.ok_or_else(invalid_session)?;
        if session.token_key.account != caller.account || session.token_key.region != caller.region {
            return Err(invalid_session());
        }
        if session.status == SessionStatus::Completed {
            return Ok(());
        }
        if session.status != SessionStatus::Authorized || session.expires_at < now_secs() {
            return Err(invalid_session());
        }
        let claimed = match user {
            UserIdentifier::UserId(id) => WorkloadPrincipal::user_from_id(&id),
            UserIdentifier::UserToken(token) => {
                let verified = self.verifier().verify_from_issuer(&token, now_secs()).await.map_err(|e| {
                    Error::new(ErrorKind::AccessDenied, format!("userIdentifier.userToken was refused: {e}."))
                })?;
                WorkloadPrincipal::user_from_jwt(&verified.issuer, &verified.subject)
            }
        };
        if claimed != session.token_key.user_key {
            tracing::warn!(session = %session.session_uri, "CompleteResourceTokenAuth by another user than the one who started the session");
            return Err(Error::new(
                ErrorKind::AccessDenied,
                "The user does not match the user for whom the authorization session was started.",
            ));
        }
        let sealed = session.sealed_token.as_deref().ok_or_else(invalid_session)?;
        let tokens: TokenSet = serde_json::from_str(
            &self.vault().open_str(&session_context(&session.session_uri), sealed).map_err(vault_error)?,
        )
        .map_err(|e| Error::internal(format!("stored session token: {e}")))?;
        self.store_vault_token(&session.token_key, &tokens).await?;
        let uri = session.session_uri.clone();
        self.store().write(move |tx| tables(tx).set_session_outcome(&uri, SessionStatus::Completed, None, None)).await
    }
}
