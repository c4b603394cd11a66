//! Canonical request and string-to-sign, built exactly as AWS builds them.
//!
//! Two URI rules exist. Every service but S3 normalises the path (dot segments removed, repeated
//! slashes collapsed) and then percent-encodes the path *as sent*, so an ARN segment that arrives as
//! `arn%3Aaws…` is signed as `arn%253Aaws…` (api-wire.md §10.11). S3 signs the path encoded once and
//! unnormalised.

use sha2::{Digest, Sha256};

/// The hash AWS uses when the body is empty.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How the canonical URI is derived from the path on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriEncoding {
    /// Normalise, then encode the already-encoded path again (all services except S3).
    NormalizeAndDoubleEncode,
    /// Encode each segment once, no normalisation (S3).
    SingleEncode,
}

/// The parts of an HTTP request that SigV4 covers, borrowed from the request.
#[derive(Debug, Clone)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path exactly as it appeared in the request line (still percent-encoded).
    pub raw_path: &'a str,
    /// The query string exactly as sent, without the leading `?`.
    pub raw_query: &'a str,
    /// All headers, names in any case, in the order received (repeats allowed).
    pub headers: &'a [(String, String)],
}

/// Percent-encode per RFC 3986 unreserved set, as AWS does (`~` kept, space as `%20`).
pub fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &b in input {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            // Pushed by hand: a `format!` per escaped byte was most of the canonicalisation's time.
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xF)] as char);
        }
    }
    out
}

/// Decode `%XX` escapes; `+` stays a plus (SigV4 never treats it as a space).
pub fn percent_decode(input: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(input).collect()
}

/// RFC 3986 §5.2.4 dot-segment removal plus collapsing of repeated slashes, as botocore does.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut output: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                output.pop();
            }
            s => output.push(s),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&output.join("/"));
    if path.ends_with('/') && normalized.len() > 1 {
        normalized.push('/');
    }
    normalized
}

pub fn canonical_uri(raw_path: &str, encoding: UriEncoding) -> String {
    match encoding {
        UriEncoding::NormalizeAndDoubleEncode => uri_encode(normalize_path(raw_path).as_bytes(), true),
        UriEncoding::SingleEncode => {
            if raw_path.is_empty() {
                return "/".to_string();
            }
            // Re-encode each segment from its decoded bytes so that clients that encode more or
            // less than AWS's unreserved set still produce the canonical form; `%2F` inside a
            // segment stays encoded.
            raw_path.split('/').map(|segment| uri_encode(&percent_decode(segment), false)).collect::<Vec<_>>().join("/")
        }
    }
}

/// Sorted, re-encoded query; `skip` names parameters left out (the presigned signature itself).
pub fn canonical_query(raw_query: &str, skip: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(&percent_decode(k), false), uri_encode(&percent_decode(v), false))
        })
        .filter(|(k, _)| skip.is_none_or(|s| k != s))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Append `value` trimmed, with runs of whitespace inside folded to one space, as AWS does.
fn push_folded(out: &mut String, value: &str) {
    for (i, word) in value.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// `name:value\n` lines for the signed headers, repeated headers joined with commas.
pub fn canonical_headers<S: AsRef<str>>(headers: &[(String, String)], signed: &[S]) -> String {
    let mut out = String::new();
    for name in signed {
        let name = name.as_ref();
        out.push_str(name);
        out.push(':');
        for (i, (_, value)) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_folded(&mut out, value);
        }
        out.push('\n');
    }
    out
}

/// The canonical URIs a correct signer may have used. For S3 that is the path re-encoded from its
/// decoded bytes and, when the client encoded more than AWS requires, the path exactly as sent.
pub fn canonical_uri_candidates(raw_path: &str, encoding: UriEncoding) -> Vec<String> {
    let mut out = vec![canonical_uri(raw_path, encoding)];
    match encoding {
        UriEncoding::SingleEncode => {
            if !raw_path.is_empty() && out[0] != raw_path {
                out.push(raw_path.to_string());
            }
        }
        UriEncoding::NormalizeAndDoubleEncode => {
            // botocore drops the slash after a final dot segment (`/a/.` → `/a`); RFC 3986 and the
            // Rust SDK keep it (`/a/`). Accept both signers.
            let last = raw_path.rsplit('/').next().unwrap_or("");
            if raw_path.len() > 1 && (last == "." || last == "..") {
                let mut rfc = normalize_path(raw_path);
                if !rfc.ends_with('/') {
                    rfc.push('/');
                }
                out.push(uri_encode(rfc.as_bytes(), true));
            }
        }
    }
    out
}

pub fn canonical_request<S: AsRef<str>>(
    parts: &RequestParts<'_>,
    signed_headers: &[S],
    payload_hash: &str,
    encoding: UriEncoding,
    skip_query_param: Option<&str>,
) -> String {
    canonical_request_for_uri(
        parts,
        &canonical_uri(parts.raw_path, encoding),
        signed_headers,
        payload_hash,
        skip_query_param,
    )
}

pub fn canonical_request_for_uri<S: AsRef<str>>(
    parts: &RequestParts<'_>,
    canonical_uri: &str,
    signed_headers: &[S],
    payload_hash: &str,
    skip_query_param: Option<&str>,
) -> String {
    // Pushed piece by piece rather than through `format!`, whose formatter machinery cost more than
    // the pieces themselves (this runs for every signed request).
    let query = canonical_query(parts.raw_query, skip_query_param);
    let headers = canonical_headers(parts.headers, signed_headers);
    let names: usize = signed_headers.iter().map(|n| n.as_ref().len() + 1).sum();
    let mut out = String::with_capacity(
        parts.method.len() + canonical_uri.len() + query.len() + headers.len() + names + payload_hash.len() + 4,
    );
    for piece in [parts.method, canonical_uri, &query, &headers] {
        out.push_str(piece);
        out.push('\n');
    }
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name.as_ref());
    }
    out.push('\n');
    out.push_str(payload_hash);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex_of_digest(&Sha256::digest(data).into())
}

/// A SHA-256 digest in lower-case hex. Through a buffer: `hex::encode` collects its string one
/// `char` at a time, which was the larger part of hashing a small canonical request.
pub fn hex_of_digest(digest: &[u8; 32]) -> String {
    let mut text = [0u8; 64];
    hex::encode_to_slice(digest, &mut text).expect("64 bytes hold a 32-byte digest in hex");
    String::from_utf8(text.to_vec()).expect("hex digits are ASCII")
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    [ALGORITHM, amz_date, scope, &sha256_hex(canonical_request.as_bytes())].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encodes_an_encoded_arn_segment() {
        let uri = canonical_uri(
            "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fx-AbCdEf1234/invocations",
            UriEncoding::NormalizeAndDoubleEncode,
        );
        assert_eq!(
            uri,
            "/runtimes/arn%253Aaws%253Abedrock-agentcore%253Aus-east-1%253A123456789012%253Aruntime%252Fx-AbCdEf1234/invocations"
        );
    }

    #[test]
    fn normalizes_dots_and_slashes_but_keeps_trailing_slash() {
        assert_eq!(normalize_path("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(normalize_path("/runtimes/"), "/runtimes/");
        assert_eq!(normalize_path("/.."), "/");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn s3_keeps_encoded_slash_inside_a_segment() {
        assert_eq!(canonical_uri("/b/a%2Fb c", UriEncoding::SingleEncode), "/b/a%2Fb%20c");
        assert_eq!(canonical_uri("/b/x/../y", UriEncoding::SingleEncode), "/b/x/../y");
    }

    #[test]
    fn query_is_sorted_and_reencoded() {
        assert_eq!(canonical_query("b=2&a=1&a=0&c", None), "a=0&a=1&b=2&c=");
        assert_eq!(canonical_query("k=a+b&s=a%20b", None), "k=a%2Bb&s=a%20b");
        assert_eq!(canonical_query("X-Amz-Signature=abc&a=1", Some("X-Amz-Signature")), "a=1");
    }
}
