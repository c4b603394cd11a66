//! Fuzz targets: one function per parser that reads bytes from a client, each driving the real
//! parser (no copies) and panicking only when an invariant of that parser breaks.
//!
//! The coverage-guided runs live in `fuzz/` (libFuzzer through `cargo fuzz`, see fuzz/README.md);
//! each of its targets calls one function here. The unit test at the bottom is the short smoke
//! that plain `cargo test` runs: every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`, plus a few thousand deterministic mutations of each, through its
//! target.
//!
//! Most targets read their input as a small HTTP-like request (see [`Request`]):
//!
//! ```text
//! METHOD /path?query
//! Name: value
//!
//! body
//! ```
//!
//! so that seeds are readable and a mutation of a seed stays close to a request. The targets and
//! what they check are listed in [`TARGETS`] and in fuzz/README.md.

use std::collections::HashMap;

/// A fuzz target: takes any bytes, panics only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target, by the name its `fuzz/fuzz_targets/<name>.rs` and corpus folder carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("sigv4_canonical", sigv4_canonical),
    ("sigv4_verify", sigv4_verify),
    ("aws_chunked", aws_chunked),
    ("s3_xml", s3_xml),
    ("s3_headers", s3_headers),
    ("restjson_input", restjson_input),
    ("query", query),
    ("code_zip", code_zip),
    ("runtime_headers", runtime_headers),
    ("eventstream", eventstream),
];

/// A request as the targets read it: first line `METHOD target`, header lines `Name: value` up to
/// an empty line, then the body. Invalid UTF-8 in the text parts becomes U+FFFD, as
/// `sigv4::header_pairs` makes of header values that are not UTF-8.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn parse(data: &[u8]) -> Request {
        let (head, body) = match find(data, b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &[][..]),
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("");
        let (method, target) = first.split_once(' ').unwrap_or((first, ""));
        // `GET / HTTP/1.1`, as the SigV4 test suite writes its requests.
        let target = match target.rsplit_once(' ') {
            Some((t, version)) if version.starts_with("HTTP/") => t,
            _ => target,
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim_start().to_string()))
            .take(MAX_HEADERS)
            .collect();
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: body.to_vec(),
        }
    }

    fn parts(&self) -> crate::kernel::sigv4::RequestParts<'_> {
        crate::kernel::sigv4::RequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &self.headers,
        }
    }
}

/// Headers a request may have: hyper's default limit, which the server keeps. (SigV4's canonical
/// headers are quadratic in their number; past the limit a target would measure only that.)
const MAX_HEADERS: usize = 100;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ----------------------------------------------------------------------------------------------
// SigV4

/// The credentials of AWS's SigV4 test suite (tests/sigv4-suite), which the seeds are signed with.
const SUITE_ACCESS_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z, the suite's `X-Amz-Date`.
const SUITE_NOW: i64 = 1_440_938_160;
const SUITE_AMZ_DATE: &str = "20150830T123600Z";

fn suite_credentials() -> HashMap<String, crate::kernel::sigv4::Credential> {
    HashMap::from([(
        SUITE_ACCESS_KEY.to_string(),
        crate::kernel::sigv4::Credential {
            access_key_id: SUITE_ACCESS_KEY.into(),
            secret_access_key: SUITE_SECRET.into(),
            account_id: "123456789012".into(),
            session_token: None,
            expires_at: None,
        },
    )])
}

/// SigV4 canonicalisation on arbitrary text: URI encoding round-trips, the canonical query and
/// the S3 canonical URI are fixed points, the normalised URI has no empty or dot segments, and a
/// date that parses formats back to itself.
pub fn sigv4_canonical(data: &[u8]) {
    use crate::kernel::sigv4::canonical::{
        canonical_headers, canonical_query, canonical_uri, canonical_uri_candidates, percent_decode, uri_encode,
    };
    use crate::kernel::sigv4::time::{amz_date_to_epoch, epoch_to_amz_date};
    use crate::kernel::sigv4::UriEncoding;

    for keep_slash in [false, true] {
        let encoded = uri_encode(data, keep_slash);
        assert!(
            encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b) || (keep_slash && b == b'/')),
            "uri_encode left a reserved byte: {encoded}"
        );
        assert_eq!(percent_decode(&encoded), data, "percent_decode(uri_encode(x)) != x");
    }
    let text = String::from_utf8_lossy(data);

    let query = canonical_query(&text, None);
    assert_eq!(canonical_query(&query, None), query, "the canonical query is not a fixed point");
    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    assert!(pairs.windows(2).all(|w| w[0].split_once('=') <= w[1].split_once('=')), "query not sorted: {query}");
    let skipped = canonical_query(&text, Some("X-Amz-Signature"));
    assert!(!skipped.split('&').any(|p| p.starts_with("X-Amz-Signature=")), "skipped parameter kept: {skipped}");

    let s3 = canonical_uri(&text, UriEncoding::SingleEncode);
    assert_eq!(canonical_uri(&s3, UriEncoding::SingleEncode), s3, "the S3 canonical URI is not a fixed point");
    let normalized = canonical_uri(&text, UriEncoding::NormalizeAndDoubleEncode);
    assert!(normalized.starts_with('/'), "canonical URI {normalized:?} does not start with /");
    let inner = normalized.trim_start_matches('/');
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if !inner.is_empty() {
        assert!(
            inner.split('/').all(|s| !s.is_empty() && s != "." && s != ".."),
            "normalised URI {normalized:?} keeps an empty or dot segment"
        );
    }
    for encoding in [UriEncoding::SingleEncode, UriEncoding::NormalizeAndDoubleEncode] {
        let candidates = canonical_uri_candidates(&text, encoding);
        assert_eq!(candidates[0], canonical_uri(&text, encoding));
    }

    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .take(MAX_HEADERS)
        .collect();
    let signed: Vec<String> = headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    let canonical = canonical_headers(&headers, &signed);
    assert!(canonical.matches('\n').count() >= signed.len(), "a signed header lost its line");

    for line in &lines {
        if let Some(secs) = amz_date_to_epoch(line) {
            assert_eq!(epoch_to_amz_date(secs), *line, "X-Amz-Date {line:?} parses to {secs}, which formats otherwise");
        }
    }
    let _ = crate::kernel::sigv4::verify::is_region(&text);
}

/// SigV4 verification of a request (Authorization header or presigned query) with the test
/// suite's credentials at the suite's time. The first byte chooses the mode:
///
/// - `S` (signed): the request is first signed as a client would (every header signed, in the
///   header when the rest starts with `H`, otherwise presigned in the query) with the suite's key,
///   then verified: it must verify, as both URI encodings, and its credential scope must be the
///   one routing reads (`credential_scope`).
/// - anything else: the request is verified as it is; a success must name the suite's key and a
///   scope that `credential_scope` agrees with.
pub fn sigv4_verify(data: &[u8]) {
    use crate::kernel::sigv4::verify::{credential_scope, Payload, Verifier};
    use crate::kernel::sigv4::UriEncoding;

    let credentials = suite_credentials();
    let verifier = Verifier::new(&credentials);
    if let Some(rest) = data.strip_prefix(b"S") {
        let (in_header, rest) = match rest.strip_prefix(b"H") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let request = Request::parse(rest);
        for encoding in [UriEncoding::NormalizeAndDoubleEncode, UriEncoding::SingleEncode] {
            let Some(signed) = sign_suite_request(&request, in_header, encoding) else { continue };
            let verified =
                verifier.verify(&signed.parts(), Payload::Buffered(&signed.body), encoding, SUITE_NOW).unwrap_or_else(
                    |e| panic!("a correctly signed request fails to verify ({encoding:?}): {e:?}\n{signed:?}"),
                );
            assert_eq!(verified.access_key_id, SUITE_ACCESS_KEY);
            assert_eq!((verified.region.as_str(), verified.service.as_str()), ("us-east-1", "service"));
            assert_eq!(
                credential_scope(&signed.parts()),
                Some(("us-east-1".to_string(), "service".to_string())),
                "routing reads another scope than the one verified: {signed:?}"
            );
        }
        return;
    }
    let request = Request::parse(data);
    let parts = request.parts();
    let scope = credential_scope(&parts);
    let _ = verifier.precheck(&parts, SUITE_NOW);
    for encoding in [UriEncoding::NormalizeAndDoubleEncode, UriEncoding::SingleEncode] {
        for payload in [Payload::Buffered(&request.body), Payload::Streamed] {
            if let Ok(v) = verifier.verify(&parts, payload, encoding, SUITE_NOW) {
                assert_eq!(v.access_key_id, SUITE_ACCESS_KEY);
                assert_eq!(scope.as_ref(), Some(&(v.region.clone(), v.service.clone())), "scope differs: {request:?}");
            }
        }
    }
}

/// `request` signed with the suite's key as a client signs it: every header it has (and `host`)
/// signed, the body's SHA-256, `X-Amz-Date` the suite's date. `None` when the request cannot be
/// signed (a header name that is not an HTTP token).
fn sign_suite_request(
    request: &Request,
    in_header: bool,
    encoding: crate::kernel::sigv4::UriEncoding,
) -> Option<Request> {
    use crate::kernel::sigv4::canonical::{canonical_request, sha256_hex, string_to_sign, uri_encode};
    use crate::kernel::sigv4::verify::{sign, signing_key};

    let token =
        |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let mut signed = request.clone();
    // What the signer sets itself replaces whatever the input had.
    signed.headers.retain(|(n, _)| {
        !["authorization", "x-amz-date", "date", "x-amz-content-sha256", "x-amz-security-token"]
            .iter()
            .any(|own| n.eq_ignore_ascii_case(own))
    });
    if !signed.headers.iter().all(|(n, v)| token(n) && !v.contains(['\r', '\n'])) {
        return None;
    }
    if !signed.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        signed.headers.push(("Host".into(), "example.amazonaws.com".into()));
    }
    // The presigned parameters the signer adds replace any the input had (`x-amz-*` in any case:
    // a presigned query's `x-amz-content-sha256` declares the payload hash).
    let own_param = |p: &str| {
        let name = p.split('=').next().unwrap_or("");
        let name = String::from_utf8_lossy(&crate::kernel::sigv4::canonical::percent_decode(name)).to_ascii_lowercase();
        name.starts_with("x-amz-")
    };
    signed.query = signed.query.split('&').filter(|p| !p.is_empty() && !own_param(p)).collect::<Vec<_>>().join("&");
    let scope = "20150830/us-east-1/service/aws4_request";
    let key = signing_key(SUITE_SECRET, "20150830", "us-east-1", "service");
    let mut names: Vec<String> = signed.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    if in_header {
        signed.headers.push(("X-Amz-Date".into(), SUITE_AMZ_DATE.into()));
        names.push("x-amz-date".into());
    }
    names.sort();
    names.dedup();
    let signed_headers = names.join(";");
    if in_header {
        let payload_hash = sha256_hex(&signed.body);
        let creq = canonical_request(&signed.parts(), &names, &payload_hash, encoding, None);
        let signature = sign(&key, &string_to_sign(SUITE_AMZ_DATE, scope, &creq));
        signed.headers.push((
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={SUITE_ACCESS_KEY}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
            ),
        ));
    } else {
        let mut params = vec![
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
            ("X-Amz-Credential", format!("{SUITE_ACCESS_KEY}/{scope}")),
            ("X-Amz-Date", SUITE_AMZ_DATE.to_string()),
            ("X-Amz-Expires", "300".to_string()),
            ("X-Amz-SignedHeaders", signed_headers),
        ];
        let mut query = signed.query.clone();
        for (k, v) in params.drain(..) {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&format!("{k}={}", uri_encode(v.as_bytes(), false)));
        }
        signed.query = query;
        let payload_hash = sha256_hex(&signed.body);
        let creq = canonical_request(&signed.parts(), &names, &payload_hash, encoding, None);
        let signature = sign(&key, &string_to_sign(SUITE_AMZ_DATE, scope, &creq));
        signed.query.push_str(&format!("&X-Amz-Signature={signature}"));
    }
    Some(signed)
}

// ----------------------------------------------------------------------------------------------
// S3

/// The `aws-chunked` decoder (and the plain body path). Input: a mode byte (low two bits: plain,
/// unsigned chunks with trailers, signed chunks, signed chunks and trailer; bit 2: declare the
/// decoded length of the third byte), a split byte (how the body arrives in frames), the length
/// byte, then the wire body. Chunk signatures are checked with the key of AWS's documented
/// example. Checks: the decoder never hands out more bytes than it was given, its count agrees
/// with what it handed out, and the outcome (payload, trailers, or the error) does not depend on
/// how the body was split into frames.
/// The signature chain of AWS's documented aws-chunked example (S3 developer guide, "Signature
/// calculations ... in multiple chunks"): its key, date, scope and seed signature.
fn aws_example_chain() -> crate::kernel::sigv4::SignatureChain {
    crate::kernel::sigv4::SignatureChain::new(
        crate::kernel::sigv4::verify::signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524",
            "us-east-1",
            "s3",
        ),
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    )
}

pub fn aws_chunked(data: &[u8]) {
    use crate::services::s3::api::payload::{Decoder, Framing};

    let [mode, split, declared, wire @ ..] = data else { return };
    let decoded_length = (mode & 4 != 0).then_some(u64::from(*declared));
    let signing = aws_example_chain;
    let framing = match mode & 3 {
        0 => Framing::Plain { sha256: None },
        1 => Framing::Chunked { signing: None, signed_chunks: false, signed_trailer: false, decoded_length },
        2 => Framing::Chunked { signing: Some(signing()), signed_chunks: true, signed_trailer: false, decoded_length },
        _ => Framing::Chunked { signing: Some(signing()), signed_chunks: true, signed_trailer: true, decoded_length },
    };
    type Outcome = Result<(Vec<u8>, Vec<(String, String)>), (&'static str, String)>;
    let run = |step: usize| -> Outcome {
        let mut decoder = Decoder::new(framing.clone(), true);
        let mut out = Vec::new();
        let mut fed = 0usize;
        for piece in wire.chunks(step.max(1)) {
            fed += piece.len();
            let result = decoder.feed(piece, &mut |d| {
                out.extend_from_slice(d);
                Ok(())
            });
            assert!(out.len() <= fed, "decoded {} bytes from {fed}", out.len());
            assert_eq!(decoder.decoded(), out.len() as u64, "decoded() disagrees with the bytes handed out");
            result.map_err(|e| (e.code, e.message))?;
        }
        let trailers = decoder.finish().map_err(|e| (e.code, e.message))?;
        Ok((out, trailers))
    };
    let whole = run(wire.len());
    if let Framing::Plain { .. } = framing {
        assert_eq!(whole.as_ref().map(|(o, _)| o.as_slice()), Ok(wire), "a plain body changed");
    }
    for step in [usize::from(*split), 1] {
        let pieces = run(step);
        assert_eq!(pieces, whole, "the outcome depends on the framing (step {step})");
    }
}

/// S3's XML request bodies (`xml::parse`): a parsed document whose element names are names (the
/// parser does not check them; the handlers compare them with their own) written back with the
/// response writer parses to the same tree.
pub fn s3_xml(data: &[u8]) {
    use crate::services::s3::api::xml::{parse, Element, XmlWriter};

    let Some(doc) = parse(data) else { return };
    fn plain_names(el: &Element) -> bool {
        !el.name.is_empty()
            && el.name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && el.children.iter().all(plain_names)
    }
    if !plain_names(&doc) {
        return;
    }
    fn write(w: &mut XmlWriter, el: &Element) {
        w.text(&el.text);
        for child in &el.children {
            w.open(&child.name);
            write(w, child);
            w.close(&child.name);
        }
    }
    let mut w = XmlWriter::new(&doc.name, None);
    write(&mut w, &doc);
    let text = w.finish(&doc.name);
    let again = parse(text.as_bytes()).unwrap_or_else(|| panic!("the writer's document does not parse: {text:?}"));
    assert_eq!(again, doc, "the document changed through the writer: {text:?}");
}

/// S3's header parsers on a request: `Range` (against the size in `x-object-size`), the
/// `x-amz-checksum-*` and `Content-MD5` values, `partNumber`, the bucket and key of the Host and
/// path, and SigV2 (header or presigned query) with the suite's credentials. Checks: a range lies
/// inside the object, a declared checksum has its algorithm's length and base64 round-trips.
pub fn s3_headers(data: &[u8]) {
    use crate::services::s3::api::object::parse_range;
    use crate::services::s3::objects::checksum::{self, parse_content_md5, parse_declared, Algorithm};

    let request = Request::parse(data);
    let header = |n: &str| crate::kernel::sigv4::verify::header(&request.headers, n);
    let size = header("x-object-size").and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1000);
    if let Some(range) = header("range") {
        if let Ok(Some((start, end))) = parse_range(range, size) {
            assert!(start <= end && end < size, "range {range:?} of {size} bytes gave {start}..={end}");
        }
    }
    for (name, value) in &request.headers {
        if let Some(algorithm) = Algorithm::from_header(&name.to_ascii_lowercase()) {
            if let Ok(bytes) = parse_declared(algorithm, value) {
                assert_eq!(bytes.len(), algorithm.digest_len());
                assert_eq!(checksum::decode_base64(&checksum::base64(&bytes)), Some(bytes));
            }
        }
        if let Some(a) = Algorithm::parse(value) {
            assert!(Algorithm::parse(a.name()) == Some(a));
        }
    }
    if let Some(md5) = header("content-md5") {
        if let Ok(bytes) = parse_content_md5(md5) {
            assert_eq!(checksum::decode_base64(&checksum::base64(&bytes)).as_deref(), Some(&bytes[..]));
        }
    }
    if let Some(n) = crate::kernel::query::value(&request.query, "partNumber") {
        if let Ok(p) = crate::services::s3::objects::multipart::validate_part_number(&n) {
            assert!((1..=10_000).contains(&p));
        }
    }
    let host = header("host").unwrap_or("");
    let _ = crate::services::s3::api::address(host, &request.path);
    // The resource SigV2 signs, as `s3::api::auth::authenticate` makes it.
    let resource = match crate::services::s3::api::virtual_host_bucket(host) {
        Some(bucket) => format!("/{bucket}{}", request.path),
        None => request.path.clone(),
    };
    let credentials = suite_credentials();
    let _ = crate::services::s3::api::sigv2::verify(
        &credentials,
        &request.method,
        &resource,
        &request.query,
        &request.headers,
        SUITE_NOW,
    );
}

// ----------------------------------------------------------------------------------------------
// Model-driven input binding

/// restJson1 binding against the botocore models: the request is routed (AgentCore's two planes,
/// and Bedrock's) and its labels, query, headers and JSON body bound and validated as the
/// operation's input. Checks: an accepted input stays valid once pruned to the modelled members,
/// and its canonical JSON parses back to it.
pub fn restjson_input(data: &[u8]) {
    use crate::kernel::input::{bind_and_validate, canonical_json, HttpInput};
    use crate::kernel::model::{prune, validate};

    let request = Request::parse(data);
    let mut routed = Vec::new();
    if let Ok(route) = crate::kernel::router::route(&request.method, &request.path) {
        routed.push((route.plane.model(), route.operation, route.labels));
    }
    if let Ok((m, model)) = crate::services::bedrock::routes::route(&request.method, &request.path) {
        routed.push((model, m.operation, m.labels));
    }
    for (model, operation, labels) in routed {
        let http =
            HttpInput { labels: &labels, raw_query: &request.query, headers: &request.headers, body: &request.body };
        let Ok(input) = bind_and_validate(model, operation, &http) else { continue };
        let value = serde_json::Value::Object(input);
        let shape = &model.operation(operation).input.as_ref().expect("an input was bound").shape;
        let problems = validate(model, shape, &prune(model, shape, &value));
        assert!(problems.is_empty(), "{operation}: a valid input is invalid once pruned: {problems:?}");
        let canonical: serde_json::Value =
            serde_json::from_str(&canonical_json(&value)).expect("canonical JSON is JSON");
        assert_eq!(canonical, value);
    }
}

/// Query strings and forms (`kernel::query`), and STS's awsQuery binding: the first body line is
/// the form, the rest the query string. Checks: the decoders agree with each other (`value` is
/// the first pair of that raw name, `raw_names` has one entry per pair, a form is a query string
/// whose `+` are spaces) and binding an STS operation's input never panics.
pub fn query(data: &[u8]) {
    use crate::kernel::query::{form_pairs, pairs, raw_names, value};

    let text = String::from_utf8_lossy(data);
    let (form, raw) = text.split_once('\n').unwrap_or((&text, ""));
    for raw in [form, raw] {
        let decoded = pairs(raw);
        let names: Vec<(&str, Option<String>)> = raw_names(raw).collect();
        assert_eq!(decoded.len(), names.len());
        for (i, (name, v)) in names.iter().enumerate() {
            assert_eq!(decoded[i].1, v.clone().unwrap_or_default());
            let first = names.iter().position(|(n, _)| n == name).expect("the name is there");
            assert_eq!(value(raw, name).as_deref(), Some(decoded[first].1.as_str()));
        }
        assert_eq!(form_pairs(raw), pairs(&raw.replace('+', "%20")), "a form is not a query with spaces for '+'");
    }
    let request = crate::services::sts::api::QueryRequest::new(raw, form.as_bytes());
    for operation in ["AssumeRole", "AssumeRoleWithWebIdentity"] {
        let _ = crate::services::sts::api::input::<serde_json::Value>(operation, &request);
    }
}

// ----------------------------------------------------------------------------------------------
// Runtime

/// Code deployment zips (`prepare::code::unpack`). The first byte chooses the input: `Z` and the
/// rest is the archive as uploaded; otherwise the rest describes entries one per line, `kind name
/// = content` (`f` file, `x` executable, `d` directory, `l` symbolic link to the content), which
/// are written as a zip first. Checks: nothing is written outside the destination, nothing
/// unpacked is a link, modes are 644 or 755, the files and bytes reported are what is on disk,
/// and a refused archive leaves no destination behind.
pub fn code_zip(data: &[u8]) {
    use crate::services::runtime::prepare::code::unpack;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    let Some((kind, rest)) = data.split_first() else { return };
    // In memory where Linux has it: an unpack on disk costs milliseconds, most of them the file
    // system's.
    let shm = std::path::Path::new("/dev/shm");
    let scratch = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    let scratch = scratch.expect("a scratch directory");
    let zip_path = scratch.path().join("code.zip");
    if *kind == b'Z' {
        std::fs::write(&zip_path, rest).expect("write the archive");
    } else {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).expect("create the archive"));
        for line in rest.split(|b| *b == b'\n') {
            let Some((&kind, entry)) = line.split_first() else { continue };
            let entry = String::from_utf8_lossy(entry);
            let (name, content) = entry.split_once('=').unwrap_or((&entry, ""));
            let options = SimpleFileOptions::default().unix_permissions(if kind == b'x' { 0o755 } else { 0o644 });
            let written = match kind {
                b'd' => w.add_directory(name, options),
                b'l' => w.add_symlink(name, content, options),
                _ => w.start_file(name, options).map(|_| ()).and_then(|_| Ok(w.write_all(content.as_bytes())?)),
            };
            if written.is_err() {
                return;
            }
        }
        if w.finish().is_err() {
            return;
        }
    }
    let dest = scratch.path().join("out");
    let result = unpack(&zip_path, &dest);
    let mut outside: Vec<String> = std::fs::read_dir(scratch.path())
        .expect("list the scratch directory")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    match result {
        Err(_) => {
            assert_eq!(outside, ["code.zip"], "a refused archive left files behind");
        }
        Ok(unpacked) => {
            assert_eq!(outside, ["code.zip", "out"], "the archive wrote outside its directory");
            let (mut files, mut bytes) = (0usize, 0u64);
            let mut stack = vec![dest.clone()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).expect("list an unpacked directory") {
                    let path = entry.expect("an entry").path();
                    let meta = std::fs::symlink_metadata(&path).expect("stat an unpacked entry");
                    assert!(!meta.file_type().is_symlink(), "unpacked a link: {}", path.display());
                    if meta.is_dir() {
                        stack.push(path);
                    } else {
                        use std::os::unix::fs::PermissionsExt;
                        let mode = meta.permissions().mode() & 0o777;
                        assert!(mode == 0o644 || mode == 0o755, "{} has mode {mode:o}", path.display());
                        files += 1;
                        bytes += meta.len();
                    }
                }
            }
            // An entry may overwrite an earlier one of the same name: the disk holds at most what
            // was reported.
            assert!(files <= unpacked.files && bytes <= unpacked.bytes, "{files} files, {bytes} bytes vs {unpacked:?}");
            assert!(unpacked.bytes <= crate::services::runtime::prepare::code::MAX_UNZIPPED_BYTES);
        }
    }
}

/// The header policy between a caller and its agent (MCP, A2A, HTTP) and how a caller's
/// credentials are classified. The allowlist is every request header name that the control
/// plane would accept in `requestHeaderAllowlist`. Checks: the caller's AWS credentials and
/// hop-by-hop headers never reach the agent, the agent always gets one content type, session id
/// and request id, a bearer token is trimmed, and the caller always gets a content type, a trace
/// id and the session id.
pub fn runtime_headers(data: &[u8]) {
    use crate::services::runtime::data_api::headers::{to_agent, to_client};
    use crate::services::runtime::data_api::inbound::{classify, metadata_label, Inbound};
    use crate::services::runtime::domain::rules::restricted_header;

    let request = Request::parse(data);
    let allowlist: Vec<String> = request
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| !n.is_empty() && !restricted_header(n))
        .collect();
    let out = to_agent(&request.headers, "session-0123456789abcdef0123456789abcdef", "request-1", &allowlist);
    for name in out.keys() {
        let n = name.as_str();
        assert!(
            n != "authorization"
                && n != "host"
                && n != "cookie"
                && n != "connection"
                && n != "content-length"
                && n != "transfer-encoding"
                && !n.starts_with("x-amz-"),
            "{n} reached the agent"
        );
    }
    // The content type is the caller's (as many as it sent) or JSON; the ids are the emulator's alone.
    assert!(out.contains_key("content-type"), "the agent gets no content type");
    for name in ["x-amzn-bedrock-agentcore-runtime-session-id", "x-amzn-bedrock-agentcore-runtime-request-id"] {
        assert_eq!(out.get_all(name).iter().count(), 1, "the agent gets {name} once: {out:?}");
    }
    assert_eq!(out["x-amzn-bedrock-agentcore-runtime-session-id"], "session-0123456789abcdef0123456789abcdef");

    match classify(&request.headers, &request.query) {
        Inbound::Bearer(token) => assert_eq!(token.trim(), token, "a bearer token keeps its padding"),
        Inbound::None => {
            assert!(crate::kernel::sigv4::verify::header(&request.headers, "authorization").is_none())
        }
        Inbound::SigV4 => {}
    }
    let _ = metadata_label(&http::Method::GET, &request.path);

    let mut from_agent = http::HeaderMap::new();
    for (n, v) in &request.headers {
        if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(n.as_bytes()), http::HeaderValue::from_str(v)) {
            from_agent.append(n, v);
        }
    }
    let mut back = http::HeaderMap::new();
    to_client(&mut back, &from_agent, &request.headers, "session-1", "request-1");
    // (The trace id is echoed only when the caller's is a valid header value.)
    for name in ["content-type", "x-amzn-bedrock-agentcore-runtime-session-id", "x-amzn-requestid"] {
        assert!(back.contains_key(name), "the caller gets no {name}");
    }
}

/// The event-stream frames the emulator writes (Bedrock's ConverseStream and the runtime's
/// command output): an event or exception made from the input (type name up to the first NUL,
/// at most 255 bytes as model names are; JSON payload, or the rest as a JSON string) decodes with
/// the SDKs' decoder to the same type and payload. The emulator decodes no event stream from a
/// client; this checks the frames clients decode.
pub fn eventstream(data: &[u8]) {
    use crate::services::bedrock::eventstream::{event, exception};
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};

    let (name, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let name = String::from_utf8_lossy(&name[..name.len().min(255)]);
    let payload: serde_json::Value = serde_json::from_slice(payload)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(payload).into_owned()));
    for (frame, header) in [(event(&name, &payload), ":event-type"), (exception(&name, &payload), ":exception-type")] {
        let mut bytes = frame.clone();
        let DecodedFrame::Complete(message) =
            MessageFrameDecoder::new().decode_frame(&mut bytes).expect("the frame decodes")
        else {
            panic!("an incomplete frame");
        };
        assert!(bytes.is_empty(), "bytes left after the frame");
        let kind = message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == header)
            .and_then(|h| h.value().as_string().ok().map(|s| s.as_str().to_string()));
        assert_eq!(kind.as_deref(), Some(&*name));
        // The payload is compared as text: serde_json's default float parsing does not round-trip
        // every number (a client's parser is its own affair), its writer is exact.
        assert_eq!(message.payload().as_ref(), payload.to_string().as_bytes());
        let _: serde_json::Value = serde_json::from_slice(message.payload()).expect("a JSON payload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Mutations per seed: enough to reach past the seeds' happy paths, few enough that the whole
    /// smoke stays within seconds.
    const MUTATIONS_PER_TARGET: usize = 3000;

    fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut out: Vec<_> = entries
            .map(|e| e.expect("a corpus entry").path())
            .filter(|p| p.is_file())
            .map(|p| {
                let bytes = std::fs::read(&p).expect("read a corpus file");
                (p, bytes)
            })
            .collect();
        out.sort();
        out
    }

    /// A small byte-level mutation, as libFuzzer's simplest mutators make.
    fn mutate(rng: &mut rand::rngs::StdRng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..rng.random_range(1..=4) {
            let len = out.len();
            match rng.random_range(0..6) {
                0 if len > 0 => {
                    let i = rng.random_range(0..len);
                    out[i] ^= 1 << rng.random_range(0..8);
                }
                1 if len > 0 => {
                    let i = rng.random_range(0..len);
                    out[i] = rng.random();
                }
                2 => {
                    let i = rng.random_range(0..=len);
                    let interesting = [b'\n', b'\r', b'%', b'&', b'=', b';', b'/', b'.', b'<', b'0', 0xff, b' '];
                    out.insert(i, interesting[rng.random_range(0..interesting.len())]);
                }
                3 if len > 0 => {
                    let i = rng.random_range(0..len);
                    out.truncate(i);
                }
                4 if len > 1 => {
                    let i = rng.random_range(0..len);
                    let j = rng.random_range(i..len);
                    out.drain(i..=j.min(i + 8));
                }
                _ if len > 0 => {
                    // Repeat a slice of the input somewhere else.
                    let i = rng.random_range(0..len);
                    let j = rng.random_range(i..len).min(i + 16);
                    let piece = out[i..=j].to_vec();
                    let at = rng.random_range(0..=len);
                    out.splice(at..at, piece);
                }
                _ => out.push(rng.random()),
            }
        }
        out
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target).join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The signed seeds are signed right, so mutations of them start from the parsers' success
    /// paths (a seed that fails verification would leave those paths to chance).
    #[test]
    fn signed_seeds_verify() {
        use crate::kernel::sigv4::verify::{Payload, Verifier};
        use crate::kernel::sigv4::UriEncoding;
        use crate::services::s3::api::payload::{Decoder, Framing};

        let credentials = suite_credentials();
        for name in ["get-vanilla", "get-utf8", "post-x-www-form-urlencoded", "presigned"] {
            let request = Request::parse(&seed("sigv4_verify", name));
            let parts = request.parts();
            let result = Verifier::new(&credentials).verify(
                &parts,
                Payload::Buffered(&request.body),
                UriEncoding::NormalizeAndDoubleEncode,
                SUITE_NOW,
            );
            assert!(result.is_ok(), "{name}: {result:?}");
        }

        for name in ["sigv2-header", "sigv2-presigned"] {
            let request = Request::parse(&seed("s3_headers", name));
            let host = crate::kernel::sigv4::verify::header(&request.headers, "host").unwrap_or("");
            let resource = match crate::services::s3::api::virtual_host_bucket(host) {
                Some(bucket) => format!("/{bucket}{}", request.path),
                None => request.path.clone(),
            };
            let result = crate::services::s3::api::sigv2::verify(
                &credentials,
                &request.method,
                &resource,
                &request.query,
                &request.headers,
                SUITE_NOW,
            );
            assert!(result.is_ok(), "{name}: {:?}", result.err().map(|e| e.message));
        }

        for (name, trailer) in [("signed", false), ("signed-trailer", true)] {
            let wire = seed("aws_chunked", name);
            let signing = super::aws_example_chain();
            let framing = Framing::Chunked {
                signing: Some(signing),
                signed_chunks: true,
                signed_trailer: trailer,
                decoded_length: Some(11),
            };
            let mut decoder = Decoder::new(framing, true);
            let mut out = Vec::new();
            decoder
                .feed(&wire[3..], &mut |d| {
                    out.extend_from_slice(d);
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{name}: {}", e.message));
            let trailers = decoder.finish().unwrap_or_else(|e| panic!("{name}: {}", e.message));
            assert_eq!(out, b"hello world");
            assert_eq!(trailers.len(), usize::from(trailer));
        }
    }

    /// The CI smoke: every committed seed and regression through its target, then deterministic
    /// mutations of the seeds.
    #[test]
    fn fuzz_targets_pass_their_corpus_regressions_and_mutations() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (name, target) in TARGETS {
            let seeds = files(&root.join("corpus").join(name));
            assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
            for (path, bytes) in seeds.iter().chain(&files(&root.join("regressions").join(name))) {
                let result = std::panic::catch_unwind(|| target(bytes));
                assert!(result.is_ok(), "{name} fails on {}", path.display());
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_f0cc);
            // The zip target touches the disk: fewer rounds keep it within its share of time.
            let rounds = if *name == "code_zip" { MUTATIONS_PER_TARGET / 10 } else { MUTATIONS_PER_TARGET };
            for i in 0..rounds {
                let (path, seed) = &seeds[i % seeds.len()];
                let input = mutate(&mut rng, seed);
                let result = std::panic::catch_unwind(|| target(&input));
                assert!(result.is_ok(), "{name} fails on mutation {i} of {}: {input:?}", path.display());
            }
        }
    }
}
