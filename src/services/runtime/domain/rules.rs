//! Rules on a runtime configuration that the model states in documentation rather than in
//! constraints: the reserved port, port ranges, non-overlapping `allowedPorts`, and idle ≤ lifetime.

use serde_json::{Map, Value};

use super::lifecycle;
use crate::kernel::error::{Error, Result};

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

/// Headers the service never passes to an agent, whether allow-listed or not (runtime-contract.md
/// §6, the SDK's RESTRICTED_HEADERS): hop-by-hop and framing, content negotiation, caching,
/// cookies, proxies and client-IP headers, CORS and security headers, WebSocket handshake, and every
/// `x-amz-*` / `x-amzn-*` header except the `X-Amzn-Bedrock-AgentCore-Runtime-Custom-` prefix.
pub fn restricted_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "proxy-authorization",
        "www-authenticate",
        "host",
        "user-agent",
        "referer",
        "from",
        "range",
        "transfer-encoding",
        "te",
        "trailer",
        "connection",
        "keep-alive",
        "upgrade",
        "server",
        "date",
        "location",
        "retry-after",
        "cookie",
        "set-cookie",
        "cache-control",
        "pragma",
        "expires",
        "age",
        "vary",
        "etag",
        "last-modified",
        "via",
        "forwarded",
        "x-real-ip",
        "x-client-ip",
        "x-originating-ip",
        "true-client-ip",
        "x-cluster-client-ip",
        "origin",
        "link",
        "strict-transport-security",
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "x-xss-protection",
        "referrer-policy",
        "permissions-policy",
        "mcp-session-id",
        "mcp-protocol-version",
        "traceparent",
        "tracestate",
        "baggage",
    ];
    const PREFIXES: &[&str] = &[
        "accept",
        "content-",
        "if-",
        "x-forwarded-",
        "access-control-",
        "sec-",
        "cf-",
        "fastly-",
        "akamai-",
        "x-amz-",
        "x-amzn-",
        ":",
    ];
    let name = name.to_ascii_lowercase();
    if name.starts_with(CUSTOM_HEADER_PREFIX) {
        return false;
    }
    EXACT.contains(&name.as_str()) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Headers with this prefix may always be allow-listed.
pub const CUSTOM_HEADER_PREFIX: &str = "x-amzn-bedrock-agentcore-runtime-custom-";

fn check_header_allowlist(config: &Map<String, Value>) -> Result<()> {
    let names = config
        .get("requestHeaderConfiguration")
        .and_then(|c| c.get("requestHeaderAllowlist"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has_jwt = config.get("authorizerConfiguration").and_then(|a| a.get("customJWTAuthorizer")).is_some();
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.iter().filter_map(Value::as_str).enumerate() {
        let field = format!("requestHeaderConfiguration.requestHeaderAllowlist.{}", i + 1);
        let lower = name.to_ascii_lowercase();
        if !seen.insert(lower.clone()) {
            return Err(Error::invalid_field(&field, format!("Header '{name}' is listed more than once.")));
        }
        if lower == "authorization" {
            if !has_jwt {
                return Err(Error::invalid_field(
                    &field,
                    "Authorization can be forwarded only when the runtime has a customJWTAuthorizer.",
                ));
            }
            continue;
        }
        if restricted_header(&lower) {
            return Err(Error::invalid_field(
                &field,
                format!(
                    "Header '{name}' cannot be forwarded to the agent: it is on the service's restricted list \
                     (x-amz-*/x-amzn-* other than X-Amzn-Bedrock-AgentCore-Runtime-Custom-*, hop-by-hop, content, \
                     caching, cookie, proxy and security headers)."
                ),
            ));
        }
    }
    Ok(())
}

/// A `customJWTAuthorizer` the data plane can enforce: its `customClaims` combine value types,
/// operators and match values as the service allows.
fn check_authorizer(config: &Map<String, Value>) -> Result<()> {
    match crate::kernel::jwt::JwtAuthorizer::of_config(config) {
        None => Ok(()),
        Some(parsed) => parsed
            .and_then(|a| a.check_configuration())
            .map_err(|e| Error::invalid_field("authorizerConfiguration.customJWTAuthorizer.customClaims", e)),
    }
}

/// `networkMode: VPC` runs the agent inside subnets and security groups, so it must name them
/// (the model leaves `networkModeConfig` optional because PUBLIC has none).
fn check_network(config: &Map<String, Value>) -> Result<()> {
    let network = config.get("networkConfiguration");
    let mode = network.and_then(|n| n.get("networkMode")).and_then(Value::as_str);
    if mode == Some("VPC") && network.and_then(|n| n.get("networkModeConfig")).is_none() {
        return Err(Error::invalid_field(
            "networkConfiguration.networkModeConfig",
            "networkModeConfig (subnets and securityGroups) is required when networkMode is VPC.",
        ));
    }
    Ok(())
}

pub fn check(config: &Map<String, Value>) -> Result<()> {
    lifecycle::check(config)?;
    check_network(config)?;
    check_header_allowlist(config)?;
    check_authorizer(config)?;
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
    fn vpc_needs_its_subnets_and_security_groups() {
        assert!(check_json(json!({"networkConfiguration": {"networkMode": "PUBLIC"}})).is_ok());
        let vpc = json!({"networkMode": "VPC", "networkModeConfig": {"subnets": ["subnet-0a1b2c3d4e"], "securityGroups": ["sg-0a1b2c3d4e"]}});
        assert!(check_json(json!({"networkConfiguration": vpc})).is_ok());
        let err = check_json(json!({"networkConfiguration": {"networkMode": "VPC"}})).unwrap_err();
        assert!(err.to_string().contains("networkModeConfig"), "{err}");
    }

    #[test]
    fn header_allowlist_rules() {
        assert!(restricted_header("X-Amzn-Bedrock-AgentCore-Runtime-User-Id"));
        assert!(restricted_header("x-amz-date") && restricted_header("Cookie") && restricted_header("X-Forwarded-For"));
        assert!(restricted_header("Accept-Language") && restricted_header("user-agent"));
        assert!(!restricted_header("X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo"));
        assert!(!restricted_header("X-Custom-App"));
        let allow = |names: Value| check_json(json!({"requestHeaderConfiguration": {"requestHeaderAllowlist": names}}));
        assert!(allow(json!(["X-Custom-App", "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo"])).is_ok());
        assert!(allow(json!(["X-Amzn-Other-Thing"])).is_err());
        assert!(allow(json!(["Cookie"])).is_err());
        assert!(allow(json!(["Authorization"])).is_err(), "needs a JWT authorizer");
        assert!(allow(json!(["x-a", "X-A"])).is_err(), "duplicates, case-insensitively");
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
