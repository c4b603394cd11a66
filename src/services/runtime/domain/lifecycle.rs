//! `lifecycleConfiguration`: the service's defaults and the rule that idle ≤ max lifetime.

use serde_json::{Map, Value};

use crate::kernel::error::{Error, Result};

pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 900;
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 28_800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub idle_timeout_secs: u64,
    pub max_lifetime_secs: u64,
}

fn given(config: &Map<String, Value>) -> (Option<u64>, Option<u64>) {
    let lc = config.get("lifecycleConfiguration");
    let get = |k: &str| lc.and_then(|l| l.get(k)).and_then(Value::as_u64);
    (get("idleRuntimeSessionTimeout"), get("maxLifetime"))
}

/// The effective timeouts. With only `maxLifetime` given, idle follows it up to the 900 s default
/// (runtime-contract.md §8).
pub fn effective(config: &Map<String, Value>) -> Lifecycle {
    let (idle, max) = given(config);
    let max_lifetime_secs = max.unwrap_or(DEFAULT_MAX_LIFETIME_SECS);
    let idle_timeout_secs = idle.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS.min(max_lifetime_secs));
    Lifecycle { idle_timeout_secs, max_lifetime_secs }
}

/// Reject an idle timeout longer than the lifetime, which the service refuses too.
pub fn check(config: &Map<String, Value>) -> Result<()> {
    let (idle, max) = given(config);
    let lc = effective(config);
    if idle.is_some() && lc.idle_timeout_secs > lc.max_lifetime_secs {
        return Err(Error::invalid_field(
            "lifecycleConfiguration.idleRuntimeSessionTimeout",
            format!(
                "idleRuntimeSessionTimeout ({}) must not be greater than maxLifetime ({}{}).",
                lc.idle_timeout_secs,
                lc.max_lifetime_secs,
                if max.is_none() { ", the default" } else { "" }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Map<String, Value> {
        json!({"lifecycleConfiguration": v}).as_object().unwrap().clone()
    }

    #[test]
    fn defaults_and_derived_idle() {
        assert_eq!(effective(&Map::new()), Lifecycle { idle_timeout_secs: 900, max_lifetime_secs: 28800 });
        assert_eq!(
            effective(&cfg(json!({"maxLifetime": 300}))),
            Lifecycle { idle_timeout_secs: 300, max_lifetime_secs: 300 }
        );
        assert_eq!(effective(&cfg(json!({"maxLifetime": 3000}))).idle_timeout_secs, 900);
        assert!(check(&cfg(json!({"idleRuntimeSessionTimeout": 600, "maxLifetime": 300}))).is_err());
        assert!(check(&cfg(json!({"idleRuntimeSessionTimeout": 60}))).is_ok());
    }
}
