//! agentcore-local: Amazon Bedrock AgentCore on your machine.
//!
//! See ARCHITECTURE.md for the map of modules, the layer rules and how a request flows.

pub mod app;
pub mod config;
pub mod console;
pub mod front_door;
/// Fuzz targets over the parsers of client bytes (fuzz/README.md); not part of the emulator's API.
#[doc(hidden)]
pub mod fuzzing;
pub mod images;
pub mod kernel;
pub mod local_client;
pub mod observe;
pub mod sandbox;
pub mod sandbox_door;
pub mod server;
pub mod services;
pub mod serving;
pub mod sessions;
pub mod state_dir;
