//! The botocore service models that drive routing and validation.
//!
//! `tools/extract_model.py` copies the operations we serve (and every error shape) out of botocore's
//! models into the JSON files beside this module; nothing here is written by hand, so a route or a
//! constraint can only differ from AWS's if the model does.

use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

mod validate;
pub use validate::{prune, validate, FieldError};

#[derive(Debug, Deserialize)]
pub struct ShapeRef {
    pub shape: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default, rename = "locationName")]
    pub location_name: Option<String>,
    #[serde(default, rename = "idempotencyToken")]
    pub idempotency_token: bool,
}

#[derive(Debug, Deserialize)]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub members: indexmap_lite::OrderedMembers,
    #[serde(default)]
    pub required: Vec<String>,
    pub member: Option<ShapeRef>,
    pub key: Option<ShapeRef>,
    pub value: Option<ShapeRef>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub pattern: Option<String>,
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    #[serde(default)]
    pub union: bool,
    /// A document: free-form JSON whatever the declared type.
    #[serde(default)]
    pub document: bool,
    #[serde(default)]
    pub sensitive: bool,
    pub payload: Option<String>,
    #[serde(default)]
    pub exception: bool,
    pub error: Option<ErrorTrait>,
    #[serde(skip)]
    compiled_pattern: OnceLock<Option<Pattern>>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorTrait {
    #[serde(rename = "httpStatusCode")]
    pub http_status_code: u16,
}

impl Shape {
    /// The model's pattern, matched against the whole value as AWS's validators do.
    pub fn pattern_regex(&self) -> Option<&Pattern> {
        self.compiled_pattern.get_or_init(|| self.pattern.as_deref().and_then(Pattern::compile)).as_ref()
    }
}

/// A model pattern. The `regex` crate has no look-around, but botocore models use one form of it:
/// a leading negative lookahead, `(?!reserved$|names$)[a-z]+`. That is "matches the rest and does
/// not start with the excluded alternatives", so it is kept as two regexes instead.
#[derive(Debug)]
pub struct Pattern {
    whole: Regex,
    excluded: Option<Regex>,
}

impl Pattern {
    fn compile(pattern: &str) -> Option<Pattern> {
        let Some(rest) = pattern.strip_prefix("(?!") else {
            return Some(Pattern { whole: Regex::new(&format!("^(?:{pattern})$")).ok()?, excluded: None });
        };
        // The lookahead ends at its matching parenthesis (escaped ones do not count).
        let (mut depth, mut escaped, mut end) = (1usize, false, None);
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end?;
        let (lookahead, tail) = (&rest[..end], &rest[end + 1..]);
        Some(Pattern {
            whole: Regex::new(&format!("^(?:{tail})$")).ok()?,
            excluded: Some(Regex::new(&format!("^(?:{lookahead})")).ok()?),
        })
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.whole.is_match(value) && !self.excluded.as_ref().is_some_and(|e| e.is_match(value))
    }
}

/// Members of a structure in model order (ordered so validation messages are stable).
mod indexmap_lite {
    use super::ShapeRef;
    use serde::{Deserialize, Deserializer};

    #[derive(Debug, Default)]
    pub struct OrderedMembers(pub Vec<(String, ShapeRef)>);

    impl<'de> Deserialize<'de> for OrderedMembers {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                out.push((k, serde_json::from_value(v).map_err(serde::de::Error::custom)?));
            }
            Ok(OrderedMembers(out))
        }
    }

    impl OrderedMembers {
        pub fn iter(&self) -> impl Iterator<Item = (&String, &ShapeRef)> {
            self.0.iter().map(|(k, v)| (k, v))
        }
        pub fn get(&self, name: &str) -> Option<&ShapeRef> {
            self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct HttpTrait {
    pub method: String,
    #[serde(rename = "requestUri")]
    pub request_uri: String,
    #[serde(rename = "responseCode", default = "default_status")]
    pub response_code: u16,
}

fn default_status() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub name: String,
    pub http: HttpTrait,
    pub input: Option<ShapeRef>,
    pub output: Option<ShapeRef>,
}

#[derive(Debug, Deserialize)]
pub struct OperationSummary {
    pub method: String,
    #[serde(rename = "requestUri")]
    pub request_uri: String,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(rename = "serviceId")]
    pub service_id: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
}

#[derive(Debug, Deserialize)]
pub struct ServiceModel {
    pub metadata: Metadata,
    pub operations: ModelMap<Operation>,
    pub shapes: ModelMap<Shape>,
    #[serde(rename = "allOperations")]
    pub all_operations: ModelMap<OperationSummary>,
}

/// A model's operations or shapes by name. Every request looks names up in these (an invocation
/// some twenty times: its operation, then each member's shape as its input is validated), and
/// their keys are the model's own names, fixed at build time, never a client's: so the fast,
/// unkeyed Fx hash instead of the standard library's SipHash, whose keying protects maps that
/// clients fill and cost some 270 instructions a lookup here.
pub type ModelMap<V> = rustc_hash::FxHashMap<String, V>;

impl ServiceModel {
    pub fn shape(&self, name: &str) -> &Shape {
        self.shapes.get(name).unwrap_or_else(|| panic!("model has no shape {name}"))
    }

    pub fn operation(&self, name: &str) -> &Operation {
        self.operations.get(name).unwrap_or_else(|| panic!("model has no operation {name}"))
    }

    /// The HTTP status AWS uses for a modelled error shape.
    pub fn error_status(&self, code: &str) -> Option<u16> {
        self.shapes.get(code).and_then(|s| s.error.as_ref()).map(|e| e.http_status_code)
    }
}

/// A model from its JSON text (the embedded files are valid; a broken one is a build mistake).
pub fn load(text: &str) -> ServiceModel {
    serde_json::from_str(text).expect("embedded service model is valid JSON")
}

pub fn control() -> &'static ServiceModel {
    static MODEL: OnceLock<ServiceModel> = OnceLock::new();
    MODEL.get_or_init(|| load(include_str!("bedrock-agentcore-control.json")))
}

pub fn data() -> &'static ServiceModel {
    static MODEL: OnceLock<ServiceModel> = OnceLock::new();
    MODEL.get_or_init(|| load(include_str!("bedrock-agentcore.json")))
}

/// A JSON value's type in the words a validation message uses.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "structure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_load_and_every_pattern_compiles() {
        for model in [control(), data(), crate::services::sts::model()] {
            for (name, shape) in &model.shapes {
                if shape.pattern.is_some() {
                    assert!(shape.pattern_regex().is_some(), "pattern of {name} does not compile");
                }
            }
        }
        assert_eq!(control().metadata.api_version, "2023-06-05");
        assert_eq!(data().metadata.api_version, "2024-02-28");
        assert_eq!(control().operation("CreateAgentRuntime").http.response_code, 202);
    }

    #[test]
    fn a_leading_negative_lookahead_excludes_its_alternatives() {
        let p = Pattern::compile("(?!memoryStrategyId$|actorId$|sessionId$)[a-z][a-z0-9]*").unwrap();
        assert!(p.is_match("topic") && p.is_match("actorid2") && p.is_match("actoridx"));
        assert!(!p.is_match("actorId") && !p.is_match("sessionId") && !p.is_match("Topic"));
        let reserved = Pattern::compile("(?!ab$)[a-z]+").unwrap();
        assert!(!reserved.is_match("ab") && reserved.is_match("abc") && reserved.is_match("a"));
        let plain = Pattern::compile("[a-z]+").unwrap();
        assert!(plain.is_match("abc") && !plain.is_match("abc1"));
    }
}
