//! The emulator as an OAuth2 client of a credential provider's authorization server: resolving
//! its endpoints (discovery URL or given metadata) and calling its token endpoint.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kernel::error::{Error, ErrorKind, Result};
use crate::kernel::jwt::check_fetchable;

/// Tokens that expire within this margin are not handed out from the vault: the agent would get
/// a token that dies before it can use it.
pub const EXPIRY_MARGIN_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEndpoints {
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    /// `token_endpoint_auth_methods_supported`, when the metadata names them.
    pub auth_methods: Vec<String>,
}

/// What the vault keeps for a provider and user (sealed as JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Unix seconds; `None` when the provider gave no `expires_in`.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl TokenSet {
    pub fn fresh_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|exp| exp > now + EXPIRY_MARGIN_SECS)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

impl ClientAuthMethod {
    /// The provider's configured method, else what its metadata supports (Basic preferred, as
    /// RFC 6749 requires servers to support it), else Basic.
    pub fn choose(configured: Option<&str>, supported: &[String]) -> ClientAuthMethod {
        match configured {
            Some("CLIENT_SECRET_POST") => return ClientAuthMethod::Post,
            Some("CLIENT_SECRET_BASIC") => return ClientAuthMethod::Basic,
            _ => {}
        }
        let has = |m: &str| supported.iter().any(|s| s == m);
        if supported.is_empty() || has("client_secret_basic") {
            ClientAuthMethod::Basic
        } else if has("client_secret_post") {
            ClientAuthMethod::Post
        } else {
            ClientAuthMethod::Basic
        }
    }
}

pub struct ClientCredentials<'a> {
    pub client_id: &'a str,
    pub client_secret: Option<&'a str>,
    pub method: ClientAuthMethod,
}

fn provider_error(message: String) -> Error {
    Error::new(
        ErrorKind::Validation { reason: crate::kernel::error::ValidationReason::FieldValidationFailed, fields: vec![] },
        message,
    )
}

/// The endpoints of a provider from its `oauthDiscovery`.
pub async fn endpoints(http: &reqwest::Client, discovery: &Value) -> Result<ProviderEndpoints> {
    if let Some(url) = discovery.get("discoveryUrl").and_then(Value::as_str) {
        check_fetchable(url).map_err(|e| provider_error(format!("The provider's discoveryUrl {url} {e}.")))?;
        let resp = http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| provider_error(format!("The provider's discoveryUrl {url} could not be fetched: {e}")))?;
        if !resp.status().is_success() {
            return Err(provider_error(format!(
                "The provider's discoveryUrl {url} answered HTTP {}.",
                resp.status().as_u16()
            )));
        }
        let doc: Value = resp
            .json()
            .await
            .map_err(|e| provider_error(format!("The provider's discoveryUrl {url} is not JSON: {e}")))?;
        let token = doc.get("token_endpoint").and_then(Value::as_str).ok_or_else(|| {
            provider_error(format!("The provider's discovery document at {url} has no token_endpoint."))
        })?;
        return Ok(ProviderEndpoints {
            authorization_endpoint: doc.get("authorization_endpoint").and_then(Value::as_str).map(String::from),
            token_endpoint: token.to_string(),
            auth_methods: strings(doc.get("token_endpoint_auth_methods_supported")),
        });
    }
    let m = discovery.get("authorizationServerMetadata").ok_or_else(|| {
        provider_error("The provider has neither a discoveryUrl nor authorizationServerMetadata.".into())
    })?;
    let token = m
        .get("tokenEndpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| provider_error("The provider's authorizationServerMetadata has no tokenEndpoint.".into()))?;
    Ok(ProviderEndpoints {
        authorization_endpoint: m.get("authorizationEndpoint").and_then(Value::as_str).map(String::from),
        token_endpoint: token.to_string(),
        auth_methods: strings(m.get("tokenEndpointAuthMethods")),
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// RFC 6749 §2.3.1: id and secret are form-encoded before they are joined for Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// POST to the token endpoint and read the token response (RFC 6749 §5.1), at unix time `now`.
pub async fn request_token(
    http: &reqwest::Client,
    token_endpoint: &str,
    client: &ClientCredentials<'_>,
    mut params: Vec<(String, String)>,
    now: i64,
) -> Result<TokenSet> {
    check_fetchable(token_endpoint)
        .map_err(|e| provider_error(format!("The provider's token endpoint {token_endpoint} {e}.")))?;
    let mut request = http.post(token_endpoint).header("accept", "application/json");
    match client.method {
        ClientAuthMethod::Basic => {
            let pair = format!("{}:{}", form_encode(client.client_id), form_encode(client.client_secret.unwrap_or("")));
            request = request.header("authorization", format!("Basic {}", STANDARD.encode(pair)));
        }
        ClientAuthMethod::Post => {
            params.push(("client_id".into(), client.client_id.to_string()));
            if let Some(secret) = client.client_secret {
                params.push(("client_secret".into(), secret.to_string()));
            }
        }
    }
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter()).finish();
    let resp =
        request.header("content-type", "application/x-www-form-urlencoded").body(body).send().await.map_err(|e| {
            provider_error(format!("The provider's token endpoint {token_endpoint} could not be reached: {e}"))
        })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        let error = doc.get("error").and_then(Value::as_str).unwrap_or("unknown_error");
        let description = doc.get("error_description").and_then(Value::as_str).unwrap_or("");
        tracing::info!(token_endpoint, status = status.as_u16(), body = %text, "credential provider refused a token request");
        return Err(Error::new(
            ErrorKind::AccessDenied,
            format!(
                "The credential provider's token endpoint refused the request (HTTP {}): {error} {description}",
                status.as_u16()
            )
            .trim_end()
            .to_string(),
        ));
    }
    let access_token = doc.get("access_token").and_then(Value::as_str).ok_or_else(|| {
        provider_error(format!("The credential provider's token response has no access_token: {text}"))
    })?;
    let expires_in = doc.get("expires_in").and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    Ok(TokenSet {
        access_token: access_token.to_string(),
        refresh_token: doc.get("refresh_token").and_then(Value::as_str).map(String::from),
        expires_at: expires_in.map(|s| now + s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_method_follows_configuration_then_metadata() {
        assert_eq!(ClientAuthMethod::choose(Some("CLIENT_SECRET_POST"), &[]), ClientAuthMethod::Post);
        assert_eq!(ClientAuthMethod::choose(None, &[]), ClientAuthMethod::Basic);
        assert_eq!(ClientAuthMethod::choose(None, &["client_secret_post".into()]), ClientAuthMethod::Post);
        assert_eq!(
            ClientAuthMethod::choose(None, &["client_secret_post".into(), "client_secret_basic".into()]),
            ClientAuthMethod::Basic
        );
    }

    #[test]
    fn freshness_keeps_a_margin() {
        let t = TokenSet { access_token: "a".into(), refresh_token: None, expires_at: Some(1_000) };
        assert!(t.fresh_at(1_000 - EXPIRY_MARGIN_SECS - 1));
        assert!(!t.fresh_at(1_000 - EXPIRY_MARGIN_SECS));
        assert!(TokenSet { expires_at: None, ..t }.fresh_at(i64::MAX - 100));
    }
}
