//! What a provider answers, and how the answer becomes content blocks.
//!
//! Every provider streams `Delta`s (the shape an OpenAI-compatible server streams in). A `Tracker`
//! numbers them into content blocks with explicit starts and stops, the shape both Bedrock wires
//! stream (ConverseStream events, Anthropic chunks); a `Collector` gathers the same events into the
//! whole reply that Converse and InvokeModel return. So one answer looks the same on every wire,
//! streamed or not.

use futures_util::stream::BoxStream;
use serde_json::Value;

use super::tokens;

/// One step of a model's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// More text (opens a text block unless one is open).
    Text(String),
    /// A tool call begins (closes any open block).
    ToolUseStart { id: String, name: String },
    /// A fragment of the open tool call's input, as JSON text.
    ToolUseInput(String),
    /// The answer is complete. `usage` is `None` when the provider does not count tokens.
    Finish { stop_reason: StopReason, usage: Option<Usage> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    ContentFiltered,
}

impl StopReason {
    /// Converse's `stopReason`.
    pub fn converse(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::ContentFiltered => "content_filtered",
        }
    }

    /// The Anthropic messages API's `stop_reason`.
    pub fn anthropic(self) -> &'static str {
        match self {
            StopReason::ContentFiltered => "refusal",
            other => other.converse(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// Why a model call failed; the wire turns each into the error Bedrock raises for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFailure {
    /// The request cannot be answered as asked (e.g. no script rule matches): ValidationException.
    Invalid(String),
    /// The model server answered with an error status: ModelErrorException.
    Upstream { status: u16, message: String },
    /// The model server could not be reached: ServiceUnavailableException.
    Unreachable(String),
    /// The model server did not answer in time: ModelTimeoutException.
    TimedOut(String),
    /// The answer broke off after it started: ModelStreamErrorException.
    Interrupted(String),
}

impl ModelFailure {
    pub fn message(&self) -> &str {
        match self {
            ModelFailure::Invalid(m)
            | ModelFailure::Unreachable(m)
            | ModelFailure::TimedOut(m)
            | ModelFailure::Interrupted(m)
            | ModelFailure::Upstream { message: m, .. } => m,
        }
    }
}

pub type DeltaStream = BoxStream<'static, Result<Delta, ModelFailure>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    ToolUse { id: String, name: String },
}

/// The answer as numbered content blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockEvent {
    Start { index: u32, kind: BlockKind },
    Text { index: u32, text: String },
    ToolInput { index: u32, json: String },
    Stop { index: u32 },
    Finish { stop_reason: StopReason, usage: Usage },
}

/// Numbers deltas into blocks; counts tokens for providers that do not.
pub struct Tracker {
    /// The open block: its index and whether it is text.
    open: Option<(u32, bool)>,
    next_index: u32,
    input_tokens: u32,
    output_tokens: u32,
}

impl Tracker {
    /// `input_tokens`: the count to report if the provider reports none.
    pub fn new(input_tokens: u32) -> Tracker {
        Tracker { open: None, next_index: 0, input_tokens, output_tokens: 0 }
    }

    fn close(&mut self, out: &mut Vec<BlockEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(BlockEvent::Stop { index });
        }
    }

    fn open(&mut self, kind: BlockKind, out: &mut Vec<BlockEvent>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind == BlockKind::Text));
        out.push(BlockEvent::Start { index, kind });
        index
    }

    pub fn push(&mut self, delta: Delta) -> Vec<BlockEvent> {
        let mut out = Vec::new();
        match delta {
            Delta::Text(text) if text.is_empty() => {}
            Delta::Text(text) => {
                self.output_tokens += tokens::count(&text);
                let index = match self.open {
                    Some((index, true)) => index,
                    _ => self.open(BlockKind::Text, &mut out),
                };
                out.push(BlockEvent::Text { index, text });
            }
            Delta::ToolUseStart { id, name } => {
                self.output_tokens += tokens::count(&name);
                self.open(BlockKind::ToolUse { id, name }, &mut out);
            }
            Delta::ToolUseInput(json) => {
                self.output_tokens += tokens::count(&json);
                // A fragment with no tool call open has nowhere to go; providers never send one.
                if let Some((index, false)) = self.open {
                    out.push(BlockEvent::ToolInput { index, json });
                }
            }
            Delta::Finish { stop_reason, usage } => {
                self.close(&mut out);
                let usage =
                    usage.unwrap_or(Usage { input_tokens: self.input_tokens, output_tokens: self.output_tokens });
                out.push(BlockEvent::Finish { stop_reason, usage });
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBlock {
    Text(String),
    ToolUse { id: String, name: String, input: Value },
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub blocks: Vec<ReplyBlock>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

/// Gathers block events into a `Reply`.
#[derive(Default)]
pub struct Collector {
    blocks: Vec<ReplyBlock>,
    tool_json: String,
    finish: Option<(StopReason, Usage)>,
}

/// A tool call's input: the JSON the model produced (`{}` when it produced none); text that is not
/// JSON is kept as a JSON string rather than dropped.
pub fn tool_input(json: &str) -> Value {
    if json.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_string()))
}

impl Collector {
    pub fn push(&mut self, event: BlockEvent) {
        match event {
            BlockEvent::Start { kind: BlockKind::Text, .. } => self.blocks.push(ReplyBlock::Text(String::new())),
            BlockEvent::Start { kind: BlockKind::ToolUse { id, name }, .. } => {
                self.tool_json.clear();
                self.blocks.push(ReplyBlock::ToolUse { id, name, input: Value::Null });
            }
            BlockEvent::Text { text, .. } => {
                if let Some(ReplyBlock::Text(t)) = self.blocks.last_mut() {
                    t.push_str(&text);
                }
            }
            BlockEvent::ToolInput { json, .. } => self.tool_json.push_str(&json),
            BlockEvent::Stop { .. } => {
                if let Some(ReplyBlock::ToolUse { input, .. }) = self.blocks.last_mut() {
                    *input = tool_input(&std::mem::take(&mut self.tool_json));
                }
            }
            BlockEvent::Finish { stop_reason, usage } => self.finish = Some((stop_reason, usage)),
        }
    }

    /// The reply, or `None` if the answer never finished.
    pub fn finish(self) -> Option<Reply> {
        let (stop_reason, usage) = self.finish?;
        Some(Reply { blocks: self.blocks, stop_reason, usage })
    }
}

/// Drain a provider's stream into a whole reply.
pub async fn collect(mut stream: DeltaStream, input_tokens: u32) -> Result<Reply, ModelFailure> {
    use futures_util::StreamExt;
    let mut tracker = Tracker::new(input_tokens);
    let mut collector = Collector::default();
    while let Some(delta) = stream.next().await {
        for event in tracker.push(delta?) {
            collector.push(event);
        }
    }
    collector.finish().ok_or_else(|| ModelFailure::Interrupted("The model's answer ended before it finished.".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(deltas: Vec<Delta>) -> Vec<BlockEvent> {
        let mut t = Tracker::new(7);
        deltas.into_iter().flat_map(|d| t.push(d)).collect()
    }

    #[test]
    fn text_then_tool_call_become_two_blocks() {
        let events = run(vec![
            Delta::Text("Let me ".into()),
            Delta::Text("check.".into()),
            Delta::ToolUseStart { id: "t1".into(), name: "clock".into() },
            Delta::ToolUseInput("{\"tz\":".into()),
            Delta::ToolUseInput("\"UTC\"}".into()),
            Delta::Finish { stop_reason: StopReason::ToolUse, usage: None },
        ]);
        assert_eq!(
            events,
            vec![
                BlockEvent::Start { index: 0, kind: BlockKind::Text },
                BlockEvent::Text { index: 0, text: "Let me ".into() },
                BlockEvent::Text { index: 0, text: "check.".into() },
                BlockEvent::Stop { index: 0 },
                BlockEvent::Start { index: 1, kind: BlockKind::ToolUse { id: "t1".into(), name: "clock".into() } },
                BlockEvent::ToolInput { index: 1, json: "{\"tz\":".into() },
                BlockEvent::ToolInput { index: 1, json: "\"UTC\"}".into() },
                BlockEvent::Stop { index: 1 },
                // 3 words of text, the tool's name, 2 JSON fragments
                BlockEvent::Finish {
                    stop_reason: StopReason::ToolUse,
                    usage: Usage { input_tokens: 7, output_tokens: 6 }
                },
            ]
        );
    }

    #[test]
    fn collected_reply_parses_tool_input_and_keeps_reported_usage() {
        let mut c = Collector::default();
        for e in run(vec![
            Delta::Text("ok".into()),
            Delta::ToolUseStart { id: "t1".into(), name: "clock".into() },
            Delta::ToolUseInput("{\"tz\":\"UTC\"}".into()),
            Delta::ToolUseStart { id: "t2".into(), name: "noop".into() },
            Delta::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(Usage { input_tokens: 1, output_tokens: 2 }),
            },
        ]) {
            c.push(e);
        }
        let reply = c.finish().unwrap();
        assert_eq!(
            reply.blocks,
            vec![
                ReplyBlock::Text("ok".into()),
                ReplyBlock::ToolUse { id: "t1".into(), name: "clock".into(), input: json!({"tz": "UTC"}) },
                ReplyBlock::ToolUse { id: "t2".into(), name: "noop".into(), input: json!({}) },
            ]
        );
        assert_eq!(reply.usage, Usage { input_tokens: 1, output_tokens: 2 });
    }

    #[test]
    fn an_unfinished_answer_is_no_reply() {
        let mut c = Collector::default();
        for e in run(vec![Delta::Text("half".into())]) {
            c.push(e);
        }
        assert!(c.finish().is_none());
        assert_eq!(tool_input("not json"), json!("not json"));
    }
}
