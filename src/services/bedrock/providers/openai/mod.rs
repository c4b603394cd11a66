//! The openai provider: model calls answered by an OpenAI-compatible chat-completions server
//! (Ollama, llama.cpp's server, vLLM, …) over plain HTTP.
//!
//! `openai:URL` takes the server's API base (`http://127.0.0.1:11434/v1` for Ollama); requests go
//! to `URL/chat/completions` (or to URL itself when it already ends so). The model name sent is
//! `--model-provider-model` if given, else the Bedrock model id of the call. Streaming calls ask
//! the server to stream too, and its events are passed on as they arrive.

mod decode;
mod request;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::services::bedrock::conversation::Conversation;
use crate::services::bedrock::reply::{Delta, DeltaStream, ModelFailure};

/// How long a server may take to start answering (a local model on a CPU can be slow to read a
/// long prompt).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error answer or a non-streamed completion read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

pub struct OpenAi {
    url: http::Uri,
    model: Option<String>,
    api_key: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl OpenAi {
    pub fn new(url: &str, model: Option<String>, api_key: Option<String>) -> Result<OpenAi, String> {
        let base = url.trim_end_matches('/');
        let full =
            if base.ends_with("/chat/completions") { base.to_string() } else { format!("{base}/chat/completions") };
        let uri: http::Uri = full.parse().map_err(|e| {
            format!("--model-provider openai:{url}: not a URL ({e}); e.g. openai:http://127.0.0.1:11434/v1")
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "--model-provider openai:{url}: only http:// servers are supported (got {other}://); local model \
                     servers speak plain HTTP"
                ))
            }
            None => {
                return Err(format!(
                    "--model-provider openai:{url}: the URL needs http://, e.g. openai:http://127.0.0.1:11434/v1"
                ))
            }
        }
        if uri.host().is_none() {
            return Err(format!("--model-provider openai:{url}: the URL has no host"));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(OpenAi { url: uri, model, api_key, client })
    }

    pub fn url(&self) -> String {
        self.url.to_string()
    }

    pub async fn answer(&self, conversation: &Conversation, stream: bool) -> Result<DeltaStream, ModelFailure> {
        let model = self.model.as_deref().unwrap_or(&conversation.model_id);
        let body = request::body(conversation, model, stream)?;
        let mut req = http::Request::post(self.url.clone())
            .header("content-type", "application/json")
            .header("accept", if stream { "text/event-stream" } else { "application/json" });
        if let Some(key) = &self.api_key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| ModelFailure::Invalid(format!("cannot build the model server request: {e}")))?;
        let resp = match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(req)).await {
            Err(_) => {
                return Err(ModelFailure::TimedOut(format!(
                    "The model server at {} did not answer within {} s.",
                    self.url,
                    RESPONSE_TIMEOUT.as_secs()
                )))
            }
            Ok(Err(e)) => {
                return Err(ModelFailure::Unreachable(format!(
                    "The model server at {} cannot be reached: {e}",
                    self.url
                )))
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !(200..300).contains(&status) {
            let text = read_all(resp.into_body()).await.unwrap_or_default();
            let detail = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| decode::error_message(&v))
                .unwrap_or_else(|| String::from_utf8_lossy(&text).trim().to_string());
            return Err(ModelFailure::Upstream {
                status,
                message: format!("The model server at {} answered {status}: {detail}", self.url),
            });
        }
        if is_sse {
            return Ok(sse_deltas(resp.into_body()));
        }
        let text = read_all(resp.into_body())
            .await
            .map_err(|e| ModelFailure::Interrupted(format!("reading the model server's answer failed: {e}")))?;
        let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            ModelFailure::Interrupted(format!("The model server's answer is not chat-completions JSON: {e}"))
        })?;
        let deltas = decode::completion(&v)?;
        Ok(Box::pin(futures_util::stream::iter(deltas.into_iter().map(Ok))))
    }
}

async fn read_all(body: hyper::body::Incoming) -> Result<Bytes, String> {
    Limited::new(body, MAX_ANSWER_BYTES).collect().await.map(|c| c.to_bytes()).map_err(|e| e.to_string())
}

/// Deltas of a server-sent-events answer, decoded as the bytes arrive.
fn sse_deltas(body: hyper::body::Incoming) -> DeltaStream {
    struct State {
        body: http_body_util::BodyDataStream<hyper::body::Incoming>,
        reader: decode::SseReader,
        decoder: decode::ChunkDecoder,
        pending: VecDeque<Delta>,
        over: bool,
    }
    let state = State {
        body: body.into_data_stream(),
        reader: decode::SseReader::default(),
        decoder: decode::ChunkDecoder::default(),
        pending: VecDeque::new(),
        over: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(d) = s.pending.pop_front() {
                return Some((Ok(d), s));
            }
            if s.over {
                return None;
            }
            match s.body.next().await {
                Some(Ok(bytes)) => {
                    for data in s.reader.push(&bytes) {
                        if data.trim() == "[DONE]" {
                            s.over = true;
                            match s.decoder.finish(true) {
                                Ok(d) => s.pending.push_back(d),
                                Err(e) => return Some((Err(e), s)),
                            }
                            break;
                        }
                        let chunk = match serde_json::from_str::<serde_json::Value>(&data) {
                            Ok(v) => s.decoder.chunk(&v),
                            Err(e) => Err(ModelFailure::Interrupted(format!(
                                "The model server sent an event that is not JSON ({e}): {data}"
                            ))),
                        };
                        match chunk {
                            Ok(deltas) => s.pending.extend(deltas),
                            Err(e) => {
                                s.over = true;
                                return Some((Err(e), s));
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    s.over = true;
                    return Some((Err(ModelFailure::Interrupted(format!("The model server's stream failed: {e}"))), s));
                }
                None => {
                    s.over = true;
                    match s.decoder.finish(false) {
                        Ok(d) => s.pending.push_back(d),
                        Err(e) => return Some((Err(e), s)),
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::bedrock::conversation::{Block, Message, Role};
    use crate::services::bedrock::reply::{StopReason, Usage};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot loopback server: reads one request, answers `response` (status line and all),
    /// and hands back the request it read.
    async fn fake_server(response: String) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            String::from_utf8_lossy(&request).to_string()
        });
        (url, task)
    }

    fn hello() -> Conversation {
        Conversation {
            model_id: "us.anthropic.claude-sonnet-4-20250514-v1:0".into(),
            messages: vec![Message { role: Role::User, content: vec![Block::Text("hi".into())] }],
            ..Conversation::default()
        }
    }

    #[tokio::test]
    async fn streams_server_sent_events_as_deltas() {
        let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                   data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
                   data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let (url, server) = fake_server(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{sse}"
        ))
        .await;
        let provider = OpenAi::new(&url, None, Some("sk-test".into())).unwrap();
        let deltas: Vec<Delta> =
            provider.answer(&hello(), true).await.unwrap().map(|d| d.unwrap()).collect::<Vec<_>>().await;
        assert_eq!(
            deltas,
            vec![
                Delta::Text("Hel".into()),
                Delta::Text("lo".into()),
                Delta::Finish {
                    stop_reason: StopReason::EndTurn,
                    usage: Some(Usage { input_tokens: 2, output_tokens: 1 })
                },
            ]
        );
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /v1/chat/completions HTTP/1.1"), "{request}");
        assert!(request.to_ascii_lowercase().contains("authorization: bearer sk-test"), "{request}");
        let body: serde_json::Value = serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["model"], "us.anthropic.claude-sonnet-4-20250514-v1:0");
        assert_eq!(body["stream"], true);
    }

    #[tokio::test]
    async fn error_statuses_and_dead_servers() {
        let (url, _server) = fake_server(
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n\
             {\"error\":{\"message\":\"no such model x\"}}   "
                .into(),
        )
        .await;
        let provider = OpenAi::new(&url, Some("x".into()), None).unwrap();
        let Err(ModelFailure::Upstream { status, message }) = provider.answer(&hello(), false).await else {
            panic!("expected an upstream error")
        };
        assert_eq!(status, 404);
        assert!(message.contains("no such model x"), "{message}");
        let dead = OpenAi::new("http://127.0.0.1:9/v1", None, None).unwrap();
        assert!(matches!(dead.answer(&hello(), false).await, Err(ModelFailure::Unreachable(_))));
    }

    #[test]
    fn urls() {
        let o = OpenAi::new("http://127.0.0.1:11434/v1/", None, None).unwrap();
        assert_eq!(o.url(), "http://127.0.0.1:11434/v1/chat/completions");
        let o = OpenAi::new("http://h:8080/v1/chat/completions", None, None).unwrap();
        assert_eq!(o.url(), "http://h:8080/v1/chat/completions");
        assert!(OpenAi::new("https://api.openai.com/v1", None, None).err().unwrap().contains("only http://"));
        assert!(OpenAi::new("localhost:11434", None, None).is_err());
    }
}
