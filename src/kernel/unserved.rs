//! A signed request for an AWS service the emulator does not serve. Agents point every SDK client at
//! the emulator (`AWS_ENDPOINT_URL`), so these arrive whenever an agent uses some other service: the
//! answer must come at once, as an `UnknownOperationException` in the protocol the client speaks
//! (so its SDK raises a readable error instead of retrying or hanging), naming service and operation.

use http::{HeaderValue, Response, StatusCode};

use crate::kernel::response::{self, Body};
use crate::kernel::sigv4::verify::header;
use crate::kernel::sigv4::RequestParts;

/// The protocol family of a request, read from how it is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    /// awsJson 1.0/1.1: `X-Amz-Target: Prefix.Operation`.
    Json { operation: String, content_type: String },
    /// awsQuery: a form with `Action=Operation`.
    Query { operation: String },
    /// REST protocols: the operation is known only by method and path.
    Rest { operation: String },
}

fn framing(method: &str, path: &str, headers: &[(String, String)], raw_query: &str, body: &[u8]) -> Framing {
    if let Some(target) = header(headers, "x-amz-target") {
        let operation = target.rsplit('.').next().unwrap_or(target).to_string();
        let content_type = header(headers, "content-type").unwrap_or("application/x-amz-json-1.1").to_string();
        return Framing::Json { operation, content_type };
    }
    let form = crate::kernel::query_input::form_pairs(&String::from_utf8_lossy(body));
    let query = crate::kernel::query_input::form_pairs(raw_query);
    if let Some(action) = crate::kernel::query_input::param(&form, &query, "Action") {
        return Framing::Query { operation: action };
    }
    Framing::Rest { operation: format!("{method} {path}") }
}

/// The response, and what is logged: `session` names the runtime session when a sandbox called.
pub fn respond(
    service: &str,
    request: &RequestParts<'_>,
    body: &[u8],
    session: Option<&str>,
    request_id: &str,
) -> Response<Body> {
    let framing = framing(request.method, request.raw_path, request.headers, request.raw_query, body);
    let operation = match &framing {
        Framing::Json { operation, .. } | Framing::Query { operation } | Framing::Rest { operation } => operation,
    };
    let message = format!(
        "agentcore-local does not serve the '{service}' API (operation {operation}). It serves bedrock-agentcore, \
         bedrock-agentcore-control, s3, sts and logs."
    );
    tracing::warn!(service, %operation, session = session.unwrap_or("-"), "request for an AWS service that is not emulated");
    let (content_type, doc) = match &framing {
        Framing::Query { .. } => (
            "text/xml".to_string(),
            format!(
                "<ErrorResponse xmlns=\"http://{service}.amazonaws.com/doc/\">\n  <Error>\n    <Type>Sender</Type>\n    \
                 <Code>UnknownOperationException</Code>\n    <Message>{}</Message>\n  </Error>\n  \
                 <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
                quick_xml::escape::escape(&message)
            ),
        ),
        Framing::Json { content_type, .. } => (
            content_type.clone(),
            serde_json::json!({"__type": "UnknownOperationException", "message": message}).to_string(),
        ),
        Framing::Rest { .. } => (
            "application/json".to_string(),
            serde_json::json!({"message": message}).to_string(),
        ),
    };
    let mut resp = Response::new(response::full(doc));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert("content-type", v);
    }
    headers.insert("x-amzn-ErrorType", HeaderValue::from_static("UnknownOperationException"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_the_operation_of_each_protocol() {
        let json = pairs(&[("X-Amz-Target", "AmazonSQS.ListQueues"), ("Content-Type", "application/x-amz-json-1.0")]);
        assert_eq!(
            framing("POST", "/", &json, "", b"{}"),
            Framing::Json { operation: "ListQueues".into(), content_type: "application/x-amz-json-1.0".into() }
        );
        assert_eq!(
            framing("POST", "/", &[], "", b"Action=ListTopics&Version=2010-03-31"),
            Framing::Query { operation: "ListTopics".into() }
        );
        assert_eq!(
            framing("GET", "/2015-03-31/functions/", &[], "", b""),
            Framing::Rest { operation: "GET /2015-03-31/functions/".into() }
        );
    }
}
