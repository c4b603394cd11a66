//! AWS Signature Version 4 verification: pure functions, no I/O, no globals.
//!
//! `canonical` builds the canonical request and string to sign; `verify` parses a signature from the
//! Authorization header or a presigned query string and checks it against known credentials;
//! `chunked` verifies the chained chunk and trailer signatures of `aws-chunked` bodies.

pub mod canonical;
pub mod chunked;
pub mod time;
pub mod verify;

pub use canonical::{RequestParts, UriEncoding};
pub use chunked::SignatureChain;
pub use verify::{AuthError, Credential, CredentialLookup, Payload, Prechecked, SigningKeyCache, Verified, Verifier};

/// A header name in lower case, copied only when it is not so already (names from hyper never
/// are; signers and tests may send any case).
pub fn lowercase_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// A request's headers as owned (name, value) pairs, the form SigV4 verification reads.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.as_str().to_string(), value_text(v.as_bytes()))).collect()
}

/// A header value as text. Almost always valid UTF-8 (ASCII): checked whole first, which is
/// much cheaper than `from_utf8_lossy`'s chunk by chunk walk.
fn value_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_string(),
        Err(_) => String::from_utf8_lossy(value).into_owned(),
    }
}
