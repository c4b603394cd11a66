//! OAuth2 credential providers: Create/Get/Update/Delete/ListOauth2CredentialProviders.
//!
//! The provider's configuration is stored as the caller sent it, minus the client secret, which
//! goes sealed into the vault. Vendors with well-known endpoints (Google, GitHub, Slack,
//! Salesforce, Microsoft, Atlassian, LinkedIn) get their `oauthDiscovery` from the table below,
//! as the service fills it in; `CustomOauth2` names its own discovery URL or metadata; every other
//! vendor uses `includedOauth2ProviderConfig` with its endpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::services::identity::providers::{
    not_found, provider_arn, refuse_external_secret, secret_arn, secret_context,
};
use crate::services::identity::tables::{ProviderKind, ProviderRow};
use crate::services::identity::{now_ms, tables, vault_error, IdentityService};

const KIND: ProviderKind = ProviderKind::OAuth2;
/// `ListOauth2CredentialProviders` returns at most this many per page (the model's maximum).
pub const MAX_OAUTH2_PAGE: usize = 20;
/// Where the provider sends the user's browser back (`callbackUrl`), under the emulator's URL.
pub const CALLBACK_PATH: &str = "/identities/oauth2/callback/";

/// The member of the `Oauth2ProviderConfigInput` union a vendor uses.
fn member_of(vendor: &str) -> &'static str {
    match vendor {
        "CustomOauth2" => "customOauth2ProviderConfig",
        "GoogleOauth2" => "googleOauth2ProviderConfig",
        "GithubOauth2" => "githubOauth2ProviderConfig",
        "SlackOauth2" => "slackOauth2ProviderConfig",
        "SalesforceOauth2" => "salesforceOauth2ProviderConfig",
        "MicrosoftOauth2" => "microsoftOauth2ProviderConfig",
        "AtlassianOauth2" => "atlassianOauth2ProviderConfig",
        "LinkedinOauth2" => "linkedinOauth2ProviderConfig",
        _ => "includedOauth2ProviderConfig",
    }
}

/// `oauthDiscovery` of the vendors whose endpoints are fixed.
fn vendor_discovery(member: &str, settings: &Map<String, Value>) -> Option<Value> {
    let metadata = |issuer: &str, authorize: &str, token: &str| json!({"authorizationServerMetadata": {"issuer": issuer, "authorizationEndpoint": authorize, "tokenEndpoint": token}});
    Some(match member {
        "googleOauth2ProviderConfig" => {
            json!({"discoveryUrl": "https://accounts.google.com/.well-known/openid-configuration"})
        }
        "githubOauth2ProviderConfig" => metadata(
            "https://github.com",
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
        ),
        "slackOauth2ProviderConfig" => metadata(
            "https://slack.com",
            "https://slack.com/oauth/v2/authorize",
            "https://slack.com/api/oauth.v2.access",
        ),
        "salesforceOauth2ProviderConfig" => {
            json!({"discoveryUrl": "https://login.salesforce.com/.well-known/openid-configuration"})
        }
        "microsoftOauth2ProviderConfig" => {
            let tenant = settings.get("tenantId").and_then(Value::as_str).unwrap_or("common");
            json!({"discoveryUrl": format!("https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration")})
        }
        "atlassianOauth2ProviderConfig" => metadata(
            "https://auth.atlassian.com",
            "https://auth.atlassian.com/authorize",
            "https://auth.atlassian.com/oauth/token",
        ),
        "linkedinOauth2ProviderConfig" => {
            json!({"discoveryUrl": "https://www.linkedin.com/oauth/.well-known/openid-configuration"})
        }
        _ => return None,
    })
}

/// A provider's configuration without its secret, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredConfig {
    /// The union member, e.g. `customOauth2ProviderConfig`.
    pub member: String,
    pub settings: Map<String, Value>,
}

impl StoredConfig {
    pub fn client_id(&self) -> Option<&str> {
        self.settings.get("clientId").and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// `oauthDiscovery`: the caller's (custom), the vendor's (well-known), or built from the
    /// endpoints given (included vendors).
    pub fn discovery(&self) -> Option<Value> {
        if let Some(d) = self.settings.get("oauthDiscovery") {
            return Some(d.clone());
        }
        if let Some(d) = vendor_discovery(&self.member, &self.settings) {
            return Some(d);
        }
        let s = |k: &str| self.settings.get(k).and_then(Value::as_str);
        match (s("issuer"), s("authorizationEndpoint"), s("tokenEndpoint")) {
            (Some(i), Some(a), Some(t)) => Some(json!({"authorizationServerMetadata": {
                "issuer": i, "authorizationEndpoint": a, "tokenEndpoint": t}})),
            _ => None,
        }
    }

    pub fn client_authentication_method(&self) -> Option<&str> {
        self.settings.get("clientAuthenticationMethod").and_then(Value::as_str)
    }

    /// `oauth2ProviderConfigOutput`.
    pub fn output(&self) -> Value {
        let mut out = Map::new();
        out.insert("oauthDiscovery".into(), self.discovery().unwrap_or_else(|| json!({})));
        if let Some(id) = self.client_id() {
            out.insert("clientId".into(), json!(id));
        }
        if self.member == "customOauth2ProviderConfig" {
            for key in [
                "clientAuthenticationMethod",
                "onBehalfOfTokenExchangeConfig",
                "privateKeyJwtConfig",
                "privateEndpoint",
                "privateEndpointOverrides",
                "certificateConfigurations",
            ] {
                if let Some(v) = self.settings.get(key) {
                    out.insert(key.into(), v.clone());
                }
            }
        }
        json!({ self.member.clone(): out })
    }
}

/// Split a validated `oauth2ProviderConfigInput` into stored settings and the client secret.
fn split_config(vendor: &str, input: &Map<String, Value>) -> Result<(StoredConfig, Option<String>)> {
    let expected = member_of(vendor);
    let (member, body) = input.iter().next().ok_or_else(|| {
        Error::invalid_field(
            "oauth2ProviderConfigInput",
            "oauth2ProviderConfigInput must set one provider configuration.",
        )
    })?;
    if member != expected {
        return Err(Error::invalid_field(
            "oauth2ProviderConfigInput",
            format!("credentialProviderVendor {vendor} is configured with {expected}, not {member}."),
        ));
    }
    let mut settings = body.as_object().cloned().unwrap_or_default();
    refuse_external_secret(
        settings.get("clientSecretSource").and_then(Value::as_str),
        settings.contains_key("clientSecretConfig"),
        "clientSecret",
    )?;
    let secret = settings.remove("clientSecret").and_then(|v| v.as_str().map(String::from)).filter(|s| !s.is_empty());
    settings.remove("clientSecretSource");
    settings.remove("clientSecretConfig");
    let stored = StoredConfig { member: member.clone(), settings };
    if stored.discovery().is_none() {
        return Err(Error::invalid_field(
            "oauth2ProviderConfigInput",
            format!("{member} needs issuer, authorizationEndpoint and tokenEndpoint for vendor {vendor}."),
        ));
    }
    if let Some(Value::String(url)) = stored.discovery().as_ref().and_then(|d| d.get("discoveryUrl")) {
        crate::kernel::jwt::check_fetchable(url)
            .map_err(|e| Error::invalid_field("discoveryUrl", format!("{url} {e}.")))?;
    }
    Ok((stored, secret))
}

pub fn stored_config(row: &ProviderRow) -> Result<StoredConfig> {
    serde_json::from_value(row.config.clone())
        .map_err(|e| Error::internal(format!("stored provider configuration: {e}")))
}

impl IdentityService {
    /// The `callbackUrl` of a provider: where it must redirect after the user consents.
    pub fn callback_url(&self, row: &ProviderRow) -> String {
        format!("{}{CALLBACK_PATH}{}", self.emulator_url(), row.callback_id.as_deref().unwrap_or_default())
    }

    pub async fn create_oauth2_provider(
        &self,
        caller: Caller,
        name: String,
        vendor: String,
        input: Map<String, Value>,
        tags: BTreeMap<String, String>,
    ) -> Result<ProviderRow> {
        let (stored, secret) = split_config(&vendor, &input)?;
        let vault = self.vault.clone();
        self.store
            .write(move |tx| {
                let t = tables(tx);
                if let Some(existing) = t.provider(&caller.account, &caller.region, KIND, &name)? {
                    return Err(Error::conflict(format!(
                        "An OAuth2 credential provider named '{name}' already exists ({}).",
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
                    vendor: Some(vendor),
                    config: serde_json::to_value(&stored).unwrap_or_default(),
                    sealed_secret: None,
                    callback_id: Some(uuid::Uuid::new_v4().to_string()),
                    tags,
                    created_at: now,
                    updated_at: now,
                };
                if let Some(secret) = &secret {
                    row.sealed_secret = Some(vault.seal_str(&secret_context(&row), secret).map_err(vault_error)?);
                }
                t.insert_provider(&row)
            })
            .await
    }

    pub async fn get_oauth2_provider(&self, caller: Caller, name: String) -> Result<ProviderRow> {
        self.provider(KIND, caller, name).await
    }

    /// Replace the configuration; a secret not given again is kept.
    pub async fn update_oauth2_provider(
        &self,
        caller: Caller,
        name: String,
        vendor: String,
        input: Map<String, Value>,
    ) -> Result<ProviderRow> {
        let (stored, secret) = split_config(&vendor, &input)?;
        let vault = self.vault.clone();
        self.store
            .write(move |tx| {
                let t = tables(tx);
                let row = t
                    .provider(&caller.account, &caller.region, KIND, &name)?
                    .ok_or_else(|| not_found(KIND, &caller, &name))?;
                let sealed = match &secret {
                    Some(s) => Some(vault.seal_str(&secret_context(&row), s).map_err(vault_error)?),
                    None => row.sealed_secret.clone(),
                };
                let config = serde_json::to_value(&stored).unwrap_or_default();
                t.update_provider(row.seq, Some(&vendor), &config, sealed.as_deref(), now_ms())?;
                t.provider(&caller.account, &caller.region, KIND, &name)?.ok_or_else(|| not_found(KIND, &caller, &name))
            })
            .await
    }

    pub async fn delete_oauth2_provider(&self, caller: Caller, name: String) -> Result<()> {
        self.delete_provider(KIND, caller, name).await
    }

    pub async fn list_oauth2_providers(
        &self,
        caller: Caller,
        max_results: Option<i64>,
        next_token: Option<String>,
    ) -> Result<(Vec<ProviderRow>, Option<String>)> {
        self.list_providers(KIND, caller, max_results, MAX_OAUTH2_PAGE, next_token).await
    }

    /// The client secret of a provider, opened from the vault.
    pub(crate) fn client_secret(&self, row: &ProviderRow) -> Result<Option<String>> {
        row.sealed_secret
            .as_deref()
            .map(|sealed| self.vault.open_str(&secret_context(row), sealed).map_err(vault_error))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_split_off_and_vendors_checked() {
        let input = json!({"customOauth2ProviderConfig": {
            "oauthDiscovery": {"discoveryUrl": "http://127.0.0.1:9/.well-known/openid-configuration"},
            "clientId": "c1", "clientSecret": "s3cret", "clientAuthenticationMethod": "CLIENT_SECRET_POST"}});
        let (stored, secret) = split_config("CustomOauth2", input.as_object().unwrap()).unwrap();
        assert_eq!(secret.as_deref(), Some("s3cret"));
        assert!(!serde_json::to_string(&stored).unwrap().contains("s3cret"));
        let out = stored.output();
        assert_eq!(out["customOauth2ProviderConfig"]["clientId"], "c1");
        assert_eq!(out["customOauth2ProviderConfig"]["clientAuthenticationMethod"], "CLIENT_SECRET_POST");
        assert!(split_config("GoogleOauth2", input.as_object().unwrap()).is_err(), "vendor and member must agree");
        let github = json!({"githubOauth2ProviderConfig": {"clientId": "g", "clientSecret": "x"}});
        let (stored, _) = split_config("GithubOauth2", github.as_object().unwrap()).unwrap();
        assert_eq!(
            stored.output()["githubOauth2ProviderConfig"]["oauthDiscovery"]["authorizationServerMetadata"]
                ["tokenEndpoint"],
            "https://github.com/login/oauth/access_token"
        );
        let okta = json!({"includedOauth2ProviderConfig": {"clientId": "o"}});
        assert!(
            split_config("OktaOauth2", okta.as_object().unwrap()).is_err(),
            "included vendors name their endpoints"
        );
        let external = json!({"customOauth2ProviderConfig": {"oauthDiscovery": {"discoveryUrl": "https://x/.well-known/openid-configuration"},
            "clientSecretSource": "EXTERNAL", "clientSecretConfig": {"secretId": "s", "jsonKey": "k"}}});
        assert!(split_config("CustomOauth2", external.as_object().unwrap()).is_err());
    }
}
