//! The embedded S3 subset (restXml), reached when a request's SigV4 scope names `s3`.
//!
//! The body stays a stream: SigV4 is verified from the headers alone (the payload hash is what
//! `x-amz-content-sha256` declares), then each operation either streams the body into a staging
//! file (`payload::ingest`), reads a small XML document, or ignores it. Addressing is path style
//! (`/bucket/key`) or virtual-host style (`bucket.localhost`). Errors are S3's XML documents.

mod auth;
mod bucket;
mod list;
mod multipart;
pub(crate) mod object;
pub mod payload;
pub mod sigv2;
pub mod xml;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

use crate::app::AppState;
use crate::kernel::caller::Caller;
use crate::kernel::response::{self, Body, BoxError};
use crate::services::s3::objects::checksum::{self, Algorithm};
use crate::services::s3::objects::{S3Error, S3Result, Staging};
use payload::Framing;

/// A request body as the S3 handlers receive it: still streaming.
pub type ReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// Largest XML request document accepted (DeleteObjects of 1000 long keys fits).
pub const MAX_XML_BODY_BYTES: usize = 4 * 1024 * 1024;
/// What is read and discarded of an unread body before an error response, so that a client still
/// sending gets the response instead of a reset connection.
const DRAIN_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One S3 request being served.
pub struct Req {
    pub state: Arc<AppState>,
    pub request_id: String,
    pub method: Method,
    pub headers: HeaderMap,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub caller: Caller,
    /// `Host` as sent, for `Location` values.
    pub host: String,
    framing: Framing,
    body: Option<ReqBody>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    pub fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or_default()
    }

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    pub fn objects(&self) -> &crate::services::s3::objects::Objects {
        &self.state.objects
    }

    fn take_body(&mut self) -> ReqBody {
        self.body.take().unwrap_or_else(|| http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync())
    }

    /// Reads a small (XML) body, decoded and checked; returns it and any trailing headers.
    pub async fn read_body(&mut self) -> S3Result<Vec<u8>> {
        let body = self.take_body();
        payload::read_small(body, self.framing.clone(), MAX_XML_BODY_BYTES).await
    }

    /// Streams the body into `staging`; `limit` bounds the decoded size.
    pub async fn ingest(&mut self, staging: Staging, limit: u64) -> S3Result<payload::Ingested> {
        let body = self.take_body();
        payload::ingest(body, self.framing.clone(), staging, limit).await
    }

    /// Reads and discards what is left of an unread body, within limits. `false` when the body
    /// was left unread: the connection must then close (the client may never send it).
    async fn drain(&mut self) -> bool {
        let Some(mut body) = self.body.take() else { return true };
        if hyper::body::Body::is_end_stream(&body) {
            return true;
        }
        let expects_continue = self.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if expects_continue {
            // The client waits for 100 Continue (sent only when the body is polled) and, given a
            // final status instead, does not send the body.
            return false;
        }
        tokio::time::timeout(DRAIN_TIMEOUT, async {
            let mut read = 0u64;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return false };
                if let Ok(d) = frame.into_data() {
                    read += d.len() as u64;
                    if read > DRAIN_LIMIT_BYTES {
                        return false;
                    }
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }

    /// A response with S3's request id headers.
    pub fn response(&self, status: u16, body: Body) -> Response<Body> {
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        add_request_ids(resp.headers_mut(), &self.request_id);
        resp
    }

    pub fn empty(&self, status: u16) -> Response<Body> {
        self.response(status, response::empty())
    }

    pub fn xml(&self, doc: String) -> Response<Body> {
        let mut resp = self.response(200, response::full(doc));
        resp.headers_mut().insert("content-type", HeaderValue::from_static("application/xml"));
        resp
    }
}

fn add_request_ids(headers: &mut HeaderMap, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", v.clone());
        headers.insert("x-amz-id-2", v);
    }
}

/// Sets a header, skipping values HTTP cannot carry.
pub fn set_header(resp: &mut Response<Body>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        resp.headers_mut().insert(n, v);
    }
}

/// S3's XML error document (no body for HEAD).
pub fn error_response(e: &S3Error, request_id: &str, head: bool, resource: &str) -> Response<Body> {
    let body = if head {
        response::empty()
    } else {
        let mut w = xml::XmlWriter::new("Error", None);
        w.elem("Code", e.code).elem("Message", &e.message);
        for (name, value) in &e.details {
            w.elem(name, value);
        }
        if !resource.is_empty() && e.detail("Resource").is_none() && e.status == 404 {
            w.elem("Resource", resource);
        }
        w.elem("RequestId", request_id).elem("HostId", request_id);
        response::full(w.finish("Error"))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !head {
        resp.headers_mut().insert("content-type", HeaderValue::from_static("application/xml"));
    }
    add_request_ids(resp.headers_mut(), request_id);
    for (name, value) in &e.headers {
        set_header(&mut resp, name, value);
    }
    resp
}

/// Marks a response to a request whose body was not read as closing the connection.
fn closing(mut resp: Response<Body>, request_headers: &HeaderMap) -> Response<Body> {
    let has_body = request_headers.contains_key("transfer-encoding")
        || request_headers.get("content-length").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    if has_body {
        resp.headers_mut().insert("connection", HeaderValue::from_static("close"));
    }
    resp
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&crate::kernel::sigv4::canonical::percent_decode(s)).into_owned()
}

/// The bucket of a virtual-host-style request: `<bucket>.localhost[:port]`.
pub(crate) fn virtual_host_bucket(host: &str) -> Option<String> {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.to_ascii_lowercase();
    name.strip_suffix(".localhost").filter(|b| !b.is_empty()).map(str::to_string)
}

/// `(bucket, key)` from the Host header and the raw path.
pub fn address(host: &str, raw_path: &str) -> (Option<String>, Option<String>) {
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    if let Some(bucket) = virtual_host_bucket(host) {
        return (Some(bucket), (!path.is_empty()).then(|| decode(path)));
    }
    if path.is_empty() {
        return (None, None);
    }
    match path.split_once('/') {
        Some((b, k)) => (Some(decode(b)), (!k.is_empty()).then(|| decode(k))),
        None => (Some(decode(path)), None),
    }
}

/// Serves one S3 request. `headers` are `parts.headers` as pairs; `body` has not been read.
pub async fn handle(
    state: Arc<AppState>,
    request_id: String,
    parts: http::request::Parts,
    headers: Vec<(String, String)>,
    body: ReqBody,
) -> Response<Body> {
    let head = parts.method == Method::HEAD;
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let (caller, payload) = match auth::authenticate(
        &state.config,
        parts.method.as_str(),
        headers,
        &raw_path,
        &raw_query,
    ) {
        Ok(authenticated) => authenticated,
        Err(e) => {
            tracing::info!(method = %parts.method, path = %raw_path, code = e.code, "S3 request rejected by signature verification");
            return closing(error_response(&e, &request_id, head, &raw_path), &parts.headers);
        }
    };
    let framing = match auth::framing(&payload, &parts.headers) {
        Ok(f) => f,
        Err(e) => return closing(error_response(&e, &request_id, head, &raw_path), &parts.headers),
    };
    let (bucket, key) = address(&host, &raw_path);
    let mut req = Req {
        state,
        request_id,
        method: parts.method,
        headers: parts.headers,
        query: crate::kernel::query::pairs(&raw_query),
        bucket,
        key,
        caller,
        host,
        framing,
        body: Some(body),
    };
    match route(&mut req).await {
        Ok(resp) => {
            tracing::debug!(method = %req.method, path = %raw_path, status = resp.status().as_u16(), "S3 handled");
            resp
        }
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(method = %req.method, path = %raw_path, error = %e, "S3 request failed");
            } else {
                tracing::info!(method = %req.method, path = %raw_path, error = %e, "S3 request rejected");
            }
            let drained = req.drain().await;
            let mut resp = error_response(&e, &req.request_id, head, &raw_path);
            if !drained {
                resp.headers_mut().insert("connection", HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// Subresources of buckets and objects that S3 has and this subset does not.
const UNSUPPORTED_BUCKET_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "lifecycle",
    "logging",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "tagging",
    "website",
];
const UNSUPPORTED_OBJECT_SUBRESOURCES: &[&str] =
    &["acl", "attributes", "legal-hold", "restore", "retention", "select", "tagging", "torrent"];

fn unsupported(req: &Req, list: &[&str]) -> Option<S3Error> {
    list.iter().find(|s| req.has_query(s)).map(|s| {
        S3Error::not_implemented(format!(
            "agentcore-local's S3 subset does not implement the '{s}' subresource ({} {}).",
            req.method,
            if req.key.is_some() { "object" } else { "bucket" }
        ))
    })
}

async fn route(req: &mut Req) -> S3Result<Response<Body>> {
    if req.bucket.is_none() {
        return match req.method {
            Method::GET => bucket::list_buckets(req).await,
            _ => Err(S3Error::method_not_allowed(req.method.as_str(), "SERVICE")),
        };
    }
    if req.key.is_none() {
        if let Some(e) = unsupported(req, UNSUPPORTED_BUCKET_SUBRESOURCES) {
            return Err(e);
        }
        return match req.method {
            Method::PUT if req.has_query("versioning") => bucket::put_versioning(req).await,
            Method::PUT => bucket::create(req).await,
            Method::HEAD => bucket::head(req).await,
            Method::DELETE => bucket::delete(req).await,
            Method::GET if req.has_query("versioning") => bucket::get_versioning(req).await,
            Method::GET if req.has_query("location") => bucket::location(req).await,
            Method::GET if req.has_query("versions") => list::versions(req).await,
            Method::GET if req.has_query("uploads") => list::uploads(req).await,
            Method::GET if req.query("list-type") == Some("2") => list::objects_v2(req).await,
            Method::GET => list::objects_v1(req).await,
            Method::POST if req.has_query("delete") => object::delete_objects(req).await,
            _ => Err(S3Error::method_not_allowed(req.method.as_str(), "BUCKET")),
        };
    }
    if let Some(e) = unsupported(req, UNSUPPORTED_OBJECT_SUBRESOURCES) {
        return Err(e);
    }
    crate::services::s3::objects::names::validate_key(req.key())?;
    let part = req.has_query("uploadId") && req.has_query("partNumber");
    match req.method {
        Method::PUT if part && req.headers.contains_key("x-amz-copy-source") => multipart::upload_part_copy(req).await,
        Method::PUT if part => multipart::upload_part(req).await,
        Method::PUT if req.headers.contains_key("x-amz-copy-source") => object::copy(req).await,
        Method::PUT => object::put(req).await,
        Method::GET if req.has_query("uploadId") => multipart::list_parts(req).await,
        Method::GET | Method::HEAD => object::get(req).await,
        Method::DELETE if req.has_query("uploadId") => multipart::abort(req).await,
        Method::DELETE => object::delete(req).await,
        Method::POST if req.has_query("uploads") => multipart::create(req).await,
        Method::POST if req.has_query("uploadId") => multipart::complete(req).await,
        _ => Err(S3Error::method_not_allowed(req.method.as_str(), "OBJECT")),
    }
}

// ---- shared wire helpers ----

/// `Wed, 21 Oct 2015 07:28:00 GMT`
pub fn http_date(ms: i64) -> String {
    aws_smithy_types::DateTime::from_secs(ms.div_euclid(1000))
        .fmt(aws_smithy_types::date_time::Format::HttpDate)
        .unwrap_or_default()
}

/// Seconds since the epoch of an HTTP date.
pub fn parse_http_date(value: &str) -> Option<i64> {
    aws_smithy_types::DateTime::from_str(value.trim(), aws_smithy_types::date_time::Format::HttpDate)
        .ok()
        .map(|d| d.secs())
}

/// `2009-10-12T17:50:30.000Z`, as S3's XML has it.
pub fn iso_date(ms: i64) -> String {
    let secs = aws_smithy_types::DateTime::from_secs(ms.div_euclid(1000))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms.rem_euclid(1000))
}

pub fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// The canonical user id S3 shows as an account's owner id.
pub fn owner_id(account: &str) -> String {
    crate::kernel::sigv4::canonical::sha256_hex(format!("agentcore-local:{account}").as_bytes())
}

/// Checks `Content-MD5` and (unless `skip_checksum_headers`) any `x-amz-checksum-*` header of an
/// in-memory body. With `require`, one of them must be present (DeleteObjects).
pub fn check_small_body(req: &Req, body: &[u8], require: bool, skip_checksum_headers: bool) -> S3Result<()> {
    let mut present = false;
    if let Some(v) = req.header("content-md5") {
        present = true;
        checksum::check_content_md5(&checksum::parse_content_md5(v)?, &checksum::md5(body))?;
    }
    if !skip_checksum_headers {
        for a in checksum::ALL {
            if let Some(v) = req.header(a.header()) {
                present = true;
                let declared = checksum::parse_declared(a, v)?;
                if declared != a.digest(body) {
                    return Err(checksum::mismatch(a));
                }
            }
        }
    }
    if require && !present {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5 (or an x-amz-checksum-* header)",
        ));
    }
    Ok(())
}

/// The one checksum algorithm a request names in `header` (`x-amz-checksum-algorithm`, …).
pub fn algorithm_header(req: &Req, header: &str) -> S3Result<Option<Algorithm>> {
    match req.header(header) {
        None => Ok(None),
        Some(v) => Algorithm::parse(v).map(Some).ok_or_else(|| {
            S3Error::invalid_argument(
                "Checksum algorithm provided is unsupported. Please try again with any of the valid types: \
                 [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
                header,
                v,
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing() {
        assert_eq!(address("127.0.0.1:4599", "/"), (None, None));
        assert_eq!(address("127.0.0.1:4599", "/b"), (Some("b".into()), None));
        assert_eq!(address("127.0.0.1:4599", "/b/"), (Some("b".into()), None));
        assert_eq!(address("localhost", "/b/dir/a%20b%2Bc%2Fd"), (Some("b".into()), Some("dir/a b+c/d".into())));
        assert_eq!(address("b.localhost:4599", "/k/x"), (Some("b".into()), Some("k/x".into())));
        assert_eq!(address("my.bucket.localhost", "/"), (Some("my.bucket".into()), None));
        assert_eq!(address("localhost:4599", "/b/k"), (Some("b".into()), Some("k".into())));
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(1_444_498_080_123), "Sat, 10 Oct 2015 17:28:00 GMT");
        assert_eq!(iso_date(1_444_498_080_123), "2015-10-10T17:28:00.123Z");
        assert_eq!(parse_http_date("Sat, 10 Oct 2015 17:28:00 GMT"), Some(1_444_498_080));
    }
}
