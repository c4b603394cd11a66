//! InvokeAgentRuntimeCommand: run a shell command in the session's sandbox and stream its output
//! as an AWS event stream (api-wire.md §4.2): `chunk` events carrying `contentStart`, then
//! `contentDelta` with `stdout`/`stderr` text, then `contentStop` with the exit code and status.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderValue as HttpHeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::kernel::error::{Error, ErrorKind, Result};
use crate::kernel::response::{Body, BoxError};
use crate::sandbox::{Exec, ExecOutput, SandboxError};
use crate::sessions::{ActivityGuard, Sessions};

/// Used when the request gives no `timeout`, and the largest one accepted (runtime-contract §5.2).
pub const DEFAULT_TIMEOUT_SECS: i64 = 300;
pub const MAX_TIMEOUT_SECS: i64 = 3600;
/// The exit code reported for a command stopped at its timeout (as coreutils `timeout` does).
pub const TIMED_OUT_EXIT_CODE: i64 = 124;

fn frame(headers: &[(&str, &str)], payload: Value) -> Bytes {
    let mut message = Message::new(payload.to_string());
    for (name, value) in headers {
        message = message.add_header(Header::new(name.to_string(), HeaderValue::String(value.to_string().into())));
    }
    let mut buf = BytesMut::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut buf).expect("event-stream frames encode");
    buf.freeze()
}

/// One `chunk` event of the `ResponseChunk` union.
pub fn chunk(event: Value) -> Bytes {
    frame(&[(":message-type", "event"), (":event-type", "chunk"), (":content-type", "application/json")], event)
}

/// A modelled in-stream error, e.g. `runtimeClientError`.
pub fn exception(member: &str, message: &str) -> Bytes {
    frame(
        &[(":message-type", "exception"), (":exception-type", member), (":content-type", "application/json")],
        json!({ "message": message }),
    )
}

/// How long a killed command's last output may take to arrive before `contentStop` is sent.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// Sends a command's output as `contentDelta` events, stdout and stderr each as whole characters.
struct OutputRelay {
    tx: mpsc::Sender<Bytes>,
    out: Utf8Carry,
    err: Utf8Carry,
}

impl OutputRelay {
    /// `Ok(false)` once the caller has gone; `Err` with the in-stream error when the output broke.
    async fn forward(
        &mut self,
        item: std::result::Result<ExecOutput, SandboxError>,
    ) -> std::result::Result<bool, Bytes> {
        let (stream, text) = match item {
            Ok(ExecOutput::Stdout(b)) => ("stdout", self.out.push(&b)),
            Ok(ExecOutput::Stderr(b)) => ("stderr", self.err.push(&b)),
            Err(e) => {
                return Err(exception("runtimeClientError", &format!("reading the command's output failed: {e}")))
            }
        };
        Ok(text.is_empty() || self.tx.send(chunk(json!({"contentDelta": {stream: text}}))).await.is_ok())
    }
}

/// Turns a byte stream into text without splitting a UTF-8 character across events.
#[derive(Default)]
struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.0.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.0) {
            Ok(_) => self.0.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => return String::from_utf8_lossy(&std::mem::take(&mut self.0)).into_owned(),
        };
        let rest = self.0.split_off(valid);
        String::from_utf8(std::mem::replace(&mut self.0, rest)).unwrap_or_default()
    }
}

pub fn timeout_of(body: Option<&Value>) -> Result<Duration> {
    let timeout = body.and_then(|b| b.get("timeout")).and_then(Value::as_i64).unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(1..=MAX_TIMEOUT_SECS).contains(&timeout) {
        return Err(Error::invalid_field(
            "body.timeout",
            format!("timeout must be between 1 and {MAX_TIMEOUT_SECS} seconds; got {timeout}."),
        ));
    }
    Ok(Duration::from_secs(timeout as u64))
}

/// Start `command` in the guard's session and answer with its streamed output.
pub async fn run(
    sessions: &Arc<Sessions>,
    guard: ActivityGuard,
    command: String,
    timeout: Duration,
) -> Result<Response<Body>> {
    let session = guard.session().clone();
    if !sessions.has_shell(&session).await {
        return Err(Error::new(
            ErrorKind::RuntimeClientError,
            "The session's sandbox has no /bin/sh, so commands cannot run in it; build the agent's image on a \
             base that has a shell.",
        ));
    }
    let exec = sessions.exec(&session, vec!["/bin/sh".into(), "-c".into(), command]).await.map_err(|e| {
        Error::new(ErrorKind::RuntimeClientError, format!("The command could not be started in the session: {e}"))
    })?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let ended = session.ended_signal();
    tokio::spawn(async move {
        let _guard = guard; // the session is busy until the command ends
        stream_command(exec, timeout, ended, tx).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, BoxError>(Frame::data(bytes)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert("content-type", HttpHeaderValue::from_static("application/vnd.amazon.eventstream"));
    Ok(resp)
}

/// Relays a started command's output as events until it ends, its timeout kills it, the session
/// ends, or the caller goes away (then the command is killed too).
async fn stream_command(exec: Exec, timeout: Duration, ended: CancellationToken, tx: mpsc::Sender<Bytes>) {
    let Exec { mut output, handle } = exec;
    let mut relay = OutputRelay { tx, out: Utf8Carry::default(), err: Utf8Carry::default() };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    if relay.tx.send(chunk(json!({"contentStart": {}}))).await.is_err() {
        return;
    }
    let stop = loop {
        tokio::select! {
            // Output that is already there goes out before the deadline is looked at.
            biased;
            item = output.next() => match item {
                Some(item) => match relay.forward(item).await {
                    Ok(true) => {}
                    Ok(false) => break None,
                    Err(failure) => break Some(failure),
                },
                None => {
                    let code = handle.wait().await.unwrap_or(-1);
                    break Some(chunk(json!({"contentStop": {"exitCode": code, "status": "COMPLETED"}})));
                }
            },
            _ = &mut deadline => {
                handle.kill().await;
                // What the command wrote before it was killed may still be on its way (a VM's
                // command connection, Docker's attach stream): deliver it, as `timeout` would.
                let drain = async {
                    while let Some(item) = output.next().await {
                        if !matches!(relay.forward(item).await, Ok(true)) {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(DRAIN_AFTER_KILL, drain).await;
                break Some(chunk(json!({"contentStop": {"exitCode": TIMED_OUT_EXIT_CODE, "status": "TIMED_OUT"}})));
            }
            _ = ended.cancelled() => {
                break Some(exception("runtimeClientError", "The runtime session ended while the command was running."));
            }
        }
    };
    match stop {
        Some(last) => {
            let _ = relay.tx.send(last).await;
        }
        // The caller went away: do not leave the command running.
        None => handle.kill().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_with_the_smithy_decoder() {
        let bytes = chunk(json!({"contentDelta": {"stdout": "hi\n"}}));
        let mut decoder = aws_smithy_eventstream::frame::MessageFrameDecoder::new();
        let mut buf = bytes.clone();
        let decoded = decoder.decode_frame(&mut buf).unwrap();
        let aws_smithy_eventstream::frame::DecodedFrame::Complete(message) = decoded else { panic!("incomplete") };
        let headers: Vec<(String, String)> = message
            .headers()
            .iter()
            .map(|h| (h.name().as_str().to_string(), h.value().as_string().unwrap().as_str().to_string()))
            .collect();
        assert!(headers.contains(&(":event-type".to_string(), "chunk".to_string())));
        assert_eq!(
            serde_json::from_slice::<Value>(message.payload()).unwrap(),
            json!({"contentDelta": {"stdout": "hi\n"}})
        );
    }

    #[test]
    fn utf8_is_not_split_across_events() {
        let mut carry = Utf8Carry::default();
        let snowman = "☃".as_bytes();
        assert_eq!(carry.push(&[b'a', snowman[0]]), "a");
        assert_eq!(carry.push(&snowman[1..]), "☃");
        assert_eq!(carry.push(&[0xff, b'b']), "\u{fffd}b");
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(timeout_of(None).unwrap(), Duration::from_secs(300));
        assert!(timeout_of(Some(&json!({"timeout": 0}))).is_err());
        assert!(timeout_of(Some(&json!({"timeout": 3601}))).is_err());
    }

    /// A command whose output arrives only once it has been killed (as a VM's connection may
    /// deliver its last bytes after the kill).
    struct LateOutput {
        killed: tokio::sync::watch::Sender<bool>,
    }

    impl crate::sandbox::ExecHandle for LateOutput {
        fn wait(&self) -> futures_util::future::BoxFuture<'_, Option<i64>> {
            Box::pin(async { None })
        }
        fn kill(&self) -> futures_util::future::BoxFuture<'_, ()> {
            Box::pin(async {
                self.killed.send_replace(true);
            })
        }
    }

    #[tokio::test]
    async fn output_written_before_a_timeout_kill_is_delivered_before_contentstop() {
        let (killed, mut on_kill) = tokio::sync::watch::channel(false);
        let output = async_stream_after_kill(async move {
            let _ = on_kill.wait_for(|k| *k).await;
        });
        let exec = Exec { output, handle: Box::new(LateOutput { killed }) };
        let (tx, mut rx) = mpsc::channel(16);
        stream_command(exec, Duration::from_millis(20), CancellationToken::new(), tx).await;
        let mut events = Vec::new();
        while let Some(bytes) = rx.recv().await {
            let mut buf = bytes;
            let mut decoder = aws_smithy_eventstream::frame::MessageFrameDecoder::new();
            let aws_smithy_eventstream::frame::DecodedFrame::Complete(m) = decoder.decode_frame(&mut buf).unwrap()
            else {
                panic!("incomplete frame")
            };
            events.push(serde_json::from_slice::<Value>(m.payload()).unwrap());
        }
        assert_eq!(
            events,
            vec![
                json!({"contentStart": {}}),
                json!({"contentDelta": {"stdout": "started\n"}}),
                json!({"contentStop": {"exitCode": 124, "status": "TIMED_OUT"}}),
            ]
        );
    }

    /// One stdout chunk, "started\n", yielded once `until` completes; then the end.
    fn async_stream_after_kill(
        until: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = std::result::Result<ExecOutput, SandboxError>> + Send>> {
        Box::pin(futures_util::stream::once(async move {
            until.await;
            Ok(ExecOutput::Stdout(Bytes::from_static(b"started\n")))
        }))
    }
}
