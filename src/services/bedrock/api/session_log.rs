//! A model call made by a runtime session, written into that session's log.

use std::sync::Arc;

use crate::kernel::clock::now_ms;
use crate::services::bedrock::calls::{self, ModelCall};
use crate::services::logs::{LogEvent, LogStore};
use crate::sessions::Sessions;

/// Where a calling session's log lines go: the live sessions (to find the session's stream) and
/// the store of agent output.
#[derive(Clone)]
pub struct SessionLogs {
    pub sessions: Arc<Sessions>,
    pub logs: LogStore,
}

/// Put a line for `call` into the log of the runtime session that made it (`call.session`): what
/// a developer reading that session's logs expects to see next to the agent's own output. Calls
/// whose credentials name no session (host-side callers, until session credentials identify
/// sessions) or whose session has ended are not logged here.
pub async fn note_in_session_log(to: &SessionLogs, call: &ModelCall) {
    let Some(who) = &call.session else { return };
    let live = to.sessions.live();
    let Some(session) = live.iter().find(|s| s.key.runtime_id == who.runtime_id && s.key.session_id == who.session_id)
    else {
        return;
    };
    let store = to.logs.scoped(&session.target.account, &session.target.region);
    let group = crate::services::logs::group_name(&session.target.runtime_id, &session.target.endpoint_name);
    let stream = crate::services::logs::stream_name(&who.session_id, session.started_at_unix_ms);
    let now = now_ms();
    let event =
        LogEvent { timestamp: now, stream: "stdout".into(), message: calls::session_log_line(call), ingested: now };
    let appended = tokio::task::spawn_blocking(move || store.append(&group, &stream, &[event])).await;
    if let Ok(Err(e)) = appended {
        tracing::warn!(error = %e, "could not write a model call into its session's log");
    }
}
