//! agentcore-local: Amazon Bedrock AgentCore Runtime on your machine.
//!
//! See ARCHITECTURE.md for the map of modules and how a request flows.

pub mod api;
pub mod config;
pub mod control;
pub mod error;
pub mod images;
pub mod local_client;
pub mod logs;
pub mod objects;
pub mod observe;
pub mod sandbox;
pub mod server;
pub mod sessions;
pub mod sigv4;
pub mod store;
