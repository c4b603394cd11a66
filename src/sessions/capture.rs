//! Follows a sandbox's output into its log stream from the moment the sandbox starts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::kernel::clock::now_ms;
use crate::sandbox::SandboxBackend;
use crate::services::logs::{LogEvent, LogStore};

/// Lines are written in batches at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const MAX_BATCH: usize = 500;

/// A running capture; it ends by itself when the sandbox stops writing (stops or is removed).
pub struct CaptureHandle {
    task: JoinHandle<()>,
}

impl CaptureHandle {
    /// Wait until everything the sandbox wrote is stored (or `limit` passes).
    pub async fn drained(self, limit: Duration) {
        if tokio::time::timeout(limit, self.task).await.is_err() {
            tracing::warn!("log capture did not finish within {limit:?}");
        }
    }
}

async fn flush(store: &LogStore, group: &str, stream: &str, batch: &mut Vec<LogEvent>) {
    if batch.is_empty() {
        return;
    }
    let (store, group, stream, events) = (store.clone(), group.to_string(), stream.to_string(), std::mem::take(batch));
    let written = tokio::task::spawn_blocking(move || store.append(&group, &stream, &events)).await;
    if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
        tracing::warn!(error = %e, "could not store agent output");
    }
}

/// Store every line `sandbox_id` writes from `since_ms` into `group`/`stream`.
pub fn follow(
    backend: Arc<dyn SandboxBackend>,
    sandbox_id: String,
    store: LogStore,
    group: String,
    stream: String,
    since_ms: i64,
) -> CaptureHandle {
    let task = tokio::spawn(async move {
        let mut lines = backend.follow_output(&sandbox_id, since_ms).await;
        let mut batch = Vec::new();
        loop {
            // Idle sessions cost no wake-ups: the flush deadline exists only while lines wait.
            let next = if batch.is_empty() {
                lines.next().await
            } else {
                match tokio::time::timeout(FLUSH_EVERY, lines.next()).await {
                    Ok(line) => line,
                    Err(_) => {
                        flush(&store, &group, &stream, &mut batch).await;
                        continue;
                    }
                }
            };
            let Some(l) = next else { break };
            batch.push(LogEvent {
                timestamp: l.timestamp_ms,
                stream: if l.stderr { "stderr".into() } else { "stdout".into() },
                message: l.text,
                ingested: now_ms(),
            });
            if batch.len() >= MAX_BATCH {
                flush(&store, &group, &stream, &mut batch).await;
            }
        }
        flush(&store, &group, &stream, &mut batch).await;
    });
    CaptureHandle { task }
}
