//! At start-up: re-adopt this instance's sandboxes that are still healthy, remove the rest, and
//! remove sandboxes left behind by emulator processes that no longer exist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::session::{Session, SessionKey};
use super::{supervisor, Sessions, Slot};
use crate::kernel::error::Result;
use crate::sandbox::{labels, OwnedSandbox};
use crate::services::runtime::domain::{now_ms, ControlPlane};
use futures_util::future::BoxFuture;

/// A sandbox of another emulator that nobody will come back for: its emulator kept no data dir
/// (so it cannot restart into the same instance) and its process is gone. Sandboxes of emulators
/// with a data dir are theirs alone to re-adopt or remove at their next start. "Gone" is known
/// only within the owner's PID namespace: an emulator in a container (or beside one) cannot see
/// the other's processes, so it leaves their sandboxes alone.
fn orphaned(sandbox: &OwnedSandbox) -> bool {
    if sandbox.labels.get(labels::PERSISTENT).map(String::as_str) == Some("true") {
        return false;
    }
    let namespace = sandbox.labels.get(labels::OWNER_PID_NAMESPACE);
    if namespace.is_some_and(|ns| *ns != super::spec::pid_namespace()) {
        return false;
    }
    let owner = sandbox.labels.get(labels::OWNER_PID).and_then(|p| p.parse::<u32>().ok());
    !owner.is_some_and(|pid| pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists())
}

impl Sessions {
    /// Returns (adopted, removed).
    pub async fn recover(self: &Arc<Self>, control: &ControlPlane) -> (usize, usize) {
        let owned = match self.backend.list_owned().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "could not list sandboxes at start-up; none re-adopted");
                return (0, 0);
            }
        };
        let (mut adopted, mut removed) = (0, 0);
        for sandbox in owned {
            let ours = sandbox.labels.get(labels::INSTANCE).map(String::as_str) == Some(self.instance_id.as_str());
            if ours && sandbox.running && self.adopt(control, &sandbox).await {
                adopted += 1;
                continue;
            }
            if ours || orphaned(&sandbox) {
                tracing::info!(sandbox = %sandbox.handle.id, ours, "removing leftover sandbox");
                let _ = self.backend.stop(&sandbox.handle.id, Duration::ZERO).await;
                removed += 1;
            }
        }
        if adopted + removed > 0 {
            tracing::info!(adopted, removed, "sandboxes from before the restart handled");
        }
        (adopted, removed)
    }

    async fn adopt(self: &Arc<Self>, control: &ControlPlane, sandbox: &OwnedSandbox) -> bool {
        let label = |k: &str| sandbox.labels.get(k).cloned().unwrap_or_default();
        let (runtime_id, session_id, endpoint) =
            (label(labels::RUNTIME_ID), label(labels::SESSION_ID), label(labels::ENDPOINT));
        let Ok(version) = label(labels::VERSION).parse::<u32>() else { return false };
        let target = match control.version_target(runtime_id.clone(), version, endpoint).await {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(sandbox = %sandbox.handle.id, error = %e, "not re-adopting sandbox");
                return false;
            }
        };
        let agent = super::AgentClient::for_sandbox(&sandbox.handle);
        if !self.answers(&agent, &sandbox.handle, &target).await {
            return false;
        }
        let started_ms: i64 = label(labels::STARTED_AT_MS).parse().unwrap_or_else(|_| now_ms());
        let age = Duration::from_millis((now_ms() - started_ms).max(0) as u64);
        let started_at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        self.directory.enter(&sandbox.handle, &target, Some(&session_id));
        let key = SessionKey { runtime_id, session_id };
        let slot_id = self.next_slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = Arc::new(Session::new(
            key.clone(),
            target,
            super::readiness::ReadySandbox { handle: sandbox.handle.clone(), agent },
            started_at,
            started_ms,
            slot_id,
            Default::default(),
        ));
        // Its output goes on into the session's stream, after the lines stored before the restart.
        session.set_capture(self.capture(
            &session.target,
            &session.key.session_id,
            started_ms,
            &sandbox.handle.id,
            true,
        ));
        let ready = session.clone();
        let start: BoxFuture<'static, Result<Arc<Session>>> = Box::pin(async move { Ok(ready) });
        let slot = Arc::new(Slot {
            id: slot_id,
            start: start.shared(),
            target: session.target.clone(),
            began: started_at,
            started_at_ms: started_ms,
        });
        // Resolve the shared future once so `live()` sees the session.
        let _ = slot.start.clone().await;
        self.table().slots.insert(key, slot);
        tracing::info!(session = %session.key.session_id, runtime = %session.key.runtime_id, sandbox = %session.sandbox.id, "re-adopted session");
        tokio::spawn(supervisor::supervise(self.clone(), session));
        true
    }
}
