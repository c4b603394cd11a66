//! Deterministic extraction, for when no model is configured. The rules, per strategy pipeline:
//!
//! - semantic: every sentence a USER message states (not a question, at least three words)
//!   becomes one record, verbatim;
//! - user preference: every USER sentence that states a first-person preference ("I like",
//!   "I love", "I prefer", "I enjoy", "I hate", "I don't like", "my favorite", "I'd rather", ...)
//!   becomes `{"context": ..., "preference": ..., "categories": []}`, as the service shapes
//!   preference records;
//! - summary: the session's summary record lists, in order, the first sentence of each message
//!   (`USER: ...`, `ASSISTANT: ...`), rewritten as the session grows (latest lines kept when it
//!   would exceed the record size);
//! - episodic: the session's episode record states what the user asked first, how many replies
//!   and tool results followed and the last reply; with reflection namespaces, the actor's
//!   reflection record lists the requests of all their episodes;
//! - self-managed: nothing (the customer's pipeline extracts).
//!
//! Repeated facts are not written twice (the worker skips text a namespace already holds).

use std::sync::OnceLock;

use regex::Regex;

use super::{Extracted, ExtractionInput, Extractor, Message, Role, Slot};
use crate::services::memory::strategies::Pipeline;
use futures_util::future::BoxFuture;

/// `MemoryContent.text` holds at most this many characters.
pub const MAX_RECORD_CHARS: usize = 16_000;
/// Shortest statement worth remembering as a fact.
const MIN_FACT_WORDS: usize = 3;

pub struct RuleExtractor;

impl Extractor for RuleExtractor {
    fn extract<'a>(&'a self, input: ExtractionInput<'a>) -> BoxFuture<'a, Result<Vec<Extracted>, String>> {
        Box::pin(async move { Ok(extract(&input)) })
    }
}

pub fn extract(input: &ExtractionInput<'_>) -> Vec<Extracted> {
    match input.strategy.pipeline() {
        Pipeline::Semantic => user_sentences(input.new_messages).filter(|s| is_fact(s)).map(Extracted::Fact).collect(),
        Pipeline::UserPreference => user_sentences(input.new_messages)
            .filter(|s| is_preference(s))
            .map(|s| Extracted::Fact(preference_record(&s)))
            .collect(),
        Pipeline::Summary => {
            vec![Extracted::Slot(Slot::SessionSummary, summary(input.session_id, input.session_messages))]
        }
        Pipeline::Episodic => {
            let episode = episode(input.session_id, input.session_messages);
            let mut out = vec![Extracted::Slot(Slot::Episode, episode.clone())];
            if !input.strategy.spec.reflection_namespaces.is_empty() {
                let mut episodes: Vec<&str> = input.other_episodes.iter().map(String::as_str).collect();
                episodes.push(&episode);
                out.push(Extracted::Slot(Slot::Reflection, reflection(input.actor_id, &episodes)));
            }
            out
        }
        Pipeline::SelfManaged => Vec::new(),
    }
}

/// Sentences of a text, trimmed, each with its closing punctuation.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == '\n' {
            push_sentence(&mut out, &mut current);
            continue;
        }
        current.push(c);
        if matches!(c, '.' | '!' | '?') {
            push_sentence(&mut out, &mut current);
        }
    }
    push_sentence(&mut out, &mut current);
    out
}

fn push_sentence(out: &mut Vec<String>, current: &mut String) {
    let s = current.trim();
    if !s.is_empty() && s.chars().any(char::is_alphanumeric) {
        out.push(s.to_string());
    }
    current.clear();
}

fn user_sentences(messages: &[Message]) -> impl Iterator<Item = String> + '_ {
    messages.iter().filter(|m| m.role == Role::User).flat_map(|m| sentences(&m.text))
}

fn is_fact(sentence: &str) -> bool {
    !sentence.ends_with('?') && sentence.split_whitespace().count() >= MIN_FACT_WORDS
}

fn preference_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)\b(?:(?:i|we)(?:\s+(?:really|also|usually|always|definitely|generally|do|much|strongly))*\s+(?:like|love|prefer|enjoy|adore|hate|dislike|detest|want|would\s+rather|don't\s+like|do\s+not\s+like|can't\s+stand|cannot\s+stand)|i'd\s+rather|(?:my|our)\s+(?:favorite|favourite)|i\s+am\s+(?:a\s+)?(?:vegetarian|vegan|allergic))\b",
        )
        .expect("preference pattern compiles")
    })
}

fn is_preference(sentence: &str) -> bool {
    !sentence.ends_with('?') && preference_pattern().is_match(sentence)
}

fn preference_record(sentence: &str) -> String {
    serde_json::json!({"context": sentence, "preference": sentence, "categories": []}).to_string()
}

fn first_sentence(text: &str) -> String {
    sentences(text).into_iter().next().unwrap_or_else(|| text.trim().to_string())
}

/// Keep the last lines that fit a record, after `header`.
fn fit(header: String, lines: Vec<String>) -> String {
    let mut kept = Vec::new();
    let mut size = header.chars().count();
    for line in lines.iter().rev() {
        let n = line.chars().count() + 1;
        if size + n > MAX_RECORD_CHARS {
            break;
        }
        size += n;
        kept.push(line.as_str());
    }
    kept.reverse();
    let mut out = header;
    for line in kept {
        out.push('\n');
        out.push_str(line);
    }
    out
}

fn summary(session_id: &str, messages: &[Message]) -> String {
    let lines = messages.iter().map(|m| format!("{}: {}", m.role.as_str(), first_sentence(&m.text))).collect();
    fit(format!("Summary of session {session_id} ({} messages):", messages.len()), lines)
}

fn episode(session_id: &str, messages: &[Message]) -> String {
    let asked = messages.iter().find(|m| m.role == Role::User).map(|m| first_sentence(&m.text)).unwrap_or_default();
    let replies = messages.iter().filter(|m| m.role == Role::Assistant).count();
    let tools = messages.iter().filter(|m| m.role == Role::Tool).count();
    let last = messages.iter().rev().find(|m| m.role == Role::Assistant).map(|m| first_sentence(&m.text));
    let mut text = format!(
        "Episode (session {session_id}): the user asked: {asked} The assistant replied {replies} time(s) with {tools} tool result(s)."
    );
    if let Some(last) = last {
        text.push_str(&format!(" Last reply: {last}"));
    }
    text.chars().take(MAX_RECORD_CHARS).collect()
}

fn reflection(actor_id: &str, episodes: &[&str]) -> String {
    let lines = episodes
        .iter()
        .map(|e| {
            let asked = e.split("the user asked: ").nth(1).and_then(|rest| rest.split(" The assistant").next());
            format!("- {}", asked.unwrap_or(e).trim())
        })
        .collect();
    fit(format!("Reflection for {actor_id} over {} episode(s); requests:", episodes.len()), lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::memory::strategies::{Strategy, StrategyKind, StrategySpec, StrategyStatus};

    fn strategy(kind: StrategyKind) -> Strategy {
        Strategy {
            id: "s-AbCdEf1234".into(),
            name: "s".into(),
            kind,
            description: None,
            spec: StrategySpec::default(),
            status: StrategyStatus::Active,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn msg(role: Role, text: &str) -> Message {
        Message { event_id: "e".into(), index: 0, role, text: text.into(), event_ts: 0 }
    }

    fn run(kind: StrategyKind, messages: &[Message]) -> Vec<Extracted> {
        let s = strategy(kind);
        extract(&ExtractionInput {
            strategy: &s,
            actor_id: "alice",
            session_id: "s1",
            new_messages: messages,
            session_messages: messages,
            previous: None,
            other_episodes: &[],
        })
    }

    #[test]
    fn user_statements_become_facts_questions_and_assistant_turns_do_not() {
        let m = [
            msg(Role::User, "I live in Lisbon. Where is the station?\nMy dog is called Rex!"),
            msg(Role::Assistant, "The station is north of the river."),
            msg(Role::User, "ok"),
        ];
        assert_eq!(
            run(StrategyKind::Semantic, &m),
            vec![Extracted::Fact("I live in Lisbon.".into()), Extracted::Fact("My dog is called Rex!".into())]
        );
    }

    #[test]
    fn preferences_are_first_person_likes_and_dislikes() {
        let m = [msg(
            Role::User,
            "I really like dark roast coffee. The sky is blue. My favorite city is Porto. Do I like tea?",
        )];
        let out = run(StrategyKind::UserPreference, &m);
        assert_eq!(out.len(), 2, "{out:?}");
        let Extracted::Fact(first) = &out[0] else { panic!() };
        let v: serde_json::Value = serde_json::from_str(first).unwrap();
        assert_eq!(v["preference"], "I really like dark roast coffee.");
    }

    #[test]
    fn the_session_so_far_is_its_summary() {
        let m = [msg(Role::User, "Book a table for two. At eight."), msg(Role::Assistant, "Done, table booked.")];
        let out = run(StrategyKind::Summarization, &m);
        let [Extracted::Slot(Slot::SessionSummary, text)] = out.as_slice() else { panic!("{out:?}") };
        assert!(text.starts_with("Summary of session s1 (2 messages):"), "{text}");
        assert!(
            text.contains("USER: Book a table for two.") && text.contains("ASSISTANT: Done, table booked."),
            "{text}"
        );
    }

    #[test]
    fn long_summaries_keep_the_latest_lines() {
        let big = "x".repeat(1000);
        let m: Vec<Message> = (0..40).map(|i| msg(Role::User, &format!("{i} {big}"))).collect();
        let out = run(StrategyKind::Summarization, &m);
        let [Extracted::Slot(_, text)] = out.as_slice() else { panic!() };
        assert!(text.chars().count() <= MAX_RECORD_CHARS);
        assert!(text.contains("USER: 39 ") && !text.contains("USER: 0 "));
    }
}
