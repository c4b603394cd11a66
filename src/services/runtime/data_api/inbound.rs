//! How a caller authenticates to a runtime: SigV4, or (when the runtime has a
//! `customJWTAuthorizer`) an OAuth bearer token, never both. AgentCore refuses the other method
//! with 403 "Authorization method mismatch"; a JWT runtime called without a token answers 401
//! with `WWW-Authenticate: Bearer resource_metadata=…` (the MCP/HTTP protocol contracts'
//! "OAuth authentication responses"); a refused token is 401 `UnauthorizedException` whose
//! message says which check failed.

use http::{HeaderValue, Response};

pub use crate::app::auth::Authentication;
use crate::app::AppState;
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, ErrorKind, Result};
use crate::kernel::response::{self, Body};
use crate::services::identity::WorkloadPrincipal;
use crate::services::runtime::domain::ids::parse_runtime_arn;
use crate::services::runtime::domain::resolve::InvocationTarget;

/// The data-plane operations that accept bearer tokens on JWT-authorized runtimes.
pub const BEARER_OPERATIONS: &[&str] = &["InvokeAgentRuntime", "GetAgentCard", "InvokeAgentRuntimeCommand"];

/// The SDK's browser form of a bearer token on a WebSocket upgrade.
const WS_BEARER_PROTOCOL: &str = "base64UrlBearerAuthorization.";

/// The credentials a request carries, before any is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    SigV4,
    Bearer(String),
    None,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub fn classify(headers: &[(String, String)], raw_query: &str) -> Inbound {
    if let Some(auth) = header(headers, "authorization") {
        let auth = auth.trim();
        // `get`: a value that is not ASCII (bytes that are not UTF-8 arrive as U+FFFD) may have no
        // character boundary at 7.
        if auth.len() > 7 && auth.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer ")) {
            return Inbound::Bearer(auth[7..].trim().to_string());
        }
        return Inbound::SigV4;
    }
    if raw_query.split('&').any(|p| p.starts_with("X-Amz-Signature=") || p.starts_with("X-Amz-Credential=")) {
        return Inbound::SigV4;
    }
    // Browsers cannot set headers on a WebSocket upgrade: the SDK puts the token in a subprotocol.
    if let Some(protocols) = header(headers, "sec-websocket-protocol") {
        for p in protocols.split(',').map(str::trim) {
            if let Some(encoded) = p.strip_prefix(WS_BEARER_PROTOCOL) {
                use base64::Engine;
                if let Ok(bytes) =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('='))
                {
                    if let Ok(token) = String::from_utf8(bytes) {
                        return Inbound::Bearer(token);
                    }
                }
            }
        }
    }
    Inbound::None
}

/// The account and Region a bearer request addresses: those of the runtime ARN in its path (a
/// bearer token carries no SigV4 scope), or for a bare runtime id the `accountId` parameter and
/// the emulator's Region.
pub fn caller_of_label(state: &AppState, label: &str, account_id: Option<&str>) -> Caller {
    match parse_runtime_arn(label) {
        Some(arn) => Caller::new(arn.account, arn.region),
        None => Caller::new(
            account_id.map(String::from).unwrap_or_else(|| state.config.account_id.clone()),
            state.config.region.clone(),
        ),
    }
}

pub fn mismatch() -> Error {
    Error::new(
        ErrorKind::AccessDenied,
        "Authorization method mismatch. The agent is configured for a different authorization method than what was used in your request. (OAuth or SigV4)",
    )
}

/// SigV4 callers are refused on a JWT-authorized runtime.
pub fn check_sigv4(target: &InvocationTarget, authentication: &Authentication) -> Result<()> {
    match (authentication, &target.authorizer) {
        (Authentication::SigV4, Some(_)) => Err(mismatch()),
        (Authentication::Bearer { .. }, None) => Err(mismatch()),
        _ => Ok(()),
    }
}

/// Check a bearer token (or its absence) against the runtime's authorizer.
pub async fn authorize(state: &AppState, target: &InvocationTarget, token: Option<&str>) -> Result<Authentication> {
    let Some(authorizer) = &target.authorizer else { return Err(mismatch()) };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!(
                "Agent runtime '{}' has a customJWTAuthorizer: send Authorization: Bearer <token> from its identity provider.",
                target.runtime_id
            ),
        ));
    };
    match state.identity.verifier().verify(token, authorizer, crate::services::identity::now_secs()).await {
        Ok(verified) => Ok(Authentication::Bearer {
            user: WorkloadPrincipal::user_from_jwt(&verified.issuer, &verified.subject),
            token: token.to_string(),
        }),
        Err(e) => {
            tracing::info!(runtime = %target.runtime_id, check = e.check(), error = %e, "bearer token refused");
            Err(Error::new(ErrorKind::Unauthorized, format!("OAuth authorization failed: {e}.")))
        }
    }
}

/// Where a runtime's OAuth protected-resource metadata (RFC 9728) lives, below its invocation URL.
const METADATA_SUFFIX: &str = "/invocations/.well-known/oauth-protected-resource";

/// The RFC 9728 metadata URL a 401 points clients to.
pub fn resource_metadata_url(emulator_url: &str, target: &InvocationTarget) -> String {
    let invocations = crate::sessions::spec::invocation_url(emulator_url, &target.runtime_arn);
    format!(
        "{}/.well-known/oauth-protected-resource?qualifier={}",
        invocations.trim_end_matches('/'),
        target.endpoint_name
    )
}

/// The runtime label of `GET /runtimes/{arn}/invocations/.well-known/oauth-protected-resource`.
pub fn metadata_label(method: &http::Method, path: &str) -> Option<String> {
    if method != http::Method::GET {
        return None;
    }
    let label = path.strip_prefix("/runtimes/")?.strip_suffix(METADATA_SUFFIX)?;
    (!label.is_empty() && !label.contains('/'))
        .then(|| percent_encoding::percent_decode_str(label).decode_utf8_lossy().into_owned())
}

/// The runtime's protected-resource metadata: which authorization server issues its tokens (the
/// issuer of its authorizer's discovery document) and which scopes it accepts. Public, as the
/// document a 401 points to must be.
pub async fn protected_resource_metadata(
    state: &AppState,
    label: String,
    raw_query: &str,
    request_id: &str,
) -> Response<Body> {
    let query = crate::kernel::query::form_pairs(raw_query);
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let caller = caller_of_label(state, &label, param("accountId").as_deref());
    let target = match state.control.resolve_invocation(caller, label, param("accountId"), param("qualifier")).await {
        Ok(t) => t,
        Err(e) => return response::error(&e, request_id),
    };
    let Some(authorizer) = &target.authorizer else {
        let e =
            Error::not_found(format!("Agent runtime '{}' is not OAuth-protected (it takes SigV4).", target.runtime_id));
        return response::error(&e, request_id);
    };
    let issuer = match state.identity.verifier().issuer(&authorizer.discovery_url).await {
        Ok(i) => i,
        Err(e) => return response::error(&Error::internal(e.to_string()), request_id),
    };
    let resource = crate::sessions::spec::invocation_url(state.identity.emulator_url(), &target.runtime_arn);
    let mut body = serde_json::json!({
        "resource": resource.trim_end_matches('/'),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
    });
    if !authorizer.allowed_scopes.is_empty() {
        body["scopes_supported"] = serde_json::json!(authorizer.allowed_scopes);
    }
    response::json(200, &body, request_id)
}

/// An error response; a missing token on a JWT runtime also gets `WWW-Authenticate`.
pub fn error_response(
    err: &Error,
    missing_token_on: Option<(&str, &InvocationTarget)>,
    request_id: &str,
) -> Response<Body> {
    let mut resp = response::error(err, request_id);
    if let Some((emulator_url, target)) = missing_token_on {
        let value = format!("Bearer resource_metadata=\"{}\"", resource_metadata_url(emulator_url, target));
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert("www-authenticate", v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn classifies_the_credentials_a_request_carries() {
        assert_eq!(classify(&h(&[("Authorization", "Bearer abc.def.ghi")]), ""), Inbound::Bearer("abc.def.ghi".into()));
        assert_eq!(classify(&h(&[("authorization", "bearer x")]), ""), Inbound::Bearer("x".into()));
        assert_eq!(classify(&h(&[("Authorization", "AWS4-HMAC-SHA256 Credential=x")]), ""), Inbound::SigV4);
        assert_eq!(classify(&[], "X-Amz-Credential=a&X-Amz-Signature=b"), Inbound::SigV4);
        assert_eq!(classify(&[], ""), Inbound::None);
        let encoded = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("tok.en.x")
        };
        let proto = format!("base64UrlBearerAuthorization.{encoded}, base64UrlBearerAuthorization");
        assert_eq!(classify(&h(&[("Sec-WebSocket-Protocol", &proto)]), ""), Inbound::Bearer("tok.en.x".into()));
    }

    /// Found by the runtime_headers fuzz target: a non-ASCII Authorization value (here bytes that
    /// were not UTF-8, each now U+FFFD) has no character boundary at the scheme's length, and
    /// slicing there panicked in the request's task.
    #[test]
    fn a_non_ascii_authorization_is_not_sliced_inside_a_character() {
        assert_eq!(classify(&h(&[("Authorization", "\u{FFFD}\u{FFFD}\u{FFFD}")]), ""), Inbound::SigV4);
        assert_eq!(classify(&h(&[("Authorization", "Beare\u{e9}r tok")]), ""), Inbound::SigV4);
        assert_eq!(
            classify(&h(&[("Authorization", "Bearer \u{e9}t\u{e9} ")]), ""),
            Inbound::Bearer("\u{e9}t\u{e9}".into())
        );
    }
}
