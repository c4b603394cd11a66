//! bedrock-agentcore (data plane): InvokeAgentRuntime and StopRuntimeSession.

mod command;
mod headers;

use std::sync::Arc;

use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::input::{bind_and_validate, HttpInput};
use super::model;
use super::response::{self, Body};
use super::{AppState, Call};
use crate::control::resolve::InvocationTarget;
use crate::error::{Error, ErrorKind, Result};
use crate::sessions::forward::{self, RelayBody};
use crate::sessions::{ActivityGuard, EndReason, Sessions};

const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// How much of a failing agent's body is kept for logs and `--debug-errors`.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

type Input = Map<String, Value>;

pub async fn dispatch(state: &AppState, call: &Call<'_>) -> Result<Response<Body>> {
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

async fn target(state: &AppState, call: &Call<'_>, input: &Input) -> Result<InvocationTarget> {
    state
        .control
        .resolve_invocation(
            call.caller.clone(),
            text(input, "agentRuntimeArn").unwrap_or_default(),
            text(input, "accountId"),
            text(input, "qualifier"),
        )
        .await
}

/// The session a data-plane request addresses (started if needed), counted busy by the guard.
async fn open_session(
    state: &AppState,
    call: &Call<'_>,
    input: &Input,
) -> Result<(InvocationTarget, String, ActivityGuard)> {
    let sessions = sessions(state)?;
    let target = target(state, call, input).await?;
    let session_id = text(input, "runtimeSessionId").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    sessions.admit(&format!("{}/runtime-endpoint/{}", target.runtime_arn, target.endpoint_name))?;
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
    let forwarded = headers::to_agent(call.headers, &session_id, call.request_id, &target.header_allowlist);
    let sent = forward::send(
        sessions.client(),
        &session,
        http::Method::POST,
        &target.protocol.path,
        forwarded,
        call.body.clone(),
        sessions.config.request_timeout,
    )
    .await;
    let agent = match sent {
        Ok(a) => a,
        Err(e) => {
            drop(guard);
            if let Some(reason) = crashed_reason(sessions, &session).await {
                let logs = sessions.backend().logs(&session.sandbox.id, 30).await;
                tracing::warn!(session = %session_id, runtime = %target.runtime_id, "agent died during an invocation ({}); last agent output:\n{}", reason.describe(), logs.trim_end());
                sessions.end(&session, reason);
            }
            return Err(Error::new(
                ErrorKind::RuntimeClientError,
                format!("The runtime session's agent could not be reached: {e}"),
            ));
        }
    };
    if !agent.status.is_success() {
        let status = agent.status.as_u16();
        let body = read_capped(agent.body).await;
        drop(guard);
        tracing::warn!(
            session = %session_id,
            runtime = %target.runtime_id,
            status,
            body = %body,
            "agent answered with an error; returned to the caller as RuntimeClientError"
        );
        let mut message =
            format!("Received error ({status}) from runtime. Please check your CloudWatch logs for more information.");
        if sessions.config.debug_errors {
            message.push_str(&format!(
                "\n\nagentcore-local (--debug-errors): the agent answered {status} with body:\n{body}"
            ));
        }
        return Err(Error::new(ErrorKind::RuntimeClientError, message));
    }
    let mut resp = Response::new(RelayBody::new(agent.body, guard, sessions.config.stream_timeout).boxed_unsync());
    *resp.status_mut() = agent.status;
    headers::to_client(resp.headers_mut(), &agent.headers, call.headers, &session_id, call.request_id);
    Ok(resp)
}

async fn crashed_reason(sessions: &Arc<Sessions>, session: &crate::sessions::Session) -> Option<EndReason> {
    match sessions.backend().state(&session.sandbox.id).await {
        crate::sandbox::SandboxState::Running => None,
        crate::sandbox::SandboxState::Exited { code } => Some(EndReason::Crashed { exit_code: Some(code) }),
        crate::sandbox::SandboxState::Missing => Some(EndReason::Crashed { exit_code: None }),
    }
}

async fn read_capped(body: hyper::body::Incoming) -> String {
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
