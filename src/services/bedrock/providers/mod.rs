//! Who answers model calls, chosen with `serve --model-provider`:
//! - `echo` (default): the text of the last user message, so a test can assert on the answer;
//! - `script:PATH`: rules in a JSON file decide text or tool calls, for deterministic agent loops;
//! - `openai:URL`: an OpenAI-compatible chat-completions server (Ollama, llama.cpp, vLLM).

mod echo;
mod local;
pub mod openai;
pub mod script;

use super::conversation::Conversation;
use super::reply::{DeltaStream, ModelFailure};

pub enum Provider {
    Echo,
    Script(script::Script),
    /// Boxed: the HTTP client is large and there is one provider per process.
    OpenAi(Box<openai::OpenAi>),
}

/// What `serve` was told about the provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderFlags {
    /// `echo`, `script:PATH` or `openai:URL`.
    pub spec: String,
    /// The model name sent to an OpenAI-compatible server instead of the Bedrock model id.
    pub model: Option<String>,
    /// Bearer token for an OpenAI-compatible server.
    pub api_key: Option<String>,
}

impl Provider {
    /// Build the provider `serve` asked for; a script is read and checked now, so a bad file stops
    /// the emulator at start rather than failing the first call.
    pub fn from_flags(flags: &ProviderFlags) -> Result<Provider, String> {
        let spec = flags.spec.trim();
        if spec.is_empty() || spec == "echo" {
            return Ok(Provider::Echo);
        }
        if let Some(path) = spec.strip_prefix("script:") {
            return script::Script::load(std::path::Path::new(path)).map(Provider::Script);
        }
        if let Some(url) = spec.strip_prefix("openai:") {
            return openai::OpenAi::new(url, flags.model.clone(), flags.api_key.clone())
                .map(|o| Provider::OpenAi(Box::new(o)));
        }
        Err(format!("--model-provider must be echo, script:PATH or openai:URL, got '{spec}'"))
    }

    /// For logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Echo => "echo",
            Provider::Script(_) => "script",
            Provider::OpenAi(_) => "openai",
        }
    }

    /// Start answering. Failures known before the first delta (no matching rule, a server that
    /// refuses) come back here, so the wire can answer them as plain errors; `stream` says whether
    /// the caller streams (an OpenAI-compatible server is asked the same way).
    pub async fn answer(&self, conversation: &Conversation, stream: bool) -> Result<DeltaStream, ModelFailure> {
        match self {
            Provider::Echo => Ok(local::stream(echo::answer(conversation)?, conversation.max_tokens)),
            Provider::Script(script) => Ok(local::stream(script.answer(conversation)?, conversation.max_tokens)),
            Provider::OpenAi(server) => server.answer(conversation, stream).await,
        }
    }
}
