//! Running one model call: ask the provider, answer whole or as an event stream, and record the
//! call however it ends (answered, failed before or during the answer, client gone).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::errors::{self, StreamKind};
use super::eventstream;
use super::session_log::{note_in_session_log, SessionLogs};
use super::ModelRequest;
use crate::kernel::clock::now_ms;
use crate::kernel::error::Error;
use crate::kernel::response::{Body, BoxError};
use crate::services::bedrock::calls::{CallerSession, ModelCall, ModelCalls};
use crate::services::bedrock::conversation::Conversation;
use crate::services::bedrock::reply::{self, BlockEvent, DeltaStream, ModelFailure, Tracker, Usage};
use crate::services::bedrock::{tokens, Bedrock};

/// Events buffered between a provider and a slow client.
const STREAM_BUFFER: usize = 64;

/// What is known about a model call while it runs; `finish` records it.
pub(super) struct CallRecorder {
    calls: Arc<ModelCalls>,
    started: Instant,
    account: String,
    operation: &'static str,
    model_id: String,
    provider: &'static str,
    session: Option<CallerSession>,
    session_logs: Option<SessionLogs>,
}

impl CallRecorder {
    pub(super) fn new(
        bedrock: &Bedrock,
        req: &ModelRequest<'_>,
        conversation: &Conversation,
        started: Instant,
    ) -> CallRecorder {
        bedrock.catalogue.called(&conversation.model_id);
        CallRecorder {
            calls: bedrock.calls.clone(),
            started,
            account: req.account.to_string(),
            operation: req.operation,
            model_id: conversation.model_id.clone(),
            provider: bedrock.provider.name(),
            session: req.session.clone(),
            session_logs: req.session_logs.clone(),
        }
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn finish(self, usage: Usage, error: Option<&str>) {
        let latency_ms = self.elapsed_ms();
        let call = ModelCall {
            at_ms: now_ms(),
            account: self.account,
            operation: self.operation,
            model_id: self.model_id,
            provider: self.provider,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            latency_ms,
            error: error.map(str::to_string),
            session: self.session,
        };
        if let (Some(to), Some(_)) = (self.session_logs, &call.session) {
            let call = call.clone();
            tokio::spawn(async move { note_in_session_log(&to, &call).await });
        }
        self.calls.record(call);
    }
}

/// Ask the provider; a failure before the answer starts is recorded and returned as the error.
pub(super) async fn start(
    bedrock: &Bedrock,
    conversation: &Conversation,
    stream: bool,
    recorder: CallRecorder,
) -> Result<(DeltaStream, CallRecorder), Error> {
    match bedrock.provider.answer(conversation, stream).await {
        Ok(deltas) => Ok((deltas, recorder)),
        Err(f) => {
            let e = errors::before_answer(&f);
            recorder
                .finish(Usage { input_tokens: tokens::input_tokens(conversation), output_tokens: 0 }, Some(e.code()));
            Err(e)
        }
    }
}

/// A whole answer, recorded.
pub(super) async fn answer_whole(
    bedrock: &Bedrock,
    req: &ModelRequest<'_>,
    conversation: &Conversation,
) -> Result<(reply::Reply, u64), Error> {
    let started = Instant::now();
    let recorder = CallRecorder::new(bedrock, req, conversation, started);
    let input_tokens = tokens::input_tokens(conversation);
    let (deltas, recorder) = start(bedrock, conversation, false, recorder).await?;
    match reply::collect(deltas, input_tokens).await {
        Ok(r) => {
            let latency = recorder.elapsed_ms();
            recorder.finish(r.usage, None);
            Ok((r, latency))
        }
        Err(f) => {
            let e = errors::before_answer(&f);
            recorder.finish(Usage { input_tokens, output_tokens: 0 }, Some(e.code()));
            Err(e)
        }
    }
}

pub(super) fn event_stream_response(rx: mpsc::Receiver<Bytes>, request_id: &str) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, BoxError>(Frame::data(bytes)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert("content-type", HeaderValue::from_static(eventstream::CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

/// Drive a provider's deltas into frames until the answer ends, the provider fails (an in-stream
/// exception) or the client goes away; then record the call.
pub(super) fn pump(
    mut deltas: DeltaStream,
    first: Vec<Bytes>,
    input_tokens: u32,
    kind: StreamKind,
    recorder: CallRecorder,
    mut encode: impl FnMut(&BlockEvent, &CallRecorder) -> Vec<Bytes> + Send + 'static,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut tracker = Tracker::new(input_tokens);
        let mut usage = Usage { input_tokens, output_tokens: 0 };
        let mut finished = false;
        let mut error: Option<&'static str> = None;
        let mut client_gone = false;
        for f in first {
            client_gone |= tx.send(f).await.is_err();
        }
        'answer: while !client_gone {
            let failure = match deltas.next().await {
                None if finished => break,
                None => ModelFailure::Interrupted("The model's answer ended before it finished.".into()),
                Some(Ok(delta)) => {
                    for event in tracker.push(delta) {
                        if let BlockEvent::Finish { usage: u, .. } = &event {
                            usage = *u;
                            finished = true;
                        }
                        for frame in encode(&event, &recorder) {
                            if tx.send(frame).await.is_err() {
                                client_gone = true;
                                break 'answer;
                            }
                        }
                    }
                    continue;
                }
                Some(Err(f)) => f,
            };
            let (frame, code) = errors::in_stream(&failure, kind);
            error = Some(code);
            let _ = tx.send(frame).await;
            break;
        }
        if client_gone && !finished {
            error = Some("ClientDisconnected");
        }
        recorder.finish(usage, error);
    });
    rx
}
