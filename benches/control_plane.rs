//! Control-plane benchmark: start-up to first accepted request, idle RSS, and signed
//! Get/List/Create throughput over loopback with concurrent keep-alive clients, next to a baseline
//! measured in the same run (a bare hyper server answering `{}`: the ceiling loopback and this
//! client allow on this machine).
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
use support::{rss_kib, signed, spawn_server};

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
        println!("| baseline: bare hyper `{{}}` req/s     | {:>12.0} |             |", baseline);
        println!("| GetAgentRuntime signed req/s        | {:>12.0} | > 5000      | ({:.0}% of baseline, {get_failed} failed)", get, 100.0 * get / baseline);
        println!("| ListAgentRuntimes signed req/s      | {:>12.0} |             | ({:.0}% of baseline, {list_failed} failed)", list, 100.0 * list / baseline);
        println!("| CreateAgentRuntime signed req/s     | {:>12.0} |             | ({:.0}% of baseline, {create_failed} failed)", create, 100.0 * create / baseline);
    });
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
