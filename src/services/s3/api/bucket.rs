//! Bucket operations: CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation,
//! Put/GetBucketVersioning.

use http::Response;

use super::xml::{self, XmlWriter, S3_NAMESPACE};
use super::{check_small_body, iso_date, owner_id, set_header, Req};
use crate::kernel::response::Body;
use crate::services::s3::objects::buckets::DEFAULT_BUCKET_REGION;
use crate::services::s3::objects::{S3Error, S3Result};

pub async fn create(req: &mut Req) -> S3Result<Response<Body>> {
    let body = req.read_body().await?;
    check_small_body(req, &body, false, false)?;
    let constraint = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let doc = xml::parse(&body).ok_or_else(S3Error::malformed_xml)?;
        if doc.name != "CreateBucketConfiguration" {
            return Err(S3Error::malformed_xml());
        }
        doc.text_of("LocationConstraint").map(|s| s.trim().to_string())
    };
    let bucket = req
        .objects()
        .create_bucket(&req.caller.account, &req.caller.region, req.bucket(), constraint.as_deref())
        .await?;
    let mut resp = req.empty(200);
    set_header(&mut resp, "location", &format!("/{}", bucket.name));
    Ok(resp)
}

pub async fn head(req: &mut Req) -> S3Result<Response<Body>> {
    let bucket = req.objects().bucket(&req.caller.account, req.bucket()).await?;
    let mut resp = req.empty(200);
    set_header(&mut resp, "x-amz-bucket-region", &bucket.region);
    set_header(&mut resp, "x-amz-access-point-alias", "false");
    Ok(resp)
}

pub async fn delete(req: &mut Req) -> S3Result<Response<Body>> {
    req.objects().delete_bucket(&req.caller.account, req.bucket()).await?;
    Ok(req.empty(204))
}

pub async fn list_buckets(req: &mut Req) -> S3Result<Response<Body>> {
    let prefix = req.query("prefix").unwrap_or_default().to_string();
    let region = req.query("bucket-region").map(str::to_string);
    let after = req.query("continuation-token").map(str::to_string);
    let max = match req.query("max-buckets") {
        None => usize::MAX,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| S3Error::invalid_argument("Invalid max-buckets value", "max-buckets", v))?,
    };
    let all = req.objects().list_buckets(&req.caller.account).await?;
    let mut selected: Vec<_> = all
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .filter(|b| region.as_ref().is_none_or(|r| &b.region == r))
        .filter(|b| after.as_ref().is_none_or(|a| &b.name > a))
        .collect();
    let truncated = selected.len() > max;
    selected.truncate(max);
    let mut w = XmlWriter::new("ListAllMyBucketsResult", Some(S3_NAMESPACE));
    w.open("Owner").elem("ID", owner_id(&req.caller.account)).elem("DisplayName", &req.caller.account).close("Owner");
    w.open("Buckets");
    for b in &selected {
        w.open("Bucket")
            .elem("Name", &b.name)
            .elem("CreationDate", iso_date(b.created_at))
            .elem("BucketRegion", &b.region)
            .close("Bucket");
    }
    w.close("Buckets");
    if truncated {
        w.elem_opt("ContinuationToken", selected.last().map(|b| b.name.as_str()));
    }
    if !prefix.is_empty() {
        w.elem("Prefix", &prefix);
    }
    Ok(req.xml(w.finish("ListAllMyBucketsResult")))
}

pub async fn location(req: &mut Req) -> S3Result<Response<Body>> {
    let bucket = req.objects().bucket(&req.caller.account, req.bucket()).await?;
    // The region is the element's text; us-east-1 is an empty element.
    let mut w = XmlWriter::new("LocationConstraint", Some(S3_NAMESPACE));
    if bucket.region != DEFAULT_BUCKET_REGION {
        w.text(&bucket.region);
    }
    Ok(req.xml(w.finish("LocationConstraint")))
}

pub async fn get_versioning(req: &mut Req) -> S3Result<Response<Body>> {
    let bucket = req.objects().bucket(&req.caller.account, req.bucket()).await?;
    let mut w = XmlWriter::new("VersioningConfiguration", Some(S3_NAMESPACE));
    w.elem_opt("Status", bucket.versioning.as_deref());
    Ok(req.xml(w.finish("VersioningConfiguration")))
}

pub async fn put_versioning(req: &mut Req) -> S3Result<Response<Body>> {
    req.objects().bucket(&req.caller.account, req.bucket()).await?;
    let body = req.read_body().await?;
    check_small_body(req, &body, false, false)?;
    let doc = xml::parse(&body).ok_or_else(S3Error::malformed_xml)?;
    if doc.name != "VersioningConfiguration" {
        return Err(S3Error::malformed_xml());
    }
    if let Some(mfa) = doc.text_of("MfaDelete").filter(|m| *m == "Enabled") {
        return Err(S3Error::not_implemented(format!("MfaDelete {mfa} is not implemented.")));
    }
    let status = doc.text_of("Status").ok_or_else(S3Error::malformed_xml)?.trim().to_string();
    req.objects().set_versioning(&req.caller.account, req.bucket(), &status).await?;
    Ok(req.empty(200))
}
