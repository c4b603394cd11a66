//! The application: the state every request handler shares, the request as handlers see it, and
//! who the caller is (SigV4 or the emulator's own pages).

pub mod auth;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::kernel::caller::Caller;
use crate::kernel::router::Route;
use crate::services::runtime::domain::ControlPlane;

/// Shared state of the running server.
pub struct AppState {
    pub config: Config,
    pub control: ControlPlane,
    /// `None` with `--sandbox none`.
    pub sessions: Option<Arc<crate::sessions::Sessions>>,
    /// The embedded S3 subset's buckets and objects.
    pub objects: crate::services::s3::objects::Objects,
    /// Captured agent output (CloudWatch Logs); `None` with `--sandbox none`, which runs no agents.
    pub logs: Option<crate::services::logs::LogStore>,
    /// Counters and recent events for `/metrics` and the dashboard.
    pub observatory: Arc<crate::observe::Observatory>,
    /// AgentCore Memory (both planes).
    pub memory: crate::services::memory::MemoryService,
    /// Bedrock's model provider and the record of model calls.
    pub bedrock: Arc<crate::services::bedrock::Bedrock>,
    /// AgentCore Identity: workload identities, credential providers, the built-in issuer.
    pub identity: Arc<crate::services::identity::IdentityService>,
    /// Temporary credentials: STS AssumeRole and the sessions' execution roles.
    pub credentials: Arc<crate::services::sts::credentials::Issuer>,
    /// Permits for the dashboard's live-update streams (server-sent events): each open stream
    /// holds one, so a pile of browser tabs cannot take the server's connection permits.
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the server begins to shut down: long-lived responses end then, so they do
    /// not hold the graceful shutdown open.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Put on requests that arrived on the listener for sandboxes, with the sandbox's address.
#[derive(Debug, Clone, Copy)]
pub struct FromSandbox(pub std::net::IpAddr);

impl AppState {
    /// The runtime session of the sandbox a request came from, if it came from one.
    pub fn calling_session(&self, from: Option<FromSandbox>) -> Option<String> {
        self.calling_sandbox(from)?.session_id
    }

    /// The sandbox a request came from (runtime, role and session), if it came from one.
    pub fn calling_sandbox(&self, from: Option<FromSandbox>) -> Option<crate::sessions::directory::SandboxIdentity> {
        self.sessions.as_ref()?.directory().at(from?.0)
    }
}

/// One incoming request as handlers see it, with the body fully read.
pub struct Call<'a> {
    pub request_id: &'a str,
    pub caller: Caller,
    pub route: Route,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Bytes,
    /// How the caller authenticated (SigV4, or a bearer token on a JWT-authorized runtime).
    pub authentication: auth::Authentication,
}
