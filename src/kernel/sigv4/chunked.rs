//! Chained signatures of `aws-chunked` bodies (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD` and its
//! `-TRAILER` form): each chunk is signed over the previous signature (the request's own signature
//! seeds the chain), and the trailing headers over the final chunk's. Pure: the caller frames the
//! body and hands each chunk's SHA-256 and claimed signature here.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::canonical::EMPTY_SHA256;
use super::verify::{sign, Verified};

const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
const TRAILER_ALGORITHM: &str = "AWS4-HMAC-SHA256-TRAILER";

/// The signature chain of one aws-chunked body: what a chunk or the trailer must be signed with,
/// and the last signature that verified.
#[derive(Clone)]
pub struct SignatureChain {
    key: Vec<u8>,
    amz_date: String,
    /// `date/region/service/aws4_request`
    scope: String,
    /// The signature the next chunk (or the trailer) is chained to.
    previous: String,
}

impl std::fmt::Debug for SignatureChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureChain").field("scope", &self.scope).field("previous", &self.previous).finish()
    }
}

/// A signature in a chunk header or trailer that is not the one the chain expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMismatch;

impl SignatureChain {
    /// The chain seeded with `seed`, the signature of the request itself.
    pub fn new(signing_key: Vec<u8>, amz_date: &str, scope: &str, seed: &str) -> SignatureChain {
        SignatureChain {
            key: signing_key,
            amz_date: amz_date.to_string(),
            scope: scope.to_string(),
            previous: seed.to_ascii_lowercase(),
        }
    }

    /// The chain of a verified request's body: its signing key, date and scope, seeded with its
    /// signature.
    pub fn of(verified: &Verified) -> SignatureChain {
        let date = &verified.amz_date[..8.min(verified.amz_date.len())];
        let scope = format!("{date}/{}/{}/aws4_request", verified.region, verified.service);
        SignatureChain::new(verified.signing_key.clone(), &verified.amz_date, &scope, &verified.signature)
    }

    /// The string to sign of the next chunk, whose data has SHA-256 `chunk_sha256` (hex; the final,
    /// empty chunk has that of no bytes).
    pub fn chunk_string_to_sign(&self, chunk_sha256: &str) -> String {
        format!(
            "{CHUNK_ALGORITHM}\n{}\n{}\n{}\n{EMPTY_SHA256}\n{chunk_sha256}",
            self.amz_date, self.scope, self.previous
        )
    }

    /// The string to sign of the trailing headers (lower-case names, in the order sent), chained to
    /// the final chunk's signature.
    pub fn trailer_string_to_sign(&self, trailers: &[(String, String)]) -> String {
        let canonical: String = trailers.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        format!(
            "{TRAILER_ALGORITHM}\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        )
    }

    /// Check the next chunk's claimed signature; on a match the chain moves on to it.
    pub fn verify_chunk(&mut self, chunk_sha256: &str, provided: &str) -> Result<(), ChainMismatch> {
        let expected = sign(&self.key, &self.chunk_string_to_sign(chunk_sha256));
        matches(&expected, provided)?;
        self.previous = expected;
        Ok(())
    }

    /// Check the trailer's claimed signature (`x-amz-trailer-signature`).
    pub fn verify_trailer(&self, trailers: &[(String, String)], provided: &str) -> Result<(), ChainMismatch> {
        matches(&sign(&self.key, &self.trailer_string_to_sign(trailers)), provided)
    }
}

fn matches(expected: &str, provided: &str) -> Result<(), ChainMismatch> {
    if bool::from(expected.as_bytes().ct_eq(provided.to_ascii_lowercase().as_bytes())) {
        Ok(())
    } else {
        Err(ChainMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sigv4::verify::signing_key;

    /// AWS's example credentials, date and scope (S3 API reference, "Signature Calculations for
    /// the Authorization Header: Transferring Payload in Multiple Chunks" and "... trailing headers").
    fn chain(seed: &str) -> SignatureChain {
        SignatureChain::new(
            signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            seed,
        )
    }

    /// The two data chunks of the examples: 64 KiB and 1 KiB of 'a', then the empty final chunk.
    fn chunk_hashes() -> [String; 3] {
        let a = vec![b'a'; 65 * 1024];
        [hex::encode(Sha256::digest(&a[..65536])), hex::encode(Sha256::digest(&a[65536..])), EMPTY_SHA256.to_string()]
    }

    #[test]
    fn aws_documented_chunk_chain() {
        let mut chain = chain("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        let hashes = chunk_hashes();
        assert_eq!(
            chain.chunk_string_to_sign(&hashes[0]),
            "AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             bf718b6f653bebc184e1479f1935b8da974d701b893afcf49e701f3e2f9f9c5a"
        );
        let signatures = [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ];
        for (hash, signature) in hashes.iter().zip(signatures) {
            chain.verify_chunk(hash, &signature.to_ascii_uppercase()).unwrap();
        }
    }

    #[test]
    fn aws_documented_trailer_chain() {
        let mut chain = chain("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
        let signatures = [
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ];
        for (hash, signature) in chunk_hashes().iter().zip(signatures) {
            chain.verify_chunk(hash, signature).unwrap();
        }
        let trailers = vec![("x-amz-checksum-crc32c".to_string(), "sOO8/Q==".to_string())];
        assert!(chain.trailer_string_to_sign(&trailers).starts_with(
            "AWS4-HMAC-SHA256-TRAILER\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\n"
        ));
        chain.verify_trailer(&trailers, "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435").unwrap();
        let other = vec![("x-amz-checksum-crc32c".to_string(), "AAAAAA==".to_string())];
        assert_eq!(
            chain.verify_trailer(&other, "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"),
            Err(ChainMismatch)
        );
    }

    #[test]
    fn a_wrong_signature_does_not_advance_the_chain() {
        let mut chain = chain("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        let hashes = chunk_hashes();
        // The second chunk's signature offered first: refused, and the first still verifies.
        assert_eq!(
            chain.verify_chunk(&hashes[0], "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
            Err(ChainMismatch)
        );
        chain.verify_chunk(&hashes[0], "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648").unwrap();
        // Chunks in another order break the chain.
        assert_eq!(
            chain.verify_chunk(&hashes[2], "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
            Err(ChainMismatch)
        );
    }
}
