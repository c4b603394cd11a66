//! Emulator-specific endpoints, outside every AWS path: `/metrics` (Prometheus),
//! `/_agentcore-local/sessions` and `/_agentcore-local/invocations` (JSON),
//! `/_agentcore-local/logs` (newline-delimited JSON, optionally followed), and a read-only
//! dashboard at `/_agentcore-local/` (runtimes, sessions, invocations, memories; one page per
//! session and per memory). Served to loopback clients, or to SigV4-signed requests from
//! anywhere else.

use std::collections::HashMap;
use std::fmt::Write;

use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use crate::app::AppState;
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::response::{self, Body, BoxError};

pub const PREFIX: &str = "/_agentcore-local";

/// The client's address, put on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

pub fn is_local_path(path: &str) -> bool {
    path == "/metrics" || path == PREFIX || path.starts_with(&format!("{PREFIX}/"))
}

fn text(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(response::full(body));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    resp
}

/// Text for HTML: the same escaping as the XML APIs (quotes included, so it is safe in attributes).
fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn ago(ms: i64) -> String {
    let secs = ((crate::services::runtime::domain::now_ms() - ms) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s => format!("{}h ago", s / 3600),
    }
}

fn query(raw: &str) -> HashMap<String, String> {
    crate::kernel::input::query_pairs(raw).into_iter().collect()
}

/// Serve a local endpoint. `allowed` says whether the caller may see it (loopback or signed).
pub async fn handle(
    state: &AppState,
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
            let mut body = state.observatory.prometheus(&live);
            body.push_str(&state.bedrock.calls().prometheus());
            text(200, "text/plain; version=0.0.4", body)
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
        p if p == PREFIX => dashboard(state).await,
        p if p == format!("{PREFIX}/session") => session_page(state, &q).await,
        p if p == format!("{PREFIX}/memory") => memory_page(state, &q).await,
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
    let stream =
        futures_util::StreamExt::map(crate::services::logs::tail_runtime(store, runtime, session, follow), |chunk| {
            Ok::<_, BoxError>(Frame::data(chunk))
        });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/x-ndjson"));
    resp
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:.9em}th{background:#f3f3f3}\
.ok{color:#176}.bad{color:#a21}code{font-size:.85em}pre{background:#111;color:#ddd;padding:1em;overflow:auto}.err{color:#f88}";

fn page(title: &str, body: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"3\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    );
    text(200, "text/html; charset=utf-8", html)
}

async fn dashboard(state: &AppState) -> Response<Body> {
    let mut body = String::from("<h1>agentcore-local</h1>");
    let runtimes = state.control.overview(500).await.unwrap_or_default();
    let _ = write!(
        body,
        "<h2>Agent runtimes ({})</h2><table id=\"runtimes\"><tr><th>Name</th><th>Id</th><th>Account / Region</th>\
         <th>Status</th><th>Latest version</th><th>Endpoints (live version)</th></tr>",
        runtimes.len()
    );
    for (view, endpoints) in &runtimes {
        let eps: Vec<String> = endpoints
            .iter()
            .map(|e| {
                format!("{} → {}", escape(&e.name), e.live_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()))
            })
            .collect();
        let status = view.status().as_str();
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td>{} / {}</td><td class=\"{}\">{status}</td><td>{}</td><td>{}</td></tr>",
            escape(&view.runtime.name),
            escape(&view.runtime.id),
            escape(&view.runtime.account),
            escape(&view.runtime.region),
            if status.ends_with("FAILED") { "bad" } else { "ok" },
            view.version.version,
            eps.join(", ")
        );
    }
    body.push_str("</table>");
    if let Some(sessions) = &state.sessions {
        let report = sessions.report(None).await;
        let _ = write!(
            body,
            "<h2>Sessions</h2><table id=\"sessions\"><tr><th>Runtime</th><th>Version</th><th>Session</th><th>State</th>\
             <th>Started</th><th>Idle</th><th>Invocations</th><th>CPU s</th><th>Peak MiB</th><th>Est. cost (USD)</th></tr>"
        );
        for s in &report.sessions {
            let state = match &s.ended_reason {
                Some(r) => format!("{} ({})", s.state, escape(r)),
                None => s.state.clone(),
            };
            let _ = write!(
                body,
                "<tr><td><code>{rt}</code></td><td>{}</td><td><a href=\"{PREFIX}/session?runtime={rt_q}&amp;session={sid_q}\"><code>{sid}</code></a></td>\
                 <td>{state}</td><td>{}</td><td>{:.0}s</td><td>{}</td><td>{:.2}</td><td>{:.1}</td><td>{:.6}</td></tr>",
                s.version,
                ago(s.started_at_ms),
                s.idle_seconds,
                s.invocations,
                s.cpu_seconds,
                s.peak_memory_bytes as f64 / 1048576.0,
                s.estimated_cost_usd,
                rt = escape(&s.runtime_id),
                sid = escape(&s.session_id),
                rt_q = percent_encoding::utf8_percent_encode(&s.runtime_id, percent_encoding::NON_ALPHANUMERIC),
                sid_q = percent_encoding::utf8_percent_encode(&s.session_id, percent_encoding::NON_ALPHANUMERIC),
            );
        }
        body.push_str(
            "</table><h2>Recent invocations</h2><table id=\"invocations\"><tr><th>When</th><th>Operation</th>\
                       <th>Runtime</th><th>Session</th><th>Status</th><th>Latency (to headers)</th></tr>",
        );
        for r in state.observatory.recent().iter().take(50) {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td class=\"{}\">{}{}</td><td>{:.1} ms</td></tr>",
                ago(r.at_ms),
                escape(&r.operation),
                escape(&r.runtime),
                escape(r.session_id.as_deref().unwrap_or("-")),
                if r.error.is_some() { "bad" } else { "ok" },
                r.status,
                r.error.as_ref().map(|e| format!(" {}", escape(e))).unwrap_or_default(),
                r.latency_ms
            );
        }
        body.push_str("</table>");
    }
    memories_table(state, &mut body).await;
    model_calls(state, &mut body);
    page("agentcore-local", &body)
}

/// Events and records shown on a memory's page.
const MEMORY_PAGE_ROWS: usize = 50;

async fn memories_table(state: &AppState, body: &mut String) {
    let memories = state.memory.overview().await.unwrap_or_default();
    let _ = write!(
        body,
        "<h2>Memories ({})</h2><table id=\"memories\"><tr><th>Name</th><th>Id</th><th>Account / Region</th>\
         <th>Status</th><th>Strategies</th><th>Events</th><th>Records</th></tr>",
        memories.len()
    );
    for m in &memories {
        let status = m.memory.status.as_str();
        let _ = write!(
            body,
            "<tr><td>{}</td><td><a href=\"{PREFIX}/memory?id={}\"><code>{}</code></a></td><td>{} / {}</td>\
             <td class=\"{}\">{status}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.memory.name),
            percent_encoding::utf8_percent_encode(&m.memory.id, percent_encoding::NON_ALPHANUMERIC),
            escape(&m.memory.id),
            escape(&m.memory.account),
            escape(&m.memory.region),
            if status == "FAILED" { "bad" } else { "ok" },
            m.strategies,
            m.events,
            m.records
        );
    }
    body.push_str("</table>");
}

/// The dashboard's table of recent Bedrock model calls.
fn model_calls(state: &AppState, body: &mut String) {
    let calls = state.bedrock.calls().recent();
    let _ = write!(
        body,
        "<h2>Model calls</h2><p>Provider: {}</p><table id=\"model-calls\"><tr><th>When</th><th>Operation</th><th>Model</th>\
         <th>Provider</th><th>Session</th><th>Tokens in / out</th><th>Latency</th><th>Outcome</th></tr>",
        escape(&state.bedrock.describe())
    );
    for c in calls.iter().take(50) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{} / {}</td>\
             <td>{} ms</td><td class=\"{}\">{}</td></tr>",
            ago(c.at_ms),
            c.operation,
            escape(&c.model_id),
            c.provider,
            escape(c.session.as_ref().map_or("-", |s| s.session_id.as_str())),
            c.input_tokens,
            c.output_tokens,
            c.latency_ms,
            if c.error.is_some() { "bad" } else { "ok" },
            escape(c.error.as_deref().unwrap_or("ok"))
        );
    }
    body.push_str("</table>");
}

/// A memory's strategies, latest events (across actors and sessions) and latest records.
async fn memory_page(state: &AppState, q: &HashMap<String, String>) -> Response<Body> {
    let id = q.get("id").cloned().unwrap_or_default();
    let mut body =
        format!("<p><a href=\"{PREFIX}/\">← agentcore-local</a></p><h1>Memory <code>{}</code></h1>", escape(&id));
    let Ok(Some(detail)) = state.memory.detail(id.clone(), MEMORY_PAGE_ROWS).await else {
        body.push_str("<p>No such memory.</p>");
        return page(&format!("memory {id}"), &body);
    };
    let m = &detail.memory;
    let _ = write!(
        body,
        "<p>{} · {} / {} · {} · events expire after {} days</p><h2>Strategies</h2><table id=\"strategies\">\
         <tr><th>Name</th><th>Id</th><th>Type</th><th>Namespaces</th><th>Status</th></tr>",
        escape(&m.name),
        escape(&m.account),
        escape(&m.region),
        m.status.as_str(),
        m.event_expiry_days
    );
    for s in &detail.strategies {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&s.name),
            escape(&s.id),
            s.kind.as_str(),
            escape(&s.spec.namespaces.join(", ")),
            s.status.as_str()
        );
    }
    let _ = write!(
        body,
        "</table><h2>Latest events</h2><table id=\"events\"><tr><th>When</th><th>Actor</th><th>Session</th>\
         <th>Branch</th><th>Event</th><th>Payload</th></tr>"
    );
    for e in &detail.events {
        let payload = e.payload.to_string();
        let shown: String = payload.chars().take(300).collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            ago(e.event_ts),
            escape(&e.actor_id),
            escape(&e.session_id),
            escape(e.branch.as_deref().unwrap_or("main")),
            escape(&e.event_id),
            escape(&shown)
        );
    }
    body.push_str(
        "</table><h2>Latest records</h2><table id=\"records\"><tr><th>Created</th><th>Namespace</th>\
         <th>Strategy</th><th>Record</th><th>Content</th></tr>",
    );
    for r in &detail.records {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            ago(r.created_at),
            escape(&r.namespace),
            escape(&r.strategy_id),
            escape(&r.id),
            escape(&r.content.chars().take(500).collect::<String>())
        );
    }
    body.push_str("</table>");
    page(&format!("memory {}", m.name), &body)
}

async fn session_page(state: &AppState, q: &HashMap<String, String>) -> Response<Body> {
    let (runtime, session) =
        (q.get("runtime").cloned().unwrap_or_default(), q.get("session").cloned().unwrap_or_default());
    let mut body = format!(
        "<p><a href=\"{PREFIX}/\">← agentcore-local</a></p><h1>Session <code>{}</code></h1><p>Runtime <code>{}</code></p>",
        escape(&session),
        escape(&runtime)
    );
    let mut events = Vec::new();
    if let Some(store) = state.logs.as_ref() {
        for (scoped, info) in store.runtime_streams(&runtime) {
            if info.name.ends_with(&format!("[runtime-logs]{session}")) {
                let _ = write!(
                    body,
                    "<p>Log group <code>{}</code>, stream <code>{}</code></p>",
                    escape(&info.group),
                    escape(&info.name)
                );
                events.extend(scoped.events_after(&info.group, &info.name, 0).0);
            }
        }
    }
    let tail = &events[events.len().saturating_sub(200)..];
    body.push_str("<h2>Log tail</h2><pre id=\"log\">");
    for e in tail {
        let class = if e.stream == "stderr" { " class=\"err\"" } else { "" };
        let _ = writeln!(body, "<span{class}>{}</span>", escape(&e.message));
    }
    body.push_str("</pre>");
    page(&format!("session {session}"), &body)
}
