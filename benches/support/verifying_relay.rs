//! The floor for any emulator: a relay that does what every invocation needs and nothing more.
//! It parses each HTTP/1 request (hyper), reads its body, verifies its SigV4 signature with the
//! emulator's own verifier (`app::auth::authenticate`, the `test`/`test` credentials), and sends
//! it on to the agent over a kept-alive HTTP/1 connection, returning the agent's answer as it
//! comes. No routing, input binding, runtime or session lookup, header rewriting, metering or
//! log capture. It runs in the relay process (`super::bare_relay`, kind `Verifying`), a process
//! of its own as the emulator is, on one-thread runtimes as the emulator serves.
//!
//! Against it, the emulator's overhead splits in two: what verifying and relaying HTTP costs on
//! this machine (this relay over the bare one), and what the emulator adds beyond that.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use agentcore_local::app::auth;
use agentcore_local::config::Config;
use agentcore_local::kernel::sigv4::{header_pairs, RequestParts};
use agentcore_local::sandbox::SandboxHandle;
use agentcore_local::sessions::{AgentBody, AgentClient};

/// Accepts on `listener` and relays each request to the agent at `target`, through the client
/// the emulator reaches agents with (`AgentClient`: its pool, and its connections driven by the
/// request that uses them).
pub async fn relay_each(listener: std::net::TcpListener, target: SocketAddr) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let config = Arc::new(Config::for_tests());
    let agent = AgentClient::for_sandbox(&SandboxHandle {
        id: "verifying-relay".into(),
        ports: Default::default(),
        address: None,
        netns_pid: None,
        timings: Default::default(),
    });
    while let Ok((inbound, _)) = listener.accept().await {
        let (config, agent) = (config.clone(), agent.clone());
        let _ = inbound.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| relay_one(req, config.clone(), agent.clone(), target));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(inbound), service).await;
        });
    }
}

/// One request: read, verify, forward, answer.
async fn relay_one(
    req: Request<Incoming>,
    config: Arc<Config>,
    agent: AgentClient,
    target: SocketAddr,
) -> Result<Response<AgentBody>, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let headers = header_pairs(&parts.headers);
    let request = RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &headers,
    };
    let verified = auth::authenticate(&config, &request, &body).is_ok();
    // A refused request goes to a path the agent does not serve, which answers 404: the relay
    // always returns an agent's response, and the benchmark, which asserts 200, fails.
    let path = if verified { "/invocations" } else { "/signature-refused" };
    let mut forward = Request::post(path).body(Full::new(body))?;
    for name in ["content-type", "x-amzn-bedrock-agentcore-runtime-session-id"] {
        if let Some(value) = parts.headers.get(name) {
            forward.headers_mut().insert(name, value.clone());
        }
    }
    Ok(agent.request_at(target, forward).await?)
}
