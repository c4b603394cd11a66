//! GetResourceOauth2Token: an access token for a credential provider, from the vault when one is
//! fresh, else from the provider: M2M by the client-credentials grant, USER_FEDERATION by an
//! authorization session the user completes in a browser (`federation.rs`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::{self, ClientAuthMethod, ClientCredentials, TokenSet};
use super::providers::stored_config;
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::services::identity::tables::{ProviderKind, ProviderRow, TokenKey, TokenRow};
use crate::services::identity::{now_secs, tables, vault_error, IdentityService, WorkloadPrincipal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    M2m,
    UserFederation,
}

/// A GetResourceOauth2Token request, after wire validation.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub workload_token: String,
    pub provider: String,
    pub scopes: Vec<String>,
    pub session_uri: Option<String>,
    pub return_url: Option<String>,
    pub force_authentication: bool,
    pub custom_parameters: BTreeMap<String, String>,
    pub custom_state: Option<String>,
    pub resources: Vec<String>,
    pub audiences: Vec<String>,
}

/// What GetResourceOauth2Token answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome {
    Token(String),
    /// The user must authorize at `authorization_url`; poll again with `session_uri`.
    Authorize {
        authorization_url: String,
        session_uri: String,
    },
    /// The session ended without a token (denied, expired, or the exchange failed).
    Failed {
        session_uri: String,
    },
}

/// The vault key's scope part: what was asked for, independent of order.
pub fn scope_key(scopes: &[String], audiences: &[String], resources: &[String]) -> String {
    let norm = |v: &[String]| {
        let mut v: Vec<&str> = v.iter().map(String::as_str).collect();
        v.sort_unstable();
        v.dedup();
        v.join(" ")
    };
    let mut key = norm(scopes);
    if !audiences.is_empty() {
        key.push_str(&format!("|aud={}", norm(audiences)));
    }
    if !resources.is_empty() {
        key.push_str(&format!("|res={}", norm(resources)));
    }
    key
}

pub fn token_context(key: &TokenKey) -> String {
    format!(
        "vault-token:{}:{}:{}:{}:{}:{}",
        key.account, key.region, key.provider, key.workload, key.user_key, key.scopes
    )
}

impl IdentityService {
    pub async fn resource_oauth2_token(&self, caller: Caller, flow: Flow, req: TokenRequest) -> Result<TokenOutcome> {
        let principal = self.principal_of(&caller, &req.workload_token)?;
        let workload = self.require_workload(&principal).await?;
        let provider = self.provider(ProviderKind::OAuth2, caller.clone(), req.provider.clone()).await?;
        let scopes = scope_key(&req.scopes, &req.audiences, &req.resources);
        match flow {
            Flow::M2m => {
                let key = TokenKey {
                    account: caller.account,
                    region: caller.region,
                    provider: provider.name.clone(),
                    workload: String::new(),
                    user_key: String::new(),
                    scopes,
                };
                if !req.force_authentication {
                    if let Some(token) = self.vault_token(&provider, &key).await? {
                        return Ok(TokenOutcome::Token(token));
                    }
                }
                let mut params = vec![("grant_type".to_string(), "client_credentials".to_string())];
                if !req.scopes.is_empty() {
                    params.push(("scope".into(), req.scopes.join(" ")));
                }
                params.extend(req.audiences.iter().map(|a| ("audience".to_string(), a.clone())));
                params.extend(req.resources.iter().map(|r| ("resource".to_string(), r.clone())));
                let tokens = self.call_token_endpoint(&provider, params).await?;
                self.store_vault_token(&key, &tokens).await?;
                Ok(TokenOutcome::Token(tokens.access_token))
            }
            Flow::UserFederation => {
                let user = principal.user.clone().ok_or_else(|| {
                    Error::invalid_field(
                        "workloadIdentityToken",
                        "USER_FEDERATION needs a workload access token bound to a user \
                         (GetWorkloadAccessTokenForUserId or GetWorkloadAccessTokenForJWT, or an invocation with a user).",
                    )
                })?;
                let key = TokenKey {
                    account: caller.account,
                    region: caller.region,
                    provider: provider.name.clone(),
                    workload: principal.workload.clone(),
                    user_key: user,
                    scopes,
                };
                IdentityService::check_return_url(&workload, req.return_url.as_deref())?;
                if let Some(session_uri) = &req.session_uri {
                    return self.poll_session(&provider, &key, session_uri).await;
                }
                if !req.force_authentication {
                    if let Some(token) = self.vault_token(&provider, &key).await? {
                        return Ok(TokenOutcome::Token(token));
                    }
                }
                self.start_session(&provider, key, &req).await
            }
        }
    }

    /// The workload identity a token names must still exist.
    pub(crate) async fn require_workload(
        &self,
        principal: &WorkloadPrincipal,
    ) -> Result<crate::services::identity::tables::WorkloadRow> {
        let (a, r, w) = (principal.account.clone(), principal.region.clone(), principal.workload.clone());
        self.store.read(move |tx| tables(tx).workload(&a, &r, &w)).await?.ok_or_else(|| {
            Error::new(
                crate::kernel::error::ErrorKind::AccessDenied,
                format!(
                    "The workload identity '{}' of this workloadIdentityToken no longer exists.",
                    principal.workload
                ),
            )
        })
    }

    /// A fresh access token from the vault, refreshed with its refresh token when it has expired.
    pub(crate) async fn vault_token(&self, provider: &ProviderRow, key: &TokenKey) -> Result<Option<String>> {
        let k = key.clone();
        let Some(row) = self.store.read(move |tx| tables(tx).token(&k)).await? else {
            return Ok(None);
        };
        let tokens: TokenSet =
            serde_json::from_str(&self.vault.open_str(&token_context(key), &row.sealed_token).map_err(vault_error)?)
                .map_err(|e| Error::internal(format!("stored token: {e}")))?;
        let now = now_secs();
        if tokens.fresh_at(now) {
            return Ok(Some(tokens.access_token));
        }
        let Some(refresh) = tokens.refresh_token else { return Ok(None) };
        let params = vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), refresh.clone()),
        ];
        match self.call_token_endpoint(provider, params).await {
            Ok(mut fresh) => {
                // Providers may omit a new refresh token; the old one stays valid then (RFC 6749 §6).
                fresh.refresh_token = fresh.refresh_token.or(Some(refresh));
                self.store_vault_token(key, &fresh).await?;
                Ok(Some(fresh.access_token))
            }
            Err(e) => {
                tracing::info!(provider = %provider.name, error = %e, "refreshing a vault token failed; a new authorization is needed");
                Ok(None)
            }
        }
    }

    pub(crate) async fn store_vault_token(&self, key: &TokenKey, tokens: &TokenSet) -> Result<()> {
        let sealed = self
            .vault
            .seal_str(&token_context(key), &serde_json::to_string(tokens).unwrap_or_default())
            .map_err(vault_error)?;
        let row = TokenRow { sealed_token: sealed, expires_at: tokens.expires_at };
        let k = key.clone();
        self.store.write(move |tx| tables(tx).put_token(&k, &row, now_secs())).await
    }

    /// One call to the provider's token endpoint with its client credentials.
    pub(crate) async fn call_token_endpoint(
        &self,
        provider: &ProviderRow,
        params: Vec<(String, String)>,
    ) -> Result<TokenSet> {
        let config = stored_config(provider)?;
        let discovery = config.discovery().unwrap_or(Value::Null);
        let endpoints = client::endpoints(&self.http, &discovery).await?;
        let client_id = config.client_id().ok_or_else(|| {
            Error::invalid_field(
                "resourceCredentialProviderName",
                format!("Credential provider '{}' has no clientId.", provider.name),
            )
        })?;
        let secret = self.client_secret(provider)?;
        let credentials = ClientCredentials {
            client_id,
            client_secret: secret.as_deref(),
            method: ClientAuthMethod::choose(config.client_authentication_method(), &endpoints.auth_methods),
        };
        client::request_token(&self.http, &endpoints.token_endpoint, &credentials, params, now_secs()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_ignore_order_and_duplicates() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(scope_key(&s(&["b", "a", "a"]), &[], &[]), "a b");
        assert_eq!(scope_key(&s(&["a"]), &s(&["api"]), &[]), "a|aud=api");
        assert_ne!(scope_key(&s(&["a"]), &s(&["api"]), &[]), scope_key(&s(&["a"]), &[], &[]));
    }
}
