//! Object operations: PutObject, GetObject / HeadObject (ranges, conditions, checksums),
//! DeleteObject, DeleteObjects, CopyObject; and the header handling they share with multipart.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use http::{Method, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::xml::{self, XmlWriter, S3_NAMESPACE};
use super::{algorithm_header, check_small_body, http_date, iso_date, parse_http_date, quoted, set_header, Req};
use crate::kernel::response::{Body, BoxError};
use crate::services::s3::objects::checksum::{self, Algorithm, ChecksumType};
use crate::services::s3::objects::multipart::validate_part_number;
use crate::services::s3::objects::read::Found;
use crate::services::s3::objects::write::{CopySource, ObjectAttrs, StoredChecksum};
use crate::services::s3::objects::{S3Error, S3Result, Staged, MAX_DELETE_KEYS, MAX_PUT_BYTES};
use crate::services::s3::tables::{BucketRow, ObjectRow};

/// Bytes read from an object file per response frame.
const READ_CHUNK_BYTES: usize = 512 * 1024;

/// Content headers S3 stores with an object and returns on GET/HEAD.
const STORED_HEADERS: &[&str] =
    &["content-type", "content-encoding", "content-disposition", "content-language", "cache-control", "expires"];
/// `response-*` query parameters of GetObject and the header each overrides.
const RESPONSE_OVERRIDES: &[(&str, &str)] = &[
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];
/// What S3 says an object's type is when the writer did not say.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Content headers and `x-amz-meta-*` of a write request.
pub fn attrs_from(req: &Req) -> ObjectAttrs {
    let mut headers = BTreeMap::new();
    for name in STORED_HEADERS {
        if let Some(v) = req.header(name) {
            let v = if *name == "content-encoding" {
                // `aws-chunked` describes the transfer, not the object.
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.eq_ignore_ascii_case("aws-chunked"))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                v.to_string()
            };
            if !v.is_empty() {
                headers.insert(name.to_string(), v);
            }
        }
    }
    let metadata = req
        .headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-amz-meta-")?;
            Some((name.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        })
        .collect();
    ObjectAttrs { headers, metadata }
}

/// What an upload declares about its bytes, and how to check it once they are in.
pub struct Integrity {
    /// The checksum algorithm the staging file computes.
    pub algorithm: Option<Algorithm>,
    /// The client named an algorithm (header value, trailer or `x-amz-sdk-checksum-algorithm`).
    pub client_algorithm: Option<Algorithm>,
    declared: Option<(Algorithm, Vec<u8>)>,
    trailer: Option<Algorithm>,
    content_md5: Option<[u8; 16]>,
}

impl Integrity {
    /// Reads the declarations of a PutObject/UploadPart. `required` is the algorithm the upload
    /// must use (a multipart upload's), `default` the one computed when the client names none.
    pub fn of(req: &Req, required: Option<Algorithm>, default: Option<Algorithm>) -> S3Result<Integrity> {
        let content_md5 = req.header("content-md5").map(checksum::parse_content_md5).transpose()?;
        let mut declared = None;
        for a in checksum::ALL {
            if let Some(v) = req.header(a.header()) {
                if declared.is_some() {
                    return Err(S3Error::invalid_request(
                        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                    ));
                }
                declared = Some((a, checksum::parse_declared(a, v)?));
            }
        }
        let trailer = match req.header("x-amz-trailer") {
            None => None,
            Some(t) => Some(Algorithm::from_header(t.trim()).ok_or_else(|| {
                S3Error::invalid_request(format!(
                    "The value specified in the x-amz-trailer header is not supported: {t}"
                ))
            })?),
        };
        let sdk = algorithm_header(req, "x-amz-sdk-checksum-algorithm")?;
        let client_algorithm = declared.as_ref().map(|(a, _)| *a).or(trailer).or(sdk);
        if let (Some(req_alg), Some(client)) = (required, client_algorithm) {
            if req_alg != client {
                return Err(S3Error::invalid_request(format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    req_alg.name().to_ascii_lowercase(),
                    client.name().to_ascii_lowercase()
                )));
            }
        }
        Ok(Integrity {
            algorithm: client_algorithm.or(required).or(default),
            client_algorithm,
            declared,
            trailer,
            content_md5,
        })
    }

    /// Checks what arrived against what was declared (BadDigest).
    pub fn check(&self, staged: &Staged, trailers: &[(String, String)]) -> S3Result<()> {
        if let Some(expected) = &self.content_md5 {
            checksum::check_content_md5(expected, &staged.md5)?;
        }
        let expected = match (&self.declared, self.trailer) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(a)) => {
                let value =
                    trailers.iter().find(|(n, _)| n == a.header()).map(|(_, v)| v.as_str()).ok_or_else(|| {
                        S3Error::invalid_request(format!(
                            "The x-amz-trailer header names {} but the request has no such trailer.",
                            a.header()
                        ))
                    })?;
                Some((a, checksum::parse_declared(a, value)?))
            }
            (None, None) => None,
        };
        if let Some((a, bytes)) = expected {
            match &staged.checksum {
                Some((computed_alg, computed)) if *computed_alg == a && *computed == bytes => {}
                _ => return Err(checksum::mismatch(a)),
            }
        }
        Ok(())
    }
}

fn content_length(req: &Req) -> Option<u64> {
    let declared = req.header("x-amz-decoded-content-length").or_else(|| req.header("content-length"));
    declared.and_then(|v| v.trim().parse().ok())
}

pub fn check_size_limit(req: &Req) -> S3Result<()> {
    match content_length(req) {
        Some(n) if n > MAX_PUT_BYTES => {
            Err(S3Error::new("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size")
                .with("ProposedSize", n.to_string())
                .with("MaxSizeAllowed", MAX_PUT_BYTES.to_string()))
        }
        _ => Ok(()),
    }
}

fn versioned(bucket: &BucketRow) -> bool {
    bucket.versioning.is_some()
}

fn add_checksum_headers(resp: &mut Response<Body>, c: &StoredChecksum) {
    if !c.value.is_empty() {
        set_header(resp, c.algorithm.header(), &c.value);
        set_header(resp, "x-amz-checksum-type", c.kind.as_str());
    }
}

pub async fn put(req: &mut Req) -> S3Result<Response<Body>> {
    check_size_limit(req)?;
    let integrity = Integrity::of(req, None, Some(Algorithm::Crc64Nvme))?;
    let bucket = req.objects().bucket(&req.caller.account, req.bucket()).await?;
    if req.header("if-none-match").is_some_and(|v| v.trim() == "*") {
        match req.objects().find(&req.caller.account, &bucket.name, req.key(), None).await {
            Ok(_) => {
                return Err(S3Error::new(
                    "PreconditionFailed",
                    412,
                    "At least one of the pre-conditions you specified did not hold",
                )
                .with("Condition", "If-None-Match"))
            }
            Err(e) if e.code == "NoSuchKey" => {}
            Err(e) => return Err(e),
        }
    }
    let attrs = attrs_from(req);
    let sha256 = matches!(req.framing, super::payload::Framing::Plain { sha256: Some(_) });
    let staging = req.objects().staging(integrity.algorithm, sha256)?;
    let (staged, trailers) = req.ingest(staging, MAX_PUT_BYTES).await?;
    integrity.check(&staged, &trailers)?;
    let written = req.objects().put_object(&req.caller.account, req.bucket(), req.key(), staged, attrs).await?;
    let mut resp = req.empty(200);
    set_header(&mut resp, "etag", &quoted(&written.object.etag));
    set_header(&mut resp, "x-amz-server-side-encryption", "AES256");
    if versioned(&written.bucket) {
        set_header(&mut resp, "x-amz-version-id", &written.object.version_id);
    }
    if integrity.client_algorithm.is_some() {
        if let Some(c) = StoredChecksum::of_row(&written.object) {
            add_checksum_headers(&mut resp, &c);
        }
    }
    Ok(resp)
}

/// A parsed `Range: bytes=…` as `(start, end inclusive)`, for an object of `size` bytes.
/// `Ok(None)`: no range, or one S3 ignores (several ranges, other units, bad syntax).
pub(crate) fn parse_range(value: &str, size: u64) -> S3Result<Option<(u64, u64)>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || {
        S3Error::new("InvalidRange", 416, "The requested range is not satisfiable")
            .with("RangeRequested", value.trim())
            .with("ActualObjectSize", size.to_string())
            .header("content-range", format!("bytes */{size}"))
    };
    let range = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else { return Ok(None) };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let Ok(start) = a.parse::<u64>() else { return Ok(None) };
        let end = if b.is_empty() {
            u64::MAX
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => e,
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(unsatisfiable());
        }
        (start, end.min(size - 1))
    };
    Ok(Some(range))
}

/// `(start, length)` of part `n` (`partNumber`); a single-part object is its own part 1.
fn part_range(o: &ObjectRow, n: u32) -> S3Result<(u64, u64)> {
    let sizes = o.part_sizes.clone().unwrap_or_else(|| vec![o.size]);
    let index = n as usize - 1;
    if index >= sizes.len() {
        return Err(S3Error::new("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
            .with("PartNumberRequested", n.to_string())
            .with("ActualPartCount", sizes.len().to_string()));
    }
    let start: u64 = sizes[..index].iter().sum();
    Ok((start, sizes[index]))
}

fn etag_matches(condition: &str, etag: &str) -> bool {
    condition.split(',').map(|c| c.trim()).any(|c| c == "*" || c.trim_matches('"') == etag)
}

/// If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304).
fn check_conditions(req: &Req, o: &ObjectRow) -> S3Result<Option<u16>> {
    let modified = o.last_modified.div_euclid(1000);
    let failed = |condition: &str| {
        S3Error::new("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold")
            .with("Condition", condition)
    };
    if let Some(c) = req.header("if-match") {
        if !etag_matches(c, &o.etag) {
            return Err(failed("If-Match"));
        }
    } else if let Some(t) = req.header("if-unmodified-since").and_then(parse_http_date) {
        if modified > t {
            return Err(failed("If-Unmodified-Since"));
        }
    }
    if let Some(c) = req.header("if-none-match") {
        if etag_matches(c, &o.etag) {
            return Ok(Some(304));
        }
    } else if let Some(t) = req.header("if-modified-since").and_then(parse_http_date) {
        if modified <= t {
            return Ok(Some(304));
        }
    }
    Ok(None)
}

/// The headers of GET/HEAD about an object version.
fn object_headers(req: &Req, resp: &mut Response<Body>, found: &Found, with_checksum: bool) {
    let o = &found.object;
    set_header(resp, "last-modified", &http_date(o.last_modified));
    set_header(resp, "etag", &quoted(&o.etag));
    set_header(resp, "accept-ranges", "bytes");
    set_header(resp, "x-amz-server-side-encryption", "AES256");
    set_header(resp, "content-type", o.headers.get("content-type").map(String::as_str).unwrap_or(DEFAULT_CONTENT_TYPE));
    for name in STORED_HEADERS.iter().skip(1) {
        if let Some(v) = o.headers.get(*name) {
            set_header(resp, name, v);
        }
    }
    for (k, v) in &o.metadata {
        set_header(resp, &format!("x-amz-meta-{k}"), v);
    }
    if versioned(&found.bucket) {
        set_header(resp, "x-amz-version-id", &o.version_id);
    }
    if let Some(sizes) = o.part_sizes.as_ref().filter(|_| req.has_query("partNumber")) {
        set_header(resp, "x-amz-mp-parts-count", &sizes.len().to_string());
    }
    if with_checksum && req.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("ENABLED")) {
        if let Some(c) = StoredChecksum::of_row(o) {
            add_checksum_headers(resp, &c);
        }
    }
    if req.method == Method::GET {
        for (param, header) in RESPONSE_OVERRIDES {
            if let Some(v) = req.query(param) {
                set_header(resp, header, v);
            }
        }
    }
}

/// Streams `len` bytes of a file from its current position. A file shorter than recorded ends
/// the body early, which the HTTP layer reports as a body shorter than its Content-Length (the
/// client sees a broken download, never other bytes).
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    let frames = ReaderStream::with_capacity(file.take(len), READ_CHUNK_BYTES)
        .map_ok(Frame::data)
        .map_err(|e| Box::new(e) as BoxError);
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// GetObject and HeadObject.
pub async fn get(req: &mut Req) -> S3Result<Response<Body>> {
    let head = req.method == Method::HEAD;
    let version = req.query("versionId").map(str::to_string);
    let part_number = req.query("partNumber").map(validate_part_number).transpose()?;
    if part_number.is_some() && req.headers.contains_key("range") {
        return Err(S3Error::invalid_request("Cannot specify both Range header and partNumber query parameter"));
    }
    let found = req.objects().find(&req.caller.account, req.bucket(), req.key(), version.as_deref()).await.map_err(
        |mut e| {
            if e.code == "MethodNotAllowed" {
                e.details = vec![("Method", req.method.to_string()), ("ResourceType", "DeleteMarker".to_string())];
            }
            e
        },
    )?;
    if let Some(status) = check_conditions(req, &found.object)? {
        let mut resp = req.empty(status);
        set_header(&mut resp, "etag", &quoted(&found.object.etag));
        set_header(&mut resp, "last-modified", &http_date(found.object.last_modified));
        return Ok(resp);
    }
    let size = found.object.size;
    let range = match (req.header("range"), part_number) {
        (Some(r), _) => parse_range(r, size)?.map(|(s, e)| (s, e - s + 1)),
        (None, Some(n)) => Some(part_range(&found.object, n)?),
        (None, None) => None,
    };
    let (start, len) = range.unwrap_or((0, size));
    let body = if head || len == 0 {
        crate::kernel::response::empty()
    } else {
        let path = req.objects().files().path(found.object.file.as_deref().unwrap_or_default());
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            // Deleted between the lookup and the open.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(S3Error::no_such_key(req.key())),
            Err(e) => return Err(S3Error::io("opening the object", e)),
        };
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| S3Error::io("reading the object", e))?;
        }
        file_body(file, len)
    };
    let mut resp = req.response(if range.is_some() { 206 } else { 200 }, body);
    object_headers(req, &mut resp, &found, range.is_none());
    set_header(&mut resp, "content-length", &len.to_string());
    if range.is_some() && len > 0 {
        set_header(&mut resp, "content-range", &format!("bytes {start}-{}/{size}", start + len - 1));
    }
    Ok(resp)
}

pub async fn delete(req: &mut Req) -> S3Result<Response<Body>> {
    let version = req.query("versionId").map(str::to_string);
    let deleted = req.objects().delete_object(&req.caller.account, req.bucket(), req.key(), version.as_deref()).await?;
    let mut resp = req.empty(204);
    if let Some(v) = &deleted.version_id {
        set_header(&mut resp, "x-amz-version-id", v);
    }
    if deleted.delete_marker {
        set_header(&mut resp, "x-amz-delete-marker", "true");
    }
    Ok(resp)
}

/// DeleteObjects (`POST /bucket?delete`).
pub async fn delete_objects(req: &mut Req) -> S3Result<Response<Body>> {
    req.objects().bucket(&req.caller.account, req.bucket()).await?;
    let body = req.read_body().await?;
    check_small_body(req, &body, true, false)?;
    let doc = xml::parse(&body).ok_or_else(S3Error::malformed_xml)?;
    if doc.name != "Delete" {
        return Err(S3Error::malformed_xml());
    }
    let quiet = doc.text_of("Quiet").is_some_and(|q| q.trim().eq_ignore_ascii_case("true"));
    let mut keys = Vec::new();
    for o in doc.children("Object") {
        let key = o.text_of("Key").ok_or_else(S3Error::malformed_xml)?.to_string();
        let version = o.text_of("VersionId").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        keys.push((key, version));
    }
    if keys.is_empty() || keys.len() > MAX_DELETE_KEYS {
        return Err(S3Error::malformed_xml());
    }
    let outcomes = req.objects().delete_objects(&req.caller.account, req.bucket(), keys).await?;
    let mut w = XmlWriter::new("DeleteResult", Some(S3_NAMESPACE));
    for o in &outcomes {
        match &o.result {
            Ok(d) if !quiet => {
                w.open("Deleted").elem("Key", &o.key);
                w.elem_opt("VersionId", o.version_id.as_deref());
                if d.delete_marker {
                    w.elem("DeleteMarker", "true").elem_opt("DeleteMarkerVersionId", d.version_id.as_deref());
                }
                w.close("Deleted");
            }
            Ok(_) => {}
            Err(e) => {
                w.open("Error").elem("Key", &o.key);
                w.elem_opt("VersionId", o.version_id.as_deref());
                w.elem("Code", e.code).elem("Message", &e.message).close("Error");
            }
        }
    }
    Ok(req.xml(w.finish("DeleteResult")))
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=…]`, URL-encoded.
pub fn copy_source(req: &Req) -> S3Result<CopySource> {
    let raw = req.header("x-amz-copy-source").unwrap_or_default();
    let invalid = || {
        S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            raw,
        )
    };
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let version_id = query.split('&').find_map(|p| p.strip_prefix("versionId=")).map(super::decode);
    let path = super::decode(path.strip_prefix('/').unwrap_or(path));
    let (bucket, key) = path.split_once('/').ok_or_else(invalid)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(invalid());
    }
    Ok(CopySource { bucket: bucket.to_string(), key: key.to_string(), version_id })
}

pub async fn copy(req: &mut Req) -> S3Result<Response<Body>> {
    let source = copy_source(req)?;
    let attrs = match req.header("x-amz-metadata-directive").map(str::to_ascii_uppercase).as_deref() {
        None | Some("COPY") => None,
        Some("REPLACE") => Some(attrs_from(req)),
        Some(other) => {
            return Err(S3Error::invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive", other))
        }
    };
    let algorithm = algorithm_header(req, "x-amz-checksum-algorithm")?;
    // A copy has no body; read whatever was sent so the connection stays usable.
    let _ = req.read_body().await?;
    let (written, source_row) =
        req.objects().copy_object(&req.caller.account, &source, req.bucket(), req.key(), attrs, algorithm).await?;
    let source_bucket = req.objects().bucket(&req.caller.account, &source.bucket).await;
    let mut w = XmlWriter::new("CopyObjectResult", Some(S3_NAMESPACE));
    w.elem("ETag", quoted(&written.object.etag)).elem("LastModified", iso_date(written.object.last_modified));
    let stored = StoredChecksum::of_row(&written.object);
    if let Some(c) = stored.as_ref().filter(|c| c.kind == ChecksumType::FullObject && algorithm.is_some()) {
        w.elem(c.algorithm.xml_element(), &c.value).elem("ChecksumType", c.kind.as_str());
    }
    let mut resp = req.xml(w.finish("CopyObjectResult"));
    if versioned(&written.bucket) {
        set_header(&mut resp, "x-amz-version-id", &written.object.version_id);
    }
    if source_bucket.is_ok_and(|b| versioned(&b)) {
        set_header(&mut resp, "x-amz-copy-source-version-id", &source_row.version_id);
    }
    set_header(&mut resp, "x-amz-server-side-encryption", "AES256");
    Ok(resp)
}
