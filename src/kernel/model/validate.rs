//! Validation of a request against its input shape, with AWS's wording.
//!
//! AWS's validators report every violated constraint as
//! `Value '<v>' at '<path>' failed to satisfy constraint: Member must …`; the SDKs show these messages
//! verbatim, so we keep the wording. Patterns match the whole value. Unknown members are ignored, as
//! AWS ignores them.

use serde_json::Value;

use super::{json_kind, ServiceModel, Shape};

/// One violated constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the member, e.g. `agentRuntimeArtifact.containerConfiguration.containerUri`.
    pub path: String,
    /// The constraint, e.g. `Member must not be null`.
    pub constraint: String,
    /// The offending value as shown in the message; `None` for sensitive members.
    pub shown_value: Option<String>,
    /// The value has the wrong JSON type (the request cannot be parsed into the shape).
    pub wrong_type: bool,
}

impl FieldError {
    pub fn message(&self) -> String {
        match &self.shown_value {
            Some(v) => format!("Value {v} at '{}' failed to satisfy constraint: {}", self.path, self.constraint),
            None => format!("Value at '{}' failed to satisfy constraint: {}", self.path, self.constraint),
        }
    }
}

/// The value of member `name` in a structure's JSON object. Inputs have a few members each, and
/// every one of a shape's members is looked up: comparing a handful of keys costs less than
/// hashing the name with the keyed SipHash of serde_json's map (measured: some 270 instructions a
/// lookup, a dozen lookups per invocation).
fn member_value<'v>(map: &'v serde_json::Map<String, Value>, name: &str) -> Option<&'v Value> {
    const SCANNED_UP_TO: usize = 8;
    if map.len() <= SCANNED_UP_TO {
        map.iter().find(|(key, _)| *key == name).map(|(_, value)| value)
    } else {
        map.get(name)
    }
}

/// Check `value` against the shape named `shape_name`; returns every violation.
pub fn validate(model: &ServiceModel, shape_name: &str, value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check(model, model.shape(shape_name), value, "", false, &mut errors);
    errors
}

/// `value` without members the shape does not define, at any depth (AWS ignores them, so they are
/// neither stored nor returned).
pub fn prune(model: &ServiceModel, shape_name: &str, value: &Value) -> Value {
    let shape = model.shape(shape_name);
    if shape.document {
        return value.clone();
    }
    match (shape.kind.as_str(), value) {
        ("structure", Value::Object(map)) => Value::Object(
            shape
                .members
                .iter()
                .filter_map(|(name, member)| map.get(name).map(|v| (name.clone(), prune(model, &member.shape, v))))
                .collect(),
        ),
        ("list", Value::Array(items)) => match &shape.member {
            Some(m) => Value::Array(items.iter().map(|i| prune(model, &m.shape, i)).collect()),
            None => value.clone(),
        },
        ("map", Value::Object(map)) => match &shape.value {
            Some(v) => Value::Object(map.iter().map(|(k, x)| (k.clone(), prune(model, &v.shape, x))).collect()),
            None => value.clone(),
        },
        _ => value.clone(),
    }
}

fn show(value: &Value, sensitive: bool) -> Option<String> {
    if sensitive {
        return None;
    }
    Some(match value {
        Value::Null => "null".to_string(),
        Value::String(s) => format!("'{s}'"),
        other => format!("'{other}'"),
    })
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn push(errors: &mut Vec<FieldError>, path: &str, value: &Value, sensitive: bool, constraint: String) {
    errors.push(FieldError {
        path: path.to_string(),
        constraint,
        shown_value: show(value, sensitive),
        wrong_type: false,
    });
}

fn check(
    model: &ServiceModel,
    shape: &Shape,
    value: &Value,
    path: &str,
    sensitive: bool,
    errors: &mut Vec<FieldError>,
) {
    let sensitive = sensitive || shape.sensitive;
    if shape.document {
        // A document is free-form JSON (a string, a number, an object, ...), whatever its `type`.
        return;
    }
    if shape.kind == "timestamp" {
        // restJson1 timestamps without a `timestampFormat` travel as epoch seconds (numbers);
        // ISO-8601 strings are accepted as well.
        if !matches!(value, Value::Number(_) | Value::String(_)) {
            errors.push(FieldError {
                path: path.to_string(),
                constraint: format!("Member must be a timestamp, not a {}", json_kind(value)),
                shown_value: show(value, sensitive),
                wrong_type: true,
            });
        }
        return;
    }
    let expected = match shape.kind.as_str() {
        "structure" => "structure",
        "list" => "list",
        "map" => "map",
        "string" | "blob" => "string",
        "integer" | "long" | "float" | "double" => "number",
        "boolean" => "boolean",
        _ => return, // document: free-form JSON
    };
    let type_ok = matches!(
        (expected, value),
        ("structure" | "map", Value::Object(_))
            | ("list", Value::Array(_))
            | ("string", Value::String(_))
            | ("number", Value::Number(_))
            | ("boolean", Value::Bool(_))
    );
    if !type_ok {
        errors.push(FieldError {
            path: path.to_string(),
            constraint: format!("Member must be a {expected}, not a {}", json_kind(value)),
            shown_value: show(value, sensitive),
            wrong_type: true,
        });
        return;
    }
    match value {
        Value::Object(map) if shape.kind == "structure" => {
            for required in &shape.required {
                if member_value(map, required).is_none_or(Value::is_null) {
                    push(errors, &join(path, required), &Value::Null, false, "Member must not be null".into());
                }
            }
            let mut set_members = 0;
            for (name, member) in shape.members.iter() {
                if let Some(v) = member_value(map, name).filter(|v| !v.is_null()) {
                    set_members += 1;
                    check(model, model.shape(&member.shape), v, &join(path, name), sensitive, errors);
                }
            }
            if shape.union && set_members != 1 {
                let names: Vec<&str> = shape.members.iter().map(|(n, _)| n.as_str()).collect();
                push(
                    errors,
                    if path.is_empty() { "<root>" } else { path },
                    value,
                    sensitive,
                    format!("Member must have exactly one of [{}] set, found {set_members}", names.join(", ")),
                );
            }
        }
        Value::Object(map) => {
            check_size(shape, map.len(), path, value, sensitive, "number of entries", errors);
            let (key_shape, value_shape) = match (&shape.key, &shape.value) {
                (Some(k), Some(v)) => (model.shape(&k.shape), model.shape(&v.shape)),
                _ => return,
            };
            for (k, v) in map {
                check(model, key_shape, &Value::String(k.clone()), &join(path, k), sensitive, errors);
                check(model, value_shape, v, &join(path, k), sensitive, errors);
            }
        }
        Value::Array(items) => {
            check_size(shape, items.len(), path, value, sensitive, "length", errors);
            if let Some(member) = &shape.member {
                let member_shape = model.shape(&member.shape);
                for (i, item) in items.iter().enumerate() {
                    check(model, member_shape, item, &format!("{path}.{}", i + 1), sensitive, errors);
                }
            }
        }
        Value::String(s) => {
            if shape.kind != "string" {
                return;
            }
            check_size(shape, s.chars().count(), path, value, sensitive, "length", errors);
            if let Some(allowed) = &shape.enum_values {
                if !allowed.iter().any(|a| a == s) {
                    push(
                        errors,
                        path,
                        value,
                        sensitive,
                        format!("Member must satisfy enum value set: [{}]", allowed.join(", ")),
                    );
                }
            }
            if let (Some(re), Some(p)) = (shape.pattern_regex(), &shape.pattern) {
                if !re.is_match(s) {
                    push(
                        errors,
                        path,
                        value,
                        sensitive,
                        format!("Member must satisfy regular expression pattern: {p}"),
                    );
                }
            }
        }
        Value::Number(n) => {
            let integral = matches!(shape.kind.as_str(), "integer" | "long");
            if integral && n.as_i64().is_none() {
                errors.push(FieldError {
                    path: path.to_string(),
                    constraint: "Member must be an integer".into(),
                    shown_value: show(value, sensitive),
                    wrong_type: true,
                });
                return;
            }
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = shape.min {
                if x < min {
                    push(
                        errors,
                        path,
                        value,
                        sensitive,
                        format!("Member must have value greater than or equal to {min}"),
                    );
                }
            }
            if let Some(max) = shape.max {
                if x > max {
                    push(errors, path, value, sensitive, format!("Member must have value less than or equal to {max}"));
                }
            }
        }
        _ => {}
    }
}

fn check_size(
    shape: &Shape,
    size: usize,
    path: &str,
    value: &Value,
    sensitive: bool,
    what: &str,
    errors: &mut Vec<FieldError>,
) {
    let size = size as f64;
    if let Some(min) = shape.min {
        if size < min {
            push(errors, path, value, sensitive, format!("Member must have {what} greater than or equal to {min}"));
        }
    }
    if let Some(max) = shape.max {
        if size > max {
            push(errors, path, value, sensitive, format!("Member must have {what} less than or equal to {max}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::control;
    use super::*;
    use serde_json::json;

    fn messages(shape: &str, v: Value) -> Vec<String> {
        validate(control(), shape, &v).iter().map(FieldError::message).collect()
    }

    #[test]
    fn reports_missing_required_and_bad_pattern() {
        let m = messages(
            "CreateAgentRuntimeRequest",
            json!({"agentRuntimeName": "bad-name", "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "nope"}}}),
        );
        assert!(
            m.contains(&"Value null at 'roleArn' failed to satisfy constraint: Member must not be null".to_string()),
            "{m:?}"
        );
        assert!(m.iter().any(|s| s.starts_with("Value 'bad-name' at 'agentRuntimeName' failed to satisfy constraint: Member must satisfy regular expression pattern")), "{m:?}");
        assert!(m.iter().any(|s| s.contains("'agentRuntimeArtifact.containerConfiguration.containerUri'")), "{m:?}");
    }

    #[test]
    fn unions_need_exactly_one_member() {
        let m = messages(
            "CreateAgentRuntimeRequest",
            json!({"agentRuntimeName": "ok", "roleArn": "arn:aws:iam::123456789012:role/R", "agentRuntimeArtifact": {}}),
        );
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].contains("exactly one of [codeConfiguration, containerConfiguration]")
                || m[0].contains("exactly one of [containerConfiguration, codeConfiguration]"),
            "{m:?}"
        );
    }

    #[test]
    fn ranges_enums_and_sensitive_values() {
        let m = messages(
            "CreateAgentRuntimeRequest",
            json!({"agentRuntimeName": "ok", "roleArn": "arn:aws:iam::123456789012:role/R",
                   "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/a:b"}},
                   "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 10},
                   "protocolConfiguration": {"serverProtocol": "SMTP"},
                   "description": ""}),
        );
        assert!(
            m.iter().any(|s| s.contains("'lifecycleConfiguration.idleRuntimeSessionTimeout'")
                && s.contains("greater than or equal to 60")),
            "{m:?}"
        );
        assert!(m.iter().any(|s| s.contains("enum value set: [MCP, HTTP, A2A, AGUI]")), "{m:?}");
        assert!(m.iter().any(|s| s.starts_with("Value at 'description'")), "{m:?}");
    }

    #[test]
    fn unknown_members_are_pruned_at_every_depth() {
        let v = json!({"protocolConfiguration": {"serverProtocol": "MCP", "transport": "stdio"}, "bogus": 1,
                       "environmentVariables": {"A": "b"}});
        let pruned = prune(control(), "CreateAgentRuntimeRequest", &v);
        assert_eq!(
            pruned,
            json!({"protocolConfiguration": {"serverProtocol": "MCP"}, "environmentVariables": {"A": "b"}})
        );
    }

    #[test]
    fn documents_take_any_json_and_timestamps_take_epoch_seconds() {
        let data = super::super::data();
        let input = |payload: Value| {
            json!({"memoryId": "m-AbCdEf1234", "actorId": "a", "sessionId": "s",
                   "eventTimestamp": 1764000000.5, "payload": payload})
        };
        assert!(validate(data, "CreateEventInput", &input(json!([{"blob": "a string"}]))).is_empty());
        assert!(validate(data, "CreateEventInput", &input(json!([{"blob": {"k": [1, 2]}}]))).is_empty());
        let mut v = input(json!([]));
        v["eventTimestamp"] = json!(true);
        let e = validate(data, "CreateEventInput", &v);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].wrong_type);
    }

    #[test]
    fn wrong_types_are_flagged() {
        let e = validate(control(), "LifecycleConfiguration", &json!({"maxLifetime": "long"}));
        assert_eq!(e.len(), 1);
        assert!(e[0].wrong_type);
    }
}
