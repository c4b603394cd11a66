//! restJson1 request binding: assemble an operation's input from URI labels, query string,
//! headers and JSON body according to the model's `location` traits, then validate it.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::model::{self, ServiceModel};
use crate::kernel::error::{Error, ErrorKind, FieldProblem, ValidationReason};

/// Everything of the HTTP request that input binding reads.
pub struct HttpInput<'a> {
    pub labels: &'a HashMap<String, String>,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

fn cannot_parse(message: String) -> Error {
    Error::new(ErrorKind::Validation { reason: ValidationReason::CannotParse, fields: vec![] }, message)
}

/// Convert a query-string or header text to the JSON type of `shape`.
fn typed(model: &ServiceModel, shape_name: &str, text: &str, member: &str) -> Result<Value, Error> {
    let shape = model.shape(shape_name);
    match shape.kind.as_str() {
        "integer" | "long" => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| cannot_parse(format!("Value '{text}' at '{member}' is not an integer."))),
        "boolean" => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(cannot_parse(format!("Value '{text}' at '{member}' is not a boolean."))),
        },
        _ => Ok(Value::String(text.to_string())),
    }
}

/// Build the input object for `operation`. Members bound to the raw payload (blobs) are skipped;
/// their handlers read the body themselves.
pub fn bind(model: &ServiceModel, operation: &str, http: &HttpInput<'_>) -> Result<Map<String, Value>, Error> {
    let op = model.operation(operation);
    let Some(input_ref) = &op.input else {
        return Ok(Map::new());
    };
    let shape = model.shape(&input_ref.shape);
    let query = crate::kernel::query::form_pairs(http.raw_query);
    let mut out = Map::new();
    let mut has_body_members = false;
    for (name, member) in shape.members.iter() {
        let location_name = member.location_name.as_deref().unwrap_or(name);
        match member.location.as_deref() {
            Some("uri") => {
                if let Some(v) = http.labels.get(location_name) {
                    out.insert(name.clone(), Value::String(v.clone()));
                }
            }
            Some("querystring") => {
                let values: Vec<&String> = query.iter().filter(|(k, _)| k == location_name).map(|(_, v)| v).collect();
                if values.is_empty() {
                    continue;
                }
                let member_shape = model.shape(&member.shape);
                if member_shape.kind == "list" {
                    let item = member_shape.member.as_ref().map(|m| m.shape.as_str()).unwrap_or("String");
                    let items = values.iter().map(|v| typed(model, item, v, name)).collect::<Result<Vec<_>, _>>()?;
                    out.insert(name.clone(), Value::Array(items));
                } else {
                    out.insert(name.clone(), typed(model, &member.shape, values[0], name)?);
                }
            }
            Some("header") => {
                let mut values =
                    http.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(location_name)).map(|(_, v)| v.as_str());
                let Some(first) = values.next() else { continue };
                // A header sent more than once reads as its values joined by commas (RFC 9110);
                // once, as itself, without a copy.
                let text = match values.next() {
                    None => std::borrow::Cow::Borrowed(first),
                    Some(second) => [first, second].into_iter().chain(values).collect::<Vec<_>>().join(",").into(),
                };
                out.insert(name.clone(), typed(model, &member.shape, &text, name)?);
            }
            Some(_) => {}
            None => {
                if shape.payload.as_deref() != Some(name.as_str()) {
                    has_body_members = true;
                }
            }
        }
    }
    if let Some(payload) = &shape.payload {
        let member = shape.members.get(payload).map(|m| model.shape(&m.shape));
        if member.is_some_and(|m| m.kind == "structure") {
            // A structure payload is the whole JSON body (InvokeAgentRuntimeCommand's `body`).
            if !http.body.iter().all(u8::is_ascii_whitespace) {
                let v: Value = serde_json::from_slice(http.body)
                    .map_err(|e| cannot_parse(format!("The request body is not valid JSON: {e}.")))?;
                out.insert(payload.clone(), v);
            }
        } else {
            // Blob payloads (InvokeAgentRuntime's `payload`) are read raw by their handler; this
            // marks the member present for validation.
            out.insert(payload.clone(), Value::String(String::new()));
        }
    }
    if has_body_members && !http.body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(http.body)
            .map_err(|e| cannot_parse(format!("The request body is not valid JSON: {e}.")))?;
        let Value::Object(body) = body else {
            return Err(cannot_parse("The request body must be a JSON object.".into()));
        };
        for (name, member) in shape.members.iter() {
            if member.location.is_none() && shape.payload.as_deref() != Some(name.as_str()) {
                if let Some(v) = body.get(name) {
                    out.insert(name.clone(), v.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Bind and validate; a violation becomes AWS's ValidationException with `fieldList`.
pub fn bind_and_validate(
    model: &ServiceModel,
    operation: &str,
    http: &HttpInput<'_>,
) -> Result<Map<String, Value>, Error> {
    let input = Value::Object(bind(model, operation, http)?);
    if let Some(input_ref) = &model.operation(operation).input {
        let problems = model::validate(model, &input_ref.shape, &input);
        if !problems.is_empty() {
            return Err(validation_error(&problems));
        }
    }
    let Value::Object(input) = input else { unreachable!("bound as an object just above") };
    Ok(input)
}

/// AWS's wording for a list of violations: `2 validation errors detected: Value … ; Value …`.
pub fn validation_message(problems: &[model::FieldError]) -> String {
    let n = problems.len();
    let messages: Vec<String> = problems.iter().map(model::FieldError::message).collect();
    format!("{n} validation error{} detected: {}", if n == 1 { "" } else { "s" }, messages.join("; "))
}

pub fn validation_error(problems: &[model::FieldError]) -> Error {
    let message = validation_message(problems);
    let reason = if problems.iter().any(|p| p.wrong_type) {
        ValidationReason::CannotParse
    } else {
        ValidationReason::FieldValidationFailed
    };
    Error::new(
        ErrorKind::Validation {
            reason,
            fields: problems.iter().map(|p| FieldProblem { name: p.path.clone(), message: p.message() }).collect(),
        },
        message,
    )
}

/// Recursively key-sorted JSON, so equal requests hash equally whatever order a client wrote keys in.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_double_from_a_request_survives_being_written_and_read_again() {
        // Found by the restjson_input fuzz target: without correctly rounded parsing the shortest
        // form of a parsed double read back as a different double.
        let value: Value = serde_json::from_str(r#"{"t": 17666666666666666666666666666666666666666666000.5}"#).unwrap();
        let again: Value = serde_json::from_str(&canonical_json(&value)).unwrap();
        assert_eq!(again, value);
    }

    #[test]
    fn binds_query_labels_and_body() {
        let labels = HashMap::from([("agentRuntimeId".to_string(), "a-AbCdEf1234".to_string())]);
        let http = HttpInput { labels: &labels, raw_query: "version=3", headers: &[], body: b"" };
        let input = bind_and_validate(model::control(), "GetAgentRuntime", &http).unwrap();
        assert_eq!(input["agentRuntimeId"], "a-AbCdEf1234");
        assert_eq!(input["agentRuntimeVersion"], "3");

        let labels = HashMap::from([(
            "resourceArn".to_string(),
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-AbCdEf1234".to_string(),
        )]);
        let http = HttpInput { labels: &labels, raw_query: "tagKeys=k1&tagKeys=k%202", headers: &[], body: b"" };
        let input = bind_and_validate(model::control(), "UntagResource", &http).unwrap();
        assert_eq!(input["tagKeys"], serde_json::json!(["k1", "k 2"]));
    }

    #[test]
    fn a_header_sent_twice_binds_as_its_values_joined_by_commas() {
        let labels = HashMap::from([("agentRuntimeArn".to_string(), "a-AbCdEf1234".to_string())]);
        let pairs = |values: &[&str]| -> Vec<(String, String)> {
            values.iter().map(|v| ("accept".to_string(), v.to_string())).collect()
        };
        let bound = |headers: &[(String, String)]| {
            let http = HttpInput { labels: &labels, raw_query: "", headers, body: b"{}" };
            bind_and_validate(model::data(), "InvokeAgentRuntime", &http).unwrap()
        };
        assert_eq!(bound(&pairs(&["application/json"]))["accept"], "application/json");
        assert_eq!(bound(&pairs(&["text/plain", "application/json"]))["accept"], "text/plain,application/json");
        assert!(!bound(&[]).contains_key("accept"));
    }

    #[test]
    fn integers_in_the_query_are_checked() {
        let labels = HashMap::new();
        let http = HttpInput { labels: &labels, raw_query: "maxResults=abc", headers: &[], body: b"" };
        let err = bind_and_validate(model::control(), "ListAgentRuntimes", &http).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Validation { reason: ValidationReason::CannotParse, .. }));
        let http = HttpInput { labels: &labels, raw_query: "maxResults=500", headers: &[], body: b"" };
        let err = bind_and_validate(model::control(), "ListAgentRuntimes", &http).unwrap_err();
        assert!(err.message.contains("less than or equal to 100"), "{}", err.message);
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,{"d":1,"c":2}]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":[1,{"c":2,"d":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }
}
