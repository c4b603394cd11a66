//! The dashboard's HTML pages, written with maud: the markup is checked when the crate compiles and
//! every spliced value is escaped unless wrapped in `PreEscaped` (used only for the constant style
//! sheet and script below). Each page is a `View`; its body is what the live-update stream
//! (`live.rs`) pushes again whenever it changes.

use std::collections::HashMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::charts::{self, phase_bar};
use super::PREFIX;
use crate::app::AppState;
use crate::sessions::report::{Report, SessionReport};

/// Events and records shown on a memory's page.
const MEMORY_PAGE_ROWS: usize = 50;
/// Rows of the dashboard's recent tables (invocations, model calls).
const RECENT_ROWS: usize = 50;
/// Rows of the dashboard's recent memory events and records (across memories).
const MEMORY_ACTIVITY_ROWS: usize = 20;
/// Lines of a session's log shown on its page.
const LOG_TAIL_LINES: usize = 200;

/// A page of the dashboard, as its URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Dashboard,
    Session { runtime: String, session: String },
    Memory { id: String },
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl View {
    /// The view of the live-update stream: `?view=session&runtime=…&session=…`, `?view=memory&id=…`,
    /// else the dashboard.
    pub fn from_query(q: &HashMap<String, String>) -> View {
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        match q.get("view").map(String::as_str) {
            Some("session") => View::Session { runtime: get("runtime"), session: get("session") },
            Some("memory") => View::Memory { id: get("id") },
            _ => View::Dashboard,
        }
    }

    /// Where the page's live updates come from.
    pub fn events_url(&self) -> String {
        match self {
            View::Dashboard => format!("{PREFIX}/events"),
            View::Session { runtime, session } => {
                format!("{PREFIX}/events?view=session&runtime={}&session={}", enc(runtime), enc(session))
            }
            View::Memory { id } => format!("{PREFIX}/events?view=memory&id={}", enc(id)),
        }
    }
}

/// The page's title and the body its live region holds.
pub async fn render(state: &AppState, view: &View) -> (String, Markup) {
    match view {
        View::Dashboard => ("agentcore-local".into(), dashboard(state).await),
        View::Session { runtime, session } => (format!("session {session}"), session_page(state, runtime, session)),
        View::Memory { id } => memory_page(state, id).await,
    }
}

/// A whole page: the body in the live region, which the script refreshes from the page's event
/// stream (server-sent events) instead of reloading the page.
pub fn document(title: &str, view: &View, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.top {
                    a.brand href={ (PREFIX) "/" } { "agentcore-local" }
                    span.status #live-status { "live updates start in a moment" }
                }
                main #live data-events=(view.events_url()) { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// Replaces the live region with each event's HTML; after the stream is refused or lost for good,
/// reloads the page a little later (which opens a new stream). The stream opens a few seconds
/// after the page has loaded, which was fresh then: a headless browser's virtual-time budget
/// (`--virtual-time-budget`, which stops while any fetch is open) can so still finish its page.
const SCRIPT: &str = r#"(function () {
  var live = document.getElementById("live"), status = document.getElementById("live-status");
  if (!live || !window.EventSource) return;
  function follow() {
    var source = new EventSource(live.getAttribute("data-events"));
    source.onopen = function () { status.textContent = "live"; status.className = "status on"; };
    source.onmessage = function (e) { live.innerHTML = e.data; };
    source.onerror = function () {
      status.textContent = "reconnecting"; status.className = "status off";
      if (source.readyState === EventSource.CLOSED) setTimeout(function () { location.reload(); }, 10000);
    };
  }
  window.addEventListener("load", function () { setTimeout(follow, 3000); });
})();"#;

const STYLE: &str = r#"
:root{--ink:#1f2430;--muted:#6b7280;--line:#e5e7eb;--card:#fff;--bg:#f4f6fa;
--created:#93c5fd;--started:#3b82f6;--ready:#f59e0b;--first:#10b981;--warm:#f97316;--cpu:#6366f1;--mem:#f59e0b}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:var(--ink);background:var(--bg)}
header.top{display:flex;justify-content:space-between;align-items:center;background:#1f2937;color:#fff;padding:.6em 1.5em}
header.top a.brand{color:#fff;text-decoration:none;font-weight:700;letter-spacing:.02em}
.status{font-size:.8em;color:#cbd5e1}.status::before{content:"";display:inline-block;width:.6em;height:.6em;border-radius:50%;background:#9ca3af;margin-right:.4em}
.status.on::before{background:#34d399;box-shadow:0 0 0 3px rgba(52,211,153,.25)}.status.off::before{background:#f87171}
main{padding:1em 1.5em 3em;max-width:1400px}
h1{font-size:1.5em;margin:.4em 0 .6em}h2{font-size:1.05em;margin:1.6em 0 .5em;color:#374151}
a{color:#2563eb}code{font-size:.85em}
table{border-collapse:separate;border-spacing:0;margin-bottom:1em;background:var(--card);border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.07);overflow:hidden}
td,th{border-bottom:1px solid var(--line);padding:.38em .7em;text-align:left;font-size:.88em;vertical-align:middle}
th{background:#eef1f6;font-weight:600;color:#374151}tr:last-child td{border-bottom:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.empty td{color:var(--muted);font-style:italic}
.ok{color:#15803d}.bad{color:#b91c1c}.muted{color:var(--muted)}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.8em;margin:.4em 0 1em}
.tile{background:var(--card);border-radius:10px;padding:.7em 1em;box-shadow:0 1px 2px rgba(0,0,0,.07);border-left:4px solid #94a3b8}
.tile b{display:block;font-size:1.7em;font-variant-numeric:tabular-nums}.tile span{color:var(--muted);font-size:.82em}
.tile.t-sessions{border-color:var(--first)}.tile.t-spares{border-color:var(--warm)}.tile.t-calls{border-color:var(--cpu)}
.tile.t-errors{border-color:#ef4444}.tile.t-memory{border-color:#a855f7}
.pill{display:inline-block;border-radius:999px;padding:.05em .6em;font-size:.8em;background:#e5e7eb;color:#374151}
.pill.healthy{background:#dcfce7;color:#166534}.pill.busy{background:#dbeafe;color:#1e40af}
.pill.starting{background:#fef3c7;color:#92400e}.pill.stopping{background:#f3f4f6;color:#4b5563}
.phases{display:flex;align-items:center;gap:.45em;min-width:230px}
.phases .kind{font-size:.72em;border-radius:999px;padding:0 .5em;background:#e5e7eb;color:#374151}
.phases .kind.warm{background:#ffedd5;color:#c2410c}.phases .kind.cold{background:#e0f2fe;color:#0369a1}
.phases .bar{display:flex;flex:1;height:12px;border-radius:6px;overflow:hidden;background:var(--line);min-width:110px}
.phases .seg{flex-basis:0;min-width:3px;color:#fff;font-size:.72em;line-height:22px;overflow:hidden;white-space:nowrap;text-align:center}
.phases .total{font-size:.78em;color:var(--muted);white-space:nowrap;font-variant-numeric:tabular-nums}
.phases.detailed{max-width:760px}.phases.detailed .bar{height:22px;border-radius:6px}
.created{background:var(--created)}.started{background:var(--started)}.ready{background:var(--ready)}
.first-response{background:var(--first)}.warm{background:var(--warm)}
.legend{list-style:none;padding:0;margin:.5em 0;display:flex;gap:1.2em;flex-wrap:wrap;font-size:.85em}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;vertical-align:-.05em}
.charts{display:flex;gap:1em;flex-wrap:wrap}
figure.chart{background:var(--card);border-radius:10px;box-shadow:0 1px 2px rgba(0,0,0,.07);padding:.7em .9em;margin:0;width:400px}
figure.chart figcaption{display:flex;justify-content:space-between;font-size:.88em;margin-bottom:.3em}
figure.chart .now{color:var(--muted)}figure.chart svg{width:100%;height:110px;display:block}
figure.chart .scale{display:flex;justify-content:space-between;font-size:.75em;color:var(--muted)}
.grid{stroke:#eef0f4;stroke-width:1;vector-effect:non-scaling-stroke}.axis{stroke:#cbd5e1;vector-effect:non-scaling-stroke}
.chart .line{fill:none;stroke-width:2;vector-effect:non-scaling-stroke;stroke-linejoin:round}
.chart.cpu .line{stroke:var(--cpu)}.chart.cpu .area{fill:rgba(99,102,241,.16)}.chart.cpu .dot{fill:var(--cpu)}
.chart.mem .line{stroke:var(--mem)}.chart.mem .area{fill:rgba(245,158,11,.2)}.chart.mem .dot{fill:var(--mem)}
svg.spark{vertical-align:middle;margin-right:.35em}svg.spark polyline{fill:none;stroke-width:1.5;vector-effect:non-scaling-stroke}
svg.spark line{stroke:#cbd5e1}svg.spark.cpu polyline{stroke:var(--cpu)}svg.spark.mem polyline{stroke:var(--mem)}
.minibar{display:inline-block;height:7px;border-radius:4px;background:#a5b4fc;margin-right:.45em;vertical-align:middle}
.minibar.bad{background:#fca5a5}
pre{background:#111827;color:#e5e7eb;padding:1em;overflow:auto;border-radius:8px;font-size:.82em}.err{color:#fca5a5}
"#;

fn ago(ms: i64) -> String {
    let secs = ((crate::kernel::clock::now_ms() - ms) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s => format!("{}h ago", s / 3600),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn session_href(runtime: &str, session: &str) -> String {
    format!("{PREFIX}/session?runtime={}&session={}", enc(runtime), enc(session))
}

fn tile(class: &str, value: impl std::fmt::Display, label: &str) -> Markup {
    html! { div.tile.(class) { b { (value) } span { (label) } } }
}

/// A bar as wide as `value` is of `max` (up to 90 px), before a figure in a table.
fn minibar(value: f64, max: f64, bad: bool) -> Markup {
    let width = if max > 0.0 { (value / max * 90.0).clamp(2.0, 90.0) } else { 2.0 };
    html! { span.minibar.bad[bad] style=(format!("width:{width:.0}px")) {} }
}

fn empty_row(columns: usize, text: &str) -> Markup {
    html! { tr.empty { td colspan=(columns) { (text) } } }
}

async fn dashboard(state: &AppState) -> Markup {
    let runtimes = state.control.overview(500).await.unwrap_or_default();
    let report = state.sessions.as_ref().map(|s| s.recorded_report(None));
    let invocations = state.observatory.latest(RECENT_ROWS);
    let memories = state.memory.overview().await.unwrap_or_default();
    let activity = state.memory.recent_activity(MEMORY_ACTIVITY_ROWS).await.unwrap_or_default();
    let calls = state.bedrock.calls().recent();
    let live = report.as_ref().map_or(0, |r| r.sessions.iter().filter(|s| s.ended_at_ms.is_none()).count());
    let errors = invocations.iter().filter(|r| r.error.is_some()).count();
    html! {
        h1 { "agentcore-local" }
        section.tiles {
            (tile("t-runtimes", runtimes.len(), "agent runtimes"))
            @if let Some(r) = &report {
                (tile("t-sessions", live, "live sessions"))
                (tile("t-spares", r.spares.len(), "warm spares"))
            }
            (tile("t-invocations", invocations.len(), "recent invocations"))
            (tile("t-errors", errors, "of them failed"))
            (tile("t-calls", calls.len(), "model calls"))
            (tile("t-memory", memories.len(), "memories"))
        }
        h2 { "Agent runtimes (" (runtimes.len()) ")" }
        table #runtimes {
            tr { th { "Name" } th { "Id" } th { "Account / Region" } th { "Status" } th { "Latest version" } th { "Endpoints (live version)" } }
            @for (view, endpoints) in &runtimes {
                @let status = view.status().as_str();
                tr {
                    td { (view.runtime.name) }
                    td { code { (view.runtime.id) } }
                    td { (view.runtime.account) " / " (view.runtime.region) }
                    td.bad[status.ends_with("FAILED")].ok[!status.ends_with("FAILED")] { (status) }
                    td { (view.version.version) }
                    td {
                        @for (i, e) in endpoints.iter().enumerate() {
                            @if i > 0 { ", " }
                            (e.name) " → " (e.live_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()))
                        }
                    }
                }
            }
            @if runtimes.is_empty() { (empty_row(6, "No agent runtimes yet.")) }
        }
        @if let Some(report) = &report {
            (sessions_table(report))
            (spares_table(report))
            h2 { "Recent invocations" }
            @let slowest = invocations.iter().map(|r| r.latency_ms).fold(0.0, f64::max);
            table #invocations {
                tr { th { "When" } th { "Operation" } th { "Runtime" } th { "Session" } th { "Status" } th { "Latency (to headers)" } }
                @for r in &invocations {
                    tr {
                        td { (ago(r.at_ms)) }
                        td { (r.operation) }
                        td { code { (r.runtime) } }
                        td { code { (r.session_id.as_deref().unwrap_or("-")) } }
                        td.bad[r.error.is_some()].ok[r.error.is_none()] {
                            (r.status) @if let Some(e) = &r.error { " " (e) }
                        }
                        td.num { (minibar(r.latency_ms, slowest, r.error.is_some())) (format!("{:.1} ms", r.latency_ms)) }
                    }
                }
                @if invocations.is_empty() { (empty_row(6, "No invocations yet.")) }
            }
        }
        h2 { "Memories (" (memories.len()) ")" }
        table #memories {
            tr { th { "Name" } th { "Id" } th { "Account / Region" } th { "Status" } th { "Strategies" } th { "Events" } th { "Records" } }
            @for m in &memories {
                @let status = m.memory.status.as_str();
                tr {
                    td { (m.memory.name) }
                    td { a href={ (PREFIX) "/memory?id=" (enc(&m.memory.id)) } { code { (m.memory.id) } } }
                    td { (m.memory.account) " / " (m.memory.region) }
                    td.bad[status == "FAILED"].ok[status != "FAILED"] { (status) }
                    td.num { (m.strategies) }
                    td.num { (m.events) }
                    td.num { (m.records) }
                }
            }
            @if memories.is_empty() { (empty_row(7, "No memories yet.")) }
        }
        @if !memories.is_empty() {
            h2 { "Recent memory events" }
            table #memory-events {
                tr { th { "When" } th { "Memory" } th { "Actor" } th { "Session" } th { "Payload" } }
                @for (memory, e) in &activity.events {
                    tr {
                        td { (ago(e.event_ts)) }
                        td { a href={ (PREFIX) "/memory?id=" (enc(&memory.id)) } { (memory.name) } }
                        td { code { (e.actor_id) } }
                        td { code { (e.session_id) } }
                        td { (e.payload.to_string().chars().take(160).collect::<String>()) }
                    }
                }
                @if activity.events.is_empty() { (empty_row(5, "No events yet.")) }
            }
            h2 { "Recent memory records" }
            table #memory-records {
                tr { th { "Created" } th { "Memory" } th { "Namespace" } th { "Content" } }
                @for (memory, r) in &activity.records {
                    tr {
                        td { (ago(r.created_at)) }
                        td { a href={ (PREFIX) "/memory?id=" (enc(&memory.id)) } { (memory.name) } }
                        td { code { (r.namespace) } }
                        td { (r.content.chars().take(200).collect::<String>()) }
                    }
                }
                @if activity.records.is_empty() { (empty_row(4, "No records yet.")) }
            }
        }
        h2 { "Model calls" }
        p { "Provider: " (state.bedrock.describe()) }
        (model_calls_table("model-calls", calls.iter().take(RECENT_ROWS)))
    }
}

fn sessions_table(report: &Report) -> Markup {
    html! {
        h2 { "Sessions" }
        table #sessions {
            tr {
                th { "Runtime" } th { "Version" } th { "Session" } th { "State" } th { "Started" } th { "Idle" }
                th { "Invocations" } th { "Start phases" } th { "CPU s" } th { "Peak MiB" } th { "Est. cost (USD)" }
            }
            @for s in &report.sessions {
                tr {
                    td { code { (s.runtime_id) } }
                    td { (s.version) }
                    td { a href=(session_href(&s.runtime_id, &s.session_id)) { code { (s.session_id) } } }
                    td {
                        span.pill.(s.state) { (s.state) }
                        @if let Some(r) = &s.ended_reason { " (" (r) ")" }
                    }
                    td { (ago(s.started_at_ms)) }
                    td.num { (format!("{:.0}s", s.idle_seconds)) }
                    td.num { (s.invocations) }
                    td { (phase_bar(&s.start_phases, false)) }
                    td.num {
                        (charts::sparkline("cpu", "CPU", "% of a vCPU", &charts::cpu_series(&s.usage_history)))
                        (format!("{:.2}", s.cpu_seconds))
                    }
                    td.num {
                        (charts::sparkline("mem", "memory", "MiB", &charts::memory_series(&s.usage_history)))
                        (format!("{:.1}", mib(s.peak_memory_bytes)))
                    }
                    td.num { (format!("{:.6}", s.estimated_cost_usd)) }
                }
            }
            @if report.sessions.is_empty() { (empty_row(11, "No sessions yet: invoke a runtime to start one.")) }
        }
    }
}

fn spares_table(report: &Report) -> Markup {
    html! {
        h2 { "Warm spares (" (report.spares.len()) ")" }
        table #spares {
            tr { th { "Runtime" } th { "Version" } th { "Ready" } th { "Memory MiB" } }
            @for s in &report.spares {
                tr {
                    td { code { (s.runtime_id) } }
                    td { (s.version) }
                    td { (ago(s.ready_at_ms)) }
                    td.num { (format!("{:.1}", mib(s.memory_bytes))) }
                }
            }
            @if report.spares.is_empty() {
                (empty_row(4, "No spare is waiting (a version gets one after its first session; --warm-pool 0 turns them off)."))
            }
        }
    }
}

fn model_calls_table<'a>(
    id: &str,
    calls: impl Iterator<Item = &'a crate::services::bedrock::calls::ModelCall>,
) -> Markup {
    let calls: Vec<_> = calls.collect();
    let slowest = calls.iter().map(|c| c.latency_ms as f64).fold(0.0, f64::max);
    html! {
        table id=(id) {
            tr {
                th { "When" } th { "Operation" } th { "Model" } th { "Provider" } th { "Session" }
                th { "Tokens in / out" } th { "Latency" } th { "Outcome" }
            }
            @for c in &calls {
                tr {
                    td { (ago(c.at_ms)) }
                    td { (c.operation) }
                    td { code { (c.model_id) } }
                    td { (c.provider) }
                    td {
                        @match &c.session {
                            Some(s) => a href=(session_href(&s.runtime_id, &s.session_id)) { code { (s.session_id) } },
                            None => code { "-" },
                        }
                    }
                    td.num { (c.input_tokens) " / " (c.output_tokens) }
                    td.num { (minibar(c.latency_ms as f64, slowest, c.error.is_some())) (c.latency_ms) " ms" }
                    td.bad[c.error.is_some()].ok[c.error.is_none()] { (c.error.as_deref().unwrap_or("ok")) }
                }
            }
            @if calls.is_empty() { (empty_row(8, "No model calls yet.")) }
        }
    }
}

fn session_page(state: &AppState, runtime: &str, session: &str) -> Markup {
    let report = state.sessions.as_ref().and_then(|s| {
        s.recorded_report(None).sessions.into_iter().find(|r| r.runtime_id == runtime && r.session_id == session)
    });
    let mut streams = Vec::new();
    let mut events = Vec::new();
    if let Some(store) = state.logs.as_ref() {
        for (scoped, info) in store.runtime_streams(runtime) {
            if info.name.ends_with(&format!("[runtime-logs]{session}")) {
                events.extend(scoped.last_events(&info.group, &info.name, LOG_TAIL_LINES));
                streams.push(info);
            }
        }
    }
    events.sort_by_key(|e| e.timestamp);
    let tail = &events[events.len().saturating_sub(LOG_TAIL_LINES)..];
    let calls: Vec<_> = state
        .bedrock
        .calls()
        .recent()
        .into_iter()
        .filter(|c| c.session.as_ref().is_some_and(|s| s.runtime_id == runtime && s.session_id == session))
        .collect();
    html! {
        p { a href={ (PREFIX) "/" } { "← agentcore-local" } }
        h1 { "Session " code { (session) } }
        p { "Runtime " code { (runtime) } }
        @match &report {
            Some(r) => (session_overview(r)),
            None => p.muted { "This session is not in the sessions report (it never started, or ended long ago)." },
        }
        @if !calls.is_empty() {
            h2 { "Model calls of this session" }
            (model_calls_table("session-model-calls", calls.iter()))
        }
        @for info in &streams {
            p { "Log group " code { (info.group) } ", stream " code { (info.name) } }
        }
        h2 { "Log tail" }
        pre #log {
            @for e in tail {
                span.err[e.stream == "stderr"] { (e.message) } "\n"
            }
        }
    }
}

fn session_overview(r: &SessionReport) -> Markup {
    let history = &r.usage_history;
    html! {
        section.tiles {
            div.tile.t-sessions { b { span.pill.(r.state) { (r.state) } } span { (r.ended_reason.as_deref().unwrap_or("state")) } }
            (tile("t-invocations", r.invocations, "invocations"))
            (tile("t-calls", format!("{:.2}", r.cpu_seconds), "CPU seconds"))
            (tile("t-spares", format!("{:.1}", mib(r.peak_memory_bytes)), "peak MiB"))
            (tile("t-runtimes", format!("{:.0}s", r.age_seconds), "lived"))
            (tile("t-memory", format!("{:.6}", r.estimated_cost_usd), "est. cost (USD)"))
        }
        h2 { "Start" }
        div #start-phases { (phase_bar(&r.start_phases, true)) }
        h2 { "CPU and memory" }
        div.charts {
            (charts::line_chart("cpu-chart", "CPU", "% of a vCPU", "cpu", &charts::cpu_series(history)))
            (charts::line_chart("memory-chart", "Memory", "MiB", "mem", &charts::memory_series(history)))
        }
    }
}

/// A memory's strategies, latest events (across actors and sessions) and latest records.
async fn memory_page(state: &AppState, id: &str) -> (String, Markup) {
    let detail = state.memory.detail(id.to_string(), MEMORY_PAGE_ROWS).await.ok().flatten();
    let title = format!("memory {}", detail.as_ref().map_or(id, |d| d.memory.name.as_str()));
    let body = html! {
        p { a href={ (PREFIX) "/" } { "← agentcore-local" } }
        h1 { "Memory " code { (id) } }
        @match &detail {
            None => p { "No such memory." },
            Some(detail) => {
                @let m = &detail.memory;
                p { (m.name) " · " (m.account) " / " (m.region) " · " (m.status.as_str()) " · events expire after " (m.event_expiry_days) " days" }
                h2 { "Strategies" }
                table #strategies {
                    tr { th { "Name" } th { "Id" } th { "Type" } th { "Namespaces" } th { "Status" } }
                    @for s in &detail.strategies {
                        tr {
                            td { (s.name) }
                            td { code { (s.id) } }
                            td { (s.kind.as_str()) }
                            td { code { (s.spec.namespaces.join(", ")) } }
                            td { (s.status.as_str()) }
                        }
                    }
                }
                h2 { "Latest events" }
                table #events {
                    tr { th { "When" } th { "Actor" } th { "Session" } th { "Branch" } th { "Event" } th { "Payload" } }
                    @for e in &detail.events {
                        tr {
                            td { (ago(e.event_ts)) }
                            td { code { (e.actor_id) } }
                            td { code { (e.session_id) } }
                            td { (e.branch.as_deref().unwrap_or("main")) }
                            td { code { (e.event_id) } }
                            td { (e.payload.to_string().chars().take(300).collect::<String>()) }
                        }
                    }
                }
                h2 { "Latest records" }
                table #records {
                    tr { th { "Created" } th { "Namespace" } th { "Strategy" } th { "Record" } th { "Content" } }
                    @for r in &detail.records {
                        tr {
                            td { (ago(r.created_at)) }
                            td { code { (r.namespace) } }
                            td { code { (r.strategy_id) } }
                            td { code { (r.id) } }
                            td { (r.content.chars().take(500).collect::<String>()) }
                        }
                    }
                }
            }
        }
    };
    (title, body)
}
