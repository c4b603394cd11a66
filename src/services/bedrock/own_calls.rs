//! Model calls the emulator makes for itself: Memory's extraction asks the configured provider the
//! way an agent's Converse call would, and the call is recorded like any other (dashboard,
//! `/metrics`), so a developer sees what extraction cost.

use std::time::Instant;

use super::calls::ModelCall;
use super::conversation::{Block, Conversation, Message, Role};
use super::reply::{self, ReplyBlock};
use super::{tokens, Bedrock};
use crate::kernel::clock::now_ms;

/// The account a call made by the emulator itself is recorded under.
pub const EMULATOR_CALLER: &str = "agentcore-local";

impl Bedrock {
    /// Whether the provider is a model rather than the echo: echoing an extraction prompt would
    /// store the prompt as memory, so Memory keeps its deterministic rules with `echo`.
    pub fn answers_prompts(&self) -> bool {
        !matches!(self.provider, super::providers::Provider::Echo)
    }

    /// One text completion: `system`, then `prompt` as the user's message; the answer's text.
    /// `operation` names the caller in the record (e.g. `MemoryExtraction`).
    pub async fn complete(
        &self,
        operation: &'static str,
        model_id: &str,
        system: &str,
        prompt: &str,
    ) -> Result<String, String> {
        let conversation = Conversation {
            model_id: model_id.to_string(),
            system: vec![system.to_string()],
            messages: vec![Message { role: Role::User, content: vec![Block::Text(prompt.to_string())] }],
            ..Default::default()
        };
        let started = Instant::now();
        let input_tokens = tokens::input_tokens(&conversation);
        let answer = match self.provider.answer(&conversation, false).await {
            Ok(deltas) => reply::collect(deltas, input_tokens).await,
            Err(failure) => Err(failure),
        };
        let (usage, error) = match &answer {
            Ok(r) => (r.usage, None),
            Err(f) => (reply::Usage { input_tokens, output_tokens: 0 }, Some(f.message().to_string())),
        };
        self.catalogue.called(model_id);
        self.calls.record(ModelCall {
            at_ms: now_ms(),
            account: EMULATOR_CALLER.to_string(),
            operation,
            model_id: model_id.to_string(),
            provider: self.provider.name(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            latency_ms: started.elapsed().as_millis() as u64,
            error,
            session: None,
        });
        let reply = answer.map_err(|f| f.message().to_string())?;
        Ok(reply
            .blocks
            .iter()
            .filter_map(|b| match b {
                ReplyBlock::Text(t) => Some(t.as_str()),
                ReplyBlock::ToolUse { .. } => None,
            })
            .collect::<Vec<_>>()
            .join(""))
    }
}
