//! agentcore-local: Amazon Bedrock AgentCore on your machine.
//!
//! See ARCHITECTURE.md for the map of modules, the layer rules and how a request flows.

pub mod app;
pub mod config;
pub mod console;
pub mod front_door;
pub mod images;
pub mod kernel;
pub mod local_client;
pub mod observe;
pub mod sandbox;
pub mod sandbox_door;
pub mod server;
pub mod services;
pub mod sessions;
