//! The runtime service's typed rows and queries (runtimes, versions, endpoints, tags, idempotency).

mod queries;
mod rows;

pub use rows::{EndpointRow, ResourceStatus, RuntimeRow, VersionRow};
