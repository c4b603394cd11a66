//! Start agentcore-local in-process on an ephemeral port and build official SDK clients for it.
#![allow(dead_code)]

use agentcore_local::config::Config;
use agentcore_local::server::{self, RunningServer};
use aws_credential_types::Credentials;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/AgentRole";
pub const CONTAINER_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/myagent:latest";

pub async fn start() -> RunningServer {
    start_with(Config::for_tests()).await
}

pub async fn start_with(config: Config) -> RunningServer {
    server::start(config).await.expect("server starts")
}

pub fn control_client(url: &str, region: &str, key: &str, secret: &str) -> aws_sdk_bedrockagentcorecontrol::Client {
    let conf = aws_sdk_bedrockagentcorecontrol::Config::builder()
        .behavior_version(aws_sdk_bedrockagentcorecontrol::config::BehaviorVersion::latest())
        .region(aws_sdk_bedrockagentcorecontrol::config::Region::new(region.to_string()))
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .endpoint_url(url)
        .build();
    aws_sdk_bedrockagentcorecontrol::Client::from_conf(conf)
}

pub fn control(server: &RunningServer) -> aws_sdk_bedrockagentcorecontrol::Client {
    control_client(&server.url(), REGION, "test", "test")
}

pub fn data_client(url: &str) -> aws_sdk_bedrockagentcore::Client {
    let conf = aws_sdk_bedrockagentcore::Config::builder()
        .behavior_version(aws_sdk_bedrockagentcore::config::BehaviorVersion::latest())
        .region(aws_sdk_bedrockagentcore::config::Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(url)
        .build();
    aws_sdk_bedrockagentcore::Client::from_conf(conf)
}

pub fn container_artifact(uri: &str) -> aws_sdk_bedrockagentcorecontrol::types::AgentRuntimeArtifact {
    aws_sdk_bedrockagentcorecontrol::types::AgentRuntimeArtifact::ContainerConfiguration(
        aws_sdk_bedrockagentcorecontrol::types::ContainerConfiguration::builder().container_uri(uri).build().unwrap(),
    )
}

pub fn public_network() -> aws_sdk_bedrockagentcorecontrol::types::NetworkConfiguration {
    aws_sdk_bedrockagentcorecontrol::types::NetworkConfiguration::builder()
        .network_mode(aws_sdk_bedrockagentcorecontrol::types::NetworkMode::Public)
        .build()
        .unwrap()
}

/// Poll GetAgentRuntime until the status is no longer in progress.
pub async fn wait_ready(client: &aws_sdk_bedrockagentcorecontrol::Client, id: &str) -> String {
    for _ in 0..300 {
        let rt = client.get_agent_runtime().agent_runtime_id(id).send().await.unwrap();
        let status = rt.status().as_str().to_string();
        if !status.ends_with("ING") {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{id} never left its in-progress status");
}

/// The fixture agent image, addressed as an ECR URI (found locally as its short name).
pub const TEST_AGENT_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agentcore-local-test-agent:latest";

/// A server that runs sessions in Docker, with lifecycle durations multiplied by `time_scale`.
pub async fn start_with_docker(time_scale: f64) -> RunningServer {
    assert!(
        std::process::Command::new("docker")
            .args(["image", "inspect", "agentcore-local-test-agent:latest"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false),
        "the fixture image is missing: run fixtures/build-images.sh (scripts/test does)"
    );
    let mut config = Config::for_tests();
    config.sandbox = agentcore_local::config::SandboxKind::Docker;
    config.sessions.time_scale = time_scale;
    config.sessions.max_tps_per_endpoint = 0;
    // No spares unless a test asks (the default pool would add a container per runtime).
    config.sessions.warm_pool = 0;
    start_with(config).await
}

/// Create a runtime of the fixture agent and wait until it is READY; returns its ARN.
pub async fn fixture_runtime(client: &aws_sdk_bedrockagentcorecontrol::Client, name: &str) -> String {
    let created = client
        .create_agent_runtime()
        .agent_runtime_name(name)
        .agent_runtime_artifact(container_artifact(TEST_AGENT_URI))
        .role_arn(ROLE_ARN)
        .network_configuration(public_network())
        .send()
        .await
        .unwrap();
    assert_eq!(wait_ready(client, created.agent_runtime_id()).await, "READY");
    created.agent_runtime_arn().to_string()
}

/// Containers carrying `label=value`.
pub fn containers_with_label(label: &str, value: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "-q", "--filter", &format!("label={label}={value}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}
