//! The live-session table: one sandbox per (runtime, session id), created exactly once however
//! many requests race for it, supervised until it idles out, outlives its lifetime, crashes or is
//! stopped, and always removed afterwards.

mod agent_client;
mod capture;
pub mod directory;
mod door;
pub mod forward;
mod job;
mod pool;
pub mod readiness;
pub mod recover;
pub mod report;
mod session;
pub mod spec;
mod supervisor;
mod throttle;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::{FutureExt, Shared};

use crate::kernel::clock::now_ms;
use crate::kernel::error::{Error, ErrorKind, Result};
use crate::sandbox::{Egress, Limits, SandboxBackend};
use crate::services::runtime::domain::resolve::InvocationTarget;
use futures_util::future::BoxFuture;

pub use job::{Job, JobFailure};
use readiness::{ReadySandbox, StartFailure, Started};
pub use session::{ActivityGuard, EndReason, PingReport, Session, SessionKey, StartPhases};
use throttle::Throttle;

pub use agent_client::{AgentBody, AgentClient};

/// The service's limits and the emulator's knobs for sessions.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Active sessions per account (ServiceQuotaExceededException beyond).
    pub max_sessions_per_account: usize,
    /// InvokeAgentRuntime requests per second per endpoint (ThrottlingException beyond); 0 = off.
    pub max_tps_per_endpoint: u32,
    /// How long an agent may take to answer `/ping` after its sandbox starts.
    pub startup_timeout: Duration,
    /// SIGTERM-to-SIGKILL grace when a session stops.
    pub stop_grace: Duration,
    /// Time to the response headers of a synchronous request.
    pub request_timeout: Duration,
    /// Longest a streamed response may last.
    pub stream_timeout: Duration,
    pub limits: Limits,
    pub read_only_root: bool,
    /// Put the agent's own error status and body into RuntimeClientError messages.
    pub debug_errors: bool,
    /// Leave sandboxes running at shutdown (they are re-adopted at the next start).
    pub keep_sessions: bool,
    /// Multiplies idle timeout, max lifetime and the ping interval (tests use < 1).
    pub time_scale: f64,
    /// Ready spare sandboxes kept per runtime version in use (0 disables the warm pool).
    pub warm_pool: usize,
    /// Memory the spares of all versions may hold together (measured when each is ready).
    pub warm_pool_memory_bytes: u64,
    /// The emulator keeps state in a data dir: its sandboxes outlive it and only it may remove
    /// them (other emulators treat only in-memory emulators' sandboxes as orphans).
    pub persistent: bool,
    /// Prices for the cost estimate of `agentcore-local sessions`.
    pub prices: report::Prices,
}

/// Service values (field-notes.md, runtime-contract.md §8).
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 1000;
pub const MAX_TPS_PER_ENDPOINT: u32 = 25;
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub const STOP_GRACE: Duration = Duration::from_secs(15);
pub const PING_INTERVAL: Duration = Duration::from_secs(2);
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// One ready spare per version in use: new sessions skip the sandbox start (emulator's default).
pub const DEFAULT_WARM_POOL: usize = 1;
/// What the spares of all versions may hold together, in MiB.
pub const DEFAULT_WARM_POOL_MEMORY_MIB: u64 = 2048;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_sessions_per_account: MAX_SESSIONS_PER_ACCOUNT,
            max_tps_per_endpoint: MAX_TPS_PER_ENDPOINT,
            startup_timeout: STARTUP_TIMEOUT,
            stop_grace: STOP_GRACE,
            request_timeout: SYNC_REQUEST_TIMEOUT,
            stream_timeout: STREAM_TIMEOUT,
            limits: Limits::default(),
            read_only_root: false,
            debug_errors: false,
            keep_sessions: false,
            time_scale: 1.0,
            warm_pool: DEFAULT_WARM_POOL,
            warm_pool_memory_bytes: DEFAULT_WARM_POOL_MEMORY_MIB * 1024 * 1024,
            persistent: false,
            prices: report::Prices::default(),
        }
    }
}

impl SessionConfig {
    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.time_scale)
    }

    pub fn ping_interval(&self) -> Duration {
        self.scaled(PING_INTERVAL).max(Duration::from_millis(50))
    }
}

type StartFuture = Shared<BoxFuture<'static, Result<Arc<Session>>>>;

/// What `Sessions` keeps under its one lock.
#[derive(Default)]
struct Table {
    /// One slot per (runtime, session id): its start, then the live session.
    slots: HashMap<SessionKey, Arc<Slot>>,
    /// MCP session ids issued by agents (stateful MCP servers), mapped to the runtime session that
    /// issued them: (runtime id, Mcp-Session-Id) → runtime session id. Entries go with the session.
    mcp: HashMap<(String, String), String>,
}

impl Table {
    /// Remove `key`'s slot if it is still the one with `slot_id` (a newer start for the same id
    /// keeps its own slot).
    fn remove_slot(&mut self, key: &SessionKey, slot_id: u64) {
        if self.slots.get(key).is_some_and(|s| s.id == slot_id) {
            self.slots.remove(key);
        }
    }
}

/// A table entry: the (possibly still running) start of one session.
struct Slot {
    id: u64,
    start: StartFuture,
    /// What the session report shows while the start is still running.
    target: InvocationTarget,
    began: Instant,
    started_at_ms: i64,
}

pub struct Sessions {
    backend: Arc<dyn SandboxBackend>,
    control: crate::services::runtime::domain::ControlPlane,
    pool: pool::Pool,
    config: SessionConfig,
    instance_id: String,
    /// The live sessions and the MCP session ids their agents issued, under one lock: ending a
    /// session removes both at once. Held only for map operations, never across an await.
    table: Mutex<Table>,
    next_slot: AtomicU64,
    throttle: Throttle,
    emulator_url: OnceLock<String>,
    /// The emulator as sandboxes reach it, by `Egress::index` (`SandboxBackend::host_address`).
    sandbox_urls: [OnceLock<String>; 2],
    /// Which sandbox is at which address (the metadata service's callers).
    directory: directory::SandboxDirectory,
    /// Sandbox stops in progress, so shutdown and deletions can wait for them.
    stopping: Mutex<tokio::task::JoinSet<()>>,
    /// Where every sandbox's output is kept (CloudWatch-style groups and streams).
    logs: Option<crate::services::logs::LogStore>,
    /// Counters and recent events for `/metrics` and the dashboard.
    observatory: Arc<crate::observe::Observatory>,
    /// Recently ended sessions, newest first, for the session report.
    recent: Mutex<std::collections::VecDeque<report::SessionReport>>,
}

fn runtime_client_error(message: String) -> Error {
    Error::new(ErrorKind::RuntimeClientError, message)
}

/// AWS's message for an agent that did not come up in time (runtime-contract.md §1.3).
pub const INIT_TIMEOUT_MESSAGE: &str =
    "Runtime initialization time exceeded. Please make sure that initialization completes in 60s.";

impl Sessions {
    pub fn new(
        backend: Arc<dyn SandboxBackend>,
        control: crate::services::runtime::domain::ControlPlane,
        config: SessionConfig,
        instance_id: String,
        logs: Option<crate::services::logs::LogStore>,
        observatory: Arc<crate::observe::Observatory>,
    ) -> Sessions {
        Sessions {
            backend,
            control,
            pool: pool::Pool::default(),
            throttle: Throttle::new(config.max_tps_per_endpoint),
            config,
            instance_id,
            table: Mutex::new(Table::default()),
            next_slot: AtomicU64::new(1),
            emulator_url: OnceLock::new(),
            sandbox_urls: [OnceLock::new(), OnceLock::new()],
            directory: directory::SandboxDirectory::default(),
            stopping: Mutex::new(tokio::task::JoinSet::new()),
            logs,
            recent: Mutex::new(std::collections::VecDeque::new()),
            observatory,
        }
    }

    /// Start storing a sandbox's output in its session's log stream: from its first line, or,
    /// for a sandbox re-adopted after a restart (`resumed`), after the lines the stream holds.
    pub(crate) fn capture(
        &self,
        target: &InvocationTarget,
        session_id: &str,
        started_ms: i64,
        sandbox_id: &str,
        resumed: bool,
    ) -> Option<capture::CaptureHandle> {
        let store = self.logs.as_ref()?.scoped(&target.account, &target.region);
        let group = crate::services::logs::group_name(&target.runtime_id, &target.endpoint_name);
        let stream = crate::services::logs::stream_name(session_id, started_ms);
        let from =
            if resumed { capture::StartAt::after_stored(&store, &group, &stream) } else { capture::StartAt::default() };
        Some(capture::follow(self.backend.clone(), sandbox_id.to_string(), store, group, stream, from))
    }

    /// Output that could not be followed live (a sandbox already gone), stored as it was read.
    fn store_output(&self, target: &InvocationTarget, session_id: &str, started_ms: i64, text: &str) {
        let Some(store) = self.logs.as_ref().map(|l| l.scoped(&target.account, &target.region)) else { return };
        let now = now_ms();
        let events: Vec<crate::services::logs::LogEvent> = text
            .lines()
            .map(|l| crate::services::logs::LogEvent {
                timestamp: now,
                stream: "stdout".into(),
                message: l.to_string(),
                ingested: now,
            })
            .collect();
        let group = crate::services::logs::group_name(&target.runtime_id, &target.endpoint_name);
        if let Err(e) = store.append(&group, &crate::services::logs::stream_name(session_id, started_ms), &events) {
            tracing::warn!(error = %e, "could not store agent output");
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The URL clients reach the emulator at (known once the listener is bound).
    pub fn set_emulator_url(&self, url: String) {
        let _ = self.emulator_url.set(url);
    }

    pub fn emulator_url(&self) -> &str {
        self.emulator_url.get().map(String::as_str).unwrap_or("http://127.0.0.1:4599")
    }

    /// The URL sandboxes with `egress` reach the emulator at (its listener on the backend's host
    /// address for them).
    pub fn set_sandbox_url(&self, egress: Egress, url: String) {
        let _ = self.sandbox_urls[egress.index()].set(url);
    }

    fn urls(&self, target: &InvocationTarget) -> spec::EmulatorUrls<'_> {
        let from_sandboxes = self.sandbox_urls[spec::egress(target).index()].get().map(String::as_str);
        spec::EmulatorUrls { public: self.emulator_url(), from_sandboxes }
    }

    /// Which sandbox is at which address.
    pub fn directory(&self) -> &directory::SandboxDirectory {
        &self.directory
    }

    /// How sandboxes name the listener bound at `bound` (the backend says: a VM may see the host
    /// under another address).
    pub fn sandbox_url_for(&self, bound: std::net::SocketAddr) -> String {
        self.backend.sandbox_url(bound)
    }

    fn table(&self) -> parking_lot::MutexGuard<'_, Table> {
        self.table.lock()
    }

    /// ThrottlingException when the endpoint is over its invocations-per-second quota.
    pub fn admit(&self, endpoint_arn: &str) -> Result<()> {
        if self.throttle.admit(endpoint_arn) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Throttling,
                format!(
                    "Rate exceeded: more than {} invocations per second on endpoint {endpoint_arn}.",
                    self.config.max_tps_per_endpoint
                ),
            ))
        }
    }

    /// The live session for `session_id`, starting its sandbox if there is none. Concurrent callers
    /// for one new id share a single start. Returns whether this call waited for a cold start.
    pub async fn session(
        self: &Arc<Self>,
        target: &InvocationTarget,
        session_id: &str,
    ) -> Result<(Arc<Session>, bool)> {
        let key = SessionKey { runtime_id: target.runtime_id.clone(), session_id: session_id.to_string() };
        loop {
            let (slot, created) = {
                let mut table = self.table();
                match table.slots.get(&key) {
                    Some(slot) => (slot.clone(), false),
                    None => {
                        self.check_quota(&table.slots, &target.account)?;
                        let slot = self.new_slot(key.clone(), target.clone());
                        table.slots.insert(key.clone(), slot.clone());
                        (slot, true)
                    }
                }
            };
            let cold = created || slot.start.peek().is_none();
            let session = slot.start.clone().await?;
            if session.ended().is_none() {
                return Ok((session, cold));
            }
            self.remove_slot(&key, slot.id);
        }
    }

    fn check_quota(&self, table: &HashMap<SessionKey, Arc<Slot>>, account: &str) -> Result<()> {
        let live = table.values().filter(|s| s.target.account == account).count();
        if live >= self.config.max_sessions_per_account {
            return Err(Error::quota(format!(
                "Account {account} already has {live} active runtime sessions, the maximum \
                 (--max-sessions). Stop sessions with StopRuntimeSession or wait for them to idle out."
            )));
        }
        Ok(())
    }

    fn new_slot(self: &Arc<Self>, key: SessionKey, target: InvocationTarget) -> Arc<Slot> {
        let id = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let (began, started_at_ms) = (Instant::now(), now_ms());
        let slot_target = target.clone();
        let this = self.clone();
        // Spawned, so a client that disconnects mid cold start neither cancels it half way nor
        // leaves a sandbox behind.
        let task = tokio::spawn(async move {
            let result = this.start(id, key.clone(), target, began, started_at_ms).await;
            if result.is_err() {
                this.remove_slot(&key, id);
            }
            result
        });
        let start: BoxFuture<'static, Result<Arc<Session>>> = Box::pin(async move {
            task.await.unwrap_or_else(|e| Err(Error::internal(format!("session start task failed: {e}"))))
        });
        Arc::new(Slot { id, start: start.shared(), target: slot_target, began, started_at_ms })
    }

    fn remove_slot(&self, key: &SessionKey, slot_id: u64) {
        self.table().remove_slot(key, slot_id);
    }

    async fn start(
        self: &Arc<Self>,
        slot_id: u64,
        key: SessionKey,
        target: InvocationTarget,
        began: Instant,
        started_ms: i64,
    ) -> Result<Arc<Session>> {
        let spare = self.claim_spare(&target, &key).await;
        self.replenish(&target);
        let (ready, capture, phases) = match spare {
            // A spare has run since it started: capture it all, from its start.
            Some(ready) => {
                let capture = self.capture(&target, &key.session_id, started_ms, &ready.handle.id, false);
                let phases = StartPhases {
                    warm_spare: true,
                    agent_ready_ms: Some(session::millis(began.elapsed())),
                    ..StartPhases::default()
                };
                (ready, capture, phases)
            }
            None => self.cold_start(&key, &target, started_ms, began).await?,
        };
        let session = Arc::new(Session::new(key, target, ready, began, started_ms, slot_id, phases));
        session.set_capture(capture);
        self.observatory.record_cold_start(began.elapsed().as_secs_f64());
        tracing::info!(
            session = %session.key.session_id,
            runtime = %session.key.runtime_id,
            version = session.target.version,
            sandbox = %session.sandbox.id,
            cold_start_ms = began.elapsed().as_millis() as u64,
            "session started"
        );
        tokio::spawn(supervisor::supervise(self.clone(), session.clone()));
        Ok(session)
    }

    /// A waiting spare that still answers, recorded as serving `key`'s session, with the client
    /// it answered.
    async fn claim_spare(self: &Arc<Self>, target: &InvocationTarget, key: &SessionKey) -> Option<ReadySandbox> {
        while let Some(spare) = self.take_spare(target) {
            let agent = AgentClient::for_sandbox(&spare);
            if !self.answers(&agent, &spare, target).await {
                self.stop_in_background(spare.id);
                continue;
            }
            if let Err(e) =
                self.control.record_claim(spare.id.clone(), key.runtime_id.clone(), key.session_id.clone()).await
            {
                tracing::warn!(error = %e, "could not record a warm-pool claim; starting a fresh sandbox instead");
                self.stop_in_background(spare.id);
                return None;
            }
            self.directory.claimed(&spare.id, &key.session_id);
            return Some(ReadySandbox { handle: spare, agent });
        }
        None
    }

    /// Start and await a sandbox for one session.
    async fn cold_start(
        &self,
        key: &SessionKey,
        target: &InvocationTarget,
        started_ms: i64,
        began: Instant,
    ) -> Result<(ReadySandbox, Option<capture::CaptureHandle>, StartPhases)> {
        let spec =
            spec::build(&self.config, &self.instance_id, self.urls(target), target, Some(&key.session_id), started_ms);
        let called = began.elapsed();
        let (ready, capture) = match self.start_and_wait(&spec, target, Some(&key.session_id), started_ms).await {
            Ok(Started { ready, capture }) => (ready, capture),
            Err(StartFailure::NotStarted(crate::sandbox::SandboxError::ExitedAtStart { code, logs })) => {
                self.store_output(target, &key.session_id, started_ms, &logs);
                return Err(self.start_failure(
                    key,
                    target,
                    started_ms,
                    format!("the agent exited with code {code} during initialization"),
                    &logs,
                ));
            }
            Err(StartFailure::NotStarted(e)) => {
                tracing::warn!(session = %key.session_id, runtime = %key.runtime_id, error = %e, "sandbox did not start");
                self.remember_failed_start(key, target, started_ms, format!("the sandbox did not start: {e}"));
                return Err(runtime_client_error(format!("Runtime initialization failed: {e}")));
            }
            Err(StartFailure::NoAgentPort { .. }) => return Err(Error::internal("sandbox has no agent port")),
            Err(StartFailure::NotReady { handle, capture, failure }) => {
                let logs = self.backend.logs(&handle.id, 40).await;
                let _ = self.backend.halt(&handle.id, Duration::ZERO).await;
                if let Some(c) = capture {
                    c.drained(Duration::from_secs(5)).await;
                }
                let _ = self.backend.stop(&handle.id, Duration::ZERO).await;
                self.directory.remove(&handle.id);
                let what = match failure.exit_code {
                    Some(code) => format!("the agent exited with code {code} during initialization"),
                    None => format!(
                        "the agent did not answer {} within {:?} (last probe: {})",
                        if target.protocol.has_ping() { "GET /ping with 200" } else { "on its port" },
                        self.config.startup_timeout,
                        failure.last_probe_error
                    ),
                };
                return Err(self.start_failure(key, target, started_ms, what, &logs));
            }
        };
        let phases = StartPhases {
            warm_spare: false,
            sandbox_created_ms: ready.handle.timings.created.map(|d| session::millis(called + d)),
            sandbox_started_ms: ready.handle.timings.started.map(|d| session::millis(called + d)),
            agent_ready_ms: Some(session::millis(began.elapsed())),
            first_response_ms: None,
        };
        Ok((ready, capture, phases))
    }

    /// The RuntimeClientError of a failed start: AWS's message, then what happened and the agent's
    /// last output (also logged, so nobody has to go looking).
    fn start_failure(
        &self,
        key: &SessionKey,
        target: &InvocationTarget,
        started_ms: i64,
        what: String,
        logs: &str,
    ) -> Error {
        self.remember_failed_start(key, target, started_ms, what.clone());
        tracing::warn!(
            session = %key.session_id,
            runtime = %key.runtime_id,
            version = target.version,
            "session failed to start: {what}; last agent output:\n{}",
            logs.trim_end()
        );
        runtime_client_error(format!(
            "{INIT_TIMEOUT_MESSAGE}\n\nagentcore-local: {what}. Last agent output:\n{}",
            last_lines(logs, 20)
        ))
    }

    /// Stop a sandbox in the background (tracked, so shutdown waits for it); forgets any claim.
    fn stop_in_background(self: &Arc<Self>, sandbox_id: String) {
        self.stop_sandbox_in_background(sandbox_id, None)
    }

    /// Record an ended session at once (it leaves the live table now), take its final usage, then
    /// stop it like any sandbox.
    fn stop_session_in_background(self: &Arc<Self>, session: Arc<Session>) {
        // While the agent still answers (see `AgentClient::close_idle`).
        session.agent.close_idle();
        self.remember_ended(&session, None);
        let this = self.clone();
        let mut stopping = self.stopping.lock();
        while stopping.try_join_next().is_some() {}
        stopping.spawn(async move {
            let stats = this.backend.stats(&session.sandbox.id).await;
            this.update_ended_usage(&session, stats);
            this.stop_sandbox_in_background(session.sandbox.id.clone(), session.take_capture());
        });
    }

    /// Stop, let the capture store the last output, then remove the sandbox.
    fn stop_sandbox_in_background(self: &Arc<Self>, sandbox_id: String, capture: Option<capture::CaptureHandle>) {
        let (backend, control, grace) = (self.backend.clone(), self.control.clone(), self.config.stop_grace);
        let weak = Arc::downgrade(self);
        let mut stopping = self.stopping.lock();
        while stopping.try_join_next().is_some() {}
        stopping.spawn(async move {
            if let Some(capture) = capture {
                if let Err(e) = backend.halt(&sandbox_id, grace).await {
                    tracing::debug!(sandbox = %sandbox_id, error = %e, "stop before removal failed");
                }
                capture.drained(Duration::from_secs(5)).await;
            }
            if let Err(e) = backend.stop(&sandbox_id, grace).await {
                tracing::warn!(sandbox = %sandbox_id, error = %e, "could not stop sandbox");
            }
            let _ = control.forget_claim(sandbox_id.clone()).await;
            if let Some(this) = weak.upgrade() {
                this.directory.remove(&sandbox_id);
                this.mark_removed(&sandbox_id);
            }
        });
    }

    /// Remember that `mcp_session_id` belongs to a runtime session (the agent issued it).
    pub fn remember_mcp_session(&self, runtime_id: &str, mcp_session_id: &str, session_id: &str) {
        self.table().mcp.insert((runtime_id.to_string(), mcp_session_id.to_string()), session_id.to_string());
    }

    /// The runtime session an MCP client means when it sends only `Mcp-Session-Id`: the session
    /// that issued it, else the id itself when it names a live session (stateless servers echo the
    /// runtime session id the emulator handed out).
    pub fn session_for_mcp(&self, runtime_id: &str, mcp_session_id: &str) -> Option<String> {
        let issued = self.table().mcp.get(&(runtime_id.to_string(), mcp_session_id.to_string())).cloned();
        if issued.is_some() {
            return issued;
        }
        self.live()
            .iter()
            .any(|s| s.key.runtime_id == runtime_id && s.key.session_id == mcp_session_id)
            .then(|| mcp_session_id.to_string())
    }

    /// Any live session of a runtime version (GetAgentCard reads static metadata from it).
    pub fn any_live(&self, runtime_id: &str, version: u32) -> Option<Arc<Session>> {
        self.live().into_iter().find(|s| s.key.runtime_id == runtime_id && s.target.version == version)
    }

    /// End a session: drop it from the table now (the next request with its id starts fresh),
    /// stop its sandbox in the background. Returns false if it had already ended.
    pub fn end(self: &Arc<Self>, session: &Arc<Session>, reason: EndReason) -> bool {
        if !session.mark_ended(reason.clone()) {
            return false;
        }
        {
            let mut table = self.table();
            table.remove_slot(&session.key, session.slot_id);
            table.mcp.retain(|(runtime, _), id| !(runtime == &session.key.runtime_id && id == &session.key.session_id));
        }
        tracing::info!(
            session = %session.key.session_id,
            runtime = %session.key.runtime_id,
            invocations = session.invocations(),
            lived_ms = session.started_at.elapsed().as_millis() as u64,
            "session ended: {}",
            reason.describe()
        );
        self.stop_session_in_background(session.clone());
        true
    }

    /// Sessions that are up (started and not ended).
    /// Sessions whose sandbox is still starting, with the target and start time of each.
    fn starting(&self) -> Vec<(SessionKey, InvocationTarget, Instant, i64)> {
        self.table()
            .slots
            .iter()
            .filter(|(_, slot)| slot.start.peek().is_none())
            .map(|(key, slot)| (key.clone(), slot.target.clone(), slot.began, slot.started_at_ms))
            .collect()
    }

    pub fn live(&self) -> Vec<Arc<Session>> {
        let slots: Vec<Arc<Slot>> = self.table().slots.values().cloned().collect();
        slots
            .iter()
            .filter_map(|s| s.start.peek().and_then(|r| r.as_ref().ok()).cloned())
            .filter(|s| s.ended().is_none())
            .collect()
    }

    /// StopRuntimeSession.
    pub fn stop(self: &Arc<Self>, runtime_id: &str, session_id: &str) -> Result<()> {
        let session = self
            .live()
            .into_iter()
            .find(|s| s.key.runtime_id == runtime_id && s.key.session_id == session_id)
            .ok_or_else(|| {
                Error::not_found(format!("No active runtime session '{session_id}' for agent runtime '{runtime_id}'."))
            })?;
        self.end(&session, EndReason::Stopped);
        Ok(())
    }

    /// End the sessions of a runtime (or one version of it) and wait until their sandboxes are gone.
    pub async fn retire(self: &Arc<Self>, runtime_id: &str, version: Option<u32>) {
        self.drain_pool(Some(runtime_id), version);
        self.wait_for_fills().await;
        for s in self.live() {
            if s.key.runtime_id == runtime_id && version.is_none_or(|v| v == s.target.version) {
                self.end(&s, EndReason::RuntimeDeleted);
            }
        }
        self.wait_for_stops().await;
    }

    /// Wait until every sandbox being stopped is gone.
    pub async fn wait_for_stops(&self) {
        // A finishing stop may queue another (final usage first, then the stop itself): repeat
        // until nothing is left.
        loop {
            let mut stopping = std::mem::take(&mut *self.stopping.lock());
            if stopping.is_empty() {
                return;
            }
            while stopping.join_next().await.is_some() {}
        }
    }

    /// At shutdown: stop every sandbox unless `keep_sessions`.
    pub async fn shutdown(self: &Arc<Self>) {
        self.drain_pool(None, None);
        self.wait_for_fills().await;
        self.backend.shutdown().await;
        if self.config.keep_sessions {
            self.wait_for_stops().await;
            tracing::info!(sessions = self.live().len(), "leaving sessions running (--keep-sessions)");
            return;
        }
        let live = self.live();
        for s in &live {
            self.end(s, EndReason::Shutdown);
        }
        // Starts still in flight finish first, then their sandboxes are stopped too.
        let starting: Vec<Arc<Slot>> = self.table().slots.values().cloned().collect();
        for slot in starting {
            if let Ok(s) = slot.start.clone().await {
                self.end(&s, EndReason::Shutdown);
            }
        }
        self.drain_pool(None, None);
        self.wait_for_fills().await;
        self.wait_for_stops().await;
        tracing::info!(stopped = live.len(), "all sandboxes stopped");
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
