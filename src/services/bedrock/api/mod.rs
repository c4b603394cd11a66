//! The Bedrock operations: each binds and validates its input from the botocore model, types it,
//! asks the provider, and answers in the operation's wire shape. Every model call, answered or
//! failed, is recorded (`calls`).

pub mod anthropic;
pub mod converse;
mod errors;
mod eventstream;
pub mod models;
pub mod routes;

mod call;
mod session_log;

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::calls::CallerSession;
use super::catalogue::{self, ListFilter};
use super::conversation::Conversation;
use super::{tokens, Bedrock};
use crate::app::AppState;
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::input::{self as binding, HttpInput};
use crate::kernel::model::ServiceModel;
use crate::kernel::response::{self, Body};
use crate::kernel::router::NoRoute;
use call::{answer_whole, event_stream_response, pump, start, CallRecorder};
use converse::input::ConverseInput;
use errors::StreamKind;
pub use session_log::{note_in_session_log, SessionLogs};

/// An authenticated request signed for `bedrock`, body read.
pub struct Incoming<'a> {
    pub request_id: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Bytes,
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
pub async fn handle(state: &AppState, incoming: Incoming<'_>) -> Response<Body> {
    let bedrock = &state.bedrock;
    let session_logs = match (&state.sessions, &state.logs) {
        (Some(sessions), Some(logs)) => Some(SessionLogs { sessions: sessions.clone(), logs: logs.clone() }),
        _ => None,
    };
    let result = match routes::route(incoming.method, incoming.raw_path) {
        Err(nr) => Err(no_route_error(incoming.method, incoming.raw_path, nr)),
        Ok((route, _)) => {
            let req = ModelRequest {
                request_id: incoming.request_id,
                account: incoming.account,
                region: incoming.region,
                operation: route.operation,
                labels: &route.labels,
                raw_query: incoming.raw_query,
                headers: incoming.headers,
                body: &incoming.body,
                // Session credentials will say which session is calling; host-side callers are none.
                session: None,
                session_logs,
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
    pub account: &'a str,
    pub region: &'a str,
    pub operation: &'static str,
    pub labels: &'a HashMap<String, String>,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a Bytes,
    /// The runtime session making the call, when its credentials identify one.
    pub session: Option<CallerSession>,
    /// Where that session's log is written (`None` with `--sandbox none`).
    pub session_logs: Option<SessionLogs>,
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
            let summaries = bedrock.catalogue.list(&filter, req.region, bedrock.provider.name());
            Ok(response::json(200, &json!({ "modelSummaries": summaries }), req.request_id))
        }
        "GetFoundationModel" => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Input {
                model_identifier: String,
            }
            let input: Input = req.input(models::control())?;
            let id = catalogue::foundation_model_id(&input.model_identifier).unwrap_or(input.model_identifier);
            let details = catalogue::summary(&id, req.region, bedrock.provider.name());
            Ok(response::json(200, &json!({ "modelDetails": details }), req.request_id))
        }
        other => Err(errors::validation(format!("agentcore-local does not serve Bedrock {other}."))),
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
