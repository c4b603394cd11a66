//! `agentcore-local sessions` and `agentcore-local logs`: clients of the emulator's own endpoints.

use std::io::{IsTerminal, Write};

use bytes::Bytes;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::sessions::report::Report;
use crate::sessions::StartPhases;

/// The emulator to ask: `--endpoint`, else `AWS_ENDPOINT_URL`, else the default listen address.
pub fn endpoint(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_else(|| format!("http://{}", crate::config::DEFAULT_LISTEN))
        .trim_end_matches('/')
        .to_string()
}

async fn get(url: &str) -> Result<hyper::body::Incoming, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let resp = client
        .get(uri)
        .await
        .map_err(|e| format!("cannot reach agentcore-local at {url}: {e} (is it running? pass --endpoint)"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(format!("{url} answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(resp.into_body())
}

fn human_age(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// What the session's start cost until the agent first answered (or was ready), and whether a
/// warm spare served it: "412 ms", "warm 3 ms".
fn start_cost(phases: &StartPhases) -> String {
    match (phases.first_response_ms.or(phases.agent_ready_ms), phases.warm_spare) {
        (Some(ms), true) => format!("warm {ms:.0} ms"),
        (Some(ms), false) => format!("{ms:.0} ms"),
        (None, _) => "-".into(),
    }
}

/// A table as `docker ps` prints one: no borders, one line per row whatever the terminal width
/// (so it can be grepped), numbers right-aligned.
fn table(header: &[&str], right_aligned: &[usize]) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(header.iter().map(Cell::new));
    for &i in right_aligned {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1048576.0)
}

pub async fn sessions(endpoint: &str, json: bool) -> Result<(), String> {
    let body = get(&format!("{endpoint}/_agentcore-local/sessions")).await?;
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    if json {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(());
    }
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| {
        format!("{endpoint} sent a sessions report this client cannot read ({e}); is it the same version?")
    })?;
    let mut sessions = table(
        &["RUNTIME", "VER", "SESSION", "STATE", "AGE", "IDLE", "INVOC", "CPU s", "PEAK MiB", "EST. USD", "START"],
        &[1, 4, 5, 6, 7, 8, 9, 10],
    );
    for s in &report.sessions {
        let state = match &s.ended_reason {
            Some(r) => format!("{} ({r})", s.state),
            None => s.state.clone(),
        };
        sessions.add_row(vec![
            s.runtime_id.clone(),
            s.version.to_string(),
            s.session_id.clone(),
            state,
            human_age(s.age_seconds),
            human_age(s.idle_seconds),
            s.invocations.to_string(),
            format!("{:.2}", s.cpu_seconds),
            mib(s.peak_memory_bytes),
            format!("{:.6}", s.estimated_cost_usd),
            start_cost(&s.start_phases),
        ]);
    }
    println!("{sessions}");
    if !report.spares.is_empty() {
        let mut spares = table(&["READY SPARE OF", "VER", "READY FOR", "MiB"], &[1, 2, 3]);
        let now = crate::kernel::clock::now_ms();
        for spare in &report.spares {
            spares.add_row(vec![
                spare.runtime_id.clone(),
                spare.version.to_string(),
                human_age((now - spare.ready_at_ms).max(0) as f64 / 1e3),
                mib(spare.memory_bytes),
            ]);
        }
        println!("\n{spares}");
    }
    let mut totals = table(&["TOTAL FOR", "SESSIONS", "LIVE", "INVOC", "CPU s", "EST. USD"], &[1, 2, 3, 4, 5]);
    for t in &report.totals {
        totals.add_row(vec![
            t.runtime_id.clone(),
            t.sessions.to_string(),
            t.live.to_string(),
            t.invocations.to_string(),
            format!("{:.2}", t.cpu_seconds),
            format!("{:.6}", t.estimated_cost_usd),
        ]);
    }
    println!("\n{totals}");
    Ok(())
}

const COLOURS: &[&str] = &["36", "32", "35", "34", "33"];

pub async fn logs(endpoint: &str, runtime: &str, session: Option<&str>, follow: bool) -> Result<(), String> {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mut url = format!("{endpoint}/_agentcore-local/logs?runtime={}&follow={follow}", enc(runtime));
    if let Some(s) = session {
        url.push_str(&format!("&session={}", enc(s)));
    }
    let mut body = get(&url).await?;
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut sessions: Vec<String> = Vec::new();
    let mut pending = String::new();
    let mut out = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else { continue };
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(pos) = pending.find('\n') {
            let line: String = pending.drain(..=pos).collect();
            let Ok(e) = serde_json::from_str::<Value>(&line) else { continue };
            let sid = e["session"].as_str().unwrap_or("").to_string();
            let index = sessions.iter().position(|s| *s == sid).unwrap_or_else(|| {
                sessions.push(sid.clone());
                sessions.len() - 1
            });
            let short: String = sid.chars().take(12).collect();
            let message = e["message"].as_str().unwrap_or("");
            let stderr = e["stream"] == "stderr";
            let written = if colour {
                let c = COLOURS[index % COLOURS.len()];
                let m = if stderr { format!("\x1b[31m{message}\x1b[0m") } else { message.to_string() };
                writeln!(out, "\x1b[{c}m{short}\x1b[0m {m}")
            } else {
                writeln!(out, "{short} {}{message}", if stderr { "[stderr] " } else { "" })
            };
            if written.is_err() {
                return Ok(()); // stdout closed (e.g. piped into head)
            }
        }
        let _ = out.flush();
    }
    Ok(())
}
