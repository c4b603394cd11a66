//! The Identity paths a browser or an OAuth client visits without SigV4: the built-in issuer
//! (`/_agentcore-local/issuer/...`), and the USER_FEDERATION authorization URL and provider
//! callback (`/identities/oauth2/authorize`, `/identities/oauth2/callback/{id}`, as the service
//! names them). The front door hands these over before SigV4 verification.

use http::{HeaderValue, Response, StatusCode};

use super::issuer::endpoints::{self, CodeGrant, CodeStore, IssuerRequest};
use super::issuer::ISSUER_PATH;
use super::oauth2::{BrowserOutcome, AUTHORIZE_PATH, CALLBACK_PATH};
use super::{now_secs, tables, IdentityService};
use crate::kernel::response::{self, Body};

/// Does this path belong to the browser-facing Identity endpoints?
pub fn is_browser_path(method: &http::Method, path: &str) -> bool {
    path.strip_prefix(ISSUER_PATH).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        || (method == http::Method::GET && (path == AUTHORIZE_PATH || path.starts_with(CALLBACK_PATH)))
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn render(outcome: BrowserOutcome) -> Response<Body> {
    match outcome {
        BrowserOutcome::Redirect(location) => {
            let mut resp = Response::new(response::empty());
            *resp.status_mut() = StatusCode::FOUND;
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert("location", v);
            }
            resp
        }
        BrowserOutcome::Page { status, title, message } => {
            let mut resp = Response::new(response::full(format!(
                "<!doctype html><html><head><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p></body></html>",
                t = escape(&title),
                m = escape(&message)
            )));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            resp.headers_mut().insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
            resp
        }
    }
}

impl CodeStore for IdentityService {
    fn put_code<'a>(
        &'a self,
        code: &'a str,
        grant: &'a CodeGrant,
        expires_at: i64,
    ) -> endpoints::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let digest = endpoints::code_digest(code);
            let sealed = self
                .vault()
                .seal_str(&format!("issuer-code:{digest}"), &serde_json::to_string(grant).unwrap_or_default())
                .map_err(|e| e.to_string())?;
            self.store()
                .write(move |tx| tables(tx).put_code(&digest, &sealed, expires_at))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn take_code<'a>(&'a self, code: &'a str) -> endpoints::BoxFuture<'a, Option<(CodeGrant, i64)>> {
        Box::pin(async move {
            let digest = endpoints::code_digest(code);
            let d = digest.clone();
            let now = now_secs();
            let (sealed, expires_at) = self.store().write(move |tx| tables(tx).take_code(&d, now)).await.ok()??;
            let text = self.vault().open_str(&format!("issuer-code:{digest}"), &sealed).ok()?;
            Some((serde_json::from_str(&text).ok()?, expires_at))
        })
    }
}

/// Serve one browser-facing request (body already read).
pub async fn handle(
    identity: &IdentityService,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Response<Body> {
    if let Some(rest) = path.strip_prefix(ISSUER_PATH) {
        let req = IssuerRequest { method, path: rest, query, headers, body };
        return endpoints::handle(identity.issuer(), identity, req, now_secs()).await;
    }
    let params = crate::kernel::query::form_pairs(query);
    if path == AUTHORIZE_PATH {
        let Some((_, request_uri)) = params.iter().find(|(k, _)| k == "request_uri") else {
            return render(BrowserOutcome::Page {
                status: 400,
                title: "Authorization failed".into(),
                message: "The authorization URL has no request_uri.".into(),
            });
        };
        return render(identity.authorize_redirect(request_uri).await);
    }
    if let Some(callback_id) = path.strip_prefix(CALLBACK_PATH) {
        return render(identity.provider_callback(callback_id, &params).await);
    }
    render(BrowserOutcome::Page {
        status: 404,
        title: "Not found".into(),
        message: format!("Nothing is served at {path}."),
    })
}
