//! Rules on a runtime configuration that the model states in documentation rather than in
//! constraints: the reserved port, port ranges, non-overlapping `allowedPorts`, and idle ≤ lifetime.

use serde_json::{Map, Value};

use super::lifecycle;
use crate::error::{Error, Result};

/// Used by the service itself and refused for agents.
pub const RESERVED_PORT: u64 = 8443;

/// The inclusive port ranges of `allowedPorts`, with each entry's path for messages.
fn allowed_ranges(config: &Map<String, Value>) -> Vec<(String, u64, u64)> {
    let entries = config.get("allowedPorts").and_then(Value::as_array).cloned().unwrap_or_default();
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let path = format!("allowedPorts.{}", i + 1);
            if let Some(p) = e.get("port").and_then(Value::as_u64) {
                Some((format!("{path}.port"), p, p))
            } else {
                let r = e.get("portRange")?;
                Some((format!("{path}.portRange"), r.get("from")?.as_u64()?, r.get("to")?.as_u64()?))
            }
        })
        .collect()
}

pub fn check(config: &Map<String, Value>) -> Result<()> {
    lifecycle::check(config)?;
    let protocol_port = config.get("protocolConfiguration").and_then(|p| p.get("port")).and_then(Value::as_u64);
    if protocol_port == Some(RESERVED_PORT) {
        return Err(Error::invalid_field(
            "protocolConfiguration.port",
            format!("Port {RESERVED_PORT} is reserved and cannot be used; choose a port from 8000 to 12000 other than {RESERVED_PORT}."),
        ));
    }
    let ranges = allowed_ranges(config);
    for (path, from, to) in &ranges {
        if from > to {
            return Err(Error::invalid_field(
                path,
                format!("Port range from {from} to {to} is reversed: from must be less than or equal to to."),
            ));
        }
        if (*from..=*to).contains(&RESERVED_PORT) {
            return Err(Error::invalid_field(path, format!("Port {RESERVED_PORT} is reserved and cannot be allowed.")));
        }
    }
    for (i, (a_path, a_from, a_to)) in ranges.iter().enumerate() {
        for (b_path, b_from, b_to) in &ranges[i + 1..] {
            if a_from <= b_to && b_from <= a_to {
                return Err(Error::invalid_field(
                    b_path,
                    format!("allowedPorts entries must not overlap: {a_path} ({a_from}-{a_to}) and {b_path} ({b_from}-{b_to}) do."),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_json(v: Value) -> Result<()> {
        check(v.as_object().unwrap())
    }

    #[test]
    fn port_rules() {
        assert!(check_json(json!({"protocolConfiguration": {"serverProtocol": "HTTP", "port": 8443}})).is_err());
        assert!(check_json(json!({"protocolConfiguration": {"serverProtocol": "HTTP", "port": 9000}})).is_ok());
        assert!(check_json(json!({"allowedPorts": [{"portRange": {"from": 9200, "to": 9100}}]})).is_err());
        let overlap = check_json(json!({"allowedPorts": [{"port": 9000}, {"portRange": {"from": 8990, "to": 9010}}]}));
        assert!(overlap.unwrap_err().message.contains("must not overlap"));
        assert!(
            check_json(json!({"allowedPorts": [{"port": 9000}, {"portRange": {"from": 9001, "to": 9010}}]})).is_ok()
        );
    }
}
