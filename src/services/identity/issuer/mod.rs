//! The built-in OpenID Connect issuer: an identity provider inside the emulator, so that
//! JWT-authorized runtimes, USER_FEDERATION flows and their tests need no external IdP.
//!
//! It lives under `<emulator URL>/_agentcore-local/issuer` (see `endpoints.rs` for the paths):
//! discovery document, JWKS, a token endpoint (client_credentials, password, authorization_code
//! with PKCE, refresh_token) and a login page for the authorization-code flow. Tokens are ES256
//! JWTs signed with a key created on first start and kept sealed in the token vault, so tokens
//! stay valid across restarts. Clients and users come from `--issuer-client` and `--issuer-user`.
//! It is a test IdP: any `redirect_uri` is accepted and any requested scope is granted.

pub mod endpoints;
mod keys;

use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Map, Value};

pub use keys::SigningKey;

/// Path of the issuer under the emulator's URL; the issuer identifier is `<URL><ISSUER_PATH>`.
pub const ISSUER_PATH: &str = "/_agentcore-local/issuer";
/// Lifetime of access and ID tokens.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 3600;
/// Lifetime of refresh tokens.
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// Lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most ten minutes).
pub const AUTHORIZATION_CODE_TTL_SECS: i64 = 300;

pub const DEFAULT_CLIENT_ID: &str = "agentcore-local-client";
pub const DEFAULT_CLIENT_SECRET: &str = "agentcore-local-secret";
pub const DEFAULT_USER: &str = "test-user";
pub const DEFAULT_PASSWORD: &str = "test-password";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerClient {
    pub id: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerUser {
    pub name: String,
    pub password: String,
}

/// Who may ask the issuer for tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub clients: Vec<IssuerClient>,
    pub users: Vec<IssuerUser>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            clients: vec![IssuerClient { id: DEFAULT_CLIENT_ID.into(), secret: DEFAULT_CLIENT_SECRET.into() }],
            users: vec![IssuerUser { name: DEFAULT_USER.into(), password: DEFAULT_PASSWORD.into() }],
        }
    }
}

/// `ID:SECRET` (`--issuer-client`) or `NAME:PASSWORD` (`--issuer-user`).
pub fn parse_pair(value: &str, what: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!("expected {what}, got '{value}'")),
    }
}

impl IssuerConfig {
    fn client(&self, id: &str) -> Option<&IssuerClient> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Constant-time comparison: the secret check must not leak how much of a guess was right.
    fn client_authenticates(&self, id: &str, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.client(id).is_some_and(|c| bool::from(c.secret.as_bytes().ct_eq(secret.as_bytes())))
    }

    fn user_authenticates(&self, name: &str, password: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.users.iter().any(|u| u.name == name && bool::from(u.password.as_bytes().ct_eq(password.as_bytes())))
    }
}

/// What a token is issued for.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub client_id: String,
    /// The user, for password and authorization-code grants; `None` for client credentials.
    pub user: Option<String>,
    pub scope: Vec<String>,
    /// `audience` (Auth0, Keycloak) or `resource` (RFC 8707) parameters of the request.
    pub audience: Vec<String>,
    pub nonce: Option<String>,
}

/// A token response (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
}

pub struct Issuer {
    config: IssuerConfig,
    key: SigningKey,
    /// `<emulator URL>/_agentcore-local/issuer`, known once the listener is bound.
    url: OnceLock<String>,
}

impl Issuer {
    pub fn new(config: IssuerConfig, key: SigningKey) -> Self {
        Issuer { config, key, url: OnceLock::new() }
    }

    /// Called once the emulator knows its own URL (`http://127.0.0.1:<port>`).
    pub fn set_emulator_url(&self, emulator_url: &str) {
        let _ = self.url.set(format!("{}{ISSUER_PATH}", emulator_url.trim_end_matches('/')));
    }

    /// The issuer identifier (the `iss` of every token).
    pub fn url(&self) -> &str {
        self.url.get().map(String::as_str).unwrap_or(ISSUER_PATH)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}{}", self.url(), crate::kernel::jwt::OIDC_DISCOVERY_SUFFIX)
    }

    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    fn sign(&self, claims: &Map<String, Value>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key.encoding).expect("ES256 signing with a valid key")
    }

    /// Issue the tokens of a grant at unix time `now`.
    pub fn issue(&self, grant: &Grant, now: i64, with_refresh: bool) -> Tokens {
        let scope = grant.scope.join(" ");
        let mut access = Map::new();
        access.insert("iss".into(), json!(self.url()));
        access.insert("sub".into(), json!(grant.user.clone().unwrap_or_else(|| grant.client_id.clone())));
        match grant.audience.as_slice() {
            [] => {}
            [one] => {
                access.insert("aud".into(), json!(one));
            }
            many => {
                access.insert("aud".into(), json!(many));
            }
        }
        access.insert("client_id".into(), json!(grant.client_id));
        if !scope.is_empty() {
            access.insert("scope".into(), json!(scope));
        }
        if let Some(user) = &grant.user {
            access.insert("username".into(), json!(user));
        }
        access.insert("token_use".into(), json!("access"));
        access.insert("iat".into(), json!(now));
        access.insert("nbf".into(), json!(now));
        access.insert("exp".into(), json!(now + ACCESS_TOKEN_TTL_SECS));
        access.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));

        let id_token = match &grant.user {
            Some(user) if grant.scope.iter().any(|s| s == "openid") => {
                let mut id = Map::new();
                id.insert("iss".into(), json!(self.url()));
                id.insert("sub".into(), json!(user));
                id.insert("aud".into(), json!(grant.client_id));
                id.insert("iat".into(), json!(now));
                id.insert("exp".into(), json!(now + ACCESS_TOKEN_TTL_SECS));
                id.insert("token_use".into(), json!("id"));
                id.insert("preferred_username".into(), json!(user));
                if let Some(nonce) = &grant.nonce {
                    id.insert("nonce".into(), json!(nonce));
                }
                Some(self.sign(&id))
            }
            _ => None,
        };
        let refresh_token = with_refresh.then(|| {
            let mut r = Map::new();
            r.insert("iss".into(), json!(self.url()));
            r.insert("sub".into(), json!(grant.user.clone().unwrap_or_default()));
            r.insert("aud".into(), json!(self.url()));
            r.insert("client_id".into(), json!(grant.client_id));
            r.insert("scope".into(), json!(scope));
            r.insert("resource".into(), json!(grant.audience));
            r.insert("token_use".into(), json!("refresh"));
            r.insert("iat".into(), json!(now));
            r.insert("exp".into(), json!(now + REFRESH_TOKEN_TTL_SECS));
            r.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
            self.sign(&r)
        });
        Tokens { access_token: self.sign(&access), id_token, refresh_token, expires_in: ACCESS_TOKEN_TTL_SECS, scope }
    }

    /// The grant a refresh token of this issuer carries, if it is one, unexpired, for `client_id`.
    pub fn refresh_grant(&self, refresh_token: &str, client_id: &str, now: i64) -> Option<Grant> {
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&[self.url()]);
        validation.set_issuer(&[self.url()]);
        // Expiry is checked against `now` below (the caller's clock), not the system clock.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(refresh_token, &self.key.decoding, &validation).ok()?;
        let c = data.claims;
        let exp = c.get("exp").and_then(Value::as_i64)?;
        if c.get("token_use").and_then(Value::as_str) != Some("refresh")
            || c.get("client_id").and_then(Value::as_str) != Some(client_id)
            || exp < now
        {
            return None;
        }
        let user = c.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                .unwrap_or_default()
        };
        Some(Grant {
            client_id: client_id.to_string(),
            user,
            scope: c.get("scope").and_then(Value::as_str).unwrap_or("").split_whitespace().map(String::from).collect(),
            audience: strings(c.get("resource")),
            nonce: None,
        })
    }

    /// The OIDC discovery document (also served as OAuth authorization-server metadata).
    pub fn metadata(&self) -> Value {
        let base = self.url();
        json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}{}", endpoints::AUTHORIZE),
            "token_endpoint": format!("{base}{}", endpoints::TOKEN),
            "jwks_uri": format!("{base}{}", endpoints::JWKS),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "client_credentials", "password", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "client_id", "scope", "username"]
        })
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.key.public_jwk.clone()] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Issuer {
        let i = Issuer::new(IssuerConfig::default(), SigningKey::generate().unwrap());
        i.set_emulator_url("http://127.0.0.1:4599");
        i
    }

    #[test]
    fn tokens_verify_with_the_published_key() {
        let i = issuer();
        let grant = Grant {
            client_id: DEFAULT_CLIENT_ID.into(),
            user: Some("alice".into()),
            scope: vec!["openid".into(), "read".into()],
            audience: vec!["api".into()],
            nonce: Some("n1".into()),
        };
        let t = i.issue(&grant, 1_000, true);
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(i.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.set_audience(&["api"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(&t.access_token, &key, &v).unwrap().claims;
        assert_eq!(claims["iss"], "http://127.0.0.1:4599/_agentcore-local/issuer");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["client_id"], DEFAULT_CLIENT_ID);
        assert_eq!(claims["scope"], "openid read");
        assert!(t.id_token.is_some(), "openid scope with a user gives an ID token");
        let refreshed = i.refresh_grant(t.refresh_token.as_deref().unwrap(), DEFAULT_CLIENT_ID, 2_000).unwrap();
        assert_eq!(refreshed.user.as_deref(), Some("alice"));
        assert_eq!(refreshed.audience, ["api"]);
        assert!(i.refresh_grant(t.refresh_token.as_deref().unwrap(), "other-client", 2_000).is_none());
        assert!(
            i.refresh_grant(&t.access_token, DEFAULT_CLIENT_ID, 2_000).is_none(),
            "an access token is no refresh token"
        );
    }

    #[test]
    fn credentials_are_checked() {
        let c = IssuerConfig::default();
        assert!(c.client_authenticates(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET));
        assert!(!c.client_authenticates(DEFAULT_CLIENT_ID, "nope"));
        assert!(c.user_authenticates(DEFAULT_USER, DEFAULT_PASSWORD));
        assert!(!c.user_authenticates(DEFAULT_USER, "nope"));
        assert_eq!(parse_pair("a:b:c", "ID:SECRET").unwrap(), ("a".into(), "b:c".into()));
        assert!(parse_pair("a", "ID:SECRET").is_err());
    }
}
