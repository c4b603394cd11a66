//! The awsQuery protocol's input side: a form-encoded body (or query string) of
//! `Action=…&Version=…&Name=value&List.member.1=…&Struct.Field=…` read into JSON by the operation's
//! input shape, so the model validator checks it like any other input.

use serde_json::{Map, Value};

use super::model::{FieldError, ServiceModel, Shape};

/// Form pairs, decoded (`+` is a space).
pub use crate::kernel::query::form_pairs;

/// The first value of `name` in the body, else in the query string.
pub fn param(body: &[(String, String)], query: &[(String, String)], name: &str) -> Option<String> {
    body.iter().chain(query).find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The input of `shape_name` read from `params` (Action and Version are not members and are ignored).
pub fn bind(model: &ServiceModel, shape_name: &str, params: &[(String, String)]) -> Value {
    bind_shape(model, model.shape(shape_name), "", params).unwrap_or(Value::Object(Map::new()))
}

fn lookup<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn bind_shape(model: &ServiceModel, shape: &Shape, prefix: &str, params: &[(String, String)]) -> Option<Value> {
    match shape.kind.as_str() {
        "structure" => {
            let members: Map<String, Value> = shape
                .members
                .iter()
                .filter_map(|(name, member)| {
                    let key = join(prefix, member.location_name.as_deref().unwrap_or(name));
                    bind_shape(model, model.shape(&member.shape), &key, params).map(|v| (name.clone(), v))
                })
                .collect();
            // The top level always exists; nested structures only when one of their members was sent.
            (prefix.is_empty() || !members.is_empty()).then_some(Value::Object(members))
        }
        "list" => {
            let member = shape.member.as_ref()?;
            // `List=` (empty) sends an empty list.
            if lookup(params, prefix) == Some("") {
                return Some(Value::Array(Vec::new()));
            }
            let items: Vec<Value> = (1..)
                .map(|i| bind_shape(model, model.shape(&member.shape), &format!("{prefix}.member.{i}"), params))
                .take_while(Option::is_some)
                .flatten()
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        "map" => {
            let value_ref = shape.value.as_ref()?;
            let entries: Map<String, Value> = (1..)
                .map_while(|i| {
                    let entry = format!("{prefix}.entry.{i}");
                    let k = lookup(params, &format!("{entry}.key"))?.to_string();
                    let v = bind_shape(model, model.shape(&value_ref.shape), &format!("{entry}.value"), params)?;
                    Some((k, v))
                })
                .collect();
            (!entries.is_empty()).then_some(Value::Object(entries))
        }
        kind => {
            let raw = lookup(params, prefix)?;
            Some(match kind {
                "integer" | "long" => raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(raw.into())),
                "boolean" => match raw {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    other => Value::String(other.into()),
                },
                "float" | "double" => raw.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::String(raw.into())),
                _ => Value::String(raw.to_string()),
            })
        }
    }
}

/// AWS query services name members in validation messages with a lower-case first letter
/// (`'roleSessionName'`, where the model says `RoleSessionName`).
pub fn query_wording(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    for e in &mut errors {
        e.path = e
            .path
            .split('.')
            .map(|segment| {
                let mut chars = segment.chars();
                match chars.next() {
                    Some(first) => first.to_lowercase().chain(chars).collect::<String>(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join(".");
    }
    errors
}
