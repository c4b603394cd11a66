//! Listing operations: ListObjects, ListObjectsV2, ListObjectVersions, ListMultipartUploads.

use base64::Engine;
use http::Response;

use super::xml::{XmlWriter, S3_NAMESPACE};
use super::{iso_date, owner_id, quoted, Req};
use crate::kernel::response::Body;
use crate::kernel::sigv4::canonical::uri_encode;
use crate::services::s3::objects::list::ListRequest;
use crate::services::s3::objects::write::StoredChecksum;
use crate::services::s3::objects::{S3Error, S3Result, MAX_LIST_KEYS};
use crate::services::s3::tables::ObjectRow;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Encodes names for `encoding-type=url` (botocore decodes with unquote_plus).
struct Names {
    url: bool,
}

impl Names {
    fn of(req: &Req) -> S3Result<Names> {
        match req.query("encoding-type") {
            None => Ok(Names { url: false }),
            Some(v) if v.eq_ignore_ascii_case("url") => Ok(Names { url: true }),
            Some(v) => {
                Err(S3Error::invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", v))
            }
        }
    }

    fn show(&self, s: &str) -> String {
        if self.url {
            uri_encode(s.as_bytes(), true)
        } else {
            s.to_string()
        }
    }

    fn write_encoding(&self, w: &mut XmlWriter) {
        if self.url {
            w.elem("EncodingType", "url");
        }
    }
}

fn max_param(req: &Req, name: &str) -> S3Result<usize> {
    match req.query(name) {
        None => Ok(MAX_LIST_KEYS),
        Some(v) => v.trim().parse::<i64>().ok().filter(|n| *n >= 0).map(|n| n as usize).ok_or_else(|| {
            S3Error::invalid_argument(format!("Provided {name} not an integer or within integer range"), name, v)
        }),
    }
}

fn base_request(req: &Req, marker: Option<String>, max_param_name: &str) -> S3Result<ListRequest> {
    Ok(ListRequest {
        prefix: req.query("prefix").unwrap_or_default().to_string(),
        delimiter: req.query("delimiter").filter(|d| !d.is_empty()).map(str::to_string),
        max_keys: max_param(req, max_param_name)?,
        marker: marker.filter(|m| !m.is_empty()),
    })
}

fn write_owner(w: &mut XmlWriter, account: &str) {
    w.open("Owner").elem("ID", owner_id(account)).elem("DisplayName", account).close("Owner");
}

fn write_object(w: &mut XmlWriter, names: &Names, o: &ObjectRow, owner: Option<&str>) {
    w.open("Contents")
        .elem("Key", names.show(&o.key))
        .elem("LastModified", iso_date(o.last_modified))
        .elem("ETag", quoted(&o.etag));
    if let Some(c) = StoredChecksum::of_row(o) {
        w.elem("ChecksumAlgorithm", c.algorithm.name()).elem("ChecksumType", c.kind.as_str());
    }
    w.elem("Size", o.size.to_string());
    if let Some(account) = owner {
        write_owner(w, account);
    }
    w.elem("StorageClass", "STANDARD").close("Contents");
}

/// MaxKeys, Delimiter, EncodingType and IsTruncated, in the order ListObjects (v1) and
/// ListObjectVersions answer them.
fn write_page(w: &mut XmlWriter, names: &Names, list: &ListRequest, truncated: bool) {
    w.elem("MaxKeys", list.max_keys.to_string());
    if let Some(d) = &list.delimiter {
        w.elem("Delimiter", names.show(d));
    }
    names.write_encoding(w);
    w.elem("IsTruncated", truncated.to_string());
}

fn write_prefixes(w: &mut XmlWriter, names: &Names, prefixes: &[String]) {
    for p in prefixes {
        w.open("CommonPrefixes").elem("Prefix", names.show(p)).close("CommonPrefixes");
    }
}

pub async fn objects_v2(req: &mut Req) -> S3Result<Response<Body>> {
    let names = Names::of(req)?;
    let token = req.query("continuation-token").map(str::to_string);
    let start_after = req.query("start-after").map(str::to_string);
    let resume = match &token {
        Some(t) => Some(
            B64.decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("k:").map(str::to_string))
                .ok_or_else(|| {
                    S3Error::invalid_argument("The continuation token provided is incorrect", "continuation-token", t)
                })?,
        ),
        None => start_after.clone(),
    };
    let list = base_request(req, resume, "max-keys")?;
    let fetch_owner = req.query("fetch-owner").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let (bucket, listing) = req.objects().list_objects(&req.caller.account, req.bucket(), list.clone()).await?;
    let mut w = XmlWriter::new("ListBucketResult", Some(S3_NAMESPACE));
    w.elem("Name", &bucket.name).elem("Prefix", names.show(&list.prefix));
    if let Some(d) = &list.delimiter {
        w.elem("Delimiter", names.show(d));
    }
    w.elem("MaxKeys", list.max_keys.to_string());
    names.write_encoding(&mut w);
    w.elem("KeyCount", (listing.entries.len() + listing.common_prefixes.len()).to_string())
        .elem("IsTruncated", listing.truncated.to_string());
    w.elem_opt("ContinuationToken", token.as_deref());
    if listing.truncated {
        w.elem_opt("NextContinuationToken", listing.next_marker.as_ref().map(|m| B64.encode(format!("k:{m}"))));
    }
    w.elem_opt("StartAfter", start_after.as_deref().map(|s| names.show(s)));
    for o in &listing.entries {
        write_object(&mut w, &names, o, fetch_owner.then_some(req.caller.account.as_str()));
    }
    write_prefixes(&mut w, &names, &listing.common_prefixes);
    Ok(req.xml(w.finish("ListBucketResult")))
}

pub async fn objects_v1(req: &mut Req) -> S3Result<Response<Body>> {
    let names = Names::of(req)?;
    let marker = req.query("marker").map(str::to_string);
    let list = base_request(req, marker.clone(), "max-keys")?;
    let (bucket, listing) = req.objects().list_objects(&req.caller.account, req.bucket(), list.clone()).await?;
    let mut w = XmlWriter::new("ListBucketResult", Some(S3_NAMESPACE));
    w.elem("Name", &bucket.name)
        .elem("Prefix", names.show(&list.prefix))
        .elem("Marker", names.show(marker.as_deref().unwrap_or_default()));
    if listing.truncated && list.delimiter.is_some() {
        w.elem_opt("NextMarker", listing.next_marker.as_deref().map(|m| names.show(m)));
    }
    write_page(&mut w, &names, &list, listing.truncated);
    for o in &listing.entries {
        write_object(&mut w, &names, o, Some(&req.caller.account));
    }
    write_prefixes(&mut w, &names, &listing.common_prefixes);
    Ok(req.xml(w.finish("ListBucketResult")))
}

pub async fn versions(req: &mut Req) -> S3Result<Response<Body>> {
    let names = Names::of(req)?;
    let key_marker = req.query("key-marker").map(str::to_string);
    let version_marker = req.query("version-id-marker").map(str::to_string).filter(|v| !v.is_empty());
    if version_marker.is_some() && key_marker.as_deref().unwrap_or_default().is_empty() {
        return Err(S3Error::invalid_argument(
            "A version-id marker cannot be specified without a key marker.",
            "version-id-marker",
            version_marker.as_deref().unwrap_or_default(),
        ));
    }
    let list = base_request(req, key_marker.clone(), "max-keys")?;
    let (bucket, listing) =
        req.objects().list_versions(&req.caller.account, req.bucket(), list.clone(), version_marker.clone()).await?;
    let mut w = XmlWriter::new("ListVersionsResult", Some(S3_NAMESPACE));
    w.elem("Name", &bucket.name)
        .elem("Prefix", names.show(&list.prefix))
        .elem("KeyMarker", names.show(key_marker.as_deref().unwrap_or_default()))
        .elem("VersionIdMarker", version_marker.as_deref().unwrap_or_default());
    if listing.truncated {
        w.elem_opt("NextKeyMarker", listing.next_marker.as_deref().map(|m| names.show(m)));
        w.elem_opt("NextVersionIdMarker", listing.last_entry.as_ref().map(|o| o.version_id.as_str()));
    }
    write_page(&mut w, &names, &list, listing.truncated);
    for o in &listing.entries {
        if o.delete_marker {
            w.open("DeleteMarker");
            write_owner(&mut w, &req.caller.account);
            w.elem("Key", names.show(&o.key))
                .elem("VersionId", &o.version_id)
                .elem("IsLatest", o.is_latest.to_string())
                .elem("LastModified", iso_date(o.last_modified))
                .close("DeleteMarker");
        } else {
            w.open("Version")
                .elem("Key", names.show(&o.key))
                .elem("VersionId", &o.version_id)
                .elem("IsLatest", o.is_latest.to_string())
                .elem("LastModified", iso_date(o.last_modified))
                .elem("ETag", quoted(&o.etag))
                .elem("Size", o.size.to_string());
            if let Some(c) = StoredChecksum::of_row(o) {
                w.elem("ChecksumAlgorithm", c.algorithm.name()).elem("ChecksumType", c.kind.as_str());
            }
            write_owner(&mut w, &req.caller.account);
            w.elem("StorageClass", "STANDARD").close("Version");
        }
    }
    write_prefixes(&mut w, &names, &listing.common_prefixes);
    Ok(req.xml(w.finish("ListVersionsResult")))
}

pub async fn uploads(req: &mut Req) -> S3Result<Response<Body>> {
    let names = Names::of(req)?;
    let key_marker = req.query("key-marker").map(str::to_string);
    let id_marker = req.query("upload-id-marker").map(str::to_string).filter(|v| !v.is_empty());
    let list = base_request(req, key_marker.clone(), "max-uploads")?;
    let (bucket, listing) =
        req.objects().list_uploads(&req.caller.account, req.bucket(), list.clone(), id_marker.clone()).await?;
    let mut w = XmlWriter::new("ListMultipartUploadsResult", Some(S3_NAMESPACE));
    w.elem("Bucket", &bucket.name)
        .elem("KeyMarker", names.show(key_marker.as_deref().unwrap_or_default()))
        .elem("UploadIdMarker", id_marker.as_deref().unwrap_or_default());
    if listing.truncated {
        w.elem_opt("NextKeyMarker", listing.next_marker.as_deref().map(|m| names.show(m)));
        w.elem_opt("NextUploadIdMarker", listing.last_entry.as_ref().map(|u| u.upload_id.as_str()));
    }
    w.elem("Prefix", names.show(&list.prefix));
    if let Some(d) = &list.delimiter {
        w.elem("Delimiter", names.show(d));
    }
    w.elem("MaxUploads", list.max_keys.to_string());
    names.write_encoding(&mut w);
    w.elem("IsTruncated", listing.truncated.to_string());
    for u in &listing.entries {
        w.open("Upload").elem("Key", names.show(&u.key)).elem("UploadId", &u.upload_id);
        w.open("Initiator")
            .elem("ID", format!("arn:aws:iam::{}:root", req.caller.account))
            .elem("DisplayName", &req.caller.account)
            .close("Initiator");
        write_owner(&mut w, &req.caller.account);
        w.elem("StorageClass", "STANDARD").elem("Initiated", iso_date(u.initiated));
        w.elem_opt("ChecksumAlgorithm", u.checksum_algorithm.as_deref());
        w.elem_opt("ChecksumType", u.checksum_type.as_deref());
        w.close("Upload");
    }
    write_prefixes(&mut w, &names, &listing.common_prefixes);
    Ok(req.xml(w.finish("ListMultipartUploadsResult")))
}
