//! SigV4 for S3: the path signed encoded once, the payload hash taken from
//! `x-amz-content-sha256` (the body is checked while it streams), presigned URLs, and S3's
//! wording for each failure.

use http::HeaderMap;

use super::payload::{Framing, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER};
use crate::app::auth::unix_now;
use crate::config::{AuthMode, Config};
use crate::kernel::caller::Caller;
use crate::kernel::query::value as query_value;
use crate::kernel::sigv4::verify::header;
use crate::kernel::sigv4::verify::{credential_scope, MAX_CLOCK_SKEW_SECS, UNSIGNED_PAYLOAD};
use crate::kernel::sigv4::{AuthError, Payload, RequestParts, SignatureChain, UriEncoding, Verifier};
use crate::services::s3::objects::S3Error;

/// What an S3 request's signature says of its body: the payload hash it covers (the declared
/// `x-amz-content-sha256`) and, for a verified SigV4 signature, the chain that aws-chunked
/// signatures continue.
pub struct SignedPayload {
    pub hash: String,
    /// `None` with `--auth off` and for SigV2.
    pub chain: Option<SignatureChain>,
}

/// The access key and signature a request claims, for error documents.
fn claimed(headers: &[(String, String)], raw_query: &str) -> (String, String) {
    if let Some(auth) = header(headers, "authorization") {
        let field = |name: &str| {
            auth.split([',', ' '])
                .find_map(|p| p.trim().strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .unwrap_or_default()
                .to_string()
        };
        let credential = field("Credential");
        (credential.split('/').next().unwrap_or_default().to_string(), field("Signature"))
    } else {
        let credential = query_value(raw_query, "X-Amz-Credential").unwrap_or_default();
        (
            credential.split('/').next().unwrap_or_default().to_string(),
            query_value(raw_query, "X-Amz-Signature").unwrap_or_default(),
        )
    }
}

fn spaced_hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// S3's error for a failed verification.
fn s3_auth_error(e: AuthError, presigned: bool, headers: &[(String, String)], raw_query: &str, now: i64) -> S3Error {
    let (access_key, signature) = claimed(headers, raw_query);
    match e {
        AuthError::Missing => S3Error::access_denied(),
        AuthError::Incomplete(m) if presigned => S3Error::new("AuthorizationQueryParametersError", 400, m),
        AuthError::Incomplete(m) => S3Error::new("AuthorizationHeaderMalformed", 400, m),
        AuthError::UnknownAccessKey(ak) => {
            S3Error::new("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.")
                .with("AWSAccessKeyId", ak)
        }
        AuthError::SignatureMismatch { canonical_request, string_to_sign } => S3Error::new(
            "SignatureDoesNotMatch",
            403,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
        .with("AWSAccessKeyId", access_key)
        .with("StringToSign", string_to_sign.clone())
        .with("SignatureProvided", signature)
        .with("StringToSignBytes", spaced_hex(&string_to_sign))
        .with("CanonicalRequest", canonical_request.clone())
        .with("CanonicalRequestBytes", spaced_hex(&canonical_request)),
        AuthError::Expired(m) if presigned && m.starts_with("Signature expired") => {
            let date = query_value(raw_query, "X-Amz-Date").unwrap_or_default();
            let expires = query_value(raw_query, "X-Amz-Expires").unwrap_or_default();
            let start = crate::kernel::sigv4::time::amz_date_to_epoch(&date).unwrap_or(0);
            let until = start + expires.parse::<i64>().unwrap_or(0);
            S3Error::new("AccessDenied", 403, "Request has expired")
                .with("X-Amz-Expires", expires)
                .with("Expires", super::iso_date(until * 1000))
                .with("ServerTime", super::iso_date(now * 1000))
        }
        AuthError::Expired(m) if m.starts_with("Date in Credential scope") => {
            S3Error::new(if presigned { "AuthorizationQueryParametersError" } else { "AuthorizationHeaderMalformed" }, 400, m)
        }
        AuthError::Expired(m) if presigned => S3Error::new("AccessDenied", 403, m),
        AuthError::Expired(_) => {
            let date = header(headers, "x-amz-date").unwrap_or_default().to_string();
            S3Error::new("RequestTimeTooSkewed", 403, "The difference between the request time and the current time is too large.")
                .with("RequestTime", date)
                .with("ServerTime", super::iso_date(now * 1000))
                .with("MaxAllowedSkewMilliseconds", (MAX_CLOCK_SKEW_SECS * 1000).to_string())
        }
        AuthError::ContentHashMismatch { declared, computed } => S3Error::new(
            "XAmzContentSHA256Mismatch",
            400,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
        .with("ClientComputedContentSHA256", declared)
        .with("S3ComputedContentSHA256", computed),
        AuthError::InvalidToken => {
            S3Error::new("InvalidToken", 400, "The provided token is malformed or otherwise invalid.")
        }
        AuthError::ExpiredToken => S3Error::new("ExpiredToken", 400, "The provided token has expired."),
        AuthError::InvalidRegion(region) => S3Error::new(
            "AuthorizationHeaderMalformed",
            400,
            format!("The authorization header is malformed; the region '{region}' is not a valid AWS Region."),
        ),
    }
}

/// Who sent an S3 request, and what its signature says of the body. `headers`: the request's
/// headers as pairs (`api::header_pairs`).
pub fn authenticate(
    config: &Config,
    method: &str,
    mut headers: Vec<(String, String)>,
    raw_path: &str,
    raw_query: &str,
) -> Result<(Caller, SignedPayload), S3Error> {
    let declared = header(&headers, "x-amz-content-sha256").map(str::to_string);
    let presigned = header(&headers, "authorization").is_none() && raw_query.contains("X-Amz-Signature=");

    if super::sigv2::is_sigv2(&headers, raw_query) {
        if config.auth == AuthMode::Off {
            let hash = declared.unwrap_or_else(|| UNSIGNED_PAYLOAD.into());
            return Ok((
                Caller::new(config.account_id.clone(), config.region.clone()),
                SignedPayload { hash, chain: None },
            ));
        }
        let host = header(&headers, "host").unwrap_or_default();
        let resource = match super::virtual_host_bucket(host) {
            Some(bucket) => format!("/{bucket}{raw_path}"),
            None => raw_path.to_string(),
        };
        let credential = super::sigv2::verify(&config.credentials, method, &resource, raw_query, &headers, unix_now())?;
        // SigV2 does not sign the payload; a declared SHA-256 is still checked.
        let hash = declared.filter(|d| is_hex_digest(d)).unwrap_or_else(|| UNSIGNED_PAYLOAD.into());
        let caller =
            Caller::signed(credential.account_id.clone(), config.region.clone(), credential.access_key_id.clone());
        return Ok((caller, SignedPayload { hash, chain: None }));
    }
    if config.auth == AuthMode::Off {
        let rp = RequestParts { method, raw_path, raw_query, headers: &headers };
        let (region, _) = credential_scope(&rp).unwrap_or_else(|| (config.region.clone(), "s3".into()));
        let hash = declared.unwrap_or_else(|| UNSIGNED_PAYLOAD.into());
        return Ok((Caller::new(config.account_id.clone(), region), SignedPayload { hash, chain: None }));
    }
    if declared.is_none() {
        if presigned {
            // Presigned URLs sign UNSIGNED-PAYLOAD (SignedHeaders does not name this header, so
            // adding it changes nothing else).
            headers.push(("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
        } else if header(&headers, "authorization").is_some() {
            return Err(S3Error::invalid_request("Missing required header for this request: x-amz-content-sha256"));
        }
    }
    let now = unix_now();
    let rp = RequestParts { method, raw_path, raw_query, headers: &headers };
    let verified = Verifier::new(&crate::app::auth::known_credentials(config))
        .verify(&rp, Payload::Streamed, UriEncoding::SingleEncode, now)
        .map_err(|e| s3_auth_error(e, presigned, &headers, raw_query, now))?;
    let payload = SignedPayload { chain: Some(SignatureChain::of(&verified)), hash: verified.payload_hash };
    Ok((Caller::signed(verified.account_id, verified.region, verified.access_key_id), payload))
}

fn is_hex_digest(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How the body is framed, from the payload hash the signature covers.
pub fn framing(payload: &SignedPayload, headers: &HeaderMap) -> Result<Framing, S3Error> {
    let decoded_length = match headers.get("x-amz-decoded-content-length").and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            S3Error::invalid_argument("x-amz-decoded-content-length is not a number", "x-amz-decoded-content-length", v)
        })?),
    };
    let signing = payload.chain.clone();
    let hash = payload.hash.as_str();
    Ok(match hash {
        STREAMING_SIGNED | STREAMING_SIGNED_TRAILER => Framing::Chunked {
            signing,
            signed_chunks: true,
            signed_trailer: hash == STREAMING_SIGNED_TRAILER,
            decoded_length,
        },
        STREAMING_UNSIGNED_TRAILER => {
            Framing::Chunked { signing: None, signed_chunks: false, signed_trailer: false, decoded_length }
        }
        UNSIGNED_PAYLOAD => Framing::Plain { sha256: None },
        h if is_hex_digest(h) => Framing::Plain { sha256: Some(h.to_ascii_lowercase()) },
        h if h.starts_with("STREAMING-AWS4-ECDSA-P256-SHA256") => {
            return Err(S3Error::not_implemented("SigV4a (ECDSA) streaming payloads are not implemented."))
        }
        h => {
            return Err(S3Error::invalid_argument(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, \
                 STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
                "x-amz-content-sha256",
                h,
            ))
        }
    })
}
