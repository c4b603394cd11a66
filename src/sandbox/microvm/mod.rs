//! The microVM backend: one QEMU `microvm` machine per sandbox, KVM where it truly works, QEMU's
//! emulator (TCG) elsewhere.
//!
//! - Images come from the local Docker image store (the same names as the Docker backend); each
//!   becomes an initramfs once (`rootfs`), booted with the distribution's kernel (`kernel`) and
//!   our own `/init` (`init.sh`).
//! - A VM's session configuration (environment, command, working directory, user) reaches the guest
//!   through fw_cfg; its console (the agent's stdout and stderr) is a file the backend reads.
//! - Host directories (code deployments) reach the guest as read-only ext4 disks (`disks`); the
//!   agent runs as the image's user (`user`); stopping asks the guest first (`control`).
//! - Networking is QEMU's user mode: the agent's ports are forwarded from ephemeral 127.0.0.2
//!   ports, out of the guests' reach (a guest reaches the host's 127.0.0.1, and only that, at
//!   10.0.2.2); the guest reaches the emulator through a port of its own on 127.0.0.1 that relays
//!   only its own QEMU's connections (`relay`). A VPC runtime's VM (`Egress::EmulatorOnly`) has
//!   `restrict=on`: no connection leaves it but those to `VPC_EMULATOR`, which QEMU hands to a
//!   `vm-pipe` process joined to the VM's relay (`pipe`).
//! - Each VM has a directory `vms/<id>/` (record, console, config, pid file). There are no labels
//!   to ask a daemon for, so the record keeps them: `list_owned` reads the records, and a QEMU
//!   process outlives an emulator restart (it is daemonized) to be re-adopted or removed.
//!   Stopping a VM asks its guest to stop the agent (SIGTERM), kills QEMU after the grace and
//!   removes the directory: nothing of a session survives.

mod commands;
mod control;
mod disks;
pub mod host;
mod kernel;
pub mod pipe;
pub mod probe;
mod relay;
mod rootfs;
mod user;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sha2::Digest;

use super::docker::DockerBackend;
use super::{
    Egress, Exec, OutputLine, OutputStream, OwnedSandbox, SandboxBackend, SandboxError, SandboxHandle, SandboxSpec,
    SandboxState, SandboxStats, StartTimings,
};
use disks::Disk;
use host::{Accel, Host};
use user::Identity;

/// How the guest names the host (QEMU user networking's gateway, forwarded to host loopback).
pub const GUEST_HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// Where a VM's forwarded ports (the agent's, the command server's) listen on the host: a loopback
/// address other than 127.0.0.1, because every guest reaches all of the host's 127.0.0.1 (and only
/// it) through 10.0.2.2, and one session must not reach another's agent.
const FORWARD_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Where a VPC runtime's guest reaches the emulator: the address of its one `guestfwd` rule (any
/// free address of QEMU's 10.0.2.0/24 but the gateway and DNS, which QEMU does not allow there).
const VPC_EMULATOR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 100), 80);
/// The emulator's listener for VPC sessions (`host_address(EmulatorOnly)`): only relays connect to
/// it, and no guest reaches any host address but 127.0.0.1.
const VPC_DOOR_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The line our init prints when the agent's process ends.
const EXIT_MARKER: &str = "agentcore-local-init: exit ";
/// How often a followed console is read for new output.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// What the backend keeps about a VM beside its files (`vms/<id>/vm.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct VmRecord {
    id: String,
    pid: u32,
    labels: HashMap<String, String>,
    /// (port in the guest, port on `forward_address`).
    ports: Vec<(u16, u16)>,
    /// The host address the forwarded ports listen on (127.0.0.1 for VMs started before
    /// `FORWARD_ADDRESS` existed).
    #[serde(default = "loopback")]
    forward_address: Ipv4Addr,
    accel: String,
    /// The VM's own way to the emulator's sandbox listener: a local port (which the guest reaches
    /// at 10.0.2.2) relayed from a loopback address of its own, so the emulator tells VMs apart by
    /// address as it tells containers apart (the metadata service answers each with its role).
    #[serde(default)]
    relay: Option<Relay>,
    /// The guest's command server (`exec`): a local port forwarded to it, and its token.
    #[serde(default)]
    commands: Option<Commands>,
    /// Writable disks: (image, host directory its content goes back to when the VM stops).
    #[serde(default)]
    write_back: Vec<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Commands {
    port: u16,
    token: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Relay {
    /// The local port its guest reaches at 10.0.2.2 (0 for a VPC VM's, which has `pipe`).
    port: u16,
    source: Ipv4Addr,
    /// A VPC VM's: the abstract socket name its `vm-pipe` processes connect to.
    #[serde(default)]
    pipe: Option<String>,
}

pub struct MicrovmBackend {
    host: Host,
    /// Image names resolve exactly as with the Docker backend: the images live in its store.
    images: DockerBackend,
    docker: Result<bollard::Docker, String>,
    /// `images/` (root filesystems), `kernel/` (the uncompressed kernel), `disks/` (host
    /// directories as disk images), `vms/` (one per VM).
    root: PathBuf,
    builds: tokio::sync::Mutex<()>,
    boot_kernel: tokio::sync::OnceCell<PathBuf>,
    /// The emulator's listener for sandboxes (learnt from `sandbox_url`).
    door: std::sync::OnceLock<SocketAddr>,
    /// Running relays by VM id.
    relays: parking_lot::Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

/// The backend's directory: `$AGENTCORE_LOCAL_MICROVM_DIR`, else the user's cache directory.
pub fn default_root() -> PathBuf {
    std::env::var_os("AGENTCORE_LOCAL_MICROVM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("agentcore-local/microvm"))
}

impl MicrovmBackend {
    pub fn new(host: Host, root: PathBuf) -> MicrovmBackend {
        let docker =
            bollard::Docker::connect_with_defaults().map_err(|e| format!("cannot use Docker's image store: {e}"));
        MicrovmBackend {
            host,
            images: DockerBackend::new(),
            docker,
            root,
            builds: tokio::sync::Mutex::new(()),
            boot_kernel: tokio::sync::OnceCell::new(),
            door: std::sync::OnceLock::new(),
            relays: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    pub fn accel(&self) -> Accel {
        self.host.accel()
    }

    /// What the host lacks for VMs to start, if anything.
    pub fn missing(&self) -> Option<String> {
        (!self.host.ready()).then(|| self.host.missing_message())
    }

    fn vms(&self) -> PathBuf {
        self.root.join("vms")
    }

    fn vm_dir(&self, id: &str) -> Option<PathBuf> {
        let safe = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        (safe && !id.starts_with('.')).then(|| self.vms().join(id))
    }

    fn record(&self, id: &str) -> Option<VmRecord> {
        let dir = self.vm_dir(id)?;
        serde_json::from_slice(&std::fs::read(dir.join("vm.json")).ok()?).ok()
    }

    /// The records of every VM directory that has one.
    fn records(&self) -> Vec<VmRecord> {
        let Ok(dirs) = std::fs::read_dir(self.vms()) else { return Vec::new() };
        dirs.flatten().filter_map(|e| self.record(&e.file_name().to_string_lossy())).collect()
    }

    /// The VM's QEMU process, if it still runs (a pid reused by another process does not count).
    fn live_pid(&self, id: &str) -> Option<u32> {
        let dir = self.vm_dir(id)?;
        let pid = self.record(id).map(|r| r.pid).or_else(|| read_pid(&dir))?;
        process_of(pid, &dir).then_some(pid)
    }

    fn console(&self, id: &str) -> String {
        let Some(dir) = self.vm_dir(id) else { return String::new() };
        let raw = std::fs::read(dir.join("console.log")).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    async fn boot_kernel(&self) -> Result<PathBuf, SandboxError> {
        let kernel = self.host.kernel.clone().ok_or_else(|| SandboxError::Unavailable(self.host.missing_message()))?;
        let cache = self.root.join("kernel");
        self.boot_kernel
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || kernel::bootable(&kernel, &cache))
                    .await
                    .map_err(|e| SandboxError::Failed(e.to_string()))
            })
            .await
            .cloned()
    }

    /// A loopback address no other VM of this backend uses.
    fn free_source(&self, id: &str) -> Ipv4Addr {
        let taken: Vec<Ipv4Addr> = self.records().into_iter().filter_map(|r| r.relay.map(|x| x.source)).collect();
        let mut seed: u32 = rand::random();
        loop {
            let h = sha2::Sha256::digest(format!("{id}/{seed}").as_bytes());
            let candidate = Ipv4Addr::new(127, 100 + h[0] % 150, h[1], 1 + h[2] % 254);
            if !taken.contains(&candidate) {
                return candidate;
            }
            seed = seed.wrapping_add(1);
        }
    }

    /// Starts relaying `listener` (the VM's port, or a VPC VM's pipe socket) to the emulator's
    /// listener from `source`: on a port, only connections that QEMU process `pid` (the VM's)
    /// opened; on a pipe, only this user's (`relay::run_pipe`).
    fn spawn_relay(&self, id: &str, listener: RelayListener, pid: u32, source: Ipv4Addr) {
        let Some(door) = self.door.get().copied() else { return };
        let task = match listener {
            RelayListener::Port(listener) => tokio::spawn(relay::run(listener, pid, source, door)),
            RelayListener::Pipe(listener) => tokio::spawn(relay::run_pipe(listener, source, door)),
        };
        if let Some(old) = self.relays.lock().insert(id.to_string(), task) {
            old.abort();
        }
    }

    fn stop_relay(&self, id: &str) {
        if let Some(task) = self.relays.lock().remove(id) {
            task.abort();
        }
    }

    /// After a restart: a running VM's relay comes back on the port its guest already uses.
    async fn resume_relay(&self, record: &VmRecord) {
        let Some(r) = &record.relay else { return };
        if self.relays.lock().contains_key(&record.id) {
            return;
        }
        match RelayListener::bind(r.port, r.pipe.as_deref()).await {
            Ok(listener) => self.spawn_relay(&record.id, listener, record.pid, r.source),
            Err(e) => {
                tracing::warn!(vm = %record.id, port = r.port, error = %e, "cannot resume the VM's way to the emulator")
            }
        }
    }

    /// Ask the guest to stop its agent and wait up to `grace` for the VM to power off (as `docker
    /// stop` waits for the container's process); then QEMU gets SIGTERM and, if need be, SIGKILL.
    async fn kill(&self, id: &str, grace: Duration) {
        let Some(pid) = self.live_pid(id) else { return };
        let asked = !grace.is_zero() && self.vm_dir(id).is_some_and(|dir| control::request_stop(&dir));
        if asked && self.exited_within(id, grace).await {
            return;
        }
        signal(pid, libc::SIGTERM);
        if self.exited_within(id, Duration::from_millis(500)).await {
            return;
        }
        if let Some(pid) = self.live_pid(id) {
            signal(pid, libc::SIGKILL);
            if !self.exited_within(id, Duration::from_secs(2)).await {
                tracing::warn!(vm = id, pid, "the VM's QEMU survived SIGKILL");
            }
        }
    }

    /// Copies a stopped VM's writable disks back into their host directories, if the guest shut
    /// down cleanly (its init printed the exit line after the agent ended, then synced): a disk
    /// of a VM killed mid-write may hold half a file, and the directory keeps what it had.
    async fn write_back(&self, id: &str) -> Result<(), String> {
        let Some(record) = self.record(id) else { return Ok(()) };
        if record.write_back.is_empty() {
            return Ok(());
        }
        if exit_code(&self.console(id)).is_none() {
            return Err(format!("the VM {id} did not shut down cleanly; its writes to host directories are dropped"));
        }
        let Some(mke2fs) = self.host.mke2fs.clone() else { return Err(self.host.missing_message()) };
        tokio::task::spawn_blocking(move || {
            record.write_back.iter().try_for_each(|(image, host)| disks::write_back(&mke2fs, image, host))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn exited_within(&self, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.live_pid(id).is_none() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn launch(&self, spec: &SandboxSpec, t0: Instant) -> Result<SandboxHandle, SandboxError> {
        if let Some(why) = self.host.install_command() {
            return Err(SandboxError::Unavailable(format!("{} ({why})", self.host.missing_message())));
        }
        let (Some(qemu), Some(kernel), Some(busybox), Some(mke2fs)) =
            (&self.host.qemu, &self.host.kernel, &self.host.busybox, &self.host.mke2fs)
        else {
            return Err(SandboxError::Unavailable(self.host.missing_message()));
        };
        let docker = self.docker.as_ref().map_err(|e| SandboxError::Unavailable(e.clone()))?;
        let boot = self.boot_kernel().await?;
        let rootfs = {
            let _one_build = self.builds.lock().await;
            rootfs::get(docker, &self.root.join("images"), &spec.image, kernel, busybox)
                .await
                .map_err(SandboxError::Failed)?
        };
        let identity = identity(spec, &rootfs.config).map_err(SandboxError::Failed)?;
        let id = spec.name.clone();
        let dir = self.vm_dir(&id).ok_or_else(|| SandboxError::Failed(format!("invalid sandbox name {id}")))?;
        std::fs::create_dir_all(&dir)
            .and_then(|_| {
                // Only this user may read the VM's files: vm.json and config.sh hold its token.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| SandboxError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let fail = |message: String| {
            let _ = std::fs::remove_dir_all(&dir);
            SandboxError::Failed(message)
        };
        let disks = if spec.mounts.is_empty() {
            Vec::new()
        } else {
            let _one_build = self.builds.lock().await;
            let (root, vm_dir, mke2fs, mounts) =
                (self.root.join("disks"), dir.clone(), mke2fs.clone(), spec.mounts.clone());
            tokio::task::spawn_blocking(move || disks::prepare(&root, &vm_dir, &mke2fs, &mounts))
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(&fail)?
        };
        // The VM's own way to the emulator: the guest's URLs name it instead of the shared one.
        // A VPC VM's is its one guestfwd rule, piped to an abstract socket (`pipe`).
        let private = spec.egress == Egress::EmulatorOnly;
        let mut relay_listener = None;
        let mut relay = None;
        let mut spec_env = spec.env.clone();
        if let Some(door) = self.door.get() {
            let pipe = private.then(|| pipe::socket_name(&commands::new_token()));
            let listener = RelayListener::bind(0, pipe.as_deref())
                .await
                .map_err(|e| fail(format!("cannot open the VM's way to the emulator: {e}")))?;
            let (port, own) = match &listener {
                RelayListener::Port(l) => {
                    let port = l.local_addr().map_err(|e| fail(e.to_string()))?.port();
                    (port, format!("http://{GUEST_HOST_ADDRESS}:{port}"))
                }
                RelayListener::Pipe(_) => (0, format!("http://{VPC_EMULATOR}")),
            };
            let shared = self.sandbox_url(*door);
            for (_, v) in spec_env.iter_mut() {
                if v.starts_with(&shared) {
                    *v = v.replacen(&shared, &own, 1);
                }
            }
            relay = Some(Relay { port, source: self.free_source(&id), pipe });
            relay_listener = Some(listener);
        } else if private {
            return Err(fail(
                "a VPC session's VM needs the emulator's listener for sandboxes, which is not open".into(),
            ));
        }
        let commands = Commands {
            port: free_port(FORWARD_ADDRESS).map_err(|e| fail(format!("no free local port: {e}")))?,
            token: commands::new_token(),
        };
        let guest = Guest { image: &rootfs.config, identity: &identity, disks: &disks, token: &commands.token };
        let config = guest_config(&SandboxSpec { env: spec_env, ..spec.clone() }, &guest).map_err(&fail)?;
        control::create(&dir).map_err(&fail)?;
        std::fs::write(dir.join("config.sh"), config).map_err(|e| fail(format!("cannot write the VM config: {e}")))?;
        let mut ports = Vec::new();
        for guest in &spec.ports {
            ports.push((*guest, free_port(FORWARD_ADDRESS).map_err(|e| fail(format!("no free local port: {e}")))?));
        }
        let accel = self.host.accel();
        let mut record = VmRecord {
            id: id.clone(),
            pid: 0,
            labels: spec.labels.clone(),
            ports,
            forward_address: FORWARD_ADDRESS,
            accel: accel.as_str().into(),
            relay,
            commands: Some(commands.clone()),
            write_back: disks.iter().filter_map(|d| Some((d.image.clone(), d.write_back.clone()?))).collect(),
        };
        write_record(&dir, &record).map_err(&fail)?;
        let created = t0.elapsed();
        let on_host = |port| SocketAddrV4::new(record.forward_address, port);
        let mut forwards: Vec<(u16, SocketAddrV4)> =
            record.ports.iter().map(|(guest, local)| (*guest, on_host(*local))).collect();
        forwards.push((commands::GUEST_PORT, on_host(commands.port)));
        let pipe_command = match record.relay.as_ref().and_then(|r| r.pipe.as_deref()) {
            Some(name) => Some(vm_pipe_command(name).map_err(&fail)?),
            None => None,
        };
        let network = Network { forwards: &forwards, pipe_command: pipe_command.as_deref() };
        let args = qemu_args(&dir, &boot, &rootfs.initrd, spec, &network, &disks, accel);
        let output = tokio::process::Command::new(qemu)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| fail(format!("cannot run {}: {e}", qemu.display())))?;
        if !output.status.success() {
            return Err(fail(format!(
                "QEMU could not start the VM ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        record.pid = read_pid(&dir).ok_or_else(|| fail("QEMU started without writing its pid file".into()))?;
        write_record(&dir, &record).map_err(&fail)?;
        if let (Some(listener), Some(r)) = (relay_listener, &record.relay) {
            self.spawn_relay(&id, listener, record.pid, r.source);
        }
        let started = t0.elapsed();
        tracing::debug!(vm = %id, pid = record.pid, accel = accel.as_str(), ms = started.as_millis() as u64, "microVM started");
        Ok(SandboxHandle {
            id,
            ports: handle_ports(&record),
            address: record.relay.as_ref().map(|r| IpAddr::V4(r.source)),
            // Reached through ports QEMU forwards on the host, which no other VM can take over.
            netns_pid: None,
            timings: StartTimings { created: Some(created), started: Some(started) },
        })
    }
}

/// A VM's way to the emulator, before its relay runs: a local port (its guest reaches it at
/// 10.0.2.2) or, for a VPC VM, an abstract socket its guestfwd rule's `vm-pipe` connects to.
enum RelayListener {
    Port(tokio::net::TcpListener),
    Pipe(tokio::net::UnixListener),
}

impl RelayListener {
    /// `port` on 127.0.0.1 (0: any), or the abstract socket `pipe` when given.
    async fn bind(port: u16, pipe: Option<&str>) -> std::io::Result<RelayListener> {
        match pipe {
            Some(name) => Ok(RelayListener::Pipe(pipe::listen(name)?)),
            None => Ok(RelayListener::Port(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?)),
        }
    }
}

/// The command QEMU runs for each connection a VPC VM's guest opens to `VPC_EMULATOR`: this
/// binary's `vm-pipe`, in GLib's shell syntax (QEMU splits it with `g_shell_parse_argv`).
fn vm_pipe_command(pipe: &str) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program for the VM's pipe: {e}"))?;
    Ok(format!("{} vm-pipe {}", sh_quote(&exe.display().to_string()), sh_quote(pipe)))
}

/// A VM's user networking: ports forwarded from the host (host address, guest port), and for a
/// VPC VM the command its one guestfwd rule runs (then nothing else leaves the guest).
struct Network<'a> {
    forwards: &'a [(u16, SocketAddrV4)],
    pipe_command: Option<&'a str>,
}

fn handle_ports(record: &VmRecord) -> HashMap<u16, SocketAddr> {
    record.ports.iter().map(|(g, h)| (*g, SocketAddr::from((record.forward_address, *h)))).collect()
}

fn loopback() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

fn write_record(dir: &Path, record: &VmRecord) -> Result<(), String> {
    let tmp = dir.join("vm.json.tmp");
    let body = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, dir.join("vm.json")))
        .map_err(|e| format!("cannot write the VM record: {e}"))
}

fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("qemu.pid")).ok()?.trim().parse().ok()
}

/// `pid` is a live (not zombie) process started for the VM in `dir`.
fn process_of(pid: u32, dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = dir.to_string_lossy();
    String::from_utf8_lossy(&cmdline).contains(needle.as_ref())
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid that `process_of` just matched to the VM; no memory is shared.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

fn free_port(address: Ipv4Addr) -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((address, 0))?.local_addr()?.port())
}

/// Single-quoted for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whom the agent runs as: the spec's `uid:gid` if it names one, else the image's `USER`.
fn identity(spec: &SandboxSpec, image: &rootfs::ImageConfig) -> Result<Identity, String> {
    let wanted = spec.user.as_deref().filter(|u| !u.is_empty()).unwrap_or(&image.user);
    user::resolve(wanted, &image.passwd, &image.group).map_err(|e| format!("image {}: {e}", spec.image))
}

/// What the guest gets besides the spec: the image's configuration, the resolved user and the
/// host directories' disks.
struct Guest<'a> {
    image: &'a rootfs::ImageConfig,
    identity: &'a Identity,
    disks: &'a [Disk],
    /// What the command server asks of every request.
    token: &'a str,
}

/// The shell fragment the guest's init sources: host name, working directory, user, mounts and
/// `set -- NAME=VALUE... COMMAND ARGS...` (environment as Docker builds it: the image's, then the
/// spec's; command: entrypoint + the spec's command or the image's).
fn guest_config(spec: &SandboxSpec, guest: &Guest<'_>) -> Result<String, String> {
    let image = guest.image;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| {
        if !valid_env_name(k) {
            return;
        }
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    };
    set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    set("HOSTNAME", &hostname(&spec.name));
    // Docker's HOME: the user's home from the image's passwd, unless the image or spec sets one.
    set("HOME", &guest.identity.home);
    for kv in &image.env {
        if let Some((k, v)) = kv.split_once('=') {
            set(k, v);
        }
    }
    for (k, v) in &spec.env {
        set(k, v);
    }
    let mut argv = image.entrypoint.clone();
    argv.extend(spec.command.clone().unwrap_or_else(|| image.cmd.clone()));
    if argv.is_empty() {
        return Err(format!("image {} has no entrypoint or command to run", spec.image));
    }
    let workdir = spec.workdir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| {
        if image.workdir.is_empty() {
            "/".into()
        } else {
            image.workdir.clone()
        }
    });
    // Targets are absolute paths without spaces or quotes (`disks::prepare`): one word each.
    let mounts: Vec<String> = guest
        .disks
        .iter()
        .map(|d| format!("{}:{}:{}", d.serial, if d.write_back.is_some() { "rw" } else { "ro" }, d.target))
        .collect();
    // The environment as sh words, for the agent and again (AGENTCORE_ENV) for commands.
    let env_words: Vec<String> = env.iter().map(|(k, v)| sh_quote(&format!("{k}={v}"))).collect();
    let mut out = format!(
        "AGENTCORE_HOSTNAME={}\nAGENTCORE_WORKDIR={}\nAGENTCORE_USER='{}:{}'\nAGENTCORE_LOGIN={}\nAGENTCORE_MOUNTS={}\n\
         AGENTCORE_EXEC_PORT={}\nAGENTCORE_EXEC_TOKEN={}\nAGENTCORE_ENV={}\nset --",
        sh_quote(&hostname(&spec.name)),
        sh_quote(&workdir),
        guest.identity.uid,
        guest.identity.gid,
        sh_quote(guest.identity.login.as_deref().unwrap_or("")),
        sh_quote(&mounts.join(" ")),
        commands::GUEST_PORT,
        sh_quote(guest.token),
        sh_quote(&env_words.join(" "))
    );
    for word in &env_words {
        out.push(' ');
        out.push_str(word);
    }
    for a in &argv {
        out.push(' ');
        out.push_str(&sh_quote(a));
    }
    out.push('\n');
    Ok(out)
}

/// A host name from the sandbox name (at most 63 characters, as Docker's are 12).
fn hostname(name: &str) -> String {
    name.chars().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect()
}

fn qemu_args(
    dir: &Path,
    kernel: &Path,
    initrd: &Path,
    spec: &SandboxSpec,
    network: &Network<'_>,
    disks: &[Disk],
    accel: Accel,
) -> Vec<String> {
    let cpus = (spec.limits.cpus.ceil() as i64).max(1);
    let memory_mib = (spec.limits.memory_bytes / (1024 * 1024)).max(128);
    let mut cmdline = "console=ttyS0 quiet loglevel=1 reboot=t panic=-1 random.trust_cpu=on".to_string();
    if accel == Accel::Tcg {
        // Without these the guest calibrates its clock against an emulated timer: seconds lost.
        if let Some(khz) = host::tsc_khz() {
            cmdline += &format!(" tsc_early_khz={khz} lpj={}", khz * 4);
        }
    }
    let mut netdev = "user,id=n0".to_string();
    for (guest, local) in network.forwards {
        netdev += &format!(",hostfwd=tcp:{}:{}-:{guest}", local.ip(), local.port());
    }
    if let Some(command) = network.pipe_command {
        // QEMU's option syntax doubles a comma inside a value.
        netdev += &format!(",restrict=on,guestfwd=tcp:{VPC_EMULATOR}-cmd:{}", command.replace(',', ",,"));
    }
    let path = |p: &Path| p.display().to_string();
    let mut args: Vec<String> = vec!["-M".into(), "microvm".into()];
    match accel {
        Accel::Kvm => args.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]),
        Accel::Tcg => args.extend(["-accel".into(), "tcg".into(), "-cpu".into(), "max".into()]),
    }
    args.extend([
        "-smp".into(),
        cpus.to_string(),
        "-m".into(),
        memory_mib.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-name".into(),
        spec.name.clone(),
        "-kernel".into(),
        path(kernel),
        "-initrd".into(),
        path(initrd),
        "-append".into(),
        cmdline,
        "-serial".into(),
        format!("file:{}", path(&dir.join("console.log"))),
        "-fw_cfg".into(),
        format!("name=opt/agentcore/config,file={}", path(&dir.join("config.sh"))),
        "-netdev".into(),
        netdev,
        "-device".into(),
        "virtio-net-device,netdev=n0".into(),
        "-pidfile".into(),
        path(&dir.join("qemu.pid")),
        "-daemonize".into(),
    ]);
    args.extend(control::qemu_args(dir));
    for (i, disk) in disks.iter().enumerate() {
        // QEMU's option syntax doubles a comma inside a value.
        let file = path(&disk.image).replace(',', ",,");
        let readonly = if disk.write_back.is_some() { "off" } else { "on" };
        args.extend([
            "-drive".into(),
            format!("file={file},if=none,id=disk{i},format=raw,readonly={readonly}"),
            "-device".into(),
            format!("virtio-blk-device,drive=disk{i},serial={}", disk.serial),
        ]);
    }
    args
}

/// Agent output of a console: the init's exit marker is ours, not the agent's.
fn agent_lines(console: &str) -> impl Iterator<Item = &str> {
    console.lines().filter(|l| !l.starts_with(EXIT_MARKER))
}

fn exit_code(console: &str) -> Option<i64> {
    console.lines().rev().find_map(|l| l.strip_prefix(EXIT_MARKER)).and_then(|c| c.trim().parse().ok())
}

/// CPU time (ns) and resident memory (bytes, now and peak) of a process.
fn process_stats(pid: u32) -> Option<SandboxStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based) → indexes 11 and 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let rss = kib("VmRSS:") * 1024;
    Some(SandboxStats {
        cpu_ns: ticks * 1_000_000_000 / hz,
        memory_bytes: rss,
        memory_peak_bytes: (kib("VmHWM:") * 1024).max(rss),
    })
}

impl SandboxBackend for MicrovmBackend {
    fn resolve_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<String, String>> {
        self.images.resolve_image(reference)
    }

    fn local_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        self.images.local_image(reference)
    }

    fn start<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<SandboxHandle, SandboxError>> {
        Box::pin(async move { self.launch(spec, Instant::now()).await })
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, SandboxState> {
        Box::pin(async move {
            match self.vm_dir(id) {
                Some(dir) if dir.exists() => {}
                _ => return SandboxState::Missing,
            }
            if self.live_pid(id).is_some() {
                return SandboxState::Running;
            }
            let code = exit_code(&self.console(id)).unwrap_or(-1);
            SandboxState::Exited { code, out_of_memory: false }
        })
    }

    fn logs<'a>(&'a self, id: &'a str, lines: usize) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let console = self.console(id);
            let all: Vec<&str> = agent_lines(&console).collect();
            let mut out = all[all.len().saturating_sub(lines)..].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        })
    }

    fn follow_output<'a>(&'a self, id: &'a str, since_ms: i64) -> BoxFuture<'a, OutputStream> {
        Box::pin(async move {
            let Some(dir) = self.vm_dir(id) else {
                return Box::pin(futures_util::stream::empty()) as OutputStream;
            };
            let path = dir.join("console.log");
            let pid = self.record(id).map(|r| r.pid).unwrap_or(0);
            // From the start for a new VM; a re-adopted one continues where the file ends now
            // (the console has no timestamps to resume from).
            let offset = if since_ms > 0 { std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) } else { 0 };
            let stream =
                futures_util::stream::unfold((offset, String::new(), false), move |(mut offset, mut partial, done)| {
                    let (path, dir) = (path.clone(), dir.clone());
                    async move {
                        if done {
                            return None;
                        }
                        loop {
                            let alive = process_of(pid, &dir);
                            let chunk = read_from(&path, offset);
                            offset += chunk.len() as u64;
                            partial.push_str(&String::from_utf8_lossy(&chunk).replace('\r', ""));
                            let mut lines = Vec::new();
                            while let Some(pos) = partial.find('\n') {
                                let line: String = partial.drain(..=pos).collect();
                                let text = line.trim_end_matches('\n');
                                if !text.starts_with(EXIT_MARKER) {
                                    lines.push(OutputLine {
                                        timestamp_ms: crate::kernel::clock::now_ms(),
                                        stderr: false,
                                        text: text.to_string(),
                                    });
                                }
                            }
                            let finished = !alive && chunk.is_empty();
                            if finished && !partial.is_empty() {
                                lines.push(OutputLine {
                                    timestamp_ms: crate::kernel::clock::now_ms(),
                                    stderr: false,
                                    text: std::mem::take(&mut partial),
                                });
                            }
                            if !lines.is_empty() {
                                return Some((futures_util::stream::iter(lines), (offset, partial, finished)));
                            }
                            if finished {
                                return None;
                            }
                            tokio::time::sleep(FOLLOW_INTERVAL).await;
                        }
                    }
                });
            Box::pin(futures_util::StreamExt::flatten(stream)) as OutputStream
        })
    }

    fn stats<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<SandboxStats>> {
        Box::pin(async move { process_stats(self.live_pid(id)?) })
    }

    fn halt<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), SandboxError>> {
        Box::pin(async move {
            self.kill(id, grace).await;
            Ok(())
        })
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), SandboxError>> {
        Box::pin(async move {
            self.kill(id, grace).await;
            self.stop_relay(id);
            let written = self.write_back(id).await;
            if let Some(dir) = self.vm_dir(id) {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(SandboxError::Failed(format!("cannot remove {}: {e}", dir.display())));
                    }
                }
            }
            written.map_err(SandboxError::Failed)
        })
    }

    fn exec<'a>(&'a self, id: &'a str, command: Vec<String>) -> BoxFuture<'a, Result<Exec, SandboxError>> {
        Box::pin(async move {
            if self.live_pid(id).is_none() {
                return Err(SandboxError::Failed(format!("the session's VM {id} is not running")));
            }
            let Some((r, c)) = self.record(id).and_then(|r| r.commands.clone().map(|c| (r, c))) else {
                return Err(SandboxError::Failed(
                    "this session's VM was started by an older agentcore-local without a command server; \
                     stop the session (StopRuntimeSession) and run the command in a new one"
                        .into(),
                ));
            };
            commands::Server { address: r.forward_address, port: c.port, token: c.token }.start(&command).await
        })
    }

    fn list_owned<'a>(&'a self) -> BoxFuture<'a, Result<Vec<OwnedSandbox>, SandboxError>> {
        Box::pin(async move {
            let Ok(entries) = std::fs::read_dir(self.vms()) else { return Ok(Vec::new()) };
            let mut out = Vec::new();
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                let Some(record) = self.record(&id) else {
                    // A VM whose start was interrupted before its record: nothing to adopt.
                    if self.live_pid(&id).is_none() {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                    continue;
                };
                let running = self.live_pid(&id).is_some();
                if running {
                    self.resume_relay(&record).await;
                }
                out.push(OwnedSandbox {
                    handle: SandboxHandle {
                        id: record.id.clone(),
                        ports: handle_ports(&record),
                        address: record.relay.map(|r| IpAddr::V4(r.source)),
                        netns_pid: None,
                        timings: StartTimings::default(),
                    },
                    labels: record.labels,
                    running,
                });
            }
            Ok(out)
        })
    }

    fn host_address<'a>(&'a self, egress: Egress) -> BoxFuture<'a, Result<IpAddr, SandboxError>> {
        Box::pin(async move {
            match egress {
                Egress::Internet => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                Egress::EmulatorOnly => Ok(IpAddr::V4(VPC_DOOR_ADDRESS)),
            }
        })
    }

    fn sandbox_url(&self, bound: SocketAddr) -> String {
        let _ = self.door.set(bound);
        format!("http://{GUEST_HOST_ADDRESS}:{}", bound.port())
    }

    fn opened_by_sandbox(&self, peer: SocketAddr, local: SocketAddr) -> bool {
        let pids: Vec<u32> = self.records().into_iter().map(|r| r.pid).filter(|pid| *pid != 0).collect();
        !pids.is_empty() && relay::opened_by_any(&pids, peer, local)
    }
}

fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    use std::io::{Read, Seek};
    let Ok(mut f) = std::fs::File::open(path) else { return Vec::new() };
    if f.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(1 << 20).read_to_end(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            name: "agentcore-rt-abc-12ef".into(),
            image: "sha256:x".into(),
            env: vec![("A".into(), "it's".into()), ("bad-name".into(), "x".into())],
            ports: vec![8080],
            labels: HashMap::new(),
            limits: Default::default(),
            read_only_root: false,
            command: None,
            workdir: None,
            mounts: Vec::new(),
            user: None,
            egress: Egress::Internet,
        }
    }

    #[test]
    fn guest_config_is_sh_with_env_then_command() {
        let image = rootfs::ImageConfig {
            env: vec!["PATH=/bin".into(), "A=image".into()],
            entrypoint: vec!["/agent".into()],
            cmd: vec!["--x".into()],
            workdir: "/app".into(),
            user: String::new(),
            passwd: String::new(),
            group: String::new(),
        };
        let root = Identity::root();
        let disks = [Disk {
            image: "/d/x.ext4".into(),
            serial: "agentcore-m0".into(),
            target: "/var/task".into(),
            write_back: None,
        }];
        let guest = Guest { image: &image, identity: &root, disks: &disks, token: "t0k" };
        let text = guest_config(&spec(), &guest).unwrap();
        assert!(text.contains("AGENTCORE_USER='0:0'\nAGENTCORE_LOGIN=''\n") && text.contains("'HOME=/root'"), "{text}");
        let login = Identity { login: Some("it's".into()), ..Identity::root() };
        let text = guest_config(&spec(), &Guest { identity: &login, ..guest }).unwrap();
        assert!(text.contains(r"AGENTCORE_LOGIN='it'\''s'"), "{text}");
        assert!(text.contains("AGENTCORE_MOUNTS='agentcore-m0:ro:/var/task'"), "{text}");
        assert!(text.contains("AGENTCORE_EXEC_PORT=1\nAGENTCORE_EXEC_TOKEN='t0k'\n"), "{text}");
        assert!(text.contains(r"AGENTCORE_ENV=''\''HOSTNAME=") && text.contains(r" '\''PATH=/bin'\'' "), "{text}");
        assert!(text.contains("AGENTCORE_WORKDIR='/app'"));
        assert!(text.contains("'PATH=/bin'"));
        assert!(text.contains(r"'A=it'\''s'"), "{text}");
        assert!(!text.contains("A=image"));
        assert!(!text.contains("bad-name"));
        assert!(text.trim_end().ends_with("'/agent' '--x'"));
        let none = rootfs::ImageConfig::default();
        assert!(guest_config(&spec(), &Guest { image: &none, identity: &root, disks: &[], token: "t" }).is_err());
    }

    #[test]
    fn the_specs_user_wins_over_the_images() {
        let image = rootfs::ImageConfig {
            user: "agent".into(),
            passwd: "agent:x:1234:2345::/home/agent:/bin/sh\n".into(),
            ..Default::default()
        };
        let agent = identity(&spec(), &image).unwrap();
        assert_eq!(
            (agent.uid, agent.gid, agent.home.as_str(), agent.login.as_deref()),
            (1234, 2345, "/home/agent", Some("agent"))
        );
        let job = SandboxSpec { user: Some("4000:4001".into()), ..spec() };
        assert_eq!((identity(&job, &image).unwrap().uid, identity(&job, &image).unwrap().gid), (4000, 4001));
        let unknown = rootfs::ImageConfig { user: "ghost".into(), ..Default::default() };
        let err = identity(&spec(), &unknown).unwrap_err();
        assert!(err.starts_with("image sha256:x: unable to find user ghost"), "{err}");
    }

    #[test]
    fn the_exit_marker_is_not_agent_output() {
        let console = "hello\nagentcore-local-init: exit 3\n";
        assert_eq!(exit_code(console), Some(3));
        assert_eq!(agent_lines(console).collect::<Vec<_>>(), vec!["hello"]);
    }

    #[test]
    fn qemu_gets_limits_ports_and_the_tcg_clock() {
        let disks = [Disk {
            image: "/d/a,b.ext4".into(),
            serial: "agentcore-m0".into(),
            target: "/var/task".into(),
            write_back: None,
        }];
        let forwards = [(8080, SocketAddrV4::new(FORWARD_ADDRESS, 40000))];
        let public = Network { forwards: &forwards, pipe_command: None };
        let args = qemu_args(Path::new("/v"), Path::new("/k"), Path::new("/i"), &spec(), &public, &disks, Accel::Tcg);
        let joined = args.join(" ");
        assert!(!joined.contains("restrict") && !joined.contains("guestfwd"), "{joined}");
        assert!(joined.contains("file=/d/a,,b.ext4,if=none,id=disk0,format=raw,readonly=on"), "{joined}");
        assert!(joined.contains("virtio-blk-device,drive=disk0,serial=agentcore-m0"));
        assert!(joined.contains("virtserialport,chardev=control,name=agentcore.control"));
        assert!(joined.contains("-smp 2 -m 8192"));
        assert!(joined.contains("hostfwd=tcp:127.0.0.2:40000-:8080"));
        assert!(joined.contains("-accel tcg"));
        // A VPC VM: nothing leaves it but its one rule, whose command keeps its commas.
        let private = Network { forwards: &forwards, pipe_command: Some("'/bin/a,b' vm-pipe 'x'") };
        let args = qemu_args(Path::new("/v"), Path::new("/k"), Path::new("/i"), &spec(), &private, &disks, Accel::Tcg);
        let netdev = &args[args.iter().position(|a| a == "-netdev").unwrap() + 1];
        assert_eq!(
            netdev,
            "user,id=n0,hostfwd=tcp:127.0.0.2:40000-:8080,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:'/bin/a,,b' vm-pipe 'x'"
        );
    }
}
