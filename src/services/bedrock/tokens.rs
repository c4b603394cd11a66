//! Token counts for answers whose provider reports none (echo, script, and OpenAI-compatible
//! servers that omit `usage`).
//!
//! One token per whitespace-separated word. That is no tokenizer's count, but it is
//! deterministic and easy to predict in a test ("hello there" is 2 tokens), which is what a local
//! model's usage figures are for.

use super::conversation::{Block, Conversation};

pub fn count(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

/// Everything the model reads: system prompts, message text, tool calls (their input as JSON),
/// tool results, and the tool specifications (name, description, input schema as JSON).
pub fn input_tokens(conversation: &Conversation) -> u32 {
    let system: u32 = conversation.system.iter().map(|s| count(s)).sum();
    let messages: u32 = conversation
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .map(|b| match b {
            Block::Text(t) => count(t),
            Block::ToolUse { name, input, .. } => count(name) + count(&input.to_string()),
            Block::ToolResult { text, .. } => count(text),
            Block::Image { .. } | Block::Other(_) => 0,
        })
        .sum();
    let tools: u32 = conversation
        .tools
        .iter()
        .map(|t| count(&t.name) + t.description.as_deref().map_or(0, count) + count(&t.input_schema.to_string()))
        .sum();
    system + messages + tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::bedrock::conversation::{Message, Role, ToolSpec};
    use serde_json::json;

    #[test]
    fn words_are_tokens() {
        assert_eq!(count("hello there"), 2);
        assert_eq!(count("  spaced\tout\nwords  "), 3);
        assert_eq!(count(""), 0);
    }

    #[test]
    fn input_counts_every_part_the_model_reads() {
        let c = Conversation {
            system: vec!["be brief".into()],
            messages: vec![Message {
                role: Role::User,
                content: vec![
                    Block::Text("what is the time".into()),
                    Block::ToolResult { id: "t".into(), text: "noon sharp".into(), is_error: false },
                ],
            }],
            tools: vec![ToolSpec {
                name: "clock".into(),
                description: Some("tells the time".into()),
                input_schema: json!({"type": "object"}),
            }],
            ..Conversation::default()
        };
        // 2 (system) + 4 (text) + 2 (result) + 1 + 3 + 1 (tool spec)
        assert_eq!(input_tokens(&c), 13);
    }
}
