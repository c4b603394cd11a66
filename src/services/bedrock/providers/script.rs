//! The script model: a JSON file of rules decides each answer, so a test can drive an agent
//! through a tool loop deterministically.
//!
//! ```json
//! {"rules": [
//!   {"when": {"tool_result_present": true}, "reply": {"text": "It is {{tool_result}}."}},
//!   {"when": {"last_user_text": "(?i)weather"}, "reply": {"tool_use": {"name": "weather", "input": {"city": "Paris"}}}},
//!   {"reply": {"text": "You said: {{last_user_text}}"}}
//! ]}
//! ```
//!
//! The first rule whose `when` matches answers; every condition given must hold:
//! - `last_user_text`: a regular expression searched in `Conversation::last_user_text`;
//! - `turn`: 1 + the number of assistant messages so far;
//! - `tool_result_present`: whether the last message returns a tool result.
//!
//! A `reply` has `text`, `tool_use` (`name` and `input`), or both (text first). In text and in the
//! string values of a tool call's input, `{{tool_result}}` is replaced by the text of the latest
//! tool result and `{{last_user_text}}` by the last user text. A tool call must name a tool the
//! request declares. No matching rule is a ValidationException naming the file and the
//! conversation's last user text.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::local::LocalAnswer;
use crate::services::bedrock::conversation::Conversation;
use crate::services::bedrock::reply::ModelFailure;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    when: WhenFile,
    reply: ReplyFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WhenFile {
    last_user_text: Option<String>,
    turn: Option<usize>,
    tool_result_present: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyFile {
    text: Option<String>,
    tool_use: Option<ToolUseFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolUseFile {
    name: String,
    #[serde(default = "empty_object")]
    input: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

struct Rule {
    last_user_text: Option<Regex>,
    turn: Option<usize>,
    tool_result_present: Option<bool>,
    text: Option<String>,
    tool_use: Option<(String, Value)>,
}

pub struct Script {
    path: PathBuf,
    rules: Vec<Rule>,
}

/// Fill `{{tool_result}}` and `{{last_user_text}}`.
fn fill(template: &str, tool_result: &str, last_user_text: &str) -> String {
    template.replace("{{tool_result}}", tool_result).replace("{{last_user_text}}", last_user_text)
}

fn fill_value(v: &Value, tool_result: &str, last_user_text: &str) -> Value {
    match v {
        Value::String(s) => Value::String(fill(s, tool_result, last_user_text)),
        Value::Array(items) => Value::Array(items.iter().map(|i| fill_value(i, tool_result, last_user_text)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, x)| (k.clone(), fill_value(x, tool_result, last_user_text))).collect())
        }
        other => other.clone(),
    }
}

impl Script {
    /// Read and check the file: JSON of the documented shape, every regex valid, every reply
    /// non-empty.
    pub fn load(path: &Path) -> Result<Script, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the model script {shown}: {e}"))?;
        let file: ScriptFile = serde_json::from_str(&text).map_err(|e| {
            format!(
                "the model script {shown} is not valid: {e} (expected {{\"rules\": [{{\"when\": {{...}}, \"reply\": \
                 {{\"text\": \"...\"}} or {{\"tool_use\": {{\"name\": \"...\", \"input\": {{...}}}}}}}}]}})"
            )
        })?;
        if file.rules.is_empty() {
            return Err(format!("the model script {shown} has no rules"));
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, rule) in file.rules.into_iter().enumerate() {
            let n = i + 1;
            let last_user_text = match &rule.when.last_user_text {
                Some(p) => Some(
                    Regex::new(p)
                        .map_err(|e| format!("rule {n} of the model script {shown}: bad last_user_text regex: {e}"))?,
                ),
                None => None,
            };
            if rule.reply.text.is_none() && rule.reply.tool_use.is_none() {
                return Err(format!("rule {n} of the model script {shown}: reply needs \"text\" or \"tool_use\""));
            }
            if let Some(t) = &rule.reply.tool_use {
                let valid = !t.name.is_empty()
                    && t.name.len() <= 64
                    && t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(format!(
                        "rule {n} of the model script {shown}: tool name '{}' is not a Bedrock tool name \
                         ([a-zA-Z0-9_-]{{1,64}})",
                        t.name
                    ));
                }
            }
            rules.push(Rule {
                last_user_text,
                turn: rule.when.turn,
                tool_result_present: rule.when.tool_result_present,
                text: rule.reply.text,
                tool_use: rule.reply.tool_use.map(|t| (t.name, t.input)),
            });
        }
        Ok(Script { path: path.to_path_buf(), rules })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn answer(&self, conversation: &Conversation) -> Result<LocalAnswer, ModelFailure> {
        let last_user_text = conversation.last_user_text().unwrap_or_default();
        let turn = conversation.turn();
        let tool_result_present = conversation.tool_result_present();
        let matches = |r: &Rule| {
            r.last_user_text.as_ref().is_none_or(|re| re.is_match(&last_user_text))
                && r.turn.is_none_or(|t| t == turn)
                && r.tool_result_present.is_none_or(|p| p == tool_result_present)
        };
        let Some((i, rule)) = self.rules.iter().enumerate().find(|(_, r)| matches(r)) else {
            return Err(ModelFailure::Invalid(format!(
                "No rule of the model script {} matches this conversation (turn {turn}, tool result present: \
                 {tool_result_present}, last user text: {last_user_text:?}).",
                self.path.display()
            )));
        };
        let tool_result = conversation.latest_tool_result().unwrap_or_default();
        let tool_use = match &rule.tool_use {
            Some((name, _)) if !conversation.declares_tool(name) => {
                let declared: Vec<&str> = conversation.tools.iter().map(|t| t.name.as_str()).collect();
                return Err(ModelFailure::Invalid(format!(
                    "Rule {} of the model script {} calls the tool '{name}', which this request does not declare \
                     (declared tools: [{}]).",
                    i + 1,
                    self.path.display(),
                    declared.join(", ")
                )));
            }
            Some((name, input)) => Some((name.clone(), fill_value(input, tool_result, &last_user_text))),
            None => None,
        };
        Ok(LocalAnswer { text: rule.text.as_deref().map(|t| fill(t, tool_result, &last_user_text)), tool_use })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::bedrock::conversation::{Block, Message, Role, ToolSpec};
    use serde_json::json;

    fn script(text: &str) -> Result<Script, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.json");
        std::fs::write(&path, text).unwrap();
        Script::load(&path)
    }

    const WEATHER: &str = r#"{"rules": [
        {"when": {"tool_result_present": true}, "reply": {"text": "It is {{tool_result}} ({{last_user_text}})."}},
        {"when": {"last_user_text": "(?i)weather", "turn": 1},
         "reply": {"tool_use": {"name": "weather", "input": {"q": "{{last_user_text}}", "n": 1}}}}
    ]}"#;

    fn tools() -> Vec<ToolSpec> {
        vec![ToolSpec { name: "weather".into(), description: None, input_schema: json!({}) }]
    }

    fn user(text: &str) -> Message {
        Message { role: Role::User, content: vec![Block::Text(text.into())] }
    }

    #[test]
    fn drives_a_tool_loop() {
        let s = script(WEATHER).unwrap();
        let mut c = Conversation { messages: vec![user("Weather in Paris?")], tools: tools(), ..Default::default() };
        let first = s.answer(&c).unwrap();
        assert_eq!(first.text, None);
        assert_eq!(first.tool_use, Some(("weather".into(), json!({"q": "Weather in Paris?", "n": 1}))));
        c.messages.push(Message {
            role: Role::Assistant,
            content: vec![Block::ToolUse { id: "t".into(), name: "weather".into(), input: json!({}) }],
        });
        c.messages.push(Message {
            role: Role::User,
            content: vec![Block::ToolResult { id: "t".into(), text: "sunny".into(), is_error: false }],
        });
        let second = s.answer(&c).unwrap();
        assert_eq!(second.text.as_deref(), Some("It is sunny (Weather in Paris?)."));
        assert_eq!(second.tool_use, None);
    }

    #[test]
    fn no_match_names_the_file_and_the_text() {
        let s = script(WEATHER).unwrap();
        let c = Conversation { messages: vec![user("hello")], tools: tools(), ..Default::default() };
        let ModelFailure::Invalid(m) = s.answer(&c).unwrap_err() else { panic!() };
        assert!(m.contains("rules.json") && m.contains("\"hello\"") && m.contains("turn 1"), "{m}");
    }

    #[test]
    fn undeclared_tools_are_refused() {
        let s = script(WEATHER).unwrap();
        let c = Conversation { messages: vec![user("weather?")], ..Default::default() };
        let ModelFailure::Invalid(m) = s.answer(&c).unwrap_err() else { panic!() };
        assert!(m.contains("'weather'") && m.contains("declared tools: []"), "{m}");
    }

    #[test]
    fn bad_files_are_refused_at_load() {
        for (text, wanted) in [
            ("{", "not valid"),
            (r#"{"rules": []}"#, "no rules"),
            (r#"{"rules": [{"reply": {}}]}"#, "needs \"text\" or \"tool_use\""),
            (r#"{"rules": [{"when": {"last_user_text": "("}, "reply": {"text": "x"}}]}"#, "bad last_user_text regex"),
            (r#"{"rules": [{"when": {"turns": 1}, "reply": {"text": "x"}}]}"#, "unknown field `turns`"),
            (r#"{"rules": [{"reply": {"tool_use": {"name": "a b"}}}]}"#, "not a Bedrock tool name"),
        ] {
            let err = script(text).err().unwrap_or_else(|| panic!("{text} loaded"));
            assert!(err.contains(wanted), "{text}: {err}");
        }
        assert!(Script::load(Path::new("/nonexistent/rules.json")).err().unwrap().contains("cannot read"));
    }
}
