//! InvokeModel and InvokeModelWithResponseStream speak each model family's own body; the
//! Anthropic messages format is the one served (Claude is what agent frameworks default to).

pub mod input;
pub mod output;
