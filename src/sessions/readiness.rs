//! Is the agent up? `GET /ping` for HTTP and AG-UI agents, a TCP connect for MCP and A2A servers
//! (which usually have no /ping), polled until ready, until the sandbox exits, or until the budget.
//!
//! [`Sessions::start_and_wait`] is the one place a sandbox is started and waited for (a session's
//! cold start, a warm-pool fill); [`Sessions::answers`] the one check of a sandbox found running (a
//! spare being claimed, a sandbox re-adopted after a restart).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::capture::CaptureHandle;
use super::session::PingReport;
use super::{AgentClient, Sessions};
use crate::sandbox::{SandboxBackend, SandboxError, SandboxHandle, SandboxSpec, SandboxState};
use crate::services::runtime::domain::protocol::Protocol;
use crate::services::runtime::domain::resolve::InvocationTarget;

/// One `GET /ping`: the report on 200, otherwise why not.
pub async fn ping(client: &AgentClient, addr: SocketAddr, timeout: Duration) -> Result<PingReport, String> {
    let request =
        http::Request::get(format!("http://{addr}/ping")).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|e| format!("{e}"))?;
    let status = response.status();
    let body = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .map_err(|_| "ping body timed out".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != http::StatusCode::OK {
        return Err(format!("/ping answered {status}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Ok(PingReport {
        status: json.get("status").and_then(|s| s.as_str()).unwrap_or("Healthy").to_string(),
        time_of_last_update: json.get("time_of_last_update").and_then(|t| t.as_i64()),
    })
}

/// Is the agent's server answering? HTTP and AG-UI agents must answer `GET /ping` with 200; MCP
/// and A2A servers count as up once they answer any HTTP request. (A bare TCP connect is not
/// enough: Docker's userland proxy accepts on the published port before anything listens.)
pub async fn probe(client: &AgentClient, addr: SocketAddr, protocol: &Protocol) -> Result<(), String> {
    if protocol.has_ping() {
        return ping(client, addr, Duration::from_secs(2)).await.map(|_| ());
    }
    // `/ping` rather than the protocol path: a stateless MCP server keeps `GET /mcp` open as a stream.
    let request =
        http::Request::get(format!("http://{addr}/ping")).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(2), client.request(request))
        .await
        .map_err(|_| "no answer within 2s".to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Why a sandbox never became ready.
#[derive(Debug)]
pub struct NotReady {
    pub exit_code: Option<i64>,
    pub last_probe_error: String,
}

/// Poll until ready; fast at first (cold starts are usually sub-second), then backing off.
pub async fn wait_ready(
    backend: &dyn SandboxBackend,
    client: &AgentClient,
    sandbox_id: &str,
    addr: SocketAddr,
    protocol: &Protocol,
    budget: Duration,
) -> Result<(), NotReady> {
    let started = Instant::now();
    let mut last_state_check = Instant::now();
    let mut last_error = String::from("not probed yet");
    while started.elapsed() < budget {
        match probe(client, addr, protocol).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::debug!(sandbox = %sandbox_id, elapsed = ?started.elapsed(), error = %e, "agent not ready yet");
                last_error = e;
            }
        }
        if last_state_check.elapsed() >= Duration::from_millis(200) {
            last_state_check = Instant::now();
            if let SandboxState::Exited { code, .. } = backend.state(sandbox_id).await {
                return Err(NotReady { exit_code: Some(code), last_probe_error: last_error });
            }
        }
        let pause = match started.elapsed() {
            e if e < Duration::from_millis(500) => Duration::from_millis(5),
            e if e < Duration::from_secs(5) => Duration::from_millis(25),
            _ => Duration::from_millis(100),
        };
        tokio::time::sleep(pause).await;
    }
    Err(NotReady { exit_code: None, last_probe_error: last_error })
}

/// A sandbox whose agent answered, and the client it answered through: the session keeps both
/// (the client with its connection).
pub(super) struct ReadySandbox {
    pub handle: SandboxHandle,
    pub agent: AgentClient,
}

/// A sandbox started by [`Sessions::start_and_wait`] whose agent answers.
pub(super) struct Started {
    pub ready: ReadySandbox,
    /// Its output followed into the session's log (sessions only; a spare's is followed once claimed).
    pub capture: Option<CaptureHandle>,
}

/// Why [`Sessions::start_and_wait`] has no ready sandbox. Past `NotStarted` the sandbox exists
/// (and is in the directory): the caller removes it.
pub(super) enum StartFailure {
    /// The backend did not start it.
    NotStarted(SandboxError),
    /// It does not publish the agent's port.
    NoAgentPort { handle: SandboxHandle },
    /// Its agent did not answer.
    NotReady { handle: SandboxHandle, capture: Option<CaptureHandle>, failure: NotReady },
}

impl Sessions {
    /// Start `spec`'s sandbox for `target` and wait, within the startup timeout, until its agent
    /// answers. The sandbox enters the directory before it boots (the agent may ask for its
    /// credentials then) as `session`'s, or as a spare with `None`; a session's output is captured
    /// from its first line into the stream of the session started at `started_ms`.
    pub(super) async fn start_and_wait(
        &self,
        spec: &SandboxSpec,
        target: &InvocationTarget,
        session: Option<&str>,
        started_ms: i64,
    ) -> Result<Started, StartFailure> {
        let handle = self.backend.start(spec).await.map_err(StartFailure::NotStarted)?;
        self.directory.enter(&handle, target, session);
        let capture = session.and_then(|id| self.capture(target, id, started_ms, &handle.id, false));
        let Some(addr) = handle.ports.get(&target.protocol.port).copied() else {
            return Err(StartFailure::NoAgentPort { handle });
        };
        let agent = AgentClient::for_sandbox(&handle);
        let waited =
            wait_ready(self.backend.as_ref(), &agent, &handle.id, addr, &target.protocol, self.config.startup_timeout)
                .await;
        match waited {
            Ok(()) => Ok(Started { ready: ReadySandbox { handle, agent }, capture }),
            Err(failure) => Err(StartFailure::NotReady { handle, capture, failure }),
        }
    }

    /// Does the agent of a sandbox found running (no wait: it started long ago) answer one probe
    /// through `agent` (the sandbox's client, which the session then keeps)?
    pub(super) async fn answers(&self, agent: &AgentClient, handle: &SandboxHandle, target: &InvocationTarget) -> bool {
        match handle.ports.get(&target.protocol.port) {
            Some(addr) => probe(agent, *addr, &target.protocol).await.is_ok(),
            None => false,
        }
    }
}
