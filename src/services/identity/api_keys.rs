//! API key credential providers (Create/Get/Update/Delete/List…) and GetResourceApiKey.

use std::collections::BTreeMap;

use super::providers::{not_found, provider_arn, secret_arn, secret_context};
use super::tables::{ProviderKind, ProviderRow};
use super::{now_ms, tables, vault_error, IdentityService};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};

const KIND: ProviderKind = ProviderKind::ApiKey;
/// `ListApiKeyCredentialProviders` page size when the caller gives none (the model allows 1–100).
pub const DEFAULT_API_KEY_PAGE: usize = 100;

fn required_key(api_key: Option<String>) -> Result<String> {
    api_key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::invalid_field("apiKey", "apiKey is required (the API key to keep in the token vault)."))
}

impl IdentityService {
    pub async fn create_api_key_provider(
        &self,
        caller: Caller,
        name: String,
        api_key: Option<String>,
        tags: BTreeMap<String, String>,
    ) -> Result<ProviderRow> {
        let api_key = required_key(api_key)?;
        let vault = self.vault.clone();
        self.store
            .write(move |tx| {
                let t = tables(tx);
                if let Some(existing) = t.provider(&caller.account, &caller.region, KIND, &name)? {
                    return Err(Error::conflict(format!(
                        "An API key credential provider named '{name}' already exists ({}).",
                        existing.arn
                    )));
                }
                let now = now_ms();
                let mut row = ProviderRow {
                    seq: 0,
                    arn: provider_arn(KIND, &caller.account, &caller.region, &name),
                    secret_arn: secret_arn(KIND, &caller.account, &caller.region, &name),
                    account: caller.account,
                    region: caller.region,
                    kind: KIND,
                    name,
                    vendor: None,
                    config: serde_json::json!({}),
                    sealed_secret: None,
                    callback_id: None,
                    tags,
                    created_at: now,
                    updated_at: now,
                };
                row.sealed_secret = Some(vault.seal_str(&secret_context(&row), &api_key).map_err(vault_error)?);
                t.insert_provider(&row)
            })
            .await
    }

    pub async fn get_api_key_provider(&self, caller: Caller, name: String) -> Result<ProviderRow> {
        self.provider(KIND, caller, name).await
    }

    pub async fn update_api_key_provider(
        &self,
        caller: Caller,
        name: String,
        api_key: Option<String>,
    ) -> Result<ProviderRow> {
        let api_key = required_key(api_key)?;
        let vault = self.vault.clone();
        self.store
            .write(move |tx| {
                let t = tables(tx);
                let row = t
                    .provider(&caller.account, &caller.region, KIND, &name)?
                    .ok_or_else(|| not_found(KIND, &caller, &name))?;
                let sealed = vault.seal_str(&secret_context(&row), &api_key).map_err(vault_error)?;
                t.update_provider(row.seq, None, &row.config, Some(&sealed), now_ms())?;
                t.provider(&caller.account, &caller.region, KIND, &name)?.ok_or_else(|| not_found(KIND, &caller, &name))
            })
            .await
    }

    pub async fn delete_api_key_provider(&self, caller: Caller, name: String) -> Result<()> {
        self.delete_provider(KIND, caller, name).await
    }

    pub async fn list_api_key_providers(
        &self,
        caller: Caller,
        max_results: Option<i64>,
        next_token: Option<String>,
    ) -> Result<(Vec<ProviderRow>, Option<String>)> {
        self.list_providers(KIND, caller, max_results, DEFAULT_API_KEY_PAGE, next_token).await
    }

    /// GetResourceApiKey: the key, for an agent that presents a valid workload access token.
    pub async fn resource_api_key(&self, caller: Caller, workload_token: &str, provider: String) -> Result<String> {
        let principal = self.principal_of(&caller, workload_token)?;
        self.require_workload(&principal).await?;
        let row = self.provider(KIND, caller, provider).await?;
        let sealed = row.sealed_secret.as_deref().ok_or_else(|| Error::internal("the provider has no stored key"))?;
        self.vault.open_str(&secret_context(&row), sealed).map_err(vault_error)
    }
}
