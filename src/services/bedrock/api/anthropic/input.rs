//! InvokeModel's body in the Anthropic messages format (`anthropic_version`, `messages`,
//! `system`, `max_tokens`, `tools` …), typed and turned into a `Conversation`.
//!
//! Bedrock checks the body against the model's schema and answers a ValidationException
//! "Malformed input request: #: required key [max_tokens] not found, please reformat your input
//! and try again."; Anthropic's own checks (roles) come back in Anthropic's words.

use serde::Deserialize;
use serde_json::Value;

use crate::services::bedrock::conversation::{Block, Conversation, Message, Role, ToolChoice, ToolSpec};

#[derive(Debug, Deserialize)]
pub struct AnthropicBody {
    pub anthropic_version: Option<String>,
    pub messages: Option<Vec<AnthropicMessage>>,
    pub system: Option<Content>,
    pub max_tokens: Option<u32>,
    pub tools: Option<Vec<AnthropicTool>>,
    pub tool_choice: Option<AnthropicToolChoice>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct AnthropicMessage {
    pub role: String,
    pub content: Content,
}

/// `content` (and `system`): a string, or a list of typed blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<AnthropicBlock>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicBlock {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: Option<Content>,
        #[serde(default)]
        is_error: bool,
    },
    /// Documents, thinking blocks … : not read by any provider.
    #[serde(other)]
    Unread,
}

#[derive(Debug, Deserialize)]
pub struct ImageSource {
    pub media_type: Option<String>,
    pub data: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AnthropicTool {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicToolChoice {
    Auto,
    Any,
    Tool { name: String },
    None,
}

/// Bedrock's wording for a body its schema check rejects.
pub fn malformed(detail: &str) -> String {
    if detail.is_empty() {
        "Malformed input request, please reformat your input and try again.".into()
    } else {
        format!("Malformed input request: {detail}, please reformat your input and try again.")
    }
}

fn text_of(content: Option<Content>) -> String {
    match content {
        None => String::new(),
        Some(Content::Text(t)) => t,
        Some(Content::Blocks(blocks)) => blocks
            .into_iter()
            .filter_map(|b| match b {
                AnthropicBlock::Text { text } => Some(text),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn blocks(content: Content) -> Vec<Block> {
    match content {
        Content::Text(t) => vec![Block::Text(t)],
        Content::Blocks(bs) => bs
            .into_iter()
            .map(|b| match b {
                AnthropicBlock::Text { text } => Block::Text(text),
                AnthropicBlock::Image { source } => match (source.media_type, source.data) {
                    (Some(media), Some(data)) => Block::Image {
                        format: media.strip_prefix("image/").unwrap_or(&media).to_string(),
                        base64: data,
                    },
                    _ => Block::Other("image (by URL)".into()),
                },
                AnthropicBlock::ToolUse { id, name, input } => Block::ToolUse { id, name, input },
                AnthropicBlock::ToolResult { tool_use_id, content, is_error } => {
                    Block::ToolResult { id: tool_use_id, text: text_of(content), is_error }
                }
                AnthropicBlock::Unread => Block::Other("unsupported content block".into()),
            })
            .collect(),
    }
}

/// The conversation of an InvokeModel body, or Bedrock's ValidationException message.
pub fn conversation(model_id: &str, body: &[u8]) -> Result<Conversation, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|_| malformed(""))?;
    let Value::Object(map) = &raw else { return Err(malformed("#: expected type: JSONObject, found: JSONArray")) };
    let missing: Vec<String> = ["anthropic_version", "max_tokens", "messages"]
        .iter()
        .filter(|k| !map.contains_key(**k))
        .map(|k| format!("#: required key [{k}] not found"))
        .collect();
    if !missing.is_empty() {
        return Err(malformed(&missing.join("")));
    }
    let body: AnthropicBody = serde_json::from_value(raw).map_err(|e| malformed(&format!("#: {e}")))?;
    let messages = body.messages.unwrap_or_default();
    if messages.is_empty() {
        return Err(malformed("#/messages: expected minimum item count: 1, found: 0"));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(malformed(&format!("#/messages/{i}/role: {other} is not a valid enum value"))),
        };
        if i == 0 && role != Role::User {
            return Err("messages: first message must use the \"user\" role".into());
        }
        if out.last().is_some_and(|p: &Message| p.role == role) {
            return Err(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{}\" roles \
                 in a row",
                role.as_str()
            ));
        }
        out.push(Message { role, content: blocks(m.content) });
    }
    let system = match body.system {
        None => vec![],
        some => vec![text_of(some)],
    };
    let tools = body
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| ToolSpec {
            name: t.name,
            description: t.description,
            input_schema: t.input_schema.unwrap_or_else(|| serde_json::json!({"type": "object"})),
        })
        .collect();
    let tool_choice = body.tool_choice.and_then(|c| match c {
        AnthropicToolChoice::Auto => Some(ToolChoice::Auto),
        AnthropicToolChoice::Any => Some(ToolChoice::Any),
        AnthropicToolChoice::Tool { name } => Some(ToolChoice::Tool(name)),
        AnthropicToolChoice::None => None,
    });
    Ok(Conversation {
        model_id: model_id.to_string(),
        system,
        messages: out,
        tools,
        tool_choice,
        max_tokens: body.max_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        stop_sequences: body.stop_sequences.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Conversation, String> {
        conversation("anthropic.claude-3-haiku-20240307-v1:0", v.to_string().as_bytes())
    }

    #[test]
    fn a_messages_body_with_a_tool_loop() {
        let c = parse(json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 200,
            "system": "be brief",
            "tools": [{"name": "weather", "description": "forecast", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"c": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "rain"}]}]}
            ]
        }))
        .unwrap();
        assert_eq!(c.system, vec!["be brief"]);
        assert_eq!(c.max_tokens, Some(200));
        assert_eq!(c.last_user_text().as_deref(), Some("weather?"));
        assert_eq!(c.latest_tool_result(), Some("rain"));
        assert!(c.declares_tool("weather"));
    }

    #[test]
    fn bedrock_and_anthropic_wording() {
        assert_eq!(
            parse(json!({"messages": [{"role": "user", "content": "x"}]})).unwrap_err(),
            "Malformed input request: #: required key [anthropic_version] not found#: required key [max_tokens] not \
             found, please reformat your input and try again."
        );
        assert_eq!(
            conversation("m", b"not json").unwrap_err(),
            "Malformed input request, please reformat your input and try again."
        );
        let base =
            |messages: Value| json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": messages});
        assert_eq!(
            parse(base(json!([{"role": "assistant", "content": "x"}]))).unwrap_err(),
            "messages: first message must use the \"user\" role"
        );
        assert!(parse(base(json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])))
            .unwrap_err()
            .contains("multiple \"user\" roles in a row"));
    }
}
