//! An OpenAI chat-completions answer as deltas: a whole completion, or the chunks of a
//! server-sent-events stream.
//!
//! `finish_reason` maps to a stop reason (`tool_calls` → tool_use, `length` → max_tokens,
//! `content_filter` → content_filtered, anything else → end_turn), except that an answer with tool
//! calls always stops with tool_use: agents run tools only on that stop reason, and some servers
//! report `stop` there.

use serde_json::Value;

use crate::services::bedrock::providers::local::tool_use_id;
use crate::services::bedrock::reply::{Delta, ModelFailure, StopReason, Usage};

fn stop_reason(finish_reason: &str) -> StopReason {
    match finish_reason {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::ContentFiltered,
        _ => StopReason::EndTurn,
    }
}

fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        input_tokens: u.get("prompt_tokens")?.as_u64()? as u32,
        output_tokens: u.get("completion_tokens")?.as_u64()? as u32,
    })
}

/// An error object in a 200 answer or in a stream (several servers report failures that way).
pub fn error_message(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    Some(e.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| e.to_string()))
}

/// A non-streamed completion (`choices[0].message`).
pub fn completion(v: &Value) -> Result<Vec<Delta>, ModelFailure> {
    if let Some(m) = error_message(v) {
        return Err(ModelFailure::Upstream { status: 200, message: m });
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| ModelFailure::Interrupted("The model server's answer has no choices.".into()))?;
    let message = &choice["message"];
    let mut out = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str) {
        out.push(Delta::Text(text.to_string()));
    }
    let calls = message.get("tool_calls").and_then(Value::as_array).cloned().unwrap_or_default();
    for call in &calls {
        let id = call.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(tool_use_id);
        let name = call["function"]["name"].as_str().unwrap_or_default().to_string();
        out.push(Delta::ToolUseStart { id, name });
        if let Some(args) = call["function"]["arguments"].as_str() {
            out.push(Delta::ToolUseInput(args.to_string()));
        }
    }
    let reported = choice.get("finish_reason").and_then(Value::as_str).map_or(StopReason::EndTurn, stop_reason);
    let stop_reason = if calls.is_empty() { reported } else { StopReason::ToolUse };
    out.push(Delta::Finish { stop_reason, usage: usage(v) });
    Ok(out)
}

/// Splits a byte stream into server-sent events and returns each event's `data`.
#[derive(Default)]
pub struct SseReader {
    buf: Vec<u8>,
}

impl SseReader {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        // Events end at a blank line; servers use \n\n or \r\n\r\n.
        while let Some((at, sep_len)) = [&b"\r\n\r\n"[..], &b"\n\n"[..]]
            .iter()
            .filter_map(|sep| self.buf.windows(sep.len()).position(|w| w == *sep).map(|i| (i, sep.len())))
            .min()
        {
            let event: Vec<u8> = self.buf.drain(..at + sep_len).take(at).collect();
            let event = String::from_utf8_lossy(&event);
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

/// Turns stream chunks into deltas, one tool call at a time (servers send them in order).
#[derive(Default)]
pub struct ChunkDecoder {
    /// `index` of the tool call being streamed.
    tool_index: Option<u64>,
    saw_tool_call: bool,
    finish_reason: Option<StopReason>,
    usage: Option<Usage>,
}

impl ChunkDecoder {
    pub fn chunk(&mut self, v: &Value) -> Result<Vec<Delta>, ModelFailure> {
        if let Some(m) = error_message(v) {
            return Err(ModelFailure::Interrupted(format!("The model server reported an error mid-answer: {m}")));
        }
        if let Some(u) = usage(v) {
            self.usage = Some(u);
        }
        let mut out = Vec::new();
        let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
            return Ok(out); // the usage-only chunk at the end
        };
        let delta = &choice["delta"];
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            out.push(Delta::Text(text.to_string()));
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let function = &call["function"];
            if self.tool_index != Some(index) {
                self.tool_index = Some(index);
                self.saw_tool_call = true;
                let id = call.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(tool_use_id);
                let name = function["name"].as_str().unwrap_or_default().to_string();
                out.push(Delta::ToolUseStart { id, name });
            }
            if let Some(args) = function.get("arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                out.push(Delta::ToolUseInput(args.to_string()));
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(stop_reason(reason));
        }
        Ok(out)
    }

    /// The final delta once the stream is over; `done` says `[DONE]` arrived. A stream that just
    /// stops, without `[DONE]` or a finish reason, broke off.
    pub fn finish(&self, done: bool) -> Result<Delta, ModelFailure> {
        let reported = match (self.finish_reason, done) {
            (Some(r), _) => r,
            (None, true) => StopReason::EndTurn,
            (None, false) => {
                return Err(ModelFailure::Interrupted(
                    "The model server's stream ended before the answer finished.".into(),
                ))
            }
        };
        let stop_reason = if self.saw_tool_call { StopReason::ToolUse } else { reported };
        Ok(Delta::Finish { stop_reason, usage: self.usage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_completion_with_a_tool_call() {
        let v = json!({
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        });
        assert_eq!(
            completion(&v).unwrap(),
            vec![
                Delta::ToolUseStart { id: "call_1".into(), name: "weather".into() },
                Delta::ToolUseInput("{\"city\":\"Oslo\"}".into()),
                Delta::Finish {
                    stop_reason: StopReason::ToolUse,
                    usage: Some(Usage { input_tokens: 12, output_tokens: 5 })
                },
            ]
        );
        let err = completion(&json!({"error": {"message": "model not found"}})).unwrap_err();
        assert_eq!(err, ModelFailure::Upstream { status: 200, message: "model not found".into() });
    }

    #[test]
    fn sse_events_split_across_reads() {
        let mut r = SseReader::default();
        assert!(r.push(b"data: {\"a\":").is_empty());
        assert_eq!(r.push(b"1}\n\n: comment\n\ndata: [DONE]\r\n\r\n"), vec!["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn streamed_text_and_tool_calls() {
        let mut d = ChunkDecoder::default();
        let mut out = Vec::new();
        for chunk in [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
        ] {
            out.extend(d.chunk(&chunk).unwrap());
        }
        out.push(d.finish(true).unwrap());
        assert_eq!(
            out,
            vec![
                Delta::Text("Hi".into()),
                Delta::ToolUseStart { id: "call_a".into(), name: "f".into() },
                Delta::ToolUseInput("{\"x\":".into()),
                Delta::ToolUseInput("1}".into()),
                Delta::ToolUseStart { id: "call_b".into(), name: "g".into() },
                Delta::ToolUseInput("{}".into()),
                Delta::Finish {
                    stop_reason: StopReason::ToolUse,
                    usage: Some(Usage { input_tokens: 3, output_tokens: 4 })
                },
            ]
        );
    }

    #[test]
    fn a_stream_that_stops_early_is_interrupted() {
        let mut d = ChunkDecoder::default();
        d.chunk(&json!({"choices": [{"delta": {"content": "par"}}]})).unwrap();
        assert!(matches!(d.finish(false), Err(ModelFailure::Interrupted(_))));
        assert_eq!(d.finish(true).unwrap(), Delta::Finish { stop_reason: StopReason::EndTurn, usage: None });
        d.chunk(&json!({"choices": [{"delta": {}, "finish_reason": "length"}]})).unwrap();
        assert_eq!(d.finish(false).unwrap(), Delta::Finish { stop_reason: StopReason::MaxTokens, usage: None });
        assert!(d.chunk(&json!({"error": {"message": "oom"}})).is_err());
    }
}
