//! Answers decided here rather than by a model (echo, script), streamed the way a model streams
//! them: text word by word, a tool call's input in small JSON fragments, so clients meet the same
//! event sequences as with a real model.

use rand::Rng;
use serde_json::Value;

use crate::services::bedrock::reply::{Delta, DeltaStream, StopReason};

/// JSON fragments of a tool call's input are at most this many bytes.
const INPUT_FRAGMENT_BYTES: usize = 16;

/// An answer: text, a tool call, or text followed by a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAnswer {
    pub text: Option<String>,
    pub tool_use: Option<(String, Value)>,
}

/// A tool-use id in Bedrock's form: `tooluse_` and 22 random URL-safe characters.
pub fn tool_use_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    let tail: String = (0..22).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("tooluse_{tail}")
}

/// `text` as words each followed by the whitespace after it, so the pieces join back exactly.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn fragments(json: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < json.len() {
        let mut end = (start + INPUT_FRAGMENT_BYTES).min(json.len());
        while !json.is_char_boundary(end) {
            end += 1;
        }
        out.push(&json[start..end]);
        start = end;
    }
    out
}

/// The deltas of `answer`. With `max_tokens`, text longer than that many words (the local token
/// count) is cut there and the answer stops with `max_tokens`, without its tool call.
pub fn deltas(answer: LocalAnswer, max_tokens: Option<u32>) -> Vec<Delta> {
    let mut out = Vec::new();
    if let Some(text) = &answer.text {
        let pieces = words(text);
        let limit = max_tokens.map_or(usize::MAX, |m| m as usize);
        // A piece is one word plus trailing space, except leading space alone.
        let counted = |p: &&str| !p.trim().is_empty();
        let mut kept = 0;
        for piece in &pieces {
            if counted(piece) {
                if kept == limit {
                    out.push(Delta::Finish { stop_reason: StopReason::MaxTokens, usage: None });
                    return out;
                }
                kept += 1;
            }
            out.push(Delta::Text(piece.to_string()));
        }
    }
    let stop_reason = match answer.tool_use {
        Some((name, input)) => {
            out.push(Delta::ToolUseStart { id: tool_use_id(), name });
            let json = input.to_string();
            out.extend(fragments(&json).into_iter().map(|f| Delta::ToolUseInput(f.to_string())));
            StopReason::ToolUse
        }
        None => StopReason::EndTurn,
    };
    out.push(Delta::Finish { stop_reason, usage: None });
    out
}

pub fn stream(answer: LocalAnswer, max_tokens: Option<u32>) -> DeltaStream {
    Box::pin(futures_util::stream::iter(deltas(answer, max_tokens).into_iter().map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text_of(deltas: &[Delta]) -> String {
        deltas
            .iter()
            .filter_map(|d| match d {
                Delta::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn text_streams_word_by_word_and_joins_back_exactly() {
        let text = "  Hello,  wide\nworld ☃ ";
        let d = deltas(LocalAnswer { text: Some(text.into()), tool_use: None }, None);
        assert_eq!(text_of(&d), text);
        assert_eq!(d.len(), 6, "{d:?}"); // leading space, 4 words, finish
        assert_eq!(d.last(), Some(&Delta::Finish { stop_reason: StopReason::EndTurn, usage: None }));
    }

    #[test]
    fn max_tokens_cuts_the_text_and_drops_the_tool_call() {
        let answer = LocalAnswer { text: Some("one two three".into()), tool_use: Some(("t".into(), json!({}))) };
        let d = deltas(answer, Some(2));
        assert_eq!(text_of(&d), "one two ");
        assert_eq!(d.last(), Some(&Delta::Finish { stop_reason: StopReason::MaxTokens, usage: None }));
    }

    #[test]
    fn tool_input_is_fragmented_json() {
        let input = json!({"city": "Zürich", "days": [1, 2, 3], "note": "a fairly long value"});
        let d = deltas(LocalAnswer { text: None, tool_use: Some(("forecast".into(), input.clone())) }, None);
        let Delta::ToolUseStart { id, name } = &d[0] else { panic!("{d:?}") };
        assert!(id.starts_with("tooluse_") && id.len() == 30, "{id}");
        assert_eq!(name, "forecast");
        let json: String = d
            .iter()
            .filter_map(|x| match x {
                Delta::ToolUseInput(j) => Some(j.as_str()),
                _ => None,
            })
            .collect();
        assert!(d.iter().filter(|x| matches!(x, Delta::ToolUseInput(_))).count() > 2);
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), input);
        assert_eq!(d.last(), Some(&Delta::Finish { stop_reason: StopReason::ToolUse, usage: None }));
    }
}
