//! The data plane through the official Rust SDK (aws-sdk-bedrockagentcore): real invocations of
//! the fixture agent in Docker sandboxes.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_bedrockagentcore::primitives::Blob;
use common::*;
use serde_json::{json, Value};

fn session_id(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4())
}

async fn invoke_json(client: &aws_sdk_bedrockagentcore::Client, arn: &str, session: &str, payload: Value) -> Value {
    let out = client
        .invoke_agent_runtime()
        .agent_runtime_arn(arn)
        .runtime_session_id(session)
        .content_type("application/json")
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.runtime_session_id(), Some(session));
    assert_eq!(out.content_type(), "application/json");
    let bytes = out.response.collect().await.unwrap().into_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn same_session_reaches_the_same_sandbox_and_a_new_one_another() {
    let server = start_with_docker(1.0).await;
    let arn = fixture_runtime(&control(&server), "rs_affinity").await;
    let data = data_client(&server.url());
    let a = session_id("rust-affinity-a");
    let first = invoke_json(&data, &arn, &a, json!({"action": "whoami"})).await;
    let second = invoke_json(&data, &arn, &a, json!({"action": "whoami"})).await;
    assert_eq!(first["hostname"], second["hostname"]);
    assert_eq!((first["counter"].as_u64(), second["counter"].as_u64()), (Some(1), Some(2)));
    assert_eq!(first["headers"]["x-amzn-bedrock-agentcore-runtime-session-id"], a.as_str());
    assert_eq!(first["env"]["AWS_REGION"], REGION);

    let other = invoke_json(&data, &arn, &session_id("rust-affinity-b"), json!({"action": "whoami"})).await;
    assert_ne!(other["hostname"], first["hostname"]);
    assert_eq!(other["counter"], 1);
    server.shutdown().await;
    assert!(containers_with_label("agentcore-local.session-id", &a).is_empty(), "shutdown removes sandboxes");
}

#[tokio::test]
async fn streamed_chunks_arrive_before_the_agent_finishes() {
    let server = start_with_docker(1.0).await;
    let arn = fixture_runtime(&control(&server), "rs_stream").await;
    let data = data_client(&server.url());
    let mut out = data
        .invoke_agent_runtime()
        .agent_runtime_arn(&arn)
        .runtime_session_id(session_id("rust-stream"))
        .payload(Blob::new(json!({"action": "stream", "chunks": 4, "delay_ms": 400}).to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "text/event-stream");
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = out.response.next().await {
        let chunk = chunk.unwrap();
        arrivals.push(started.elapsed());
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 4, "{text}");
    for (i, e) in events.iter().enumerate() {
        assert!(e.starts_with(&format!("data: {{\"i\": {i},")), "{e}");
    }
    // The agent spends 3 × 400 ms between its first and last event; a buffering relay would
    // deliver everything at once at the end.
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(spread >= Duration::from_millis(800), "chunks arrived together: {arrivals:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn agent_errors_are_runtime_client_errors_and_stop_ends_the_session() {
    let server = start_with_docker(1.0).await;
    let arn = fixture_runtime(&control(&server), "rs_errors").await;
    let data = data_client(&server.url());
    let s = session_id("rust-errors");
    let err = data
        .invoke_agent_runtime()
        .agent_runtime_arn(&arn)
        .runtime_session_id(&s)
        .payload(Blob::new(json!({"action": "fail", "status": 500}).to_string()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_runtime_client_error(), "{err:?}");
    assert_eq!(
        err.meta().message(),
        Some("Received error (500) from runtime. Please check your CloudWatch logs for more information.")
    );

    let before = invoke_json(&data, &arn, &s, json!({"action": "whoami"})).await;
    data.stop_runtime_session().agent_runtime_arn(&arn).runtime_session_id(&s).send().await.unwrap();
    let after = invoke_json(&data, &arn, &s, json!({"action": "whoami"})).await;
    assert_ne!(before["hostname"], after["hostname"], "a stopped session starts fresh");
    assert_eq!(after["counter"], 1);

    let missing = data
        .stop_runtime_session()
        .agent_runtime_arn(&arn)
        .runtime_session_id(session_id("rust-never-started"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_first_requests_create_exactly_one_sandbox() {
    let server = start_with_docker(1.0).await;
    let arn = fixture_runtime(&control(&server), "rs_single_flight").await;
    let data = data_client(&server.url());
    let s = session_id("rust-single-flight");
    let calls = (0..8).map(|_| {
        let (data, arn, s) = (data.clone(), arn.clone(), s.clone());
        tokio::spawn(async move { invoke_json(&data, &arn, &s, json!({"action": "whoami"})).await })
    });
    let results: Vec<Value> = futures_util::future::join_all(calls).await.into_iter().map(|r| r.unwrap()).collect();
    let hostnames: std::collections::HashSet<&str> = results.iter().map(|r| r["hostname"].as_str().unwrap()).collect();
    assert_eq!(hostnames.len(), 1, "{results:?}");
    let mut counters: Vec<u64> = results.iter().map(|r| r["counter"].as_u64().unwrap()).collect();
    counters.sort();
    assert_eq!(counters, (1..=8).collect::<Vec<_>>());
    assert_eq!(containers_with_label("agentcore-local.session-id", &s).len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_runtime_and_qualifier_are_not_found() {
    let server = start_with_docker(1.0).await;
    let arn = fixture_runtime(&control(&server), "rs_notfound").await;
    let data = data_client(&server.url());
    let missing = format!("arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/none-AbCdEf1234");
    for (arn, qualifier) in [(missing.as_str(), None), (arn.as_str(), Some("nope"))] {
        let err = data
            .invoke_agent_runtime()
            .agent_runtime_arn(arn)
            .set_qualifier(qualifier.map(String::from))
            .runtime_session_id(session_id("rust-nf"))
            .payload(Blob::new("{}"))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_resource_not_found_exception(), "{err:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn warm_pool_hands_new_sessions_a_ready_spare() {
    let mut config = agentcore_local::config::Config::for_tests();
    config.sandbox = agentcore_local::config::SandboxKind::Docker;
    config.sessions.max_tps_per_endpoint = 0;
    config.sessions.warm_pool = 1;
    let _ = start_with_docker(1.0).await.shutdown().await; // checks the fixture image exists
    let server = start_with(config).await;
    let arn = fixture_runtime(&control(&server), "rs_pool").await;
    let runtime_id = arn.rsplit('/').next().unwrap().to_string();
    let data = data_client(&server.url());
    let first = invoke_json(&data, &arn, &session_id("rust-pool-a"), json!({"action": "whoami"})).await;

    // The first session makes the version "in use": a spare is started for the next one.
    let mut spares = Vec::new();
    for _ in 0..100 {
        let pool = containers_with_label("agentcore-local.pool", "true");
        let ours: Vec<String> = pool
            .into_iter()
            .filter(|id| containers_with_label("agentcore-local.runtime-id", &runtime_id).contains(id))
            .collect();
        if !ours.is_empty() {
            spares = ours;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spares.len(), 1, "one spare for the version");
    // Until it passes its readiness check the spare is not offered (the report lists it then).
    let sessions = server.state.sessions.clone().expect("sessions");
    for _ in 0..300 {
        if sessions.report(None).await.spares.iter().any(|s| s.runtime_id == runtime_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let second = invoke_json(&data, &arn, &session_id("rust-pool-b"), json!({"action": "whoami"})).await;
    let host = second["hostname"].as_str().unwrap();
    assert!(spares[0].starts_with(host), "session b runs in the spare {} (hostname {host})", spares[0]);
    assert_ne!(second["hostname"], first["hostname"], "a spare serves one session only");
    assert_eq!(second["counter"], 1);
    server.shutdown().await;
    assert!(
        containers_with_label("agentcore-local.runtime-id", &runtime_id).is_empty(),
        "spares are removed at shutdown"
    );
}

#[tokio::test]
async fn commands_stream_through_the_rust_sdk_event_stream_parser() {
    use aws_sdk_bedrockagentcore::types::{
        CommandExecutionStatus, InvokeAgentRuntimeCommandRequestBody, InvokeAgentRuntimeCommandStreamOutput,
        ResponseChunk,
    };
    let server = start_with_docker(1.0).await;
    let control = control(&server);
    let created = control
        .create_agent_runtime()
        .agent_runtime_name("rs_command")
        .agent_runtime_artifact(container_artifact(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/agentcore-local-test-agent-shell:latest",
        ))
        .role_arn(ROLE_ARN)
        .network_configuration(public_network())
        .send()
        .await
        .unwrap();
    assert_eq!(wait_ready(&control, created.agent_runtime_id()).await, "READY", "build fixtures/build-images.sh");
    let data = data_client(&server.url());
    let session = session_id("rust-command");
    let body = InvokeAgentRuntimeCommandRequestBody::builder()
        .command("echo out; echo err >&2; exit 5")
        .timeout(30)
        .build()
        .unwrap();
    let mut out = data
        .invoke_agent_runtime_command()
        .agent_runtime_arn(created.agent_runtime_arn())
        .runtime_session_id(&session)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(out.runtime_session_id(), Some(session.as_str()));
    let (mut stdout, mut stderr, mut stop) = (String::new(), String::new(), None);
    let mut started = false;
    while let Some(event) = out.stream.recv().await.unwrap() {
        let InvokeAgentRuntimeCommandStreamOutput::Chunk(chunk) = event else { panic!("unexpected event {event:?}") };
        let ResponseChunk { content_start, content_delta, content_stop, .. } = chunk;
        started |= content_start.is_some();
        if let Some(d) = content_delta {
            stdout.push_str(d.stdout().unwrap_or_default());
            stderr.push_str(d.stderr().unwrap_or_default());
        }
        if let Some(s) = content_stop {
            stop = Some((s.exit_code(), s.status().clone()));
        }
    }
    assert!(started);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(stop, Some((5, CommandExecutionStatus::Completed)));

    // The same session's sandbox answers invocations: commands and invocations share it.
    let host = invoke_json(&data, created.agent_runtime_arn(), &session, json!({"action": "whoami"})).await;
    let mut out = data
        .invoke_agent_runtime_command()
        .agent_runtime_arn(created.agent_runtime_arn())
        .runtime_session_id(&session)
        .body(InvokeAgentRuntimeCommandRequestBody::builder().command("cat /etc/hostname").build().unwrap())
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(InvokeAgentRuntimeCommandStreamOutput::Chunk(c)) = out.stream.recv().await.unwrap() {
        if let Some(d) = c.content_delta {
            text.push_str(d.stdout().unwrap_or_default());
        }
    }
    assert_eq!(text.trim(), host["hostname"].as_str().unwrap());
    server.shutdown().await;
}
