//! A Docker sandbox's output read from the container's attach stream, from its first line.
//!
//! Why not `GET /containers/{id}/logs?follow=1` (what `follow_output` used before, and still
//! uses where it must): Docker serves a log follower by watching the log file, reading each new
//! entry back and decoding it, per line. With one line per request (what many agents print) that
//! cost Docker 22 us of CPU per invocation at 50 sessions, and the emulator 11 us more to decode
//! the follower's frames and timestamps (means of 5 runs against 5 with capture switched off,
//! `cargo bench --bench sessions -- relay`: invokes/s through the emulator rose 18 %). An attach
//! stream is fed by the copier that already reads the container's pipe, so Docker's cost per line
//! is a write (with this stream: 35 us less Docker CPU per invocation than with the follower).
//!
//! How: the stream is attached after the container is created and before it starts (as `docker
//! run` does), so no line goes unseen, and read on a thread of its own (`OUTPUT_THREAD`) as lines
//! come, at most 7.5 ms after each was written (`READ_PACE`), and stamped then (Docker stamps its
//! log entries as its copier reads them, which under load is late by as much). Reads wake that
//! thread, not the serving threads (what `paced` prevents for the log follower). Until someone
//! takes the output (`take`: a session's log capture, or a job's wait) its lines are held; a
//! sandbox that prints more than `HELD_BYTES` meanwhile (a spare nobody claims) is let go, and
//! its taker reads Docker's log from the start instead, so nothing is lost and Docker's pipe
//! never stalls behind a reader that is not reading.
//!
//! The taker's stream ends when the reader has ended and the output was taken: the channel's
//! sender lives in `Held`, which goes with the last of the reader and the `Attached` taken.

use std::sync::{Arc, OnceLock};

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::output_client::Daemon;
use super::{OutputLine, OutputStream};
use crate::kernel::clock::now_ms;

/// After a read, the stream rests until this pace's next tick (`paced`: 2.5 to 7.5 ms, stamps
/// as late), so that an agent printing a line per request wakes the output thread about once per
/// tick for all sandboxes instead of once per line (unpaced: 3.7-5.3 sleeps per warm invocation
/// of the emulator's threads against 1.7-1.9). The first line after a quiet spell is read at once.
const READ_PACE: std::time::Duration = std::time::Duration::from_millis(5);
/// Output held for a sandbox whose output nobody has taken yet, at most (the text's bytes).
const HELD_BYTES: usize = 1 << 20;
/// A line longer than this is cut, the rest starting a line of its own: CloudWatch's largest
/// event (256 KiB, less 26 bytes of overhead per event).
const MAX_LINE_BYTES: usize = 256 * 1024 - 26;
/// The attach handshake's answer, at most (Docker's is some 120 bytes).
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// One sandbox's attach stream, being read.
pub(super) struct Attached {
    held: Arc<Mutex<Held>>,
    /// Aborted when this is dropped before its output is taken (the sandbox was removed).
    reader: Option<tokio::task::AbortHandle>,
}

/// What `take` found.
pub(super) enum Taken {
    /// Every line since the sandbox started, then each line as it comes, until it stops.
    Lines(OutputStream),
    /// More was printed before anyone took it than is held: read Docker's log instead.
    LetGo,
}

enum Held {
    /// Nobody has taken the output: lines wait here (`bytes` of text).
    Waiting { lines: Vec<OutputLine>, bytes: usize },
    /// Taken: lines go to the taker's stream as they are read.
    Taken(tokio::sync::mpsc::UnboundedSender<Vec<OutputLine>>),
    /// Over `HELD_BYTES` before it was taken; the reader has stopped.
    LetGo,
}

impl Drop for Attached {
    /// A sandbox removed before its output was taken: the reader goes with it.
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

impl Attached {
    /// Attach to `container_id`'s stdout and stderr. Returns once Docker has answered the attach,
    /// which it does before it starts copying: the container may be started then.
    pub(super) async fn attach(daemon: &Daemon, container_id: &str) -> std::io::Result<Attached> {
        let held = Arc::new(Mutex::new(Held::Waiting { lines: Vec::new(), bytes: 0 }));
        let (answered, answer) = tokio::sync::oneshot::channel();
        let (daemon, id, for_reader) = (daemon.clone(), container_id.to_string(), held.clone());
        // The socket belongs to the output thread's reactor: it is opened there.
        let reader = output_thread().spawn(async move {
            match daemon.connect(READ_PACE).await {
                Ok(socket) => read_attached(socket, &id, for_reader, answered).await,
                Err(e) => {
                    let _ = answered.send(Err(e));
                }
            }
        });
        let attached = Attached { held, reader: Some(reader.abort_handle()) };
        match answer.await {
            Ok(Ok(())) => Ok(attached),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the attach reader ended before Docker answered")),
        }
    }

    /// The output, from the sandbox's first line.
    pub(super) fn take(mut self) -> Taken {
        let mut held = self.held.lock();
        let Held::Waiting { lines, .. } = &mut *held else { return Taken::LetGo };
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let _ = sender.send(std::mem::take(lines));
        // A reader that has ended holds `Held` no longer: it goes with `self`, below, and the
        // stream ends after what was held.
        *held = Held::Taken(sender);
        drop(held);
        // The reader keeps running for the taker; it stops when the stream ends or is dropped.
        self.reader = None;
        let batches = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (futures_util::stream::iter(batch), receiver))
        });
        Taken::Lines(Box::pin(batches.flatten()))
    }
}

/// The thread attach streams are read on (one per process, started by the first attach).
fn output_thread() -> &'static tokio::runtime::Handle {
    static OUTPUT_THREAD: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    OUTPUT_THREAD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("sandbox-output".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("a thread for sandbox output");
        handle
    })
}

/// Sends the attach request, reports Docker's answer, then reads frames until the stream ends.
async fn read_attached<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    container_id: &str,
    held: Arc<Mutex<Held>>,
    answered: tokio::sync::oneshot::Sender<std::io::Result<()>>,
) {
    let rest = match handshake(&mut socket, container_id).await {
        Ok(rest) => rest,
        Err(e) => {
            let _ = answered.send(Err(e));
            return;
        }
    };
    let _ = answered.send(Ok(()));
    let mut frames = Frames::default();
    let mut lines = frames.push(&rest, now_ms());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !lines.is_empty() && !deliver(&held, std::mem::take(&mut lines)) {
            return;
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines = frames.push(&buf[..n], now_ms()),
        }
    }
    lines.extend(frames.finish(now_ms()));
    if !lines.is_empty() {
        deliver(&held, lines);
    }
    // Returning drops this reader's `held`: once the output is taken, its stream then ends.
}

/// Hands `lines` to the taker, or holds them; false once the output is let go (stop reading).
fn deliver(held: &Mutex<Held>, lines: Vec<OutputLine>) -> bool {
    let mut held = held.lock();
    match &mut *held {
        Held::Taken(sender) => sender.send(lines).is_ok(),
        Held::Waiting { lines: waiting, bytes, .. } => {
            *bytes += lines.iter().map(|l| l.text.len()).sum::<usize>();
            if *bytes > HELD_BYTES {
                *held = Held::LetGo;
                return false;
            }
            waiting.extend(lines);
            true
        }
        Held::LetGo => false,
    }
}

/// `POST /containers/{id}/attach` as a connection upgrade; returns what followed Docker's answer
/// (the stream's first bytes, if any came with it).
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut S, container_id: &str) -> std::io::Result<Vec<u8>> {
    let request = format!(
        "POST /containers/{container_id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n\
         Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other("Docker closed the attach connection before answering"));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(std::io::Error::other("Docker's answer to the attach has no end"));
        }
    };
    let status_line = String::from_utf8_lossy(&head[..head.iter().position(|&b| b == b'\r').unwrap_or(0)]).into_owned();
    // 101 for the upgrade; 200 from daemons that hijack without one.
    if !(status_line.starts_with("HTTP/1.1 101") || status_line.starts_with("HTTP/1.1 200")) {
        return Err(std::io::Error::other(format!("Docker refused the attach: {status_line}")));
    }
    Ok(head.split_off(end))
}

/// Docker's multiplexed stream (a container without a TTY): frames of an 8-byte header (the
/// stream: 1 stdout, 2 stderr; three zero bytes; the payload's length, big-endian) and a payload,
/// cut into lines per stream.
#[derive(Default)]
struct Frames {
    /// Bytes of a frame not yet complete.
    partial: Vec<u8>,
    /// Text of each stream's line not yet ended: stdout, stderr.
    open_lines: [Vec<u8>; 2],
}

impl Frames {
    /// The lines that `bytes` completes, stamped `at`.
    fn push(&mut self, bytes: &[u8], at: i64) -> Vec<OutputLine> {
        let mut lines = Vec::new();
        self.partial.extend_from_slice(bytes);
        let mut at_frame = 0;
        while self.partial.len() - at_frame >= 8 {
            let header = &self.partial[at_frame..at_frame + 8];
            let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let stream = header[0];
            if self.partial.len() - at_frame - 8 < length {
                break;
            }
            let payload = at_frame + 8..at_frame + 8 + length;
            // 0 is stdin (never attached here); 3 is Docker's own error on the stream.
            let stderr = stream != 1;
            let open = &mut self.open_lines[usize::from(stderr)];
            for piece in self.partial[payload.clone()].split_inclusive(|&b| b == b'\n') {
                open.extend_from_slice(piece);
                if open.last() == Some(&b'\n') {
                    lines.push(line(std::mem::take(open), stderr, at));
                } else {
                    while open.len() > MAX_LINE_BYTES {
                        let rest = open.split_off(MAX_LINE_BYTES);
                        lines.push(line(std::mem::replace(open, rest), stderr, at));
                    }
                }
            }
            at_frame = payload.end;
        }
        self.partial.drain(..at_frame);
        lines
    }

    /// The unended lines, when the stream has ended.
    fn finish(self, at: i64) -> Vec<OutputLine> {
        let [stdout, stderr] = self.open_lines;
        [(stdout, false), (stderr, true)]
            .into_iter()
            .filter(|(text, _)| !text.is_empty())
            .map(|(text, is_err)| line(text, is_err, at))
            .collect()
    }
}

fn line(mut text: Vec<u8>, stderr: bool, at: i64) -> OutputLine {
    while matches!(text.last(), Some(b'\n' | b'\r')) {
        text.pop();
    }
    let text = String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    OutputLine { timestamp_ms: at, stderr, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn texts(lines: &[OutputLine]) -> Vec<(bool, &str)> {
        lines.iter().map(|l| (l.stderr, l.text.as_str())).collect()
    }

    #[test]
    fn frames_split_anywhere_make_the_same_lines_per_stream() {
        let mut stream = frame(1, b"one\ntw");
        stream.extend(frame(2, b"err\r\n"));
        stream.extend(frame(1, b"o\nthree"));
        for cut in 0..stream.len() {
            let mut frames = Frames::default();
            let mut lines = frames.push(&stream[..cut], 7);
            lines.extend(frames.push(&stream[cut..], 7));
            lines.extend(frames.finish(7));
            assert_eq!(
                texts(&lines),
                [(false, "one"), (true, "err"), (false, "two"), (false, "three")],
                "cut at {cut}"
            );
            assert!(lines.iter().all(|l| l.timestamp_ms == 7));
        }
    }

    #[test]
    fn a_line_longer_than_an_event_is_cut_and_bad_utf8_is_replaced() {
        let mut frames = Frames::default();
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        let lines = frames.push(&frame(1, &long), 1);
        assert_eq!(lines.iter().map(|l| l.text.len()).collect::<Vec<_>>(), [MAX_LINE_BYTES, MAX_LINE_BYTES]);
        let lines = frames.push(&frame(1, b"\xff\n"), 1);
        assert_eq!(lines[0].text, "xxxxx\u{fffd}");
    }

    fn waiting() -> Mutex<Held> {
        Mutex::new(Held::Waiting { lines: Vec::new(), bytes: 0 })
    }

    fn some(text: &str) -> Vec<OutputLine> {
        vec![OutputLine { timestamp_ms: 1, stderr: false, text: text.into() }]
    }

    #[test]
    fn output_nobody_takes_is_held_up_to_its_limit_then_let_go() {
        let held = waiting();
        assert!(deliver(&held, some("first")));
        assert!(matches!(&*held.lock(), Held::Waiting { lines, bytes: 5, .. } if lines.len() == 1));
        assert!(!deliver(&held, some(&"x".repeat(HELD_BYTES))));
        assert!(matches!(&*held.lock(), Held::LetGo));
        assert!(!deliver(&held, some("later")), "a reader let go stops");
    }

    #[tokio::test]
    async fn the_taker_reads_what_was_held_then_what_comes_and_the_stream_ends_with_the_sandbox() {
        let held = Arc::new(waiting());
        deliver(&held, some("before"));
        let reader = tokio::spawn(std::future::pending::<()>()).abort_handle();
        let Taken::Lines(mut lines) = (Attached { held: held.clone(), reader: Some(reader) }).take() else {
            panic!("let go")
        };
        assert!(deliver(&held, some("after")));
        // The reader ends (the sandbox stopped): its `held` goes.
        drop(held);
        let mut seen = Vec::new();
        while let Some(line) = lines.next().await {
            seen.push(line.text);
        }
        assert_eq!(seen, ["before", "after"]);
    }

    #[tokio::test]
    async fn output_taken_after_its_reader_ended_is_what_was_held_and_then_ends() {
        let held = Arc::new(waiting());
        deliver(&held, some("all it printed"));
        let reader = tokio::spawn(std::future::pending::<()>()).abort_handle();
        let Taken::Lines(lines) = (Attached { held, reader: Some(reader) }).take() else { panic!("let go") };
        let seen: Vec<String> = lines.map(|line| line.text).collect().await;
        assert_eq!(seen, ["all it printed"]);
    }

    #[tokio::test]
    async fn output_let_go_is_read_from_the_log_instead() {
        let held = Arc::new(Mutex::new(Held::LetGo));
        let reader = tokio::spawn(std::future::pending::<()>()).abort_handle();
        assert!(matches!((Attached { held, reader: Some(reader) }).take(), Taken::LetGo));
    }

    #[tokio::test]
    async fn the_handshake_accepts_docker_upgrade_and_keeps_the_bytes_after_it() {
        let (mut ours, mut docker) = tokio::io::duplex(4096);
        let answer = tokio::spawn(async move {
            let mut request = vec![0u8; 512];
            let n = docker.read(&mut request).await.unwrap();
            let request = String::from_utf8_lossy(&request[..n]).into_owned();
            docker.write_all(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00").await.unwrap();
            request
        });
        let rest = handshake(&mut ours, "abc").await.unwrap();
        assert_eq!(rest, b"\x01\x00");
        assert!(answer
            .await
            .unwrap()
            .starts_with("POST /containers/abc/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"));
        let (mut ours, mut docker) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let _ = docker.read(&mut [0u8; 512]).await;
            docker.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        });
        let refused = handshake(&mut ours, "gone").await.unwrap_err();
        assert!(refused.to_string().contains("404"), "{refused}");
    }
}
