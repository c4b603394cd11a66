//! Long-term extraction: what each strategy makes of a session's events.
//!
//! Extraction is asynchronous, as on the service: CreateEvent queues the event in its own
//! transaction and `worker` turns queued events into records a moment later, per strategy, into
//! the strategy's namespace. How records are made is an [`Extractor`]:
//!
//! - [`rules::RuleExtractor`] when no model is configured: deterministic, documented rules
//!   (each user statement becomes a semantic fact, the session so far its summary, "I like/
//!   prefer ..." statements preferences), so offline tests still see records;
//! - [`prompted::PromptedExtractor`] over a [`MemoryModel`] when one is: the strategy's prompt,
//!   with a custom strategy's `appendToPrompt`, runs on the override's `modelId`.
//!
//! A failed extraction leaves a FAILED job (ListMemoryExtractionJobs) that
//! StartMemoryExtractionJob runs again.

mod jobs;
pub mod prompted;
pub mod rules;
mod worker;

pub use jobs::JobFilter;

use std::sync::Arc;

use serde_json::Value;

use super::strategies::Strategy;
use futures_util::future::BoxFuture;

/// The model built-in strategies use when a model is configured and no override names one.
pub const DEFAULT_MODEL_ID: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

/// The language model extraction runs its prompts on. The emulator's model provider implements
/// this; without one, extraction uses the deterministic rules.
pub trait MemoryModel: Send + Sync + 'static {
    /// One completion: `system` instructions, then `prompt`; the text the model answers.
    fn complete<'a>(&'a self, request: ModelRequest<'a>) -> BoxFuture<'a, Result<String, String>>;
}

/// A prompt for [`MemoryModel::complete`].
#[derive(Debug, Clone, Copy)]
pub struct ModelRequest<'a> {
    pub model_id: &'a str,
    pub system: &'a str,
    pub prompt: &'a str,
}

/// `Role` of a conversational payload; JSON payloads read as OTHER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    Tool,
    Other,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Assistant => "ASSISTANT",
            Role::Tool => "TOOL",
            Role::Other => "OTHER",
        }
    }
}

/// One message of a session, as extraction reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub event_id: String,
    /// Position of the payload item in its event (`messageIndex`).
    pub index: usize,
    pub role: Role,
    pub text: String,
    pub event_ts: i64,
}

/// The messages of an event's payload: conversational and JSON items (blobs are short-term only);
/// items without text are skipped.
pub fn messages_of(event_id: &str, event_ts: i64, payload: &Value) -> Vec<Message> {
    let Some(items) = payload.as_array() else { return Vec::new() };
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let (role, text) = if let Some(c) = item.get("conversational") {
                let role = match c.get("role").and_then(Value::as_str) {
                    Some("USER") => Role::User,
                    Some("ASSISTANT") => Role::Assistant,
                    Some("TOOL") => Role::Tool,
                    _ => Role::Other,
                };
                let text = c.get("content")?.get("text")?.as_str()?;
                (role, message_document_text(text).unwrap_or_else(|| text.to_string()))
            } else if let Some(j) = item.get("json") {
                (Role::Other, j.get("content")?.to_string())
            } else {
                return None;
            };
            (!text.trim().is_empty()).then(|| Message { event_id: event_id.to_string(), index, role, text, event_ts })
        })
        .collect()
}

/// The text of a conversational item that carries a whole message document, as Strands' session
/// manager writes them (`{"message": {"role": ..., "content": [{"text": ...}, {"toolUse": ...}]}, ...}`,
/// or the bare `{"role", "content"}` of the Converse API): the message's own text blocks, joined.
/// `None` for plain text; `Some("")` for a message with no text (tool use or results only).
fn message_document_text(text: &str) -> Option<String> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let doc: Value = serde_json::from_str(text).ok()?;
    let message = doc.get("message").unwrap_or(&doc);
    let blocks = message.get("content")?.as_array()?;
    message.get("role")?.as_str()?;
    let texts: Vec<&str> = blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    Some(texts.join("\n"))
}

/// What one strategy's extraction gets to see.
#[derive(Debug, Clone)]
pub struct ExtractionInput<'a> {
    pub strategy: &'a Strategy,
    pub actor_id: &'a str,
    pub session_id: &'a str,
    /// The messages of the events this run is for.
    pub new_messages: &'a [Message],
    /// The whole session so far, oldest first.
    pub session_messages: &'a [Message],
    /// The current text of this session's summary or episode, if there is one.
    pub previous: Option<&'a str>,
    /// The actor's other episodes (for episodic reflections).
    pub other_episodes: &'a [String],
}

/// A record extraction produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    /// A new record in the strategy's namespace (not written when the namespace already has the
    /// same text).
    Fact(String),
    /// The record of a slot, rewritten in place.
    Slot(Slot, String),
}

/// Records extraction keeps one of and rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A session's summary (summary strategies).
    SessionSummary,
    /// A session's episode (episodic strategies).
    Episode,
    /// An actor's reflection across episodes (episodic strategies with reflection namespaces).
    Reflection,
}

/// How a strategy turns messages into records.
pub trait Extractor: Send + Sync + 'static {
    /// `Err` is the failure reason of the extraction job.
    fn extract<'a>(&'a self, input: ExtractionInput<'a>) -> BoxFuture<'a, Result<Vec<Extracted>, String>>;
}

/// The model-backed extractor when there is a model, the rules otherwise.
pub fn pick(model: Option<Arc<dyn MemoryModel>>, default_model_id: &str) -> Arc<dyn Extractor> {
    match model {
        Some(model) => Arc::new(prompted::PromptedExtractor::new(model, default_model_id)),
        None => Arc::new(rules::RuleExtractor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversational_and_json_items_are_messages_blobs_are_not() {
        let payload = json!([
            {"conversational": {"content": {"text": "hi"}, "role": "USER"}},
            {"blob": "{\"x\": 1}"},
            {"json": {"content": {"step": "ordered"}}},
        ]);
        let m = messages_of("e1", 5, &payload);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].role, m[0].text.as_str(), m[0].index), (Role::User, "hi", 0));
        assert_eq!((m[1].role, m[1].text.as_str(), m[1].index), (Role::Other, "{\"step\":\"ordered\"}", 2));
    }

    #[test]
    fn message_documents_contribute_their_text_blocks() {
        let strands = json!({"message": {"role": "user", "content": [{"text": "I like tea."}, {"text": "And cake."}]},
                             "message_id": 0});
        let tool_result =
            json!({"message": {"role": "user", "content": [{"toolResult": {"content": [{"text": "42"}]}}]}});
        let payload = json!([
            {"conversational": {"content": {"text": strands.to_string()}, "role": "USER"}},
            {"conversational": {"content": {"text": tool_result.to_string()}, "role": "USER"}},
            {"conversational": {"content": {"text": "{not json"}, "role": "USER"}},
        ]);
        let m = messages_of("e", 0, &payload);
        assert_eq!(m.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), vec!["I like tea.\nAnd cake.", "{not json"]);
    }
}
