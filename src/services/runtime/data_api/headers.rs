//! Which headers cross between the caller and the agent (runtime-contract.md §6).

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Passed through when the caller sends them.
const PASS_THROUGH: &[&str] = &[
    "content-type",
    "accept",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "baggage",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    // A2A 1.x clients name their protocol version; without it servers assume 0.3.
    "a2a-version",
    "a2a-extensions",
];

/// Never forwarded even if allow-listed: hop-by-hop, framing and the caller's AWS credentials.
fn restricted(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "proxy-authorization"
            | "x-amz-date"
            | "x-amz-security-token"
            | "x-amz-content-sha256"
    ) || (name.starts_with("x-amz-") && !name.starts_with("x-amzn-bedrock-agentcore-runtime-custom-"))
        || (name == "authorization")
}

/// Appends a header named by a constant (no parse or copy of the name: these are added to every
/// invocation).
fn insert(map: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        map.append(HeaderName::from_static(name), v);
    }
}

/// Appends a header whose name came with the request.
fn insert_named(map: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        map.append(n, v);
    }
}

/// The request headers the agent receives.
pub fn to_agent(
    from_caller: &[(String, String)],
    session_id: &str,
    request_id: &str,
    allowlist: &[String],
) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from_caller {
        let lower = crate::kernel::sigv4::lowercase_name(name);
        let allowed = || allowlist.iter().any(|a| *a == lower) && !restricted(&lower);
        if PASS_THROUGH.contains(&&*lower) || allowed() {
            insert_named(&mut out, &lower, value);
        }
    }
    if !out.contains_key("content-type") {
        out.insert("content-type", HeaderValue::from_static("application/json"));
    }
    insert(&mut out, "x-amzn-bedrock-agentcore-runtime-session-id", session_id);
    insert(&mut out, "x-amzn-bedrock-agentcore-runtime-request-id", request_id);
    out
}

/// What the runtime adds for Identity: the `WorkloadAccessToken` it minted, and the caller's bearer
/// token as `Authorization` when the allowlist asks for it.
pub fn identity_to_agent(out: &mut HeaderMap, workload_access_token: Option<&str>, bearer: Option<&str>) {
    if let Some(wat) = workload_access_token {
        insert(out, "workloadaccesstoken", wat);
    }
    if let Some(token) = bearer {
        insert(out, "authorization", &format!("Bearer {token}"));
    }
}

/// The response headers the caller receives: the agent's content type and MCP headers, the
/// session id, and the trace headers echoed.
pub fn to_client(
    out: &mut HeaderMap,
    from_agent: &HeaderMap,
    from_caller: &[(String, String)],
    session_id: &str,
    request_id: &str,
) {
    let content_type =
        from_agent.get("content-type").cloned().unwrap_or(HeaderValue::from_static("application/octet-stream"));
    out.insert("content-type", content_type);
    for name in ["mcp-session-id", "mcp-protocol-version", "a2a-version", "a2a-extensions"] {
        if let Some(v) = from_agent.get(name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    to_client_metadata(out, from_caller, session_id, request_id);
}

/// Session id, request id and trace headers (echoed, or a new X-Amzn-Trace-Id).
pub fn to_client_metadata(out: &mut HeaderMap, from_caller: &[(String, String)], session_id: &str, request_id: &str) {
    for name in ["traceparent", "tracestate", "baggage"] {
        if let Some((_, v)) = from_caller.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            insert(out, name, v);
        }
    }
    let trace = from_caller
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amzn-trace-id"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("Root=1-{}-{}", &id[..8], &id[8..32])
        });
    insert(out, "x-amzn-trace-id", &trace);
    insert(out, "x-amzn-bedrock-agentcore-runtime-session-id", session_id);
    insert(out, "x-amzn-requestid", request_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_protocol_trace_and_allowlisted_headers_only() {
        let caller = vec![
            ("Content-Type".to_string(), "text/plain".to_string()),
            ("Authorization".to_string(), "AWS4-HMAC-SHA256 secret".to_string()),
            ("X-Amz-Date".to_string(), "x".to_string()),
            ("traceparent".to_string(), "00-abc-01".to_string()),
            ("X-Custom-App".to_string(), "hello".to_string()),
            ("X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo".to_string(), "bar".to_string()),
            ("X-Not-Allowed".to_string(), "no".to_string()),
        ];
        let allow = vec![
            "x-custom-app".to_string(),
            "x-amzn-bedrock-agentcore-runtime-custom-foo".to_string(),
            "authorization".to_string(),
        ];
        let h = to_agent(&caller, "s".repeat(40).as_str(), "req-1", &allow);
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["traceparent"], "00-abc-01");
        assert_eq!(h["x-custom-app"], "hello");
        assert_eq!(h["x-amzn-bedrock-agentcore-runtime-custom-foo"], "bar");
        assert_eq!(h["x-amzn-bedrock-agentcore-runtime-request-id"], "req-1");
        assert!(!h.contains_key("authorization"), "the caller's SigV4 signature never reaches the agent");
        assert!(!h.contains_key("x-amz-date") && !h.contains_key("x-not-allowed"));
        assert!(!h.contains_key("x-amzn-bedrock-agentcore-runtime-user-id") && !h.contains_key("cookie"));
        let h = to_agent(&[], "s", "r", &[]);
        assert_eq!(h["content-type"], "application/json");
    }
}
