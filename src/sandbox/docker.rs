//! The Docker backend: one container per sandbox, through the Docker Engine API (bollard).
//!
//! Containers join one of two emulator-owned bridge networks, both with inter-container
//! communication disabled so sessions cannot reach each other: `NETWORK` routes out of the host
//! (`Egress::Internet`), `PRIVATE_NETWORK` is a Docker *internal* network with no route out
//! (`Egress::EmulatorOnly`), where a container reaches only the host's address on that bridge, on
//! which the emulator listens for sandboxes. The emulator reaches a container at its bridge
//! address, which only this host can route to, whenever this host owns the network's gateway
//! address (Linux, and an emulator in a container with `--network host`): then nothing is
//! published, so no Docker userland proxy is started per session or sits in every invocation's
//! path. Where the bridge is not this host's (Docker Desktop's VM), ports are published on
//! 127.0.0.1 only (Docker publishes nothing from an internal network). Each container runs with
//! every capability dropped, no-new-privileges, an init process (signals and zombies handled for
//! the agent), and pids, memory and CPU limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use super::attached::{Attached, Taken};
use super::output_client::Daemon;
use super::{
    image, labels, Egress, Exec, ExecOutput, OwnedSandbox, SandboxBackend, SandboxError, SandboxHandle, SandboxSpec,
    SandboxState, StartTimings,
};
use futures_util::future::BoxFuture;

/// The bridge network of sandboxes that may reach the internet.
pub const NETWORK: &str = "agentcore-local-sandboxes";
/// The internal network of sandboxes that reach only the emulator.
pub const PRIVATE_NETWORK: &str = "agentcore-local-sandboxes-private";
/// The label that keeps a sandbox's agent ports when it joined a holder's namespace (comma
/// separated): such a container exposes none, and `list_owned` needs them after a restart.
const JOINED_PORTS: &str = "agentcore-local.joined-ports";

/// The log driver a sandbox's output goes to, whatever the daemon's default: Docker's `local`
/// driver. The emulator reads a sandbox's output back from Docker where its attach stream cannot
/// (`attached`: a spare that printed too much before it was claimed, a `DOCKER_HOST` of another
/// scheme) and for a failed start's last lines, so the driver must be one Docker can read;
/// `local` keeps at most 100 MB per container (five files of 20 MB, the older ones compressed),
/// where the usual default, `json-file`, keeps everything an agent prints for as long as its
/// session lives; and it costs Docker less CPU per line than `json-file` (measured with one
/// container printing a line per request: 28-32 us per line against 35-39 us; 22-24 us with no
/// log kept at all).
const LOG_DRIVER: &str = "local";

/// Starts retried while a concurrent emulator's duplicate sandbox network is being removed.
const AMBIGUOUS_NETWORK_RETRIES: usize = 10;

/// A host-wide lock around finding or creating the sandbox networks. Without it, two emulators
/// starting at once (a test suite's workers) could each see no network, each create one, and the
/// one that chose from an incomplete listing would then lose its network to the other's clean-up
/// ("network ... not found" at its next start). Docker offers no atomic create-if-absent for
/// networks (names are not unique), so the lock is a file every emulator on the host can open.
struct NetworkLock(Option<std::fs::File>);

impl NetworkLock {
    /// Waits for the lock; if the lock file cannot be used (a read-only /tmp), goes on without it,
    /// leaving the duplicate clean-up in `network` as the only guard.
    async fn acquire() -> NetworkLock {
        let path = std::env::temp_dir().join("agentcore-local-docker-networks.lock");
        let locked = tokio::task::spawn_blocking(move || {
            // Another user's emulator may have made the file: a lock needs no write access.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .or_else(|_| std::fs::File::open(&path))?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await;
        match locked {
            Ok(Ok(file)) => NetworkLock(Some(file)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot take the sandbox networks' lock file; creating without it");
                NetworkLock(None)
            }
            Err(_) => NetworkLock(None),
        }
    }
}

impl Drop for NetworkLock {
    fn drop(&mut self) {
        if let Some(file) = self.0.take() {
            let _ = file.unlock();
        }
    }
}

/// How long an image pull may take before the version fails.
const PULL_TIMEOUT: Duration = Duration::from_secs(120);

pub struct DockerBackend {
    docker: Result<Docker, String>,
    /// Follows sandboxes' output, paced (`output_client`); `None` where `DOCKER_HOST`'s scheme
    /// needs the ordinary client.
    output: Option<Docker>,
    /// Ids of the sandbox networks, by `Egress::ALL` index (ids, not names: concurrent creators
    /// can make duplicates).
    network_ids: [OnceCell<String>; 2],
    /// Whether this host routes to containers' bridge addresses on each sandbox network, by
    /// `Egress::ALL` index (see `reached_at_address`).
    routable: [OnceCell<bool>; 2],
    /// The sandbox networks' names, by `Egress::ALL` index: `NETWORK` and `PRIVATE_NETWORK`
    /// (tests race for networks of their own names).
    network_names: [String; 2],
    /// Network namespaces made ahead of time (`holders`): a sandbox joins a ready one instead of
    /// having Docker attach it to the network while the session waits.
    holders: std::sync::Arc<super::holders::Holders>,
    /// Where attach streams connect (`attached`); `None` where `DOCKER_HOST`'s scheme needs
    /// bollard's own transport, and output is followed through Docker's log instead.
    daemon: Option<Daemon>,
    /// Sandboxes' output streams attached before they started, until their output is taken
    /// (`follow_output`) or they are removed.
    attached: parking_lot::Mutex<HashMap<String, Attached>>,
}

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// The pauses between tries of a forced removal (a fourth failure is given up on, and logged).
const REMOVAL_PAUSES: [Duration; 3] = [Duration::from_millis(100), Duration::from_millis(500), Duration::from_secs(2)];

/// Runs `attempt` until it succeeds, pausing between tries; after the last pause's try fails,
/// the number of tries and the last error.
async fn retry_removal<F, Fut, E>(pauses: &[Duration], mut attempt: F) -> Result<(), (usize, E)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut tries = 0;
    let mut pauses = pauses.iter();
    loop {
        tries += 1;
        let error = match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match pauses.next() {
            Some(pause) => tokio::time::sleep(*pause).await,
            None => return Err((tries, error)),
        }
    }
}

/// Docker's 409 for a container another request is already removing.
fn removal_in_progress(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 409, message }
        if message.contains("already in progress"))
}

impl DockerBackend {
    /// Does not contact Docker yet; the first operation does, and says clearly if it cannot.
    pub fn new() -> DockerBackend {
        let docker =
            Docker::connect_with_defaults().map_err(|e| format!("cannot use Docker at {}: {e}", docker_host()));
        DockerBackend {
            docker,
            output: super::output_client::paced_client(&docker_host(), super::OUTPUT_PACE),
            network_ids: [OnceCell::new(), OnceCell::new()],
            routable: [OnceCell::new(), OnceCell::new()],
            network_names: [NETWORK.to_string(), PRIVATE_NETWORK.to_string()],
            holders: Default::default(),
            daemon: Daemon::parse(&docker_host()),
            attached: Default::default(),
        }
    }

    fn network_name(&self, egress: Egress) -> &str {
        &self.network_names[egress.index()]
    }

    fn client(&self) -> Result<&Docker, SandboxError> {
        self.docker.as_ref().map_err(|e| SandboxError::Unavailable(e.clone()))
    }

    fn unavailable(e: bollard::errors::Error) -> SandboxError {
        SandboxError::Unavailable(format!(
            "Docker is not reachable at {} ({e}). Start the Docker daemon or set DOCKER_HOST.",
            docker_host()
        ))
    }

    /// The id of the sandbox network for `egress`, creating the network if needed. Docker allows
    /// several networks with one name when two emulators create it at once (and then refuses to
    /// start containers on either: "is ambiguous"), so emulators on one host look and create under
    /// a host-wide file lock (`NetworkLock`): the first creates, the others find its network.
    /// Copies left without the lock (an emulator in another mount namespace, an older version)
    /// are removed, every process keeping the oldest.
    async fn network(&self, egress: Egress) -> Result<String, SandboxError> {
        let docker = self.client()?;
        let name = self.network_name(egress);
        let slot = &self.network_ids[egress.index()];
        slot.get_or_try_init(|| async {
            docker.ping().await.map_err(Self::unavailable)?;
            // Held until the network is chosen and its copies removed.
            let _lock = NetworkLock::acquire().await;
            let mut ids = Self::network_ids(docker, name).await?;
            if ids.is_empty() {
                let request = NetworkCreateRequest {
                    name: name.to_string(),
                    driver: Some("bridge".into()),
                    // No route out of the host: Docker drops whatever an internal bridge forwards.
                    internal: Some(egress == Egress::EmulatorOnly),
                    labels: Some(HashMap::from([(labels::MANAGED.to_string(), "true".to_string())])),
                    options: Some(HashMap::from([(
                        "com.docker.network.bridge.enable_icc".to_string(),
                        "false".to_string(),
                    )])),
                    ..Default::default()
                };
                docker
                    .create_network(request)
                    .await
                    .map_err(|e| SandboxError::Failed(format!("cannot create Docker network {name}: {e}")))?;
                ids = Self::network_ids(docker, name).await?;
            }
            let chosen =
                ids.first().cloned().ok_or_else(|| SandboxError::Failed(format!("Docker network {name} vanished")))?;
            // Our own younger copy, and any left by an earlier race: while two exist Docker starts
            // nothing on either. One still in use (by an older emulator's sandboxes) stays, and
            // starts are retried meanwhile.
            for younger in ids.iter().skip(1) {
                if let Err(e) = docker.remove_network(younger).await {
                    tracing::warn!(network = name, id = %younger, error = %e, "cannot remove a duplicate sandbox network");
                }
            }
            Ok(chosen)
        })
        .await
        .cloned()
    }

    async fn network_ids(docker: &Docker, name: &str) -> Result<Vec<String>, SandboxError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let options = bollard::query_parameters::ListNetworksOptions { filters: Some(filters) };
        let networks = docker.list_networks(Some(options)).await.map_err(Self::unavailable)?;
        let mut found: Vec<(i128, String)> = networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| Some((created_ns(n.created.as_deref()), n.id?)))
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    async fn pull(&self, docker: &Docker, reference: &str) -> Result<(), String> {
        let options = CreateImageOptions { from_image: Some(reference.to_string()), ..Default::default() };
        let pull = async {
            let mut stream = docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                item.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(PULL_TIMEOUT, pull).await.map_err(|_| "the pull timed out".to_string())?
    }

    /// Where each of the container's ports is reached from this host: its own bridge address
    /// when `at_address`, else its 127.0.0.1 binding.
    fn ports_of(inspect: &bollard::models::ContainerInspectResponse, at_address: bool) -> HashMap<u16, SocketAddr> {
        let networks = inspect.network_settings.as_ref().and_then(|n| n.networks.as_ref());
        if let (true, Some(address)) = (at_address, Self::address_of(networks)) {
            let exposed = inspect.config.as_ref().and_then(|c| c.exposed_ports.as_ref());
            return exposed
                .into_iter()
                .flat_map(|ports| ports.keys())
                .filter_map(|key| key.split('/').next()?.parse::<u16>().ok())
                .map(|port| (port, SocketAddr::new(address, port)))
                .collect();
        }
        let mut out = HashMap::new();
        let ports = inspect.network_settings.as_ref().and_then(|n| n.ports.as_ref());
        for (key, bindings) in ports.into_iter().flatten() {
            let Some(container_port) = key.split('/').next().and_then(|p| p.parse::<u16>().ok()) else { continue };
            let binding = bindings.iter().flatten().find(|b| b.host_ip.as_deref() == Some("127.0.0.1"));
            if let Some(port) = binding.and_then(|b| b.host_port.as_deref()).and_then(|p| p.parse::<u16>().ok()) {
                out.insert(container_port, SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
        out
    }

    /// Whether the emulator reaches this network's containers at their own bridge addresses,
    /// publishing nothing. Always on the internal network (Docker publishes nothing from it).
    /// On the other, when this host owns the network's gateway address, which is what makes the
    /// bridge routable from here: Linux, yes; Docker Desktop, whose bridges live in its VM, no.
    /// Asked once: a bind to the gateway address succeeds only on an address the host owns.
    async fn reached_at_address(&self, egress: Egress) -> bool {
        if egress == Egress::EmulatorOnly {
            return true;
        }
        *self.routable[egress.index()]
            .get_or_init(|| async {
                let gateway = self.host_address(egress).await;
                let owned = gateway.as_ref().is_ok_and(|g| std::net::TcpListener::bind((*g, 0)).is_ok());
                if !owned {
                    tracing::info!(gateway = ?gateway.ok(), "the sandbox network is not routable from here; agent ports are published on 127.0.0.1");
                }
                owned
            })
            .await
    }

    /// A container's address on its sandbox network (its only network).
    fn address_of(networks: Option<&HashMap<String, bollard::models::EndpointSettings>>) -> Option<IpAddr> {
        networks?.values().find_map(|n| n.ip_address.as_deref().and_then(|a| a.parse().ok()))
    }

    /// Attaches to a created container's output before it starts, so that its first line is
    /// read too (see `attached`). Without an attach stream its output is followed through
    /// Docker's log, as before: slower, but nothing is lost.
    async fn attach_output(&self, id: &str) {
        let Some(daemon) = &self.daemon else { return };
        match Attached::attach(daemon, id).await {
            Ok(attached) => {
                self.attached.lock().insert(id.to_string(), attached);
            }
            Err(e) => {
                tracing::info!(container = id, error = %e, "could not attach to the sandbox's output; it is read from Docker's log instead")
            }
        }
    }

    /// Removes a sandbox's container and the network holder it joined, if any.
    async fn remove(&self, docker: &Docker, id: &str) {
        self.attached.lock().remove(id);
        Self::remove_container(docker, id).await;
        // The holder goes with its sandbox: no other sandbox may ever join its namespace.
        if let Some(holder) = self.holders.release(id) {
            Self::remove_container(docker, &holder).await;
        }
    }

    /// After a spare could not be joined: whatever made it unusable (removed by hand, a daemon
    /// restart) may have done the same to the others, and a dead spare kept counts as ready, so
    /// that no live one is made in its place. Those no longer running go; a fill replaces them.
    /// (The join can also fail for the sandbox's own reasons, a command not found: then the
    /// spares run, and stay.)
    async fn prune_spares(&self, docker: &Docker, network: &str) {
        for spare in self.holders.spares(network) {
            if !matches!(self.state(&spare).await, SandboxState::Running) && self.holders.forget(network, &spare) {
                Self::remove_container(docker, &spare).await;
            }
        }
        self.holders.refill(docker.clone(), network.to_string());
    }

    /// Removes a container (a sandbox, or a network holder) by force, retrying: a forced removal
    /// can fail for a moment (the kernel still tearing down the container's mounts or network
    /// namespace: "device or resource busy"), and a removal that fails for good leaves a
    /// session's sandbox running with nobody to stop it.
    pub(super) async fn remove_container(docker: &Docker, id: &str) {
        let attempt = move || async move {
            let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            match docker.remove_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                // Gone already, or another request is removing it ("already in progress"): done.
                Err(e) if is_not_found(&e) || removal_in_progress(&e) => Ok(()),
                Err(e) => Err(e),
            }
        };
        if let Err((tries, error)) = retry_removal(&REMOVAL_PAUSES, attempt).await {
            tracing::warn!(
                container = id,
                error = %error,
                "could not remove the container after {tries} tries; `docker rm -f {id}` removes it"
            );
        }
    }
}

/// The create request of a sandbox's container: on `network`, or in `holder`'s namespace.
fn container_body(
    spec: &SandboxSpec,
    network: &str,
    at_address: bool,
    holder: Option<&super::holders::Holder>,
) -> ContainerCreateBody {
    let exposed: HashMap<String, HashMap<(), ()>> =
        spec.ports.iter().map(|p| (format!("{p}/tcp"), HashMap::new())).collect();
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|p| {
            let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
            (format!("{p}/tcp"), Some(vec![binding]))
        })
        .collect();
    let mut tmpfs = HashMap::new();
    if spec.read_only_root {
        tmpfs.insert("/tmp".to_string(), "rw,nosuid,size=1g".to_string());
    }
    let host_config = HostConfig {
        port_bindings: (!at_address).then_some(bindings),
        network_mode: Some(match holder {
            Some(h) => format!("container:{}", h.id),
            None => network.to_string(),
        }),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        init: Some(true),
        pids_limit: Some(spec.limits.pids),
        memory: Some(spec.limits.memory_bytes),
        // No swap beyond the limit: a session that passes it is killed and told so, as on
        // the service, instead of slowing down.
        memory_swap: Some(spec.limits.memory_bytes),
        nano_cpus: Some((spec.limits.cpus * 1e9).round() as i64),
        readonly_rootfs: Some(spec.read_only_root),
        log_config: Some(HostConfigLogConfig { typ: Some(LOG_DRIVER.into()), config: None }),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        binds: (!spec.mounts.is_empty()).then(|| {
            spec.mounts
                .iter()
                .map(|m| format!("{}:{}:{}", m.host_path, m.target, if m.read_only { "ro" } else { "rw" }))
                .collect()
        }),
        ..Default::default()
    };
    let mut container_labels = spec.labels.clone();
    if holder.is_some() {
        // A joined container exposes no ports (Docker refuses them): they are kept here,
        // for `list_owned` after a restart.
        let ports: Vec<String> = spec.ports.iter().map(u16::to_string).collect();
        container_labels.insert(JOINED_PORTS.to_string(), ports.join(","));
    }
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(container_labels),
        exposed_ports: holder.is_none().then_some(exposed),
        cmd: spec.command.clone(),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// A network's creation time (RFC 3339 with nanoseconds) as unix ns; unknown sorts last.
fn created_ns(created: Option<&str>) -> i128 {
    created
        .and_then(|c| aws_smithy_types::DateTime::from_str(c, aws_smithy_types::date_time::Format::DateTime).ok())
        .map(|t| t.secs() as i128 * 1_000_000_000 + t.subsec_nanos() as i128)
        .unwrap_or(i128::MAX)
}

/// `2026-11-26T15:15:16.336399123Z message` → the line with its time in unix ms.
fn parse_log_line(line: &str, stderr: bool) -> super::OutputLine {
    let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
    match aws_smithy_types::DateTime::from_str(stamp, aws_smithy_types::date_time::Format::DateTime) {
        Ok(t) => super::OutputLine { timestamp_ms: t.to_millis().unwrap_or(0), stderr, text: text.to_string() },
        Err(_) => super::OutputLine { timestamp_ms: crate::kernel::clock::now_ms(), stderr, text: line.to_string() },
    }
}

impl Default for DockerBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxBackend for DockerBackend {
    fn resolve_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let docker = self.client().map_err(|e| e.to_string())?;
            let candidates = image::local_candidates(reference);
            for candidate in &candidates {
                match docker.inspect_image(candidate).await {
                    Ok(found) => return Ok(found.id.unwrap_or_else(|| candidate.clone())),
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(Self::unavailable(e).to_string()),
                }
            }
            let pulled = self.pull(docker, reference).await;
            if pulled.is_ok() {
                if let Ok(found) = docker.inspect_image(reference).await {
                    return Ok(found.id.unwrap_or_else(|| reference.to_string()));
                }
            }
            let short = candidates.last().cloned().unwrap_or_else(|| reference.to_string());
            Err(format!(
                "Container image '{reference}' was not found in the local Docker image store (looked for {}) \
                 and pulling it failed ({}). Build or tag the image locally, e.g. `docker build -t {short} .` \
                 or `docker tag <your-image> {reference}`, then update the agent runtime.",
                candidates.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "),
                pulled.err().unwrap_or_else(|| "the image was not found after pulling".into())
            ))
        })
    }

    fn local_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let docker = self.client().map_err(|e| e.to_string())?;
            match docker.inspect_image(reference).await {
                Ok(found) => Ok(Some(found.id.unwrap_or_else(|| reference.to_string()))),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(Self::unavailable(e).to_string()),
            }
        })
    }

    fn start<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<SandboxHandle, SandboxError>> {
        Box::pin(async move {
            let network = self.network(spec.egress).await?;
            let at_address = self.reached_at_address(spec.egress).await;
            let docker = self.client()?;
            // Holders are reached at their address; where ports must be published, the sandbox
            // attaches its network itself (a joined container can publish nothing).
            let mut holder = if at_address { self.holders.take(&network) } else { None };
            if at_address {
                self.holders.refill(docker.clone(), network.clone());
            }
            let t0 = std::time::Instant::now();
            // A holder that cannot be joined (removed by hand, or dead) is removed and the sandbox
            // attaches its network itself: a missing spare never fails a session.
            let (id, mut started, t_created) = loop {
                let body = container_body(spec, &network, at_address, holder.as_ref());
                let options = CreateContainerOptions { name: Some(spec.name.clone()), ..Default::default() };
                let created = match docker.create_container(Some(options), body).await {
                    Ok(created) => created,
                    Err(e) => {
                        if let Some(h) = holder.take() {
                            tracing::info!(holder = %h.id, error = %e, "could not join a network holder; attaching the sandbox's network instead");
                            Self::remove_container(docker, &h.id).await;
                            self.prune_spares(docker, &network).await;
                            continue;
                        }
                        return Err(SandboxError::Failed(format!(
                            "creating the container from image {} failed: {e}",
                            spec.image
                        )));
                    }
                };
                let id = created.id;
                let t_created = t0.elapsed();
                if let Some(h) = &holder {
                    self.holders.bind(&id, &h.id);
                }
                self.attach_output(&id).await;
                let started =
                    docker.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>).await;
                if let (Err(e), true) = (&started, holder.is_some()) {
                    let joined = holder.take().map(|h| h.id);
                    tracing::info!(holder = ?joined, error = %e, "could not start in a network holder; attaching the sandbox's network instead");
                    // Removes the holder too (bound above).
                    self.remove(docker, &id).await;
                    self.prune_spares(docker, &network).await;
                    continue;
                }
                break (id, started, t_created);
            };
            // Another emulator's duplicate of the network exists for the moment it takes that
            // emulator to see ours is older and remove its own (see `network`).
            for _ in 0..AMBIGUOUS_NETWORK_RETRIES {
                match &started {
                    Err(e) if e.to_string().contains("is ambiguous") => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        started =
                            docker.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>).await;
                    }
                    _ => break,
                }
            }
            if let Err(e) = started {
                self.remove(docker, &id).await;
                return Err(SandboxError::Failed(format!("starting the container failed: {e}")));
            }
            let inspect =
                match docker.inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>).await {
                    Ok(i) => i,
                    Err(e) => {
                        self.remove(docker, &id).await;
                        return Err(SandboxError::Failed(format!("inspecting the new container failed: {e}")));
                    }
                };
            let t_started = t0.elapsed();
            let state = inspect.state.clone().unwrap_or_default();
            if !state.running.unwrap_or(false) {
                // Exited before we looked: Docker drops its port bindings, so report the exit itself.
                let logs = self.logs(&id, 40).await;
                self.remove(docker, &id).await;
                return Err(SandboxError::ExitedAtStart { code: state.exit_code.unwrap_or(-1), logs });
            }
            let (ports, address) = match &holder {
                Some(h) => (spec.ports.iter().map(|&p| (p, SocketAddr::new(h.address, p))).collect(), Some(h.address)),
                None => {
                    let networks = inspect.network_settings.as_ref().and_then(|n| n.networks.as_ref());
                    (Self::ports_of(&inspect, at_address), Self::address_of(networks))
                }
            };
            let pid = state.pid.and_then(|p| u32::try_from(p).ok()).filter(|p| *p > 0);
            tracing::debug!(
                container = %id,
                create_ms = t_created.as_millis() as u64,
                create_start_inspect_ms = t_started.as_millis() as u64,
                "container started"
            );
            if let Some(missing) = spec.ports.iter().find(|p| !ports.contains_key(p)) {
                self.remove(docker, &id).await;
                return Err(SandboxError::Failed(format!(
                    "Docker did not publish container port {missing} on 127.0.0.1 (or give the container an address)"
                )));
            }
            Ok(SandboxHandle {
                id,
                ports,
                address,
                netns_pid: if at_address { pid } else { None },
                timings: StartTimings { created: Some(t_created), started: Some(t_started) },
            })
        })
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, SandboxState> {
        Box::pin(async move {
            let Ok(docker) = self.client() else { return SandboxState::Missing };
            match docker.inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>).await {
                Ok(i) => {
                    let state = i.state.unwrap_or_default();
                    if state.running.unwrap_or(false) {
                        SandboxState::Running
                    } else {
                        SandboxState::Exited {
                            code: state.exit_code.unwrap_or(-1),
                            out_of_memory: state.oom_killed.unwrap_or(false),
                        }
                    }
                }
                Err(_) => SandboxState::Missing,
            }
        })
    }

    fn logs<'a>(&'a self, id: &'a str, lines: usize) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let Ok(docker) = self.client() else { return String::new() };
            let options = LogsOptions { stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
            let mut stream = docker.logs(id, Some(options));
            let mut out = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
            out
        })
    }

    fn follow_output<'a>(&'a self, id: &'a str, since_ms: i64) -> BoxFuture<'a, super::OutputStream> {
        Box::pin(async move {
            // From the start: the stream attached before the sandbox started, unless it printed
            // more than is held before anyone asked (then Docker's log has it all).
            let attached = if since_ms == 0 { self.attached.lock().remove(id) } else { None };
            match attached.map(Attached::take) {
                Some(Taken::Lines(lines)) => return lines,
                Some(Taken::LetGo) => tracing::info!(
                    container = id,
                    "the sandbox printed more before its output was taken than is held; reading it from Docker's log"
                ),
                None => {}
            }
            let Ok(docker) = self.client() else {
                return Box::pin(futures_util::stream::empty()) as super::OutputStream;
            };
            let docker = self.output.as_ref().unwrap_or(docker);
            let options = LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                timestamps: true,
                since: (since_ms / 1000) as i32,
                ..Default::default()
            };
            let raw = docker.logs(id, Some(options)).boxed();
            // Docker prefixes each line with an RFC 3339 timestamp; a chunk may hold several lines
            // or part of one, so lines are reassembled per stream.
            let lines = futures_util::stream::unfold(
                (raw, String::new(), String::new()),
                move |(mut raw, mut out, mut err)| async move {
                    loop {
                        match raw.next().await {
                            Some(Ok(chunk)) => {
                                let (is_err, bytes) = match chunk {
                                    bollard::container::LogOutput::StdErr { message } => (true, message),
                                    other => (false, other.into_bytes()),
                                };
                                let buf = if is_err { &mut err } else { &mut out };
                                buf.push_str(&String::from_utf8_lossy(&bytes));
                                // Each complete line is parsed where it lies, and the consumed
                                // text removed at once (a line drained into a String of its own
                                // went char by char: some 2 300 instructions a line).
                                let mut lines = Vec::new();
                                let mut consumed = 0;
                                while let Some(pos) = buf[consumed..].find('\n') {
                                    let line = &buf[consumed..consumed + pos];
                                    lines.push(parse_log_line(line.trim_end_matches(['\n', '\r']), is_err));
                                    consumed += pos + 1;
                                }
                                buf.drain(..consumed);
                                if !lines.is_empty() {
                                    return Some((futures_util::stream::iter(lines), (raw, out, err)));
                                }
                            }
                            Some(Err(_)) | None => {
                                let rest: Vec<_> = [(out, false), (err, true)]
                                    .into_iter()
                                    .filter(|(b, _)| !b.is_empty())
                                    .map(|(b, e)| parse_log_line(&b, e))
                                    .collect();
                                if rest.is_empty() {
                                    return None;
                                }
                                return Some((
                                    futures_util::stream::iter(rest),
                                    (futures_util::stream::empty().boxed(), String::new(), String::new()),
                                ));
                            }
                        }
                    }
                },
            );
            let since = since_ms;
            Box::pin(lines.flatten().filter(move |l| futures_util::future::ready(l.timestamp_ms >= since)))
                as super::OutputStream
        })
    }

    fn stats<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<super::SandboxStats>> {
        Box::pin(async move {
            // The cgroup files when this host has them (microseconds); the daemon otherwise.
            if let Some(stats) = super::cgroup::read_host(id) {
                return Some(stats);
            }
            let docker = self.client().ok()?;
            let options = bollard::query_parameters::StatsOptions { stream: false, one_shot: true };
            let stats = docker.stats(id, Some(options)).next().await?.ok()?;
            let cpu_ns = stats.cpu_stats.and_then(|c| c.cpu_usage).and_then(|u| u.total_usage).unwrap_or(0);
            let memory = stats.memory_stats.unwrap_or_default();
            let memory_bytes = memory.usage.unwrap_or(0);
            Some(super::SandboxStats {
                cpu_ns,
                memory_bytes,
                memory_peak_bytes: memory.max_usage.unwrap_or(0).max(memory_bytes),
            })
        })
    }

    fn halt<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), SandboxError>> {
        Box::pin(async move {
            let docker = self.client()?;
            let options = StopContainerOptions { t: Some(grace.as_secs() as i32), signal: None };
            match docker.stop_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
                Err(e) => Err(SandboxError::Failed(format!("stopping the container failed: {e}"))),
            }
        })
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), SandboxError>> {
        Box::pin(async move {
            let docker = self.client()?;
            let options = StopContainerOptions { t: Some(grace.as_secs() as i32), signal: None };
            match docker.stop_container(id, Some(options)).await {
                Ok(()) => {}
                // Gone already (removed by hand): the holder it joined must still go.
                Err(e) if is_not_found(&e) => {}
                Err(e) => tracing::debug!(container = id, error = %e, "stop failed; removing by force"),
            }
            self.remove(docker, id).await;
            Ok(())
        })
    }

    fn exec<'a>(&'a self, id: &'a str, command: Vec<String>) -> BoxFuture<'a, Result<Exec, SandboxError>> {
        Box::pin(async move {
            let docker = self.client()?;
            let config = bollard::exec::CreateExecOptions {
                cmd: Some(command),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            };
            let created = docker
                .create_exec(id, config)
                .await
                .map_err(|e| SandboxError::Failed(format!("cannot run a command in the session: {e}")))?;
            let started = docker
                .start_exec(&created.id, None)
                .await
                .map_err(|e| SandboxError::Failed(format!("cannot run a command in the session: {e}")))?;
            let bollard::exec::StartExecResults::Attached { output, .. } = started else {
                return Err(SandboxError::Failed("the command started detached".into()));
            };
            let output = output.filter_map(|item| async move {
                match item {
                    Ok(bollard::container::LogOutput::StdOut { message }) => Some(Ok(ExecOutput::Stdout(message))),
                    Ok(bollard::container::LogOutput::StdErr { message }) => Some(Ok(ExecOutput::Stderr(message))),
                    Ok(bollard::container::LogOutput::Console { message }) => Some(Ok(ExecOutput::Stdout(message))),
                    Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(SandboxError::Failed(e.to_string()))),
                }
            });
            let handle = DockerExec { docker: docker.clone(), sandbox_id: id.to_string(), exec_id: created.id };
            Ok(Exec { output: Box::pin(output), handle: Box::new(handle) })
        })
    }

    fn list_owned<'a>(&'a self) -> BoxFuture<'a, Result<Vec<OwnedSandbox>, SandboxError>> {
        Box::pin(async move {
            let docker = self.client()?;
            let filters = HashMap::from([("label".to_string(), vec![format!("{}=true", labels::MANAGED)])]);
            let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
            let containers = docker.list_containers(Some(options)).await.map_err(Self::unavailable)?;
            let mut owned = Vec::with_capacity(containers.len());
            // Holders some listed sandbox runs in, whoever's: those are never removed as orphans.
            let mut holders_in_use = std::collections::HashSet::new();
            for c in containers {
                let Some(id) = c.id else { continue };
                let joined = c
                    .host_config
                    .as_ref()
                    .and_then(|h| h.network_mode.as_deref())
                    .and_then(|mode| mode.strip_prefix("container:"))
                    .map(str::to_string);
                let mut ports: HashMap<u16, SocketAddr> = HashMap::new();
                let address = if let Some(holder) = joined {
                    // In a holder's namespace: reached at the holder's address, on the ports the
                    // sandbox was started with.
                    let address = docker
                        .inspect_container(&holder, None::<bollard::query_parameters::InspectContainerOptions>)
                        .await
                        .ok()
                        .and_then(|i| Self::address_of(i.network_settings.as_ref()?.networks.as_ref()));
                    let labelled = c.labels.as_ref().and_then(|l| l.get(JOINED_PORTS)).cloned().unwrap_or_default();
                    for port in labelled.split(',').filter_map(|p| p.parse::<u16>().ok()) {
                        if let Some(address) = address {
                            ports.insert(port, SocketAddr::new(address, port));
                        }
                    }
                    self.holders.bind(&id, &holder);
                    holders_in_use.insert(holder);
                    address
                } else {
                    let networks = c.network_settings.as_ref().and_then(|n| n.networks.as_ref());
                    let address = Self::address_of(networks);
                    // A port published on 127.0.0.1 is reached there (a container started where
                    // the bridge was not routable, or by an emulator from before); an unpublished
                    // one, at the container's bridge address (see `reached_at_address`).
                    for p in c.ports.clone().unwrap_or_default() {
                        match (p.ip.as_deref(), p.public_port, address) {
                            (Some("127.0.0.1"), Some(public), _) => {
                                ports.insert(p.private_port, SocketAddr::from(([127, 0, 0, 1], public)));
                            }
                            (_, None, Some(address)) => {
                                ports.entry(p.private_port).or_insert(SocketAddr::new(address, p.private_port));
                            }
                            _ => {}
                        }
                    }
                    address
                };
                let running = c.state.map(|s| s.to_string() == "running").unwrap_or(false);
                // Reached at its address, the container's connections are checked against its
                // network namespace, found through its process (which the listing does not give).
                let at_address = ports.values().any(|p| Some(p.ip()) == address);
                let netns_pid = if at_address && running {
                    docker
                        .inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>)
                        .await
                        .ok()
                        .and_then(|i| i.state?.pid)
                        .and_then(|p| u32::try_from(p).ok())
                        .filter(|p| *p > 0)
                } else {
                    None
                };
                owned.push(OwnedSandbox {
                    handle: SandboxHandle { id, ports, address, netns_pid, timings: StartTimings::default() },
                    labels: c.labels.unwrap_or_default(),
                    running,
                });
            }
            for orphan in super::holders::orphans(docker, &self.holders, &holders_in_use).await {
                tracing::info!(holder = %orphan, "removing a network holder left behind");
                Self::remove_container(docker, &orphan).await;
            }
            Ok(owned)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Ok(docker) = self.client() else { return };
            for spare in self.holders.drain_spares().await {
                Self::remove_container(docker, &spare).await;
            }
        })
    }

    fn host_address<'a>(&'a self, egress: Egress) -> BoxFuture<'a, Result<IpAddr, SandboxError>> {
        Box::pin(async move {
            let network = self.network(egress).await?;
            let docker = self.client()?;
            let inspected = docker
                .inspect_network(&network, None::<bollard::query_parameters::InspectNetworkOptions>)
                .await
                .map_err(Self::unavailable)?;
            inspected
                .ipam
                .and_then(|ipam| ipam.config)
                .into_iter()
                .flatten()
                .find_map(|c| c.gateway.and_then(|g| g.parse::<IpAddr>().ok()).filter(IpAddr::is_ipv4))
                .ok_or_else(|| {
                    SandboxError::Failed(format!("Docker network {} has no IPv4 gateway", self.network_name(egress)))
                })
        })
    }
}

/// A command started with `docker exec`. Docker records the exit code a moment after the output
/// stream closes, so `wait` polls for it briefly.
struct DockerExec {
    docker: Docker,
    sandbox_id: String,
    exec_id: String,
}

/// How long `wait` keeps asking Docker for an exit code after the output ended.
const EXEC_EXIT_POLLS: usize = 50;
const EXEC_EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

impl DockerExec {
    async fn exit_code(&self) -> Option<i64> {
        let inspect = self.docker.inspect_exec(&self.exec_id).await.ok()?;
        if inspect.running.unwrap_or(false) {
            return None;
        }
        inspect.exit_code
    }
}

impl super::ExecHandle for DockerExec {
    fn wait(&self) -> BoxFuture<'_, Option<i64>> {
        Box::pin(async move {
            for _ in 0..EXEC_EXIT_POLLS {
                if let Some(code) = self.exit_code().await {
                    return Some(code);
                }
                tokio::time::sleep(EXEC_EXIT_POLL_INTERVAL).await;
            }
            None
        })
    }

    fn kill(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (docker, sandbox_id, exec_id) = (&self.docker, self.sandbox_id.as_str(), self.exec_id.as_str());
            let Ok(inspect) = docker.inspect_exec(exec_id).await else { return };
            let Some(host_pid) = inspect.pid.filter(|p| *p > 0) else { return };
            // The command's pid inside the sandbox's pid namespace: the last NSpid entry (host procfs).
            let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap_or_default();
            let Some(inner) =
                status.lines().find(|l| l.starts_with("NSpid:")).and_then(|l| l.split_whitespace().last())
            else {
                return;
            };
            let kill = bollard::exec::CreateExecOptions {
                // The shell's own kill (images need not ship a kill binary); the command leads its
                // process group, so the group goes with it.
                cmd: Some(vec![
                    "/bin/sh".to_string(),
                    "-c".to_string(),
                    format!("kill -9 -{inner} 2>/dev/null || kill -9 {inner}"),
                ]),
                ..Default::default()
            };
            if let Ok(created) = docker.create_exec(sandbox_id, kill).await {
                let _ = docker
                    .start_exec(
                        &created.id,
                        Some(bollard::exec::StartExecOptions { detach: true, ..Default::default() }),
                    )
                    .await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A removal that fails for a moment is tried again; one that keeps failing is given up on
    /// after one try per pause plus one, with its last error.
    #[tokio::test]
    async fn a_forced_removal_is_tried_again_before_it_is_given_up() {
        let pauses = [Duration::from_millis(1); 3];
        let calls = std::cell::Cell::new(0);
        let busy_twice = || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n <= 2 {
                    Err(format!("device or resource busy ({n})"))
                } else {
                    Ok(())
                }
            }
        };
        assert_eq!(retry_removal(&pauses, busy_twice).await, Ok(()));
        assert_eq!(calls.get(), 3);

        calls.set(0);
        let always_busy = || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Err::<(), _>(format!("device or resource busy ({n})")) }
        };
        assert_eq!(retry_removal(&pauses, always_busy).await, Err((4, "device or resource busy (4)".to_string())));
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn a_removal_already_in_progress_counts_as_done_and_other_conflicts_do_not() {
        let conflict = |message: &str| bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: message.to_string(),
        };
        assert!(removal_in_progress(&conflict("removal of container 3f2a is already in progress")));
        assert!(!removal_in_progress(&conflict("You cannot remove a running container 3f2a")));
        assert!(!is_not_found(&conflict("removal of container 3f2a is already in progress")));
    }

    /// Emulators starting at once on a host without the sandbox network (a fresh machine's test
    /// suite) must all end up on one network: before the lock, two could each create one, and the
    /// one that chose from an incomplete listing lost its network to the other's clean-up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn emulators_starting_at_once_share_one_new_network() {
        let probe = DockerBackend::new();
        let Ok(docker) = probe.client() else { return };
        if docker.ping().await.is_err() {
            eprintln!("Docker is not reachable: skipped");
            return;
        }
        let name = format!("agentcore-local-test-race-{}", uuid::Uuid::new_v4().simple());
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 1;
        let backends: Vec<Arc<DockerBackend>> = (0..8)
            .map(|_| {
                let mut b = DockerBackend::new();
                b.network_names[Egress::Internet.index()] = name.clone();
                Arc::new(b)
            })
            .collect();
        let chosen = futures_util::future::join_all(backends.iter().map(|b| {
            let b = b.clone();
            tokio::spawn(async move { b.network(Egress::Internet).await })
        }))
        .await;
        let chosen: Vec<String> = chosen.into_iter().map(|r| r.unwrap().unwrap()).collect();
        // Docker's own record of what was created: one network, not one per emulator (even
        // duplicates that were removed again could have been chosen by someone meanwhile).
        let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
        let filters = HashMap::from([
            ("type".to_string(), vec!["network".to_string()]),
            ("event".to_string(), vec!["create".to_string()]),
        ]);
        let options = bollard::query_parameters::EventsOptions {
            since: Some(since.to_string()),
            until: Some(until.to_string()),
            filters: Some(filters),
        };
        let events: Vec<_> = docker.events(Some(options)).collect().await;
        let created = events
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.actor.as_ref().and_then(|a| a.attributes.as_ref()).and_then(|a| a.get("name")) == Some(&name))
            .count();
        let existing = DockerBackend::network_ids(docker, &name).await.unwrap();
        for id in &existing {
            let _ = docker.remove_network(id).await;
        }
        assert_eq!(created, 1, "{created} networks named {name} were created");
        assert_eq!(existing.len(), 1, "duplicate networks were left: {existing:?}");
        assert!(chosen.iter().all(|c| *c == existing[0]), "emulators chose different networks: {chosen:?}");
    }

    #[test]
    fn networks_order_by_creation_time_whatever_its_precision() {
        // Docker trims trailing zeros of the nanoseconds, so the strings do not sort as times do.
        let whole = created_ns(Some("2026-12-03T09:30:01Z"));
        let later = created_ns(Some("2026-12-03T09:30:01.5Z"));
        let between = created_ns(Some("2026-12-03T09:30:01.123456789Z"));
        assert!(whole < between && between < later);
        assert!(created_ns(Some("2026-12-03T09:30:02Z")) > later);
        assert_eq!(created_ns(None), i128::MAX);
        assert_eq!(created_ns(Some("yesterday")), i128::MAX);
    }
}
