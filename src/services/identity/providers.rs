//! What API-key and OAuth2 credential providers share: ARNs, lookups, listing.

use super::tables::{ProviderKind, ProviderRow};
use super::{tables, IdentityService};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::services::runtime::domain::pagination::{self, Page};

/// The token vault every account has; SetTokenVaultCMK and the provider ARNs name it.
pub const DEFAULT_TOKEN_VAULT: &str = "default";

/// Credential provider ARNs as the botocore model's pattern writes them
/// (`arn:aws:acps:<region>:<account>:token-vault/<vault>/<kind>credentialprovider/<name>`):
/// where references and the model disagree, the model wins.
pub fn provider_arn(kind: ProviderKind, account: &str, region: &str, name: &str) -> String {
    let segment = match kind {
        ProviderKind::ApiKey => "apikeycredentialprovider",
        ProviderKind::OAuth2 => "oauth2credentialprovider",
    };
    let partition = crate::kernel::caller::partition_of(region);
    format!("arn:{partition}:acps:{region}:{account}:token-vault/{DEFAULT_TOKEN_VAULT}/{segment}/{name}")
}

/// The Secrets Manager ARN the service reports for a managed secret; the secret itself is in this
/// emulator's token vault (there is no Secrets Manager here).
pub fn secret_arn(kind: ProviderKind, account: &str, region: &str, name: &str) -> String {
    let kind = match kind {
        ProviderKind::ApiKey => "apikey",
        ProviderKind::OAuth2 => "oauth2",
    };
    let suffix: String = uuid::Uuid::new_v4().simple().to_string().chars().take(6).collect();
    let partition = crate::kernel::caller::partition_of(region);
    format!("arn:{partition}:secretsmanager:{region}:{account}:secret:bedrock-agentcore-identity!{DEFAULT_TOKEN_VAULT}/{kind}/{name}-{suffix}")
}

/// The vault context of a provider's secret: its ciphertext opens only for this provider.
pub fn secret_context(p: &ProviderRow) -> String {
    format!("provider-secret:{}:{}", p.arn, p.created_at)
}

pub fn not_found(kind: ProviderKind, caller: &Caller, name: &str) -> Error {
    let what = match kind {
        ProviderKind::ApiKey => "API key",
        ProviderKind::OAuth2 => "OAuth2",
    };
    Error::not_found(format!(
        "No {what} credential provider named '{name}' exists in account {} in {}.",
        caller.account, caller.region
    ))
}

/// Secrets Manager references (`*SecretConfig`, `*SecretSource: EXTERNAL`) need a Secrets Manager,
/// which the emulator does not have: the secret must be given inline.
pub fn refuse_external_secret(source: Option<&str>, has_config: bool, field: &str) -> Result<()> {
    if source == Some("EXTERNAL") || has_config {
        return Err(Error::invalid_field(
            field,
            format!(
                "agentcore-local keeps secrets in its own token vault and has no Secrets Manager: \
                 pass the secret itself ({field}) with source MANAGED."
            ),
        ));
    }
    Ok(())
}

impl IdentityService {
    pub(crate) async fn provider(&self, kind: ProviderKind, caller: Caller, name: String) -> Result<ProviderRow> {
        self.store
            .read(move |tx| {
                tables(tx)
                    .provider(&caller.account, &caller.region, kind, &name)?
                    .ok_or_else(|| not_found(kind, &caller, &name))
            })
            .await
    }

    pub(crate) async fn delete_provider(&self, kind: ProviderKind, caller: Caller, name: String) -> Result<()> {
        self.store
            .write(move |tx| {
                let t = tables(tx);
                let row = t
                    .provider(&caller.account, &caller.region, kind, &name)?
                    .ok_or_else(|| not_found(kind, &caller, &name))?;
                t.delete_provider(&row)
            })
            .await
    }

    pub(crate) async fn list_providers(
        &self,
        kind: ProviderKind,
        caller: Caller,
        max_results: Option<i64>,
        default_page: usize,
        next_token: Option<String>,
    ) -> Result<(Vec<ProviderRow>, Option<String>)> {
        let list = match kind {
            ProviderKind::ApiKey => "apikey-providers",
            ProviderKind::OAuth2 => "oauth2-providers",
        };
        let page = Page::new(Some(max_results.unwrap_or(default_page as i64)), next_token.as_deref(), list)?;
        let rows = self
            .store
            .read(move |tx| {
                tables(tx).providers(
                    &caller.account,
                    &caller.region,
                    kind,
                    page.after.unwrap_or(0),
                    page.max_results + 1,
                )
            })
            .await?;
        Ok(pagination::finish(rows, &page, list, |p| p.seq))
    }
}
