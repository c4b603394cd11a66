//! Soak benchmark (issue 17): does the emulator's memory stay flat over many sessions? Runs
//! `SOAK_SESSIONS` (default 5000) sessions of the fixture agent, `SOAK_CONCURRENCY` (default 8) at
//! a time; each is invoked once and stopped with StopRuntimeSession. Prints the emulator's RSS and
//! open file descriptors at checkpoints, and the growth per session once the bounded recent-history
//! caches are full (from `WARMED_UP` sessions on). The baseline is the same process at the first
//! checkpoint.
//!
//! The emulator keeps its state in a data dir on disk (`SOAK_IN_MEMORY=1` for `--in-memory`): with
//! an in-memory store, every session's rows (its record, usage, log events) live in the process's
//! RSS by design, which is the user's data growing, not the process holding on to ended sessions.
//!
//! Run: `cargo bench --bench soak` (about 5-10 minutes for 5000 sessions on 2 cores).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{body_of, fixture_runtime, invoke_request, open_fds, rss_kib, spawn_server, stop_request, HttpClient};

/// Sessions after which every recent-history cache (recent sessions, invocations) is full.
const WARMED_UP: usize = 1000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let total = env_usize("SOAK_SESSIONS", 5000);
    let concurrency = env_usize("SOAK_CONCURRENCY", 8);
    let mut checkpoints: Vec<usize> =
        [0, 500, WARMED_UP, 2000, 3000, 4000, 5000, total].into_iter().filter(|c| *c <= total).collect();
    checkpoints.dedup();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let data_dir_arg = data_dir.path().to_str().unwrap().to_string();
    let mut args = vec!["--max-tps-per-endpoint", "0", "--warm-pool", "0"];
    let on_disk = std::env::var("SOAK_IN_MEMORY").map(|v| v != "1").unwrap_or(true);
    if on_disk {
        args.extend(["--data-dir", &data_dir_arg]);
    }
    let (mut server, _) = spawn_server(&args);
    let (addr, pid) = (server.addr, server.child.id());
    let rows = rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let arn_path = Arc::new(fixture_runtime(&client, addr, "bench_soak").await);
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut rows = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (client, arn_path, next, done) = (client.clone(), arn_path.clone(), next.clone(), done.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    let session = format!("soak-{i:05}-{}", uuid::Uuid::new_v4());
                    let (status, body) =
                        body_of(&client, invoke_request(addr, &arn_path, &session, br#"{"action":"echo"}"#)).await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    let (status, body) = body_of(&client, stop_request(addr, &arn_path, &session)).await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        for checkpoint in checkpoints {
            while done.load(Ordering::SeqCst) < checkpoint {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            rows.push((checkpoint, rss_kib(pid), open_fds(pid), started.elapsed()));
        }
        for w in workers {
            w.await.unwrap();
        }
        rows
    });
    server.stop();

    let state = if on_disk { "state in a data dir on disk" } else { "state in memory" };
    println!("\nsoak benchmark ({total} sessions of the fixture agent, {concurrency} at a time, each invoked once and stopped; {state})");
    println!("| sessions done | emulator RSS | open fds | elapsed  |");
    println!("|---------------|--------------|----------|----------|");
    for (n, rss, fds, elapsed) in &rows {
        println!("| {n:>13} | {:>8.1} MiB | {fds:>8} | {:>6.0} s |", *rss as f64 / 1024.0, elapsed.as_secs_f64());
    }
    let at = |n: usize| rows.iter().find(|r| r.0 == n).map(|r| r.1 as f64);
    if let (Some(warm), Some(end)) = (at(WARMED_UP), at(total)) {
        if total > WARMED_UP {
            println!(
                "| RSS growth per session after {WARMED_UP} (baseline: RSS at {WARMED_UP}) | {:.2} KiB | target: ~0 (flat) |",
                (end - warm) / (total - WARMED_UP) as f64
            );
        }
    }
}
