//! Emulator-specific endpoints, outside every AWS path: `/metrics` (Prometheus),
//! `/_agentcore-local/sessions` and `/_agentcore-local/invocations` (JSON),
//! `/_agentcore-local/logs` (newline-delimited JSON, optionally followed), and a read-only
//! dashboard at `/_agentcore-local/` (runtimes, sessions with their start phases and CPU and
//! memory, warm spares, invocations, memories and their latest events, model calls; one page per
//! session and per memory; `pages.rs`, drawn with `charts.rs`) whose pages follow
//! `/_agentcore-local/events` (server-sent events, `live.rs`). Served to loopback clients, or to
//! SigV4-signed requests from anywhere else.

mod charts;
mod live;
mod pages;

pub use live::max_event_streams;

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use crate::app::AppState;
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::response::{self, Body, BoxError};

pub const PREFIX: &str = "/_agentcore-local";

/// The client's address and the address it connected to, put on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr {
    pub peer: std::net::SocketAddr,
    pub local: std::net::SocketAddr,
}

pub fn is_local_path(path: &str) -> bool {
    path == "/metrics" || path.strip_prefix(PREFIX).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn text(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(response::full(body));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    resp
}

fn query(raw: &str) -> HashMap<String, String> {
    crate::kernel::query::form_pairs(raw).into_iter().collect()
}

/// Serve a local endpoint. `allowed` says whether the caller may see it (loopback or signed).
pub async fn handle(
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    raw_query: &str,
    allowed: bool,
    request_id: &str,
) -> Response<Body> {
    if !allowed {
        let e = Error::new(
            ErrorKind::AccessDenied,
            "agentcore-local's own endpoints answer loopback clients, or requests signed with SigV4 by a configured credential.",
        );
        return response::error(&e, request_id);
    }
    if method != "GET" {
        return response::error(
            &Error::new(ErrorKind::UnknownOperation, format!("{path} answers GET only.")),
            request_id,
        );
    }
    let q = query(raw_query);
    match path.trim_end_matches('/') {
        "/metrics" => {
            let live: Vec<crate::observe::LiveSandbox> = match &state.sessions {
                Some(s) => s
                    .report(None)
                    .await
                    .sessions
                    .into_iter()
                    .filter(|r| r.ended_at_ms.is_none())
                    .map(|r| crate::observe::LiveSandbox {
                        runtime_id: r.runtime_id,
                        session_id: r.session_id,
                        cpu_seconds: r.cpu_seconds,
                        memory_bytes: r.memory_bytes,
                    })
                    .collect(),
                None => Vec::new(),
            };
            // A registry per scrape: the long-lived counters, and the live sandboxes as read now.
            let mut registry = prometheus_client::registry::Registry::default();
            state.observatory.register(&mut registry, live);
            state.bedrock.calls().register(&mut registry);
            let mut body = String::new();
            if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut body, &registry) {
                return response::error(&Error::internal(format!("cannot encode the metrics: {e}")), request_id);
            }
            text(200, prometheus_client::encoding::prometheus_text::CONTENT_TYPE, body)
        }
        p if p == format!("{PREFIX}/sessions") => match &state.sessions {
            Some(s) => response::json(
                200,
                &serde_json::to_value(s.report(q.get("account").map(String::as_str)).await).unwrap_or_default(),
                request_id,
            ),
            None => response::json(200, &json!({"sessions": [], "totals": []}), request_id),
        },
        p if p == format!("{PREFIX}/invocations") => {
            let recent = state.observatory.recent();
            response::json(200, &json!({ "invocations": recent }), request_id)
        }
        p if p == format!("{PREFIX}/model-calls") => {
            response::json(200, &json!({ "modelCalls": state.bedrock.calls().recent() }), request_id)
        }
        p if p == format!("{PREFIX}/logs") => logs(state, &q),
        p if p == format!("{PREFIX}/events") => live::events(state, &q, request_id),
        p if p == PREFIX => page(state, pages::View::Dashboard).await,
        p if p == format!("{PREFIX}/session") => {
            let get = |k: &str| q.get(k).cloned().unwrap_or_default();
            page(state, pages::View::Session { runtime: get("runtime"), session: get("session") }).await
        }
        p if p == format!("{PREFIX}/memory") => {
            page(state, pages::View::Memory { id: q.get("id").cloned().unwrap_or_default() }).await
        }
        _ => response::error(&Error::not_found(format!("No agentcore-local page at {path}.")), request_id),
    }
}

/// Newline-delimited JSON events of a runtime's sessions (all, or `session`), ordered by time;
/// with `follow=true` the response stays open and new lines are sent as the agent writes them.
fn logs(state: &AppState, q: &HashMap<String, String>) -> Response<Body> {
    let Some(store) = state.logs.clone() else {
        return text(404, "text/plain", "no agent logs are kept (--sandbox none)\n".into());
    };
    let Some(runtime) = q.get("runtime").cloned() else {
        return text(400, "text/plain", "pass ?runtime=<agent runtime id>\n".into());
    };
    let session = q.get("session").cloned();
    let follow = q.get("follow").is_some_and(|v| v == "true" || v == "1");
    // A followed tail ends when the server stops, so `agentcore-local logs -f` exits with it
    // instead of holding a connection the graceful shutdown waits for.
    let tail = futures_util::StreamExt::take_until(
        crate::services::logs::tail_runtime(store, runtime, session, follow),
        Box::pin(state.stopping.clone().cancelled_owned()),
    );
    let stream = futures_util::StreamExt::map(tail, |chunk| Ok::<_, BoxError>(Frame::data(chunk)));
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/x-ndjson"));
    resp
}

/// A dashboard page, whole (its body is refreshed from `/events` afterwards).
async fn page(state: &AppState, view: pages::View) -> Response<Body> {
    let (title, body) = pages::render(state, &view).await;
    let mut resp = text(200, "text/html; charset=utf-8", pages::document(&title, &view, body).into_string());
    resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}
