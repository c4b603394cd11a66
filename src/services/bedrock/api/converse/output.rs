//! Converse's answer (ConverseResponse JSON) and ConverseStream's events.
//!
//! The stream follows Bedrock's order: `messageStart`, then per content block an optional
//! `contentBlockStart` (tool calls only, as Bedrock sends none for text), `contentBlockDelta`s and
//! `contentBlockStop`, then `messageStop` with the stop reason and `metadata` with usage and
//! latency: the events Strands, langchain-aws and botocore's own parser read.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::services::bedrock::api::eventstream;
use crate::services::bedrock::reply::{BlockEvent, BlockKind, Reply, ReplyBlock, Usage};

pub fn usage(u: Usage) -> Value {
    json!({
        "inputTokens": u.input_tokens,
        "outputTokens": u.output_tokens,
        "totalTokens": u.input_tokens + u.output_tokens,
    })
}

pub fn response(reply: &Reply, latency_ms: u64) -> Value {
    let content: Vec<Value> = reply
        .blocks
        .iter()
        .map(|b| match b {
            ReplyBlock::Text(t) => json!({"text": t}),
            ReplyBlock::ToolUse { id, name, input } => {
                json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
            }
        })
        .collect();
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": reply.stop_reason.converse(),
        "usage": usage(reply.usage),
        "metrics": {"latencyMs": latency_ms},
    })
}

pub fn message_start() -> Bytes {
    eventstream::event("messageStart", &json!({"role": "assistant"}))
}

/// The frames of one block event; `latency_ms` is reported with the final metadata.
pub fn frames(event: &BlockEvent, latency_ms: impl FnOnce() -> u64) -> Vec<Bytes> {
    match event {
        BlockEvent::Start { kind: BlockKind::Text, .. } => vec![],
        BlockEvent::Start { index, kind: BlockKind::ToolUse { id, name } } => vec![eventstream::event(
            "contentBlockStart",
            &json!({"start": {"toolUse": {"toolUseId": id, "name": name}}, "contentBlockIndex": index}),
        )],
        BlockEvent::Text { index, text } => {
            vec![eventstream::event("contentBlockDelta", &json!({"delta": {"text": text}, "contentBlockIndex": index}))]
        }
        BlockEvent::ToolInput { index, json } => vec![eventstream::event(
            "contentBlockDelta",
            &json!({"delta": {"toolUse": {"input": json}}, "contentBlockIndex": index}),
        )],
        BlockEvent::Stop { index } => {
            vec![eventstream::event("contentBlockStop", &json!({"contentBlockIndex": index}))]
        }
        BlockEvent::Finish { stop_reason, usage: u } => vec![
            eventstream::event("messageStop", &json!({"stopReason": stop_reason.converse()})),
            eventstream::event("metadata", &json!({"usage": usage(*u), "metrics": {"latencyMs": latency_ms()}})),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::bedrock::reply::{Delta, StopReason, Tracker};

    #[test]
    fn a_tool_call_streams_as_bedrock_streams_it() {
        let mut tracker = Tracker::new(4);
        let mut bytes = message_start().to_vec();
        for d in [
            Delta::Text("Checking.".into()),
            Delta::ToolUseStart { id: "tooluse_1".into(), name: "weather".into() },
            Delta::ToolUseInput("{\"city\":".into()),
            Delta::ToolUseInput("\"Oslo\"}".into()),
            Delta::Finish { stop_reason: StopReason::ToolUse, usage: None },
        ] {
            for e in tracker.push(d) {
                for f in frames(&e, || 12) {
                    bytes.extend_from_slice(&f);
                }
            }
        }
        let events = eventstream::decode_all(Bytes::from(bytes));
        let expected = vec![
            ("messageStart", json!({"role": "assistant"})),
            ("contentBlockDelta", json!({"delta": {"text": "Checking."}, "contentBlockIndex": 0})),
            ("contentBlockStop", json!({"contentBlockIndex": 0})),
            (
                "contentBlockStart",
                json!({"start": {"toolUse": {"toolUseId": "tooluse_1", "name": "weather"}}, "contentBlockIndex": 1}),
            ),
            ("contentBlockDelta", json!({"delta": {"toolUse": {"input": "{\"city\":"}}, "contentBlockIndex": 1})),
            ("contentBlockDelta", json!({"delta": {"toolUse": {"input": "\"Oslo\"}"}}, "contentBlockIndex": 1})),
            ("contentBlockStop", json!({"contentBlockIndex": 1})),
            ("messageStop", json!({"stopReason": "tool_use"})),
            (
                "metadata",
                json!({"usage": {"inputTokens": 4, "outputTokens": 4, "totalTokens": 8}, "metrics": {"latencyMs": 12}}),
            ),
        ];
        let expected: Vec<(String, Value)> = expected.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(events, expected);
    }

    #[test]
    fn whole_response_shape() {
        let reply = Reply {
            blocks: vec![ReplyBlock::Text("hi".into())],
            stop_reason: StopReason::EndTurn,
            usage: Usage { input_tokens: 1, output_tokens: 1 },
        };
        assert_eq!(
            response(&reply, 3),
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, "stopReason": "end_turn",
                   "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 3}})
        );
    }
}
