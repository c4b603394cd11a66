//! A conversation as an OpenAI chat-completions request.
//!
//! Tool calls become `tool_calls` of the assistant message (input as a JSON string in
//! `arguments`); tool results become `tool` messages, placed before the rest of the user message
//! because the API wants them right after the call. Images travel as data URLs; other block kinds
//! have no chat-completions form and are refused by name.

use serde_json::{json, Map, Value};

use crate::services::bedrock::conversation::{Block, Conversation, Role, ToolChoice};
use crate::services::bedrock::reply::ModelFailure;

fn unsupported(kind: &str) -> ModelFailure {
    ModelFailure::Invalid(format!(
        "The openai model provider cannot pass a '{kind}' content block to an OpenAI-compatible server; send \
         text, images, tool calls and tool results only."
    ))
}

fn image_part(format: &str, base64: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": format!("data:image/{format};base64,{base64}")}})
}

fn user_messages(content: &[Block], out: &mut Vec<Value>) -> Result<(), ModelFailure> {
    let mut parts = Vec::new();
    let mut has_image = false;
    for block in content {
        match block {
            Block::ToolResult { id, text, .. } => {
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            Block::Text(t) => parts.push(json!({"type": "text", "text": t})),
            Block::Image { format, base64 } => {
                has_image = true;
                parts.push(image_part(format, base64));
            }
            Block::ToolUse { .. } => return Err(unsupported("toolUse in a user message")),
            Block::Other(kind) => return Err(unsupported(kind)),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    // Plain text as a string: every server accepts that; content parts only when needed.
    let content = if has_image {
        Value::Array(parts)
    } else {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        Value::String(texts.join("\n"))
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

fn assistant_message(content: &[Block]) -> Result<Value, ModelFailure> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for block in content {
        match block {
            Block::Text(t) => texts.push(t.as_str()),
            Block::ToolUse { id, name, input } => calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}
            })),
            Block::ToolResult { .. } => return Err(unsupported("toolResult in an assistant message")),
            Block::Image { .. } => return Err(unsupported("image in an assistant message")),
            Block::Other(kind) => return Err(unsupported(kind)),
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), json!("assistant"));
    m.insert("content".into(), if texts.is_empty() { Value::Null } else { json!(texts.join("\n")) });
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(m))
}

/// The request body for `model`; `stream` asks for server-sent events with a final usage chunk.
pub fn body(conversation: &Conversation, model: &str, stream: bool) -> Result<Value, ModelFailure> {
    let mut messages = Vec::new();
    if !conversation.system.is_empty() {
        messages.push(json!({"role": "system", "content": conversation.system.join("\n")}));
    }
    for message in &conversation.messages {
        match message.role {
            Role::User => user_messages(&message.content, &mut messages)?,
            Role::Assistant => messages.push(assistant_message(&message.content)?),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    if !conversation.tools.is_empty() {
        let tools = conversation
            .tools
            .iter()
            .map(|t| {
                let mut function = Map::new();
                function.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    function.insert("description".into(), json!(d));
                }
                function.insert("parameters".into(), t.input_schema.clone());
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &conversation.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Any => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), v);
    }
    if let Some(n) = conversation.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = conversation.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = conversation.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !conversation.stop_sequences.is_empty() {
        body.insert("stop".into(), json!(conversation.stop_sequences));
    }
    body.insert("stream".into(), json!(stream));
    if stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::bedrock::conversation::{Message, ToolSpec};

    #[test]
    fn a_tool_loop_translates_both_ways() {
        let c = Conversation {
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            system: vec!["be brief".into()],
            messages: vec![
                Message { role: Role::User, content: vec![Block::Text("weather?".into())] },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Block::Text("checking".into()),
                        Block::ToolUse {
                            id: "tooluse_1".into(),
                            name: "weather".into(),
                            input: json!({"city": "Oslo"}),
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult { id: "tooluse_1".into(), text: "rain".into(), is_error: false }],
                },
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: Some("forecast".into()),
                input_schema: json!({"type": "object"}),
            }],
            tool_choice: Some(ToolChoice::Any),
            max_tokens: Some(50),
            stop_sequences: vec!["END".into()],
            ..Conversation::default()
        };
        let b = body(&c, "llama3", true).unwrap();
        assert_eq!(
            b,
            json!({
                "model": "llama3",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": "checking", "tool_calls": [
                        {"id": "tooluse_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "tooluse_1", "content": "rain"}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "forecast", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "max_tokens": 50,
                "stop": ["END"],
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn images_become_content_parts_and_documents_are_refused() {
        let c = Conversation {
            messages: vec![Message {
                role: Role::User,
                content: vec![
                    Block::Text("what is this".into()),
                    Block::Image { format: "png".into(), base64: "AAAA".into() },
                ],
            }],
            ..Conversation::default()
        };
        let b = body(&c, "m", false).unwrap();
        assert_eq!(b["messages"][0]["content"][1]["image_url"]["url"], "data:image/png;base64,AAAA");
        assert_eq!(b["stream"], false);
        assert!(b.get("stream_options").is_none());
        let c = Conversation {
            messages: vec![Message { role: Role::User, content: vec![Block::Other("document".into())] }],
            ..Conversation::default()
        };
        assert!(matches!(body(&c, "m", false), Err(ModelFailure::Invalid(m)) if m.contains("'document'")));
    }
}
