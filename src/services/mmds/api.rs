//! The metadata service sandboxes fetch their execution-role credentials from, speaking EC2's
//! IMDS protocol as AgentCore's microVM metadata service (MMDS) does, so every SDK's default
//! credential chain finds it through `AWS_EC2_METADATA_SERVICE_ENDPOINT`:
//!
//! 1. `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1–21600) returns a token
//!    bound to the calling sandbox;
//! 2. `GET /latest/meta-data/iam/security-credentials/` names the role;
//! 3. `GET /latest/meta-data/iam/security-credentials/<role>` returns the credential as JSON.
//!
//! GETs carry the token in `X-aws-ec2-metadata-token`; token-less (v1) GETs are refused with 401
//! when the runtime's `metadataConfiguration.requireMMDSV2` is true. The `-extended` paths newer
//! SDKs try first also answer, with the account id. The caller is the sandbox whose address the
//! request comes from: sandboxes cannot reach or impersonate each other, so a session only ever
//! sees its own credentials.

use http::{HeaderValue, Response, StatusCode};

use crate::kernel::response::{self, Body};
use crate::kernel::sigv4::verify::header;
use crate::services::sts::credentials::{Grant, Issuer, SandboxPrincipal};
use crate::sessions::directory::SandboxIdentity;

/// The longest a metadata token may live, as IMDS allows.
pub const MAX_TOKEN_TTL_SECS: i64 = 21_600;
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials";
const EXTENDED_CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials-extended";

/// The sandbox behind a metadata request, as the credential issuer needs it.
struct CallingSandbox {
    principal: SandboxPrincipal,
    /// `metadataConfiguration.requireMMDSV2` of the runtime version.
    require_v2: bool,
}

impl From<SandboxIdentity> for CallingSandbox {
    fn from(s: SandboxIdentity) -> Self {
        CallingSandbox {
            principal: SandboxPrincipal {
                sandbox_id: s.sandbox_id,
                account: s.account,
                role_arn: s.role_arn,
                runtime_id: s.runtime_id,
                session_id: s.session_id,
            },
            require_v2: s.require_mmds_v2,
        }
    }
}

/// Is this a request for the metadata service? Only asked of requests from sandboxes; signed AWS
/// requests (an S3 bucket named `latest`) are not.
pub fn is_metadata_request(path: &str, headers: &[(String, String)], raw_query: &str) -> bool {
    path.starts_with("/latest/")
        && header(headers, "authorization").is_none()
        && !raw_query.contains("X-Amz-Credential=")
        && !raw_query.contains("AWSAccessKeyId=")
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(response::full(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert("content-type", HeaderValue::from_static("text/plain"));
    resp
}

fn iso_seconds(ms: i64) -> String {
    aws_smithy_types::DateTime::from_secs(ms.div_euclid(1000))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

fn credentials_json(grant: &Grant, with_account: bool) -> String {
    let mut doc = serde_json::json!({
        "Code": "Success",
        "LastUpdated": iso_seconds(grant.row.issued_at),
        "Type": "AWS-HMAC",
        "AccessKeyId": grant.row.access_key_id,
        "SecretAccessKey": grant.secret_access_key,
        "Token": grant.session_token,
        "Expiration": iso_seconds(grant.row.expires_at),
    });
    if with_account {
        doc["AccountId"] = serde_json::json!(grant.row.account);
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Answer one metadata request. `sandbox` is `None` when the caller is no sandbox of ours.
pub async fn respond(
    issuer: &Issuer,
    sandbox: Option<SandboxIdentity>,
    method: &http::Method,
    path: &str,
    headers: &[(String, String)],
) -> Response<Body> {
    let Some(sandbox) = sandbox.map(CallingSandbox::from) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let session = sandbox.principal.session_id.clone().unwrap_or_else(|| "(warm pool)".into());
    let resp = answer(issuer, &sandbox, method, path, headers).await;
    tracing::debug!(%session, %method, path, status = resp.status().as_u16(), "metadata request");
    resp
}

async fn answer(
    issuer: &Issuer,
    sandbox: &CallingSandbox,
    method: &http::Method,
    path: &str,
    headers: &[(String, String)],
) -> Response<Body> {
    let sandbox_id = &sandbox.principal.sandbox_id;
    if path == "/latest/api/token" {
        if method != http::Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        // IMDS refuses token requests that went through a proxy.
        if header(headers, "x-forwarded-for").is_some() {
            return text(StatusCode::FORBIDDEN, "Forbidden");
        }
        let ttl = header(headers, TOKEN_TTL_HEADER).and_then(|v| v.trim().parse::<i64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TOKEN_TTL_SECS).contains(t)) else {
            return text(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let token = issuer.metadata_token(sandbox_id, crate::kernel::clock::now_ms() + ttl * 1000);
        let mut resp = text(StatusCode::OK, token);
        resp.headers_mut().insert(TOKEN_TTL_HEADER, HeaderValue::from(ttl));
        return resp;
    }
    if method != http::Method::GET && method != http::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    match header(headers, TOKEN_HEADER) {
        Some(token) => {
            let valid =
                issuer.check_metadata_token(token, sandbox_id).is_some_and(|exp| exp > crate::kernel::clock::now_ms());
            if !valid {
                return text(StatusCode::UNAUTHORIZED, "Unauthorized");
            }
        }
        None if sandbox.require_v2 => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        None => {}
    }
    let (listing, extended) = if let Some(rest) = path.strip_prefix(EXTENDED_CREDENTIALS_PATH) {
        (rest, true)
    } else if let Some(rest) = path.strip_prefix(CREDENTIALS_PATH) {
        (rest, false)
    } else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(role) = crate::services::sts::credentials::principal::Role::parse(
        &sandbox.principal.role_arn,
        &sandbox.principal.account,
    ) else {
        tracing::warn!(role = %sandbox.principal.role_arn, "the runtime's roleArn is not a role ARN; no credentials");
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    match listing.trim_start_matches('/') {
        "" => text(StatusCode::OK, role.name),
        name if name.trim_end_matches('/') == role.name => match issuer.for_sandbox(&sandbox.principal).await {
            Ok(grant) => {
                let mut resp = text(StatusCode::OK, credentials_json(&grant, extended));
                resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
                resp
            }
            Err(e) => {
                tracing::error!(error = %e, "could not issue session credentials");
                text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
        _ => text(StatusCode::NOT_FOUND, "Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::store::Store;
    use crate::services::sts::credentials::keys::CredentialKey;
    use http_body_util::BodyExt;

    fn sandbox(id: &str, require_v2: bool) -> SandboxIdentity {
        SandboxIdentity {
            sandbox_id: id.into(),
            account: "123456789012".into(),
            runtime_id: "rt".into(),
            role_arn: "arn:aws:iam::123456789012:role/AgentRole".into(),
            require_mmds_v2: require_v2,
            session_id: Some("s".repeat(40)),
        }
    }

    async fn call(
        issuer: &Issuer,
        who: Option<SandboxIdentity>,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let resp = respond(issuer, who, &method, path, &headers).await;
        let status = resp.status().as_u16();
        (status, String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_imds_v2_flow_and_its_refusals() {
        let issuer = Issuer::open(Store::in_memory().unwrap(), CredentialKey::ephemeral(), 1.0).await.unwrap();
        let (status, token) = call(
            &issuer,
            Some(sandbox("a", true)),
            http::Method::PUT,
            "/latest/api/token",
            &[(TOKEN_TTL_HEADER, "60")],
        )
        .await;
        assert_eq!(status, 200);
        let auth = [(TOKEN_HEADER, token.as_str())];
        let (status, role) = call(
            &issuer,
            Some(sandbox("a", true)),
            http::Method::GET,
            "/latest/meta-data/iam/security-credentials/",
            &auth,
        )
        .await;
        assert_eq!((status, role.as_str()), (200, "AgentRole"));
        let (status, body) = call(
            &issuer,
            Some(sandbox("a", true)),
            http::Method::GET,
            "/latest/meta-data/iam/security-credentials/AgentRole",
            &auth,
        )
        .await;
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(doc["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
        assert!(
            doc["Expiration"].as_str().unwrap().ends_with('Z') && !doc["Expiration"].as_str().unwrap().contains('.')
        );
        assert!(doc.get("AccountId").is_none());
        let (_, extended) = call(
            &issuer,
            Some(sandbox("a", true)),
            http::Method::GET,
            "/latest/meta-data/iam/security-credentials-extended/AgentRole",
            &auth,
        )
        .await;
        assert!(extended.contains("\"AccountId\": \"123456789012\""), "{extended}");

        // Another sandbox cannot use this sandbox's token; v1 is refused when v2 is required.
        let other = call(&issuer, Some(sandbox("b", false)), http::Method::GET, CREDENTIALS_PATH, &auth).await;
        assert_eq!(other.0, 401);
        let v1 = call(&issuer, Some(sandbox("a", true)), http::Method::GET, CREDENTIALS_PATH, &[]).await;
        assert_eq!(v1.0, 401);
        let v1_allowed = call(&issuer, Some(sandbox("a", false)), http::Method::GET, CREDENTIALS_PATH, &[]).await;
        assert_eq!(v1_allowed, (200, "AgentRole".to_string()));
        // Bad TTLs, proxies, strangers and other roles.
        for ttl in ["0", "21601", "x"] {
            let r = call(
                &issuer,
                Some(sandbox("a", true)),
                http::Method::PUT,
                "/latest/api/token",
                &[(TOKEN_TTL_HEADER, ttl)],
            )
            .await;
            assert_eq!(r.0, 400, "ttl {ttl}");
        }
        let proxied = call(
            &issuer,
            Some(sandbox("a", true)),
            http::Method::PUT,
            "/latest/api/token",
            &[(TOKEN_TTL_HEADER, "60"), ("x-forwarded-for", "1.2.3.4")],
        )
        .await;
        assert_eq!(proxied.0, 403);
        assert_eq!(call(&issuer, None, http::Method::GET, CREDENTIALS_PATH, &[]).await.0, 404);
        let wrong_role =
            call(&issuer, Some(sandbox("a", false)), http::Method::GET, &format!("{CREDENTIALS_PATH}/Other"), &[])
                .await;
        assert_eq!(wrong_role.0, 404);
    }

    #[test]
    fn signed_requests_are_not_metadata_requests() {
        let signed = vec![("Authorization".to_string(), "AWS4-HMAC-SHA256 Credential=…".to_string())];
        assert!(is_metadata_request("/latest/api/token", &[], ""));
        assert!(!is_metadata_request("/latest/api/token", &signed, ""));
        assert!(!is_metadata_request("/latest/key", &[], "X-Amz-Credential=AK%2F..."));
        assert!(!is_metadata_request("/runtimes/x/invocations", &[], ""));
    }
}
