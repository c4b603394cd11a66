//! Watches one session: pings the agent about every 2 s, samples its sandbox's CPU and memory
//! (the session's usage history), and ends the session when it has been idle too long, has lived
//! too long, or its agent died.

use std::sync::Arc;
use std::time::Duration;

use super::readiness;
use super::session::{EndReason, Session};
use super::Sessions;
use crate::sandbox::SandboxState;

/// Consecutive failed pings after which a running-but-silent agent is reported.
const SILENT_PINGS_BEFORE_WARNING: u32 = 5;
/// Resource samples are taken with the pings, but no closer together than this (a shortened
/// `--lifecycle-time-scale` pings faster; each sample is a call to the sandbox backend).
const MIN_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Samples after finished invocations come no closer together than this.
const MIN_REQUEST_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);
/// How long one resource sample may take before it is skipped.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Take one resource sample into the session's usage and history. Returns when it was begun if it
/// succeeded, so a sample that failed (a loaded Docker answering after `SAMPLE_TIMEOUT`) does not
/// hold the next one back.
async fn sample(sessions: &Sessions, session: &Session) -> Option<tokio::time::Instant> {
    let begun = tokio::time::Instant::now();
    let stats = tokio::time::timeout(SAMPLE_TIMEOUT, sessions.backend.stats(&session.sandbox.id)).await.ok()??;
    session.record_sample(stats);
    if session.ended().is_some() {
        // The session ended while this sample was under way: its report was already written.
        sessions.update_ended_usage(session, None);
    }
    Some(begun)
}

/// Whether the last successful sample (`None`: none yet) is at least `spacing` old.
fn due(sampled: Option<tokio::time::Instant>, spacing: Duration) -> bool {
    sampled.is_none_or(|at| at.elapsed() >= spacing)
}

pub(super) async fn supervise(sessions: Arc<Sessions>, session: Arc<Session>) {
    let config = &sessions.config;
    let interval = config.ping_interval();
    let idle_limit = config.scaled(Duration::from_secs(session.target.lifecycle.idle_timeout_secs));
    let lifetime_limit = config.scaled(Duration::from_secs(session.target.lifecycle.max_lifetime_secs));
    let ended = session.ended_signal();
    let mut failed_pings = 0u32;
    // The history starts with the session (a warm spare's counter already holds its own start).
    let mut sampled = sample(&sessions, &session).await;
    let mut next_ping = tokio::time::Instant::now() + interval;
    loop {
        // While the last sample is too recent for another, a finished invocation only leaves its
        // permit in `request_done`, and this task sleeps on: waking it for every invocation cost
        // a wake-up each (thousands a second in a warm loop, often across threads) to find that
        // no sample was due. Once the spacing has passed, a permit left meanwhile is taken at once.
        let spacing_ends =
            sampled.map(|at| at + MIN_REQUEST_SAMPLE_INTERVAL).filter(|at| *at > tokio::time::Instant::now());
        tokio::select! {
            _ = tokio::time::sleep_until(next_ping) => {}
            _ = ended.cancelled() => return,
            _ = tokio::time::sleep_until(spacing_ends.unwrap_or(next_ping)), if spacing_ends.is_some() => continue,
            _ = session.request_done.notified(), if spacing_ends.is_none() => {
                // Usage right after an invocation: the cost meter keeps it even if the agent
                // dies on its next request (an OOM kill leaves nothing to sample). The spacing
                // counts from when the last good sample began: an invocation that finished while
                // the first sample was still being taken (or had failed) is sampled at once.
                sampled = sample(&sessions, &session).await.or(sampled);
                continue;
            }
        }
        next_ping = tokio::time::Instant::now() + interval;
        let Some(addr) = session.agent_address() else { return };
        if session.target.protocol.has_ping() {
            match readiness::ping(&session.agent, addr, Duration::from_secs(2)).await {
                Ok(report) => {
                    failed_pings = 0;
                    session.record_ping(Some(report));
                }
                Err(e) => {
                    failed_pings += 1;
                    session.record_ping(None);
                    if let Some(reason) = sessions.crashed(&session).await {
                        sessions.end_logged(&session, reason).await;
                        return;
                    }
                    if failed_pings == SILENT_PINGS_BEFORE_WARNING {
                        tracing::warn!(session = %session.key.session_id, runtime = %session.key.runtime_id, error = %e, "agent is running but /ping keeps failing");
                    }
                }
            }
        } else if let Some(reason) = sessions.crashed(&session).await {
            sessions.end_logged(&session, reason).await;
            return;
        }
        if due(sampled, MIN_SAMPLE_INTERVAL) {
            sampled = sample(&sessions, &session).await.or(sampled);
        }
        if session.started_at.elapsed() >= lifetime_limit {
            sessions.end(&session, EndReason::MaxLifetime);
            return;
        }
        let (idle_for, in_flight) = session.idle_state();
        if in_flight == 0 && idle_for >= idle_limit {
            sessions.end(&session, EndReason::IdleTimeout);
            return;
        }
    }
}

impl Sessions {
    /// `Some(reason)` when the session's sandbox is no longer running.
    pub(super) async fn crashed(&self, session: &Session) -> Option<EndReason> {
        match self.backend.state(&session.sandbox.id).await {
            SandboxState::Running => None,
            SandboxState::Exited { code, out_of_memory } => {
                Some(EndReason::Crashed { exit_code: Some(code), out_of_memory })
            }
            SandboxState::Missing => Some(EndReason::Crashed { exit_code: None, out_of_memory: false }),
        }
    }

    /// End a session whose agent died, logging its last output so nobody has to go looking.
    /// Nothing is logged if the session had already ended (a StopRuntimeSession's SIGTERM is
    /// what the agent died of: exit code 143 is no crash).
    pub(super) async fn end_logged(self: &Arc<Self>, session: &Arc<Session>, reason: EndReason) {
        let logs = self.backend.logs(&session.sandbox.id, 30).await;
        let described = reason.describe();
        if self.end(session, reason) {
            tracing::warn!(
                session = %session.key.session_id,
                runtime = %session.key.runtime_id,
                "session ended: {described}; last agent output:\n{}",
                logs.trim_end()
            );
        }
    }
}
