//! The Bedrock operations: each binds and validates its input from the botocore model, types it,
//! asks the provider, and answers in the operation's wire shape. Every model call, answered or
//! failed, is recorded (`calls`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::anthropic;
use super::calls::{CallerSession, ModelCall, ModelCalls};
use super::catalogue::ListFilter;
use super::conversation::Conversation;
use super::converse::{self, input::ConverseInput};
use super::errors::{self, StreamKind};
use super::reply::{self, BlockEvent, DeltaStream, ModelFailure, Tracker, Usage};
use super::{eventstream, models, routes, tokens, Bedrock};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::input::{self as binding, HttpInput};
use crate::kernel::model::ServiceModel;
use crate::kernel::response::{self, Body, BoxError};
use crate::kernel::router::NoRoute;
use crate::sessions::Sessions;

/// Events buffered between a provider and a slow client.
const STREAM_BUFFER: usize = 64;

/// An authenticated request signed for `bedrock`, body read.
pub struct Incoming<'a> {
    pub request_id: &'a str,
    pub caller: &'a Caller,
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Bytes,
    /// The runtime session whose sandbox sent the request; `None` for callers on the host.
    pub session: Option<CallerSession>,
}

fn no_route_error(method: &str, path: &str, nr: NoRoute) -> Error {
    let message = match nr {
        NoRoute::NotImplemented { service, operation } => format!(
            "{service} {operation} is part of the AWS API but agentcore-local does not implement it. It serves \
             Bedrock's Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream, CountTokens, \
             ListFoundationModels and GetFoundationModel."
        ),
        NoRoute::WrongMethod { allowed } => {
            format!("No operation matches {method} {path}; this path accepts {}.", allowed.join(", "))
        }
        NoRoute::Unknown => format!("No Bedrock operation matches {method} {path}."),
    };
    Error::new(ErrorKind::UnknownOperation, message)
}

/// Route, answer, and shape any error as Bedrock does.
pub async fn handle(bedrock: &Bedrock, sessions: Option<&Arc<Sessions>>, incoming: Incoming<'_>) -> Response<Body> {
    let result = match routes::route(incoming.method, incoming.raw_path) {
        Err(nr) => Err(no_route_error(incoming.method, incoming.raw_path, nr)),
        Ok((route, _)) => {
            let req = ModelRequest {
                request_id: incoming.request_id,
                caller: incoming.caller,
                operation: route.operation,
                labels: &route.labels,
                raw_query: incoming.raw_query,
                headers: incoming.headers,
                body: &incoming.body,
                session: incoming.session,
                sessions,
            };
            dispatch(bedrock, &req).await
        }
    };
    result.unwrap_or_else(|e| {
        if e.status() >= 500 {
            tracing::error!(error = %e, path = incoming.raw_path, "Bedrock request failed");
        } else {
            tracing::info!(error = %e, path = incoming.raw_path, "Bedrock request rejected");
        }
        response::error(&e, incoming.request_id)
    })
}

/// One routed Bedrock request.
pub struct ModelRequest<'a> {
    pub request_id: &'a str,
    pub caller: &'a Caller,
    pub operation: &'static str,
    pub labels: &'a HashMap<String, String>,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a Bytes,
    /// The runtime session making the call, when its credentials identify one.
    pub session: Option<CallerSession>,
    /// Where that session's log is written (`None` with `--sandbox none`).
    pub sessions: Option<&'a Arc<Sessions>>,
}

impl ModelRequest<'_> {
    /// The operation's input, bound and validated against `model`, then typed.
    fn input<T: DeserializeOwned>(&self, model: &ServiceModel) -> Result<T, Error> {
        let http = HttpInput { labels: self.labels, raw_query: self.raw_query, headers: self.headers, body: self.body };
        let input = binding::bind_and_validate(model, self.operation, &http).map_err(errors::reshape)?;
        serde_json::from_value(Value::Object(input))
            .map_err(|e| errors::validation(format!("The request does not match {}'s input: {e}", self.operation)))
    }
}

pub async fn dispatch(bedrock: &Bedrock, req: &ModelRequest<'_>) -> Result<Response<Body>, Error> {
    match req.operation {
        "Converse" => converse_call(bedrock, req).await,
        "ConverseStream" => converse_stream(bedrock, req).await,
        "InvokeModel" => invoke_model(bedrock, req).await,
        "InvokeModelWithResponseStream" => invoke_model_stream(bedrock, req).await,
        "CountTokens" => count_tokens(req),
        "ListFoundationModels" => {
            let filter: ListFilter = req.input(models::control())?;
            let summaries = bedrock.catalogue.list(&filter, &req.caller.region, bedrock.provider.name());
            Ok(response::json(200, &json!({ "modelSummaries": summaries }), req.request_id))
        }
        "GetFoundationModel" => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Input {
                model_identifier: String,
            }
            let input: Input = req.input(models::control())?;
            let id = super::catalogue::foundation_model_id(&input.model_identifier).unwrap_or(input.model_identifier);
            let details = super::catalogue::summary(&id, &req.caller.region, bedrock.provider.name());
            Ok(response::json(200, &json!({ "modelDetails": details }), req.request_id))
        }
        other => Err(errors::validation(format!("agentcore-local does not serve Bedrock {other}."))),
    }
}

/// What is known about a model call while it runs; `finish` records it.
struct CallRecorder {
    calls: Arc<ModelCalls>,
    started: Instant,
    account: String,
    operation: &'static str,
    model_id: String,
    provider: &'static str,
    session: Option<CallerSession>,
    sessions: Option<Arc<Sessions>>,
}

impl CallRecorder {
    fn new(bedrock: &Bedrock, req: &ModelRequest<'_>, conversation: &Conversation, started: Instant) -> CallRecorder {
        bedrock.catalogue.called(&conversation.model_id);
        CallRecorder {
            calls: bedrock.calls.clone(),
            started,
            account: req.caller.account.clone(),
            operation: req.operation,
            model_id: conversation.model_id.clone(),
            provider: bedrock.provider.name(),
            session: req.session.clone(),
            sessions: req.sessions.cloned(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn finish(self, usage: Usage, error: Option<&str>) {
        let latency_ms = self.elapsed_ms();
        let call = ModelCall {
            at_ms: crate::services::runtime::domain::now_ms(),
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
        if let (Some(sessions), Some(_)) = (self.sessions, &call.session) {
            let call = call.clone();
            tokio::spawn(async move { note_in_session_log(&sessions, &call).await });
        }
        self.calls.record(call);
    }
}

/// Ask the provider; a failure before the answer starts is recorded and returned as the error.
async fn start(
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
async fn answer_whole(
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

fn converse_conversation(req: &ModelRequest<'_>) -> Result<Conversation, Error> {
    let input: ConverseInput = req.input(models::runtime())?;
    input.into_conversation().map_err(errors::validation)
}

async fn converse_call(bedrock: &Bedrock, req: &ModelRequest<'_>) -> Result<Response<Body>, Error> {
    let conversation = converse_conversation(req)?;
    let (reply, latency_ms) = answer_whole(bedrock, req, &conversation).await?;
    Ok(response::json(200, &converse::output::response(&reply, latency_ms), req.request_id))
}

/// The model id label and the raw body of InvokeModel / InvokeModelWithResponseStream, after the
/// model's checks of labels and headers.
fn invoke_conversation(req: &ModelRequest<'_>) -> Result<Conversation, Error> {
    let input: Map<String, Value> = req.input(models::runtime())?;
    let model_id = input.get("modelId").and_then(Value::as_str).unwrap_or_default();
    anthropic::input::conversation(model_id, req.body).map_err(errors::validation)
}

async fn invoke_model(bedrock: &Bedrock, req: &ModelRequest<'_>) -> Result<Response<Body>, Error> {
    let conversation = invoke_conversation(req)?;
    let (reply, latency_ms) = answer_whole(bedrock, req, &conversation).await?;
    let id = anthropic::output::message_id();
    let body = anthropic::output::response(&reply, &conversation.model_id, &id);
    let mut resp = response::json(200, &body, req.request_id);
    // Bedrock reports usage in headers too; langchain-aws reads them.
    for (name, value) in [
        ("x-amzn-bedrock-input-token-count", reply.usage.input_tokens as u64),
        ("x-amzn-bedrock-output-token-count", reply.usage.output_tokens as u64),
        ("x-amzn-bedrock-invocation-latency", latency_ms),
    ] {
        resp.headers_mut().insert(name, HeaderValue::from(value));
    }
    Ok(resp)
}

fn event_stream_response(rx: mpsc::Receiver<Bytes>, request_id: &str) -> Response<Body> {
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
fn pump(
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

async fn converse_stream(bedrock: &Bedrock, req: &ModelRequest<'_>) -> Result<Response<Body>, Error> {
    let started = Instant::now();
    let conversation = converse_conversation(req)?;
    let recorder = CallRecorder::new(bedrock, req, &conversation, started);
    let input_tokens = tokens::input_tokens(&conversation);
    let (deltas, recorder) = start(bedrock, &conversation, true, recorder).await?;
    let first = vec![converse::output::message_start()];
    let rx = pump(deltas, first, input_tokens, StreamKind::Converse, recorder, |event, recorder| {
        converse::output::frames(event, || recorder.elapsed_ms())
    });
    Ok(event_stream_response(rx, req.request_id))
}

async fn invoke_model_stream(bedrock: &Bedrock, req: &ModelRequest<'_>) -> Result<Response<Body>, Error> {
    let started = Instant::now();
    let conversation = invoke_conversation(req)?;
    let recorder = CallRecorder::new(bedrock, req, &conversation, started);
    let input_tokens = tokens::input_tokens(&conversation);
    let (deltas, recorder) = start(bedrock, &conversation, true, recorder).await?;
    let id = anthropic::output::message_id();
    let first =
        vec![anthropic::output::chunk(&anthropic::output::message_start(&conversation.model_id, &id, input_tokens))];
    let mut first_byte_ms = None;
    let rx = pump(deltas, first, input_tokens, StreamKind::InvokeModel, recorder, move |event, recorder| {
        let first_byte = *first_byte_ms.get_or_insert_with(|| recorder.elapsed_ms());
        let timings = || anthropic::output::Timings { latency_ms: recorder.elapsed_ms(), first_byte_ms: first_byte };
        anthropic::output::events(event, timings).iter().map(anthropic::output::chunk).collect()
    });
    let mut resp = event_stream_response(rx, req.request_id);
    resp.headers_mut().insert("x-amzn-bedrock-content-type", HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// CountTokens: the count a local answer to the same Converse or InvokeModel input reports as
/// `inputTokens` (the provider's own count, for an OpenAI-compatible server, is known only once it
/// answers).
fn count_tokens(req: &ModelRequest<'_>) -> Result<Response<Body>, Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Input {
        model_id: String,
        input: CountTokensInput,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct CountTokensInput {
        converse: Option<Map<String, Value>>,
        invoke_model: Option<InvokeModelTokens>,
    }
    #[derive(serde::Deserialize)]
    struct InvokeModelTokens {
        /// Base64, as blobs travel in JSON.
        body: String,
    }
    let input: Input = req.input(models::runtime())?;
    let conversation = match (input.input.converse, input.input.invoke_model) {
        (Some(mut converse), _) => {
            converse.insert("modelId".into(), Value::String(input.model_id));
            let typed: ConverseInput = serde_json::from_value(Value::Object(converse))
                .map_err(|e| errors::validation(format!("The converse input is not a Converse request: {e}")))?;
            typed.into_conversation().map_err(errors::validation)?
        }
        (None, Some(invoke)) => {
            use base64::Engine;
            let body = base64::engine::general_purpose::STANDARD
                .decode(invoke.body.as_bytes())
                .map_err(|_| errors::validation(anthropic::input::malformed("")))?;
            anthropic::input::conversation(&input.model_id, &body).map_err(errors::validation)?
        }
        (None, None) => return Err(errors::validation("input must have exactly one of converse or invokeModel.")),
    };
    Ok(response::json(200, &json!({ "inputTokens": tokens::input_tokens(&conversation) }), req.request_id))
}

/// Put a line for `call` into the log of the runtime session that made it (`call.session`): what
/// a developer reading that session's logs expects to see next to the agent's own output. Calls
/// whose credentials name no session (host-side callers, until session credentials identify
/// sessions) or whose session has ended are not logged here.
pub async fn note_in_session_log(sessions: &crate::sessions::Sessions, call: &ModelCall) {
    let Some(who) = &call.session else { return };
    sessions.note_in_log(&who.runtime_id, &who.session_id, super::calls::session_log_line(call)).await;
}
