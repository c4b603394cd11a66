//! One live session: its sandbox, its activity, and how it ended.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Instant;

use tokio::sync::watch;

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
    pub started_at: Instant,
    pub started_at_unix_ms: i64,
    /// Identity of the table slot this session was created in.
    pub(super) slot_id: u64,
    activity: Mutex<Activity>,
    ended_tx: watch::Sender<bool>,
    invocations: AtomicU64,
    /// The capture of this sandbox's output, taken when the session ends to drain it.
    capture: Mutex<Option<super::capture::CaptureHandle>>,
    usage: Mutex<super::report::Usage>,
}

impl Session {
    pub(super) fn new(
        key: SessionKey,
        target: InvocationTarget,
        sandbox: SandboxHandle,
        started_at: Instant,
        started_at_unix_ms: i64,
        slot_id: u64,
    ) -> Session {
        Session {
            key,
            target,
            sandbox,
            started_at,
            started_at_unix_ms,
            slot_id,
            activity: Mutex::new(Activity { last_activity: Instant::now(), in_flight: 0, ping: None, ended: None }),
            ended_tx: watch::channel(false).0,
            invocations: AtomicU64::new(0),
            capture: Mutex::new(None),
            usage: Mutex::new(super::report::Usage::default()),
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

    /// Marks the session ended; true only for the first caller.
    pub(super) fn mark_ended(&self, reason: EndReason) -> bool {
        let mut a = self.lock();
        if a.ended.is_some() {
            return false;
        }
        a.ended = Some(reason);
        drop(a);
        let _ = self.ended_tx.send(true);
        true
    }

    pub fn ended(&self) -> Option<EndReason> {
        self.lock().ended.clone()
    }

    /// Resolves when the session ends (used to cut streams short).
    pub fn ended_signal(&self) -> watch::Receiver<bool> {
        self.ended_tx.subscribe()
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
    }
}
