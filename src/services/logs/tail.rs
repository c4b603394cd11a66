//! Reading a runtime's agent output as it grows: newline-delimited JSON events of all its
//! sessions (or one), ordered by time, for the console's log page and `agentcore-local logs -f`.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;

use super::LogStore;

/// How often a followed tail looks for new lines. Files are appended as output arrives, so a
/// short poll of their sizes is cheap and needs no notification plumbing from the capture.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// The runtime's events so far as NDJSON chunks; with `follow`, then every new line as the
/// agents write them, until the reader goes away.
pub fn tail_runtime(
    store: LogStore,
    runtime: String,
    session: Option<String>,
    follow: bool,
) -> impl Stream<Item = Bytes> + Send {
    futures_util::stream::unfold((HashMap::<(PathBuf, String), u64>::new(), true), move |(mut offsets, first)| {
        let (store, runtime, session) = (store.clone(), runtime.clone(), session.clone());
        async move {
            if !first {
                if !follow {
                    return None;
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
            let mut lines = Vec::new();
            for (scoped, info) in store.runtime_streams(&runtime) {
                let session_of = info.name.rsplit("[runtime-logs]").next().unwrap_or_default().to_string();
                if session.as_ref().is_some_and(|s| *s != session_of) {
                    continue;
                }
                let key = (PathBuf::from(&info.group), info.name.clone());
                let offset = offsets.get(&key).copied().unwrap_or(0);
                let (events, next) = scoped.events_after(&info.group, &info.name, offset);
                offsets.insert(key, next);
                lines.extend(events.into_iter().map(|e| (e.timestamp, session_of.clone(), e)));
            }
            lines.sort_by_key(|(t, _, _)| *t);
            let mut out = String::new();
            for (_, session, e) in lines {
                let line =
                    json!({"timestamp": e.timestamp, "session": session, "stream": e.stream, "message": e.message});
                let _ = writeln!(out, "{line}");
            }
            Some((Bytes::from(out), (offsets, false)))
        }
    })
}
