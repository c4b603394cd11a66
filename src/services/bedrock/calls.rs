//! Every model call made visible: a log line (model id, tokens in/out, latency), counters for
//! `/metrics`, the recent calls for the dashboard, and, when the caller is a session, a line in
//! that session's log.

use parking_lot::Mutex;
use std::collections::VecDeque;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Model calls remembered for the dashboard.
pub const RECENT_MODEL_CALLS: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct ModelCall {
    pub at_ms: i64,
    pub account: String,
    /// `Converse`, `ConverseStream`, `InvokeModel`, `InvokeModelWithResponseStream`.
    pub operation: &'static str,
    pub model_id: String,
    pub provider: &'static str,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// From the request to the answer's end (streams: the last event).
    pub latency_ms: u64,
    /// The AWS error code the call ended with.
    pub error: Option<String>,
    /// The runtime session that made the call, when the caller's credentials say so.
    pub session: Option<CallerSession>,
}

/// A runtime session, known by the sandbox address its request came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerSession {
    pub runtime_id: String,
    pub session_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    model: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    direction: &'static str,
}

#[derive(Default)]
pub struct ModelCalls {
    recent: Mutex<VecDeque<ModelCall>>,
    /// Calls by (model id, operation, outcome).
    calls: Family<CallLabels, Counter>,
    /// Tokens by (model id, direction).
    tokens: Family<TokenLabels, Counter>,
}

/// The line a session's log gets for a call it made.
pub fn session_log_line(call: &ModelCall) -> String {
    let outcome = call.error.as_deref().map(|e| format!(" failed: {e}")).unwrap_or_default();
    format!(
        "[agentcore-local] model call {} {}: {} tokens in, {} tokens out, {} ms{outcome}",
        call.operation, call.model_id, call.input_tokens, call.output_tokens, call.latency_ms
    )
}

impl ModelCalls {
    pub fn record(&self, call: ModelCall) {
        tracing::info!(
            operation = call.operation,
            model_id = %call.model_id,
            provider = call.provider,
            input_tokens = call.input_tokens,
            output_tokens = call.output_tokens,
            latency_ms = call.latency_ms,
            error = call.error.as_deref().unwrap_or(""),
            session = call.session.as_ref().map(|s| s.session_id.as_str()).unwrap_or(""),
            "model call"
        );
        let outcome = if call.error.is_some() { "error" } else { "success" };
        let model = call.model_id.clone();
        self.calls.get_or_create(&CallLabels { model: model.clone(), operation: call.operation, outcome }).inc();
        let tokens = |direction| TokenLabels { model: model.clone(), direction };
        self.tokens.get_or_create(&tokens("input")).inc_by(u64::from(call.input_tokens));
        self.tokens.get_or_create(&tokens("output")).inc_by(u64::from(call.output_tokens));
        let mut recent = self.recent.lock();
        recent.push_front(call);
        recent.truncate(RECENT_MODEL_CALLS);
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<ModelCall> {
        self.recent.lock().iter().cloned().collect()
    }

    /// Put the model counters into `registry` (the one `/metrics` encodes); counters are named
    /// without `_total`, which the encoder adds.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "agentcore_local_model_calls",
            "Bedrock model calls by model, operation and outcome",
            self.calls.clone(),
        );
        registry.register(
            "agentcore_local_model_tokens",
            "Tokens read (input) and written (output) by model",
            self.tokens.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(model: &str, error: Option<&str>) -> ModelCall {
        ModelCall {
            at_ms: 1,
            account: "123456789012".into(),
            operation: "Converse",
            model_id: model.into(),
            provider: "echo",
            input_tokens: 3,
            output_tokens: 2,
            latency_ms: 4,
            error: error.map(String::from),
            session: None,
        }
    }

    #[test]
    fn counts_calls_and_tokens() {
        let calls = ModelCalls::default();
        calls.record(call("m1", None));
        calls.record(call("m1", None));
        calls.record(call("m\"2", Some("ValidationException")));
        let mut registry = Registry::default();
        calls.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(text
            .contains("agentcore_local_model_calls_total{model=\"m1\",operation=\"Converse\",outcome=\"success\"} 2"));
        assert!(text.contains("model=\"m\\\"2\",operation=\"Converse\",outcome=\"error\"} 1"));
        assert!(text.contains("agentcore_local_model_tokens_total{model=\"m1\",direction=\"input\"} 6"));
        assert!(text.contains("agentcore_local_model_tokens_total{model=\"m1\",direction=\"output\"} 4"));
        assert_eq!(calls.recent()[0].model_id, "m\"2");
        assert_eq!(
            session_log_line(&calls.recent()[1]),
            "[agentcore-local] model call Converse m1: 3 tokens in, 2 tokens out, 4 ms"
        );
    }
}
