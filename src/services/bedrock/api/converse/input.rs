//! Converse and ConverseStream requests: typed from the bound input (after the model's own
//! validation), turned into a `Conversation`, and checked the way Bedrock checks a conversation
//! beyond what its model can say, with Bedrock's wording.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::services::bedrock::conversation::{Block, Conversation, Message, Role, ToolChoice, ToolSpec};

/// The members of ConverseRequest (and ConverseStreamRequest) that answering reads. Guardrails,
/// prompt variables, performance and service tiers do not change a local answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseInput {
    pub model_id: String,
    #[serde(default)]
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub system: Vec<WireSystemBlock>,
    pub inference_config: Option<WireInferenceConfig>,
    pub tool_config: Option<WireToolConfig>,
}

#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    pub content: Vec<WireBlock>,
}

/// A `ContentBlock` union: the members read here, and the name of any other.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireBlock {
    pub text: Option<String>,
    pub image: Option<WireImage>,
    pub tool_use: Option<WireToolUse>,
    pub tool_result: Option<WireToolResult>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireImage {
    pub format: String,
    pub source: WireImageSource,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireImageSource {
    /// Base64, as blobs travel in JSON.
    pub bytes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireToolUse {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireToolResult {
    pub tool_use_id: String,
    pub content: Vec<WireToolResultContent>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WireToolResultContent {
    pub text: Option<String>,
    pub json: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct WireSystemBlock {
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireInferenceConfig {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop_sequences: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireToolConfig {
    pub tools: Vec<WireTool>,
    pub tool_choice: Option<WireToolChoice>,
}

/// A `Tool` union; cache points and system tools carry no specification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTool {
    pub tool_spec: Option<WireToolSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireToolSpec {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: WireInputSchema,
}

#[derive(Debug, Deserialize)]
pub struct WireInputSchema {
    pub json: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct WireToolChoice {
    pub auto: Option<Value>,
    pub any: Option<Value>,
    pub tool: Option<WireSpecificTool>,
}

#[derive(Debug, Deserialize)]
pub struct WireSpecificTool {
    pub name: String,
}

pub const MUST_START_WITH_USER: &str =
    "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
pub const MUST_ALTERNATE: &str = "A conversation must alternate between user and assistant roles. Make sure the \
                                  conversation alternates between user and assistant roles and try again.";
pub const TOOL_CONFIG_REQUIRED: &str =
    "The toolConfig field must be defined when using toolUse and toolResult content blocks.";

fn tool_result_text(content: &[WireToolResultContent]) -> String {
    let parts: Vec<String> = content
        .iter()
        .filter_map(|c| match (&c.text, &c.json) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(j)) => Some(j.to_string()),
            // Images, documents … in a tool result: named, so a text model still sees something.
            (None, None) => c.other.keys().next().map(|k| format!("[{k}]")),
        })
        .collect();
    parts.join("\n")
}

fn block(b: WireBlock) -> Option<Block> {
    if let Some(t) = b.text {
        return Some(Block::Text(t));
    }
    if let Some(u) = b.tool_use {
        return Some(Block::ToolUse { id: u.tool_use_id, name: u.name, input: u.input });
    }
    if let Some(r) = b.tool_result {
        let text = tool_result_text(&r.content);
        return Some(Block::ToolResult { id: r.tool_use_id, text, is_error: r.status.as_deref() == Some("error") });
    }
    if let Some(i) = b.image {
        return Some(match i.source.bytes {
            Some(base64) => Block::Image { format: i.format, base64 },
            None => Block::Other("image (from S3)".into()),
        });
    }
    let kind = b.other.into_iter().find(|(_, v)| !v.is_null()).map(|(k, _)| k)?;
    // A cache point marks where a prompt cache may end; it is not content.
    (kind != "cachePoint").then_some(Block::Other(kind))
}

/// Bedrock's checks of the conversation itself, in the order it reports them.
fn check(input: &ConverseInput) -> Result<(), String> {
    let mut previous: Option<&str> = None;
    let mut tool_uses_before = 0;
    for (i, m) in input.messages.iter().enumerate() {
        match (previous, m.role.as_str()) {
            (None, r) if r != "user" => return Err(MUST_START_WITH_USER.into()),
            (Some(p), r) if p == r => return Err(MUST_ALTERNATE.into()),
            _ => {}
        }
        let mut tool_results = 0;
        for (j, b) in m.content.iter().enumerate() {
            if b.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(format!(
                    "The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the \
                     text field, and try again."
                ));
            }
            if (b.tool_use.is_some() || b.tool_result.is_some()) && input.tool_config.is_none() {
                return Err(TOOL_CONFIG_REQUIRED.into());
            }
            tool_results += usize::from(b.tool_result.is_some());
        }
        if tool_results > tool_uses_before {
            return Err(format!(
                "The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of \
                 previous turn."
            ));
        }
        tool_uses_before = m.content.iter().filter(|b| b.tool_use.is_some()).count();
        previous = Some(m.role.as_str());
    }
    if input.messages.is_empty() {
        return Err(MUST_START_WITH_USER.into());
    }
    Ok(())
}

impl ConverseInput {
    /// The conversation to answer, or Bedrock's ValidationException message.
    pub fn into_conversation(self) -> Result<Conversation, String> {
        check(&self)?;
        let mut system: Vec<String> = self.system.into_iter().filter_map(|s| s.text).collect();
        let mut messages = Vec::with_capacity(self.messages.len());
        for m in self.messages {
            let content: Vec<Block> = m.content.into_iter().filter_map(block).collect();
            match m.role.as_str() {
                "assistant" => messages.push(Message { role: Role::Assistant, content }),
                // The model's enum allows "system" messages; they instruct like the system prompt.
                "system" => system.extend(content.into_iter().filter_map(|b| match b {
                    Block::Text(t) => Some(t),
                    _ => None,
                })),
                _ => messages.push(Message { role: Role::User, content }),
            }
        }
        let tool_config = self.tool_config;
        let tools = tool_config
            .as_ref()
            .map(|c| {
                c.tools
                    .iter()
                    .filter_map(|t| t.tool_spec.as_ref())
                    .map(|s| ToolSpec {
                        name: s.name.clone(),
                        description: s.description.clone(),
                        input_schema: s.input_schema.json.clone().unwrap_or(Value::Object(Map::new())),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tool_choice = tool_config.and_then(|c| c.tool_choice).and_then(|c| match (c.auto, c.any, c.tool) {
            (_, _, Some(t)) => Some(ToolChoice::Tool(t.name)),
            (_, Some(_), None) => Some(ToolChoice::Any),
            (Some(_), None, None) => Some(ToolChoice::Auto),
            _ => None,
        });
        let inference = self.inference_config;
        Ok(Conversation {
            model_id: self.model_id,
            system,
            messages,
            tools,
            tool_choice,
            max_tokens: inference.as_ref().and_then(|i| i.max_tokens),
            temperature: inference.as_ref().and_then(|i| i.temperature),
            top_p: inference.as_ref().and_then(|i| i.top_p),
            stop_sequences: inference.map(|i| i.stop_sequences).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Conversation, String> {
        serde_json::from_value::<ConverseInput>(v).unwrap().into_conversation()
    }

    #[test]
    fn a_strands_tool_loop_request() {
        let c = parse(json!({
            "modelId": "us.anthropic.claude-sonnet-4-20250514-v1:0",
            "system": [{"text": "You are helpful."}, {"cachePoint": {"type": "default"}}],
            "messages": [
                {"role": "user", "content": [{"text": "weather?"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Oslo"}}}]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t1", "status": "success", "content": [{"text": "rain"}, {"json": {"mm": 3}}]}},
                    {"cachePoint": {"type": "default"}}
                ]}
            ],
            "toolConfig": {"tools": [{"toolSpec": {"name": "weather", "description": "forecast",
                                                   "inputSchema": {"json": {"type": "object"}}}}],
                           "toolChoice": {"auto": {}}},
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5}
        }))
        .unwrap();
        assert_eq!(c.system, vec!["You are helpful."]);
        assert_eq!(c.messages.len(), 3);
        assert_eq!(
            c.messages[2].content,
            vec![Block::ToolResult { id: "t1".into(), text: "rain\n{\"mm\":3}".into(), is_error: false }]
        );
        assert_eq!(c.tools[0].input_schema, json!({"type": "object"}));
        assert_eq!(c.tool_choice, Some(ToolChoice::Auto));
        assert_eq!((c.max_tokens, c.temperature), (Some(100), Some(0.5)));
    }

    #[test]
    fn bedrock_conversation_checks() {
        let user = |t: &str| json!({"role": "user", "content": [{"text": t}]});
        let cases = [
            (json!({"modelId": "m", "messages": []}), MUST_START_WITH_USER.to_string()),
            (json!({"modelId": "m", "messages": [{"role": "assistant", "content": [{"text": "x"}]}]}), MUST_START_WITH_USER.into()),
            (json!({"modelId": "m", "messages": [user("a"), user("b")]}), MUST_ALTERNATE.into()),
            (
                json!({"modelId": "m", "messages": [user(" ")]}),
                "The text field in the ContentBlock object at messages.0.content.0 is blank. Add text to the text field, and try again.".into(),
            ),
            (
                json!({"modelId": "m", "messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": []}}]}]}),
                TOOL_CONFIG_REQUIRED.into(),
            ),
            (
                json!({"modelId": "m", "toolConfig": {"tools": []},
                       "messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": []}}]}]}),
                "The number of toolResult blocks at messages.0.content exceeds the number of toolUse blocks of previous turn.".into(),
            ),
        ];
        for (input, wanted) in cases {
            assert_eq!(parse(input.clone()).unwrap_err(), wanted, "{input}");
        }
    }

    #[test]
    fn unread_blocks_are_named() {
        let c = parse(json!({"modelId": "m", "messages": [{"role": "user", "content": [
            {"text": "see"}, {"document": {"format": "pdf", "name": "d", "source": {"bytes": "AA=="}}},
            {"image": {"format": "png", "source": {"bytes": "AA=="}}}
        ]}]}))
        .unwrap();
        assert_eq!(
            c.messages[0].content,
            vec![
                Block::Text("see".into()),
                Block::Other("document".into()),
                Block::Image { format: "png".into(), base64: "AA==".into() }
            ]
        );
    }
}
