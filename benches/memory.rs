//! AgentCore Memory benchmark, on a data dir (every acknowledged write is fsynced, as in use):
//! CreateEvent throughput with concurrent keep-alive clients and RetrieveMemoryRecords latency over
//! 10 000 records, next to GetMemory measured the same way in the same run (the cost of a signed
//! request that reads one row: the floor the memory operations stand on).
//!
//! Run: `cargo bench --bench memory` (release build of the real binary).

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
use serde_json::{json, Value};
use support::{signed, spawn_server};

const CONCURRENCY: usize = 16;
const RUN_FOR: Duration = Duration::from_secs(4);
const RECORDS: usize = 10_000;
const QUERIES: usize = 300;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;
type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Successful requests per second with CONCURRENCY workers for RUN_FOR.
async fn throughput(client: &HttpClient, make: MakeRequest) -> (f64, u64) {
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
                let ok = match client.request(make(i)).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        ok
                    }
                    Err(_) => false,
                };
                if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (done.load(Ordering::Relaxed) as f64 / RUN_FOR.as_secs_f64(), failed.load(Ordering::Relaxed))
}

/// p50 and p95 of one client's sequential requests, in milliseconds.
async fn latency(client: &HttpClient, n: usize, make: impl Fn(usize) -> Request<Full<Bytes>>) -> (f64, f64) {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let resp = client.request(make(i)).await.unwrap();
        assert!(resp.status().is_success(), "request {i} failed: {}", resp.status());
        let _ = resp.into_body().collect().await;
        took.push(started.elapsed().as_secs_f64() * 1e3);
    }
    took.sort_by(f64::total_cmp);
    (took[n / 2], took[n * 95 / 100])
}

async fn call(client: &HttpClient, req: Request<Full<Bytes>>) -> Value {
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

// Words for records and queries: each record names a person, a place, a thing and an activity.
const PEOPLE: &[&str] = &["alice", "bruno", "chiara", "dmitri", "esther", "farid", "greta", "hiroshi", "ines", "jonas"];
const PLACES: &[&str] =
    &["lisbon", "oslo", "nairobi", "kyoto", "quito", "tbilisi", "hobart", "tallinn", "accra", "montreal"];
const THINGS: &[&str] = &[
    "bicycle",
    "guitar",
    "telescope",
    "kayak",
    "camera",
    "piano",
    "drone",
    "easel",
    "kiln",
    "loom",
    "lathe",
    "sextant",
];
const ACTIVITIES: &[&str] =
    &["climbing", "baking", "sailing", "chess", "pottery", "birdwatching", "fencing", "origami"];

fn record_text(i: usize) -> String {
    format!(
        "{} keeps a {} in {} and spends weekends {} with friends number {}.",
        PEOPLE[i % PEOPLE.len()],
        THINGS[(i / 10) % THINGS.len()],
        PLACES[(i / 120) % PLACES.len()],
        ACTIVITIES[(i / 7) % ACTIVITIES.len()],
        i
    )
}

fn query_text(i: usize) -> String {
    format!(
        "where does {} keep the {} for {}",
        PEOPLE[i % PEOPLE.len()],
        THINGS[(i * 7) % THINGS.len()],
        ACTIVITIES[(i * 3) % ACTIVITIES.len()]
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let (mut server, _) = spawn_server(&["--sandbox", "none", "--data-dir", &data_dir]);
    let addr: SocketAddr = server.addr;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(CONCURRENCY).build_http();
        let created = call(
            &client,
            signed("POST", addr, "/memories/create", "", br#"{"name":"bench_memory","eventExpiryDuration":30}"#),
        )
        .await;
        let id = created["memory"]["id"].as_str().unwrap().to_string();
        for _ in 0..200 {
            let got = call(&client, signed("GET", addr, &format!("/memories/{id}/details"), "", b"")).await;
            if got["memory"]["status"] == "ACTIVE" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let seeding = Instant::now();
        for batch in 0..RECORDS / 100 {
            let records: Vec<Value> = (batch * 100..batch * 100 + 100)
                .map(|i| {
                    json!({"requestIdentifier": format!("r{i}"), "namespaces": ["/bench/"],
                           "content": {"text": record_text(i)}, "timestamp": 1_764_000_000})
                })
                .collect();
            let body = json!({"records": records}).to_string();
            let out = call(&client, signed("POST", addr, &format!("/memories/{id}/memoryRecords/batchCreate"), "", body.as_bytes())).await;
            assert_eq!(out["successfulRecords"].as_array().unwrap().len(), 100);
        }
        let seeded = seeding.elapsed();

        let get_path = format!("/memories/{id}/details");
        let (get_p50, get_p95) = latency(&client, QUERIES, |_| signed("GET", addr, &get_path, "", b"")).await;
        let retrieve_path = format!("/memories/{id}/retrieve");
        let (retrieve_p50, retrieve_p95) = latency(&client, QUERIES, |i| {
            let body = json!({"namespace": "/bench/", "searchCriteria": {"searchQuery": query_text(i), "topK": 10}}).to_string();
            signed("POST", addr, &retrieve_path, "", body.as_bytes())
        })
        .await;

        let get_path = format!("/memories/{id}/details");
        let (get_rps, get_failed) = throughput(&client, Arc::new(move |_| signed("GET", addr, &get_path, "", b""))).await;
        let events_path = format!("/memories/{id}/events");
        let (create_rps, create_failed) = throughput(
            &client,
            Arc::new(move |i| {
                let body = json!({"actorId": format!("actor{}", i % 50), "sessionId": format!("s{}", i % 200),
                                  "eventTimestamp": 1_764_000_000.0 + i as f64 / 1000.0,
                                  "payload": [{"conversational": {"content": {"text": "I like sailing near Oslo."}, "role": "USER"}}]})
                .to_string();
                signed("POST", addr, &events_path, "", body.as_bytes())
            }),
        )
        .await;

        println!("\nmemory benchmark (data dir, fsync per write; {CONCURRENCY} keep-alive connections, {}s per rate row)", RUN_FOR.as_secs());
        println!("| measurement                                   | value        |");
        println!("|-----------------------------------------------|--------------|");
        println!("| baseline: GetMemory signed p50 / p95          | {get_p50:>5.2} / {get_p95:>5.2} ms |");
        println!("| RetrieveMemoryRecords p50 / p95, {RECORDS} recs | {retrieve_p50:>5.2} / {retrieve_p95:>5.2} ms | ({:.1}x GetMemory p50)", retrieve_p50 / get_p50);
        println!("| baseline: GetMemory signed req/s              | {get_rps:>12.0} | ({get_failed} failed)");
        println!("| CreateEvent signed req/s                      | {create_rps:>12.0} | ({:.0}% of GetMemory, {create_failed} failed)", 100.0 * create_rps / get_rps);
        println!("| seeding {RECORDS} records (100 per batch)       | {:>9.2} s  |", seeded.as_secs_f64());
    });
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
