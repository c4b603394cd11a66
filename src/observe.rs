//! What happened recently, for the dashboard and `/metrics`: the last invocations with their
//! outcome and latency, counters by runtime and error type, and a cold-start histogram. The
//! counters and the histogram are `prometheus-client` metrics; `/metrics` registers them (with
//! the live sandboxes' figures) in a registry per scrape and encodes it.

use parking_lot::Mutex;
use std::collections::VecDeque;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    runtime: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SandboxLabels {
    runtime: String,
    session: String,
}

pub struct Observatory {
    recent: Mutex<VecDeque<InvocationRecord>>,
    /// Data-plane requests by (operation, runtime, outcome).
    requests: Family<RequestLabels, Counter>,
    /// Data-plane errors by AWS error code.
    errors: Family<ErrorLabels, Counter>,
    cold_starts: Histogram,
}

impl Default for Observatory {
    fn default() -> Self {
        Observatory {
            recent: Mutex::default(),
            requests: Family::default(),
            errors: Family::default(),
            cold_starts: Histogram::new(COLD_START_BUCKETS.iter().copied()),
        }
    }
}

impl Observatory {
    pub fn record(&self, r: InvocationRecord) {
        let outcome = if r.error.is_some() { "error" } else { "success" };
        self.requests
            .get_or_create(&RequestLabels { operation: r.operation.clone(), runtime: r.runtime.clone(), outcome })
            .inc();
        if let Some(code) = &r.error {
            self.errors.get_or_create(&ErrorLabels { r#type: code.clone() }).inc();
        }
        let mut recent = self.recent.lock();
        recent.push_front(r);
        recent.truncate(RECENT_INVOCATIONS);
    }

    pub fn record_cold_start(&self, seconds: f64) {
        self.cold_starts.observe(seconds);
    }

    pub fn recent(&self) -> Vec<InvocationRecord> {
        self.recent.lock().iter().cloned().collect()
    }

    /// The newest `n` invocations, newest first.
    pub fn latest(&self, n: usize) -> Vec<InvocationRecord> {
        self.recent.lock().iter().take(n).cloned().collect()
    }

    /// Put the counters, the cold-start histogram and the live sandboxes' figures given into
    /// `registry` (the one `/metrics` encodes). Counters are named without `_total`: the encoder
    /// adds it.
    pub fn register(&self, registry: &mut Registry, live: Vec<LiveSandbox>) {
        registry.register(
            "agentcore_local_requests",
            "Data-plane requests by operation, runtime and outcome",
            self.requests.clone(),
        );
        registry.register("agentcore_local_errors", "Data-plane errors by AWS error code", self.errors.clone());
        registry.register(
            "agentcore_local_cold_start_seconds",
            "Time from a new session id to a ready sandbox",
            self.cold_starts.clone(),
        );
        registry.register_collector(Box::new(LiveSandboxes(live)));
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

/// The live sandboxes of one scrape: their count, CPU time and memory, as read at that moment.
#[derive(Debug)]
struct LiveSandboxes(Vec<LiveSandbox>);

impl Collector for LiveSandboxes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sessions = ConstGauge::new(self.0.len() as i64);
        sessions.encode(encoder.encode_descriptor(
            "agentcore_local_live_sessions",
            "Sessions with a running sandbox.",
            None,
            sessions.metric_type(),
        )?)?;
        let labels = |s: &LiveSandbox| SandboxLabels { runtime: s.runtime_id.clone(), session: s.session_id.clone() };
        let mut cpu = encoder.encode_descriptor(
            "agentcore_local_sandbox_cpu_seconds",
            "CPU consumed by a session's sandbox.",
            None,
            MetricType::Counter,
        )?;
        for s in &self.0 {
            ConstCounter::new(s.cpu_seconds).encode(cpu.encode_family(&labels(s))?)?;
        }
        let mut memory = encoder.encode_descriptor(
            "agentcore_local_sandbox_memory_bytes",
            "Memory in use by a session's sandbox.",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            ConstGauge::new(s.memory_bytes).encode(memory.encode_family(&labels(s))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text::encode;

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
        let live =
            LiveSandbox { runtime_id: "a-1".into(), session_id: "s\"1".into(), cpu_seconds: 1.5, memory_bytes: 4096 };
        let mut registry = Registry::default();
        o.register(&mut registry, vec![live]);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "agentcore_local_requests_total{operation=\"InvokeAgentRuntime\",runtime=\"a-1\",outcome=\"success\"} 1"
        ));
        assert!(text.contains("agentcore_local_errors_total{type=\"RuntimeClientError\"} 1"));
        assert!(text.contains("agentcore_local_cold_start_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("agentcore_local_cold_start_seconds_bucket{le=\"0.25\"} 0"));
        assert!(text.contains("agentcore_local_cold_start_seconds_count 1"));
        assert!(text.contains("# TYPE agentcore_local_requests_total counter\n"), "{text}");
        assert!(
            text.contains("# HELP agentcore_local_cold_start_seconds Time from a new session id to a ready sandbox.\n")
        );
        assert!(text.contains("agentcore_local_live_sessions 1\n"));
        assert!(
            text.contains("agentcore_local_sandbox_cpu_seconds_total{runtime=\"a-1\",session=\"s\\\"1\"} 1.5\n"),
            "{text}"
        );
        assert!(text.contains("agentcore_local_sandbox_memory_bytes{runtime=\"a-1\",session=\"s\\\"1\"} 4096\n"));
        assert!(!text.contains("# EOF"));
        assert_eq!(o.recent().len(), 2);
    }
}
