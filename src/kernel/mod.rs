//! The small shared kernel every service builds on: the caller, errors, SigV4, the botocore models (routing,
//! binding, validation), responses in AWS's shapes, and the SQLite store with its migration runner.
//! Nothing in here knows any one service.

pub mod caller;
pub mod clock;
pub mod error;
pub mod input;
pub mod jwt;
pub mod model;
pub mod query;
pub mod query_input;
pub mod response;
pub mod router;
pub mod sigv4;
pub mod store;
pub mod unserved;
