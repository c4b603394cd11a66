//! Shared by the benchmarks: start the release binary, read its RSS, sign requests.
#![allow(dead_code)]

pub mod bare_relay;
pub mod code_deploy;
pub mod floor;
pub mod microvm;
pub mod models;
pub mod verifying_relay;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentcore_local::kernel::sigv4::canonical::{
    canonical_request, sha256_hex, string_to_sign, RequestParts, UriEncoding,
};
use agentcore_local::kernel::sigv4::time::epoch_to_amz_date;
use agentcore_local::kernel::sigv4::verify::{sign, signing_key};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

/// A running emulator. Dropped while it still runs (a row panicked, or the benchmark died on a
/// closed stdout), it gets SIGTERM and is waited for, so that it removes every sandbox it started
/// instead of outliving the benchmark with them (seen: 115 containers left running).
pub struct Spawned {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Spawned {
    /// SIGTERM (the emulator then stops its sessions and removes their sandboxes) and a wait.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start `agentcore-local serve` on an ephemeral port with `extra` flags (in memory unless they name
/// a `--data-dir`); returns it and the time from spawn to its first answered request.
pub fn spawn_server(extra: &[&str]) -> (Spawned, Duration) {
    spawn_server_with_env(extra, &[])
}

/// Like `spawn_server`, with extra environment variables for the emulator.
pub fn spawn_server_with_env(extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (Spawned, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentcore-local"))
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(if extra.contains(&"--data-dir") { None } else { Some("--in-memory") })
        .args(extra)
        // Extra flags for experiments, e.g. BENCH_SERVER_ARGS="--worker-threads 2".
        .args(std::env::var("BENCH_SERVER_ARGS").unwrap_or_default().split_whitespace())
        .stdout(Stdio::piped())
        // Warnings (a failed start, a missing image) explain a failed run.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn agentcore-local");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("agentcore-local printed no URL line (see its error above)");
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    // First accepted request: a TCP connect plus one HTTP round trip.
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut buf = [0u8; 12];
            if s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {
                break;
            }
        }
    }
    (Spawned { child, addr }, started.elapsed())
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` memory line in KiB (0 when the process or the line is gone).
pub fn status_kib(pid: u32, line: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A SigV4-signed request, built with the emulator's own (suite-verified) signer.
pub fn signed(method: &str, addr: SocketAddr, path: &str, query: &str, body: &[u8]) -> Request<Full<Bytes>> {
    signed_with(method, addr, path, query, body, &[])
}

/// Like `signed`, with extra headers that are signed too.
pub fn signed_with(
    method: &str,
    addr: SocketAddr,
    path: &str,
    query: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    signed_for("bedrock-agentcore", method, addr, path, query, body, extra)
}

/// Like `signed_with`, for another signing name (e.g. `bedrock`).
pub fn signed_for(
    service: &str,
    method: &str,
    addr: SocketAddr,
    path: &str,
    query: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let amz_date = epoch_to_amz_date(now);
    let host = addr.to_string();
    let mut headers = vec![("host".to_string(), host.clone()), ("x-amz-date".to_string(), amz_date.clone())];
    if !body.is_empty() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    for (k, v) in extra {
        headers.push((k.to_string(), v.to_string()));
    }
    let signed_names: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let parts = RequestParts { method, raw_path: path, raw_query: query, headers: &headers };
    let creq = canonical_request(&parts, &signed_names, &sha256_hex(body), UriEncoding::NormalizeAndDoubleEncode, None);
    let scope = format!("{}/us-east-1/{service}/aws4_request", &amz_date[..8]);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let sig = sign(&signing_key("test", &amz_date[..8], "us-east-1", service), &sts);
    let uri = if query.is_empty() { format!("http://{host}{path}") } else { format!("http://{host}{path}?{query}") };
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in &headers {
        if k != "host" {
            b = b.header(k, v);
        }
    }
    b.header(
        "authorization",
        format!("AWS4-HMAC-SHA256 Credential=test/{scope}, SignedHeaders={}, Signature={sig}", signed_names.join(";")),
    )
    .body(Full::new(Bytes::copy_from_slice(body)))
    .unwrap()
}

pub type HttpClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The fixture agent (fixtures/build-images.sh), as a runtime names it.
pub const FIXTURE_IMAGE_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agentcore-local-test-agent:latest";

pub async fn body_of(client: &HttpClient, req: Request<Full<Bytes>>) -> (u16, Bytes) {
    use http_body_util::BodyExt;
    let resp = client.request(req).await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

pub fn invoke_request(addr: SocketAddr, arn_path: &str, session: &str, payload: &[u8]) -> Request<Full<Bytes>> {
    signed_with("POST", addr, arn_path, "", payload, &[("x-amzn-bedrock-agentcore-runtime-session-id", session)])
}

/// StopRuntimeSession for `session` of the runtime whose invocation path is `arn_path`.
pub fn stop_request(addr: SocketAddr, arn_path: &str, session: &str) -> Request<Full<Bytes>> {
    let path = arn_path.replace("/invocations", "/stopruntimesession");
    signed_with("POST", addr, &path, "", b"{}", &[("x-amzn-bedrock-agentcore-runtime-session-id", session)])
}

/// Create the fixture runtime and wait for READY; returns the invocation path.
pub async fn fixture_runtime(client: &HttpClient, addr: SocketAddr, name: &str) -> String {
    let create = format!(
        r#"{{"agentRuntimeName":"{name}","agentRuntimeArtifact":{{"containerConfiguration":{{"containerUri":"{FIXTURE_IMAGE_URI}"}}}},"roleArn":"arn:aws:iam::123456789012:role/R"}}"#
    );
    let (status, body) = body_of(client, signed("PUT", addr, "/runtimes/", "", create.as_bytes())).await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = created["agentRuntimeId"].as_str().unwrap().to_string();
    let arn = created["agentRuntimeArn"].as_str().unwrap().to_string();
    loop {
        let (_, body) = body_of(client, signed("GET", addr, &format!("/runtimes/{id}/"), "", b"")).await;
        let rt: serde_json::Value = serde_json::from_slice(&body).unwrap();
        match rt["status"].as_str() {
            Some("READY") => break,
            Some("CREATING") => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("runtime is {other:?}: {} (build the fixture image first)", rt["failureReason"]),
        }
    }
    format!("/runtimes/{}/invocations", percent_encoding::utf8_percent_encode(&arn, percent_encoding::NON_ALPHANUMERIC))
}

/// A request that stays valid for the clock-skew window: rebuilt from the same signed headers.
pub struct Presigned {
    uri: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Presigned {
    pub fn new(req: Request<Full<Bytes>>, body: &[u8]) -> Presigned {
        let uri = req.uri().to_string();
        let headers = req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
        Presigned { uri, headers, body: Bytes::copy_from_slice(body) }
    }

    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut b = Request::post(&self.uri);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(self.body.clone())).unwrap()
    }

    /// The same signed request sent to `to` instead (a relay), its `Host` still the one signed.
    pub fn request_to(&self, to: SocketAddr) -> Request<Full<Bytes>> {
        let uri: hyper::Uri = self.uri.parse().unwrap();
        let signed_host = uri.authority().unwrap().to_string();
        let mut request = self.request();
        *request.uri_mut() = format!("http://{to}{}", uri.path_and_query().unwrap()).parse().unwrap();
        request.headers_mut().insert(hyper::header::HOST, signed_host.parse().unwrap());
        request
    }
}

/// Where `warm_calls` sends the payload besides the emulator.
#[derive(Clone, Copy)]
pub enum Straight {
    /// Unsigned, as to the agent itself (or a bare relay to it).
    Plain(SocketAddr),
    /// The emulator's signed request, sent to a relay that verifies it.
    Signed(SocketAddr),
}

/// `n` new sessions of the runtime at `arn_path`, one after another with `gap` between one's
/// response and the next one's request (ids `prefix` + a counter + a uuid): the time from each
/// first invocation to its whole response. The sessions stay alive.
pub async fn cold_starts(
    client: &HttpClient,
    addr: SocketAddr,
    arn_path: &str,
    prefix: &str,
    n: usize,
    payload: &[u8],
    gap: Duration,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        let session = format!("{prefix}{i:04}-{}", uuid::Uuid::new_v4());
        let request = invoke_request(addr, arn_path, &session, payload);
        let started = Instant::now();
        let (status, body) = body_of(client, request).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        samples.push(started.elapsed());
    }
    samples
}

/// `n` rounds of one invocation through the emulator (`via`, an already signed request of a warm
/// session) and the same payload sent straight to each of `direct` (the session's agent, or a
/// relay to it); each request is built before its clock starts. (via, per direct) round trips.
pub async fn warm_calls(
    client: &HttpClient,
    via: &Presigned,
    direct: &[Straight],
    n: usize,
) -> (Vec<Duration>, Vec<Vec<Duration>>) {
    let mut through = Vec::with_capacity(n);
    let mut straight = vec![Vec::with_capacity(n); direct.len()];
    for _ in 0..n {
        let request = via.request();
        let t = Instant::now();
        let (status, _) = body_of(client, request).await;
        assert_eq!(status, 200);
        through.push(t.elapsed());
        for (to, samples) in direct.iter().zip(&mut straight) {
            let request = match *to {
                Straight::Plain(to) => Request::post(format!("http://{to}/invocations"))
                    .header("content-type", "application/json")
                    .body(Full::new(via.body.clone()))
                    .unwrap(),
                Straight::Signed(to) => via.request_to(to),
            };
            let t = Instant::now();
            let (status, _) = body_of(client, request).await;
            assert_eq!(status, 200);
            samples.push(t.elapsed());
        }
    }
    (through, straight)
}

/// CPU time a process has used so far, all its threads (from each thread's schedstat, in ns).
pub fn cpu_time(pid: u32) -> Duration {
    Duration::from_nanos(sum_over_threads(pid, "schedstat", |s| s.split_whitespace().next()?.parse().ok()))
}

/// Times a process's threads have gone to sleep so far (voluntary context switches, all threads):
/// each is a wake-up to pay for later, which costs far more than the syscall on a virtual machine.
pub fn sleeps(pid: u32) -> u64 {
    sum_over_threads(pid, "status", |s| {
        s.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?.trim().parse().ok()
    })
}

/// The sum over a process's threads of a figure read from each thread's `/proc` file `file`
/// (0 once the process is gone).
fn sum_over_threads(pid: u32, file: &str, figure: impl Fn(&str) -> Option<u64>) -> u64 {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    threads.flatten().filter_map(|t| std::fs::read_to_string(t.path().join(file)).ok()).filter_map(|s| figure(&s)).sum()
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}
