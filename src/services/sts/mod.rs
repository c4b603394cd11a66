//! AWS STS, the one operation tools use to ask who they are: GetCallerIdentity (awsQuery: a
//! form-encoded `Action=…&Version=…` body or query string, XML response).

pub mod assume;
pub mod credentials;
pub mod tables;

use http::{HeaderValue, Response, StatusCode};

use crate::kernel::response::{self, Body};
use crate::kernel::sigv4::AuthError;

pub const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const STS_VERSION: &str = "2011-06-15";

pub(crate) fn xml(status: u16, doc: String, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(response::full(doc));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

pub(crate) fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// An operation's success document: `<{Op}Response><{Op}Result>{result}</…><ResponseMetadata>…`.
pub(crate) fn ok_document(operation: &str, result: &str, request_id: &str) -> Response<Body> {
    let doc = format!(
        "<{operation}Response xmlns=\"{STS_NAMESPACE}\">\n  <{operation}Result>\n{result}  </{operation}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{operation}Response>\n",
        escape(request_id)
    );
    xml(200, doc, request_id)
}

/// awsQuery's error document.
pub fn error(status: u16, code: &str, message: &str, request_id: &str) -> Response<Body> {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{STS_NAMESPACE}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    \
             <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            escape(code),
            escape(message),
            escape(request_id)
        ),
        request_id,
    )
}

/// STS's wording for a failed SigV4 verification.
pub fn auth_error(e: &AuthError, request_id: &str) -> Response<Body> {
    match e {
        AuthError::Missing => {
            error(403, "MissingAuthenticationToken", "Request is missing Authentication Token", request_id)
        }
        AuthError::Incomplete(m) => error(400, "IncompleteSignature", m, request_id),
        AuthError::UnknownAccessKey(_) | AuthError::InvalidToken => {
            error(403, "InvalidClientTokenId", "The security token included in the request is invalid.", request_id)
        }
        AuthError::ExpiredToken => {
            error(403, "ExpiredToken", "The security token included in the request is expired", request_id)
        }
        other => {
            let (_, message) = other.json_code_and_message();
            error(403, "SignatureDoesNotMatch", &message, request_id)
        }
    }
}

fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            String::from_utf8_lossy(&crate::kernel::sigv4::canonical::percent_decode(&s.replace('+', " "))).into_owned()
        };
        (decode(k) == name).then(|| decode(v))
    })
}

/// Serves an authenticated STS request for `account`.
pub fn handle(account: &str, raw_query: &str, body: &[u8], request_id: &str) -> Response<Body> {
    let form = String::from_utf8_lossy(body);
    let get = |name: &str| form_value(&form, name).or_else(|| form_value(raw_query, name));
    let Some(action) = get("Action") else {
        return error(400, "MissingAction", "Missing Action", request_id);
    };
    if let Some(v) = get("Version").filter(|v| v != STS_VERSION) {
        return error(400, "InvalidAction", &format!("Could not find operation {action} for version {v}"), request_id);
    }
    match action.as_str() {
        "GetCallerIdentity" => {
            let doc = format!(
                "<GetCallerIdentityResponse xmlns=\"{STS_NAMESPACE}\">\n  <GetCallerIdentityResult>\n    \
                 <Arn>arn:aws:iam::{account}:root</Arn>\n    <UserId>{account}</UserId>\n    <Account>{account}</Account>\n  \
                 </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n\
                 </GetCallerIdentityResponse>\n",
                escape(request_id),
                account = escape(account)
            );
            xml(200, doc, request_id)
        }
        other => error(
            400,
            "InvalidAction",
            &format!(
                "Could not find operation {other} for version {STS_VERSION}; agentcore-local serves only GetCallerIdentity of STS."
            ),
            request_id,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(resp: Response<Body>) -> String {
        String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn caller_identity_and_errors() {
        let r = handle("123456789012", "", b"Action=GetCallerIdentity&Version=2011-06-15", "rid");
        assert_eq!(r.status(), 200);
        let body = text(r).await;
        assert!(body.contains("<Arn>arn:aws:iam::123456789012:root</Arn>"), "{body}");
        assert!(body.contains("<Account>123456789012</Account>"), "{body}");
        let r = handle("123456789012", "", b"Action=AssumeRole&Version=2011-06-15", "rid");
        assert_eq!(r.status(), 400);
        assert!(text(r).await.contains("<Code>InvalidAction</Code>"));
        let r = handle("123456789012", "Action=GetCallerIdentity&Version=2011-06-15", b"", "rid");
        assert_eq!(r.status(), 200);
    }
}
