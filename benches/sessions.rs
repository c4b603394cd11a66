//! Sessions benchmark: cold start to first response (p50/p95), warm invoke overhead against a
//! direct call to the same container port in the same run, memory per idle session, and sessions
//! created per second. Uses the fixture agent image (fixtures/build-images.sh). Then the
//! direct-code-deployment rows (`support::code_deploy`): code-zip cold start and S3 throughput.
//! Then the local-model rows (`support::models`): Converse round trip and ConverseStream first event.
//! Then the microVM rows (`support::microvm`): cold start, idle memory and warm invoke of a VM session.
//!
//! Run: `cargo bench --bench sessions` (`-- microvm` for the microVM rows alone, `-- relay` for the
//! warm invoke and throughput rows alone)

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::bare_relay::Kind;
use support::floor::{docker_floor, FloorContainer};
use support::microvm::DockerFigures;
use support::{
    body_of, cold_starts, fixture_runtime, invoke_request, rss_kib, spawn_server, warm_calls, HttpClient, Presigned,
    Straight,
};

const COLD_STARTS: usize = 15;
/// Sessions started this far apart (as people and most tests start them, rather than back to
/// back): long enough for the Docker backend to have made a network holder ready in between.
const SPACED_GAP: Duration = Duration::from_millis(600);
const SPACED_STARTS: usize = 10;
/// With the warm pool, sessions arrive this far apart (the pool refills in between, as it does when
/// sessions arrive at human pace).
const POOL_GAP: Duration = Duration::from_millis(1500);
const WARM_CALLS: usize = 1000;
const BURST_SESSIONS: usize = 12;
const BURST_CONCURRENCY: usize = 4;
/// Sessions invoked at once for the throughput rows, and how long each row runs.
const THROUGHPUT_SESSIONS: usize = 50;
/// Each round measures the emulator, the agents directly and the bare relays, in turn.
const THROUGHPUT_ROUNDS: usize = 3;
const THROUGHPUT_FOR: Duration = Duration::from_secs(3);

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn container_memory_mib(session_prefix: &str) -> (usize, f64) {
    let ids = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", "label=agentcore-local.managed=true"])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).split_whitespace().map(String::from).collect();
    let mut total = 0.0;
    let mut counted = 0;
    for id in ids {
        let label = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{index .Config.Labels \"agentcore-local.session-id\"}}", &id])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&label.stdout).starts_with(session_prefix) {
            continue;
        }
        let stats = std::process::Command::new("docker")
            .args(["stats", "--no-stream", "--format", "{{.MemUsage}}", &id])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&stats.stdout);
        let used = text.split('/').next().unwrap_or("").trim();
        let (num, unit) = used.split_at(used.find(|c: char| c.is_alphabetic()).unwrap_or(used.len()));
        let value: f64 = num.parse().unwrap_or(0.0);
        total += match unit {
            "KiB" | "kB" => value / 1024.0,
            "MiB" | "MB" => value,
            "GiB" | "GB" => value * 1024.0,
            _ => value / (1024.0 * 1024.0),
        };
        counted += 1;
    }
    (counted, total)
}

/// Per-phase p50 of the cold sessions whose ids start with `prefix`, from the emulator's session
/// report (`start_phases`): created, started, agent ready, first response, in ms.
async fn phase_p50s(client: &HttpClient, addr: SocketAddr, prefix: &str) -> [f64; 4] {
    let req = Request::get(format!("http://{addr}/_agentcore-local/sessions")).body(Full::new(Bytes::new())).unwrap();
    let (_, body) = body_of(client, req).await;
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let sessions: Vec<&serde_json::Value> = report["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["session_id"].as_str().unwrap_or("").starts_with(prefix))
        .collect();
    let keys = ["sandbox_created_ms", "sandbox_started_ms", "agent_ready_ms", "first_response_ms"];
    keys.map(|k| {
        let mut values: Vec<f64> = sessions.iter().filter_map(|s| s["start_phases"][k].as_f64()).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    })
}

/// Cold starts with `--warm-pool 1`: the first session fills the pool, later ones claim spares.
fn pooled_cold_starts(rt: &tokio::runtime::Runtime) -> Vec<Duration> {
    let (mut server, _) = spawn_server(&["--max-tps-per-endpoint", "0", "--warm-pool", "1"]);
    let addr = server.addr;
    let samples = rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let arn_path = fixture_runtime(&client, addr, "bench_pool").await;
        let mut samples = Vec::new();
        for i in 0..=COLD_STARTS {
            let session = format!("bench-pool-{i:04}-{}", uuid::Uuid::new_v4());
            let started = Instant::now();
            let (status, _) = body_of(&client, invoke_request(addr, &arn_path, &session, b"{}")).await;
            assert_eq!(status, 200);
            if i > 0 {
                samples.push(started.elapsed());
            }
            tokio::time::sleep(POOL_GAP).await;
        }
        samples
    });
    server.stop();
    samples
}

/// Makes one worker's next request.
type MakeRequest = Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync>;

/// Every worker sends its own request, back to back, for `THROUGHPUT_FOR`; requests completed over
/// all workers, and the time they took.
async fn throughput(client: &HttpClient, makers: &[MakeRequest]) -> (u64, Duration) {
    let deadline = Instant::now() + THROUGHPUT_FOR;
    let started = Instant::now();
    let mut workers = Vec::new();
    for make in makers.iter().cloned() {
        let client = client.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let (status, _) = body_of(&client, make()).await;
                assert_eq!(status, 200);
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    (total, started.elapsed())
}

/// The machine's CPU time so far, busy and in all (`/proc/stat`'s first line, in clock ticks).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user already)
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Where the CPU went while one way of invoking ran: completed invokes, and the CPU time of the
/// emulator, the relays, this benchmark (the client), Docker and the whole machine over them.
#[derive(Default)]
struct Spent {
    invokes: u64,
    elapsed: Duration,
    emulator: Duration,
    relays: Duration,
    client: Duration,
    /// Docker's processes: dockerd, containerd and the containers' shims (which copy the agents'
    /// output into Docker's logs, and from there to the emulator's log capture).
    docker: Duration,
    machine_busy_ticks: u64,
    machine_ticks: u64,
}

/// The CPU time so far of Docker's own processes (`dockerd`, `containerd`, `containerd-shim*`).
fn docker_cpu() -> Duration {
    let Ok(processes) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    processes
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            matches!(comm.trim(), "dockerd" | "containerd") || comm.starts_with("containerd-shim")
        })
        .map(support::cpu_time)
        .sum()
}

impl Spent {
    /// Runs `throughput` over `makers`, adding what it took to `self`.
    async fn measure(&mut self, client: &HttpClient, makers: &[MakeRequest], emulator: u32, relays: &[u32]) {
        let me = std::process::id();
        let relays_cpu = || relays.iter().map(|&pid| support::cpu_time(pid)).sum::<Duration>();
        let (e0, r0, c0, d0, (b0, t0)) =
            (support::cpu_time(emulator), relays_cpu(), support::cpu_time(me), docker_cpu(), machine_ticks());
        let (invokes, elapsed) = throughput(client, makers).await;
        let (b1, t1) = machine_ticks();
        self.docker += docker_cpu().saturating_sub(d0);
        self.emulator += support::cpu_time(emulator).saturating_sub(e0);
        self.relays += relays_cpu().saturating_sub(r0);
        self.client += support::cpu_time(me).saturating_sub(c0);
        self.machine_busy_ticks += b1 - b0;
        self.machine_ticks += t1 - t0;
        self.invokes += invokes;
        self.elapsed += elapsed;
    }

    fn rate(&self) -> f64 {
        self.invokes as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU per invoke in µs: the emulator, the relays, the client, Docker, and the rest of the
    /// machine (the agents and the kernel's work not charged to those); and the machine's busy share.
    fn per_invoke(&self) -> [f64; 6] {
        let n = self.invokes.max(1) as f64;
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
        let busy_s = self.machine_busy_ticks as f64 / clock_ticks_per_second();
        let rest = busy_s * 1e6 / n - us(self.emulator) - us(self.relays) - us(self.client) - us(self.docker);
        let busy_share = 100.0 * self.machine_busy_ticks as f64 / self.machine_ticks.max(1) as f64;
        [us(self.emulator), us(self.relays), us(self.client), us(self.docker), rest, busy_share]
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// Where each session's agent is reached without the emulator, by session id: its port published
/// on 127.0.0.1 if Docker published one, else the container's own bridge address (as the
/// emulator reaches it where the bridge is routable). Sessions whose id starts with
/// `session_prefix`.
fn agent_addresses(session_prefix: &str) -> std::collections::HashMap<String, SocketAddr> {
    let ids = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", "label=agentcore-local.session-id"])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).split_whitespace().map(String::from).collect();
    if ids.is_empty() {
        return Default::default();
    }
    let format = concat!(
        r#"{{index .Config.Labels "agentcore-local.session-id"}} "#,
        r#"{{.HostConfig.NetworkMode}} "#,
        r#"{{range $p, $b := .NetworkSettings.Ports}}{{range $b}}{{if eq .HostIp "127.0.0.1"}}127.0.0.1:{{.HostPort}}{{end}}{{end}}{{end}} "#,
        r#"{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"#
    );
    let out = std::process::Command::new("docker").args(["inspect", "--format", format]).args(&ids).output().unwrap();
    let listed: Vec<(String, String, String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(session_prefix))
        .filter_map(|l| {
            let mut fields = l.split(' ').map(String::from);
            Some((fields.next()?, fields.next()?, fields.next()?, fields.next()?))
        })
        .collect();
    // A sandbox that joined a network holder's namespace is reached at the holder's address.
    let holders: Vec<&str> = listed.iter().filter_map(|(_, mode, _, _)| mode.strip_prefix("container:")).collect();
    let mut holder_addresses = std::collections::HashMap::new();
    if !holders.is_empty() {
        let format = r#"{{.Id}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"#;
        let out =
            std::process::Command::new("docker").args(["inspect", "--format", format]).args(&holders).output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((id, address)) = line.split_once(' ') {
                holder_addresses.insert(id.to_string(), address.to_string());
            }
        }
    }
    listed
        .into_iter()
        .filter_map(|(session, mode, published, address)| {
            let address = match mode.strip_prefix("container:") {
                Some(holder) => holder_addresses.get(holder)?.clone(),
                None => address,
            };
            let addr = if published.is_empty() { format!("{address}:8080") } else { published };
            Some((session, addr.parse().ok()?))
        })
        .collect()
}

const ECHO: &[u8] = br#"{"action":"echo","n":1}"#;

/// Warm invokes of one session, alternating: through the emulator, to its agent directly at the
/// address the emulator reaches it at, and to the agent through a bare relay and a verifying one.
async fn warm(client: &HttpClient, addr: SocketAddr, pid: u32, arn_path: &str) -> Warm {
    let session = format!("bench-warm-{}", uuid::Uuid::new_v4());
    let presigned = Presigned::new(invoke_request(addr, arn_path, &session, ECHO), ECHO);
    body_of(client, presigned.request()).await;
    let direct = agent_addresses(&session).remove(&session).expect("the warm session's agent address");
    let relay = support::bare_relay::start(direct, Kind::Bare);
    let verifying = support::bare_relay::start(direct, Kind::Verifying);
    // BENCH_WARM_CALLS=n: a longer warm loop, to attach a profiler to the emulator.
    let calls = std::env::var("BENCH_WARM_CALLS").ok().and_then(|n| n.parse().ok()).unwrap_or(WARM_CALLS);
    let (cpu_before, sleeps_before, relay_cpu_before, verifying_cpu_before) =
        (support::cpu_time(pid), support::sleeps(pid), relay.cpu_time(), verifying.cpu_time());
    let straight_to =
        [Straight::Plain(direct), Straight::Plain(relay.addresses[0]), Straight::Signed(verifying.addresses[0])];
    let (via, mut straight) = warm_calls(client, &presigned, &straight_to, calls).await;
    let emulator_cpu_per_call = (support::cpu_time(pid) - cpu_before) / calls as u32;
    let relay_cpu_per_call = (relay.cpu_time() - relay_cpu_before) / calls as u32;
    let verifying_cpu_per_call = (verifying.cpu_time() - verifying_cpu_before) / calls as u32;
    let emulator_sleeps_per_call = (support::sleeps(pid) - sleeps_before) as f64 / calls as f64;
    let verified = straight.pop().unwrap();
    let relayed = straight.pop().unwrap();
    Warm {
        via,
        direct: straight.pop().unwrap(),
        relayed,
        verified,
        address: direct,
        emulator_cpu_per_call,
        emulator_sleeps_per_call,
        relay_cpu_per_call,
        verifying_cpu_per_call,
    }
}

/// Warm invoke round trips of one session: through the emulator, straight to its agent, and
/// through the bare relay (`support::bare_relay`) and the verifying relay to its agent.
struct Warm {
    via: Vec<Duration>,
    direct: Vec<Duration>,
    relayed: Vec<Duration>,
    /// Through the verifying relay (`support::verifying_relay`).
    verified: Vec<Duration>,
    address: SocketAddr,
    /// The emulator's CPU time (all threads) over the loop, per invoke through it.
    emulator_cpu_per_call: Duration,
    /// Times the emulator's threads went to sleep over the loop, per invoke through it.
    emulator_sleeps_per_call: f64,
    /// The bare relay's CPU time over the loop, per invoke through it.
    relay_cpu_per_call: Duration,
    /// The verifying relay's CPU time over the loop, per invoke through it.
    verifying_cpu_per_call: Duration,
}

/// THROUGHPUT_SESSIONS sessions invoked at once, each by its own worker, over THROUGHPUT_ROUNDS
/// rounds: invokes per second and where the CPU went, for each way of invoking.
#[derive(Default)]
struct Throughput {
    via: Spent,
    direct: Spent,
    /// Through bare TCP relays on as many threads as the emulator serves on: the floor for any
    /// relay on this machine.
    relayed: Spent,
    /// Through verifying relays (`support::verifying_relay`), as many threads: the floor for any
    /// emulator.
    verified: Spent,
}

impl Throughput {
    fn rows(&self) -> Vec<String> {
        let (via, direct, relayed, verified) =
            (self.via.rate(), self.direct.rate(), self.relayed.rate(), self.verified.rate());
        let cpu = |label: &str, spent: &Spent| {
            let [emulator, relays, client, docker, rest, busy] = spent.per_invoke();
            format!(
                "| CPU per invoke at {THROUGHPUT_SESSIONS} sessions, {label}: emulator / relays / client / Docker / rest (agents, kernel) | {emulator:.0} / {relays:.0} / {client:.0} / {docker:.0} / {rest:.0} us, machine {busy:.0}% busy | |"
            )
        };
        vec![
            format!(
                "| invokes/s, {THROUGHPUT_SESSIONS} sessions at once, via emulator / directly | {via:.0} / {direct:.0} ({:.0}%) | >= 90% |",
                100.0 * via / direct
            ),
            format!(
                "| baseline: through bare TCP relays ({} threads) / directly | {relayed:.0} ({:.0}%) | (the floor for any relay) |",
                relay_threads(),
                100.0 * relayed / direct
            ),
            format!("| emulator / bare relays                        | {:>13.0}% |              |", 100.0 * via / relayed),
            format!(
                "| baseline: through verifying relays ({} threads) / directly | {verified:.0} ({:.0}%) | (the floor for any emulator) |",
                relay_threads(),
                100.0 * verified / direct
            ),
            format!("| emulator / verifying relays                   | {:>13.0}% |              |", 100.0 * via / verified),
            cpu("via emulator", &self.via),
            cpu("directly", &self.direct),
            cpu("through bare relays", &self.relayed),
            cpu("through verifying relays", &self.verified),
        ]
    }
}

/// Threads the bare relays run on: as many as the emulator serves connections on (one per CPU).
fn relay_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Invokes per second with THROUGHPUT_SESSIONS sessions invoked at once, each by its own worker:
/// through the emulator, the same containers directly, through bare relays and through verifying
/// relays, taking turns.
async fn fifty_at_once(client: &HttpClient, addr: SocketAddr, pid: u32, arn_path: &str) -> Throughput {
    let tp_prefix = format!("bench-tp-{}-", uuid::Uuid::new_v4());
    let tp_sessions: Vec<String> = (0..THROUGHPUT_SESSIONS).map(|i| format!("{tp_prefix}{i:02}")).collect();
    let presigned: Vec<Presigned> =
        tp_sessions.iter().map(|session| Presigned::new(invoke_request(addr, arn_path, session, ECHO), ECHO)).collect();
    let mut starts = Vec::new();
    for p in &presigned {
        let (client, req) = (client.clone(), p.request());
        starts.push(tokio::spawn(async move { body_of(&client, req).await.0 }));
    }
    for s in starts {
        assert_eq!(s.await.unwrap(), 200);
    }
    let presigned = Arc::new(presigned);
    let via: Vec<MakeRequest> = (0..THROUGHPUT_SESSIONS)
        .map(|i| {
            let presigned = presigned.clone();
            Arc::new(move || presigned[i].request()) as MakeRequest
        })
        .collect();
    let ports = agent_addresses(&tp_prefix);
    assert_eq!(ports.len(), THROUGHPUT_SESSIONS, "every throughput session has its agent address");
    let agents: Vec<SocketAddr> = ports.into_values().collect();
    let to_each = |addresses: &[SocketAddr]| {
        addresses
            .iter()
            .map(|&to| {
                Arc::new(move || {
                    Request::post(format!("http://{to}/invocations"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(ECHO)))
                        .unwrap()
                }) as MakeRequest
            })
            .collect::<Vec<_>>()
    };
    let direct = to_each(&agents);
    let relays = support::bare_relay::start_many(&agents, relay_threads(), Kind::Bare);
    let relayed = to_each(&relays.addresses);
    let verifying = support::bare_relay::start_many(&agents, relay_threads(), Kind::Verifying);
    let verified: Vec<MakeRequest> = (0..THROUGHPUT_SESSIONS)
        .map(|i| {
            let (presigned, to) = (presigned.clone(), verifying.addresses[i]);
            Arc::new(move || presigned[i].request_to(to)) as MakeRequest
        })
        .collect();
    let relay_pids = [relays.pid(), verifying.pid()];
    // The four take turns, round after round: this machine's speed drifts over seconds (a
    // direct baseline measured once ranged from 5 163 to 11 663/s between runs), and each ratio
    // should compare rates measured under the same conditions.
    let mut spent = Throughput::default();
    for _ in 0..THROUGHPUT_ROUNDS {
        spent.via.measure(client, &via, pid, &relay_pids).await;
        spent.direct.measure(client, &direct, pid, &relay_pids).await;
        spent.relayed.measure(client, &relayed, pid, &relay_pids).await;
        spent.verified.measure(client, &verified, pid, &relay_pids).await;
    }
    spent
}

/// The warm invoke rows: the emulator, the agent directly, the bare relay and the verifying relay,
/// p50 / p95.
fn warm_rows(warm: &mut Warm) -> Vec<String> {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p = |samples: &mut Vec<Duration>| (us(percentile(samples, 0.5)), us(percentile(samples, 0.95)));
    let ((v50, v95), (d50, d95), (r50, r95)) = (p(&mut warm.via), p(&mut warm.direct), p(&mut warm.relayed));
    let (s50, s95) = p(&mut warm.verified);
    let direct = warm.address;
    vec![
        format!("| warm invoke via emulator p50 / p95            | {v50:>6.0} / {v95:>4.0} us |              |"),
        format!("| baseline: same agent directly ({direct}) p50/p95 | {d50:>6.0} / {d95:>4.0} us |              |"),
        format!("| overhead added by the emulator (p50)          | {:>11.0} us | <= 30 us     |", v50 - d50),
        format!("| baseline: through a bare TCP relay (copies bytes, parses nothing) p50/p95 | {r50:>4.0} / {r95:>4.0} us | |"),
        format!("| overhead of the bare relay over direct (p50)  | {:>11.0} us | (the floor for any relay) |", r50 - d50),
        format!("| baseline: through a verifying relay (parses HTTP, verifies SigV4, forwards) p50/p95 | {s50:>4.0} / {s95:>4.0} us | |"),
        format!("| overhead of the verifying relay over direct (p50) | {:>7.0} us | (the floor for any emulator) |", s50 - d50),
        format!("| emulator CPU time per warm invoke (all threads) | {:>9.0} us |              |", us(warm.emulator_cpu_per_call)),
        format!("| baseline: bare relay CPU time per warm invoke   | {:>9.0} us |              |", us(warm.relay_cpu_per_call)),
        format!("| baseline: verifying relay CPU time per warm invoke | {:>6.0} us |              |", us(warm.verifying_cpu_per_call)),
        format!("| emulator threads' sleeps per warm invoke        | {:>12.2} |              |", warm.emulator_sleeps_per_call),
    ]
}

/// `cargo bench --bench sessions -- relay`: the warm and throughput rows alone, printed with
/// their baselines (for work on the relay path).
fn relay_rows(rt: &tokio::runtime::Runtime) {
    let (mut server, _) = spawn_server(&["--max-tps-per-endpoint", "0", "--warm-pool", "0"]);
    let (addr, pid) = (server.addr, server.child.id());
    rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let arn_path = fixture_runtime(&client, addr, "bench_relay").await;
        let mut warm = warm(&client, addr, pid, &arn_path).await;
        let fifty = fifty_at_once(&client, addr, pid, &arn_path).await;
        for row in warm_rows(&mut warm).into_iter().chain(fifty.rows()) {
            println!("{row}");
        }
    });
    server.stop();
}

fn main() {
    // The bare relays' own process (`support::bare_relay`) is this executable, run again.
    support::bare_relay::serve_if_asked();
    // `cargo bench --bench sessions -- microvm`: the microVM rows alone (no Docker ratios).
    if std::env::args().any(|a| a == "microvm") {
        for row in support::microvm::rows(None) {
            println!("{row}");
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if std::env::args().any(|a| a == "relay") {
        return relay_rows(&rt);
    }
    let mut pooled = pooled_cold_starts(&rt);
    // Cold starts measured without spares (the warm pool is on by default).
    let (mut server, _) = spawn_server(&["--max-tps-per-endpoint", "0", "--warm-pool", "0"]);
    let addr = server.addr;
    let pid = server.child.id();
    let docker = rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let arn_path = fixture_runtime(&client, addr, "bench_sessions").await;
        let echo = ECHO;

        // Cold starts, one after another; the sessions stay alive for the memory figures.
        let rss_before = rss_kib(pid);
        let mut cold = cold_starts(&client, addr, &arn_path, "bench-cold-", COLD_STARTS, echo, Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = rss_kib(pid);
        let phases = phase_p50s(&client, addr, "bench-cold-").await;
        let agent = FloorContainer {
            image: "agentcore-local-test-agent:latest".into(),
            payload: br#"{"action":"echo","n":1}"#,
            ..Default::default()
        };
        let mut floor = docker_floor(&client, COLD_STARTS, &agent).await;
        let on_network = FloorContainer { network: Some(agentcore_local::sandbox::docker::NETWORK.into()), ..agent };
        let mut network_floor = docker_floor(&client, COLD_STARTS, &on_network).await;
        let unpublished = FloorContainer { unpublished: true, ..on_network.clone() };
        let mut unpublished_floor = docker_floor(&client, COLD_STARTS, &unpublished).await;
        let network_ahead = FloorContainer { network_ahead: true, ..unpublished.clone() };
        let mut network_ahead_floor = docker_floor(&client, COLD_STARTS, &network_ahead).await;
        let (containers, container_mib) = container_memory_mib("bench-cold-");
        let mut spaced =
            cold_starts(&client, addr, &arn_path, "bench-spaced-", SPACED_STARTS, echo, SPACED_GAP)
                .await;

        let mut warm = warm(&client, addr, pid, &arn_path).await;

        // Sessions created per second, a few at a time.
        let started = Instant::now();
        let mut workers = Vec::new();
        for w in 0..BURST_CONCURRENCY {
            let (client, arn_path) = (client.clone(), arn_path.clone());
            workers.push(tokio::spawn(async move {
                for i in (w..BURST_SESSIONS).step_by(BURST_CONCURRENCY) {
                    let session = format!("bench-burst-{i:04}-{}", uuid::Uuid::new_v4());
                    let (status, _) = body_of(&client, invoke_request(addr, &arn_path, &session, echo)).await;
                    assert_eq!(status, 200);
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let burst_rate = BURST_SESSIONS as f64 / started.elapsed().as_secs_f64();

        let fifty = fifty_at_once(&client, addr, pid, &arn_path).await;

        let (c50, c95) = (percentile(&mut cold, 0.5), percentile(&mut cold, 0.95));
        println!("\nsessions benchmark (fixture agent FROM scratch, Docker, loopback)");
        println!("| measurement                                   | value          | target       |");
        println!("|-----------------------------------------------|----------------|--------------|");
        println!("| cold start to first response p50 ({COLD_STARTS} sessions) | {:>11.1} ms | <= 300 ms    |", ms(c50));
        println!("| cold start to first response p95              | {:>11.1} ms |              |", ms(c95));
        let f50 = percentile(&mut floor, 0.5);
        println!("| baseline: Docker API floor p50 (create, start, /ping, POST) | {:>6.1} ms | |", ms(f50));
        println!("| cold start / Docker floor (p50)               | {:>13.2}x | <= 1.05x     |", ms(c50) / ms(f50));
        let n50 = percentile(&mut network_floor, 0.5);
        println!("| baseline: the same floor on the sandbox network (icc off) p50 | {:>4.1} ms | |", ms(n50));
        println!("| cold start / sandbox-network floor (p50)      | {:>13.2}x | <= 1.05x     |", ms(c50) / ms(n50));
        let u50 = percentile(&mut unpublished_floor, 0.5);
        println!(
            "| baseline: that floor publishing no port, reached at the container's address p50 | {:>4.1} ms | |",
            ms(u50)
        );
        println!("| cold start / unpublished sandbox-network floor (p50) | {:>6.2}x | <= 1.05x |", ms(c50) / ms(u50));
        let a50 = percentile(&mut network_ahead_floor, 0.5);
        println!(
            "| baseline: that floor with the network attached ahead (joins a running holder's namespace) p50 | {:>4.1} ms | |",
            ms(a50)
        );
        println!("| cold start / network-ahead floor (p50)        | {:>13.2}x |              |", ms(c50) / ms(a50));
        let (s50, s95) = (percentile(&mut spaced, 0.5), percentile(&mut spaced, 0.95));
        println!(
            "| cold start p50 / p95, {SPACED_STARTS} sessions {} ms apart | {:>6.1} / {:>5.1} ms | |",
            SPACED_GAP.as_millis(),
            ms(s50),
            ms(s95)
        );
        println!("| that cold start / Docker floor (p50)          | {:>13.2}x | <= 1.05x     |", ms(s50) / ms(f50));
        println!(
            "| cold phases p50: created / started / ready / first response | {:.1} / {:.1} / {:.1} / {:.1} ms | |",
            phases[0], phases[1], phases[2], phases[3]
        );
        let (p50, p95) = (percentile(&mut pooled, 0.5), percentile(&mut pooled, 0.95));
        println!(
            "| cold start with --warm-pool 1, p50 / p95      | {:>6.1} / {:>4.1} ms | <= 300 ms    |",
            ms(p50),
            ms(p95)
        );
        for row in warm_rows(&mut warm) {
            println!("{row}");
        }
        println!(
            "| memory per idle session: container (mean)     | {:>11.2} MiB |              | ({containers} containers)",
            container_mib / containers.max(1) as f64
        );
        println!(
            "| memory per idle session: emulator RSS growth  | {:>11.1} KiB |              |",
            (rss_after as f64 - rss_before as f64) / COLD_STARTS as f64
        );
        println!(
            "| sessions created per second ({BURST_CONCURRENCY} concurrent)     | {:>14.1} |              |",
            burst_rate
        );
        for row in fifty.rows() {
            println!("{row}");
        }
        DockerFigures { cold_start_p50: c50, container_mib: container_mib / containers.max(1) as f64 }
    });
    server.stop();
    for row in support::code_deploy::rows() {
        println!("{row}");
    }
    for row in support::models::rows() {
        println!("{row}");
    }
    for row in support::microvm::rows(Some(&docker)) {
        println!("{row}");
    }
}
