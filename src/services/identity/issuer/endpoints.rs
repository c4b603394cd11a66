//! The built-in issuer's HTTP endpoints, under `<emulator URL>/_agentcore-local/issuer`:
//!
//! | Path | |
//! |---|---|
//! | `GET /.well-known/openid-configuration` (and `/.well-known/oauth-authorization-server`) | metadata |
//! | `GET /jwks.json` | public keys |
//! | `POST /oauth2/token` | client_credentials, password, authorization_code (PKCE), refresh_token |
//! | `GET /oauth2/authorize`, `POST /oauth2/authorize` | login page; on success a redirect with `code` |
//!
//! Errors of the token endpoint are RFC 6749 §5.2 JSON (`invalid_client` 401, others 400).
//! These endpoints are open to any caller, like an IdP on the network: the token endpoint
//! authenticates clients and the login page users.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Grant, Issuer};
use crate::kernel::response::{self, Body};

pub const DISCOVERY: &str = "/.well-known/openid-configuration";
pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/jwks.json";
pub const TOKEN: &str = "/oauth2/token";
pub const AUTHORIZE: &str = "/oauth2/authorize";

/// One request to the issuer, with the path relative to the issuer URL.
pub struct IssuerRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Where authorization codes wait for their exchange (SQLite through the Identity service).
pub trait CodeStore: Send + Sync {
    fn put_code<'a>(
        &'a self,
        code: &'a str,
        grant: &'a CodeGrant,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), String>>;
    fn take_code<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Option<(CodeGrant, i64)>>;
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What an authorization code stands for until it is exchanged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub user: String,
    pub scope: Vec<String>,
    pub audience: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

type Params = Vec<(String, String)>;

fn form(bytes: &[u8]) -> Params {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn all(params: &Params, name: &str) -> Vec<String> {
    params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()).collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    let mut resp = Response::new(response::full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

/// RFC 6749 §5.2.
fn oauth_error(status: u16, error: &str, description: &str) -> Response<Body> {
    tracing::info!(error, description, "built-in issuer refused a token request");
    let mut resp = json_response(status, &json!({"error": error, "error_description": description}));
    if status == 401 {
        resp.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Basic realm=\"agentcore-local issuer\""));
    }
    resp
}

fn html(status: u16, body: String) -> Response<Body> {
    let mut resp = Response::new(response::full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
    resp
}

fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(response::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert("location", v);
    }
    resp
}

/// `base` with query parameters appended.
pub fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        encoded.append_pair(k, v);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", encoded.finish())
}

pub async fn handle(issuer: &Issuer, codes: &dyn CodeStore, req: IssuerRequest<'_>, now: i64) -> Response<Body> {
    match (req.method, req.path) {
        ("GET", DISCOVERY | AUTHORIZATION_SERVER_METADATA) => json_response(200, &issuer.metadata()),
        ("GET", JWKS) => json_response(200, &issuer.jwks()),
        ("POST", TOKEN) => token(issuer, codes, &req, now).await,
        ("GET", AUTHORIZE) => authorize_page(issuer, &form(req.query.as_bytes())),
        ("POST", AUTHORIZE) => authorize_submit(issuer, codes, &form(req.body), now).await,
        (_, DISCOVERY | AUTHORIZATION_SERVER_METADATA | JWKS | TOKEN | AUTHORIZE) => {
            let mut resp = json_response(405, &json!({"error": "method_not_allowed"}));
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp
        }
        _ => json_response(
            404,
            &json!({"error": "not_found", "error_description": format!("The built-in issuer has no {} endpoint.", req.path)}),
        ),
    }
}

/// Client authentication (RFC 6749 §2.3.1): HTTP Basic with form-encoded id and secret, or the
/// `client_id`/`client_secret` body parameters.
/// Why client authentication failed: RFC 6749 §5.2 `invalid_client`, with a description.
struct InvalidClient(String);

fn client_of(issuer: &Issuer, req: &IssuerRequest<'_>, params: &Params) -> Result<String, InvalidClient> {
    let from_basic = header(req.headers, "authorization").and_then(|v| {
        let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
        let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |s: &str| form(format!("x={s}").as_bytes()).pop().map(|(_, v)| v).unwrap_or_default();
        Some((unescape(id), unescape(secret)))
    });
    let (id, secret) = match from_basic {
        Some(pair) => pair,
        None => match (param(params, "client_id"), param(params, "client_secret")) {
            (Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
            _ => {
                return Err(InvalidClient(
                    "Client authentication is required (HTTP Basic or client_secret_post).".into(),
                ))
            }
        },
    };
    if !issuer.config().client_authenticates(&id, &secret) {
        return Err(InvalidClient(format!("Unknown client '{id}' or wrong client secret.")));
    }
    Ok(id)
}

fn scopes(params: &Params) -> Vec<String> {
    param(params, "scope").map(|s| s.split_whitespace().map(String::from).collect()).unwrap_or_default()
}

fn audiences(params: &Params) -> Vec<String> {
    let mut out = all(params, "audience");
    out.extend(all(params, "resource"));
    out
}

fn token_response(issuer: &Issuer, grant: &Grant, now: i64, with_refresh: bool) -> Response<Body> {
    let t = issuer.issue(grant, now, with_refresh);
    let mut body = json!({"access_token": t.access_token, "token_type": "Bearer", "expires_in": t.expires_in});
    if !t.scope.is_empty() {
        body["scope"] = json!(t.scope);
    }
    if let Some(id) = t.id_token {
        body["id_token"] = json!(id);
    }
    if let Some(r) = t.refresh_token {
        body["refresh_token"] = json!(r);
    }
    tracing::debug!(client = %grant.client_id, user = ?grant.user, "built-in issuer issued a token");
    json_response(200, &body)
}

async fn token(issuer: &Issuer, codes: &dyn CodeStore, req: &IssuerRequest<'_>, now: i64) -> Response<Body> {
    let params = form(req.body);
    let client_id = match client_of(issuer, req, &params) {
        Ok(id) => id,
        Err(InvalidClient(why)) => return oauth_error(401, "invalid_client", &why),
    };
    match param(&params, "grant_type") {
        Some("client_credentials") => {
            let grant =
                Grant { client_id, user: None, scope: scopes(&params), audience: audiences(&params), nonce: None };
            token_response(issuer, &grant, now, false)
        }
        Some("password") => {
            let (Some(user), Some(password)) = (param(&params, "username"), param(&params, "password")) else {
                return oauth_error(400, "invalid_request", "The password grant needs username and password.");
            };
            if !issuer.config().user_authenticates(user, password) {
                return oauth_error(400, "invalid_grant", "Wrong username or password.");
            }
            let grant = Grant {
                client_id,
                user: Some(user.to_string()),
                scope: scopes(&params),
                audience: audiences(&params),
                nonce: None,
            };
            token_response(issuer, &grant, now, true)
        }
        Some("authorization_code") => {
            let Some(code) = param(&params, "code") else {
                return oauth_error(400, "invalid_request", "The authorization_code grant needs code.");
            };
            let Some((grant, expires_at)) = codes.take_code(code).await else {
                return oauth_error(400, "invalid_grant", "The authorization code is unknown or was already used.");
            };
            if expires_at < now {
                return oauth_error(400, "invalid_grant", "The authorization code has expired.");
            }
            if grant.client_id != client_id {
                return oauth_error(400, "invalid_grant", "The authorization code was issued to another client.");
            }
            if param(&params, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request.");
            }
            if let Err(why) = check_pkce(&grant, param(&params, "code_verifier")) {
                return oauth_error(400, "invalid_grant", why);
            }
            let g = Grant {
                client_id,
                user: Some(grant.user),
                scope: grant.scope,
                audience: grant.audience,
                nonce: grant.nonce,
            };
            token_response(issuer, &g, now, true)
        }
        Some("refresh_token") => {
            let Some(grant) = param(&params, "refresh_token").and_then(|r| issuer.refresh_grant(r, &client_id, now))
            else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "The refresh token is invalid, expired, or not this client's.",
                );
            };
            token_response(issuer, &grant, now, true)
        }
        Some(other) => oauth_error(400, "unsupported_grant_type", &format!("grant_type '{other}' is not supported.")),
        None => oauth_error(400, "invalid_request", "grant_type is required."),
    }
}

/// RFC 7636 §4.6.
fn check_pkce(grant: &CodeGrant, verifier: Option<&str>) -> Result<(), &'static str> {
    let Some(challenge) = &grant.code_challenge else { return Ok(()) };
    let Some(verifier) = verifier else { return Err("code_verifier is required for this code (PKCE).") };
    let computed = match grant.code_challenge_method.as_deref().unwrap_or("plain") {
        "S256" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        _ => verifier.to_string(),
    };
    if &computed == challenge {
        Ok(())
    } else {
        Err("code_verifier does not match the code_challenge.")
    }
}

/// The parameters of an authorization request that the login form carries through.
const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "audience",
    "resource",
];

fn authorize_error(message: &str) -> Response<Body> {
    html(400, format!("<!doctype html><title>Authorization error</title><p>{}</p>", escape(message)))
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// Check what must hold before the user is asked anything: a known client, response_type=code, a
/// redirect URI.
fn check_request(issuer: &Issuer, params: &Params) -> Result<(), String> {
    let client = param(params, "client_id").unwrap_or_default();
    if issuer.config().client(client).is_none() {
        return Err(format!("Unknown client_id '{client}'."));
    }
    if param(params, "redirect_uri").is_none() {
        return Err("redirect_uri is required.".into());
    }
    if param(params, "response_type") != Some("code") {
        return Err("Only response_type=code is supported.".into());
    }
    Ok(())
}

fn authorize_page(issuer: &Issuer, params: &Params) -> Response<Body> {
    if let Err(why) = check_request(issuer, params) {
        return authorize_error(&why);
    }
    login_form(params, None, 200)
}

fn login_form(params: &Params, error: Option<&str>, status: u16) -> Response<Body> {
    let hidden: String = params
        .iter()
        .filter(|(k, _)| CARRIED.contains(&k.as_str()))
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let client = escape(param(params, "client_id").unwrap_or_default());
    let error = error.map(|e| format!("<p role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    html(
        status,
        format!(
            "<!doctype html><html><head><title>agentcore-local sign-in</title></head><body>\
             <h1>Sign in</h1><p>{client} asks for access (agentcore-local built-in issuer).</p>{error}\
             <form method=\"post\" action=\"authorize\">{hidden}\
             <label>User <input name=\"username\" autocomplete=\"username\"></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
             <button type=\"submit\">Sign in</button></form></body></html>"
        ),
    )
}

async fn authorize_submit(issuer: &Issuer, codes: &dyn CodeStore, params: &Params, now: i64) -> Response<Body> {
    if let Err(why) = check_request(issuer, params) {
        return authorize_error(&why);
    }
    let user = param(params, "username").unwrap_or_default();
    if !issuer.config().user_authenticates(user, param(params, "password").unwrap_or_default()) {
        return login_form(params, Some("Wrong user name or password."), 401);
    }
    let redirect_uri = param(params, "redirect_uri").unwrap_or_default().to_string();
    let grant = CodeGrant {
        client_id: param(params, "client_id").unwrap_or_default().to_string(),
        redirect_uri: redirect_uri.clone(),
        user: user.to_string(),
        scope: scopes(params),
        audience: audiences(params),
        nonce: param(params, "nonce").map(String::from),
        code_challenge: param(params, "code_challenge").map(String::from),
        code_challenge_method: param(params, "code_challenge_method").map(String::from),
    };
    let code = uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
    if let Err(e) = codes.put_code(&code, &grant, now + super::AUTHORIZATION_CODE_TTL_SECS).await {
        tracing::error!(error = %e, "could not store an authorization code");
        return authorize_error("The authorization code could not be stored; see the emulator's log.");
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = param(params, "state") {
        pairs.push(("state", state));
    }
    redirect(&with_query(&redirect_uri, &pairs))
}

/// Codes are stored by digest, so the database never holds a usable code.
pub fn code_digest(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_and_plain() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let mut g = CodeGrant {
            client_id: "c".into(),
            redirect_uri: "http://x".into(),
            user: "u".into(),
            scope: vec![],
            audience: vec![],
            nonce: None,
            // RFC 7636 appendix B.
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
        };
        assert!(check_pkce(&g, Some(verifier)).is_ok());
        assert!(check_pkce(&g, Some("wrong")).is_err());
        assert!(check_pkce(&g, None).is_err());
        g.code_challenge_method = Some("plain".into());
        g.code_challenge = Some("abc".into());
        assert!(check_pkce(&g, Some("abc")).is_ok());
        g.code_challenge = None;
        assert!(check_pkce(&g, None).is_ok());
    }

    #[test]
    fn query_building_escapes() {
        assert_eq!(with_query("http://a/cb", &[("code", "x y"), ("state", "s&t")]), "http://a/cb?code=x+y&state=s%26t");
        assert_eq!(with_query("http://a/cb?k=1", &[("code", "c")]), "http://a/cb?k=1&code=c");
    }
}
