//! Amazon Bedrock, served locally so agents run offline: the `bedrock-runtime` API (Converse,
//! ConverseStream, InvokeModel and InvokeModelWithResponseStream with the Anthropic messages body)
//! and the `bedrock` control plane's ListFoundationModels and GetFoundationModel. Both sign as
//! `bedrock`; the path tells them apart.
//!
//! Any model id is accepted; the answer comes from the provider chosen with
//! `serve --model-provider` (`providers`). A provider streams `reply::Delta`s; `reply` numbers
//! them into content blocks that each wire (`converse`, `anthropic`) writes in its own shape.
//! Every call is recorded (`calls`).

pub mod anthropic;
pub mod api;
pub mod calls;
pub mod catalogue;
pub mod conversation;
pub mod converse;
mod errors;
pub(crate) mod eventstream;
pub mod models;
mod own_calls;
pub mod providers;
pub mod reply;
pub mod routes;
mod tokens;

use std::sync::Arc;

use calls::ModelCalls;
use catalogue::Catalogue;
pub use own_calls::EMULATOR_CALLER;
use providers::{Provider, ProviderFlags};

/// Largest request body: InvokeModel's `body` limit in the model (Converse carries images and
/// documents inline, as base64, within the same bound).
pub const MAX_REQUEST_BYTES: usize = 25_000_000;

/// The Bedrock service's state: who answers, what was called, and the record of calls.
pub struct Bedrock {
    provider: Provider,
    catalogue: Catalogue,
    calls: Arc<ModelCalls>,
}

impl Bedrock {
    pub fn new(flags: &ProviderFlags) -> Result<Bedrock, String> {
        Ok(Bedrock { provider: Provider::from_flags(flags)?, catalogue: Catalogue::default(), calls: Arc::default() })
    }

    /// For the start-up log: which provider answers, e.g. `script /tmp/rules.json (3 rules)`.
    pub fn describe(&self) -> String {
        match &self.provider {
            Provider::Echo => "echo".into(),
            Provider::Script(s) => format!("script {} ({} rules)", s.path().display(), s.rule_count()),
            Provider::OpenAi(o) => format!("openai {}", o.url()),
        }
    }

    pub fn calls(&self) -> &Arc<ModelCalls> {
        &self.calls
    }
}
