//! One folder per AWS service the emulator serves: its wire (routes and shapes), its domain and its
//! tables. A service reaches another only through that service's domain API, never its tables.

pub mod bedrock;
pub mod identity;
pub mod logs;
pub mod memory;
pub mod mmds;
pub mod runtime;
pub mod s3;
pub mod sts;
