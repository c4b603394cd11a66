//! WebSocket `/runtimes/{arn}/ws`: an upgrade authenticated by SigV4 (headers or presigned query,
//! as the bedrock-agentcore SDK makes them) or, on a JWT-authorized runtime, by a bearer token
//! (`Authorization` header or the SDK's `base64UrlBearerAuthorization` subprotocol), bridged frame
//! by frame to the agent's `/ws` in the session's sandbox. Not in the Smithy models (api-wire.md
//! §4.5), so it is routed here.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::inbound::{self, Authentication, Inbound};
use super::{headers, sessions};
use crate::app::auth;
use crate::app::AppState;
use crate::kernel::error::{Error, ErrorKind, Result};
use crate::kernel::query::form_pairs;
use crate::kernel::response::{self, Body};
use crate::kernel::sigv4::verify::header;
use crate::services::runtime::domain::protocol::ServerProtocol;
use crate::sessions::ActivityGuard;

const SESSION_PARAM: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id";

/// The runtime label of `GET /runtimes/{arn}/ws`, if this is that path.
pub fn runtime_label(method: &http::Method, path: &str) -> Option<String> {
    if method != http::Method::GET {
        return None;
    }
    let trimmed = path.strip_prefix("/runtimes/")?.trim_end_matches('/');
    let (label, rest) = trimmed.split_once('/')?;
    (rest == "ws" && !label.is_empty())
        .then(|| percent_encoding::percent_decode_str(label).decode_utf8_lossy().into_owned())
}

pub async fn handle<B>(state: Arc<AppState>, req: Request<B>, request_id: &str) -> Response<Body> {
    let label = runtime_label(req.method(), req.uri().path()).unwrap_or_default();
    let (mut parts, _body) = req.into_parts();
    match upgrade(&state, &mut parts, label, request_id).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(error = %e, "WebSocket upgrade refused");
            response::error(&e, request_id)
        }
    }
}

async fn upgrade(
    state: &Arc<AppState>,
    parts: &mut http::request::Parts,
    label: String,
    request_id: &str,
) -> Result<Response<Body>> {
    let method = parts.method.as_str().to_string();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = crate::kernel::sigv4::header_pairs(&parts.headers);
    let request_parts = crate::kernel::sigv4::RequestParts {
        method: &method,
        raw_path: &raw_path,
        raw_query: &raw_query,
        headers: &headers,
    };
    let sigv4 = || auth::authenticate(&state.config, &request_parts, b"").map_err(|e| auth::auth_error(&e));
    let query = form_pairs(&raw_query);
    let param = |name: &str| query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    // SigV4 (headers or presigned URL), or a bearer token on a JWT-authorized runtime.
    let (target, authentication) = match inbound::classify(&headers, &raw_query) {
        Inbound::SigV4 => {
            let (caller, _) = sigv4()?;
            let target =
                state.control.resolve_invocation(caller, label, param("accountId"), param("qualifier")).await?;
            inbound::check_sigv4(&target, &Authentication::SigV4)?;
            (target, Authentication::SigV4)
        }
        credentials => {
            let caller = inbound::caller_of_label(state, &label, param("accountId").as_deref());
            let resolved =
                state.control.resolve_invocation(caller, label, param("accountId"), param("qualifier")).await;
            let token = match &credentials {
                Inbound::Bearer(t) => Some(t.clone()),
                _ => None,
            };
            let target = match resolved {
                Ok(t) if t.authorizer.is_some() || token.is_some() => t,
                // No credentials for a SigV4 runtime (or one that does not exist): SigV4 answers.
                Ok(_) => return Err(sigv4().err().unwrap_or_else(inbound::mismatch)),
                Err(e) if token.is_some() => return Err(e),
                Err(e) => return Err(sigv4().err().unwrap_or(e)),
            };
            match inbound::authorize(state, &target, token.as_deref()).await {
                Ok(authentication) => (target, authentication),
                Err(e) => {
                    tracing::info!(error = %e, "WebSocket upgrade refused");
                    let missing = token.is_none().then_some((state.identity.emulator_url(), &*target));
                    return Ok(inbound::error_response(&e, missing, request_id));
                }
            }
        }
    };
    let key = match (header(&headers, "upgrade"), header(&headers, "sec-websocket-key")) {
        (Some(u), Some(k)) if u.eq_ignore_ascii_case("websocket") => k.to_string(),
        _ => {
            return Err(Error::validation(
                "This path accepts WebSocket upgrades only (Upgrade: websocket with Sec-WebSocket-Key).",
            ))
        }
    };
    let on_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| Error::internal("the connection cannot be upgraded"))?;
    if !matches!(target.protocol.kind, ServerProtocol::Http | ServerProtocol::Agui) {
        return Err(Error::validation(format!(
            "WebSocket connections are available for HTTP and AGUI agents; runtime '{}' serves {:?}.",
            target.runtime_id, target.protocol.kind
        )));
    }
    let sessions = sessions(state)?.clone();
    let session_id = header(&headers, SESSION_PARAM)
        .map(String::from)
        .or_else(|| param(SESSION_PARAM))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if !(33..=256).contains(&session_id.chars().count()) {
        return Err(Error::invalid_field(
            "runtimeSessionId",
            "The runtime session id must be 33 to 256 characters long.",
        ));
    }
    sessions.admit(&target.endpoint_arn)?;
    let (session, _) = sessions.session(&target, &session_id).await?;
    let guard = session.begin_request();
    let addr = session.agent_address().ok_or_else(|| Error::internal("the session has no agent port"))?;

    // Headers the agent sees, as for an invocation; query-string "headers" of presigned URLs count.
    let mut forwarded = headers.clone();
    forwarded.extend(query.iter().filter(|(k, _)| !k.starts_with("X-Amz-")).cloned());
    let mut agent_headers = headers::to_agent(&forwarded, &session_id, request_id, &target.header_allowlist);
    let user_id = header(&headers, "x-amzn-bedrock-agentcore-runtime-user-id")
        .map(String::from)
        .or_else(|| param("X-Amzn-Bedrock-AgentCore-Runtime-User-Id"));
    let wat = super::workload_access_token(state, &authentication, &target, user_id.as_deref());
    headers::identity_to_agent(
        &mut agent_headers,
        wat.as_deref(),
        super::forwarded_authorization(&authentication, &target),
    );
    let mut agent_request = http::Request::builder().uri(format!("ws://{addr}/ws")).method("GET");
    for (name, value) in agent_headers.iter() {
        if name != "content-type" {
            agent_request = agent_request.header(name, value);
        }
    }
    // A bearer token offered as a subprotocol is the caller's credential: it never reaches the agent.
    let (agent_protocols, bearer_protocol) = split_bearer_protocols(header(&headers, "sec-websocket-protocol"));
    if let Some(p) = &agent_protocols {
        agent_request = agent_request.header("sec-websocket-protocol", p);
    }
    let agent_request = agent_request
        .header("host", addr.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", tokio_tungstenite::tungstenite::handshake::client::generate_key())
        .body(())
        .map_err(|e| Error::internal(e.to_string()))?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| Error::new(ErrorKind::RuntimeClientError, format!("The agent could not be reached: {e}")))?;
    let (agent_ws, agent_response) = match tokio_tungstenite::client_async(agent_request, stream).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            tracing::warn!(session = %session_id, runtime = %target.runtime_id, status, "agent refused the WebSocket upgrade on /ws");
            return Err(Error::new(
                ErrorKind::RuntimeClientError,
                format!(
                    "Received error ({status}) from runtime. Please check your CloudWatch logs for more information."
                ),
            ));
        }
        Err(e) => {
            return Err(Error::new(
                ErrorKind::RuntimeClientError,
                format!("The agent's WebSocket handshake failed: {e}"),
            ))
        }
    };

    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let client_ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                bridge(client_ws, agent_ws, guard).await;
            }
            Err(e) => tracing::debug!(error = %e, "client went away before the WebSocket upgrade completed"),
        }
    });

    let mut resp = Response::new(response::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert("sec-websocket-accept", v);
    }
    match agent_response.headers().get("sec-websocket-protocol") {
        Some(p) => {
            h.insert("sec-websocket-protocol", p.clone());
        }
        None if bearer_protocol => {
            h.insert("sec-websocket-protocol", HeaderValue::from_static(BEARER_SUBPROTOCOL));
        }
        None => {}
    }
    if let Ok(v) = HeaderValue::from_str(&session_id) {
        h.insert("x-amzn-bedrock-agentcore-runtime-session-id", v);
    }
    Ok(resp)
}

/// The bedrock-agentcore SDK's browser form of a bearer token: `base64UrlBearerAuthorization.<token>`
/// plus this sentinel, which the server selects.
const BEARER_SUBPROTOCOL: &str = "base64UrlBearerAuthorization";

/// The subprotocols for the agent (without the bearer ones), and whether bearer ones were offered.
fn split_bearer_protocols(offered: Option<&str>) -> (Option<String>, bool) {
    let Some(offered) = offered else { return (None, false) };
    let all: Vec<&str> = offered.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    let rest: Vec<&str> = all.iter().copied().filter(|p| !p.starts_with(BEARER_SUBPROTOCOL)).collect();
    let bearer = rest.len() != all.len();
    ((!rest.is_empty()).then(|| rest.join(", ")), bearer)
}

/// Relay messages both ways until either side closes; a close (with its code) is passed on.
async fn bridge<C, A>(client: WebSocketStream<C>, agent: WebSocketStream<A>, guard: ActivityGuard)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let session = guard.session().clone();
    let ended = session.ended_signal();
    let (mut client_tx, mut client_rx) = client.split();
    let (mut agent_tx, mut agent_rx) = agent.split();
    loop {
        tokio::select! {
            from_client = client_rx.next() => match from_client {
                Some(Ok(Message::Close(frame))) => {
                    let _ = agent_tx.send(Message::Close(frame)).await;
                    break;
                }
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    session.touch();
                    if agent_tx.send(m).await.is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {} // ping/pong: each side answers its own
                Some(Err(_)) | None => {
                    let _ = agent_tx.send(Message::Close(None)).await;
                    break;
                }
            },
            from_agent = agent_rx.next() => match from_agent {
                Some(Ok(Message::Close(frame))) => {
                    let _ = client_tx.send(Message::Close(frame)).await;
                    break;
                }
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    session.touch();
                    if client_tx.send(m).await.is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let close = CloseFrame { code: 1011u16.into(), reason: "the agent closed the connection".into() };
                    let _ = client_tx.send(Message::Close(Some(close))).await;
                    break;
                }
            },
            _ = ended.cancelled() => {
                let close = CloseFrame { code: 1001u16.into(), reason: "the runtime session ended".into() };
                let _ = client_tx.send(Message::Close(Some(close))).await;
                break;
            }
        }
    }
    let _ = client_tx.close().await;
    let _ = agent_tx.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_websocket_path() {
        let get = http::Method::GET;
        assert_eq!(
            runtime_label(&get, "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A1%3Aruntime%2Fa-1/ws"),
            Some("arn:aws:bedrock-agentcore:us-east-1:1:runtime/a-1".into())
        );
        assert_eq!(runtime_label(&get, "/runtimes/a-1/ws/"), Some("a-1".into()));
        assert_eq!(runtime_label(&get, "/runtimes/a-1/invocations"), None);
        assert_eq!(runtime_label(&http::Method::POST, "/runtimes/a-1/ws"), None);
    }
}
