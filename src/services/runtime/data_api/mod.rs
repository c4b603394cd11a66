//! bedrock-agentcore (data plane): InvokeAgentRuntime and StopRuntimeSession.

mod command;
pub(crate) mod headers;
pub mod inbound;
pub mod ws;

use std::sync::Arc;

use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use crate::app::{AppState, Call};
use crate::kernel::error::{Error, ErrorKind, Result};
use crate::kernel::input::{bind_and_validate, HttpInput};
use crate::kernel::model;
use crate::kernel::response::{self, Body};
use crate::services::runtime::domain::protocol::ServerProtocol;
use crate::services::runtime::domain::resolve::InvocationTarget;
use crate::sessions::{ActivityGuard, Sessions};

const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// How much of a failing agent's body is kept for logs and `--debug-errors`.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

type Input = Map<String, Value>;

pub async fn dispatch(state: &AppState, call: &Call<'_>) -> Result<Response<Body>> {
    let started = std::time::Instant::now();
    let result = run(state, call).await;
    if state.sessions.is_some() {
        let label = call.route.labels.get("agentRuntimeArn").map(String::as_str).unwrap_or_default();
        let header =
            |name: &str| call.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let session_id = match &result {
            Ok(resp) => resp.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(String::from),
            Err(_) => header(SESSION_HEADER),
        };
        state.observatory.record(crate::observe::InvocationRecord {
            at_ms: crate::services::runtime::domain::now_ms(),
            account: call.caller.account.clone(),
            operation: call.route.operation.to_string(),
            runtime: label.rsplit('/').next().unwrap_or_default().to_string(),
            session_id,
            status: result.as_ref().map(|r| r.status().as_u16()).unwrap_or_else(|e| e.status()),
            error: result.as_ref().err().map(|e| e.code().to_string()),
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
        });
    }
    result
}

async fn run(state: &AppState, call: &Call<'_>) -> Result<Response<Body>> {
    let operation = call.route.operation;
    let input = bind_and_validate(
        model::data(),
        operation,
        &HttpInput { labels: &call.route.labels, raw_query: call.raw_query, headers: call.headers, body: &call.body },
    )?;
    match operation {
        "InvokeAgentRuntime" => invoke(state, call, &input).await,
        "StopRuntimeSession" => stop(state, call, &input).await,
        "InvokeAgentRuntimeCommand" => run_command(state, call, &input).await,
        "GetAgentCard" => agent_card(state, call, &input).await,
        other => Err(Error::new(
            ErrorKind::UnknownOperation,
            format!("bedrock-agentcore {other} is not available in this build of agentcore-local."),
        )),
    }
}

fn text(input: &Input, name: &str) -> Option<String> {
    input.get(name).and_then(Value::as_str).map(String::from)
}

fn sessions(state: &AppState) -> Result<&Arc<Sessions>> {
    state.sessions.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::RuntimeClientError,
            "This agentcore-local was started with --sandbox none and cannot run agents; start it with --sandbox docker.",
        )
    })
}

async fn target(state: &AppState, call: &Call<'_>, input: &Input) -> Result<Arc<InvocationTarget>> {
    let target = state
        .control
        .resolve_invocation(
            call.caller.clone(),
            text(input, "agentRuntimeArn").unwrap_or_default(),
            text(input, "accountId"),
            text(input, "qualifier"),
        )
        .await?;
    inbound::check_sigv4(&target, &call.authentication)?;
    Ok(target)
}

/// The workload access token the agent receives (runtime-contract.md §6): minted for the
/// runtime's own workload identity and bound to the user: the bearer token's `iss`/`sub`, or for
/// a SigV4 caller the `X-Amzn-Bedrock-AgentCore-Runtime-User-Id` it sent. None without a user.
pub(crate) fn workload_access_token(
    state: &AppState,
    authentication: &inbound::Authentication,
    target: &InvocationTarget,
    runtime_user_id: Option<&str>,
) -> Option<String> {
    use crate::services::identity::WorkloadPrincipal;
    let user = match authentication {
        inbound::Authentication::Bearer { user, .. } => user.clone(),
        inbound::Authentication::SigV4 => WorkloadPrincipal::user_from_id(runtime_user_id?),
    };
    Some(state.identity.mint_access_token(&WorkloadPrincipal {
        account: target.account.clone(),
        region: target.region.clone(),
        workload: target.runtime_id.clone(),
        user: Some(user),
    }))
}

/// The caller's bearer token reaches the agent only when the runtime's header allowlist names
/// `Authorization` (a SigV4 signature never does).
pub(crate) fn forwarded_authorization<'p>(
    authentication: &'p inbound::Authentication,
    target: &InvocationTarget,
) -> Option<&'p str> {
    match authentication {
        inbound::Authentication::Bearer { token, .. }
            if target.header_allowlist.iter().any(|h| h == "authorization") =>
        {
            Some(token.as_str())
        }
        _ => None,
    }
}

/// The runtime session a request addresses: its session header; else, for an MCP client that
/// sends only `Mcp-Session-Id`, the session that id belongs to (so it keeps its sandbox); else new.
fn session_id_of(sessions: &Sessions, target: &InvocationTarget, input: &Input) -> String {
    if let Some(id) = text(input, "runtimeSessionId") {
        return id;
    }
    if let Some(mcp) = text(input, "mcpSessionId") {
        if let Some(id) = sessions.session_for_mcp(&target.runtime_id, &mcp) {
            return id;
        }
    }
    uuid::Uuid::new_v4().to_string()
}

/// The session a data-plane request addresses (started if needed), counted busy by the guard.
async fn open_session(
    state: &AppState,
    call: &Call<'_>,
    input: &Input,
) -> Result<(Arc<InvocationTarget>, String, ActivityGuard)> {
    let sessions = sessions(state)?;
    let target = target(state, call, input).await?;
    let session_id = session_id_of(sessions, &target, input);
    sessions.admit(&target.endpoint_arn)?;
    let (session, _cold) = sessions.session(&target, &session_id).await?;
    let guard = session.begin_request();
    Ok((target, session_id, guard))
}

async fn run_command(state: &AppState, call: &Call<'_>, input: &Input) -> Result<Response<Body>> {
    let sessions = sessions(state)?;
    let body = input.get("body");
    let command_text = body.and_then(|b| b.get("command")).and_then(Value::as_str).unwrap_or_default().to_string();
    let timeout = command::timeout_of(body)?;
    let (_target, session_id, guard) = open_session(state, call, input).await?;
    let mut resp = command::run(sessions, guard, command_text, timeout).await?;
    headers::to_client_metadata(resp.headers_mut(), call.headers, &session_id, call.request_id);
    Ok(resp)
}

async fn invoke(state: &AppState, call: &Call<'_>, input: &Input) -> Result<Response<Body>> {
    let sessions = sessions(state)?;
    let (target, session_id, guard) = open_session(state, call, input).await?;
    let session = guard.session().clone();
    let mut forwarded = headers::to_agent(call.headers, &session_id, call.request_id, &target.header_allowlist);
    let wat = workload_access_token(state, &call.authentication, &target, text(input, "runtimeUserId").as_deref());
    headers::identity_to_agent(&mut forwarded, wat.as_deref(), forwarded_authorization(&call.authentication, &target));
    let sent = sessions.send(&session, http::Method::POST, &target.protocol.path, forwarded, call.body.clone()).await;
    let agent = match sent {
        Ok(a) => a,
        Err(e) => {
            drop(guard);
            let mut message = format!("The runtime session's agent could not be reached: {e}");
            if let Some(reason) = sessions.crash_reason_after_failure(&session).await {
                let logs = sessions.last_output(&session, 30).await;
                tracing::warn!(session = %session_id, runtime = %target.runtime_id, "session ended during an invocation ({}); last agent output:\n{}", reason.describe(), logs.trim_end());
                // Say why, with the agent's last words: the caller's next step depends on them.
                let tail: Vec<&str> = logs.trim_end().lines().rev().take(10).collect();
                message = format!(
                    "The runtime session ended during the invocation: {}. The agent's last output:\n{}",
                    reason.describe(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
                sessions.end(&session, reason);
            }
            return Err(Error::new(ErrorKind::RuntimeClientError, message));
        }
    };
    if !agent.status.is_success() {
        let status = agent.status.as_u16();
        let body = read_capped(agent.body).await;
        drop(guard);
        let output = sessions.last_output(&session, 10).await;
        tracing::warn!(
            session = %session_id,
            runtime = %target.runtime_id,
            status,
            body = %body,
            "agent answered with an error; returned to the caller as RuntimeClientError; last agent output:\n{}",
            output.trim_end()
        );
        let mut message =
            format!("Received error ({status}) from runtime. Please check your CloudWatch logs for more information.");
        if sessions.debug_errors() {
            message.push_str(&format!(
                "\n\nagentcore-local (--debug-errors): the agent answered {status} with body:\n{body}"
            ));
        }
        return Err(Error::new(ErrorKind::RuntimeClientError, message));
    }
    if target.protocol.kind == ServerProtocol::Mcp {
        mcp_session_continuity(sessions, &target, &session_id, &agent.headers);
    }
    let mut resp = Response::new(sessions.relay(agent.body, guard).boxed_unsync());
    *resp.status_mut() = agent.status;
    headers::to_client(resp.headers_mut(), &agent.headers, call.headers, &session_id, call.request_id);
    if target.protocol.kind == ServerProtocol::Mcp && !agent.headers.contains_key("mcp-session-id") {
        // A stateless MCP server issues no session id: hand out the runtime session id, which the
        // client then sends back as Mcp-Session-Id and so stays on its sandbox.
        if let Ok(v) = HeaderValue::from_str(&session_id) {
            resp.headers_mut().insert("mcp-session-id", v);
        }
    }
    Ok(resp)
}

/// A stateful MCP server issued its own session id: map it to the runtime session.
fn mcp_session_continuity(
    sessions: &Sessions,
    target: &InvocationTarget,
    session_id: &str,
    from_agent: &http::HeaderMap,
) {
    if let Some(issued) = from_agent.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
        sessions.remember_mcp_session(&target.runtime_id, issued, session_id);
    }
}

/// GetAgentCard: the A2A agent's card, with its URL pointing at this emulator's invocation URL.
async fn agent_card(state: &AppState, call: &Call<'_>, input: &Input) -> Result<Response<Body>> {
    let sessions = sessions(state)?;
    let target = target(state, call, input).await?;
    if target.protocol.kind != ServerProtocol::A2a {
        return Err(Error::invalid_field(
            "agentRuntimeArn",
            format!(
                "GetAgentCard is available for A2A agents; runtime '{}' serves {:?} (protocolConfiguration.serverProtocol).",
                target.runtime_id, target.protocol.kind
            ),
        ));
    }
    let session_id = session_id_of(sessions, &target, input);
    let session = sessions.metadata_session(&target, &session_id).await?;
    let guard = session.begin_request();
    let mut headers = http::HeaderMap::new();
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let agent =
        sessions.send(&session, http::Method::GET, AGENT_CARD_PATH, headers, bytes::Bytes::new()).await.map_err(
            |e| Error::new(ErrorKind::RuntimeClientError, format!("The agent could not be reached for its card: {e}")),
        )?;
    let status = agent.status.as_u16();
    let body = read_capped(agent.body).await;
    drop(guard);
    if !(200..300).contains(&status) {
        tracing::warn!(runtime = %target.runtime_id, status, body = %body, "agent answered GetAgentCard with an error");
        return Err(Error::new(
            ErrorKind::RuntimeClientError,
            format!("Received error ({status}) from runtime. Please check your CloudWatch logs for more information."),
        ));
    }
    let mut card: Value = serde_json::from_str(&body).map_err(|e| {
        Error::new(ErrorKind::RuntimeClientError, format!("The agent's card at {AGENT_CARD_PATH} is not JSON: {e}"))
    })?;
    rewrite_card_urls(&mut card, &crate::sessions::spec::invocation_url(sessions.emulator_url(), &target.runtime_arn));
    let mut resp = response::json(200, &card, call.request_id);
    if let Ok(v) = HeaderValue::from_str(&session_id) {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    Ok(resp)
}

/// Point an agent card at the emulator: every interface of an A2A 1.x card
/// (`supportedInterfaces[].url`), and the top-level `url` of a 0.3 card (or one without interfaces).
fn rewrite_card_urls(card: &mut Value, url: &str) {
    let Some(obj) = card.as_object_mut() else { return };
    let mut has_interfaces = false;
    for key in ["supportedInterfaces", "additionalInterfaces"] {
        if let Some(list) = obj.get_mut(key).and_then(Value::as_array_mut) {
            has_interfaces |= key == "supportedInterfaces" && !list.is_empty();
            for interface in list.iter_mut().filter_map(Value::as_object_mut) {
                if interface.contains_key("url") {
                    interface.insert("url".into(), Value::String(url.to_string()));
                }
            }
        }
    }
    if obj.contains_key("url") || !has_interfaces {
        obj.insert("url".into(), Value::String(url.to_string()));
    }
}

/// Where A2A servers publish their card (runtime-contract.md §3).
const AGENT_CARD_PATH: &str = "/.well-known/agent-card.json";

async fn read_capped(body: crate::sessions::AgentBody) -> String {
    let limited = http_body_util::Limited::new(body, ERROR_BODY_LIMIT);
    match limited.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => format!("(body larger than {ERROR_BODY_LIMIT} bytes or unreadable)"),
    }
}

async fn stop(state: &AppState, call: &Call<'_>, input: &Input) -> Result<Response<Body>> {
    let sessions = sessions(state)?;
    let runtime_id = state
        .control
        .resolve_runtime_id(call.caller.clone(), text(input, "agentRuntimeArn").unwrap_or_default(), None)
        .await?;
    let session_id = text(input, "runtimeSessionId").unwrap_or_default();
    sessions.stop(&runtime_id, &session_id)?;
    let mut resp = response::json(200, &serde_json::json!({}), call.request_id);
    if let Ok(v) = HeaderValue::from_str(&session_id) {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    Ok(resp)
}
