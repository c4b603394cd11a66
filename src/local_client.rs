//! `agentcore-local sessions` and `agentcore-local logs`: clients of the emulator's own endpoints.

use std::io::{IsTerminal, Write};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

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
fn start_cost(phases: &Value) -> String {
    let ms = phases["first_response_ms"].as_f64().or_else(|| phases["agent_ready_ms"].as_f64());
    match (ms, phases["warm_spare"].as_bool() == Some(true)) {
        (Some(ms), true) => format!("warm {ms:.0} ms"),
        (Some(ms), false) => format!("{ms:.0} ms"),
        (None, _) => "-".into(),
    }
}

pub async fn sessions(endpoint: &str, json: bool) -> Result<(), String> {
    let body = get(&format!("{endpoint}/_agentcore-local/sessions")).await?;
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    if json {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(());
    }
    let report: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    println!(
        "{:<28} {:>3} {:<38} {:<30} {:>6} {:>6} {:>6} {:>8} {:>9} {:>11} {:>13}",
        "RUNTIME", "VER", "SESSION", "STATE", "AGE", "IDLE", "INVOC", "CPU s", "PEAK MiB", "EST. USD", "START"
    );
    for s in report["sessions"].as_array().into_iter().flatten() {
        let state = match s["ended_reason"].as_str() {
            Some(r) => format!("{} ({r})", s["state"].as_str().unwrap_or("")),
            None => s["state"].as_str().unwrap_or("").to_string(),
        };
        println!(
            "{:<28} {:>3} {:<38} {:<30} {:>6} {:>6} {:>6} {:>8.2} {:>9.1} {:>11.6} {:>13}",
            s["runtime_id"].as_str().unwrap_or(""),
            s["version"],
            s["session_id"].as_str().unwrap_or(""),
            state,
            human_age(s["age_seconds"].as_f64().unwrap_or(0.0)),
            human_age(s["idle_seconds"].as_f64().unwrap_or(0.0)),
            s["invocations"],
            s["cpu_seconds"].as_f64().unwrap_or(0.0),
            s["peak_memory_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            s["estimated_cost_usd"].as_f64().unwrap_or(0.0),
            start_cost(&s["start_phases"]),
        );
    }
    for spare in report["spares"].as_array().into_iter().flatten() {
        println!(
            "spare {:<28} {:>3}  ready since {}  {:.1} MiB",
            spare["runtime_id"].as_str().unwrap_or(""),
            spare["version"],
            spare["ready_at_ms"],
            spare["memory_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        );
    }
    println!();
    for t in report["totals"].as_array().into_iter().flatten() {
        println!(
            "total {:<28} sessions {:>4} (live {:>3})  invocations {:>6}  CPU {:>8.2}s  est. ${:.6}",
            t["runtime_id"].as_str().unwrap_or(""),
            t["sessions"],
            t["live"],
            t["invocations"],
            t["cpu_seconds"].as_f64().unwrap_or(0.0),
            t["estimated_cost_usd"].as_f64().unwrap_or(0.0)
        );
    }
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
