//! The wire: one hyper service for every AWS API the emulator speaks.
//!
//! Flow of a request: read the body (bounded) → verify SigV4 → pick the service by the credential
//! scope's signing name → route by method and path (from the model) → bind and validate input →
//! handler → JSON or error response. Handlers translate between the wire and the domain
//! (`crate::services::runtime::domain`); they own no state.

use crate::app::auth;
pub use crate::app::{AppState, Call, FromSandbox};
use crate::console as local;
use crate::kernel::{response, router};
use crate::services::identity::{api as identity_api, browser as identity_browser};
use crate::services::logs::api as logs;
use crate::services::runtime::data_api::inbound::{self, Authentication, Inbound};
use crate::services::runtime::{control_api as control, data_api as data};
use crate::services::{bedrock, mmds::api as mmds, s3::api as s3, sts::api as sts};

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};

use crate::kernel::error::{Error, ErrorKind};
use crate::kernel::sigv4::RequestParts;
use response::Body;
use router::{NoRoute, Plane, Route};

/// Largest request body accepted by any operation: InvokeAgentRuntime's 100 MB payload.
pub const MAX_PAYLOAD_BYTES: usize = 100_000_000;
/// Bodies larger than this are hashed for SigV4 on the blocking pool.
const HASH_ON_BLOCKING_POOL_BYTES: usize = 256 * 1024;
/// Control-plane requests are small JSON documents; anything bigger is a mistake.
pub const MAX_CONTROL_BODY_BYTES: usize = 10 * 1024 * 1024;

fn body_limit(route: &Result<Route, NoRoute>) -> usize {
    match route {
        Ok(r) if r.plane == Plane::Data => MAX_PAYLOAD_BYTES,
        _ => MAX_CONTROL_BODY_BYTES,
    }
}

/// 413, as AWS's front end answers a request entity over the limit, in the service's error shape.
fn body_too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::Modelled { code: "ValidationException", status: 413 },
        format!("The request body exceeds the limit of {limit} bytes for this operation."),
    )
}

fn no_route_error(method: &str, path: &str, nr: NoRoute) -> Error {
    let message = match nr {
        NoRoute::NotImplemented { service, operation } => format!(
            "{service} {operation} is part of the AWS API but agentcore-local does not implement it. \
             It serves the AgentCore Runtime operations (runtimes, versions, endpoints, tags, invocations) \
             and AgentCore Memory."
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
    // WebSocket upgrades are not modelled operations: they need the request whole (to upgrade it).
    if data::ws::runtime_label(req.method(), req.uri().path()).is_some()
        && req.headers().get("upgrade").is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        return data::ws::handle(state, req, &request_id).await;
    }
    // The built-in issuer and the USER_FEDERATION browser endpoints authenticate by their own
    // protocol (client secrets, user passwords, single-use state), not SigV4.
    if identity_browser::is_browser_path(req.method(), req.uri().path()) {
        return identity_browser_request(&state, req).await;
    }
    if let Some(label) = inbound::metadata_label(req.method(), req.uri().path()) {
        let query = req.uri().query().unwrap_or("").to_string();
        return inbound::protected_resource_metadata(&state, label, &query, &request_id).await;
    }
    if local::is_local_path(req.uri().path()) {
        let connection = req.extensions().get::<local::PeerAddr>().copied();
        let loopback = match (connection, state.sessions.clone()) {
            (Some(c), _) if !c.peer.ip().is_loopback() => false,
            (Some(c), Some(sessions)) => {
                // A VM's guest reaches the host's loopback through QEMU: it is no local user.
                let from_sandbox =
                    tokio::task::spawn_blocking(move || sessions.connection_from_sandbox(c.peer, c.local)).await;
                !from_sandbox.unwrap_or(true)
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        let (parts, _) = req.into_parts();
        let headers: Vec<(String, String)> = crate::kernel::sigv4::header_pairs(&parts.headers);
        let (method, path, query) = (parts.method.as_str(), parts.uri.path(), parts.uri.query().unwrap_or(""));
        let signed = || {
            let rp = RequestParts { method, raw_path: path, raw_query: query, headers: &headers };
            state.config.auth == crate::config::AuthMode::Verify && auth::authenticate(&state.config, &rp, b"").is_ok()
        };
        let allowed = loopback || signed();
        return local::handle(&state, method, path, query, allowed, &request_id).await;
    }
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = crate::kernel::sigv4::header_pairs(&parts.headers);
    // Sandboxes fetch their credentials here (IMDS protocol), known by their address.
    let from_sandbox = parts.extensions.get::<FromSandbox>().copied();
    if let Some(FromSandbox(address)) = from_sandbox {
        if mmds::is_metadata_request(&raw_path, &headers, &raw_query) {
            let sandbox = state.sessions.as_ref().and_then(|s| s.directory().at(address));
            return mmds::respond(&state.credentials, sandbox, &parts.method, &raw_path, &headers).await;
        }
    }
    // S3 and STS are chosen by signing name before the body is read: S3 streams it.
    let scope = crate::kernel::sigv4::verify::credential_scope(&RequestParts {
        method: &method,
        raw_path: &raw_path,
        raw_query: &raw_query,
        headers: &headers,
    });
    // Requests without a SigV4 scope go to S3 when they carry a SigV2 signature (boto3's default
    // presigned URLs).
    let s3_unscoped = scope.is_none() && s3::sigv2::is_sigv2(&headers, &raw_query);
    // An unsigned form is STS's AssumeRoleWithWebIdentity (unsigned on AWS too); no other API the
    // emulator serves posts forms.
    let unsigned_form = scope.is_none()
        && !s3_unscoped
        && crate::kernel::sigv4::verify::header(&headers, "content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    match scope
        .as_ref()
        .map(|(_, service)| service.as_str())
        .or(s3_unscoped.then_some("s3"))
        .or(unsigned_form.then_some("sts"))
    {
        Some("s3") => {
            let body: s3::ReqBody = body.map_err(|e| Box::new(e) as response::BoxError).boxed_unsync();
            return s3::handle(state, request_id, parts, headers, body).await;
        }
        Some("sts") => return sts_request(&state, &request_id, &method, &raw_path, &raw_query, &headers, body).await,
        _ => {}
    }
    let route = router::route(&method, &raw_path);
    // Refuse a request whose signature cannot be right before reading its body; bearer-token
    // invocations of JWT-authorized runtimes are checked by their authorizer instead.
    // Classified once: the same answer decides the bearer path after the body is read.
    let bearer = route
        .as_ref()
        .ok()
        .filter(|r| r.plane == Plane::Data && inbound::BEARER_OPERATIONS.contains(&r.operation))
        .map(|_| inbound::classify(&headers, &raw_query))
        .filter(|credentials| *credentials != Inbound::SigV4);
    // What the precheck parsed and checked is kept for the verification after the body.
    let mut prechecked = None;
    if bearer.is_none() {
        let parts = RequestParts { method: &method, raw_path: &raw_path, raw_query: &raw_query, headers: &headers };
        match auth::precheck(&state.config, &parts) {
            Ok(p) => prechecked = Some(p),
            Err(e) => {
                tracing::info!(%method, path = %raw_path, error = ?e, "request rejected by SigV4 verification");
                return response::error(&auth::auth_error(&e), &request_id);
            }
        }
    }
    // Bedrock routes with its own models once authenticated; its bodies carry images and
    // documents inline.
    let is_bedrock = scope.as_ref().is_some_and(|(_, service)| service == "bedrock");
    let limit = if is_bedrock { bedrock::MAX_REQUEST_BYTES } else { body_limit(&route) };
    // A body declared larger than the operation takes is refused before it is read: a client
    // that sent `Expect: 100-continue` then gets no `100 Continue` (hyper sends it only when the
    // body is first read) and need not upload what would be thrown away.
    let declared = crate::kernel::sigv4::verify::header(&headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return response::error(&body_too_large(limit), &request_id);
    }
    // Bodies read here are at most Bedrock's 25 MB: a client that stalls past the timeout is cut
    // off rather than holding its connection.
    let timeout = state.config.body_read_timeout;
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let Ok(collected) = collected else {
        // The front end's own error (AWS answers a stalled body with 408 before any service sees it).
        let err = Error::new(
            ErrorKind::Modelled { code: "RequestTimeoutException", status: 408 },
            format!(
                "The request body did not arrive within {} s of its headers (--body-read-timeout).",
                timeout.as_secs()
            ),
        );
        return response::error(&err, &request_id);
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return response::error(&body_too_large(limit), &request_id);
            }
            return response::error(&Error::validation(format!("Could not read the request body: {e}")), &request_id);
        }
    };

    // Invocations of a JWT-authorized runtime carry a bearer token instead of SigV4.
    if let (Ok(r), Some(credentials)) = (&route, bearer) {
        if let Some(resp) =
            bearer_request(&state, &request_id, r, &raw_query, &headers, body.clone(), credentials).await
        {
            return resp;
        }
    }

    let authenticated = if body.len() > HASH_ON_BLOCKING_POOL_BYTES {
        // Hashing a large payload takes milliseconds; keep it off the request threads.
        let (st, m, p, q, h, b) =
            (state.clone(), method.clone(), raw_path.clone(), raw_query.clone(), headers.clone(), body.clone());
        tokio::task::spawn_blocking(move || {
            let parts = RequestParts { method: &m, raw_path: &p, raw_query: &q, headers: &h };
            auth::authenticate(&st.config, &parts, &b)
        })
        .await
        .unwrap_or(Err(crate::kernel::sigv4::AuthError::Missing))
    } else {
        let parts = RequestParts { method: &method, raw_path: &raw_path, raw_query: &raw_query, headers: &headers };
        match prechecked {
            Some(prechecked) => auth::authenticate_prechecked(&state.config, prechecked, &parts, &body),
            None => auth::authenticate(&state.config, &parts, &body),
        }
    };
    let (caller, service) = match authenticated {
        Ok(authenticated) => authenticated,
        Err(e) => {
            tracing::info!(%method, path = %raw_path, error = ?e, "request rejected by SigV4 verification");
            return response::error(&auth::auth_error(&e), &request_id);
        }
    };
    if service == "logs" {
        return logs::handle(&state, &caller, &headers, &body, &request_id);
    }
    if service == "bedrock" {
        let incoming = bedrock::api::Incoming {
            request_id: &request_id,
            caller: &caller,
            method: &method,
            raw_path: &raw_path,
            raw_query: &raw_query,
            headers: &headers,
            body,
            session: state.calling_sandbox(from_sandbox).and_then(|sandbox| {
                Some(bedrock::calls::CallerSession { runtime_id: sandbox.runtime_id, session_id: sandbox.session_id? })
            }),
        };
        return bedrock::api::handle(&state.bedrock, state.sessions.as_ref(), incoming).await;
    }
    if service != "bedrock-agentcore" {
        let session = state.calling_session(from_sandbox);
        let request = RequestParts { method: &method, raw_path: &raw_path, raw_query: &raw_query, headers: &headers };
        return crate::kernel::unserved::respond(&service, &request, &body, session.as_deref(), &request_id);
    }
    let route = match route {
        Ok(r) => r,
        Err(NoRoute::WrongMethod { allowed }) if raw_path.trim_end_matches('/').ends_with("/invocations") => {
            // MCP clients open a GET stream and send DELETE at close; 405 is what they expect
            // from a server without those, and they carry on.
            let err = Error::new(
                ErrorKind::UnknownOperation,
                format!("{method} is not supported here; use {}.", allowed.join(", ")),
            );
            let mut resp = response::error(&err, &request_id);
            *resp.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
            if let Ok(v) = http::HeaderValue::from_str(&allowed.join(", ")) {
                resp.headers_mut().insert("allow", v);
            }
            return resp;
        }
        Err(nr) => return response::error(&no_route_error(&method, &raw_path, nr), &request_id),
    };
    let operation = route.operation;
    let call = Call {
        request_id: &request_id,
        caller,
        route,
        raw_query: &raw_query,
        headers: &headers,
        body,
        authentication: Authentication::SigV4,
    };
    let result = match call.route.plane {
        _ if crate::services::memory::api::serves(operation) => {
            crate::services::memory::api::handle(&state.memory, call.route.plane.model(), &call).await
        }
        _ if identity_api::owns(operation) => identity_dispatch(&state, &call).await,
        Plane::Control => control::dispatch(&state, &call).await,
        Plane::Data => data::dispatch(&state, &call).await,
    };
    finish(result, operation, &request_id)
}

fn finish(result: crate::kernel::error::Result<Response<Body>>, operation: &str, request_id: &str) -> Response<Body> {
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
            response::error(&e, request_id)
        }
    }
}

/// A bearer (or credential-less) call of a runtime's data plane. `None` when the runtime is a
/// SigV4 runtime called without credentials: SigV4 verification then answers as it always has.
async fn bearer_request(
    state: &Arc<AppState>,
    request_id: &str,
    route: &Route,
    raw_query: &str,
    headers: &[(String, String)],
    body: Bytes,
    credentials: Inbound,
) -> Option<Response<Body>> {
    let label = route.labels.get("agentRuntimeArn").cloned().unwrap_or_default();
    let query = crate::kernel::query::form_pairs(raw_query);
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let caller = inbound::caller_of_label(state, &label, param("accountId").as_deref());
    let target =
        match state.control.resolve_invocation(caller.clone(), label, param("accountId"), param("qualifier")).await {
            Ok(t) => t,
            Err(e) => {
                return match credentials {
                    Inbound::None => None,
                    _ => Some(response::error(&e, request_id)),
                }
            }
        };
    let token = match &credentials {
        Inbound::Bearer(t) => Some(t.as_str()),
        _ => None,
    };
    if target.authorizer.is_none() && token.is_none() {
        return None;
    }
    let authentication = match inbound::authorize(state, &target, token).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(operation = route.operation, error = %e, "request rejected");
            let missing =
                (token.is_none() && target.authorizer.is_some()).then_some((state.identity.emulator_url(), &*target));
            return Some(inbound::error_response(&e, missing, request_id));
        }
    };
    let call = Call { request_id, caller, route: route.clone(), raw_query, headers, body, authentication };
    Some(finish(data::dispatch(state, &call).await, route.operation, request_id))
}

/// Identity operations of either plane: bound and validated against the plane's model, then
/// handed to the Identity service.
async fn identity_dispatch(state: &AppState, call: &Call<'_>) -> crate::kernel::error::Result<Response<Body>> {
    let model = call.route.plane.model();
    let input = crate::kernel::input::bind_and_validate(
        model,
        call.route.operation,
        &crate::kernel::input::HttpInput {
            labels: &call.route.labels,
            raw_query: call.raw_query,
            headers: call.headers,
            body: &call.body,
        },
    )?;
    let identity_call = identity_api::IdentityCall {
        request_id: call.request_id,
        caller: call.caller.clone(),
        operation: call.route.operation,
        status: model.operation(call.route.operation).http.response_code,
        input,
    };
    identity_api::handle(&state.identity, &state.control, identity_call).await
}

/// The built-in issuer and the USER_FEDERATION browser endpoints (small bodies: forms).
async fn identity_browser_request<B>(state: &AppState, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_CONTROL_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let mut resp = Response::new(response::full(format!("Could not read the request body: {e}")));
            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
            return resp;
        }
    };
    let headers = crate::kernel::sigv4::header_pairs(&parts.headers);
    identity_browser::handle(
        &state.identity,
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &headers,
        &body,
    )
    .await
}

/// STS: small form bodies, verified like any non-S3 service.
async fn sts_request<B>(
    state: &AppState,
    request_id: &str,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    body: B,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let body = match Limited::new(body, MAX_CONTROL_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return sts::error(400, "InvalidRequest", &format!("Could not read the request body: {e}"), request_id)
        }
    };
    let request = sts::QueryRequest::new(raw_query, &body);
    let parts = RequestParts { method, raw_path, raw_query, headers };
    let unsigned = crate::kernel::sigv4::verify::credential_scope(&parts).is_none();
    if unsigned && request.param("Action").as_deref() == Some("AssumeRoleWithWebIdentity") {
        return sts::handle(&state.credentials, None, &state.config.account_id, &request, request_id).await;
    }
    match auth::authenticate(&state.config, &parts, &body) {
        Ok((caller, _)) => {
            sts::handle(&state.credentials, Some(&caller), &state.config.account_id, &request, request_id).await
        }
        Err(e) => {
            tracing::info!(%method, path = %raw_path, error = ?e, "STS request rejected by SigV4 verification");
            sts::auth_error(&e, request_id)
        }
    }
}
