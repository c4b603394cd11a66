//! Names S3 checks or makes: bucket names, keys, version ids, upload ids.

use rand::distr::{Alphanumeric, SampleString};

use super::error::{S3Error, S3Result};

/// Longest key S3 accepts, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The version id of objects written while versioning is off or suspended.
pub const NULL_VERSION: &str = "null";

/// The rules for general purpose bucket names.
pub fn validate_bucket_name(name: &str) -> S3Result<()> {
    let bytes = name.as_bytes();
    let valid_chars = bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-');
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let looks_like_ip =
        name.split('.').count() == 4 && name.split('.').all(|p| !p.is_empty() && p.parse::<u8>().is_ok());
    let reserved_prefix = ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p));
    let reserved_suffix = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].iter().any(|s| name.ends_with(s));
    if (3..=63).contains(&bytes.len())
        && valid_chars
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && !looks_like_ip
        && !reserved_prefix
        && !reserved_suffix
    {
        Ok(())
    } else {
        Err(S3Error::invalid_bucket_name(name))
    }
}

pub fn validate_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(S3Error::invalid_argument("Key must not be empty.", "key", ""));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::new("KeyTooLongError", 400, "Your key is too long")
            .with("Size", key.len().to_string())
            .with("MaxSizeAllowed", MAX_KEY_BYTES.to_string()));
    }
    Ok(())
}

/// A new version id (32 URL-safe characters, like S3's).
pub fn new_version_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// A new multipart upload id.
pub fn new_upload_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.v2", "a1b", "123", &"a".repeat(63)] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "192.168.5.4",
            "under_score",
            "xn--abc",
            "abc-s3alias",
            "sp ace",
        ] {
            let e = validate_bucket_name(bad).unwrap_err();
            assert_eq!(e.code, "InvalidBucketName", "{bad}");
        }
    }

    #[test]
    fn keys_and_ids() {
        assert!(validate_key(&"k".repeat(1024)).is_ok());
        assert_eq!(validate_key(&"k".repeat(1025)).unwrap_err().code, "KeyTooLongError");
        assert_eq!(new_version_id().len(), 32);
        assert_ne!(new_upload_id(), new_upload_id());
    }
}
