//! Verification of SigV4 requests (Authorization header or presigned query string).

use std::borrow::Cow;
use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::canonical::{self, RequestParts, UriEncoding, ALGORITHM, EMPTY_SHA256};
use super::time::{amz_date_to_epoch, epoch_to_amz_date};
use crate::kernel::query::pairs as query_params;

/// AWS accepts requests signed up to 15 minutes before or after its own clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// Presigned URLs may live at most seven days.
pub const MAX_PRESIGN_EXPIRES_SECS: i64 = 7 * 24 * 3600;

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A secret the emulator accepts, and the account that its requests act in.
#[derive(Debug, Clone, Default)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    /// Temporary credentials: requests must carry this token (`x-amz-security-token`).
    pub session_token: Option<String>,
    /// Temporary credentials: unix seconds after which requests are refused as expired.
    pub expires_at: Option<i64>,
}

/// Where a verifier finds the credential of an access key id: borrowed where it is kept (the
/// configured ones, looked up for every request), owned where it is made on demand.
pub trait CredentialLookup {
    fn credential(&self, access_key_id: &str) -> Option<Cow<'_, Credential>>;
}

impl CredentialLookup for HashMap<String, Credential> {
    fn credential(&self, access_key_id: &str) -> Option<Cow<'_, Credential>> {
        self.get(access_key_id).map(Cow::Borrowed)
    }
}

/// The identity and scope of a verified request.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    pub account_id: String,
    pub region: String,
    pub service: String,
    /// `x-amz-date` of the request, needed to verify aws-chunked bodies.
    pub amz_date: String,
    /// The payload hash the signature covers (hex digest, `UNSIGNED-PAYLOAD` or a `STREAMING-*` marker).
    pub payload_hash: String,
    pub signature: String,
    pub signing_key: Vec<u8>,
    pub presigned: bool,
}

/// Why a request was not authenticated. The `api` layer renders these in the protocol's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Neither an Authorization header nor presigned query parameters.
    Missing,
    /// Authorization present but malformed or missing a part.
    Incomplete(String),
    UnknownAccessKey(String),
    SignatureMismatch {
        canonical_request: String,
        string_to_sign: String,
    },
    /// Outside the clock-skew window, or a presigned URL past its expiry.
    Expired(String),
    /// `x-amz-content-sha256` names a digest that the body does not have.
    ContentHashMismatch {
        declared: String,
        computed: String,
    },
    /// Temporary credentials without their session token, or with another one.
    InvalidToken,
    /// Temporary credentials past their expiry.
    ExpiredToken,
    /// The credential scope names something that is not an AWS Region (`xx-fake-9`): on AWS no
    /// endpoint exists for it, and a request scoped to it fails.
    InvalidRegion(String),
}

impl AuthError {
    /// Error code and message as the JSON (non-S3) services return them.
    pub fn json_code_and_message(&self) -> (&'static str, String) {
        match self {
            AuthError::Missing => ("MissingAuthenticationTokenException", "Missing Authentication Token".into()),
            AuthError::Incomplete(m) => ("IncompleteSignatureException", m.clone()),
            AuthError::UnknownAccessKey(_) => (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            ),
            AuthError::SignatureMismatch { canonical_request, string_to_sign } => (
                "InvalidSignatureException",
                format!(
                    "The request signature we calculated does not match the signature you provided. \
                     Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n\
                     The Canonical String for this request should have been\n'{canonical_request}'\n\n\
                     The String-to-Sign should have been\n'{string_to_sign}'\n"
                ),
            ),
            AuthError::Expired(m) => ("InvalidSignatureException", m.clone()),
            AuthError::ContentHashMismatch { declared, computed } => (
                "InvalidSignatureException",
                format!(
                    "The provided 'x-amz-content-sha256' header does not match what was computed. \
                     Client computed: {declared}, server computed: {computed}"
                ),
            ),
            AuthError::InvalidToken => (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            ),
            AuthError::ExpiredToken => {
                ("ExpiredTokenException", "The security token included in the request is expired".into())
            }
            AuthError::InvalidRegion(region) => (
                "InvalidSignatureException",
                format!("Credential should be scoped to a valid region, not '{region}'."),
            ),
        }
    }
}

/// Whether `region` has the shape of a Region of one of AWS's partitions (botocore's
/// `endpoints.json` `regionRegex`es: `us-east-1`, `cn-north-1`, `us-gov-west-1`, `us-isob-east-1`,
/// `eusc-de-east-1`, …). New Regions of existing partitions pass without a list to keep current.
pub fn is_region(region: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "us-gov-", "us-isob-", "us-isof-", "us-iso-", "eu-isoe-", "eusc-de-", "us-", "eu-", "ap-", "sa-", "ca-", "me-",
        "af-", "il-", "mx-", "cn-",
    ];
    let Some(rest) = PREFIXES.iter().find_map(|p| region.strip_prefix(p)) else { return false };
    let Some((name, number)) = rest.rsplit_once('-') else { return false };
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// How the payload of this request is to be hashed.
pub enum Payload<'a> {
    /// The whole body is in memory.
    Buffered(&'a [u8]),
    /// The body is streamed by the caller; only allowed when `x-amz-content-sha256` declares the hash
    /// (a hex digest the caller then checks itself, `UNSIGNED-PAYLOAD` or a streaming marker).
    Streamed,
}

/// What [`Verifier::precheck`] established (the parsed signature, the signer's credential), kept
/// for [`Verifier::verify_prechecked`] once the body has arrived.
/// `precheck` gives one that owns its credential (`'c` is `'static`), so it outlives the verifier.
pub struct Prechecked<'a, 'c>(HeadersChecked<'a, 'c>);

impl Prechecked<'_, '_> {
    /// The signing name of the credential scope (`bedrock-agentcore`, `s3`, ...).
    pub fn service(&self) -> &str {
        &self.0.input.service
    }
}

/// What the header checks established, for the payload check that follows.
struct HeadersChecked<'a, 'c> {
    input: SignatureInput<'a>,
    credential: Cow<'c, Credential>,
    query: Vec<(String, String)>,
    presigned: bool,
}

pub struct Verifier<'c> {
    credentials: &'c dyn CredentialLookup,
    key_cache: Option<&'c SigningKeyCache>,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Signing keys derived lately, by secret, date, Region and service: a client signs every
/// request of a day with the same key, and deriving it is four HMACs and their allocations per
/// request. Keyed by the secret itself, so a rotated or revoked credential simply stops being
/// looked up (and an expired one is refused before its key is: `check_session`). The owner decides
/// its lifetime (this module keeps no globals); a std mutex, held for one scan or push.
#[derive(Default)]
pub struct SigningKeyCache(std::sync::Mutex<Vec<([String; 4], Vec<u8>)>>);

/// Keys a cache keeps at most; past it, it starts over. One entry per credential, Region and service
/// signing in a day: a handful for a developer, one more per session whose agent calls back with
/// its own credentials. Scanned in order, so it stays small.
const SIGNING_KEYS_KEPT: usize = 64;

impl SigningKeyCache {
    pub const fn new() -> SigningKeyCache {
        SigningKeyCache(std::sync::Mutex::new(Vec::new()))
    }

    fn get(&self, secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
        let lookup = [secret, date, region, service];
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, key)) = keys.iter().find(|(k, _)| k.iter().zip(lookup).all(|(a, b)| a == b)) {
            return key.clone();
        }
        let key = signing_key(secret, date, region, service);
        if keys.len() >= SIGNING_KEYS_KEPT {
            keys.clear();
        }
        keys.push((lookup.map(str::to_string), key.clone()));
        key
    }
}

pub fn sign(signing_key: &[u8], string_to_sign: &str) -> String {
    let mac: [u8; 32] = hmac(signing_key, string_to_sign.as_bytes()).try_into().expect("HMAC-SHA256 is 32 bytes");
    canonical::hex_of_digest(&mac)
}

/// The pieces of a SigV4 signature, from either the header or the query string: borrowed from
/// the request's headers where they come from there (every request is parsed this way up to
/// three times: to route it, to refuse it before its body, to verify it).
struct SignatureInput<'a> {
    access_key_id: Cow<'a, str>,
    date: Cow<'a, str>,
    region: Cow<'a, str>,
    service: Cow<'a, str>,
    terminator: Cow<'a, str>,
    signed_headers: Vec<Cow<'a, str>>,
    signature: Cow<'a, str>,
    amz_date: Cow<'a, str>,
    presign_expires: Option<i64>,
}

/// Signed header names as canonicalised: lower case.
fn signed_header_names(list: &str) -> Vec<Cow<'_, str>> {
    list.split(';').map(super::lowercase_name).collect()
}

/// The first value of header `name` (case-insensitive) among owned (name, value) pairs.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The five parts of `AK/20261124/us-east-1/service/aws4_request`.
type CredentialParts<'a> = [&'a str; 5];

/// Parses `AK/20261124/us-east-1/service/aws4_request`.
fn parse_credential(value: &str) -> Result<CredentialParts<'_>, AuthError> {
    let mut parts = [""; 5];
    let mut split = value.split('/');
    for part in parts.iter_mut() {
        *part = split.next().unwrap_or("");
    }
    if split.next().is_some() || parts.iter().any(|p| p.is_empty()) {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to a valid region, service and terminator: \
             expected '<access key>/<YYYYMMDD>/<region>/<service>/aws4_request', got '{value}'."
        )));
    }
    Ok(parts)
}

/// Owned copies of parsed credential parts (from a query string, which the input outlives).
fn owned(parts: CredentialParts<'_>) -> [Cow<'static, str>; 5] {
    parts.map(|p| Cow::Owned(p.to_string()))
}

/// What an Authorization header says, checked for form but not yet made a [`SignatureInput`].
struct AuthorizationFields<'a> {
    credential: CredentialParts<'a>,
    signed_headers: &'a str,
    signature: &'a str,
    amz_date: Cow<'a, str>,
}

/// Reads an Authorization header's fields (and the request's date). Every way the header can be
/// malformed is found here, so that [`credential_scope`] refuses what verification refuses
/// without building the signed-header list that only verification needs.
fn authorization_fields<'a>(
    auth: &'a str,
    headers: &'a [(String, String)],
) -> Result<AuthorizationFields<'a>, AuthError> {
    let rest = auth.strip_prefix(ALGORITHM).filter(|r| r.starts_with(' ')).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "Authorization header requires the '{ALGORITHM}' algorithm; got '{}'. Sign the request with SigV4.",
            auth.split_whitespace().next().unwrap_or("")
        ))
    })?;
    // The three fields SigV4 defines; others are ignored, and a repeated one's last value counts.
    let (mut credential, mut signature, mut signed_headers) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| {
            AuthError::Incomplete(format!(
                "Invalid key=value pair (missing equal-sign) in Authorization header: '{part}'."
            ))
        })?;
        let v = v.trim();
        match k.trim() {
            "Credential" => credential = Some(v),
            "Signature" => signature = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (required, value) in [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed_headers)] {
        if value.is_none() {
            missing.push(format!("Authorization header requires '{required}' parameter."));
        }
    }
    let amz_date = match header(headers, "x-amz-date") {
        Some(d) => Some(Cow::Borrowed(d)),
        None => header(headers, "date").map(http_date_to_amz_date).transpose()?.map(Cow::Owned),
    };
    if amz_date.is_none() {
        missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into());
    }
    if !missing.is_empty() {
        return Err(AuthError::Incomplete(format!("{} Authorization={auth}", missing.join(" "))));
    }
    Ok(AuthorizationFields {
        credential: parse_credential(credential.unwrap_or_default())?,
        signed_headers: signed_headers.unwrap_or_default(),
        signature: signature.unwrap_or_default(),
        amz_date: amz_date.unwrap_or_default(),
    })
}

fn from_authorization_header<'a>(
    auth: &'a str,
    headers: &'a [(String, String)],
) -> Result<SignatureInput<'a>, AuthError> {
    let fields = authorization_fields(auth, headers)?;
    let [access_key_id, date, region, service, terminator] = fields.credential;
    Ok(SignatureInput {
        access_key_id: access_key_id.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        terminator: terminator.into(),
        signed_headers: signed_header_names(fields.signed_headers),
        signature: fields.signature.into(),
        amz_date: fields.amz_date,
        presign_expires: None,
    })
}

fn http_date_to_amz_date(value: &str) -> Result<String, AuthError> {
    let parsed = aws_smithy_types::DateTime::from_str(value, aws_smithy_types::date_time::Format::HttpDate)
        .map_err(|_| AuthError::Incomplete(format!("Date header '{value}' is not a valid HTTP date.")))?;
    Ok(epoch_to_amz_date(parsed.secs()))
}

fn from_query(params: &[(String, String)]) -> Result<SignatureInput<'static>, AuthError> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let algorithm = get("X-Amz-Algorithm").unwrap_or_default();
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!("X-Amz-Algorithm only supports '{ALGORITHM}'; got '{algorithm}'.")));
    }
    let mut missing = Vec::new();
    for name in ["X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Expires"] {
        if get(name).is_none() {
            missing.push(format!("AWS query-string parameters must include '{name}'."));
        }
    }
    if !missing.is_empty() {
        return Err(AuthError::Incomplete(missing.join(" ")));
    }
    let expires_raw = get("X-Amz-Expires").unwrap_or_default();
    let expires: i64 = expires_raw.parse().map_err(|_| {
        AuthError::Incomplete(format!("X-Amz-Expires should be a number of seconds; got '{expires_raw}'."))
    })?;
    if !(0..=MAX_PRESIGN_EXPIRES_SECS).contains(&expires) {
        return Err(AuthError::Incomplete(format!(
            "X-Amz-Expires must be non-negative and less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES_SECS}; got {expires}."
        )));
    }
    let [access_key_id, date, region, service, terminator] =
        owned(parse_credential(&get("X-Amz-Credential").unwrap_or_default())?);
    Ok(SignatureInput {
        access_key_id,
        date,
        region,
        service,
        terminator,
        signed_headers: get("X-Amz-SignedHeaders")
            .unwrap_or_default()
            .split(';')
            .map(|name| Cow::Owned(name.to_ascii_lowercase()))
            .collect(),
        signature: get("X-Amz-Signature").unwrap_or_default().into(),
        amz_date: get("X-Amz-Date").unwrap_or_default().into(),
        presign_expires: Some(expires),
    })
}

/// Where a request keeps its signature, if anywhere. Used to route before verifying.
pub fn credential_scope(parts: &RequestParts<'_>) -> Option<(String, String)> {
    if let Some(auth) = header(parts.headers, "authorization").map(str::trim) {
        // Read, not made a SignatureInput: this runs on every request before verification,
        // which reads the header again (some 3 000 instructions an invocation saved).
        let [_, _, region, service, _] = authorization_fields(auth, parts.headers).ok()?.credential;
        return Some((region.to_string(), service.to_string()));
    }
    if !parts.raw_query.contains("X-Amz-Credential=") {
        return None;
    }
    let input = from_query(&query_params(parts.raw_query)).ok()?;
    Some((input.region.into_owned(), input.service.into_owned()))
}

impl<'c> Verifier<'c> {
    pub fn new(credentials: &'c dyn CredentialLookup) -> Self {
        Verifier { credentials, key_cache: None }
    }

    /// Signing keys are looked up in `cache` before they are derived.
    pub fn with_key_cache(self, cache: &'c SigningKeyCache) -> Self {
        Verifier { key_cache: Some(cache), ..self }
    }

    /// Everything that can be checked before the body is read: the Authorization header or
    /// presigned query is well formed, the date is within the allowed skew, the access key is known
    /// and a temporary one carries its live session token. A request failing here is refused
    /// without reading its body, so an unauthenticated client cannot hold the server on a body.
    pub fn precheck<'a>(&self, parts: &RequestParts<'a>, now: i64) -> Result<Prechecked<'a, 'static>, AuthError> {
        let HeadersChecked { input, credential, query, presigned } = self.check_headers(parts, now)?;
        Ok(Prechecked(HeadersChecked { input, credential: Cow::Owned(credential.into_owned()), query, presigned }))
    }

    fn check_headers<'a>(&self, parts: &RequestParts<'a>, now: i64) -> Result<HeadersChecked<'a, 'c>, AuthError> {
        // Two Authorization headers make the request ambiguous (a proxy may read the other one):
        // refused, never "the first wins".
        if parts.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("authorization")).count() > 1 {
            return Err(AuthError::Incomplete("The request carries more than one Authorization header.".into()));
        }
        let auth_header = header(parts.headers, "authorization").map(str::trim);
        let query = query_params(parts.raw_query);
        let presigned = auth_header.is_none() && query.iter().any(|(k, _)| k == "X-Amz-Algorithm");
        let input = match (auth_header, presigned) {
            (Some(auth), _) => from_authorization_header(auth, parts.headers)?,
            (None, true) => from_query(&query)?,
            (None, false) => return Err(AuthError::Missing),
        };

        if !is_region(&input.region) {
            return Err(AuthError::InvalidRegion(input.region.into_owned()));
        }
        if input.terminator != "aws4_request" {
            return Err(AuthError::Incomplete(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
                input.terminator
            )));
        }
        if !input.signed_headers.iter().any(|h| h == "host") {
            return Err(AuthError::Incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
            ));
        }
        let request_time = amz_date_to_epoch(&input.amz_date).ok_or_else(|| {
            AuthError::Incomplete(format!(
                "X-Amz-Date must be in the ISO8601 basic format 'YYYYMMDDTHHMMSSZ'; got '{}'.",
                input.amz_date
            ))
        })?;
        if !input.amz_date.starts_with(&*input.date) {
            return Err(AuthError::Expired(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                input.date,
                &input.amz_date[..8.min(input.amz_date.len())],
                input.amz_date
            )));
        }
        check_time(&input, request_time, now)?;

        let credential = self
            .credentials
            .credential(&input.access_key_id)
            .ok_or_else(|| AuthError::UnknownAccessKey(input.access_key_id.to_string()))?;
        check_session(&credential, parts, &query, now)?;
        Ok(HeadersChecked { input, credential, query, presigned })
    }

    /// Verify `parts` at time `now` (unix seconds). `encoding` is chosen by the caller from the
    /// credential scope's service (S3 or not).
    pub fn verify(
        &self,
        parts: &RequestParts<'_>,
        payload: Payload<'_>,
        encoding: UriEncoding,
        now: i64,
    ) -> Result<Verified, AuthError> {
        let checked = self.check_headers(parts, now)?;
        self.verify_prechecked(Prechecked(checked), parts, payload, encoding)
    }

    /// [`Verifier::verify`] of a request whose headers `precheck` has checked: the signature is
    /// not parsed, nor the time and credential checked, a second time.
    pub fn verify_prechecked(
        &self,
        prechecked: Prechecked<'_, '_>,
        parts: &RequestParts<'_>,
        payload: Payload<'_>,
        encoding: UriEncoding,
    ) -> Result<Verified, AuthError> {
        let Prechecked(HeadersChecked { input, credential, query, presigned }) = prechecked;
        let declared = if presigned {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-content-sha256"))
                .map(|(_, v)| v.clone())
                .or_else(|| header(parts.headers, "x-amz-content-sha256").map(str::to_string))
        } else {
            header(parts.headers, "x-amz-content-sha256").map(str::to_string)
        };
        let mut candidate_hashes = Vec::with_capacity(2);
        match (&declared, &payload) {
            (Some(d), Payload::Buffered(body)) if is_hex_digest(d) => {
                let computed = canonical::sha256_hex(body);
                if !computed.eq_ignore_ascii_case(d) {
                    return Err(AuthError::ContentHashMismatch { declared: d.clone(), computed });
                }
                candidate_hashes.push(d.clone());
            }
            (Some(d), _) => candidate_hashes.push(d.clone()),
            (None, Payload::Buffered(body)) => {
                candidate_hashes.push(if body.is_empty() {
                    EMPTY_SHA256.to_string()
                } else {
                    canonical::sha256_hex(body)
                });
                if presigned {
                    // Presigned URLs made by S3-style signers say UNSIGNED-PAYLOAD without a header.
                    candidate_hashes.push(UNSIGNED_PAYLOAD.to_string());
                }
            }
            (None, Payload::Streamed) => {
                return Err(AuthError::Incomplete("A streamed body requires the 'x-amz-content-sha256' header.".into()))
            }
        }

        let scope = [&*input.date, &input.region, &input.service, "aws4_request"].join("/");
        let key = match self.key_cache {
            Some(cache) => cache.get(&credential.secret_access_key, &input.date, &input.region, &input.service),
            None => signing_key(&credential.secret_access_key, &input.date, &input.region, &input.service),
        };
        let skip = presigned.then_some("X-Amz-Signature");
        let mut first_failure = None;
        let uris = canonical::canonical_uri_candidates(parts.raw_path, encoding);
        for (uri, payload_hash) in candidate_hashes.iter().flat_map(|h| uris.iter().map(move |u| (u, h))) {
            let creq = canonical::canonical_request_for_uri(parts, uri, &input.signed_headers, payload_hash, skip);
            let sts = canonical::string_to_sign(&input.amz_date, &scope, &creq);
            let expected = sign(&key, &sts);
            if bool::from(expected.as_bytes().ct_eq(input.signature.to_ascii_lowercase().as_bytes())) {
                return Ok(Verified {
                    access_key_id: credential.access_key_id.clone(),
                    account_id: credential.account_id.clone(),
                    region: input.region.into_owned(),
                    service: input.service.into_owned(),
                    amz_date: input.amz_date.into_owned(),
                    payload_hash: payload_hash.clone(),
                    signature: input.signature.into_owned(),
                    signing_key: key,
                    presigned,
                });
            }
            first_failure.get_or_insert(AuthError::SignatureMismatch { canonical_request: creq, string_to_sign: sts });
        }
        Err(first_failure.expect("at least one candidate hash"))
    }
}

/// Temporary credentials are good only with their own session token (header, or query parameter
/// of a presigned URL) and until they expire. Long-term credentials ignore a token, so profiles
/// that carry one from elsewhere keep working.
fn check_session(
    credential: &Credential,
    parts: &RequestParts<'_>,
    query: &[(String, String)],
    now: i64,
) -> Result<(), AuthError> {
    let Some(expected) = &credential.session_token else { return Ok(()) };
    let sent = header(parts.headers, "x-amz-security-token")
        .map(str::to_string)
        .or_else(|| query.iter().find(|(k, _)| k == "X-Amz-Security-Token").map(|(_, v)| v.clone()));
    let matches = sent.is_some_and(|t| bool::from(t.trim().as_bytes().ct_eq(expected.as_bytes())));
    if !matches {
        return Err(AuthError::InvalidToken);
    }
    if credential.expires_at.is_some_and(|at| now >= at) {
        return Err(AuthError::ExpiredToken);
    }
    Ok(())
}

fn is_hex_digest(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_time(input: &SignatureInput, request_time: i64, now: i64) -> Result<(), AuthError> {
    // Formatted only for an error: this runs for every request.
    let now_s = || epoch_to_amz_date(now);
    if request_time > now + MAX_CLOCK_SKEW_SECS {
        return Err(AuthError::Expired(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            input.amz_date,
            epoch_to_amz_date(now + MAX_CLOCK_SKEW_SECS),
            now_s()
        )));
    }
    match input.presign_expires {
        Some(expires) if now > request_time + expires => Err(AuthError::Expired(format!(
            "Signature expired: {} is now earlier than {} ({} + {expires} sec.)",
            epoch_to_amz_date(request_time + expires),
            now_s(),
            input.amz_date
        ))),
        None if request_time < now - MAX_CLOCK_SKEW_SECS => Err(AuthError::Expired(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            input.amz_date,
            epoch_to_amz_date(now - MAX_CLOCK_SKEW_SECS),
            now_s()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod region_tests {
    use super::is_region;

    #[test]
    fn regions_of_every_partition_have_the_shape_and_nothing_else_does() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "ap-southeast-7",
            "cn-north-1",
            "us-gov-west-1",
            "us-isob-east-1",
            "il-central-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in ["xx-fake-9", "us-east", "us-east-", "us--1", "US-EAST-1", "", "r", "us-east-1a", "eu-west-1/x"] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
