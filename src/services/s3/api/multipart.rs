//! Multipart upload operations: CreateMultipartUpload, UploadPart, UploadPartCopy, ListParts,
//! CompleteMultipartUpload, AbortMultipartUpload.

use http::Response;

use super::object::{attrs_from, check_size_limit, copy_source, Integrity};
use super::xml::{self, XmlWriter, S3_NAMESPACE};
use super::{algorithm_header, check_small_body, iso_date, owner_id, quoted, set_header, Req};
use crate::kernel::response::Body;
use crate::services::s3::objects::checksum::{self, ChecksumType};
use crate::services::s3::objects::multipart::{upload_checksum, validate_part_number, CompletedPart};
use crate::services::s3::objects::write::StoredChecksum;
use crate::services::s3::objects::{S3Error, S3Result, MAX_LIST_KEYS, MAX_PUT_BYTES};

fn upload_id(req: &Req) -> String {
    req.query("uploadId").unwrap_or_default().to_string()
}

pub async fn create(req: &mut Req) -> S3Result<Response<Body>> {
    let algorithm = algorithm_header(req, "x-amz-checksum-algorithm")?;
    let kind = match req.header("x-amz-checksum-type") {
        None => None,
        Some(v) => Some(
            ChecksumType::parse(v)
                .ok_or_else(|| S3Error::invalid_argument("Invalid checksum type", "x-amz-checksum-type", v))?,
        ),
    };
    if kind.is_some() && algorithm.is_none() {
        return Err(S3Error::invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
        ));
    }
    let attrs = attrs_from(req);
    let _ = req.read_body().await?;
    let upload = req
        .objects()
        .create_upload(&req.caller.account, req.bucket(), req.key(), attrs, algorithm.map(|a| (a, kind)))
        .await?;
    let mut w = XmlWriter::new("InitiateMultipartUploadResult", Some(S3_NAMESPACE));
    w.elem("Bucket", &upload.bucket).elem("Key", &upload.key).elem("UploadId", &upload.upload_id);
    let mut resp = req.xml(w.finish("InitiateMultipartUploadResult"));
    if let Some((a, t)) = upload_checksum(&upload) {
        set_header(&mut resp, "x-amz-checksum-algorithm", a.name());
        set_header(&mut resp, "x-amz-checksum-type", t.as_str());
    }
    set_header(&mut resp, "x-amz-server-side-encryption", "AES256");
    Ok(resp)
}

pub async fn upload_part(req: &mut Req) -> S3Result<Response<Body>> {
    let part_number = validate_part_number(req.query("partNumber").unwrap_or_default())?;
    let id = upload_id(req);
    check_size_limit(req)?;
    let upload = req.objects().upload(&req.caller.account, req.bucket(), req.key(), &id).await?;
    let required = upload_checksum(&upload).map(|(a, _)| a);
    let integrity = Integrity::of(req, required, None)?;
    let sha256 = matches!(req.framing, super::payload::Framing::Plain { sha256: Some(_) });
    let staging = req.objects().staging(integrity.algorithm, sha256)?;
    let (staged, trailers) = req.ingest(staging, MAX_PUT_BYTES).await?;
    integrity.check(&staged, &trailers)?;
    let algorithm = staged.checksum.as_ref().map(|(a, _)| *a);
    let part = req.objects().put_part(&req.caller.account, req.bucket(), req.key(), &id, part_number, staged).await?;
    let mut resp = req.empty(200);
    set_header(&mut resp, "etag", &quoted(&part.etag));
    set_header(&mut resp, "x-amz-server-side-encryption", "AES256");
    if let (Some(a), Some(v)) = (algorithm, &part.checksum_value) {
        set_header(&mut resp, a.header(), v);
    }
    Ok(resp)
}

/// `x-amz-copy-source-range: bytes=first-last`
fn copy_range(req: &Req) -> S3Result<Option<(u64, u64)>> {
    let Some(v) = req.header("x-amz-copy-source-range") else { return Ok(None) };
    let invalid = || {
        S3Error::invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the \
             zero-based offsets of the first and last bytes to copy",
            "x-amz-copy-source-range",
            v,
        )
    };
    let (a, b) = v.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(invalid)?;
    let a = a.trim().parse::<u64>().map_err(|_| invalid())?;
    let b = b.trim().parse::<u64>().map_err(|_| invalid())?;
    Ok(Some((a, b)))
}

pub async fn upload_part_copy(req: &mut Req) -> S3Result<Response<Body>> {
    let part_number = validate_part_number(req.query("partNumber").unwrap_or_default())?;
    let id = upload_id(req);
    let source = copy_source(req)?;
    let range = copy_range(req)?;
    let _ = req.read_body().await?;
    let (part, source_row) =
        req.objects().copy_part(&req.caller.account, &source, range, req.bucket(), req.key(), &id, part_number).await?;
    let upload = req.objects().upload(&req.caller.account, req.bucket(), req.key(), &id).await?;
    let mut w = XmlWriter::new("CopyPartResult", Some(S3_NAMESPACE));
    w.elem("ETag", quoted(&part.etag)).elem("LastModified", iso_date(part.last_modified));
    if let (Some((a, _)), Some(v)) = (upload_checksum(&upload), &part.checksum_value) {
        w.elem(a.xml_element(), v);
    }
    let mut resp = req.xml(w.finish("CopyPartResult"));
    if source_row.version_id != crate::services::s3::objects::names::NULL_VERSION {
        set_header(&mut resp, "x-amz-copy-source-version-id", &source_row.version_id);
    }
    Ok(resp)
}

pub async fn list_parts(req: &mut Req) -> S3Result<Response<Body>> {
    let id = upload_id(req);
    let max = match req.query("max-parts") {
        None => MAX_LIST_KEYS,
        Some(v) => v.trim().parse::<usize>().map_err(|_| {
            S3Error::invalid_argument("Provided max-parts not an integer or within integer range", "max-parts", v)
        })?,
    }
    .min(MAX_LIST_KEYS);
    let marker = match req.query("part-number-marker") {
        None | Some("") => 0,
        Some(v) => v.trim().parse::<u32>().map_err(|_| {
            S3Error::invalid_argument(
                "Provided part-number-marker not an integer or within integer range",
                "part-number-marker",
                v,
            )
        })?,
    };
    let (upload, parts, truncated) =
        req.objects().list_parts(&req.caller.account, req.bucket(), req.key(), &id, marker, max).await?;
    let mode = upload_checksum(&upload);
    let mut w = XmlWriter::new("ListPartsResult", Some(S3_NAMESPACE));
    w.elem("Bucket", &upload.bucket).elem("Key", &upload.key).elem("UploadId", &upload.upload_id);
    w.elem("PartNumberMarker", marker.to_string());
    if let Some(last) = parts.last() {
        w.elem("NextPartNumberMarker", last.part_number.to_string());
    }
    w.elem("MaxParts", max.to_string()).elem("IsTruncated", truncated.to_string());
    for p in &parts {
        w.open("Part")
            .elem("PartNumber", p.part_number.to_string())
            .elem("LastModified", iso_date(p.last_modified))
            .elem("ETag", quoted(&p.etag))
            .elem("Size", p.size.to_string());
        if let (Some((a, _)), Some(v)) = (mode, &p.checksum_value) {
            w.elem(a.xml_element(), v);
        }
        w.close("Part");
    }
    w.open("Initiator")
        .elem("ID", format!("arn:aws:iam::{}:root", req.caller.account))
        .elem("DisplayName", &req.caller.account)
        .close("Initiator");
    w.open("Owner").elem("ID", owner_id(&req.caller.account)).elem("DisplayName", &req.caller.account).close("Owner");
    w.elem("StorageClass", "STANDARD");
    if let Some((a, t)) = mode {
        w.elem("ChecksumAlgorithm", a.name()).elem("ChecksumType", t.as_str());
    }
    Ok(req.xml(w.finish("ListPartsResult")))
}

pub async fn complete(req: &mut Req) -> S3Result<Response<Body>> {
    let id = upload_id(req);
    req.objects().upload(&req.caller.account, req.bucket(), req.key(), &id).await?;
    let body = req.read_body().await?;
    // x-amz-checksum-* headers of this request declare the whole object's checksum, not the body's.
    check_small_body(req, &body, false, true)?;
    let doc = xml::parse(&body).ok_or_else(S3Error::malformed_xml)?;
    if doc.name != "CompleteMultipartUpload" {
        return Err(S3Error::malformed_xml());
    }
    let mut parts = Vec::new();
    for p in doc.children("Part") {
        let number = p.text_of("PartNumber").ok_or_else(S3Error::malformed_xml)?;
        let part_number = number.trim().parse::<u32>().map_err(|_| S3Error::malformed_xml())?;
        let etag = p.text_of("ETag").ok_or_else(S3Error::malformed_xml)?.to_string();
        let checksums = checksum::ALL
            .into_iter()
            .filter_map(|a| p.text_of(a.xml_element()).map(|v| (a, v.trim().to_string())))
            .collect();
        parts.push(CompletedPart { part_number, etag, checksums });
    }
    let mut full_object = None;
    for a in checksum::ALL {
        if let Some(v) = req.header(a.header()) {
            full_object = Some((a, v.trim().to_string()));
        }
    }
    let expected_size = match req.header("x-amz-mp-object-size") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| S3Error::invalid_argument("Invalid x-amz-mp-object-size", "x-amz-mp-object-size", v))?,
        ),
    };
    let written =
        req.objects().complete_upload(&req.caller.account, req.bucket(), req.key(), &id, parts, full_object).await?;
    if let Some(n) = expected_size.filter(|n| *n != written.object.size) {
        tracing::warn!(declared = n, actual = written.object.size, "x-amz-mp-object-size does not match the object");
    }
    let mut w = XmlWriter::new("CompleteMultipartUploadResult", Some(S3_NAMESPACE));
    w.elem("Location", format!("http://{}/{}/{}", req.host, written.bucket.name, written.object.key))
        .elem("Bucket", &written.bucket.name)
        .elem("Key", &written.object.key)
        .elem("ETag", quoted(&written.object.etag));
    if let Some(c) = StoredChecksum::of_row(&written.object) {
        w.elem(c.algorithm.xml_element(), &c.value).elem("ChecksumType", c.kind.as_str());
    }
    let mut resp = req.xml(w.finish("CompleteMultipartUploadResult"));
    if written.bucket.versioning.is_some() {
        set_header(&mut resp, "x-amz-version-id", &written.object.version_id);
    }
    set_header(&mut resp, "x-amz-server-side-encryption", "AES256");
    Ok(resp)
}

pub async fn abort(req: &mut Req) -> S3Result<Response<Body>> {
    let id = upload_id(req);
    req.objects().abort_upload(&req.caller.account, req.bucket(), req.key(), &id).await?;
    Ok(req.empty(204))
}
