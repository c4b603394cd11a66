//! InvokeModel's answer in the Anthropic messages format, and InvokeModelWithResponseStream's
//! `chunk` events: each carries one Anthropic stream event (`message_start`,
//! `content_block_start`/`delta`/`stop`, `message_delta`, `message_stop`) as base64 JSON in
//! `bytes`; the last one adds Bedrock's `amazon-bedrock-invocationMetrics`.

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::services::bedrock::api::eventstream;
use crate::services::bedrock::reply::{BlockEvent, BlockKind, Reply, ReplyBlock, StopReason, Usage};

/// The Anthropic model name Bedrock reports for a model id:
/// `us.anthropic.claude-3-5-haiku-20241022-v1:0` → `claude-3-5-haiku-20241022`.
pub fn model_name(model_id: &str) -> String {
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    let id = id.split_once("anthropic.").map_or(id, |(_, rest)| rest);
    let id = id.split(':').next().unwrap_or(id);
    match id.rsplit_once("-v") {
        Some((name, version)) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => name.into(),
        _ => id.into(),
    }
}

/// Bedrock's message ids: `msg_bdrk_` and 24 random characters.
pub fn message_id() -> String {
    format!("msg_bdrk_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

pub fn response(reply: &Reply, model_id: &str, id: &str) -> Value {
    let content: Vec<Value> = reply
        .blocks
        .iter()
        .map(|b| match b {
            ReplyBlock::Text(t) => json!({"type": "text", "text": t}),
            ReplyBlock::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        })
        .collect();
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model_name(model_id),
        "content": content,
        "stop_reason": reply.stop_reason.anthropic(),
        "stop_sequence": null,
        "usage": {"input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens},
    })
}

/// One `chunk` event carrying `event`.
pub fn chunk(event: &Value) -> Bytes {
    let encoded = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    eventstream::event("chunk", &json!({ "bytes": encoded }))
}

/// The stream's first event; `input_tokens` is the local count (a provider's own count, if it has
/// one, arrives only with the end of its answer).
pub fn message_start(model_id: &str, id: &str, input_tokens: u32) -> Value {
    json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model_name(model_id), "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }})
}

/// Timings reported with `message_stop`.
pub struct Timings {
    pub latency_ms: u64,
    pub first_byte_ms: u64,
}

/// The Anthropic stream events of one block event.
pub fn events(event: &BlockEvent, timings: impl FnOnce() -> Timings) -> Vec<Value> {
    match event {
        BlockEvent::Start { index, kind } => {
            let block = match kind {
                BlockKind::Text => json!({"type": "text", "text": ""}),
                BlockKind::ToolUse { id, name } => json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            };
            vec![json!({"type": "content_block_start", "index": index, "content_block": block})]
        }
        BlockEvent::Text { index, text } => {
            vec![json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})]
        }
        BlockEvent::ToolInput { index, json } => vec![json!({
            "type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": json}
        })],
        BlockEvent::Stop { index } => vec![json!({"type": "content_block_stop", "index": index})],
        BlockEvent::Finish { stop_reason, usage } => finish(*stop_reason, *usage, timings()),
    }
}

fn finish(stop_reason: StopReason, usage: Usage, t: Timings) -> Vec<Value> {
    vec![
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason.anthropic(), "stop_sequence": null},
               "usage": {"output_tokens": usage.output_tokens}}),
        json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": usage.input_tokens, "outputTokenCount": usage.output_tokens,
            "invocationLatency": t.latency_ms, "firstByteLatency": t.first_byte_ms,
        }}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::bedrock::reply::{Delta, Tracker};

    #[test]
    fn model_names() {
        assert_eq!(model_name("anthropic.claude-3-haiku-20240307-v1:0"), "claude-3-haiku-20240307");
        assert_eq!(model_name("us.anthropic.claude-sonnet-4-20250514-v1:0"), "claude-sonnet-4-20250514");
        assert_eq!(model_name("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2"), "claude");
        assert_eq!(model_name("my-local-model"), "my-local-model");
    }

    #[test]
    fn chunks_carry_anthropic_events_in_base64() {
        let mut tracker = Tracker::new(2);
        let mut all = Vec::new();
        for d in [Delta::Text("hi".into()), Delta::Finish { stop_reason: StopReason::EndTurn, usage: None }] {
            for e in tracker.push(d) {
                all.extend(events(&e, || Timings { latency_ms: 5, first_byte_ms: 1 }));
            }
        }
        let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
        );
        assert_eq!(all[4]["amazon-bedrock-invocationMetrics"]["outputTokenCount"], 1);
        let decoded = eventstream::decode_all(chunk(&all[1]));
        let b64 = decoded[0].1["bytes"].as_str().unwrap();
        let inner: Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(inner, all[1]);
        assert_eq!(decoded[0].0, "chunk");
    }
}
