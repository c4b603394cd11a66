//! The conversation a model answers, in one form for every wire that carries it (Converse, the
//! Anthropic messages body of InvokeModel) and every provider that answers it.
//!
//! Providers only read what they can use: text, tool calls and their results, images. Other
//! Converse blocks (documents, video, reasoning, cache points …) are kept by name so a provider
//! that cannot forward them can say which one it met.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// A tool's answer; its content flattened to text (JSON parts serialized), which is all any
    /// provider passes on.
    ToolResult {
        id: String,
        text: String,
        is_error: bool,
    },
    Image {
        format: String,
        base64: String,
    },
    /// A block kind no provider reads, by its wire member name (e.g. `document`).
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    /// The message's text blocks, joined with newlines; `None` when it has none.
    pub fn text(&self) -> Option<String> {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        (!texts.is_empty()).then(|| texts.join("\n"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// The JSON schema of the tool's input.
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must call some tool.
    Any,
    /// The model must call this tool.
    Tool(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conversation {
    /// As the caller named it (foundation model id, inference profile id or ARN).
    pub model_id: String,
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<ToolChoice>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: Vec<String>,
}

impl Conversation {
    /// The text of the latest user message that has any. Messages that only carry tool results
    /// (what an SDK sends back after a `toolUse`) are skipped, so this stays the human's prompt
    /// during a tool loop.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages.iter().rev().filter(|m| m.role == Role::User).find_map(Message::text)
    }

    /// 1 for the first answer, then one more for each assistant message already in the
    /// conversation.
    pub fn turn(&self) -> usize {
        self.messages.iter().filter(|m| m.role == Role::Assistant).count() + 1
    }

    /// Whether the last message is a user message carrying a tool result, i.e. the model is being
    /// asked to continue after a tool ran.
    pub fn tool_result_present(&self) -> bool {
        self.messages
            .last()
            .is_some_and(|m| m.role == Role::User && m.content.iter().any(|b| matches!(b, Block::ToolResult { .. })))
    }

    /// The text of the most recent tool result anywhere in the conversation.
    pub fn latest_tool_result(&self) -> Option<&str> {
        self.messages.iter().rev().flat_map(|m| m.content.iter().rev()).find_map(|b| match b {
            Block::ToolResult { text, .. } => Some(text.as_str()),
            _ => None,
        })
    }

    pub fn declares_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(blocks: Vec<Block>) -> Message {
        Message { role: Role::User, content: blocks }
    }

    fn loop_conversation() -> Conversation {
        Conversation {
            messages: vec![
                user(vec![Block::Text("weather in Paris?".into())]),
                Message {
                    role: Role::Assistant,
                    content: vec![Block::ToolUse {
                        id: "t1".into(),
                        name: "weather".into(),
                        input: json!({"city": "Paris"}),
                    }],
                },
                user(vec![Block::ToolResult { id: "t1".into(), text: "sunny".into(), is_error: false }]),
            ],
            ..Conversation::default()
        }
    }

    #[test]
    fn tool_loop_facts() {
        let c = loop_conversation();
        assert_eq!(c.last_user_text().as_deref(), Some("weather in Paris?"));
        assert_eq!(c.turn(), 2);
        assert!(c.tool_result_present());
        assert_eq!(c.latest_tool_result(), Some("sunny"));
    }

    #[test]
    fn first_turn_facts() {
        let c = Conversation {
            messages: vec![user(vec![Block::Text("a".into()), Block::Other("image".into()), Block::Text("b".into())])],
            ..Conversation::default()
        };
        assert_eq!(c.last_user_text().as_deref(), Some("a\nb"));
        assert_eq!(c.turn(), 1);
        assert!(!c.tool_result_present());
        assert_eq!(c.latest_tool_result(), None);
    }
}
