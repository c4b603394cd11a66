//! STS AssumeRole and AssumeRoleWithWebIdentity: temporary credentials for a role, so host-side
//! profiles with `role_arn` (+ `source_profile`, or `web_identity_token_file`) work against the
//! emulator. There is no IAM here: any caller may assume any role, session policies are accepted
//! and not enforced, and a web identity token's signature is not checked (no identity providers are
//! configured); its claims are read for the response.

use base64::Engine;
use http::Response;
use serde::Deserialize;
use serde_json::Value;

use super::{error, escape, ok_document};
use crate::kernel::response::Body;
use crate::services::sts::credentials::principal::Role;
use crate::services::sts::credentials::{CredentialSource, Grant, Issuer};

/// STS's default session duration when `DurationSeconds` is absent.
pub const DEFAULT_DURATION_SECS: u64 = 3600;
/// Role chaining (assuming a role with role credentials) is limited to one hour.
pub const MAX_CHAINED_DURATION_SECS: u64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleInput {
    pub role_arn: String,
    pub role_session_name: String,
    pub duration_seconds: Option<u64>,
    pub source_identity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleWithWebIdentityInput {
    pub role_arn: String,
    pub role_session_name: String,
    pub web_identity_token: String,
    pub duration_seconds: Option<u64>,
}

fn timestamp(ms: i64) -> String {
    aws_smithy_types::DateTime::from_secs(ms.div_euclid(1000))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

fn credentials_xml(grant: &Grant) -> String {
    format!(
        "    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      \
         <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n",
        escape(&grant.row.access_key_id),
        escape(&grant.secret_access_key),
        escape(&grant.session_token),
        timestamp(grant.row.expires_at)
    )
}

fn assumed_role_user_xml(role: &Role, session_name: &str) -> String {
    format!(
        "    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n",
        escape(&role.assumed_role_id(session_name)),
        escape(&role.assumed_role_arn(session_name))
    )
}

/// The role `arn` names, or STS's ValidationError.
fn role_of(arn: &str, caller_account: &str, request_id: &str) -> Option<Role> {
    let role = Role::parse(arn, caller_account);
    if role.is_none() {
        tracing::info!(%arn, request_id, "AssumeRole for something that is not a role ARN");
    }
    role
}

fn not_a_role(arn: &str, request_id: &str) -> Response<Body> {
    error(
        400,
        "ValidationError",
        &format!("{arn} is not a valid role ARN: expected arn:aws:iam::<account id>:role/<role name>."),
        request_id,
    )
}

/// AssumeRole. `chained` says the caller signed with role credentials itself.
pub async fn assume_role(
    issuer: &Issuer,
    caller_account: &str,
    chained: bool,
    input: AssumeRoleInput,
    request_id: &str,
) -> Response<Body> {
    let Some(role) = role_of(&input.role_arn, caller_account, request_id) else {
        return not_a_role(&input.role_arn, request_id);
    };
    let duration = input.duration_seconds.unwrap_or(DEFAULT_DURATION_SECS);
    if chained && duration > MAX_CHAINED_DURATION_SECS {
        return error(
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            request_id,
        );
    }
    let grant = match issuer.assume_role(&role, &input.role_session_name, duration, CredentialSource::AssumeRole).await
    {
        Ok(g) => g,
        Err(e) => return error(500, "InternalFailure", &e.message, request_id),
    };
    let mut result = String::new();
    if let Some(source) = &input.source_identity {
        result.push_str(&format!("    <SourceIdentity>{}</SourceIdentity>\n", escape(source)));
    }
    result.push_str(&assumed_role_user_xml(&role, &input.role_session_name));
    result.push_str(&credentials_xml(&grant));
    ok_document("AssumeRole", &result, request_id)
}

/// The claims of a JWT this endpoint reads (the signature is not verified: there are no identity
/// providers to verify it against).
#[derive(Debug, Default, PartialEq)]
struct Claims {
    subject: String,
    audience: String,
    issuer: String,
    expires: Option<i64>,
}

fn claims_of(token: &str) -> Option<Claims> {
    let mut parts = token.trim().split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    let string = |v: &Value| v.as_str().map(str::to_string);
    Some(Claims {
        subject: doc.get("sub").and_then(string).unwrap_or_default(),
        audience: match doc.get("aud") {
            Some(Value::Array(a)) => a.first().and_then(string).unwrap_or_default(),
            Some(v) => string(v).unwrap_or_default(),
            None => String::new(),
        },
        issuer: doc.get("iss").and_then(string).unwrap_or_default(),
        expires: doc.get("exp").and_then(Value::as_i64),
    })
}

/// AssumeRoleWithWebIdentity (unsigned, as on AWS).
pub async fn assume_role_with_web_identity(
    issuer: &Issuer,
    default_account: &str,
    input: AssumeRoleWithWebIdentityInput,
    request_id: &str,
) -> Response<Body> {
    let Some(claims) = claims_of(&input.web_identity_token) else {
        return error(
            400,
            "InvalidIdentityToken",
            "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
            request_id,
        );
    };
    let now_secs = crate::kernel::clock::now_ms() / 1000;
    if claims.expires.is_some_and(|exp| exp <= now_secs) {
        return error(
            400,
            "ExpiredTokenException",
            "Token expired: current date/time must be before the expiration date/time.",
            request_id,
        );
    }
    let Some(role) = role_of(&input.role_arn, default_account, request_id) else {
        return not_a_role(&input.role_arn, request_id);
    };
    let duration = input.duration_seconds.unwrap_or(DEFAULT_DURATION_SECS);
    let grant = match issuer.assume_role(&role, &input.role_session_name, duration, CredentialSource::WebIdentity).await
    {
        Ok(g) => g,
        Err(e) => return error(500, "InternalFailure", &e.message, request_id),
    };
    let provider = claims.issuer.trim_start_matches("https://").to_string();
    let mut result = String::new();
    result.push_str(&format!(
        "    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n",
        escape(&claims.subject)
    ));
    result.push_str(&format!("    <Audience>{}</Audience>\n", escape(&claims.audience)));
    result.push_str(&assumed_role_user_xml(&role, &input.role_session_name));
    result.push_str(&credentials_xml(&grant));
    result.push_str(&format!("    <Provider>{}</Provider>\n", escape(&provider)));
    ok_document("AssumeRoleWithWebIdentity", &result, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", enc(r#"{"alg":"RS256"}"#), enc(payload), enc("sig"))
    }

    #[test]
    fn reads_jwt_claims() {
        let c =
            claims_of(&jwt(r#"{"sub":"user-1","aud":["app"],"iss":"https://idp.example","exp":4102444800}"#)).unwrap();
        assert_eq!(
            c,
            Claims {
                subject: "user-1".into(),
                audience: "app".into(),
                issuer: "https://idp.example".into(),
                expires: Some(4102444800)
            }
        );
        assert!(claims_of("not-a-jwt").is_none());
        assert!(claims_of("a.b").is_none());
    }
}
