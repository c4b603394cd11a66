//! What the wire may do with a live session. Everything a handler needs from a sandbox goes
//! through these methods, so no handler knows which backend runs the session.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderMap;

use super::forward::{self, AgentResponse, RelayBody};
use super::{ActivityGuard, EndReason, Session, Sessions};
use crate::kernel::error::Result;
use crate::sandbox::{Exec, SandboxError};
use crate::services::runtime::domain::resolve::InvocationTarget;

impl Sessions {
    /// Send one request to the session's agent (timeout: the synchronous request limit).
    pub async fn send(
        &self,
        session: &Session,
        method: http::Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> std::result::Result<AgentResponse, String> {
        let sent = forward::send(session, method, path_and_query, headers, body, self.config.request_timeout).await;
        if sent.is_ok() {
            session.note_response();
        }
        sent
    }

    /// The agent's response body as the client's, keeping the session busy while it streams.
    pub fn relay(&self, body: super::AgentBody, guard: ActivityGuard) -> RelayBody {
        RelayBody::new(body, guard, self.config.stream_timeout)
    }

    /// Whether error messages may carry the agent's own error status and body (`--debug-errors`).
    pub fn debug_errors(&self) -> bool {
        self.config.debug_errors
    }

    /// The last `lines` lines the session's agent wrote, for error messages and logs.
    ///
    /// An agent typically writes why it fails and then answers; its output reaches the backend's
    /// log asynchronously (Docker copies it through the container shim), so the line written just
    /// before the answer can still be on its way. Read until two reads agree, at most
    /// `OUTPUT_SETTLE_READS` times: this runs only on error paths, where the last line matters most.
    pub async fn last_output(&self, session: &Session, lines: usize) -> String {
        const OUTPUT_SETTLE_READS: usize = 8;
        const OUTPUT_SETTLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
        let mut seen = self.backend.logs(&session.sandbox.id, lines).await;
        for _ in 1..OUTPUT_SETTLE_READS {
            tokio::time::sleep(OUTPUT_SETTLE_PAUSE).await;
            let now = self.backend.logs(&session.sandbox.id, lines).await;
            if now == seen {
                break;
            }
            seen = now;
        }
        seen
    }

    /// Why the session's sandbox is gone after a request to it failed, waiting a moment for the
    /// sandbox to finish dying: when the kernel kills the agent, the connection breaks before the
    /// sandbox's init has exited and the backend can say why. `None` if it is still running then.
    /// A session the emulator itself ended (its max lifetime, a stop, the runtime's deletion) is
    /// reported as that, not as the exit code 143 its agent's SIGTERM leaves behind.
    pub async fn crash_reason_after_failure(&self, session: &Session) -> Option<EndReason> {
        for _ in 0..10 {
            if let Some(reason) = session.ended() {
                return Some(reason);
            }
            if let Some(reason) = self.crashed(session).await {
                return Some(reason);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        None
    }

    /// The session that answers a request for static metadata (an A2A agent card): the addressed
    /// session if it is live, else any live session of the same version, else a new one. A card
    /// request then does not start a sandbox per auto-generated session id.
    pub async fn metadata_session(
        self: &Arc<Self>,
        target: &InvocationTarget,
        session_id: &str,
    ) -> Result<Arc<Session>> {
        let live = self.live();
        let addressed = live.iter().find(|s| s.key.runtime_id == target.runtime_id && s.key.session_id == session_id);
        if let Some(s) = addressed.cloned().or_else(|| self.any_live(&target.runtime_id, target.version)) {
            return Ok(s);
        }
        Ok(self.session(target, session_id).await?.0)
    }

    /// Start `argv` in the session's sandbox, attached to its output.
    pub async fn exec(&self, session: &Session, argv: Vec<String>) -> std::result::Result<Exec, SandboxError> {
        self.backend.exec(&session.sandbox.id, argv).await
    }

    /// Whether a loopback connection the emulator accepted (from `peer`, at `local`) was opened by
    /// a sandbox (a VM's guest, through QEMU) rather than by a local user. Blocking (reads /proc).
    pub fn connection_from_sandbox(&self, peer: std::net::SocketAddr, local: std::net::SocketAddr) -> bool {
        self.backend.opened_by_sandbox(peer, local)
    }

    /// Whether the session's sandbox has a usable `/bin/sh`. Docker reports a missing executable
    /// as output of the exec (and its exit code only later), so run a command that prints nothing
    /// when it works: any output, or a non-zero exit, means there is no usable shell.
    pub async fn has_shell(&self, session: &Session) -> bool {
        let argv = vec!["/bin/sh".into(), "-c".into(), "exit 0".into()];
        let Ok(mut exec) = self.exec(session, argv).await else { return false };
        let mut printed = false;
        while let Some(item) = exec.output.next().await {
            printed |= item.is_ok();
        }
        !printed && exec.handle.wait().await.unwrap_or(0) == 0
    }

    /// Append a line of the emulator's own (a model call, say) to a live session's log stream,
    /// beside the agent's output. Ignored when the session has ended or no logs are kept.
    pub async fn note_in_log(&self, runtime_id: &str, session_id: &str, message: String) {
        let Some(store) = self.logs.as_ref() else { return };
        let live = self.live();
        let Some(session) = live.iter().find(|s| s.key.runtime_id == runtime_id && s.key.session_id == session_id)
        else {
            return;
        };
        let store = store.scoped(&session.target.account, &session.target.region);
        let group = crate::services::logs::group_name(&session.target.runtime_id, &session.target.endpoint_name);
        let stream = crate::services::logs::stream_name(session_id, session.started_at_unix_ms);
        let now = crate::kernel::clock::now_ms();
        let event = crate::services::logs::LogEvent { timestamp: now, stream: "stdout".into(), message, ingested: now };
        let appended = tokio::task::spawn_blocking(move || store.append(&group, &stream, &[event])).await;
        if let Ok(Err(e)) = appended {
            tracing::warn!(error = %e, "could not write a line into a session's log");
        }
    }
}
