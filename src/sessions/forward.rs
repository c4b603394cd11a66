//! Relays an invocation to the agent and its response back, chunk by chunk.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use super::agent_client::AgentBody;
use super::session::{ActivityGuard, Session};
use crate::kernel::response::BoxError;

/// An agent's answer: its status and headers now, its body as it streams.
pub struct AgentResponse {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    pub body: AgentBody,
}

/// Send one request to the session's agent, through the session's own client. `path_and_query`
/// starts with `/`.
pub async fn send(
    session: &Session,
    method: http::Method,
    path_and_query: &str,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
) -> Result<AgentResponse, String> {
    let addr = session.agent_address().ok_or("the session's sandbox exposes no agent port")?;
    let mut request =
        http::Request::builder().method(method).uri(path_and_query).body(Full::new(body)).map_err(|e| e.to_string())?;
    *request.headers_mut() = headers;
    let response: Response<AgentBody> = tokio::time::timeout(timeout, session.agent.request_at(addr, request))
        .await
        .map_err(|_| format!("the agent did not answer within {timeout:?}"))?
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            msg
        })?;
    let (parts, body) = response.into_parts();
    Ok(AgentResponse { status: parts.status, headers: parts.headers, body })
}

/// The agent's response body on its way to the client. Keeps the request counted as in flight,
/// marks activity on every chunk, and ends the stream if the session is stopped or the
/// streaming limit passes.
pub struct RelayBody {
    inner: AgentBody,
    guard: ActivityGuard,
    ended: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl RelayBody {
    pub fn new(inner: AgentBody, guard: ActivityGuard, stream_limit: Duration) -> RelayBody {
        let ended = guard.session().ended_signal();
        RelayBody {
            inner,
            guard,
            ended: Box::pin(ended.cancelled_owned()),
            deadline: Box::pin(tokio::time::sleep(stream_limit)),
        }
    }

    fn session(&self) -> &Arc<Session> {
        self.guard.session()
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("the runtime session ended while streaming: {0}")]
    SessionEnded(String),
    #[error("the response stream exceeded the streaming time limit")]
    TooLong,
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended.as_mut().poll(cx).is_ready() {
            let reason = self.session().ended().map(|r| r.describe()).unwrap_or_default();
            return Poll::Ready(Some(Err(Box::new(RelayError::SessionEnded(reason)))));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(RelayError::TooLong))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.session().touch();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            other => other.map(|o| o.map(|r| r.map_err(|e| Box::new(e) as BoxError))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
