//! The wire: one hyper service for every AWS API the emulator speaks.
//!
//! Flow of a request: read the body (bounded) → verify SigV4 → pick the service by the credential
//! scope's signing name → route by method and path (from the model) → bind and validate input →
//! handler → JSON or error response. Handlers translate between the wire and the domain
//! (`crate::control`); they own no state.

pub mod auth;
pub mod control;
pub mod data;
pub mod input;
pub mod model;
pub mod response;
pub mod router;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};

use crate::config::Config;
use crate::control::{Caller, ControlPlane};
use crate::error::{Error, ErrorKind};
use crate::sigv4::RequestParts;
use response::Body;
use router::{NoRoute, Plane, Route};

/// Largest request body accepted by any operation: InvokeAgentRuntime's 100 MB payload.
pub const MAX_PAYLOAD_BYTES: usize = 100_000_000;
/// Bodies larger than this are hashed for SigV4 on the blocking pool.
const HASH_ON_BLOCKING_POOL_BYTES: usize = 256 * 1024;
/// Control-plane requests are small JSON documents; anything bigger is a mistake.
pub const MAX_CONTROL_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Shared state of the running server.
pub struct AppState {
    pub config: Config,
    pub control: ControlPlane,
    /// `None` with `--sandbox none`.
    pub sessions: Option<Arc<crate::sessions::Sessions>>,
}

/// One incoming request as handlers see it, with the body fully read.
pub struct Call<'a> {
    pub request_id: &'a str,
    pub caller: Caller,
    pub route: Route,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Bytes,
}

fn body_limit(route: &Result<Route, NoRoute>) -> usize {
    match route {
        Ok(r) if r.plane == Plane::Data => MAX_PAYLOAD_BYTES,
        _ => MAX_CONTROL_BODY_BYTES,
    }
}

fn no_route_error(method: &str, path: &str, nr: NoRoute) -> Error {
    let message = match nr {
        NoRoute::NotImplemented { service, operation } => format!(
            "{service} {operation} is part of the AWS API but agentcore-local does not implement it. \
             It serves the AgentCore Runtime operations (runtimes, versions, endpoints, tags, invocations)."
        ),
        NoRoute::WrongMethod { allowed } => {
            format!("No operation matches {method} {path}; this path accepts {}.", allowed.join(", "))
        }
        NoRoute::Unknown => format!("No AgentCore operation matches {method} {path}."),
    };
    Error::new(ErrorKind::UnknownOperation, message)
}

pub async fn handle<B>(state: Arc<AppState>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let route = router::route(&method, &raw_path);

    let limit = body_limit(&route);
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let message = if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                format!("The request body exceeds the limit of {limit} bytes for this operation.")
            } else {
                format!("Could not read the request body: {e}")
            };
            return response::error(&Error::validation(message), &request_id);
        }
    };

    let identity = if body.len() > HASH_ON_BLOCKING_POOL_BYTES {
        // Hashing a large payload takes milliseconds; keep it off the request threads.
        let (st, m, p, q, h, b) =
            (state.clone(), method.clone(), raw_path.clone(), raw_query.clone(), headers.clone(), body.clone());
        tokio::task::spawn_blocking(move || {
            let parts = RequestParts { method: &m, raw_path: &p, raw_query: &q, headers: &h };
            auth::authenticate(&st.config, &parts, &b)
        })
        .await
        .unwrap_or(Err(crate::sigv4::AuthError::Missing))
    } else {
        let parts = RequestParts { method: &method, raw_path: &raw_path, raw_query: &raw_query, headers: &headers };
        auth::authenticate(&state.config, &parts, &body)
    };
    let identity = match identity {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(%method, path = %raw_path, error = ?e, "request rejected by SigV4 verification");
            return response::error(&auth::auth_error(&e), &request_id);
        }
    };
    if identity.service != "bedrock-agentcore" {
        let err = Error::new(
            ErrorKind::UnknownOperation,
            format!(
                "agentcore-local does not serve the '{}' API; sign requests for 'bedrock-agentcore'.",
                identity.service
            ),
        );
        return response::error(&err, &request_id);
    }
    let route = match route {
        Ok(r) => r,
        Err(nr) => return response::error(&no_route_error(&method, &raw_path, nr), &request_id),
    };
    let operation = route.operation;
    let call = Call {
        request_id: &request_id,
        caller: Caller { account: identity.account, region: identity.region },
        route,
        raw_query: &raw_query,
        headers: &headers,
        body,
    };
    let result = match call.route.plane {
        Plane::Control => control::dispatch(&state, &call).await,
        Plane::Data => data::dispatch(&state, &call).await,
    };
    match result {
        Ok(resp) => {
            tracing::debug!(%operation, status = resp.status().as_u16(), "handled");
            resp
        }
        Err(e) => {
            if e.status() >= 500 {
                tracing::error!(%operation, error = %e, "request failed");
            } else {
                tracing::info!(%operation, error = %e, "request rejected");
            }
            response::error(&e, &request_id)
        }
    }
}
