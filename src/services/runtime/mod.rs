//! AgentCore Runtime: agent runtimes, versions and endpoints (bedrock-agentcore-control) and the
//! invocation operations of the data plane (bedrock-agentcore).

pub mod control_api;
pub mod data_api;
pub mod domain;
pub mod prepare;
pub mod tables;
