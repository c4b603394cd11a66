//! Follows a sandbox's output into its log stream from the moment the sandbox starts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::task::JoinHandle;

use crate::kernel::clock::now_ms;
use crate::sandbox::{OutputLine, SandboxBackend};
use crate::services::logs::{LogEvent, LogStore};

/// A line is stored at most this long after it was written, with the lines that followed it.
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

/// Keeps a stream's events in time order, as CloudWatch holds them (GetLogEvents pages by
/// position in the stream). Docker stamps stdout and stderr on their own, so a line of one pipe
/// can arrive after a line of the other stamped a millisecond later: it takes that line's time.
#[derive(Default)]
struct TimeOrder {
    latest: Option<i64>,
}

impl TimeOrder {
    fn stamp(&mut self, stamped_ms: i64) -> i64 {
        let stamp = self.latest.map_or(stamped_ms, |latest| stamped_ms.max(latest));
        self.latest = Some(stamp);
        stamp
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
        let mut order = TimeOrder::default();
        let mut keep = |line: OutputLine, batch: &mut Vec<LogEvent>| {
            batch.push(LogEvent {
                timestamp: order.stamp(line.timestamp_ms),
                stream: if line.stderr { "stderr".into() } else { "stdout".into() },
                message: line.text,
                ingested: now_ms(),
            })
        };
        // Idle sessions cost no wake-ups: the task sleeps until a line comes.
        while let Some(first) = lines.next().await {
            keep(first, &mut batch);
            // Then it lets the lines that follow gather for FLUSH_EVERY and takes them all at
            // once, rather than waking for each (an agent that logs every request would
            // otherwise cost the emulator a wake-up per request).
            tokio::time::sleep(FLUSH_EVERY).await;
            let mut ended = false;
            let mut yielded = false;
            loop {
                match lines.next().now_or_never() {
                    Some(Some(line)) => {
                        yielded = false;
                        keep(line, &mut batch);
                        if batch.len() >= MAX_BATCH {
                            flush(&store, &group, &stream, &mut batch).await;
                        }
                    }
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    // Nothing handed over yet: the connection's own task may hold more that it
                    // has read but not passed on; let it run once, and stop if it had nothing.
                    None if !yielded => {
                        yielded = true;
                        tokio::task::yield_now().await;
                    }
                    None => break,
                }
            }
            flush(&store, &group, &stream, &mut batch).await;
            if ended {
                return;
            }
        }
    });
    CaptureHandle { task }
}

#[cfg(test)]
mod tests {
    use super::TimeOrder;

    #[test]
    fn a_line_stamped_before_one_already_stored_takes_its_time() {
        let mut order = TimeOrder::default();
        let stamps: Vec<i64> = [1000, 1002, 1001, 1002, 1005, 900].into_iter().map(|t| order.stamp(t)).collect();
        assert_eq!(stamps, [1000, 1002, 1002, 1002, 1005, 1005]);
    }
}
