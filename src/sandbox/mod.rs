//! Sandboxes that run agent sessions: one trait, one backend per isolation technology.
//!
//! A backend knows nothing of AgentCore: it resolves images, starts a sandbox from a spec, reports
//! its state and logs, stops it, and lists the sandboxes it owns (by label). It returns the
//! loopback address of each exposed port; readiness probing and request forwarding are plain HTTP
//! to that address (`crate::sessions`), so a microVM or namespace backend only has to provide an
//! address too.

mod attached;
pub mod cgroup;
pub mod docker;
mod holders;
pub mod image;
pub mod microvm;
mod output_client;
mod paced;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::BoxFuture;

/// While a sandbox keeps writing, its followed output is read at most this often (a backend
/// that can, paces the stream: see `paced`). The log capture stores lines at this rhythm anyway
/// (`sessions::capture`), so pacing the reads adds no delay it did not have.
pub const OUTPUT_PACE: Duration = Duration::from_millis(100);

/// The PID namespace this process runs in (`/proc/self/ns/pid`): a process id names a process
/// only within it.
pub fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default()
}

/// Label keys on every sandbox the emulator starts.
pub mod labels {
    pub const MANAGED: &str = "agentcore-local.managed";
    pub const INSTANCE: &str = "agentcore-local.instance";
    pub const OWNER_PID: &str = "agentcore-local.owner-pid";
    /// The PID namespace `OWNER_PID` is a pid in (`/proc/self/ns/pid`): another emulator can tell
    /// whether the owner is gone only from inside the same namespace (one running in a container
    /// sees none of the host's processes).
    pub const OWNER_PID_NAMESPACE: &str = "agentcore-local.owner-pid-namespace";
    /// `true` when the owning emulator keeps its state in a data dir and will come back for it.
    pub const PERSISTENT: &str = "agentcore-local.persistent";
    pub const ACCOUNT: &str = "agentcore-local.account";
    pub const REGION: &str = "agentcore-local.region";
    pub const RUNTIME_ID: &str = "agentcore-local.runtime-id";
    pub const VERSION: &str = "agentcore-local.version";
    pub const ENDPOINT: &str = "agentcore-local.endpoint";
    pub const SESSION_ID: &str = "agentcore-local.session-id";
    pub const STARTED_AT_MS: &str = "agentcore-local.started-at-ms";
    /// `true` on warm-pool sandboxes, whose session (once claimed) is recorded in the store.
    pub const POOL: &str = "agentcore-local.pool";
}

/// Resource limits of one sandbox. Defaults are the service's: 2 vCPU, 8 GB per session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_bytes: i64,
    /// CPUs the sandbox may use (fractions allowed: 0.5 is half a core).
    pub cpus: f64,
    pub pids: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 8 * 1024 * 1024 * 1024, cpus: 2.0, pids: 1024 }
    }
}

#[derive(Debug, Clone)]
pub struct Mount {
    pub host_path: String,
    /// Where the directory appears inside the sandbox.
    pub target: String,
    pub read_only: bool,
}

/// What a sandbox may reach besides the emulator's listener for sandboxes (its AWS endpoint and
/// metadata service), which every sandbox reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Egress {
    /// Anything the host can reach (the service's `networkMode: PUBLIC`).
    #[default]
    Internet,
    /// Nothing else: no route out of the host (the service's `networkMode: VPC`, whose subnets and
    /// security groups name nothing that exists on this machine).
    EmulatorOnly,
}

impl Egress {
    pub const ALL: [Egress; 2] = [Egress::Internet, Egress::EmulatorOnly];

    /// Position in `ALL`, for per-egress arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Everything needed to start one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub name: String,
    /// A local image reference or id (already resolved).
    pub image: String,
    pub env: Vec<(String, String)>,
    /// Ports inside the sandbox to expose on the loopback interface.
    pub ports: Vec<u16>,
    pub labels: HashMap<String, String>,
    pub limits: Limits,
    pub read_only_root: bool,
    pub command: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub mounts: Vec<Mount>,
    /// `uid:gid` to run as; `None` for the image's own user.
    pub user: Option<String>,
    pub egress: Egress,
}

/// A started sandbox and where its ports are reachable.
#[derive(Debug, Clone)]
pub struct SandboxHandle {
    pub id: String,
    pub ports: HashMap<u16, SocketAddr>,
    /// The sandbox's own address, as the host sees the connections it opens (how the metadata
    /// service tells sandboxes apart); `None` if the backend cannot tell.
    pub address: Option<IpAddr>,
    /// A process of the sandbox, by its pid on this host, when the sandbox's ports are reached at
    /// `address` (a Docker bridge, which hands a stopped container's address to the next one at
    /// once): after every new connection there, that process's network namespace is checked to
    /// still hold the address.
    pub netns_pid: Option<u32>,
    /// How long `start` took to reach its steps (empty for sandboxes found at start-up).
    pub timings: StartTimings,
}

/// Where a backend's `start` spent its time, measured from the call: the session report shows it
/// per session so "what does a session start cost" has an answer for every session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StartTimings {
    /// The sandbox exists (Docker: the container is created).
    pub created: Option<Duration>,
    /// The sandbox runs and its ports are known (Docker: started and inspected).
    pub started: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxState {
    Running,
    /// `out_of_memory`: the sandbox was killed for passing its memory limit.
    Exited {
        code: i64,
        out_of_memory: bool,
    },
    Missing,
}

/// A sandbox found by `list_owned`, with its labels.
#[derive(Debug, Clone)]
pub struct OwnedSandbox {
    pub handle: SandboxHandle,
    pub labels: HashMap<String, String>,
    pub running: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
    /// The sandbox started but its process exited at once (the sandbox is already removed).
    #[error("the agent exited with code {code} during initialization")]
    ExitedAtStart { code: i64, logs: String },
}

/// Output of a command run in a sandbox, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// Resource use of a sandbox since it started (from its cgroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxStats {
    /// CPU time consumed, in nanoseconds.
    pub cpu_ns: u64,
    pub memory_bytes: u64,
    /// Highest memory use the cgroup recorded (0 where the kernel does not report it).
    pub memory_peak_bytes: u64,
}

/// One line a sandbox wrote, stamped when it was written (by Docker, or as the attach stream
/// delivered it: `attached`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub timestamp_ms: i64,
    pub stderr: bool,
    pub text: String,
}

pub type OutputStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = OutputLine> + Send>>;

/// A command started in a sandbox: its output as it arrives, and the backend's handle on it.
pub struct Exec {
    pub output: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<ExecOutput, SandboxError>> + Send>>,
    pub handle: Box<dyn ExecHandle>,
}

/// What a caller can do with a running command besides reading its output.
pub trait ExecHandle: Send + Sync {
    /// The command's exit code, once its output has ended; `None` if the backend cannot tell.
    fn wait(&self) -> BoxFuture<'_, Option<i64>>;
    /// Kill the command (and what it started) if it still runs; best effort.
    fn kill(&self) -> BoxFuture<'_, ()>;
}

/// One isolation technology (Docker containers, QEMU microVMs). Only `crate::sessions` (and the
/// runtime service's version preparation, for its one-shot jobs) call a backend.
///
/// Ownership: every sandbox is started with the spec's `labels`, and `list_owned` must return them
/// unchanged after an emulator restart, so the emulator can re-adopt or remove what it started.
/// Docker keeps them as container labels; a backend without labels (a VM) must persist them itself,
/// e.g. beside the VM's files in the data dir.
pub trait SandboxBackend: Send + Sync + 'static {
    /// Find `reference` locally (or fetch it); returns the id to start sandboxes from, or a
    /// message that says what is missing and how to provide it.
    fn resolve_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<String, String>>;
    /// The id of a local image, without pulling; `Ok(None)` when it does not exist.
    fn local_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<String>, String>>;
    /// Create and start a sandbox.
    fn start<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<SandboxHandle, SandboxError>>;
    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, SandboxState>;
    /// The last `lines` lines of output (stdout and stderr interleaved).
    fn logs<'a>(&'a self, id: &'a str, lines: usize) -> BoxFuture<'a, String>;
    /// Every line the sandbox writes from `since_ms` (unix ms, 0 = from its start) until it stops.
    fn follow_output<'a>(&'a self, id: &'a str, since_ms: i64) -> BoxFuture<'a, OutputStream>;
    /// Resource use so far; `None` if the sandbox is gone.
    fn stats<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<SandboxStats>>;
    /// SIGTERM, up to `grace` to exit, then SIGKILL; the sandbox stays until `stop` removes it.
    fn halt<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), SandboxError>>;
    /// SIGTERM, up to `grace` to exit, then SIGKILL; the sandbox is removed.
    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), SandboxError>>;
    /// Start `command` (argv) inside a running sandbox, attached to its stdout and stderr.
    fn exec<'a>(&'a self, id: &'a str, command: Vec<String>) -> BoxFuture<'a, Result<Exec, SandboxError>>;
    /// Every sandbox carrying the `managed` label, whichever emulator instance started it.
    fn list_owned<'a>(&'a self) -> BoxFuture<'a, Result<Vec<OwnedSandbox>, SandboxError>>;
    /// The host's address as sandboxes with `egress` reach it (the emulator listens there for
    /// their AWS calls and metadata requests, and nowhere else beyond its own listener). A backend
    /// that cannot confine a sandbox to the emulator says so here, and such sessions fail to start
    /// with that message rather than run with more reach than their configuration allows.
    fn host_address<'a>(&'a self, egress: Egress) -> BoxFuture<'a, Result<IpAddr, SandboxError>>;
    /// The URL sandboxes use for the emulator's listener bound at `bound` (an address on
    /// `host_address`): Docker's containers reach the gateway address itself; a VM behind QEMU's
    /// user networking names the host's loopback by its own alias (10.0.2.2).
    fn sandbox_url(&self, bound: SocketAddr) -> String {
        format!("http://{bound}")
    }
    /// Whether a connection the emulator accepted at `local` from `peer` (a loopback address)
    /// was opened by one of this backend's sandboxes, which must then not be taken for a local
    /// user. Containers never connect from the host's loopback; a VM's guest does, through QEMU.
    /// Blocking (it may read /proc).
    fn opened_by_sandbox(&self, _peer: SocketAddr, _local: SocketAddr) -> bool {
        false
    }
    /// Remove what the backend made ahead of time for sandboxes not started yet (Docker's spare
    /// network holders), and make no more: at shutdown. Starts still in flight then find none and
    /// start as without.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
