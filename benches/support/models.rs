//! The sessions benchmark's local-model rows: a Converse round trip through the emulator (echo
//! provider) and the time to ConverseStream's first event, against GetFoundationModel (the same
//! service, signature check and JSON answer, no model call) measured in the same run.

use std::time::{Duration, Instant};

use super::{signed_for, spawn_server};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const CALLS: usize = 300;
const WARM_UP: usize = 20;
const MODEL: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Time to the response headers and first body frame, and to the end of the body.
async fn timed(client: &HttpClient, req: Request<Full<Bytes>>) -> (Duration, Duration) {
    let started = Instant::now();
    let resp = client.request(req).await.expect("request");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.map(|_| started.elapsed()).unwrap_or_else(|| started.elapsed());
    while body.frame().await.is_some() {}
    (first, started.elapsed())
}

pub fn rows() -> Vec<String> {
    let (mut server, _) = spawn_server(&["--sandbox", "none"]);
    let addr = server.addr;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut baseline, mut converse, mut first_event) = rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let model = percent_encoding::utf8_percent_encode(MODEL, percent_encoding::NON_ALPHANUMERIC).to_string();
        let body = br#"{"messages":[{"role":"user","content":[{"text":"What is the weather in Paris today?"}]}]}"#;
        let (mut baseline, mut converse, mut first_event) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..WARM_UP + CALLS {
            let get = signed_for("bedrock", "GET", addr, &format!("/foundation-models/{model}"), "", b"", &[]);
            let (_, whole) = timed(&client, get).await;
            let post = signed_for("bedrock", "POST", addr, &format!("/model/{model}/converse"), "", body, &[]);
            let (_, round_trip) = timed(&client, post).await;
            let stream = signed_for("bedrock", "POST", addr, &format!("/model/{model}/converse-stream"), "", body, &[]);
            let (first, _) = timed(&client, stream).await;
            if i >= WARM_UP {
                baseline.push(whole);
                converse.push(round_trip);
                first_event.push(first);
            }
        }
        (baseline, converse, first_event)
    });
    server.stop();
    vec![
        format!(
            "| Converse round trip via emulator, echo, p50   | {:>11.0} us |              |",
            us(p50(&mut converse))
        ),
        format!(
            "| ConverseStream first event, echo, p50         | {:>11.0} us |              |",
            us(p50(&mut first_event))
        ),
        format!(
            "| baseline: GetFoundationModel round trip p50   | {:>11.0} us |              |",
            us(p50(&mut baseline))
        ),
    ]
}
