//! The checksums S3 computes and stores: CRC32, CRC32C, CRC64NVME, SHA1, SHA256 (flexible
//! checksums), MD5 (ETags, Content-MD5), and how multipart checksums combine.

use base64::Engine;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::error::{S3Error, S3Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

pub const ALL: [Algorithm; 5] =
    [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];

/// How a multipart object's checksum was made (`x-amz-checksum-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// Over the whole object's bytes.
    FullObject,
    /// Over the concatenated binary checksums of the parts, with `-<parts>` appended.
    Composite,
}

impl ChecksumType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "FULL_OBJECT" => Some(ChecksumType::FullObject),
            "COMPOSITE" => Some(ChecksumType::Composite),
            _ => None,
        }
    }
}

impl Algorithm {
    /// As S3 names it in `x-amz-checksum-algorithm` and XML (`CRC32`, `CRC64NVME`, …).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header carrying a value: `x-amz-checksum-crc32`, …
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The XML element carrying a value: `ChecksumCRC32`, …
    pub fn xml_element(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "ChecksumCRC32",
            Algorithm::Crc32c => "ChecksumCRC32C",
            Algorithm::Crc64Nvme => "ChecksumCRC64NVME",
            Algorithm::Sha1 => "ChecksumSHA1",
            Algorithm::Sha256 => "ChecksumSHA256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }

    pub fn from_header(name: &str) -> Option<Self> {
        ALL.into_iter().find(|a| a.header().eq_ignore_ascii_case(name))
    }

    /// Length of the binary digest.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// Which multipart checksum types S3 allows for this algorithm, and its default.
    pub fn default_multipart_type(self) -> ChecksumType {
        match self {
            Algorithm::Crc64Nvme => ChecksumType::FullObject,
            _ => ChecksumType::Composite,
        }
    }

    pub fn supports(self, t: ChecksumType) -> bool {
        match self {
            Algorithm::Crc64Nvme => t == ChecksumType::FullObject,
            Algorithm::Sha1 | Algorithm::Sha256 => t == ChecksumType::Composite,
            Algorithm::Crc32 | Algorithm::Crc32c => true,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Crc64Nvme => Hasher::Crc64(crc64fast_nvme::Digest::new()),
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

/// A running checksum in one algorithm.
pub enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64(crc64fast_nvme::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Crc64(h) => h.write(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The digest as S3 encodes it before base64 (CRCs big-endian).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            Hasher::Crc64(h) => h.sum64().to_be_bytes().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

pub fn base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn decode_base64(value: &str) -> Option<Vec<u8>> {
    B64.decode(value.trim()).ok()
}

pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

pub fn new_md5() -> Md5 {
    Md5::new()
}

/// A multipart object's ETag: MD5 of the parts' binary MD5s, `-<parts>` appended.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

/// A composite multipart checksum: the algorithm over the parts' binary checksums, `-<parts>`.
pub fn composite(algorithm: Algorithm, part_checksums: &[Vec<u8>]) -> String {
    let mut h = algorithm.hasher();
    for c in part_checksums {
        h.update(c);
    }
    format!("{}-{}", base64(&h.finish()), part_checksums.len())
}

/// A checksum value the client declared, checked for form: base64 of the algorithm's digest length.
pub fn parse_declared(algorithm: Algorithm, value: &str) -> S3Result<Vec<u8>> {
    match decode_base64(value) {
        Some(bytes) if bytes.len() == algorithm.digest_len() => Ok(bytes),
        _ => Err(S3Error::invalid_request(format!("Value for {} header is invalid.", algorithm.header()))),
    }
}

/// The error S3 gives when a declared checksum does not match the bytes received.
pub fn mismatch(algorithm: Algorithm) -> S3Error {
    S3Error::new(
        "BadDigest",
        400,
        format!("The {} you specified did not match the calculated checksum.", algorithm.name()),
    )
}

/// A `Content-MD5` header value: base64 of 16 bytes.
pub fn parse_content_md5(value: &str) -> S3Result<[u8; 16]> {
    decode_base64(value).and_then(|b| <[u8; 16]>::try_from(b).ok()).ok_or_else(|| {
        S3Error::new("InvalidDigest", 400, "The Content-MD5 you specified was invalid.").with("Content-MD5", value)
    })
}

pub fn check_content_md5(expected: &[u8; 16], computed: &[u8; 16]) -> S3Result<()> {
    if expected == computed {
        Ok(())
    } else {
        Err(S3Error::new("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
            .with("ExpectedDigest", hex::encode(expected))
            .with("CalculatedDigest", base64(computed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Check values from the CRC catalogue ("123456789") and botocore's encodings.
        let data = b"123456789";
        assert_eq!(Algorithm::Crc32.digest(data), 0xCBF43926u32.to_be_bytes());
        assert_eq!(Algorithm::Crc32c.digest(data), 0xE3069283u32.to_be_bytes());
        assert_eq!(Algorithm::Crc64Nvme.digest(data), 0xAE8B14860A799888u64.to_be_bytes());
        assert_eq!(base64(&Algorithm::Crc32.digest(b"")), "AAAAAA==");
        assert_eq!(base64(&Algorithm::Sha256.digest(b"")), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn multipart_forms() {
        let p1 = md5(b"a");
        let p2 = md5(b"b");
        let etag = multipart_etag(&[p1, p2]);
        assert!(etag.ends_with("-2") && etag.len() == 34, "{etag}");
        let c = composite(Algorithm::Crc32, &[Algorithm::Crc32.digest(b"a"), Algorithm::Crc32.digest(b"b")]);
        assert!(c.ends_with("-2"), "{c}");
        assert!(Algorithm::Crc64Nvme.supports(ChecksumType::FullObject));
        assert!(!Algorithm::Sha256.supports(ChecksumType::FullObject));
        assert_eq!(Algorithm::parse("crc64nvme"), Some(Algorithm::Crc64Nvme));
    }
}
