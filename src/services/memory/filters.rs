//! Metadata filters: ListEvents' `eventMetadata` and the records' `metadataFilters`.
//!
//! Metadata is kept in its wire form, `{"key": {"stringValue": "..."}}` (records may also hold
//! `stringListValue`, `numberValue` and `dateTimeValue`); filters are ANDed.

use serde_json::Value;

use super::time::parse_ms;

/// One `EventMetadataFilterExpression`.
#[derive(Debug, Clone, PartialEq)]
pub enum EventFilter {
    Equals { key: String, value: String },
    Exists { key: String },
    NotExists { key: String },
}

pub fn event_matches(metadata: Option<&Value>, filters: &[EventFilter]) -> bool {
    let get = |key: &str| metadata.and_then(|m| m.get(key));
    filters.iter().all(|f| match f {
        EventFilter::Exists { key } => get(key).is_some(),
        EventFilter::NotExists { key } => get(key).is_none(),
        EventFilter::Equals { key, value } => {
            get(key).and_then(|v| v.get("stringValue")).and_then(Value::as_str) == Some(value.as_str())
        }
    })
}

/// `MemoryRecordOperatorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    EqualsTo,
    Exists,
    NotExists,
    Before,
    After,
    Contains,
    GreaterThan,
    GreaterThanOrEquals,
    LessThan,
    LessThanOrEquals,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "EQUALS_TO" => Operator::EqualsTo,
            "EXISTS" => Operator::Exists,
            "NOT_EXISTS" => Operator::NotExists,
            "BEFORE" => Operator::Before,
            "AFTER" => Operator::After,
            "CONTAINS" => Operator::Contains,
            "GREATER_THAN" => Operator::GreaterThan,
            "GREATER_THAN_OR_EQUALS" => Operator::GreaterThanOrEquals,
            "LESS_THAN" => Operator::LessThan,
            "LESS_THAN_OR_EQUALS" => Operator::LessThanOrEquals,
            _ => return None,
        })
    }

    pub fn needs_value(self) -> bool {
        !matches!(self, Operator::Exists | Operator::NotExists)
    }
}

/// A record metadata value, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    String(String),
    StringList(Vec<String>),
    Number(f64),
    /// Unix milliseconds.
    DateTime(i64),
}

impl MetaValue {
    /// From the `MemoryRecordMetadataValue` union.
    pub fn from_wire(v: &Value) -> Option<MetaValue> {
        if let Some(s) = v.get("stringValue").and_then(Value::as_str) {
            return Some(MetaValue::String(s.to_string()));
        }
        if let Some(list) = v.get("stringListValue").and_then(Value::as_array) {
            return Some(MetaValue::StringList(list.iter().filter_map(|s| s.as_str().map(String::from)).collect()));
        }
        if let Some(n) = v.get("numberValue").and_then(Value::as_f64) {
            return Some(MetaValue::Number(n));
        }
        v.get("dateTimeValue").and_then(parse_ms).map(MetaValue::DateTime)
    }

    /// The `MetadataValueType` this value has.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::String(_) => "STRING",
            MetaValue::StringList(_) => "STRINGLIST",
            MetaValue::Number(_) | MetaValue::DateTime(_) => "NUMBER",
        }
    }
}

/// One `MemoryMetadataFilterExpression`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFilter {
    pub key: String,
    pub op: Operator,
    pub value: Option<MetaValue>,
}

fn compare(have: &MetaValue, op: Operator, want: &MetaValue) -> bool {
    use std::cmp::Ordering;
    let ordering = match (have, want) {
        (MetaValue::Number(a), MetaValue::Number(b)) => a.partial_cmp(b),
        (MetaValue::DateTime(a), MetaValue::DateTime(b)) => Some(a.cmp(b)),
        (MetaValue::String(a), MetaValue::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        Operator::EqualsTo => match (have, want) {
            (MetaValue::StringList(list), MetaValue::String(s)) => list.contains(s),
            _ => have == want,
        },
        Operator::Contains => match (have, want) {
            (MetaValue::StringList(list), MetaValue::String(s)) => list.contains(s),
            (MetaValue::StringList(list), MetaValue::StringList(wanted)) => wanted.iter().all(|w| list.contains(w)),
            (MetaValue::String(text), MetaValue::String(s)) => text.contains(s.as_str()),
            _ => false,
        },
        Operator::Before | Operator::LessThan => ordering == Some(Ordering::Less),
        Operator::After | Operator::GreaterThan => ordering == Some(Ordering::Greater),
        Operator::GreaterThanOrEquals => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        Operator::LessThanOrEquals => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        Operator::Exists | Operator::NotExists => true,
    }
}

pub fn record_matches(metadata: Option<&Value>, filters: &[RecordFilter]) -> bool {
    filters.iter().all(|f| {
        let have = metadata.and_then(|m| m.get(&f.key)).and_then(MetaValue::from_wire);
        match (f.op, &have, &f.value) {
            (Operator::Exists, h, _) => h.is_some(),
            (Operator::NotExists, h, _) => h.is_none(),
            (op, Some(h), Some(want)) => compare(h, op, want),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_filters_are_anded() {
        let md = json!({"stateType": {"stringValue": "AGENT"}, "agentId": {"stringValue": "a1"}});
        let eq = |k: &str, v: &str| EventFilter::Equals { key: k.into(), value: v.into() };
        assert!(event_matches(Some(&md), &[eq("stateType", "AGENT"), eq("agentId", "a1")]));
        assert!(!event_matches(Some(&md), &[eq("stateType", "AGENT"), eq("agentId", "a2")]));
        assert!(event_matches(None, &[EventFilter::NotExists { key: "x".into() }]));
        assert!(!event_matches(None, &[EventFilter::Exists { key: "x".into() }]));
    }

    #[test]
    fn record_filters_compare_by_type() {
        let md = json!({"priority": {"numberValue": 3}, "tags": {"stringListValue": ["a", "b"]},
                        "seen": {"dateTimeValue": 1764000000}, "team": {"stringValue": "red"}});
        let f = |k: &str, op: Operator, v: Option<MetaValue>| RecordFilter { key: k.into(), op, value: v };
        assert!(record_matches(Some(&md), &[f("priority", Operator::GreaterThan, Some(MetaValue::Number(2.0)))]));
        assert!(!record_matches(Some(&md), &[f("priority", Operator::LessThan, Some(MetaValue::Number(2.0)))]));
        assert!(record_matches(Some(&md), &[f("tags", Operator::Contains, Some(MetaValue::String("b".into())))]));
        assert!(record_matches(
            Some(&md),
            &[f("seen", Operator::Before, Some(MetaValue::DateTime(1_764_000_000_001)))]
        ));
        assert!(record_matches(Some(&md), &[f("team", Operator::EqualsTo, Some(MetaValue::String("red".into())))]));
        assert!(!record_matches(Some(&md), &[f("other", Operator::Exists, None)]));
    }
}
