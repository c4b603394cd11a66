//! Query strings and forms, decoded in one place. Two decodings exist on the wire:
//!
//! - [`pairs`]: RFC 3986 percent-decoding, `+` stays a plus. SigV4 canonicalisation and S3 read
//!   query strings this way (a presigned URL's `X-Amz-Credential`, an S3 key with a `+`).
//! - [`form_pairs`]: `application/x-www-form-urlencoded`, where `+` is a space: HTML forms, awsQuery
//!   bodies (STS), and the query strings of the JSON services and the emulator's own pages.
//!
//! Invalid UTF-8 after decoding becomes U+FFFD rather than an error: the caller then validates
//! the value it expected, with a message naming it.

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn split(raw: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    raw.split('&').filter(|p| !p.is_empty()).map(|p| match p.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (p, None),
    })
}

/// `a=1&b=x%2By+z` → `[("a", "1"), ("b", "x+y+z")]` (a name without `=` has the value "").
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    split(raw).map(|(k, v)| (decode(k), v.map(decode).unwrap_or_default())).collect()
}

/// `a=1&b=x%2By+z` → `[("a", "1"), ("b", "x+y z")]`.
pub fn form_pairs(raw: &str) -> Vec<(String, String)> {
    let form = |s: &str| decode(&s.replace('+', " "));
    split(raw).map(|(k, v)| (form(k), v.map(form).unwrap_or_default())).collect()
}

/// The decoded value of the first parameter whose raw name is `name` (RFC 3986 decoding).
pub fn value(raw: &str, name: &str) -> Option<String> {
    split(raw).find(|(k, _)| *k == name).map(|(_, v)| v.map(decode).unwrap_or_default())
}

/// Raw names with their decoded values, `None` where the name has no `=` (S3 SigV2 signs
/// sub-resources such as `?acl` differently from `?acl=`).
pub fn raw_names(raw: &str) -> impl Iterator<Item = (&str, Option<String>)> {
    split(raw).map(|(k, v)| (k, v.map(decode)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_a_plus_in_uris_and_a_space_in_forms() {
        assert_eq!(
            pairs("a=1&b=x%2By+z&flag"),
            vec![("a".into(), "1".into()), ("b".into(), "x+y+z".into()), ("flag".into(), String::new())]
        );
        assert_eq!(form_pairs("b=x%2By+z&&c=%ZZ"), vec![("b".into(), "x+y z".into()), ("c".into(), "%ZZ".into())]);
        assert_eq!(value("X-Amz-Credential=AK%2F2026&x=1", "X-Amz-Credential").as_deref(), Some("AK/2026"));
        assert_eq!(value("a=1", "b"), None);
        assert_eq!(
            raw_names("acl&versionId=1").collect::<Vec<_>>(),
            vec![("acl", None), ("versionId", Some("1".into()))]
        );
    }
}
