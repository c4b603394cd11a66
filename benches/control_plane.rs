//! Control-plane benchmark: start-up to first accepted request, idle RSS, and signed
//! Get/List/Create throughput over loopback with concurrent keep-alive clients, next to a baseline
//! measured in the same run (a bare hyper server answering `{}`: the ceiling loopback and this
//! client allow on this machine).
//!
//! Then start-up and idle RSS with a data dir holding 1 000 runtimes, 10 000 objects and 100 log
//! streams, next to start-up with an empty data dir; that RSS is split into anonymous memory and
//! file-backed pages (mostly the binary's code, which the release link lays out hot first: see
//! ARCHITECTURE.md, "Release builds"; to compare, build with `AGENTCORE_LOCAL_HOT_TEXT=off` after
//! `touch src/main.rs`, since cargo does not track the variable).
//!
//! Run: `cargo bench --bench control_plane` (release build of the real binary).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{rss_kib, signed, spawn_server, status_kib};

const CONCURRENCY: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(4);

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Requests per second with CONCURRENCY workers for RUN_FOR; `make` builds each request.
async fn throughput(client: &HttpClient, make: Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN_FOR;
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (client, make, done, failed) = (client.clone(), make.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64 * 1_000_000;
            while Instant::now() < deadline {
                i += 1;
                match client.request(make(i)).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if ok {
                            done.fetch_add(1, Ordering::Relaxed)
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed)
                        };
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (done.load(Ordering::Relaxed) as f64 / RUN_FOR.as_secs_f64(), failed.load(Ordering::Relaxed))
}

async fn baseline_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"{}"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

const POPULATED_RUNTIMES: usize = 1000;
const POPULATED_OBJECTS: usize = 10_000;
const POPULATED_STREAMS: usize = 100;

/// Fill `dir` through a running emulator: runtimes, S3 objects in one bucket, log streams.
fn populate(rt: &tokio::runtime::Runtime, dir: &str) {
    // The Docker backend (the default): only with a sandbox backend are agent logs kept.
    let (mut server, _) = spawn_server(&["--warm-pool", "0", "--data-dir", dir]);
    let addr = server.addr;
    rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let send = move |req: Request<Full<Bytes>>| {
            let client = client.clone();
            async move {
                let resp = client.request(req).await.unwrap();
                let status = resp.status();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body));
            }
        };
        let s3 = move |method: &str, path: &str, body: &[u8]| {
            let hash = agentcore_local::kernel::sigv4::canonical::sha256_hex(body);
            support::signed_for("s3", method, addr, path, "", body, &[("x-amz-content-sha256", hash.as_str())])
        };
        send(s3("PUT", "/populated", b"")).await;
        // Log streams are made by agents' output: one session of the fixture agent per stream.
        let fixture_client: support::HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let arn_path = support::fixture_runtime(&fixture_client, addr, "populated_agent").await;
        let work: Vec<Request<Full<Bytes>>> = (0..POPULATED_RUNTIMES)
            .map(|i| {
                let uri = support::FIXTURE_IMAGE_URI;
                let body = format!(r#"{{"agentRuntimeName":"populated_{i}","agentRuntimeArtifact":{{"containerConfiguration":{{"containerUri":"{uri}"}}}},"roleArn":"arn:aws:iam::123456789012:role/R"}}"#);
                signed("PUT", addr, "/runtimes/", "", body.as_bytes())
            })
            .chain((0..POPULATED_OBJECTS).map(|i| s3("PUT", &format!("/populated/object-{i:05}"), b"sixteen bytes ok")))
            .chain((0..POPULATED_STREAMS).map(|i| {
                let session = format!("populated-session-{i:04}-{}", uuid::Uuid::new_v4());
                support::invoke_request(addr, &arn_path, &session, br#"{"action":"log","stdout":"populated"}"#)
            }))
            .collect();
        let work = Arc::new(parking_lot::Mutex::new(work));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (work, send) = (work.clone(), send.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(req) = work.lock().pop() else { break };
                    send(req).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let _ = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    let _ = server.child.wait();
}

/// Resident memory in KiB: the whole, and its two parts (the binary's and libraries' pages, mostly
/// code, are file-backed; heaps and stacks anonymous).
#[derive(Default)]
struct Rss {
    total: u64,
    anonymous: u64,
    file: u64,
}

impl Rss {
    fn of(pid: u32) -> Rss {
        Rss { total: rss_kib(pid), anonymous: status_kib(pid, "RssAnon:"), file: status_kib(pid, "RssFile:") }
    }
}

/// Median start-up of 7 starts on `dir` with the default (Docker) backend, which opens its
/// listener for sandboxes before accepting, and the idle RSS of the last one.
fn startup_on(dir: &str) -> (Duration, Rss) {
    let mut startups = Vec::new();
    let mut rss = Rss::default();
    for i in 0..7 {
        let (mut s, took) = spawn_server(&["--warm-pool", "0", "--data-dir", dir]);
        startups.push(took);
        if i == 6 {
            std::thread::sleep(Duration::from_millis(300));
            rss = Rss::of(s.child.id());
        }
        // SIGTERM: the next start finds the data dir as a clean shutdown leaves it.
        let _ = std::process::Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status();
        s.child.wait().unwrap();
    }
    startups.sort();
    (startups[startups.len() / 2], rss)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Start-up: median of 7 cold process starts.
    let mut startups = Vec::new();
    for _ in 0..7 {
        let (mut s, took) = spawn_server(&["--sandbox", "none"]);
        startups.push(took);
        s.child.kill().unwrap();
        s.child.wait().unwrap();
    }
    startups.sort();
    let startup_p50 = startups[startups.len() / 2];

    let empty_dir = tempfile::tempdir().unwrap();
    let (empty_startup, _) = startup_on(empty_dir.path().to_str().unwrap());
    // BENCH_POPULATED_DIR keeps the populated data dir (made once, reused while it exists) for
    // profiling start-up by hand: `agentcore-local serve --data-dir $BENCH_POPULATED_DIR`.
    let populated_tmp = tempfile::tempdir().unwrap();
    let populated_dir = std::env::var("BENCH_POPULATED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| populated_tmp.path().to_path_buf());
    if !populated_dir.join("agentcore-local.sqlite3").exists() {
        populate(&rt, populated_dir.to_str().unwrap());
    }
    let (populated_startup, populated_rss) = startup_on(populated_dir.to_str().unwrap());

    let (mut server, _) = spawn_server(&["--sandbox", "none"]);
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = rss_kib(server.child.id());
    let addr = server.addr;

    rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(CONCURRENCY).build_http();
        // One runtime to read.
        let create_body = |name: &str| {
            format!(r#"{{"agentRuntimeName":"{name}","agentRuntimeArtifact":{{"containerConfiguration":{{"containerUri":"123456789012.dkr.ecr.us-east-1.amazonaws.com/a:b"}}}},"roleArn":"arn:aws:iam::123456789012:role/R"}}"#)
        };
        let resp = client.request(signed("PUT", addr, "/runtimes/", "", create_body("bench_seed").as_bytes())).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let id = body["agentRuntimeId"].as_str().unwrap().to_string();
        for i in 0..20 {
            let _ = client.request(signed("PUT", addr, "/runtimes/", "", create_body(&format!("seed_{i}")).as_bytes())).await;
        }

        let base = baseline_server().await;
        let (baseline, _) = throughput(&client, Arc::new(move |_| Request::get(format!("http://{base}/")).body(Full::new(Bytes::new())).unwrap())).await;

        // Requests are signed once per second of wall time by the clients in real SDKs; here each
        // request is signed fresh, so client signing cost is included in every row.
        let get_path = format!("/runtimes/{id}/");
        let (get, get_failed) = throughput(&client, Arc::new(move |_| signed("GET", addr, &get_path, "", b""))).await;
        let (list, list_failed) = throughput(&client, Arc::new(move |_| signed("POST", addr, "/runtimes/", "maxResults=10", b""))).await;
        let (create, create_failed) = throughput(
            &client,
            Arc::new(move |i| signed("PUT", addr, "/runtimes/", "", create_body(&format!("b{i}")).as_bytes())),
        )
        .await;

        println!("\ncontrol-plane benchmark ({CONCURRENCY} keep-alive connections, {}s per row, loopback)", RUN_FOR.as_secs());
        println!("| measurement                         | value        | target      |");
        println!("|-------------------------------------|--------------|-------------|");
        println!("| start-up to first accepted request  | {:>9.1} ms | < 50 ms     |", startup_p50.as_secs_f64() * 1e3);
        println!("| idle RSS                            | {:>9.1} MB | < 20 MB     |", idle_rss as f64 / 1024.0);
        println!(
            "| start-up, data dir: {POPULATED_RUNTIMES} runtimes, {POPULATED_OBJECTS} objects, {POPULATED_STREAMS} log streams | {:>6.1} ms | <= 15 ms |",
            populated_startup.as_secs_f64() * 1e3
        );
        println!("| baseline: start-up, empty data dir (both with Docker) | {:>6.1} ms |  |", empty_startup.as_secs_f64() * 1e3);
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!("| idle RSS with that data dir         | {:>9.1} MiB | <= 16 MiB  |", mib(populated_rss.total));
        println!(
            "| of which anonymous / file-backed (the binary's code, libraries) | {:.1} / {:.1} MiB | |",
            mib(populated_rss.anonymous),
            mib(populated_rss.file)
        );
        println!("| baseline: bare hyper `{{}}` req/s     | {:>12.0} |             |", baseline);
        println!("| GetAgentRuntime signed req/s        | {:>12.0} | > 5000      | ({:.0}% of baseline, {get_failed} failed)", get, 100.0 * get / baseline);
        println!("| ListAgentRuntimes signed req/s      | {:>12.0} |             | ({:.0}% of baseline, {list_failed} failed)", list, 100.0 * list / baseline);
        println!("| CreateAgentRuntime signed req/s     | {:>12.0} |             | ({:.0}% of baseline, {create_failed} failed)", create, 100.0 * create / baseline);
    });
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
