//! The memory APIs' timestamps: epoch seconds on the wire (restJson1's default for shapes
//! without a `timestampFormat`), unix milliseconds in the tables.

use serde_json::Value;

pub fn now_ms() -> i64 {
    crate::kernel::clock::now_ms()
}

/// A timestamp as sent: epoch seconds (a number, fractions kept to the millisecond) or an
/// ISO-8601 string.
pub fn parse_ms(v: &Value) -> Option<i64> {
    match v {
        // Rounded: 1764000000.123 is 1764000000122.99... as a float.
        Value::Number(n) => n.as_f64().filter(|s| s.is_finite()).map(|s| (s * 1000.0).round() as i64),
        Value::String(s) => aws_smithy_types::DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime)
            .ok()
            .map(|d| d.to_millis().unwrap_or(0)),
        _ => None,
    }
}

/// Epoch seconds with milliseconds, as the service answers.
pub fn epoch_seconds(ms: i64) -> Value {
    if ms % 1000 == 0 {
        Value::from(ms / 1000)
    } else {
        serde_json::Number::from_f64(ms as f64 / 1000.0).map(Value::Number).unwrap_or(Value::from(ms / 1000))
    }
}

pub const DAY_MS: i64 = 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn epoch_seconds_round_trip_to_the_millisecond() {
        assert_eq!(parse_ms(&json!(1764000000.123)), Some(1_764_000_000_123));
        assert_eq!(parse_ms(&json!(1764000000)), Some(1_764_000_000_000));
        assert_eq!(parse_ms(&json!("2025-11-24T16:00:00.123Z")), Some(1_764_000_000_123));
        assert_eq!(epoch_seconds(1_764_000_000_123), json!(1764000000.123));
        assert_eq!(epoch_seconds(1_764_000_000_000), json!(1764000000));
        assert_eq!(parse_ms(&json!(true)), None);
    }
}
