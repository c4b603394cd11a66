//! The echo model: its answer is the text of the last user message, exactly.
//!
//! "Last user message" is the latest user message that has text; messages that only return tool
//! results are skipped (see `Conversation::last_user_text`). A conversation whose user messages
//! carry no text at all is answered with its latest tool result, and failing that refused.

use super::local::LocalAnswer;
use crate::services::bedrock::conversation::Conversation;
use crate::services::bedrock::reply::ModelFailure;

pub fn answer(conversation: &Conversation) -> Result<LocalAnswer, ModelFailure> {
    let text = conversation
        .last_user_text()
        .or_else(|| conversation.latest_tool_result().map(str::to_string))
        .ok_or_else(|| {
            ModelFailure::Invalid(
                "The echo model answers with the text of the last user message, and this conversation has no \
                 user text."
                    .into(),
            )
        })?;
    Ok(LocalAnswer { text: Some(text), tool_use: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::bedrock::conversation::{Block, Message, Role};

    fn said(blocks: Vec<Block>) -> Conversation {
        Conversation { messages: vec![Message { role: Role::User, content: blocks }], ..Conversation::default() }
    }

    #[test]
    fn echoes_the_last_user_text() {
        let a = answer(&said(vec![Block::Text("Hello there".into())])).unwrap();
        assert_eq!(a.text.as_deref(), Some("Hello there"));
        assert!(a.tool_use.is_none());
    }

    #[test]
    fn refuses_a_conversation_without_text() {
        let err = answer(&said(vec![Block::Other("image".into())])).unwrap_err();
        assert!(matches!(err, ModelFailure::Invalid(m) if m.contains("no user text")));
    }
}
