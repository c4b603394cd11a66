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
