//! STS's wire (awsQuery: a form-encoded `Action=…&Version=…` body or query string, XML response):
//! GetCallerIdentity, and the temporary credentials of AssumeRole and AssumeRoleWithWebIdentity
//! (`assume`), issued by `super::credentials`.

pub mod assume;

use http::{HeaderValue, Response, StatusCode};

use super::credentials::Issuer;
use crate::kernel::caller::Caller;
use crate::kernel::model;
use crate::kernel::query_input::{self, form_pairs};
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

/// The awsQuery parameters of a request: the form body's, then the query string's.
pub struct QueryRequest {
    body: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl QueryRequest {
    pub fn new(raw_query: &str, body: &[u8]) -> QueryRequest {
        QueryRequest { body: form_pairs(&String::from_utf8_lossy(body)), query: form_pairs(raw_query) }
    }

    pub fn param(&self, name: &str) -> Option<String> {
        query_input::param(&self.body, &self.query, name)
    }

    fn pairs(&self) -> Vec<(String, String)> {
        self.body.iter().chain(&self.query).cloned().collect()
    }
}

/// The operation's typed input, bound from the form and validated against the STS model; the
/// error is the ValidationError message.
pub(crate) fn input<T: serde::de::DeserializeOwned>(operation: &str, request: &QueryRequest) -> Result<T, String> {
    let sts = super::model();
    let shape = &sts.operation(operation).input.as_ref().expect("STS operations have inputs").shape;
    let value = query_input::bind(sts, shape, &request.pairs());
    let problems = query_input::query_wording(model::validate(sts, shape, &value));
    if !problems.is_empty() {
        return Err(crate::kernel::input::validation_error(&problems).message);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Serves an STS request. `caller` is who signed it: `None` for an unsigned request (only
/// AssumeRoleWithWebIdentity is unsigned on AWS), which acts in `default_account`.
pub async fn handle(
    issuer: &Issuer,
    caller: Option<&Caller>,
    default_account: &str,
    request: &QueryRequest,
    request_id: &str,
) -> Response<Body> {
    let Some(action) = request.param("Action") else {
        return error(400, "MissingAction", "Missing Action", request_id);
    };
    if let Some(v) = request.param("Version").filter(|v| v != STS_VERSION) {
        return error(400, "InvalidAction", &format!("Could not find operation {action} for version {v}"), request_id);
    }
    let default_account = caller.map_or(default_account, |c| c.account.as_str());
    match (action.as_str(), caller) {
        ("GetCallerIdentity", Some(caller)) => caller_identity(issuer, caller, request_id),
        ("AssumeRole", Some(caller)) => match input(&action, request) {
            Ok(input) => {
                let chained = assumed_role(issuer, caller).is_some();
                assume::assume_role(issuer, &caller.account, chained, input, request_id).await
            }
            Err(message) => error(400, "ValidationError", &message, request_id),
        },
        ("AssumeRoleWithWebIdentity", _) => match input(&action, request) {
            Ok(input) => assume::assume_role_with_web_identity(issuer, default_account, input, request_id).await,
            Err(message) => error(400, "ValidationError", &message, request_id),
        },
        (_, None) => error(403, "MissingAuthenticationToken", "Request is missing Authentication Token", request_id),
        (other, _) => error(
            400,
            "InvalidAction",
            &format!(
                "Could not find operation {other} for version {STS_VERSION}; agentcore-local serves GetCallerIdentity, \
                 AssumeRole and AssumeRoleWithWebIdentity of STS."
            ),
            request_id,
        ),
    }
}

/// The role `caller` signed as, if its access key is one of the temporary credentials issued here.
fn assumed_role(issuer: &Issuer, caller: &Caller) -> Option<super::credentials::AssumedRole> {
    issuer.assumed_role(caller.access_key_id.as_deref()?)
}

/// GetCallerIdentity: the assumed role behind temporary credentials, else the account's root.
fn caller_identity(issuer: &Issuer, caller: &Caller, request_id: &str) -> Response<Body> {
    let (arn, user_id, account) = match assumed_role(issuer, caller) {
        Some(role) => (role.arn, role.user_id, role.account),
        None => (format!("arn:aws:iam::{}:root", caller.account), caller.account.clone(), caller.account.clone()),
    };
    let result = format!(
        "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
        escape(&arn),
        escape(&user_id),
        escape(&account)
    );
    ok_document("GetCallerIdentity", &result, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::store::Store;
    use http_body_util::BodyExt;

    async fn text(resp: Response<Body>) -> (u16, String) {
        let status = resp.status().as_u16();
        (status, String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    }

    fn signed(access_key_id: &str) -> Caller {
        Caller::signed("123456789012", "us-east-1", access_key_id)
    }

    #[tokio::test]
    async fn caller_identity_assume_role_and_errors() {
        let issuer =
            Issuer::open(Store::in_memory().unwrap(), super::super::credentials::keys::CredentialKey::ephemeral(), 1.0)
                .await
                .unwrap();
        let root = signed("test");
        let call = |q: &'static str| QueryRequest::new("", q.as_bytes());
        let (status, body) = text(
            handle(&issuer, Some(&root), "123456789012", &call("Action=GetCallerIdentity&Version=2011-06-15"), "r")
                .await,
        )
        .await;
        assert_eq!(status, 200);
        assert!(body.contains("<Arn>arn:aws:iam::123456789012:root</Arn>"), "{body}");
        let (status, body) = text(
            handle(
                &issuer,
                Some(&root), "123456789012",
                &call("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FR&RoleSessionName=me&DurationSeconds=900"),
                "r",
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<Arn>arn:aws:sts::123456789012:assumed-role/R/me</Arn>"), "{body}");
        let key = body.split("<AccessKeyId>").nth(1).unwrap().split('<').next().unwrap().to_string();
        let (_, body) = text(
            handle(
                &issuer,
                Some(&signed(&key)),
                "123456789012",
                &call("Action=GetCallerIdentity&Version=2011-06-15"),
                "r",
            )
            .await,
        )
        .await;
        assert!(body.contains("assumed-role/R/me</Arn>") && body.contains(":me</UserId>"), "{body}");

        let (status, body) = text(
            handle(
                &issuer,
                Some(&root), "123456789012",
                &call("Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FR&RoleSessionName=x&DurationSeconds=60"),
                "r",
            )
            .await,
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            body.contains("<Code>ValidationError</Code>") && body.contains("2 validation errors detected"),
            "{body}"
        );
        assert!(
            body.contains("at &apos;roleSessionName&apos;") && body.contains("at &apos;durationSeconds&apos;"),
            "{body}"
        );
        let (status, _) =
            text(handle(&issuer, None, "123456789012", &call("Action=GetCallerIdentity"), "r").await).await;
        assert_eq!(status, 403);
        let (status, body) =
            text(handle(&issuer, Some(&root), "123456789012", &call("Action=GetSessionToken"), "r").await).await;
        assert_eq!(status, 400);
        assert!(body.contains("<Code>InvalidAction</Code>"));
    }
}
