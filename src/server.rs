//! The listener: accepts connections, serves them with `front_door::handle`, shuts down gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SandboxKind};
use crate::front_door::{self, AppState};
use crate::kernel::store::{IntegrityCheck, OpenError, Store};
use crate::sandbox::docker::DockerBackend;
use crate::sandbox::microvm::{self, host::Host, MicrovmBackend};
use crate::sandbox::SandboxBackend;
use crate::services::bedrock::Bedrock;
use crate::services::identity::IdentityService;
use crate::services::memory::MemoryService;
use crate::services::runtime::domain::{ControlPlane, Provisioner};
use crate::services::runtime::prepare::provisioner::{ControlPlaneOnly, SandboxProvisioner};
use crate::services::s3::objects::Objects;
use crate::services::sts::credentials::keys::CredentialKey;
use crate::services::sts::credentials::Issuer;
use crate::serving::ServingThreads;
use crate::sessions::Sessions;
use crate::state_dir::StateDir;

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] OpenError),
    #[error("cannot listen on {addr}: {source} (is another agentcore-local running? choose another --listen)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    ModelProvider(String),
    #[error("cannot prepare the object store{}: {source}", dir.as_ref().map(|d| format!(" under {}", d.display())).unwrap_or_default())]
    Objects { dir: Option<std::path::PathBuf>, source: std::io::Error },
    #[error(transparent)]
    Memory(#[from] crate::services::memory::SchemaError),
    #[error("cannot open the Identity token vault: {0}")]
    Identity(String),
    #[error("cannot prepare temporary credentials: {0}")]
    CredentialKey(std::io::Error),
    #[error("cannot start the threads that serve connections: {0}")]
    Threads(std::io::Error),
}

/// Code deployments read their zips from the embedded S3.
struct ObjectsAsCode(Objects);

impl crate::services::runtime::prepare::provisioner::CodeSource for ObjectsAsCode {
    fn fetch<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<std::path::PathBuf, String>> {
        Box::pin(async move {
            self.0.object_file(account, bucket, key, version_id).await.map(|f| f.path).map_err(|e| e.message)
        })
    }
}

/// Where a start-up's time went: each step's duration, in order, from the start of `start`.
/// Logged with the ready line, so a slow start says which step made it slow.
#[derive(Debug, Clone)]
pub struct StartupPhases {
    began: std::time::Instant,
    last: std::time::Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl StartupPhases {
    fn begin() -> StartupPhases {
        let now = std::time::Instant::now();
        StartupPhases { began: now, last: now, steps: Vec::new() }
    }

    /// Closes the step that ran since the previous mark.
    fn mark(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }

    /// From the start of `start` to the last mark.
    pub fn total(&self) -> Duration {
        self.last - self.began
    }
}

impl std::fmt::Display for StartupPhases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (step, took)) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{step} {:.1} ms", took.as_secs_f64() * 1e3)?;
        }
        Ok(())
    }
}

pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    /// What each step of this start took.
    pub phases: StartupPhases,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stop accepting, let in-flight requests finish, stop background work, close the database.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Wait until the server stops by itself (it does not, unless shut down from elsewhere).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    pub fn shutdown_handle(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The emulator instance id: persisted with the data so a restarted emulator recognises (and
/// re-adopts) the sandboxes it started before; random for in-memory state.
async fn instance_id(store: &Store) -> String {
    let fresh = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    store
        .write(move |tx| match tx.meta("instance_id")? {
            Some(id) => Ok(id),
            None => {
                tx.set_meta("instance_id", &fresh)?;
                Ok(fresh)
            }
        })
        .await
        .unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string()[..12].to_string())
}

/// Memory's extraction runs its prompts on Bedrock's provider (the two services meet here, in the
/// composition root, so neither depends on the other).
struct ExtractionModel(Arc<Bedrock>);

impl crate::services::memory::MemoryModel for ExtractionModel {
    fn complete<'a>(
        &'a self,
        request: crate::services::memory::ModelRequest<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<String, String>> {
        Box::pin(self.0.complete("MemoryExtraction", request.model_id, request.system, request.prompt))
    }
}

/// The sandbox backend `kind` asks for, said once in the log (the microVM accelerator too).
/// `auto` takes a microVM only where KVM truly works; under QEMU's emulator only when asked.
fn backend(kind: SandboxKind) -> Option<Arc<dyn SandboxBackend>> {
    let microvm = |host: Host| {
        let backend = MicrovmBackend::new(host, microvm::default_root());
        tracing::info!(accel = backend.accel().as_str(), "sessions run in QEMU microVMs");
        if let Some(why) = backend_missing(&backend) {
            tracing::warn!("{why}");
        }
        Some(Arc::new(backend) as Arc<dyn SandboxBackend>)
    };
    match kind {
        SandboxKind::None => None,
        SandboxKind::Docker => Some(Arc::new(DockerBackend::new())),
        SandboxKind::Microvm => microvm(Host::detect()),
        SandboxKind::Auto => {
            let host = Host::detect();
            if host.ready() && host.kvm.is_ok() {
                microvm(host)
            } else {
                let why = match &host.kvm {
                    Err(e) => format!("KVM is not usable: {e}"),
                    Ok(()) => host.missing_message(),
                };
                tracing::info!("sessions run in Docker containers (--sandbox auto: {why})");
                Some(Arc::new(DockerBackend::new()))
            }
        }
    }
}

fn backend_missing(backend: &MicrovmBackend) -> Option<String> {
    backend.missing().map(|m| format!("microVM sessions cannot start until this is fixed: {m}"))
}

/// How long after start-up the orphaned object files are looked for.
const ORPHAN_SCAN_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn start(mut config: Config) -> Result<RunningServer, StartError> {
    let mut phases = StartupPhases::begin();
    // First: a bad model script is the caller's mistake, reported before anything is opened.
    let bedrock = Arc::new(Bedrock::new(&config.model_provider).map_err(StartError::ModelProvider)?);
    tracing::info!(provider = %bedrock.describe(), "Bedrock model provider");
    phases.mark("model provider");
    // The sandbox backend is chosen, and asked where sandboxes reach the host (Docker: the
    // sandbox networks, found or created), while the database opens and is checked: these are
    // the slowest steps of a start-up and need nothing from each other.
    let kind = config.sandbox;
    let backend_ready = tokio::spawn(async move {
        // Detecting the microVM host may boot a KVM probe guest (up to its 10 s limit): off the
        // runtime's worker threads.
        let chosen = tokio::task::spawn_blocking(move || backend(kind))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let hosts = match &chosen {
            // Docker finds or creates the sandbox networks here.
            Some(backend) => {
                let asked = crate::sandbox::Egress::ALL.map(|egress| backend.host_address(egress));
                Some(futures_util::future::join_all(asked).await)
            }
            None => None,
        };
        (chosen, hosts)
    });
    let (store, integrity) = match &config.data_dir {
        Some(dir) => Store::open_checking_aside(dir)?,
        None => (Store::in_memory()?, IntegrityCheck::done()),
    };
    phases.mark("database open");
    // Started before anything serves: every connection, on either listener, is served on them.
    let serving = Arc::new(ServingThreads::start(config.serving_threads).map_err(StartError::Threads)?);
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let control = ControlPlane::new(store.clone());
    // Identity (its key vault and HTTP client), the object store's directories and Memory open
    // at once: each waits on files or the database, not on the others.
    let open_identity = async {
        let identity = IdentityService::open(store.clone(), config.data_dir.as_deref(), config.issuer.clone())
            .await
            .map_err(StartError::Identity)?;
        identity.set_listen_addr(addr);
        Ok::<_, StartError>(Arc::new(identity))
    };
    // Unpacked code, captured agent output and (in memory) object files live beside the database:
    // in a temporary directory of this emulator's, removed at shutdown, with --in-memory.
    let state_dir = StateDir::new(config.data_dir.as_deref(), &std::env::temp_dir())
        .map_err(|source| StartError::Objects { dir: config.data_dir.clone(), source })?;
    let open_objects = {
        let (store, dir) = (store.clone(), state_dir.path().to_path_buf());
        async move {
            tokio::task::spawn_blocking(move || {
                Objects::open(store, Some(&dir)).map_err(|source| StartError::Objects { dir: Some(dir), source })
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        }
    };
    // Extraction prompts go to the model provider; the echo would store the prompts themselves,
    // so with it extraction uses the deterministic rules.
    let extraction_model = bedrock
        .answers_prompts()
        .then(|| Arc::new(ExtractionModel(bedrock.clone())) as Arc<dyn crate::services::memory::MemoryModel>);
    let open_memory = async {
        MemoryService::open(store.clone(), config.memory.clone(), extraction_model).await.map_err(StartError::from)
    };
    let (identity, objects, memory) = tokio::join!(open_identity, open_objects, open_memory);
    let (identity, objects, memory) = (identity?, objects?, memory?);
    phases.mark("identity, objects, memory");
    // Object files of interrupted writes are removed in the background while the server already
    // serves (listing 10 000 files took a third of a populated start-up): the file store keeps
    // the names it places meanwhile out of the scan.
    let scanned = objects.clone();
    tokio::spawn(async move {
        // Not at once: on two cores the scan would compete with the database's integrity check
        // and the rest of start-up, the path to the first request.
        tokio::time::sleep(ORPHAN_SCAN_DELAY).await;
        if let Err(e) = scanned.remove_orphans().await {
            tracing::warn!(error = %e, "could not remove orphaned object files");
        }
        // Temporary directories of in-memory emulators that were killed (their lock is free).
        let removed = tokio::task::spawn_blocking(|| crate::state_dir::remove_abandoned(&std::env::temp_dir()));
        if let Ok(removed @ 1..) = removed.await {
            tracing::info!(removed, "removed the temporary directories of emulators that did not shut down");
        }
    });
    // Agent output (CloudWatch Logs) and the counters behind /metrics belong to the application:
    // sessions write into them, the logs service and the console read them.
    let logs = crate::services::logs::LogStore::new(state_dir.path().join("logs"), config.log_max_bytes_per_runtime);
    let observatory = Arc::new(crate::observe::Observatory::default());
    // Temporary credentials: the key that derives their secrets lives beside the database.
    let key = match &config.data_dir {
        Some(dir) => CredentialKey::load_or_create(dir).map_err(StartError::CredentialKey)?,
        None => CredentialKey::ephemeral(),
    };
    let credentials = Arc::new(Issuer::open(store.clone(), key, config.sessions.time_scale).await.map_err(|e| {
        StartError::CredentialKey(std::io::Error::other(format!("cannot load issued credentials: {e}")))
    })?);
    // Fresh for each server: a Config reused for a second start must not see the first one's.
    config.issued_credentials = Default::default();
    config.issued_credentials.install(credentials.clone());
    phases.mark("logs and credentials");
    // The database's integrity check ran beside the steps above, which only read it (or repair
    // a crash's leftovers); sandboxes are re-adopted and requests served only once it passed.
    tokio::task::spawn_blocking(move || integrity.wait()).await.map_err(|e| OpenError::Corrupt {
        path: store.path().map(std::path::Path::to_path_buf).unwrap_or_default(),
        detail: format!("its check did not finish: {e}"),
    })??;
    phases.mark("integrity check (rest)");
    let mut sandbox_listeners = Vec::new();
    let (chosen, hosts) = backend_ready.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    phases.mark("sandbox backend (rest)");
    let (sessions, provisioner): (Option<Arc<Sessions>>, Arc<dyn Provisioner>) = match (chosen, hosts) {
        (Some(backend), Some(hosts)) => {
            let instance = instance_id(&store).await;
            let mut session_config = config.sessions.clone();
            session_config.persistent = config.data_dir.is_some();
            let logs = Some(logs.clone());
            let sessions =
                Arc::new(Sessions::new(backend, control.clone(), session_config, instance, logs, observatory.clone()));
            sessions.set_emulator_url(format!("http://{addr}"));
            phases.mark("sessions");
            sandbox_listeners = crate::sandbox_door::open(hosts, &store, addr.port()).await;
            phases.mark("sandbox listeners");
            for (egress, listener) in &sandbox_listeners {
                if let Ok(bound) = listener.local_addr() {
                    sessions.set_sandbox_url(*egress, sessions.sandbox_url_for(bound));
                }
            }
            sessions.recover(&control).await;
            phases.mark("re-adoption");
            sessions.spawn_pool_janitor();
            let provisioner = SandboxProvisioner::new(sessions.clone())
                .with_code(Arc::new(ObjectsAsCode(objects.clone())), state_dir.path().join("code"));
            (Some(sessions), Arc::new(provisioner))
        }
        _ => (None, Arc::new(ControlPlaneOnly)),
    };
    let reconciler = control.reconciler(provisioner);
    let logs = sessions.as_ref().map(|_| logs);
    // One token stops everything: listeners, the reconciler, Memory's background loops, the
    // dashboard's event streams.
    let shutdown = CancellationToken::new();
    let event_streams =
        Arc::new(tokio::sync::Semaphore::new(crate::console::max_event_streams(config.max_connections)));
    let state = Arc::new(AppState {
        config,
        control,
        sessions: sessions.clone(),
        objects,
        logs,
        observatory,
        memory: memory.clone(),
        bedrock,
        identity,
        credentials,
        event_streams,
        stopping: shutdown.clone(),
    });
    let memory_tasks = memory.spawn_background(shutdown.clone());
    // A crash between a runtime's commit and its workload identity's is repaired once the server
    // serves (past the integrity check): with 1 000 runtimes the check took 3-5 ms of a 9 ms
    // start-up. It reads and repairs in one write transaction, so requests served meanwhile
    // never see it half done.
    let repair = state.identity.clone();
    let repair_task = tokio::spawn(async move {
        match repair.sync_runtime_workloads(crate::services::runtime::domain::ControlPlane::live_runtime_keys).await {
            Ok(0) => {}
            Ok(repaired) => tracing::info!(repaired, "repaired the runtimes' workload identities after a crash"),
            Err(e) => tracing::warn!(error = %e, "could not reconcile the runtimes' workload identities"),
        }
    });

    let reconciler_task = tokio::spawn(reconciler.run(shutdown.clone().cancelled_owned()));
    for (_, listener) in sandbox_listeners {
        tokio::spawn(accept_loop(listener, state.clone(), serving.clone(), shutdown.clone(), async {}, true));
    }
    let stopping_serving = serving.clone();
    let task = tokio::spawn(accept_loop(
        listener,
        state.clone(),
        serving,
        shutdown.clone(),
        async move {
            if let Some(sessions) = sessions {
                sessions.shutdown().await;
            }
            let _ = reconciler_task.await;
            let _ = repair_task.await;
            for task in memory_tasks {
                let _ = task.await;
            }
            // Last of the work: what requests spawned (supervisors, log captures) runs there
            // and had to see its sessions stopped first.
            stopping_serving.stop().await;
            store.close_cleanly();
            drop(state_dir);
        },
        false,
    ));
    phases.mark("listening");
    Ok(RunningServer { addr, state, phases, shutdown, task })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    serving: Arc<ServingThreads>,
    shutdown: CancellationToken,
    on_stopped: impl std::future::Future<Output = ()>,
    // The sandboxes' listener: requests are marked with the sandbox address they come from.
    from_sandboxes: bool,
) {
    // Every connection task holds a clone of `alive`; when all are dropped, all connections are done.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    // One permit per open connection (as mini-redis caps its connections): past the cap a client
    // gets a 503 at once instead of a descriptor the process may not have.
    let max_connections = state.config.max_connections.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max_connections, "connection refused: too many open connections");
                    tokio::spawn(refuse_connection(stream, max_connections));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let Ok(local) = stream.local_addr() else { continue };
                // Handed over as a plain socket: `serve_connection` registers it with the reactor of
                // the serving thread it first runs on.
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, %peer, "could not hand the connection to a serving thread");
                        continue;
                    }
                };
                let state = state.clone();
                let stop = shutdown.clone();
                let alive = alive.clone();
                serving.serve(serve_connection(stream, peer, local, state, stop, alive, permit, from_sandboxes));
            }
            _ = shutdown.cancelled() => break,
        }
    }
    drop(listener);
    drop(alive);
    tokio::select! {
        _ = all_closed.recv() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them"),
    }
    on_stopped.await;
}

/// Serves one client connection to its end, on the serving thread it was given to.
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: std::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<AppState>,
    stop: CancellationToken,
    // Held until the connection ends: the accept loop waits for every clone to drop at shutdown.
    _alive: tokio::sync::mpsc::Sender<()>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    from_sandboxes: bool,
) {
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, %peer, "could not serve the connection");
            return;
        }
    };
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        req.extensions_mut().insert(crate::console::PeerAddr { peer, local });
        if from_sandboxes {
            req.extensions_mut().insert(front_door::FromSandbox(peer.ip()));
        }
        async move { Ok::<_, Infallible>(front_door::handle(state, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            // Finish the request in flight, then close instead of keeping the connection alive.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Answer a connection over the cap with AWS's 503 shape and close it. The request is not read:
/// the answer must not depend on a client that may be the one stalling.
async fn refuse_connection(mut stream: tokio::net::TcpStream, max_connections: usize) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::json!({
        "__type": "ServiceUnavailableException",
        "message": format!(
            "agentcore-local is serving its maximum of {max_connections} open connections; retry, close idle \
             connections, or raise --max-connections."
        ),
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         x-amzn-ErrorType: ServiceUnavailableException\r\nRetry-After: 1\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
