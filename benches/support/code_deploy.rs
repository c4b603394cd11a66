//! The sessions benchmark's direct-code-deployment rows:
//! - cold start of a code-zip session (bedrock-agentcore SDK agent, PYTHON_3_11) to first response;
//! - S3 PutObject / GetObject of a 100 MB object through the emulator against `cp` + fsync of the
//!   same file, measured in the same run, with MD5 alone (S3's ETag) as the ceiling.
//!
//! Needs the PYTHON_3_11 base image and python3 with pip (the zip is built with
//! `fixtures/pip-install-target.sh`, as the tests' zips are, and cached under target/bench-cache).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::floor::{docker_floor, FloorContainer};
use super::{signed, signed_with, spawn_server};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const OBJECT_BYTES: usize = 100 * 1000 * 1000;
const COLD_STARTS: usize = 8;
/// Rounds of PUT, GET and cp; the table shows medians.
const THROUGHPUT_ROUNDS: usize = 5;

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

fn full(bytes: Vec<u8>) -> BoxBody {
    Full::new(Bytes::from(bytes)).map_err(|never| match never {}).boxed_unsync()
}

/// A SigV4 request for S3 (path encoded once, `x-amz-content-sha256: UNSIGNED-PAYLOAD`).
fn s3_request(method: &str, addr: SocketAddr, path: &str, body: BoxBody, length: Option<usize>) -> Request<BoxBody> {
    use agentcore_local::kernel::sigv4::canonical::{canonical_request, string_to_sign, RequestParts, UriEncoding};
    use agentcore_local::kernel::sigv4::time::epoch_to_amz_date;
    use agentcore_local::kernel::sigv4::verify::{sign, signing_key};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let amz_date = epoch_to_amz_date(now);
    let headers = vec![
        ("host".to_string(), addr.to_string()),
        ("x-amz-content-sha256".to_string(), "UNSIGNED-PAYLOAD".to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    let names: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let parts = RequestParts { method, raw_path: path, raw_query: "", headers: &headers };
    let creq = canonical_request(&parts, &names, "UNSIGNED-PAYLOAD", UriEncoding::SingleEncode, None);
    let scope = format!("{}/us-east-1/s3/aws4_request", &amz_date[..8]);
    let sig = sign(&signing_key("test", &amz_date[..8], "us-east-1", "s3"), &string_to_sign(&amz_date, &scope, &creq));
    let mut b = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (k, v) in &headers[1..] {
        b = b.header(k, v);
    }
    if let Some(len) = length {
        b = b.header("content-length", len);
    }
    b.header(
        "authorization",
        format!("AWS4-HMAC-SHA256 Credential=test/{scope}, SignedHeaders={}, Signature={sig}", names.join(";")),
    )
    .body(body)
    .unwrap()
}

fn file_body(path: &Path) -> BoxBody {
    let path = path.to_path_buf();
    let stream = futures_util::stream::unfold(None, move |file: Option<std::fs::File>| {
        let path = path.clone();
        async move {
            let mut file = match file {
                Some(f) => f,
                None => std::fs::File::open(&path).ok()?,
            };
            let mut buf = vec![0u8; 1 << 20];
            let n = std::io::Read::read(&mut file, &mut buf).ok()?;
            if n == 0 {
                return None;
            }
            buf.truncate(n);
            Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(buf))), Some(file)))
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

fn build_code_zip(cache: &Path) -> PathBuf {
    let zip = cache.join("sdk-agent.zip");
    if zip.exists() {
        return zip;
    }
    let staging = cache.join("sdk-agent");
    let _ = std::fs::remove_dir_all(&staging);
    // The fixtures' installer: wheels for the sandbox's Python (CPython 3.11, the base image's
    // glibc), not the host's, and without pip's complaints about the host's own packages.
    let ok = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pip-install-target.sh"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/code-agent/requirements.txt"))
        .arg(&staging)
        .status()
        .expect("bash and python3 with pip");
    assert!(ok.success(), "fixtures/pip-install-target.sh fixtures/code-agent/requirements.txt failed");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/code-agent/main.py"), staging.join("main.py"))
        .unwrap();
    let ok = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg(".")
        .current_dir(&staging)
        .status()
        .unwrap();
    assert!(ok.success());
    zip
}

/// Time to MD5 the file's bytes (read from the page cache) on one core.
fn md5_alone(path: &Path) -> Duration {
    use md5::Digest;
    let bytes = std::fs::read(path).unwrap();
    let started = Instant::now();
    let digest = md5::Md5::digest(&bytes);
    let elapsed = started.elapsed();
    std::hint::black_box(digest);
    elapsed
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

const BASE_IMAGE: &str = "agentcore-local-runtime:python3.11";

/// Table rows for the sessions benchmark (a single explanatory row when the base image is missing).
pub fn rows() -> Vec<String> {
    let inspected = std::process::Command::new("docker").args(["image", "inspect", BASE_IMAGE]).output();
    if !inspected.map(|o| o.status.success()).unwrap_or(false) {
        return vec![format!(
            "| code-zip and S3 rows skipped: no {BASE_IMAGE} (agentcore-local images build PYTHON_3_11) | | |"
        )];
    }
    let cache = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-cache"));
    std::fs::create_dir_all(&cache).unwrap();
    let zip = build_code_zip(&cache);
    let payload = cache.join("object-100MB.bin");
    if std::fs::metadata(&payload).map(|m| m.len() as usize).ok() != Some(OBJECT_BYTES) {
        let mut f = std::fs::File::create(&payload).unwrap();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..(OBJECT_BYTES >> 20) {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all(&chunk).unwrap();
        }
        f.write_all(&chunk[..OBJECT_BYTES - ((OBJECT_BYTES >> 20) << 20)]).unwrap();
    }

    let data_dir = tempfile::tempdir().unwrap();
    // Cold starts measured without spares (the warm pool is on by default).
    let (mut server, _) = spawn_server(&[
        "--max-tps-per-endpoint",
        "0",
        "--warm-pool",
        "0",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
    ]);
    let addr = server.addr;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows = rt.block_on(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<BoxBody>();
        let send = |req: Request<BoxBody>| {
            let client = client.clone();
            async move {
                let resp = client.request(req).await.expect("request");
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                let mut bytes = 0usize;
                let mut text = Vec::new();
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.unwrap().into_data() {
                        bytes += data.len();
                        if text.len() < 4096 {
                            text.extend_from_slice(&data[..data.len().min(4096)]);
                        }
                    }
                }
                (status, bytes, text)
            }
        };
        let (status, _, _) = send(s3_request("PUT", addr, "/bench", full(vec![]), Some(0))).await;
        assert_eq!(status, 200, "create bucket");

        // S3 throughput: PUT then GET of the same 100 MB, against cp + fsync, interleaved over
        // several rounds (medians), with the MD5 that S3's ETag needs timed alone as the ceiling.
        let (mut puts, mut gets, mut cps, mut md5s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..THROUGHPUT_ROUNDS {
            let key = format!("/bench/object-{round}.bin");
            let started = Instant::now();
            let (status, _, text) = send(s3_request("PUT", addr, &key, file_body(&payload), Some(OBJECT_BYTES))).await;
            puts.push(started.elapsed());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
            let started = Instant::now();
            let (status, bytes, _) = send(s3_request("GET", addr, &key, full(vec![]), None)).await;
            gets.push(started.elapsed());
            assert_eq!((status, bytes), (200, OBJECT_BYTES));
            let copy_target = cache.join("object-copy.bin");
            let started = Instant::now();
            std::fs::copy(&payload, &copy_target).unwrap();
            std::fs::File::open(&copy_target).unwrap().sync_all().unwrap();
            cps.push(started.elapsed());
            let _ = std::fs::remove_file(&copy_target);
            md5s.push(md5_alone(&payload));
        }
        let (put, get, cp, md5) =
            (percentile(&mut puts, 0.5), percentile(&mut gets, 0.5), percentile(&mut cps, 0.5), percentile(&mut md5s, 0.5));

        // Code-zip runtime: upload, create, then cold starts of new sessions.
        let zip_bytes = std::fs::read(&zip).unwrap();
        let len = zip_bytes.len();
        let (status, _, _) = send(s3_request("PUT", addr, "/bench/agent.zip", full(zip_bytes), Some(len))).await;
        assert_eq!(status, 200);
        let create = r#"{"agentRuntimeName":"bench_code","agentRuntimeArtifact":{"codeConfiguration":{"code":{"s3":{"bucket":"bench","prefix":"agent.zip"}},"runtime":"PYTHON_3_11","entryPoint":["main.py"]}},"roleArn":"arn:aws:iam::123456789012:role/R"}"#;
        let resp = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>().request(signed("PUT", addr, "/runtimes/", "", create.as_bytes())).await.unwrap();
        let created: serde_json::Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let id = created["agentRuntimeId"].as_str().expect("created").to_string();
        let arn = created["agentRuntimeArn"].as_str().unwrap().to_string();
        let json_client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        loop {
            let resp = json_client.request(signed("GET", addr, &format!("/runtimes/{id}/"), "", b"")).await.unwrap();
            let rt: serde_json::Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
            match rt["status"].as_str() {
                Some("READY") => break,
                Some("CREATING") => tokio::time::sleep(Duration::from_millis(50)).await,
                other => panic!("code runtime is {other:?}: {} (agentcore-local images build PYTHON_3_11)", rt["failureReason"]),
            }
        }
        let path = format!("/runtimes/{}/invocations", percent_encoding::utf8_percent_encode(&arn, percent_encoding::NON_ALPHANUMERIC));
        let mut cold = Vec::new();
        for i in 0..COLD_STARTS {
            let session = format!("bench-code-{i:03}-{}", uuid::Uuid::new_v4());
            let started = Instant::now();
            let req = signed_with("POST", addr, &path, "", b"{\"mode\":\"echo\"}", &[("x-amzn-bedrock-agentcore-runtime-session-id", &session)]);
            let resp = json_client.request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body));
            cold.push(started.elapsed());
        }
        let (p50, p95) = (percentile(&mut cold, 0.5), percentile(&mut cold, 0.95));
        // The floor for the same sandbox: the last session's container (image, command, variables,
        // working directory, code mount) created and started straight through the Docker API.
        let last = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=agentcore-local.runtime-id={id}"), "--latest"])
            .output()
            .unwrap();
        let last = String::from_utf8_lossy(&last.stdout).trim().to_string();
        assert!(!last.is_empty(), "no sandbox of the code runtime is running");
        let like = FloorContainer::like(&last, b"{\"mode\":\"echo\"}").await;
        let mut floor = docker_floor(&json_client, COLD_STARTS, &like).await;
        let floor50 = percentile(&mut floor, 0.5);
        let mbps = |d: Duration| OBJECT_BYTES as f64 / 1e6 / d.as_secs_f64();
        vec![
            format!("| baseline: Docker API floor of the same code sandbox p50 | {:>4.0} ms |                   |", floor50.as_secs_f64() * 1e3),
            format!("| code-zip cold start to first response p50 ({COLD_STARTS} sess.) | {:>9.0} ms | <= 600 ms: {:.2}x floor |", p50.as_secs_f64() * 1e3, p50.as_secs_f64() / floor50.as_secs_f64()),
            format!("| code-zip cold start to first response p95          | {:>9.0} ms |                   |", p95.as_secs_f64() * 1e3),
            format!("| baseline: cp + fsync of the 100 MB file ({THROUGHPUT_ROUNDS} runs)   | {:>7.0} MB/s |                   |", mbps(cp)),
            format!("| ceiling: MD5 of the 100 MB alone (S3's ETag)       | {:>7.0} MB/s |                   |", mbps(md5)),
            format!("| S3 PutObject 100 MB (streamed, fsynced)            | {:>7.0} MB/s | >= 50% of cp: {:.0}% |", mbps(put), 100.0 * mbps(put) / mbps(cp)),
            format!("| S3 GetObject 100 MB                                | {:>7.0} MB/s | >= 50% of cp: {:.0}% |", mbps(get), 100.0 * mbps(get) / mbps(cp)),
        ]
    });
    server.stop();
    rows
}
