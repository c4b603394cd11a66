//! Extraction through a language model: each strategy's instructions, plus a custom strategy's
//! `appendToPrompt`, run on the override's `modelId` (or the default model for built-ins).
//!
//! Answers are read simply: semantic and preference prompts ask for one item per line; summary,
//! episode and reflection prompts for one text. The summary prompt gets the previous summary, so
//! the consolidation override shapes how it grows.

use std::sync::Arc;

use super::{Extracted, ExtractionInput, Extractor, MemoryModel, Message, ModelRequest, Slot};
use crate::services::memory::strategies::{Pipeline, PromptOverride};
use futures_util::future::BoxFuture;

const SEMANTIC: &str = "You extract facts from a conversation for long-term memory. Write each distinct, \
self-contained fact the user stated on its own line, in plain text, without numbering. Write nothing else. \
If there is no fact, answer with an empty text.";
const PREFERENCE: &str = "You extract the user's preferences from a conversation for long-term memory. Write \
each preference on its own line as a JSON object with the keys \"context\", \"preference\" and \"categories\" \
(a list of strings). Write nothing else. If there is no preference, answer with an empty text.";
const SUMMARY: &str = "You keep a running summary of a conversation session for long-term memory. Given the \
previous summary (possibly empty) and the conversation, write the updated summary of the whole session: main \
points, decisions and open items. Write only the summary.";
const EPISODE: &str = "You record a conversation session as an episode for long-term memory: the user's goal, \
what was done (including tool use), and the outcome. Write only the episode.";
const REFLECTION: &str = "You reflect across a user's episodes for long-term memory: patterns, what worked and \
what did not, lessons for future sessions. Write only the reflection.";

pub struct PromptedExtractor {
    model: Arc<dyn MemoryModel>,
    default_model_id: String,
}

impl PromptedExtractor {
    pub fn new(model: Arc<dyn MemoryModel>, default_model_id: &str) -> Self {
        PromptedExtractor { model, default_model_id: default_model_id.to_string() }
    }

    async fn ask(&self, base: &str, over: Option<&PromptOverride>, prompt: &str) -> Result<String, String> {
        let system = match over {
            Some(o) => format!("{base}\n\n{}", o.append_to_prompt),
            None => base.to_string(),
        };
        let model_id = over.map(|o| o.model_id.as_str()).unwrap_or(&self.default_model_id);
        self.model
            .complete(ModelRequest { model_id, system: &system, prompt })
            .await
            .map_err(|e| format!("model {model_id} failed: {e}"))
    }
}

fn transcript(messages: &[Message]) -> String {
    messages.iter().map(|m| format!("{}: {}", m.role.as_str(), m.text)).collect::<Vec<_>>().join("\n")
}

fn lines(answer: &str) -> Vec<String> {
    answer
        .lines()
        .map(|l| l.trim().trim_start_matches(['-', '*', '•']).trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn preference_line(line: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(v) if v.is_object() => v.to_string(),
        _ => serde_json::json!({"context": line, "preference": line, "categories": []}).to_string(),
    }
}

impl Extractor for PromptedExtractor {
    fn extract<'a>(&'a self, input: ExtractionInput<'a>) -> BoxFuture<'a, Result<Vec<Extracted>, String>> {
        Box::pin(async move {
            let prompts = &input.strategy.spec.prompts;
            Ok(match input.strategy.pipeline() {
                Pipeline::Semantic => {
                    let answer =
                        self.ask(SEMANTIC, prompts.extraction.as_ref(), &transcript(input.new_messages)).await?;
                    lines(&answer).into_iter().map(Extracted::Fact).collect()
                }
                Pipeline::UserPreference => {
                    let answer =
                        self.ask(PREFERENCE, prompts.extraction.as_ref(), &transcript(input.new_messages)).await?;
                    lines(&answer).into_iter().map(|l| Extracted::Fact(preference_line(l))).collect()
                }
                Pipeline::Summary => {
                    let prompt = format!(
                        "Previous summary:\n{}\n\nConversation:\n{}",
                        input.previous.unwrap_or(""),
                        transcript(input.session_messages)
                    );
                    let answer = self.ask(SUMMARY, prompts.consolidation.as_ref(), &prompt).await?;
                    vec![Extracted::Slot(Slot::SessionSummary, answer.trim().to_string())]
                }
                Pipeline::Episodic => {
                    let episode = self
                        .ask(EPISODE, prompts.extraction.as_ref(), &transcript(input.session_messages))
                        .await?
                        .trim()
                        .to_string();
                    let mut out = vec![Extracted::Slot(Slot::Episode, episode.clone())];
                    if !input.strategy.spec.reflection_namespaces.is_empty() {
                        let mut all: Vec<&str> = input.other_episodes.iter().map(String::as_str).collect();
                        all.push(&episode);
                        let reflection = self.ask(REFLECTION, prompts.reflection.as_ref(), &all.join("\n\n")).await?;
                        out.push(Extracted::Slot(Slot::Reflection, reflection.trim().to_string()));
                    }
                    out
                }
                Pipeline::SelfManaged => Vec::new(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::services::memory::extraction::Role;
    use crate::services::memory::strategies::{
        OverrideKind, Prompts, Strategy, StrategyKind, StrategySpec, StrategyStatus,
    };

    /// Records every request and answers with canned lines.
    struct Recorder {
        seen: Mutex<Vec<(String, String, String)>>,
        answer: String,
    }

    impl MemoryModel for Recorder {
        fn complete<'a>(&'a self, r: ModelRequest<'a>) -> BoxFuture<'a, Result<String, String>> {
            self.seen.lock().unwrap().push((r.model_id.into(), r.system.into(), r.prompt.into()));
            Box::pin(async move { Ok(self.answer.clone()) })
        }
    }

    #[tokio::test]
    async fn a_custom_override_prompt_and_model_reach_the_model() {
        let model = Arc::new(Recorder {
            seen: Mutex::default(),
            answer: "- The user lives in Lisbon\n\n* Rex is a dog".into(),
        });
        let extractor = PromptedExtractor::new(model.clone(), "default-model");
        let strategy = Strategy {
            id: "c-AbCdEf1234".into(),
            name: "c".into(),
            kind: StrategyKind::Custom,
            description: None,
            spec: StrategySpec {
                override_kind: Some(OverrideKind::SemanticOverride),
                prompts: Prompts {
                    extraction: Some(PromptOverride {
                        append_to_prompt: "Only keep facts about pets and places.".into(),
                        model_id: "my-model".into(),
                    }),
                    ..Prompts::default()
                },
                ..StrategySpec::default()
            },
            status: StrategyStatus::Active,
            created_at: 0,
            updated_at: 0,
        };
        let messages = [Message {
            event_id: "e".into(),
            index: 0,
            role: Role::User,
            text: "I live in Lisbon with Rex.".into(),
            event_ts: 0,
        }];
        let out = extractor
            .extract(ExtractionInput {
                strategy: &strategy,
                actor_id: "a",
                session_id: "s",
                new_messages: &messages,
                session_messages: &messages,
                previous: None,
                other_episodes: &[],
            })
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![Extracted::Fact("The user lives in Lisbon".into()), Extracted::Fact("Rex is a dog".into())]
        );
        let seen = model.seen.lock().unwrap();
        assert_eq!(seen[0].0, "my-model");
        assert!(seen[0].1.starts_with(SEMANTIC) && seen[0].1.ends_with("Only keep facts about pets and places."));
        assert_eq!(seen[0].2, "USER: I live in Lisbon with Rex.");
    }
}
