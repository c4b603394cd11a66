//! The verifier against AWS's published SigV4 test suite (tests/sigv4-suite, from botocore's
//! source distribution, Apache-2.0) and, by property tests, against the `aws-sigv4` crate that the
//! Rust SDK signs with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use agentcore_local::kernel::sigv4::canonical::{canonical_request, sha256_hex, string_to_sign};
use agentcore_local::kernel::sigv4::verify::{sign, signing_key};
use agentcore_local::kernel::sigv4::{
    AuthError, Credential, Payload, RequestParts, SigningKeyCache, UriEncoding, Verifier,
};
use proptest::prelude::*;

const SUITE_TIME: i64 = 1_440_938_160; // 20150830T123600Z
const SUITE_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

struct RawRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Parses the suite's `.req` / `.sreq` files (HTTP/1.1 text, folded header lines allowed).
fn parse_request(text: &str) -> RawRequest {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b.as_bytes().to_vec()),
        None => (text, Vec::new()),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = rest.rsplit_once(" HTTP/").unwrap().0;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (k, v) = line.split_once(':').unwrap();
            headers.push((k.to_string(), v.to_string()));
        }
    }
    RawRequest { method: method.into(), path: path.into(), query: query.into(), headers, body }
}

fn suite_cases() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if path.join(format!("{name}.req")).exists() {
                    out.push(path.clone());
                }
                walk(&path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigv4-suite"), &mut out);
    out.sort();
    out
}

fn read(case: &Path, ext: &str) -> String {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    std::fs::read_to_string(case.join(format!("{name}.{ext}"))).unwrap()
}

fn credentials() -> HashMap<String, Credential> {
    HashMap::from([(
        SUITE_KEY.to_string(),
        Credential {
            access_key_id: SUITE_KEY.into(),
            secret_access_key: SUITE_SECRET.into(),
            account_id: "123456789012".into(),
            ..Default::default()
        },
    )])
}

/// The `.sreq` with the signature of `.authz`. (The suite's get-vanilla-with-session-token `.sreq`
/// carries a signature that matches neither its `.authz` nor its `.sts`; the `.authz` is right.)
fn signed_request(case: &Path) -> RawRequest {
    let mut req = parse_request(&read(case, "sreq"));
    req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    req.headers.push(("Authorization".into(), read(case, "authz")));
    req
}

fn parts(r: &RawRequest) -> RequestParts<'_> {
    RequestParts { method: &r.method, raw_path: &r.path, raw_query: &r.query, headers: &r.headers }
}

#[test]
fn every_suite_case_matches_canonical_request_string_to_sign_and_signature() {
    let cases = suite_cases();
    assert!(cases.len() >= 30, "expected the whole suite, found {} cases", cases.len());
    for case in &cases {
        // The signed request minus its signature: some cases add headers (the session token) that
        // the unsigned `.req` lacks but the canonical request covers.
        let mut req = parse_request(&read(case, "sreq"));
        req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        let authz = read(case, "authz");
        let signed: Vec<String> = authz
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .split(';')
            .map(String::from)
            .collect();
        let creq = canonical_request(
            &parts(&req),
            &signed,
            &sha256_hex(&req.body),
            UriEncoding::NormalizeAndDoubleEncode,
            None,
        );
        assert_eq!(creq, read(case, "creq"), "canonical request of {}", case.display());
        let sts = string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", &creq);
        assert_eq!(sts, read(case, "sts"), "string to sign of {}", case.display());
        let sig = sign(&signing_key(SUITE_SECRET, "20150830", "us-east-1", "service"), &sts);
        assert!(authz.ends_with(&format!("Signature={sig}")), "signature of {}", case.display());
    }
}

#[test]
fn every_signed_suite_request_verifies_and_a_tampered_one_does_not() {
    let creds = credentials();
    let verifier = Verifier::new(&creds);
    for case in suite_cases() {
        let sreq = signed_request(&case);
        let verified = verifier
            .verify(&parts(&sreq), Payload::Buffered(&sreq.body), UriEncoding::NormalizeAndDoubleEncode, SUITE_TIME)
            .unwrap_or_else(|e| panic!("{} did not verify: {e:?}", case.display()));
        assert_eq!((verified.region.as_str(), verified.service.as_str()), ("us-east-1", "service"));

        let mut tampered = signed_request(&case);
        tampered.body.extend_from_slice(b"x");
        let err = verifier
            .verify(
                &parts(&tampered),
                Payload::Buffered(&tampered.body),
                UriEncoding::NormalizeAndDoubleEncode,
                SUITE_TIME,
            )
            .unwrap_err();
        assert!(matches!(err, AuthError::SignatureMismatch { .. }), "{}: {err:?}", case.display());
    }
}

/// The path every request of the emulator takes: headers checked before the body, signature
/// verified after it, with signing keys from a cache. It must agree with `verify` on every suite
/// case; and a key cached for a secret must not verify a request once the credential's secret has
/// changed (the cache is keyed by the secret, not the access key).
#[test]
fn prechecked_verification_with_cached_keys_agrees_with_verify() {
    let cache = SigningKeyCache::new();
    let creds = credentials();
    let verifier = Verifier::new(&creds).with_key_cache(&cache);
    for _ in 0..2 {
        for case in suite_cases() {
            let sreq = signed_request(&case);
            let prechecked = verifier.precheck(&parts(&sreq), SUITE_TIME).unwrap();
            assert_eq!(prechecked.service(), "service");
            verifier
                .verify_prechecked(
                    prechecked,
                    &parts(&sreq),
                    Payload::Buffered(&sreq.body),
                    UriEncoding::NormalizeAndDoubleEncode,
                )
                .unwrap_or_else(|e| panic!("{} did not verify: {e:?}", case.display()));
            let mut tampered = signed_request(&case);
            tampered.body.extend_from_slice(b"x");
            let prechecked = verifier.precheck(&parts(&tampered), SUITE_TIME).unwrap();
            let err = verifier
                .verify_prechecked(
                    prechecked,
                    &parts(&tampered),
                    Payload::Buffered(&tampered.body),
                    UriEncoding::NormalizeAndDoubleEncode,
                )
                .unwrap_err();
            assert!(matches!(err, AuthError::SignatureMismatch { .. }), "{}: {err:?}", case.display());
        }
    }
    let mut rotated = credentials();
    rotated.get_mut(SUITE_KEY).unwrap().secret_access_key = "another secret".into();
    let verifier = Verifier::new(&rotated).with_key_cache(&cache);
    let sreq = signed_request(&suite_cases()[0]);
    let err = verifier
        .verify(&parts(&sreq), Payload::Buffered(&sreq.body), UriEncoding::NormalizeAndDoubleEncode, SUITE_TIME)
        .unwrap_err();
    assert!(matches!(err, AuthError::SignatureMismatch { .. }), "{err:?}");
}

#[test]
fn suite_requests_outside_the_clock_window_are_expired() {
    let creds = credentials();
    let verifier = Verifier::new(&creds);
    let sreq = signed_request(&suite_cases()[0]);
    for now in [SUITE_TIME + 16 * 60, SUITE_TIME - 16 * 60] {
        let err = verifier
            .verify(&parts(&sreq), Payload::Buffered(&sreq.body), UriEncoding::NormalizeAndDoubleEncode, now)
            .unwrap_err();
        assert!(
            matches!(&err, AuthError::Expired(m) if m.starts_with("Signature expired") || m.starts_with("Signature not yet current")),
            "{err:?}"
        );
    }
    assert!(verifier
        .verify(
            &parts(&sreq),
            Payload::Buffered(&sreq.body),
            UriEncoding::NormalizeAndDoubleEncode,
            SUITE_TIME + 14 * 60
        )
        .is_ok());
}

// ---- cross-check with aws-sigv4 ----

#[test]
fn temporary_credentials_need_their_token_and_expire() {
    let now = 1_790_000_000i64;
    let temporary = |expires_at: i64| {
        HashMap::from([(
            "AKIDTEST".to_string(),
            Credential {
                access_key_id: "AKIDTEST".into(),
                secret_access_key: "secret/with+chars".into(),
                account_id: "123456789012".into(),
                session_token: Some("the-token".into()),
                expires_at: Some(expires_at),
            },
        )])
    };
    let headers = vec![("host".to_string(), "127.0.0.1:4599".to_string())];
    for presign in [false, true] {
        let outcome = |token: Option<&str>, expires_at: i64| {
            let (target, signed) =
                sign_with_sdk_as("GET", "/runtimes/", &headers, b"", presign, "bedrock-agentcore", now, token);
            let (raw_path, raw_query) = split_target(&target);
            let parts = RequestParts { method: "GET", raw_path: &raw_path, raw_query: &raw_query, headers: &signed };
            let creds = temporary(expires_at);
            Verifier::new(&creds)
                .verify(&parts, Payload::Buffered(b""), UriEncoding::NormalizeAndDoubleEncode, now)
                .map(|_| ())
        };
        assert_eq!(outcome(Some("the-token"), now + 60), Ok(()), "presign {presign}");
        assert_eq!(outcome(None, now + 60), Err(AuthError::InvalidToken), "presign {presign}");
        assert_eq!(outcome(Some("another-token"), now + 60), Err(AuthError::InvalidToken), "presign {presign}");
        assert_eq!(outcome(Some("the-token"), now), Err(AuthError::ExpiredToken), "presign {presign}");
    }
}

fn sign_with_sdk(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    presign: bool,
    service: &str,
    at: i64,
) -> (String, Vec<(String, String)>) {
    sign_with_sdk_as(method, path_and_query, headers, body, presign, service, at, None)
}

/// `sign_with_sdk` with temporary credentials (`session_token`).
#[allow(clippy::too_many_arguments)]
fn sign_with_sdk_as(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    presign: bool,
    service: &str,
    at: i64,
    session_token: Option<&str>,
) -> (String, Vec<(String, String)>) {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        sign as sdk_sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    let identity =
        Credentials::new("AKIDTEST", "secret/with+chars", session_token.map(str::to_string), None, "test").into();
    let mut settings = SigningSettings::default();
    if presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(300));
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-west-2")
        .name(service)
        .time(UNIX_EPOCH + Duration::from_secs(at as u64))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = format!("http://127.0.0.1:4599{path_and_query}");
    let signable = SignableRequest::new(
        method,
        uri.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sdk_sign(signable, &params).unwrap().into_parts();
    let mut all_headers = headers.to_vec();
    for (k, v) in instructions.headers() {
        all_headers.push((k.to_string(), v.to_string()));
    }
    let mut target = path_and_query.to_string();
    for (k, v) in instructions.params() {
        let sep = if target.contains('?') { '&' } else { '?' };
        target.push(sep);
        target.push_str(&format!(
            "{}={}",
            k,
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    (target, all_headers)
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{1,12}",
        // An ARN segment percent-encoded as the SDKs send it.
        "[a-z0-9-]{1,10}"
            .prop_map(|id| format!("arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2F{id}")),
        "[a-zA-Z0-9 !$&'()*+,;=:@]{1,8}".prop_map(|s| percent_encoding::utf8_percent_encode(
            &s,
            percent_encoding::NON_ALPHANUMERIC
        )
        .to_string()),
    ]
}

/// (method, path, query pairs, headers, body)
type GeneratedRequest = (String, String, Vec<(String, String)>, Vec<(String, String)>, Vec<u8>);

fn request() -> impl Strategy<Value = GeneratedRequest> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
        prop::collection::vec(segment(), 0..4),
        any::<bool>(),
        prop::collection::vec(("[a-zA-Z][a-zA-Z0-9_]{0,8}", "[a-zA-Z0-9 /+=:,-]{0,10}"), 0..4),
        prop::collection::vec(("x-custom-[a-z]{1,6}", "[ -~]{0,20}"), 0..3),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, segs, trailing, query, headers, body)| {
            let mut path = format!("/{}", segs.join("/"));
            if trailing && !segs.is_empty() {
                path.push('/');
            }
            let query: Vec<(String, String)> = query
                .into_iter()
                .map(|(k, v)| {
                    (k, percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC).to_string())
                })
                .collect();
            let mut headers: Vec<(String, String)> = headers;
            headers.push(("host".into(), "127.0.0.1:4599".into()));
            (method.to_string(), path, query, headers, body)
        })
}

fn split_target(target: &str) -> (String, String) {
    let (p, q) = target.split_once('?').unwrap_or((target, ""));
    (p.to_string(), q.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn verifies_what_aws_sigv4_signs((method, path, query, headers, body) in request(), presign in any::<bool>()) {
        let now = 1_790_000_000;
        let qs = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let path_and_query = if qs.is_empty() { path.clone() } else { format!("{path}?{qs}") };
        let (target, signed_headers) = sign_with_sdk(&method, &path_and_query, &headers, &body, presign, "bedrock-agentcore", now);
        let (raw_path, raw_query) = split_target(&target);
        let creds = HashMap::from([("AKIDTEST".to_string(), Credential {
            access_key_id: "AKIDTEST".into(), secret_access_key: "secret/with+chars".into(), account_id: "123456789012".into(), ..Default::default() })]);
        let verifier = Verifier::new(&creds);
        let parts = RequestParts { method: &method, raw_path: &raw_path, raw_query: &raw_query, headers: &signed_headers };
        let verified = verifier.verify(&parts, Payload::Buffered(&body), UriEncoding::NormalizeAndDoubleEncode, now);
        prop_assert!(verified.is_ok(), "{:?} for {} {}", verified.err(), method, target);
        prop_assert_eq!(verified.unwrap().region, "us-west-2");

        // Any change to the body or the path must break the signature.
        let mut other_body = body.clone();
        other_body.push(b'!');
        let tampered = verifier.verify(&parts, Payload::Buffered(&other_body), UriEncoding::NormalizeAndDoubleEncode, now);
        prop_assert!(presign || tampered.is_err(), "tampered body verified");
        let other_path = format!("{raw_path}x");
        let parts2 = RequestParts { raw_path: &other_path, ..parts.clone() };
        prop_assert!(verifier.verify(&parts2, Payload::Buffered(&body), UriEncoding::NormalizeAndDoubleEncode, now).is_err());
    }

    #[test]
    fn s3_style_single_encoding_matches_aws_sigv4(key in "[a-zA-Z0-9 ._~!'()*-]{1,20}", body in prop::collection::vec(any::<u8>(), 0..32)) {
        use aws_credential_types::Credentials;
        use aws_sigv4::http_request::{sign as sdk_sign, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode};
        use aws_sigv4::sign::v4;
        let now = 1_790_000_000i64;
        let path = format!("/bucket/{}", percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC));
        let identity = Credentials::new("AKIDTEST", "s3secret", None, None, "t").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder().identity(&identity).region("us-east-1").name("s3")
            .time(UNIX_EPOCH + Duration::from_secs(now as u64)).settings(settings).build().unwrap().into();
        let uri = format!("http://127.0.0.1:4599{path}");
        let headers = vec![("host".to_string(), "127.0.0.1:4599".to_string())];
        let signable = SignableRequest::new("PUT", uri.as_str(), headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), SignableBody::Bytes(&body)).unwrap();
        let (instructions, _) = sdk_sign(signable, &params).unwrap().into_parts();
        let mut all = headers.clone();
        all.extend(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())));
        let creds = HashMap::from([("AKIDTEST".to_string(), Credential {
            access_key_id: "AKIDTEST".into(), secret_access_key: "s3secret".into(), account_id: "123456789012".into(), ..Default::default() })]);
        let parts = RequestParts { method: "PUT", raw_path: &path, raw_query: "", headers: &all };
        let verified = Verifier::new(&creds).verify(&parts, Payload::Buffered(&body), UriEncoding::SingleEncode, now);
        prop_assert!(verified.is_ok(), "{:?} for {}", verified.err(), path);
    }
}
