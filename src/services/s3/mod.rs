//! The embedded S3 subset: the restXml wire (`api`), buckets and objects (`objects`) and their rows
//! (`tables`).

pub mod api;
pub mod objects;
pub mod tables;

pub use tables::{BucketRow, ObjectRow, PartRow, UploadRow};
