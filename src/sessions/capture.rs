//! Follows a sandbox's output into its log stream from the moment the sandbox starts.

use std::collections::HashMap;
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

/// Store a batch of lines in the order they were written. Docker copies stdout and stderr each on
/// its own, so a batch can hand over a line of one pipe after a later line of the other (seen
/// under load, by more than a millisecond): the batch is sorted by Docker's timestamps first
/// (stably: the lines of one pipe keep their order), and only a line older than one stored in an
/// earlier batch takes that line's time (`TimeOrder`).
async fn flush(store: &LogStore, group: &str, stream: &str, order: &mut TimeOrder, batch: &mut Vec<OutputLine>) {
    if batch.is_empty() {
        return;
    }
    let events = in_time_order(order, std::mem::take(batch));
    let (store, group, stream) = (store.clone(), group.to_string(), stream.to_string());
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

/// A batch's lines as events, sorted by their timestamps and stamped in time order with the
/// stream's earlier batches.
fn in_time_order(order: &mut TimeOrder, mut lines: Vec<OutputLine>) -> Vec<LogEvent> {
    lines.sort_by_key(|line| line.timestamp_ms);
    let ingested = now_ms();
    lines
        .into_iter()
        .map(|line| LogEvent {
            timestamp: order.stamp(line.timestamp_ms),
            stream: if line.stderr { "stderr".into() } else { "stdout".into() },
            message: line.text,
            ingested,
        })
        .collect()
}

/// How far before the last stored line a resumed capture reads again. Stored lines carry the time
/// the emulator read them (`sandbox::attached`), a few ms after Docker's copier stamped the same
/// lines in its log; a line Docker stamped just before the last stored line may not have been
/// stored when the emulator stopped.
const RESUME_OVERLAP_MS: i64 = 2_000;
/// Stored lines read back to recognise them in the overlap, at most.
const RESUME_LINES: usize = 1_000;

/// Where a capture begins: a sandbox's first line, or (a sandbox re-adopted after a restart) a
/// little before the last line its stream holds.
#[derive(Default)]
pub struct StartAt {
    /// Unix ms; 0 for the sandbox's first line.
    since_ms: i64,
    /// The stream's lines stored from `since_ms` on, counted by text: the sandbox's output from
    /// then repeats them, and each is skipped once. (By text, not in order: Docker's log and the
    /// attach stream may interleave stdout and stderr differently.)
    stored: HashMap<String, usize>,
    /// The newest stored line's time: a line Docker stamped later cannot have been stored (the
    /// emulator reads a line after Docker stamps it), so it is never skipped.
    stored_until_ms: i64,
}

impl StartAt {
    /// Where the capture of `group`/`stream` that a restart interrupted resumes: from the last
    /// stored line's time less `RESUME_OVERLAP_MS` (or the oldest of the `RESUME_LINES` read back,
    /// if later), skipping the lines stored since then. Matching by text is exact unless the
    /// sandbox printed the same text again around the overlap's start (then a copy may be
    /// stored twice, or once instead of twice).
    pub fn after_stored(store: &LogStore, group: &str, stream: &str) -> StartAt {
        let last = store.last_events(group, stream, RESUME_LINES);
        let (Some(oldest), Some(newest)) = (last.first().map(|e| e.timestamp), last.last().map(|e| e.timestamp)) else {
            return StartAt::default();
        };
        let since_ms = (newest - RESUME_OVERLAP_MS).max(oldest);
        let mut stored = HashMap::new();
        for event in last.into_iter().filter(|e| e.timestamp >= since_ms) {
            *stored.entry(event.message).or_insert(0) += 1;
        }
        StartAt { since_ms, stored, stored_until_ms: newest }
    }

    /// Whether `line` is one of `stored`, read again (and then expected once less).
    fn stored_already(&mut self, line: &OutputLine) -> bool {
        if line.timestamp_ms > self.stored_until_ms {
            return false;
        }
        match self.stored.get_mut(&line.text) {
            Some(count) if *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Store every line `sandbox_id` writes, from `from`, into `group`/`stream`.
pub fn follow(
    backend: Arc<dyn SandboxBackend>,
    sandbox_id: String,
    store: LogStore,
    group: String,
    stream: String,
    mut from: StartAt,
) -> CaptureHandle {
    let task = tokio::spawn(async move {
        let lines = backend.follow_output(&sandbox_id, from.since_ms).await;
        let mut lines = lines.filter(move |line| futures_util::future::ready(!from.stored_already(line)));
        let mut batch: Vec<OutputLine> = Vec::new();
        let mut order = TimeOrder::default();
        // Idle sessions cost no wake-ups: the task sleeps until a line comes.
        while let Some(first) = lines.next().await {
            batch.push(first);
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
                        batch.push(line);
                        if batch.len() >= MAX_BATCH {
                            flush(&store, &group, &stream, &mut order, &mut batch).await;
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
            flush(&store, &group, &stream, &mut order, &mut batch).await;
            if ended {
                return;
            }
        }
    });
    CaptureHandle { task }
}

#[cfg(test)]
mod tests {
    use super::{in_time_order, TimeOrder};
    use crate::sandbox::OutputLine;

    #[test]
    fn a_batch_is_stored_in_the_order_its_lines_were_written() {
        let line = |ms, stderr, text: &str| OutputLine { timestamp_ms: ms, stderr, text: text.into() };
        let mut order = TimeOrder::default();
        // stderr's copier ran ahead of stdout's: "invocation 2" came before "event 0".
        let first = in_time_order(
            &mut order,
            vec![
                line(10, true, "invocation 1"),
                line(30, true, "invocation 2"),
                line(12, false, "event 0"),
                line(31, false, "event 1"),
            ],
        );
        let stored: Vec<(i64, &str)> = first.iter().map(|e| (e.timestamp, e.message.as_str())).collect();
        assert_eq!(stored, [(10, "invocation 1"), (12, "event 0"), (30, "invocation 2"), (31, "event 1")]);
        // A line older than one stored in an earlier batch takes that line's time.
        let second = in_time_order(&mut order, vec![line(20, false, "late")]);
        assert_eq!(second[0].timestamp, 31);
    }

    #[test]
    fn a_resumed_capture_skips_each_stored_line_it_reads_again_once_and_keeps_the_rest() {
        let line = |ms, text: &str| OutputLine { timestamp_ms: ms, stderr: false, text: text.into() };
        let stored = [("a".to_string(), 2), ("b".to_string(), 1)].into_iter().collect();
        let mut from = super::StartAt { since_ms: 50, stored, stored_until_ms: 52 };
        // Docker's log from 50 ms: "a", "b", "a" were stored; "x" between them and the rest were
        // not; a line stamped after the newest stored one is never taken for a stored one.
        let read = [line(50, "a"), line(50, "x"), line(51, "b"), line(52, "a"), line(52, "a"), line(53, "b")];
        let kept: Vec<_> = read.iter().filter(|l| !from.stored_already(l)).map(|l| &*l.text).collect();
        assert_eq!(kept, ["x", "a", "b"]);
    }

    #[test]
    fn a_line_stamped_before_one_already_stored_takes_its_time() {
        let mut order = TimeOrder::default();
        let stamps: Vec<i64> = [1000, 1002, 1001, 1002, 1005, 900].into_iter().map(|t| order.stamp(t)).collect();
        assert_eq!(stamps, [1000, 1002, 1002, 1002, 1005, 1005]);
    }
}
