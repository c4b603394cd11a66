//! Building HTTP responses: JSON bodies, AWS-shaped errors, request ids.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use serde_json::{json, Value};

use crate::kernel::error::{Error, ErrorKind};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn with_request_id(mut resp: Response<Body>, request_id: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

pub fn json(status: u16, body: &Value, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    with_request_id(resp, request_id)
}

pub fn no_content(status: u16, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    with_request_id(resp, request_id)
}

/// restJson1 error: status, `x-amzn-ErrorType`, and `{"message": …}` (plus `reason` and `fieldList`
/// for ValidationException), which is what botocore and the Rust SDK need to raise the modelled class.
pub fn error(err: &Error, request_id: &str) -> Response<Body> {
    let mut body = json!({ "message": err.message });
    if let ErrorKind::Validation { reason, fields } = &err.kind {
        body["reason"] = json!(reason.as_str());
        if !fields.is_empty() {
            body["fieldList"] =
                Value::Array(fields.iter().map(|f| json!({"name": f.name, "message": f.message})).collect());
        }
    }
    let mut resp = json(err.status(), &body, request_id);
    resp.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static(err.code()));
    resp
}

/// ISO-8601 with milliseconds, the only timestamp form every SDK parses (api-wire.md §9).
pub fn timestamp(ms: i64) -> Value {
    let dt = aws_smithy_types::DateTime::from_millis(ms);
    Value::String(dt.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso8601() {
        assert_eq!(timestamp(1764000000123), json!("2025-11-24T16:00:00.123Z"));
    }
}
