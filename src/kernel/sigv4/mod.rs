//! AWS Signature Version 4 verification: pure functions, no I/O, no globals.
//!
//! `canonical` builds the canonical request and string to sign; `verify` parses a signature from the
//! Authorization header or a presigned query string and checks it against known credentials.

pub mod canonical;
pub mod time;
pub mod verify;

pub use canonical::{RequestParts, UriEncoding};
pub use verify::{AuthError, Credential, Payload, Verified, Verifier};
