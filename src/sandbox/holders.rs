//! Network namespaces made ahead of time for the Docker backend's sandboxes.
//!
//! Most of what Docker spends starting a container on a user-defined network goes to the network:
//! an interface pair, a bridge port, and the embedded DNS resolver with its rules inside the new
//! namespace. Measured here (`cargo bench --bench sessions`, the network-ahead floor row): create,
//! start, `/ping` 200 and one POST take 275 ms on the sandbox network, and 113 ms for the same
//! container joining the namespace of a container that is already running.
//!
//! So the backend keeps up to `SPARES` *holders* ready on each network it has started a sandbox
//! on: containers of a pause program, attached to the network, doing nothing else. A sandbox
//! takes one (`network_mode: container:<holder>`), is reached at the holder's address, and a new
//! holder is made in the background. With none ready, a sandbox starts on the network as before.
//!
//! Invariants:
//! - A holder serves one sandbox, once: sessions never share a namespace, so inter-container
//!   traffic stays off between them as before.
//! - A holder is hardened like a sandbox (no capabilities, no new privileges, read-only root) and
//!   limited far below one (one process, a few MiB).
//! - A sandbox's removal removes its holder (`DockerBackend::remove`); holders are removed as
//!   sandboxes are, by force with retries (a pause program, as PID 1 without a handler, ignores
//!   SIGTERM anyway).
//! - Spares are removed at shutdown; ones left by an emulator that died are removed by the next
//!   one to list sandboxes in the same PID namespace (`orphans`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateImageOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::labels;

/// Holders kept ready per network: two, so that sessions started one after another still find
/// one while the next is being made (making one takes about as long as a sandbox start).
const SPARES: usize = 2;
/// The pauses before a fill tries again after a holder could not be made.
const MAKE_PAUSES: [Duration; 3] = [Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(5)];
/// The label every holder carries (its value: `true`). Holders are not sandboxes: they carry no
/// `managed` label, so `list_owned` never reports them.
pub const HOLDER: &str = "agentcore-local.netns-holder";
/// The pause image's repository; its tag names the program's architecture and version.
const IMAGE_REPOSITORY: &str = "agentcore-local-netns-holder";

/// A running holder: its container and its address on the network.
#[derive(Debug, Clone)]
pub struct Holder {
    pub id: String,
    pub address: IpAddr,
}

/// The spares of each network, and which holder each sandbox took.
pub struct Holders {
    /// When this process made its first holder at the earliest (unix seconds): a holder labelled
    /// with this process's pid but created before then is from an earlier life of the pid.
    born_s: i64,
    /// The pause image's id; `None` when it cannot be made here (another architecture, or the
    /// import failed): then sandboxes start on their network as before.
    image: OnceCell<Option<String>>,
    /// One lock for the little state there is; held for map operations only, never across an
    /// await, so a plain mutex.
    state: Mutex<State>,
    /// Cancelled at shutdown: a fill pausing before its next try stops at once.
    closing: CancellationToken,
}

impl Default for Holders {
    fn default() -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Holders {
            born_s: now.as_secs() as i64,
            image: OnceCell::new(),
            state: Mutex::default(),
            closing: CancellationToken::new(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Ready holders per network id.
    spares: HashMap<String, Vec<Holder>>,
    /// Networks a fill task is running for (one at a time each), and those tasks, which shutdown
    /// waits for.
    filling: std::collections::HashSet<String>,
    fills: Vec<tokio::task::JoinHandle<()>>,
    /// The holder of each sandbox (container id) that took one.
    taken: HashMap<String, String>,
    /// Shut down: fills remove what they make instead of keeping it.
    closed: bool,
}

impl Holders {
    /// A ready holder on `network`, now bound to no one; the caller binds it (`bind`) once its
    /// sandbox exists, or removes it.
    pub fn take(&self, network: &str) -> Option<Holder> {
        self.state.lock().unwrap().spares.get_mut(network)?.pop()
    }

    /// Record that `sandbox` runs in `holder`'s namespace, so removing it removes the holder.
    pub fn bind(&self, sandbox: &str, holder: &str) {
        self.state.lock().unwrap().taken.insert(sandbox.to_string(), holder.to_string());
    }

    /// The holder `sandbox` took, forgotten here (the caller removes it).
    pub fn release(&self, sandbox: &str) -> Option<String> {
        self.state.lock().unwrap().taken.remove(sandbox)
    }

    /// The ids of `network`'s spares.
    pub fn spares(&self, network: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.spares.get(network).into_iter().flatten().map(|h| h.id.clone()).collect()
    }

    /// Forgets `network`'s spare `id` (the caller removes it): whether it still was one, not
    /// taken meanwhile.
    pub fn forget(&self, network: &str, id: &str) -> bool {
        let mut state = self.state.lock().unwrap();
        let Some(spares) = state.spares.get_mut(network) else { return false };
        let before = spares.len();
        spares.retain(|h| h.id != id);
        spares.len() < before
    }

    /// At shutdown: no more spares are made; once the fills under way have ended, every spare,
    /// forgotten here (the caller removes them).
    pub async fn drain_spares(&self) -> Vec<String> {
        let fills = {
            let mut state = self.state.lock().unwrap();
            state.closed = true;
            std::mem::take(&mut state.fills)
        };
        self.closing.cancel();
        for fill in fills {
            let _ = fill.await;
        }
        let mut state = self.state.lock().unwrap();
        state.spares.drain().flat_map(|(_, holders)| holders).map(|h| h.id).collect()
    }

    /// Make holders on `network` in the background until `SPARES` are ready, unless a fill for
    /// it already runs.
    pub fn refill(self: &Arc<Self>, docker: Docker, network: String) {
        {
            let mut state = self.state.lock().unwrap();
            let ready = state.spares.get(&network).map_or(0, Vec::len);
            if state.closed || self.no_image() || ready >= SPARES || !state.filling.insert(network.clone()) {
                return;
            }
        }
        let holders = self.clone();
        let fill = tokio::spawn(async move {
            let make = || holders.make(&docker, &network);
            if let Some(late) = holders.fill(&network, &MAKE_PAUSES, make).await {
                super::docker::DockerBackend::remove_container(&docker, &late.id).await;
            }
        });
        let mut state = self.state.lock().unwrap();
        state.fills.retain(|f| !f.is_finished());
        state.fills.push(fill);
    }

    /// The body of a fill of `network` (marked `filling` by the caller): `make` until `SPARES` are
    /// ready. A failed `make` is tried again after each of `pauses` in turn (a busy daemon fails
    /// one now and then), so that one failure does not leave the network without spares until the
    /// next sandbox start, however late that comes; after the last, the fill ends and that start
    /// begins another. Returns a holder made after shutdown began, for the caller to remove.
    async fn fill<F, Fut>(&self, network: &str, pauses: &[Duration], mut make: F) -> Option<Holder>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<Holder>>,
    {
        let mut failures = 0;
        while !self.filled(network) {
            match make().await {
                Some(holder) => {
                    failures = 0;
                    if !self.keep(network, &holder) {
                        return Some(holder);
                    }
                }
                None => {
                    // Without the image, trying again cannot help.
                    let next = if self.no_image() { None } else { pauses.get(failures) };
                    let Some(pause) = next else {
                        self.state.lock().unwrap().filling.remove(network);
                        return None;
                    };
                    failures += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(*pause) => {}
                        _ = self.closing.cancelled() => {}
                    }
                }
            }
        }
        None
    }

    /// Whether holders cannot be made here at all (see `image`).
    fn no_image(&self) -> bool {
        matches!(self.image.get(), Some(None))
    }

    /// Whether the fill of `network` is done (`SPARES` ready, or shut down), and if so, no longer
    /// `filling`: both under one lock, so a sandbox that takes a spare right after this check
    /// finds no fill running and starts one (checked apart, its refill could see the ending fill
    /// still `filling` and make none).
    fn filled(&self, network: &str) -> bool {
        let mut state = self.state.lock().unwrap();
        let done = state.closed || state.spares.get(network).map_or(0, Vec::len) >= SPARES;
        if done {
            state.filling.remove(network);
        }
        done
    }

    /// Keeps `holder` as a spare of `network`, unless shut down (then the fill ends).
    fn keep(&self, network: &str, holder: &Holder) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.closed {
            state.filling.remove(network);
            return false;
        }
        state.spares.entry(network.to_string()).or_default().push(holder.clone());
        true
    }

    /// One new holder on `network`, running; `None` when it cannot be made (what went wrong is
    /// logged, and what was created removed).
    async fn make(&self, docker: &Docker, network: &str) -> Option<Holder> {
        let image = self.image.get_or_init(|| pause_image(docker)).await.clone()?;
        let mut holder_labels = HashMap::from([(HOLDER.to_string(), "true".to_string())]);
        holder_labels.insert(labels::OWNER_PID.to_string(), std::process::id().to_string());
        holder_labels.insert(labels::OWNER_PID_NAMESPACE.to_string(), super::pid_namespace());
        let body = ContainerCreateBody {
            image: Some(image),
            cmd: Some(vec![PAUSE_PATH.to_string()]),
            labels: Some(holder_labels),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_string()),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                readonly_rootfs: Some(true),
                pids_limit: Some(HOLDER_PIDS),
                memory: Some(HOLDER_MEMORY_BYTES),
                memory_swap: Some(HOLDER_MEMORY_BYTES),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created =
            match docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await {
                Ok(c) => c.id,
                Err(e) => {
                    tracing::info!(error = %e, "could not create a network holder");
                    return None;
                }
            };
        match come_up(docker, &created).await {
            Ok(address) => Some(Holder { id: created, address }),
            Err(why) => {
                tracing::info!(holder = %created, why, "a network holder did not come up");
                super::docker::DockerBackend::remove_container(docker, &created).await;
                None
            }
        }
    }
}

/// Starts a created holder: its address once it runs, or why it does not.
async fn come_up(docker: &Docker, id: &str) -> Result<IpAddr, String> {
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(|e| format!("start: {e}"))?;
    let inspect = docker
        .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .map_err(|e| format!("inspect: {e}"))?;
    if !inspect.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
        return Err(format!("not running: {:?}", inspect.state.and_then(|s| s.status)));
    }
    inspect
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|n| n.values().find_map(|e| e.ip_address.as_deref()?.parse().ok()))
        .ok_or_else(|| "no address on the network".to_string())
}

/// Holders of processes that are gone, and ones with this process's pid made before it started (a
/// restarted emulator in a container is pid 1 again), except those a listed sandbox still runs in:
/// their ids, for the caller to remove. This process's own, spare or still being made, stay.
/// Holders of emulators in another PID namespace are left alone (their owner's liveness cannot be
/// seen from here).
pub async fn orphans(docker: &Docker, holders: &Holders, in_use: &std::collections::HashSet<String>) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{HOLDER}=true")])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let Ok(listed) = docker.list_containers(Some(options)).await else { return Vec::new() };
    let namespace = super::pid_namespace();
    listed
        .into_iter()
        .filter_map(|c| {
            let id = c.id?;
            let labels = c.labels.unwrap_or_default();
            if in_use.contains(&id) || labels.get(labels::OWNER_PID_NAMESPACE) != Some(&namespace) {
                return None;
            }
            let owner = labels.get(labels::OWNER_PID).and_then(|p| p.parse::<u32>().ok());
            let gone = match owner {
                Some(pid) if pid == std::process::id() => c.created.is_some_and(|created| created < holders.born_s),
                Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                None => true,
            };
            gone.then_some(id)
        })
        .collect()
}

/// Where the pause program lies in its image.
const PAUSE_PATH: &str = "/pause";
const HOLDER_PIDS: i64 = 4;
/// Docker's smallest memory limit is 6 MiB; the program maps one page.
const HOLDER_MEMORY_BYTES: i64 = 8 * 1024 * 1024;

/// The pause image's id, imported on first use (`docker import` of a one-file tarball: no
/// registry, no build). `None` on an architecture `pause_program` does not know.
async fn pause_image(docker: &Docker) -> Option<String> {
    let (arch, program) = pause_program()?;
    let reference = format!("{IMAGE_REPOSITORY}:1-{arch}");
    if let Ok(found) = docker.inspect_image(&reference).await {
        return found.id;
    }
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(program.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    archive.append_data(&mut header, PAUSE_PATH.trim_start_matches('/'), program.as_slice()).ok()?;
    let tarball = archive.into_inner().ok()?;
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(IMAGE_REPOSITORY.into()),
        tag: Some(format!("1-{arch}")),
        ..Default::default()
    };
    let mut imported = docker.create_image(Some(options), Some(bollard::body_full(tarball.into())), None);
    while let Some(item) = imported.next().await {
        if let Err(e) = item {
            tracing::info!(error = %e, "could not import the network holder image; sandboxes attach their network themselves");
            return None;
        }
    }
    docker.inspect_image(&reference).await.ok()?.id
}

/// The pause program for this host's architecture: a static ELF executable that sleeps in a
/// system call forever (`pause` on x86-64, `ppoll` with nothing to wait for on arm64), with no
/// libc, so the image holds this one file. Written out here rather than shipped as a binary blob:
/// the instructions are the whole program and can be read below.
fn pause_program() -> Option<(&'static str, Vec<u8>)> {
    if cfg!(target_arch = "x86_64") {
        // loop: mov eax, 34 (pause); syscall; jmp loop
        Some(("x86_64", elf(0x3e, &[0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7])))
    } else if cfg!(target_arch = "aarch64") {
        // loop: mov x0..x3, #0; mov x8, #73 (ppoll); svc #0; b loop
        let words: [u32; 7] =
            [0xd280_0000, 0xd280_0001, 0xd280_0002, 0xd280_0003, 0xd280_0928, 0xd400_0001, 0x17ff_fffa];
        Some(("aarch64", elf(0xb7, &words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>())))
    } else {
        None
    }
}

/// A minimal static little-endian ELF64 executable: the file header, one loadable read+execute
/// segment mapping the whole file at `BASE`, then `code`, where execution starts.
fn elf(machine: u16, code: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let size = HEADERS + code.len() as u64;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&2u16.to_le_bytes()); // e_type: executable
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    out.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // e_entry
    out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [64u16, 56, 1, 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        out.extend_from_slice(&half.to_le_bytes());
    }
    out.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    out.extend_from_slice(&5u32.to_le_bytes()); // p_flags: read + execute
    for word in [0, BASE, BASE, size, size, 0x1000u64] {
        // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_pause_program_runs_and_sleeps_until_killed() {
        use std::os::unix::fs::PermissionsExt;
        let (_, program) = pause_program().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pause");
        std::fs::write(&path, &program).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = std::process::Command::new(&path).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "the pause program exited instead of sleeping");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }

    fn holder(n: u8) -> Holder {
        Holder { id: format!("holder-{n}"), address: IpAddr::from([10, 0, 0, n]) }
    }

    /// `fill` as `refill` runs it (`network` marked filling), making what `outcomes` says, in turn.
    async fn fill_with(
        holders: &Holders,
        outcomes: Vec<Option<Holder>>,
        pauses: &[Duration],
    ) -> (usize, Option<Holder>) {
        holders.state.lock().unwrap().filling.insert("net".into());
        let mut outcomes = outcomes.into_iter();
        let mut tries = 0;
        let late = holders
            .fill("net", pauses, || {
                tries += 1;
                std::future::ready(outcomes.next().expect("made more than the test planned"))
            })
            .await;
        (tries, late)
    }

    fn filling(holders: &Holders) -> bool {
        holders.state.lock().unwrap().filling.contains("net")
    }

    #[tokio::test]
    async fn a_holder_that_could_not_be_made_is_tried_again_until_the_spares_are_ready() {
        let holders = Holders::default();
        let outcomes = vec![None, Some(holder(1)), None, None, Some(holder(2))];
        let (tries, late) = fill_with(&holders, outcomes, &[Duration::ZERO; 2]).await;
        assert_eq!((tries, late.is_none()), (5, true));
        assert_eq!(holders.spares("net"), ["holder-1", "holder-2"]);
        assert!(!filling(&holders), "a fill that is done must let the next refill begin another");
    }

    #[tokio::test]
    async fn a_fill_that_keeps_failing_ends_so_that_the_next_start_begins_another() {
        let holders = Holders::default();
        let (tries, _) = fill_with(&holders, vec![Some(holder(1)), None, None, None], &[Duration::ZERO; 2]).await;
        assert_eq!(tries, 4, "one try, then one after each pause");
        assert_eq!(holders.spares("net"), ["holder-1"]);
        assert!(!filling(&holders));
    }

    #[tokio::test]
    async fn a_holder_made_after_shutdown_began_is_handed_back_for_removal() {
        let holders = Holders::default();
        holders.state.lock().unwrap().filling.insert("net".into());
        let late = holders
            .fill("net", &[], || {
                holders.state.lock().unwrap().closed = true;
                std::future::ready(Some(holder(1)))
            })
            .await;
        assert_eq!(late.map(|h| h.id).as_deref(), Some("holder-1"));
        assert!(holders.spares("net").is_empty());
    }

    #[tokio::test]
    async fn shutdown_ends_a_fill_pausing_before_its_next_try() {
        let holders = Holders::default();
        let hour = [Duration::from_secs(3600)];
        let fill = fill_with(&holders, vec![None], &hour);
        let shutdown = async {
            tokio::task::yield_now().await;
            holders.drain_spares().await
        };
        let ended = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(fill, shutdown) }).await;
        assert!(ended.is_ok(), "shutdown waited for the fill's pause");
    }

    #[test]
    fn the_executable_header_points_at_the_code() {
        let program = elf(0x3e, &[0x90]);
        assert_eq!(&program[..4], b"\x7fELF");
        assert_eq!(program.len(), 121);
        assert_eq!(u64::from_le_bytes(program[24..32].try_into().unwrap()), 0x40_0000 + 120);
        assert_eq!(u64::from_le_bytes(program[64 + 32..64 + 40].try_into().unwrap()), 121, "p_filesz");
    }
}
