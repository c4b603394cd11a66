//! Request bodies of S3: plain (optionally checked against a declared SHA-256) or `aws-chunked`
//! (chunk signatures verified one by one, trailing checksum headers collected). Uploads stream
//! through a blocking worker into a staging file; nothing is held whole in memory.

use bytes::Bytes;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::ReqBody;
use crate::kernel::sigv4::canonical::EMPTY_SHA256;
use crate::kernel::sigv4::SignatureChain;
use crate::services::s3::objects::{S3Error, S3Result, Staged, Staging};

/// Longest chunk header or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;
/// Body frames in flight between the connection and the writer thread.
const CHANNEL_FRAMES: usize = 16;

pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// How the body is framed and what protects it.
#[derive(Clone)]
pub enum Framing {
    /// The body is the payload; `sha256` is the digest the signature covers, if any.
    Plain { sha256: Option<String> },
    /// `aws-chunked`. `signing` (the request's signature chain) is set for the signed streaming
    /// forms (with credentials); `signed_trailer` for STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
    Chunked { signing: Option<SignatureChain>, signed_chunks: bool, signed_trailer: bool, decoded_length: Option<u64> },
}

fn signature_mismatch(what: &str) -> S3Error {
    S3Error::new(
        "SignatureDoesNotMatch",
        403,
        format!(
            "The request signature we calculated does not match the signature you provided. Check your key and signing method. ({what})"
        ),
    )
}

fn incomplete(message: impl Into<String>) -> S3Error {
    S3Error::new("IncompleteBody", 400, message)
}

fn malformed_chunk(message: &str) -> S3Error {
    S3Error::invalid_request(format!("The aws-chunked body is malformed: {message}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Data,
    DataEnd,
    Trailer,
    Done,
}

/// Push decoder: feed wire bytes, get payload bytes; `finish` checks the end of the body.
pub struct Decoder {
    framing: Framing,
    state: State,
    line: Vec<u8>,
    remaining: u64,
    decoded: u64,
    chunk_hash: Option<Sha256>,
    chunk_signature: Option<String>,
    /// The request's signature chain, moved along by each verified chunk.
    chain: Option<SignatureChain>,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<String>,
    plain_hash: Option<Sha256>,
}

impl Decoder {
    /// `hash_plain`: compute SHA-256 of a plain body here (small bodies; uploads let the staging
    /// file do it).
    pub fn new(framing: Framing, hash_plain: bool) -> Decoder {
        let chain = match &framing {
            Framing::Chunked { signing, .. } => signing.clone(),
            Framing::Plain { .. } => None,
        };
        let plain_hash = match &framing {
            Framing::Plain { sha256: Some(_) } if hash_plain => Some(Sha256::new()),
            _ => None,
        };
        Decoder {
            framing,
            state: State::Header,
            line: Vec::new(),
            remaining: 0,
            decoded: 0,
            chunk_hash: None,
            chunk_signature: None,
            chain,
            trailers: Vec::new(),
            trailer_signature: None,
            plain_hash,
        }
    }

    /// Whether chunks carry signatures to check.
    fn signed_chunks(&self) -> bool {
        matches!(self.framing, Framing::Chunked { signed_chunks: true, .. }) && self.chain.is_some()
    }

    /// Takes bytes up to and including CRLF into `self.line`; `Some(line)` once complete. The
    /// length limit holds however the line arrives: whole in one frame or across several.
    fn take_line(&mut self, input: &mut &[u8]) -> S3Result<Option<String>> {
        match input.iter().position(|b| *b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&input[..i]);
                *input = &input[i + 1..];
                if self.line.len() > MAX_LINE_BYTES {
                    return Err(malformed_chunk("a chunk header line is too long"));
                }
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                let line = String::from_utf8(std::mem::take(&mut self.line))
                    .map_err(|_| malformed_chunk("a chunk header is not UTF-8"))?;
                Ok(Some(line))
            }
            None => {
                self.line.extend_from_slice(input);
                *input = &[];
                if self.line.len() > MAX_LINE_BYTES {
                    return Err(malformed_chunk("a chunk header line is too long"));
                }
                Ok(None)
            }
        }
    }

    fn verify_chunk(&mut self, data_hash: &str) -> S3Result<()> {
        let provided = self.chunk_signature.take();
        if !self.signed_chunks() {
            return Ok(());
        }
        let provided = provided.ok_or_else(|| signature_mismatch("chunk-signature missing"))?;
        let chain = self.chain.as_mut().expect("signed chunks have a chain");
        chain.verify_chunk(data_hash, &provided).map_err(|_| signature_mismatch("chunk signature"))
    }

    fn header_line(&mut self, line: &str) -> S3Result<()> {
        let mut fields = line.split(';');
        let size = fields.next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| malformed_chunk("a chunk size is not hexadecimal"))?;
        self.chunk_signature = None;
        for ext in fields {
            if let Some((k, v)) = ext.split_once('=') {
                if k.trim() == "chunk-signature" {
                    self.chunk_signature = Some(v.trim().to_string());
                }
            }
        }
        if self.signed_chunks() {
            if self.chunk_signature.is_none() {
                return Err(signature_mismatch("chunk-signature missing"));
            }
            self.chunk_hash = Some(Sha256::new());
        }
        if size == 0 {
            self.verify_chunk(EMPTY_SHA256)?;
            self.state = State::Trailer;
        } else {
            self.remaining = size;
            self.state = State::Data;
        }
        Ok(())
    }

    fn trailer_line(&mut self, line: &str) -> S3Result<()> {
        if line.is_empty() {
            self.state = State::Done;
            return Ok(());
        }
        let (name, value) = line.split_once(':').ok_or_else(|| malformed_chunk("a trailer line has no ':'"))?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
        if name == "x-amz-trailer-signature" {
            self.trailer_signature = Some(value);
        } else {
            self.trailers.push((name, value));
        }
        Ok(())
    }

    pub fn feed(&mut self, mut input: &[u8], out: &mut dyn FnMut(&[u8]) -> S3Result<()>) -> S3Result<()> {
        if let Framing::Plain { .. } = self.framing {
            if let Some(h) = self.plain_hash.as_mut() {
                h.update(input);
            }
            self.decoded += input.len() as u64;
            return out(input);
        }
        while !input.is_empty() {
            match self.state {
                State::Header => {
                    if let Some(line) = self.take_line(&mut input)? {
                        self.header_line(&line)?;
                    }
                }
                State::Data => {
                    let n = (self.remaining.min(input.len() as u64)) as usize;
                    let (data, rest) = input.split_at(n);
                    if let Some(h) = self.chunk_hash.as_mut() {
                        h.update(data);
                    }
                    out(data)?;
                    self.decoded += n as u64;
                    self.remaining -= n as u64;
                    input = rest;
                    if self.remaining == 0 {
                        self.state = State::DataEnd;
                    }
                }
                State::DataEnd => {
                    if let Some(line) = self.take_line(&mut input)? {
                        if !line.is_empty() {
                            return Err(malformed_chunk("chunk data is longer than its declared size"));
                        }
                        let hash = self.chunk_hash.take().map(|h| hex::encode(h.finalize())).unwrap_or_default();
                        self.verify_chunk(&hash)?;
                        self.state = State::Header;
                    }
                }
                State::Trailer => {
                    if let Some(line) = self.take_line(&mut input)? {
                        self.trailer_line(&line)?;
                    }
                }
                State::Done => {
                    if input.iter().any(|b| !b.is_ascii_whitespace()) {
                        return Err(malformed_chunk("data after the final chunk"));
                    }
                    input = &[];
                }
            }
        }
        Ok(())
    }

    /// Checks the end of the body; returns the trailing headers (lower-case names).
    pub fn finish(mut self) -> S3Result<Vec<(String, String)>> {
        match &self.framing {
            Framing::Plain { sha256 } => {
                if let (Some(declared), Some(h)) = (sha256, self.plain_hash.take()) {
                    check_sha256(declared, &h.finalize().into())?;
                }
                Ok(Vec::new())
            }
            Framing::Chunked { .. } => {
                // The last line of the trailer section may arrive without its CRLF.
                if self.state == State::Trailer && !self.line.is_empty() {
                    let line = String::from_utf8(std::mem::take(&mut self.line))
                        .map_err(|_| malformed_chunk("a trailer is not UTF-8"))?;
                    self.trailer_line(line.trim_end())?;
                }
                let Framing::Chunked { signed_trailer, decoded_length, .. } = &self.framing else {
                    return Ok(Vec::new());
                };
                if !matches!(self.state, State::Done | State::Trailer) {
                    return Err(incomplete("The aws-chunked body ended before its final chunk."));
                }
                if let Some(expected) = decoded_length {
                    if *expected != self.decoded {
                        return Err(incomplete(format!(
                            "You did not provide the number of bytes specified by the x-amz-decoded-content-length \
                             header ({expected}); the body decoded to {} bytes.",
                            self.decoded
                        )));
                    }
                }
                if let (true, Some(chain)) = (*signed_trailer, &self.chain) {
                    let provided = self
                        .trailer_signature
                        .as_ref()
                        .ok_or_else(|| signature_mismatch("x-amz-trailer-signature missing"))?;
                    chain
                        .verify_trailer(&self.trailers, provided)
                        .map_err(|_| signature_mismatch("trailer signature"))?;
                }
                Ok(self.trailers)
            }
        }
    }

    pub fn decoded(&self) -> u64 {
        self.decoded
    }
}

pub fn check_sha256(declared: &str, computed: &[u8; 32]) -> S3Result<()> {
    let computed = hex::encode(computed);
    if computed.eq_ignore_ascii_case(declared) {
        Ok(())
    } else {
        Err(S3Error::new(
            "XAmzContentSHA256Mismatch",
            400,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
        .with("ClientComputedContentSHA256", declared)
        .with("S3ComputedContentSHA256", computed))
    }
}

fn too_large(limit: u64) -> S3Error {
    S3Error::new("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size")
        .with("MaxSizeAllowed", limit.to_string())
}

fn read_error(e: &(dyn std::error::Error + 'static)) -> S3Error {
    incomplete(format!("The request body could not be read completely: {e}"))
}

/// Reads a small body (XML documents) into memory, decoding and checking it.
pub async fn read_small(body: ReqBody, framing: Framing, limit: usize) -> S3Result<Vec<u8>> {
    let mut decoder = Decoder::new(framing, true);
    let mut out = Vec::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| read_error(e.as_ref()))?;
        if let Ok(data) = frame.into_data() {
            decoder.feed(&data, &mut |d| {
                if out.len() + d.len() > limit {
                    return Err(too_large(limit as u64));
                }
                out.extend_from_slice(d);
                Ok(())
            })?;
        }
    }
    decoder.finish()?;
    Ok(out)
}

enum Item {
    Data(Bytes),
    Failed(String),
}

/// A staged upload and its trailing headers.
pub type Ingested = (Staged, Vec<(String, String)>);

/// Streams an upload into `staging` on a blocking thread (decoding, verifying chunk signatures,
/// hashing, writing), then fsyncs it. Returns the staged file and the trailing headers.
pub async fn ingest(body: ReqBody, framing: Framing, mut staging: Staging, limit: u64) -> S3Result<Ingested> {
    let declared_sha256 = match &framing {
        Framing::Plain { sha256 } => sha256.clone(),
        Framing::Chunked { .. } => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(CHANNEL_FRAMES);
    let worker = tokio::task::spawn_blocking(move || -> S3Result<Ingested> {
        let mut decoder = Decoder::new(framing, false);
        while let Some(item) = rx.blocking_recv() {
            match item {
                Item::Data(bytes) => decoder.feed(&bytes, &mut |d| {
                    if staging.size() + d.len() as u64 > limit {
                        return Err(too_large(limit));
                    }
                    staging.write(d).map_err(|e| S3Error::io("writing the upload", e))
                })?,
                Item::Failed(message) => return Err(incomplete(message)),
            }
        }
        let trailers = decoder.finish()?;
        let staged = staging.finish().map_err(|e| S3Error::io("writing the upload", e))?;
        Ok((staged, trailers))
    });
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let item = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => Item::Data(data),
                Err(_) => continue,
            },
            Err(e) => Item::Failed(format!("The request body could not be read completely: {e}")),
        };
        let failed = matches!(item, Item::Failed(_));
        // A closed channel means the worker stopped on an error, which it reports below.
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let (staged, trailers) = worker.await.map_err(|e| S3Error::internal(format!("upload worker failed: {e}")))??;
    if let (Some(declared), Some(computed)) = (declared_sha256, staged.sha256.as_ref()) {
        check_sha256(&declared, computed)?;
    }
    Ok((staged, trailers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sigv4::verify::signing_key;

    fn signing() -> SignatureChain {
        SignatureChain::new(
            signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        )
    }

    type Decoded = (Vec<u8>, Vec<(String, String)>);

    fn decode_all(framing: Framing, wire: &[u8], step: usize) -> S3Result<Decoded> {
        let mut d = Decoder::new(framing, true);
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            d.feed(piece, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })?;
        }
        Ok((out, d.finish()?))
    }

    /// The example from AWS's "Signature Calculations for the Authorization Header: Transferring
    /// Payload in Multiple Chunks" (65 KiB of 'a' in a 64 KiB and a 1 KiB chunk).
    #[test]
    fn aws_documented_chunk_signatures() {
        let data = vec![b'a'; 65 * 1024];
        let mut wire = Vec::new();
        let sigs = [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ];
        wire.extend(format!("10000;chunk-signature={}\r\n", sigs[0]).as_bytes());
        wire.extend(&data[..65536]);
        wire.extend(format!("\r\n400;chunk-signature={}\r\n", sigs[1]).as_bytes());
        wire.extend(&data[65536..]);
        wire.extend(format!("\r\n0;chunk-signature={}\r\n\r\n", sigs[2]).as_bytes());
        let framing = Framing::Chunked {
            signing: Some(signing()),
            signed_chunks: true,
            signed_trailer: false,
            decoded_length: Some(66560),
        };
        for step in [1, 7, 4096, wire.len()] {
            let (out, trailers) = decode_all(framing.clone(), &wire, step).unwrap();
            assert_eq!(out, data);
            assert!(trailers.is_empty());
        }
        let mut tampered = wire.clone();
        tampered[200] = b'b';
        let e = decode_all(framing.clone(), &tampered, 1000).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        let truncated = &wire[..wire.len() - 90];
        assert_eq!(decode_all(framing, truncated, 1000).unwrap_err().code, "IncompleteBody");
    }

    /// The same upload with a signed trailing CRC32C, from AWS's "Signature calculations for
    /// trailing headers (chunked uploads)".
    #[test]
    fn aws_documented_signed_trailer() {
        let data = vec![b'a'; 65 * 1024];
        let mut wire = Vec::new();
        wire.extend(b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n");
        wire.extend(&data[..65536]);
        wire.extend(b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n");
        wire.extend(&data[65536..]);
        wire.extend(b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");
        wire.extend(b"x-amz-checksum-crc32c:sOO8/Q==\r\n");
        wire.extend(
            b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n",
        );
        let framing = Framing::Chunked {
            signing: Some(SignatureChain::new(
                signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
                "20130524T000000Z",
                "20130524/us-east-1/s3/aws4_request",
                "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
            )),
            signed_chunks: true,
            signed_trailer: true,
            decoded_length: Some(66560),
        };
        for step in [1, 4096, wire.len()] {
            let (out, trailers) = decode_all(framing.clone(), &wire, step).unwrap();
            assert_eq!(out, data);
            assert_eq!(trailers, vec![("x-amz-checksum-crc32c".to_string(), "sOO8/Q==".to_string())]);
        }
        let tampered = String::from_utf8_lossy(&wire).replace("sOO8/Q==", "sOO8/Q=A").into_bytes();
        assert_eq!(decode_all(framing, &tampered, 4096).unwrap_err().code, "SignatureDoesNotMatch");
    }

    #[test]
    fn unsigned_trailer_form() {
        let wire = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        let framing =
            Framing::Chunked { signing: None, signed_chunks: false, signed_trailer: false, decoded_length: Some(11) };
        let (out, trailers) = decode_all(framing, wire, 3).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(trailers, vec![("x-amz-checksum-crc32".to_string(), "DUoRhQ==".to_string())]);
    }

    /// Found by the aws_chunked fuzz target: a line past the limit was refused when it arrived in
    /// several frames and read whole when it arrived in one, so the outcome depended on framing.
    #[test]
    fn the_line_limit_holds_whatever_the_framing() {
        let unsigned =
            Framing::Chunked { signing: None, signed_chunks: false, signed_trailer: false, decoded_length: None };
        let long_header = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(MAX_LINE_BYTES));
        let long_trailer = format!("5\r\nhello\r\n0\r\nx-amz-meta-a:{}\r\n\r\n", "x".repeat(MAX_LINE_BYTES));
        for wire in [long_header, long_trailer] {
            for step in [wire.len(), 1000, 1] {
                let e = decode_all(unsigned.clone(), wire.as_bytes(), step).unwrap_err();
                assert!(e.message.contains("too long"), "step {step}: {}", e.message);
            }
        }
        // A line of exactly the limit (CR included) is read in one frame as in many.
        let at_limit = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(MAX_LINE_BYTES - 3));
        for step in [at_limit.len(), 1] {
            assert_eq!(decode_all(unsigned.clone(), at_limit.as_bytes(), step).unwrap().0, b"hello");
        }
    }

    #[test]
    fn plain_body_hash_is_checked() {
        let framing = Framing::Plain { sha256: Some(hex::encode(Sha256::digest(b"abc"))) };
        assert_eq!(decode_all(framing.clone(), b"abc", 1).unwrap().0, b"abc");
        assert_eq!(decode_all(framing, b"abd", 1).unwrap_err().code, "XAmzContentSHA256Mismatch");
    }
}
