//! S3's legacy signature (SigV2: HMAC-SHA1 over verb, Content-MD5, Content-Type, date or expiry,
//! `x-amz-*` headers and the resource). boto3's `generate_presigned_url` still makes these URLs
//! (`?AWSAccessKeyId=…&Signature=…&Expires=…`) unless the client asks for `s3v4`.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::kernel::query::value as query_value;
use crate::kernel::sigv4::verify::header;
use crate::kernel::sigv4::verify::MAX_CLOCK_SKEW_SECS;
use crate::kernel::sigv4::Credential;
use crate::services::s3::objects::S3Error;

/// Query parameters that are part of the signed resource (botocore's `QSAOfInterest`).
const SIGNED_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Whether a request is signed with SigV2 (header or query string).
pub fn is_sigv2(headers: &[(String, String)], raw_query: &str) -> bool {
    header(headers, "authorization").is_some_and(|a| a.starts_with("AWS "))
        || (raw_query.contains("AWSAccessKeyId=") && raw_query.contains("Signature="))
}

/// The string SigV2 signs. `resource` is `/bucket/key` as sent (still encoded).
pub fn string_to_sign(
    method: &str,
    headers: &[(String, String)],
    date_or_expires: &str,
    resource: &str,
    raw_query: &str,
) -> String {
    let mut s = format!(
        "{method}\n{}\n{}\n{date_or_expires}\n",
        header(headers, "content-md5").unwrap_or("").trim(),
        header(headers, "content-type").unwrap_or("").trim()
    );
    let mut amz: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-amz-"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    amz.sort();
    for (n, v) in amz {
        s.push_str(&format!("{n}:{v}\n"));
    }
    s.push_str(resource);
    let mut sub: Vec<(String, Option<String>)> = crate::kernel::query::raw_names(raw_query)
        .filter(|(k, _)| SIGNED_SUBRESOURCES.contains(k))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if !sub.is_empty() {
        sub.sort_by(|a, b| a.0.cmp(&b.0));
        let parts: Vec<String> = sub.into_iter().map(|(k, v)| v.map(|v| format!("{k}={v}")).unwrap_or(k)).collect();
        s.push('?');
        s.push_str(&parts.join("&"));
    }
    s
}

pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies a SigV2 request; returns the credential it was signed with.
pub fn verify<'c>(
    credentials: &'c std::collections::HashMap<String, Credential>,
    method: &str,
    resource: &str,
    raw_query: &str,
    headers: &[(String, String)],
    now: i64,
) -> Result<&'c Credential, S3Error> {
    let (access_key, signature, date, presigned) = match header(headers, "authorization") {
        Some(auth) => {
            let (ak, sig) = auth.trim_start_matches("AWS ").rsplit_once(':').ok_or_else(|| {
                S3Error::invalid_argument(
                    "Authorization header is invalid -- one and only one ' ' (space) required",
                    "Authorization",
                    auth,
                )
            })?;
            let date = header(headers, "date").or_else(|| header(headers, "x-amz-date")).unwrap_or("").to_string();
            (ak.to_string(), sig.to_string(), date, false)
        }
        None => (
            query_value(raw_query, "AWSAccessKeyId").unwrap_or_default(),
            query_value(raw_query, "Signature").unwrap_or_default(),
            query_value(raw_query, "Expires").unwrap_or_default(),
            true,
        ),
    };
    let credential = credentials.get(&access_key).ok_or_else(|| {
        S3Error::new("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.")
            .with("AWSAccessKeyId", access_key.clone())
    })?;
    if presigned {
        let expires: i64 = date.parse().map_err(|_| {
            S3Error::invalid_argument("Expires must be a number of seconds since the epoch", "Expires", &date)
        })?;
        if now > expires {
            return Err(S3Error::new("AccessDenied", 403, "Request has expired")
                // Saturating: an `Expires` far in the past (any i64 is accepted) has no millisecond form.
                .with("Expires", super::iso_date(expires.saturating_mul(1000)))
                .with("ServerTime", super::iso_date(now * 1000)));
        }
    } else {
        let when = super::parse_http_date(&date).ok_or_else(|| {
            S3Error::new("AccessDenied", 403, "AWS authentication requires a valid Date or x-amz-date header")
        })?;
        if (when - now).abs() > MAX_CLOCK_SKEW_SECS {
            return Err(S3Error::new(
                "RequestTimeTooSkewed",
                403,
                "The difference between the request time and the current time is too large.",
            )
            .with("RequestTime", date.clone())
            .with("ServerTime", super::iso_date(now * 1000)));
        }
    }
    // The Date line is empty when x-amz-date carries the date (it is then among the x-amz-* headers).
    let date_line = if !presigned && header(headers, "date").is_none() { "" } else { date.as_str() };
    let sts = string_to_sign(method, headers, date_line, resource, raw_query);
    let expected = sign(&credential.secret_access_key, &sts);
    if bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes())) {
        Ok(credential)
    } else {
        Err(S3Error::new(
            "SignatureDoesNotMatch",
            403,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
        .with("AWSAccessKeyId", access_key)
        .with("StringToSign", sts.clone())
        .with("SignatureProvided", signature)
        .with("StringToSignBytes", sts.bytes().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of S3's SigV2 documentation ("Object GET").
    #[test]
    fn documented_example() {
        let headers = vec![("Date".to_string(), "Tue, 27 Mar 2007 19:36:42 +0000".to_string())];
        let sts = string_to_sign(
            "GET",
            &headers,
            "Tue, 27 Mar 2007 19:36:42 +0000",
            "/awsexamplebucket1/photos/puppy.jpg",
            "",
        );
        assert_eq!(sts, "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg");
        assert_eq!(sign("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", &sts), "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
    }

    #[test]
    fn subresources_are_sorted_and_decoded() {
        let sts = string_to_sign("GET", &[], "1175139620", "/b/k", "versionId=a%2Bb&X-Amz-Foo=1&acl&AWSAccessKeyId=x");
        assert_eq!(sts, "GET\n\n\n1175139620\n/b/k?acl&versionId=a+b");
    }

    /// Found by the s3_headers fuzz target: an `Expires` below i64::MIN / 1000 overflowed when the
    /// expiry was written into the error (a panic where overflow is checked).
    #[test]
    fn an_expiry_far_in_the_past_is_refused_as_expired() {
        let credentials = std::collections::HashMap::from([(
            "AK".to_string(),
            Credential { access_key_id: "AK".into(), secret_access_key: "s".into(), ..Default::default() },
        )]);
        for expires in ["-55555555555555555", "-9223372036854775808"] {
            let query = format!("AWSAccessKeyId=AK&Expires={expires}&Signature=x");
            let e = verify(&credentials, "GET", "/b/k", &query, &[], 1_440_938_160).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), ("AccessDenied", "Request has expired"));
        }
    }
}
