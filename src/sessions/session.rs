//! One live session: its sandbox, its activity, and how it ended.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::sandbox::SandboxHandle;
use crate::services::runtime::domain::resolve::InvocationTarget;

/// Identifies a session: runtime ids are unique across accounts and Regions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub runtime_id: String,
    pub session_id: String,
}

/// Why a session ended; shown in logs and (later) in session listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    Stopped,
    IdleTimeout,
    MaxLifetime,
    /// `out_of_memory`: killed for passing the sandbox's memory limit (`--sandbox-memory-mib`).
    Crashed {
        exit_code: Option<i64>,
        out_of_memory: bool,
    },
    RuntimeDeleted,
    Shutdown,
}

impl EndReason {
    pub fn describe(&self) -> String {
        match self {
            EndReason::Stopped => "stopped by StopRuntimeSession".into(),
            EndReason::IdleTimeout => "idle timeout".into(),
            EndReason::MaxLifetime => "max lifetime reached".into(),
            EndReason::Crashed { out_of_memory: true, exit_code } => format!(
                "agent ran out of memory: killed at the sandbox's memory limit (exit code {}); raise \
                 --sandbox-memory-mib or use less memory",
                exit_code.unwrap_or(137)
            ),
            EndReason::Crashed { exit_code: Some(c), .. } => format!("agent exited with code {c}"),
            EndReason::Crashed { exit_code: None, .. } => "agent became unreachable".into(),
            EndReason::RuntimeDeleted => "runtime or version deleted".into(),
            EndReason::Shutdown => "emulator shut down".into(),
        }
    }
}

/// How a session's start went, in milliseconds from the first request for it: what the session
/// report shows per session (`agentcore-local sessions --json`, the dashboard's phase bar).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StartPhases {
    /// The session was given a ready warm-pool spare: no sandbox was created or started for it.
    pub warm_spare: bool,
    /// The sandbox existed (Docker: container created).
    pub sandbox_created_ms: Option<f64>,
    /// The sandbox ran with its ports known (Docker: started and inspected).
    pub sandbox_started_ms: Option<f64>,
    /// The agent first answered its readiness probe (`GET /ping` 200, or its port for MCP/A2A),
    /// or, for a spare, the claim's liveness probe.
    pub agent_ready_ms: Option<f64>,
    /// The agent's first response headers to an invocation.
    pub first_response_ms: Option<f64>,
}

/// Milliseconds with 0.1 ms resolution: enough to tell phases apart, short in JSON.
pub(super) fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The agent's last `/ping` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingReport {
    pub status: String,
    pub time_of_last_update: Option<i64>,
}

impl PingReport {
    /// HealthyBusy keeps a session alive only with a `time_of_last_update`, as the service
    /// documents (without it the idle timeout fires anyway).
    pub fn keeps_alive(&self) -> bool {
        self.status == "HealthyBusy" && self.time_of_last_update.is_some()
    }
}

#[derive(Debug)]
struct Activity {
    last_activity: Instant,
    in_flight: u32,
    ping: Option<PingReport>,
    ended: Option<EndReason>,
}

pub struct Session {
    pub key: SessionKey,
    pub target: InvocationTarget,
    pub sandbox: SandboxHandle,
    /// How the emulator reaches the sandbox's agent (its own connection pool).
    pub(super) agent: super::AgentClient,
    pub started_at: Instant,
    pub started_at_unix_ms: i64,
    /// Identity of the table slot this session was created in.
    pub(super) slot_id: u64,
    activity: Mutex<Activity>,
    /// Cancelled when the session ends: streams, commands and the supervisor stop on it.
    ended_token: CancellationToken,
    invocations: AtomicU64,
    /// The capture of this sandbox's output, taken when the session ends to drain it.
    capture: Mutex<Option<super::capture::CaptureHandle>>,
    usage: Mutex<super::report::Usage>,
    /// CPU and memory over the session's life (bounded: `report::USAGE_HISTORY_POINTS`).
    history: Mutex<super::report::UsageHistory>,
    /// Signalled when an invocation finishes, so the supervisor samples usage while the work's
    /// effect is fresh (an agent killed by its next request leaves no later sample).
    pub(super) request_done: tokio::sync::Notify,
    phases: Mutex<StartPhases>,
}

impl Session {
    pub(super) fn new(
        key: SessionKey,
        target: InvocationTarget,
        ready: super::readiness::ReadySandbox,
        started_at: Instant,
        started_at_unix_ms: i64,
        slot_id: u64,
        phases: StartPhases,
    ) -> Session {
        Session {
            key,
            target,
            agent: ready.agent,
            sandbox: ready.handle,
            started_at,
            started_at_unix_ms,
            slot_id,
            activity: Mutex::new(Activity { last_activity: Instant::now(), in_flight: 0, ping: None, ended: None }),
            ended_token: CancellationToken::new(),
            invocations: AtomicU64::new(0),
            capture: Mutex::new(None),
            usage: Mutex::new(super::report::Usage::default()),
            history: Mutex::new(super::report::UsageHistory::default()),
            request_done: tokio::sync::Notify::new(),
            phases: Mutex::new(phases),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Activity> {
        self.activity.lock()
    }

    /// The address of the agent's protocol port.
    pub fn agent_address(&self) -> Option<std::net::SocketAddr> {
        self.sandbox.ports.get(&self.target.protocol.port).copied()
    }

    /// Count a request as in flight until the guard drops.
    pub fn begin_request(self: &Arc<Self>) -> ActivityGuard {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let mut a = self.lock();
        a.in_flight += 1;
        a.last_activity = Instant::now();
        ActivityGuard { session: self.clone() }
    }

    pub fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    pub fn record_ping(&self, report: Option<PingReport>) {
        let mut a = self.lock();
        if report.as_ref().is_some_and(PingReport::keeps_alive) {
            a.last_activity = Instant::now();
        }
        a.ping = report;
    }

    pub fn last_ping(&self) -> Option<PingReport> {
        self.lock().ping.clone()
    }

    /// (time since the last activity, requests in flight)
    pub fn idle_state(&self) -> (std::time::Duration, u32) {
        let a = self.lock();
        (a.last_activity.elapsed(), a.in_flight)
    }

    pub(super) fn set_capture(&self, capture: Option<super::capture::CaptureHandle>) {
        *self.capture.lock() = capture;
    }

    pub(super) fn take_capture(&self) -> Option<super::capture::CaptureHandle> {
        self.capture.lock().take()
    }

    /// Fold a resource sample into the session's usage and return the usage so far.
    pub fn record_usage(&self, stats: Option<crate::sandbox::SandboxStats>) -> super::report::Usage {
        let mut usage = self.usage.lock();
        if let Some(s) = stats {
            usage.merge(s);
        }
        *usage
    }

    /// Fold a periodic resource sample (the supervisor's) into the usage and the history.
    pub(super) fn record_sample(&self, stats: crate::sandbox::SandboxStats) {
        self.record_usage(Some(stats));
        self.history.lock().push(crate::kernel::clock::now_ms(), stats);
    }

    /// The CPU and memory history so far, oldest first.
    pub fn usage_history(&self) -> std::sync::Arc<[super::report::UsagePoint]> {
        self.history.lock().points().into()
    }

    /// Record that the agent answered an invocation; only the first answer is a start phase.
    pub fn note_response(&self) {
        let mut phases = self.phases.lock();
        if phases.first_response_ms.is_none() {
            phases.first_response_ms = Some(millis(self.started_at.elapsed()));
        }
    }

    pub fn phases(&self) -> StartPhases {
        *self.phases.lock()
    }

    /// Marks the session ended; true only for the first caller.
    pub(super) fn mark_ended(&self, reason: EndReason) -> bool {
        let mut a = self.lock();
        if a.ended.is_some() {
            return false;
        }
        a.ended = Some(reason);
        drop(a);
        self.ended_token.cancel();
        true
    }

    pub fn ended(&self) -> Option<EndReason> {
        self.lock().ended.clone()
    }

    /// Resolves when the session ends (used to cut streams short).
    pub fn ended_signal(&self) -> CancellationToken {
        self.ended_token.clone()
    }
}

/// Holds a request "in flight" for idle accounting; dropping it records the end of activity.
pub struct ActivityGuard {
    session: Arc<Session>,
}

impl ActivityGuard {
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let mut a = self.session.lock();
        a.in_flight = a.in_flight.saturating_sub(1);
        a.last_activity = Instant::now();
        drop(a);
        self.session.request_done.notify_one();
    }
}
