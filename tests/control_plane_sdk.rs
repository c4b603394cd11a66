//! The control plane through the official Rust SDK (aws-sdk-bedrockagentcorecontrol), which drops
//! trailing slashes and sends list calls without any body or Content-Length.

mod common;

use std::collections::HashSet;

use aws_sdk_bedrockagentcorecontrol::types::{
    AgentRuntimeStatus, LifecycleConfiguration, ProtocolConfiguration, ServerProtocol,
};
use common::*;

async fn create(client: &aws_sdk_bedrockagentcorecontrol::Client, name: &str) -> String {
    client
        .create_agent_runtime()
        .agent_runtime_name(name)
        .agent_runtime_artifact(container_artifact(CONTAINER_URI))
        .role_arn(ROLE_ARN)
        .network_configuration(public_network())
        .send()
        .await
        .unwrap()
        .agent_runtime_id
}

#[tokio::test]
async fn create_get_update_versions_and_delete() {
    let server = start().await;
    let client = control(&server);
    let created = client
        .create_agent_runtime()
        .agent_runtime_name("sdk_agent")
        .agent_runtime_artifact(container_artifact(CONTAINER_URI))
        .role_arn(ROLE_ARN)
        .network_configuration(public_network())
        .description("first")
        .environment_variables("FOO", "bar")
        .protocol_configuration(ProtocolConfiguration::builder().server_protocol(ServerProtocol::Http).build().unwrap())
        .lifecycle_configuration(LifecycleConfiguration::builder().idle_runtime_session_timeout(120).build())
        .tags("team", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), &AgentRuntimeStatus::Creating);
    assert_eq!(created.agent_runtime_version(), "1");
    let id = created.agent_runtime_id().to_string();
    assert!(id.starts_with("sdk_agent-") && id.len() == "sdk_agent-".len() + 10, "{id}");
    assert_eq!(created.agent_runtime_arn(), format!("arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{id}"));
    assert_eq!(wait_ready(&client, &id).await, "READY");

    let got = client.get_agent_runtime().agent_runtime_id(&id).send().await.unwrap();
    assert_eq!(got.agent_runtime_name(), "sdk_agent");
    assert_eq!(got.description(), Some("first"));
    assert_eq!(got.environment_variables().unwrap()["FOO"], "bar");
    let lc = got.lifecycle_configuration().unwrap();
    assert_eq!((lc.idle_runtime_session_timeout(), lc.max_lifetime()), (Some(120), Some(28800)));
    assert!(got.created_at().secs() > 1_700_000_000);

    let updated = client
        .update_agent_runtime()
        .agent_runtime_id(&id)
        .agent_runtime_artifact(container_artifact("123456789012.dkr.ecr.us-east-1.amazonaws.com/myagent:v2"))
        .role_arn(ROLE_ARN)
        .network_configuration(public_network())
        .send()
        .await
        .unwrap();
    assert_eq!(updated.agent_runtime_version(), "2");
    assert_eq!(wait_ready(&client, &id).await, "READY");
    let v1 = client.get_agent_runtime().agent_runtime_id(&id).agent_runtime_version("1").send().await.unwrap();
    assert_eq!(v1.description(), Some("first"), "versions are immutable snapshots");
    let latest = client.get_agent_runtime().agent_runtime_id(&id).send().await.unwrap();
    assert_eq!(latest.agent_runtime_version(), "2");
    assert_eq!(latest.description(), None, "update is a full replacement");

    let default =
        client.get_agent_runtime_endpoint().agent_runtime_id(&id).endpoint_name("DEFAULT").send().await.unwrap();
    assert_eq!(default.live_version(), Some("2"));

    let versions = client.list_agent_runtime_versions().agent_runtime_id(&id).send().await.unwrap();
    let listed: Vec<&str> = versions.agent_runtimes().iter().map(|r| r.agent_runtime_version()).collect();
    assert_eq!(listed, vec!["2", "1"]);

    let deleted = client.delete_agent_runtime().agent_runtime_id(&id).send().await.unwrap();
    assert_eq!(deleted.status().as_str(), "DELETING");
    for _ in 0..200 {
        match client.get_agent_runtime().agent_runtime_id(&id).send().await {
            Ok(rt) => assert_eq!(rt.status(), &AgentRuntimeStatus::Deleting),
            Err(e) => {
                assert!(e.into_service_error().is_resource_not_found_exception());
                server.shutdown().await;
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("runtime was never deleted");
}

#[tokio::test]
async fn paginator_sees_every_runtime_once() {
    let server = start().await;
    let client = control(&server);
    let mut ids = HashSet::new();
    for i in 0..7 {
        ids.insert(create(&client, &format!("page_{i}")).await);
    }
    let pages: Vec<_> = client
        .list_agent_runtimes()
        .max_results(3)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    let seen: Vec<String> =
        pages.iter().flat_map(|p| p.agent_runtimes().iter().map(|r| r.agent_runtime_id().to_string())).collect();
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
    server.shutdown().await;
}

#[tokio::test]
async fn modelled_errors_map_to_sdk_error_variants() {
    let server = start().await;
    let client = control(&server);
    let missing = client.get_agent_runtime().agent_runtime_id("nope-AbCdEf1234").send().await.unwrap_err();
    let missing = missing.into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    assert!(missing.meta().message().unwrap().contains("nope-AbCdEf1234"));

    create(&client, "dup").await;
    let dup = client
        .create_agent_runtime()
        .agent_runtime_name("dup")
        .agent_runtime_artifact(container_artifact(CONTAINER_URI))
        .role_arn(ROLE_ARN)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(dup.is_conflict_exception(), "{dup:?}");

    let invalid = client
        .create_agent_runtime()
        .agent_runtime_name("bad-name")
        .agent_runtime_artifact(container_artifact("not a uri"))
        .role_arn(ROLE_ARN)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let validation = match invalid {
        aws_sdk_bedrockagentcorecontrol::operation::create_agent_runtime::CreateAgentRuntimeError::ValidationException(v) => v,
        other => panic!("expected ValidationException, got {other:?}"),
    };
    assert_eq!(validation.reason().as_str(), "FieldValidationFailed");
    let fields: Vec<&str> = validation.field_list().iter().map(|f| f.name()).collect();
    assert!(fields.contains(&"agentRuntimeName"), "{fields:?}");
    assert!(fields.contains(&"agentRuntimeArtifact.containerConfiguration.containerUri"), "{fields:?}");

    let bad_token = client.list_agent_runtimes().next_token("garbage").send().await.unwrap_err().into_service_error();
    assert!(bad_token.is_validation_exception(), "{bad_token:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn endpoints_pin_versions_and_quota_is_enforced() {
    let server = start().await;
    let client = control(&server);
    let id = create(&client, "ep_agent").await;
    wait_ready(&client, &id).await;
    let ep = client
        .create_agent_runtime_endpoint()
        .agent_runtime_id(&id)
        .name("prod")
        .agent_runtime_version("1")
        .description("pinned")
        .send()
        .await
        .unwrap();
    assert_eq!(ep.target_version(), "1");
    assert!(ep.agent_runtime_endpoint_arn().ends_with(&format!("runtime/{id}/runtime-endpoint/prod")));
    client
        .update_agent_runtime()
        .agent_runtime_id(&id)
        .agent_runtime_artifact(container_artifact(CONTAINER_URI))
        .role_arn(ROLE_ARN)
        .send()
        .await
        .unwrap();
    wait_ready(&client, &id).await;
    let prod = client.get_agent_runtime_endpoint().agent_runtime_id(&id).endpoint_name("prod").send().await.unwrap();
    assert_eq!(prod.live_version(), Some("1"), "a named endpoint stays on its version");
    let del = client.delete_agent_runtime().agent_runtime_id(&id).agent_runtime_version("1").send().await.unwrap_err();
    assert!(del.into_service_error().is_conflict_exception(), "version 1 is used by prod");

    for i in 0..8 {
        client.create_agent_runtime_endpoint().agent_runtime_id(&id).name(format!("ep{i}")).send().await.unwrap();
    }
    let over =
        client.create_agent_runtime_endpoint().agent_runtime_id(&id).name("one_too_many").send().await.unwrap_err();
    assert!(over.into_service_error().is_service_quota_exceeded_exception());
    let listed = client.list_agent_runtime_endpoints().agent_runtime_id(&id).send().await.unwrap();
    assert_eq!(listed.runtime_endpoints().len(), 10);
    server.shutdown().await;
}

#[tokio::test]
async fn tags_round_trip_on_runtime_and_endpoint_arns() {
    let server = start().await;
    let client = control(&server);
    let id = create(&client, "tagged").await;
    let arn = format!("arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{id}");
    client.tag_resource().resource_arn(&arn).tags("k1", "v1").tags("k 2", "v2").send().await.unwrap();
    let tags = client.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    assert_eq!(tags.tags().unwrap().len(), 2);
    client.untag_resource().resource_arn(&arn).tag_keys("k 2").send().await.unwrap();
    let tags = client.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    assert_eq!(tags.tags().unwrap().keys().collect::<Vec<_>>(), vec!["k1"]);
    let ep_arn = format!("{arn}/runtime-endpoint/DEFAULT");
    client.tag_resource().resource_arn(&ep_arn).tags("e", "1").send().await.unwrap();
    assert_eq!(client.list_tags_for_resource().resource_arn(&ep_arn).send().await.unwrap().tags().unwrap()["e"], "1");
    let missing = client
        .list_tags_for_resource()
        .resource_arn(format!("arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/none-AbCdEf1234"))
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_resource_not_found_exception());
    server.shutdown().await;
}

#[tokio::test]
async fn regions_and_credentials_are_enforced() {
    let server = start().await;
    let east = control(&server);
    let west = control_client(&server.url(), "us-west-2", "test", "test");
    let id = create(&west, "west_agent").await;
    let got = west.get_agent_runtime().agent_runtime_id(&id).send().await.unwrap();
    assert!(got.agent_runtime_arn().contains(":us-west-2:"));
    assert!(east
        .get_agent_runtime()
        .agent_runtime_id(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error()
        .is_resource_not_found_exception());
    assert!(east.list_agent_runtimes().send().await.unwrap().agent_runtimes().is_empty());

    let wrong_secret = control_client(&server.url(), REGION, "test", "wrong");
    let err = wrong_secret.list_agent_runtimes().send().await.unwrap_err().into_service_error();
    assert_eq!(err.meta().code(), Some("InvalidSignatureException"));
    let unknown = control_client(&server.url(), REGION, "AKIAUNKNOWN", "x");
    let err = unknown.list_agent_runtimes().send().await.unwrap_err().into_service_error();
    assert_eq!(err.meta().code(), Some("UnrecognizedClientException"));
    server.shutdown().await;
}

/// The test configuration with its state kept in `dir`, for tests that restart the emulator.
fn kept_in(dir: &std::path::Path) -> agentcore_local::config::Config {
    let mut config = agentcore_local::config::Config::for_tests();
    config.data_dir = Some(dir.to_path_buf());
    config
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = kept_in(dir.path());
    let server = start_with(config.clone()).await;
    let id = create(&control(&server), "durable").await;
    wait_ready(&control(&server), &id).await;
    server.shutdown().await;

    let server = start_with(config).await;
    let got = control(&server).get_agent_runtime().agent_runtime_id(&id).send().await.unwrap();
    assert_eq!(got.status(), &AgentRuntimeStatus::Ready);
    server.shutdown().await;
}

/// CreateAgentRuntime and DeleteAgentRuntime each commit twice (the runtime, then its workload
/// identity). A crash between the two is repaired once the next start serves.
#[tokio::test]
async fn a_crash_between_a_runtimes_two_commits_is_repaired_after_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = kept_in(dir.path());
    let server = start_with(config.clone()).await;
    let created = create(&control(&server), "identity_lost").await;
    let deleted = create(&control(&server), "identity_kept").await;
    server.shutdown().await;
    // As the crashes leave the database: `created` without its workload identity, and `deleted`
    // marked for deletion with its workload identity still there.
    let db = rusqlite::Connection::open(dir.path().join("agentcore-local.sqlite3")).unwrap();
    assert_eq!(db.execute("DELETE FROM identity_workloads WHERE runtime_id = ?1", [&created]).unwrap(), 1);
    assert_eq!(db.execute("UPDATE runtimes SET deleting = 1 WHERE id = ?1", [&deleted]).unwrap(), 1);
    drop(db);

    let server = start_with(config).await;
    let client = control(&server);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = client.list_workload_identities().max_results(20).send().await.unwrap();
        let names: Vec<&str> = listed.workload_identities().iter().map(|w| w.name()).collect();
        if names.contains(&created.as_str()) && !names.contains(&deleted.as_str()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "workload identities not repaired: {names:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

/// A start that finds everything up to date writes nothing: no commit (and no sync) before the
/// first request, and the database file a clean shutdown left is the file the next one finds.
#[tokio::test]
async fn a_start_and_stop_without_requests_leave_the_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = kept_in(dir.path());
    let server = start_with(config.clone()).await;
    let id = create(&control(&server), "before_restarts").await;
    wait_ready(&control(&server), &id).await;
    server.shutdown().await;
    let db = dir.path().join("agentcore-local.sqlite3");
    let written = |path: &std::path::Path| {
        let meta = std::fs::metadata(path).unwrap();
        (meta.len(), meta.modified().unwrap())
    };
    let before = written(&db);
    for _ in 0..2 {
        start_with(config.clone()).await.shutdown().await;
        assert_eq!(written(&db), before, "a start without requests changed the database");
    }
}
