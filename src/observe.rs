//! What happened recently, for the dashboard and `/metrics`: the last invocations with their
//! outcome and latency, counters by runtime and error type, and a cold-start histogram.

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use serde::Serialize;

/// Invocations remembered for the dashboard.
pub const RECENT_INVOCATIONS: usize = 500;
/// Cold-start histogram buckets, in seconds.
pub const COLD_START_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Clone, Serialize)]
pub struct InvocationRecord {
    pub at_ms: i64,
    pub account: String,
    pub operation: String,
    pub runtime: String,
    pub session_id: Option<String>,
    pub status: u16,
    pub error: Option<String>,
    /// Until the response headers (streams continue after).
    pub latency_ms: f64,
}

#[derive(Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Observatory {
    recent: Mutex<VecDeque<InvocationRecord>>,
    by_outcome: Mutex<BTreeMap<(String, String, String), u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    cold_starts: Mutex<Histogram>,
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

/// Prometheus label value escaping.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Observatory {
    pub fn record(&self, r: InvocationRecord) {
        let outcome = if r.error.is_some() { "error" } else { "success" };
        *lock(&self.by_outcome).entry((r.operation.clone(), r.runtime.clone(), outcome.to_string())).or_default() += 1;
        if let Some(code) = &r.error {
            *lock(&self.errors).entry(code.clone()).or_default() += 1;
        }
        let mut recent = lock(&self.recent);
        recent.push_front(r);
        recent.truncate(RECENT_INVOCATIONS);
    }

    pub fn record_cold_start(&self, seconds: f64) {
        let mut h = lock(&self.cold_starts);
        if h.buckets.is_empty() {
            h.buckets = vec![0; COLD_START_BUCKETS.len()];
        }
        for (i, le) in COLD_START_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.buckets[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    pub fn recent(&self) -> Vec<InvocationRecord> {
        lock(&self.recent).iter().cloned().collect()
    }

    /// The newest `n` invocations, newest first.
    pub fn latest(&self, n: usize) -> Vec<InvocationRecord> {
        lock(&self.recent).iter().take(n).cloned().collect()
    }

    /// The Prometheus text exposition of the counters, plus the live sandboxes' figures given.
    pub fn prometheus(&self, live: &[LiveSandbox]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP agentcore_local_requests_total Data-plane requests by operation, runtime and outcome."
        );
        let _ = writeln!(out, "# TYPE agentcore_local_requests_total counter");
        for ((op, runtime, outcome), n) in lock(&self.by_outcome).iter() {
            let _ = writeln!(
                out,
                "agentcore_local_requests_total{{operation=\"{}\",runtime=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(op),
                label(runtime)
            );
        }
        let _ = writeln!(out, "# HELP agentcore_local_errors_total Data-plane errors by AWS error code.");
        let _ = writeln!(out, "# TYPE agentcore_local_errors_total counter");
        for (code, n) in lock(&self.errors).iter() {
            let _ = writeln!(out, "agentcore_local_errors_total{{type=\"{}\"}} {n}", label(code));
        }
        let h = lock(&self.cold_starts);
        let _ =
            writeln!(out, "# HELP agentcore_local_cold_start_seconds Time from a new session id to a ready sandbox.");
        let _ = writeln!(out, "# TYPE agentcore_local_cold_start_seconds histogram");
        for (i, le) in COLD_START_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "agentcore_local_cold_start_seconds_bucket{{le=\"{le}\"}} {}",
                h.buckets.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "agentcore_local_cold_start_seconds_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "agentcore_local_cold_start_seconds_sum {}", h.sum);
        let _ = writeln!(out, "agentcore_local_cold_start_seconds_count {}", h.count);
        drop(h);
        let _ = writeln!(out, "# HELP agentcore_local_live_sessions Sessions with a running sandbox.");
        let _ = writeln!(out, "# TYPE agentcore_local_live_sessions gauge");
        let _ = writeln!(out, "agentcore_local_live_sessions {}", live.len());
        let _ = writeln!(out, "# HELP agentcore_local_sandbox_cpu_seconds_total CPU consumed by a session's sandbox.");
        let _ = writeln!(out, "# TYPE agentcore_local_sandbox_cpu_seconds_total counter");
        for s in live {
            let _ = writeln!(
                out,
                "agentcore_local_sandbox_cpu_seconds_total{{runtime=\"{}\",session=\"{}\"}} {}",
                label(&s.runtime_id),
                label(&s.session_id),
                s.cpu_seconds
            );
        }
        let _ = writeln!(out, "# HELP agentcore_local_sandbox_memory_bytes Memory in use by a session's sandbox.");
        let _ = writeln!(out, "# TYPE agentcore_local_sandbox_memory_bytes gauge");
        for s in live {
            let _ = writeln!(
                out,
                "agentcore_local_sandbox_memory_bytes{{runtime=\"{}\",session=\"{}\"}} {}",
                label(&s.runtime_id),
                label(&s.session_id),
                s.memory_bytes
            );
        }
        out
    }
}

/// One running session's resource use, as `/metrics` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSandbox {
    pub runtime_id: String,
    pub session_id: String,
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let o = Observatory::default();
        let rec = |err: Option<&str>| InvocationRecord {
            at_ms: 1,
            account: "1".into(),
            operation: "InvokeAgentRuntime".into(),
            runtime: "a-1".into(),
            session_id: None,
            status: if err.is_some() { 424 } else { 200 },
            error: err.map(String::from),
            latency_ms: 1.0,
        };
        o.record(rec(None));
        o.record(rec(Some("RuntimeClientError")));
        o.record_cold_start(0.3);
        let text = o.prometheus(&[]);
        assert!(text.contains(
            "agentcore_local_requests_total{operation=\"InvokeAgentRuntime\",runtime=\"a-1\",outcome=\"success\"} 1"
        ));
        assert!(text.contains("agentcore_local_errors_total{type=\"RuntimeClientError\"} 1"));
        assert!(text.contains("agentcore_local_cold_start_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("agentcore_local_cold_start_seconds_bucket{le=\"0.25\"} 0"));
        assert_eq!(o.recent().len(), 2);
    }
}
