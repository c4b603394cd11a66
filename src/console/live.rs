//! Live updates for the dashboard's pages: `/_agentcore-local/events[?view=…]` is a stream of
//! server-sent events. Once a second it renders the page's body again and sends it when it differs
//! from what it sent last (sessions starting or ending, invocations, model calls, memory events,
//! new usage samples, ages ticking); a quiet stream sends a comment now and then so a vanished
//! reader is noticed by the write failing, if not sooner by the connection closing.
//!
//! Each stream holds one of `AppState::event_streams` (beyond them: 503), and it ends when its
//! connection closes (hyper drops the body, and with it the permit) or the server shuts down.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::pages::{self, View};
use crate::app::AppState;
use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::response::{self, Body, BoxError};

/// Event streams served at once (each is an open connection: this keeps them a small share of
/// `--max-connections`).
pub const MAX_EVENT_STREAMS: usize = 16;
/// How often a stream looks for a change.
const TICK: Duration = Duration::from_secs(1);
/// The longest a stream stays silent: then it sends a comment line.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a browser waits before reconnecting a lost stream.
const RETRY_MS: u32 = 3000;

/// How many event streams a server with `max_connections` serves: `MAX_EVENT_STREAMS`, or a
/// quarter of its connections when that is fewer (at least one).
pub fn max_event_streams(max_connections: usize) -> usize {
    MAX_EVENT_STREAMS.min((max_connections / 4).max(1))
}

struct Feed {
    state: Arc<AppState>,
    view: View,
    ticker: Interval,
    /// The body last sent, to send only changes.
    last: Option<String>,
    last_write: Instant,
    sent: u64,
    _permit: OwnedSemaphorePermit,
}

/// One server-sent event carrying `html` (one `data:` line per line; the browser joins them with
/// newlines, so the HTML arrives whole). Carriage returns are dropped: they would end a line too.
pub fn event(id: u64, html: &str, first: bool) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    if first {
        let _ = writeln!(out, "retry: {RETRY_MS}");
    }
    let _ = writeln!(out, "id: {id}");
    for line in html.replace('\r', "").split('\n') {
        let _ = writeln!(out, "data: {line}");
    }
    out.push('\n');
    out
}

impl Feed {
    /// The next chunk: the page's body when it changed, else a keep-alive comment when due.
    async fn next(&mut self) -> Bytes {
        loop {
            self.ticker.tick().await;
            let (_, body) = pages::render(&self.state, &self.view).await;
            let html = body.into_string();
            if self.last.as_deref() != Some(html.as_str()) {
                let chunk = event(self.sent + 1, &html, self.sent == 0);
                self.sent += 1;
                self.last = Some(html);
                self.last_write = Instant::now();
                return Bytes::from(chunk);
            }
            if self.last_write.elapsed() >= KEEP_ALIVE {
                self.last_write = Instant::now();
                return Bytes::from_static(b": keep-alive\n\n");
            }
        }
    }
}

pub fn events(state: &Arc<AppState>, q: &HashMap<String, String>, request_id: &str) -> Response<Body> {
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        let e = Error::new(
            ErrorKind::Modelled { code: "ServiceUnavailableException", status: 503 },
            format!(
                "agentcore-local serves at most {} dashboard event streams at once; close a dashboard tab and reload.",
                max_event_streams(state.config.max_connections)
            ),
        );
        let mut resp = response::error(&e, request_id);
        resp.headers_mut().insert("retry-after", HeaderValue::from_static("5"));
        return resp;
    };
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        state: state.clone(),
        view: View::from_query(q),
        ticker,
        last: None,
        last_write: Instant::now(),
        sent: 0,
        _permit: permit,
    };
    let stopping = state.stopping.clone();
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next().await;
        Some((Ok::<_, BoxError>(Frame::data(chunk)), feed))
    })
    .take_until(Box::pin(stopping.cancelled_owned()));
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_every_line_of_the_html() {
        let e = event(3, "<pre>a\r\nb</pre>", true);
        assert_eq!(e, "retry: 3000\nid: 3\ndata: <pre>a\ndata: b</pre>\n\n");
        assert_eq!(event(4, "x", false), "id: 4\ndata: x\n\n");
    }

    #[test]
    fn streams_are_a_small_share_of_the_connections() {
        assert_eq!(max_event_streams(4096), MAX_EVENT_STREAMS);
        assert_eq!(max_event_streams(8), 2);
        assert_eq!(max_event_streams(1), 1);
    }
}
