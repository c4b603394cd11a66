//! Multipart uploads: create, upload parts, list parts, complete (concatenating the parts'
//! files by streaming into a new file), abort.

use super::checksum::{self, Algorithm, ChecksumType};
use super::error::{S3Error, S3Result};
use super::names::new_upload_id;
use super::write::{insert_version, NewVersion, ObjectAttrs, StoredChecksum, Written};
use super::{now_ms, owned_bucket, Objects, Staged, MAX_PART_NUMBER, MIN_PART_BYTES};
use crate::kernel::store::Tx;
use crate::services::s3::tables::{PartRow, UploadRow};

/// A part as CompleteMultipartUpload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// Checksums the request gives for the part, by algorithm.
    pub checksums: Vec<(Algorithm, String)>,
}

/// The upload, if it exists and is for this bucket (owned by `account`) and key.
fn upload_in(
    tx: &Tx<'_>,
    account: &str,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> crate::kernel::error::Result<S3Result<UploadRow>> {
    s3_try!(owned_bucket(tx, account, bucket)?);
    Ok(match tx.s3_upload(upload_id)? {
        Some(u) if u.bucket == bucket && u.key == key => Ok(u),
        _ => Err(S3Error::no_such_upload(upload_id)),
    })
}

fn all_parts(tx: &Tx<'_>, upload_id: &str) -> crate::kernel::error::Result<Vec<PartRow>> {
    tx.s3_parts(upload_id, 0, MAX_PART_NUMBER as usize + 1)
}

fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

pub fn upload_checksum(u: &UploadRow) -> Option<(Algorithm, ChecksumType)> {
    let a = Algorithm::parse(u.checksum_algorithm.as_deref()?)?;
    let t = u.checksum_type.as_deref().and_then(ChecksumType::parse).unwrap_or(a.default_multipart_type());
    Some((a, t))
}

pub fn validate_part_number(n: &str) -> S3Result<u32> {
    match n.parse::<u32>() {
        Ok(p) if (1..=MAX_PART_NUMBER).contains(&p) => Ok(p),
        _ => Err(S3Error::invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive",
            "partNumber",
            n,
        )),
    }
}

impl Objects {
    pub async fn create_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        attrs: ObjectAttrs,
        checksum: Option<(Algorithm, Option<ChecksumType>)>,
    ) -> S3Result<UploadRow> {
        let checksum = match checksum {
            None => None,
            Some((a, t)) => {
                let t = t.unwrap_or(a.default_multipart_type());
                if !a.supports(t) {
                    return Err(S3Error::invalid_request(format!(
                        "The {} checksum type cannot be used with the {} checksum algorithm.",
                        t.as_str().to_ascii_lowercase(),
                        a.name().to_ascii_lowercase()
                    )));
                }
                Some((a, t))
            }
        };
        let row = UploadRow {
            upload_id: new_upload_id(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            initiated: now_ms(),
            headers: attrs.headers,
            metadata: attrs.metadata,
            checksum_algorithm: checksum.map(|(a, _)| a.name().to_string()),
            checksum_type: checksum.map(|(_, t)| t.as_str().to_string()),
        };
        let account = account.to_string();
        self.store()
            .write(move |tx| {
                s3_try!(owned_bucket(tx, &account, &row.bucket)?);
                tx.s3_insert_upload(&row)?;
                Ok(Ok(row))
            })
            .await?
    }

    /// The upload a part or listing addresses (NoSuchBucket / AccessDenied / NoSuchUpload).
    pub async fn upload(&self, account: &str, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRow> {
        let (a, b, k, u) = (account.to_string(), bucket.to_string(), key.to_string(), upload_id.to_string());
        self.store().read(move |tx| upload_in(tx, &a, &b, &k, &u)).await?
    }

    /// Stores a part (bytes staged and checked), replacing an earlier one with the same number.
    pub async fn put_part(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        staged: Staged,
    ) -> S3Result<PartRow> {
        let part = PartRow {
            upload_id: upload_id.to_string(),
            part_number,
            size: staged.size,
            etag: hex::encode(staged.md5),
            checksum_value: staged.checksum.as_ref().map(|(_, c)| checksum::base64(c)),
            file: String::new(),
            last_modified: now_ms(),
        };
        let file = self.blocking(move |fs| fs.commit(staged)).await?;
        let part = PartRow { file: file.clone(), ..part };
        let (a, b, k) = (account.to_string(), bucket.to_string(), key.to_string());
        let result = self
            .store()
            .write(move |tx| {
                s3_try!(upload_in(tx, &a, &b, &k, &part.upload_id)?);
                let replaced = tx.s3_put_part(&part)?;
                Ok(Ok((part, replaced.into_iter().collect())))
            })
            .await;
        self.settle(result, file).await
    }

    /// UploadPartCopy: a part made of (a byte range of) an existing object.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_part(
        &self,
        account: &str,
        source: &super::write::CopySource,
        range: Option<(u64, u64)>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> S3Result<(PartRow, crate::services::s3::tables::ObjectRow)> {
        let upload = self.upload(account, bucket, key, upload_id).await?;
        let src = self
            .find(account, &source.bucket, &source.key, source.version_id.as_deref())
            .await
            .map_err(|e| S3Error { headers: Vec::new(), ..e })?;
        let size = src.object.size;
        let (offset, len) = match range {
            None => (0, size),
            Some((start, end)) if start <= end && end < size => (start, end - start + 1),
            Some(_) => {
                return Err(S3Error::invalid_argument(
                    format!("Range specified is not valid for source object of size: {size}"),
                    "x-amz-copy-source-range",
                    &format!("bytes={}-{}", range.map_or(0, |r| r.0), range.map_or(0, |r| r.1)),
                ))
            }
        };
        if len > super::MAX_PUT_BYTES {
            return Err(S3Error::new("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size"));
        }
        let algorithm = upload_checksum(&upload).map(|(a, _)| a);
        let file = src.object.file.clone().unwrap_or_default();
        let staged = self
            .blocking(move |fs| {
                let mut staging = fs.staging(algorithm, false)?;
                fs.append_to(&mut staging, &file, offset, len)?;
                staging.finish()
            })
            .await
            .map_err(|e| if e.message.contains("No such file") { S3Error::no_such_key(&source.key) } else { e })?;
        let part = self.put_part(account, bucket, key, upload_id, part_number, staged).await?;
        Ok((part, src.object))
    }

    /// Parts after `after_part`, at most `max`; `true` when more follow.
    pub async fn list_parts(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after_part: u32,
        max: usize,
    ) -> S3Result<(UploadRow, Vec<PartRow>, bool)> {
        let (a, b, k, u) = (account.to_string(), bucket.to_string(), key.to_string(), upload_id.to_string());
        self.store()
            .read(move |tx| {
                let upload = s3_try!(upload_in(tx, &a, &b, &k, &u)?);
                let mut parts = tx.s3_parts(&u, after_part, max + 1)?;
                let truncated = parts.len() > max;
                parts.truncate(max);
                Ok(Ok((upload, parts, truncated)))
            })
            .await?
    }

    pub async fn abort_upload(&self, account: &str, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let (a, b, k, u) = (account.to_string(), bucket.to_string(), key.to_string(), upload_id.to_string());
        let files = self
            .store()
            .write(move |tx| {
                s3_try!(upload_in(tx, &a, &b, &k, &u)?);
                Ok(Ok(tx.s3_delete_upload(&u)?))
            })
            .await??;
        self.remove_files(files).await;
        Ok(())
    }

    /// CompleteMultipartUpload: checks the list against the stored parts, writes the object by
    /// concatenating the parts' files, and commits it as a new version; the upload's parts go.
    /// `full_object` is a whole-object checksum the request declares (checked when the upload's
    /// checksum type is FULL_OBJECT).
    pub async fn complete_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        requested: Vec<CompletedPart>,
        full_object: Option<(Algorithm, String)>,
    ) -> S3Result<Written> {
        if requested.is_empty() {
            return Err(S3Error::malformed_xml());
        }
        let (upload, stored) = {
            let (a, b, k, u) = (account.to_string(), bucket.to_string(), key.to_string(), upload_id.to_string());
            self.store()
                .read(move |tx| {
                    let upload = s3_try!(upload_in(tx, &a, &b, &k, &u)?);
                    Ok(Ok((upload, all_parts(tx, &u)?)))
                })
                .await??
        };
        let chosen = choose_parts(upload_id, &upload, &requested, &stored)?;
        let mode = upload_checksum(&upload);

        let etag = checksum::multipart_etag(
            &chosen
                .iter()
                .map(|p| hex::decode(&p.etag).ok().and_then(|b| <[u8; 16]>::try_from(b).ok()).unwrap_or_default())
                .collect::<Vec<_>>(),
        );
        let part_sizes: Vec<u64> = chosen.iter().map(|p| p.size).collect();
        // The whole-object checksum: the upload's when FULL_OBJECT, CRC64NVME when it has none.
        let full_algorithm = match mode {
            Some((a, ChecksumType::FullObject)) => Some(a),
            Some((_, ChecksumType::Composite)) => None,
            None => Some(Algorithm::Crc64Nvme),
        };
        let sources: Vec<(String, u64)> = chosen.iter().map(|p| (p.file.clone(), p.size)).collect();
        let staged = self
            .blocking(move |fs| {
                let mut staging = fs.staging(full_algorithm, false)?;
                for (file, size) in &sources {
                    fs.append_to(&mut staging, file, 0, *size)?;
                }
                staging.finish()
            })
            .await?;
        let size = staged.size;
        let stored_checksum = match (mode, &staged.checksum) {
            (Some((a, ChecksumType::Composite)), _) => {
                let parts: Option<Vec<Vec<u8>>> =
                    chosen.iter().map(|p| p.checksum_value.as_deref().and_then(checksum::decode_base64)).collect();
                parts.map(|parts| StoredChecksum {
                    algorithm: a,
                    value: checksum::composite(a, &parts),
                    kind: ChecksumType::Composite,
                })
            }
            (_, Some((a, bytes))) => {
                if let Some((declared_alg, declared)) = &full_object {
                    if declared_alg == a && checksum::decode_base64(declared).as_deref() != Some(bytes.as_slice()) {
                        return Err(checksum::mismatch(*a));
                    }
                }
                Some(StoredChecksum { algorithm: *a, value: checksum::base64(bytes), kind: ChecksumType::FullObject })
            }
            _ => None,
        };
        let file = self.blocking(move |fs| fs.commit(staged)).await?;

        let (a, b, k, u) = (account.to_string(), bucket.to_string(), key.to_string(), upload_id.to_string());
        let attrs = ObjectAttrs { headers: upload.headers.clone(), metadata: upload.metadata.clone() };
        let new_file = file.clone();
        let result = self
            .store()
            .write(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &a, &b)?);
                s3_try!(upload_in(tx, &a, &b, &k, &u)?);
                // A part re-uploaded while we were copying: the caller must complete again.
                let now = all_parts(tx, &u)?;
                if chosen.iter().any(|c| !now.iter().any(|p| p.part_number == c.part_number && p.file == c.file)) {
                    return Ok(Err(S3Error::invalid_part(&u, chosen[0].part_number, &chosen[0].etag)));
                }
                let (object, mut replaced) = insert_version(
                    tx,
                    &bucket,
                    &k,
                    Some(NewVersion {
                        size,
                        etag,
                        file: new_file,
                        attrs,
                        checksum: stored_checksum,
                        part_sizes: Some(part_sizes),
                    }),
                )?;
                replaced.extend(tx.s3_delete_upload(&u)?);
                Ok(Ok((Written { bucket, object }, replaced)))
            })
            .await;
        self.settle(result, file).await
    }
}

impl S3Error {
    pub fn invalid_part(upload_id: &str, part_number: u32, etag: &str) -> Self {
        S3Error::new(
            "InvalidPart",
            400,
            "One or more of the specified parts could not be found.  The part may not have been uploaded, or the \
             specified entity tag may not match the part's entity tag.",
        )
        .with("UploadId", upload_id)
        .with("PartNumber", part_number.to_string())
        .with("ETag", etag)
    }
}

/// The stored parts the request names, after S3's checks: ascending numbers, existing parts with
/// matching ETags (and checksums, where given), every part but the last at least 5 MiB.
fn choose_parts(
    upload_id: &str,
    upload: &UploadRow,
    requested: &[CompletedPart],
    stored: &[PartRow],
) -> S3Result<Vec<PartRow>> {
    if requested.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
        return Err(S3Error::new(
            "InvalidPartOrder",
            400,
            "The list of parts was not in ascending order. Parts must be ordered by part number.",
        )
        .with("UploadId", upload_id));
    }
    let mode = upload_checksum(upload);
    let mut chosen = Vec::with_capacity(requested.len());
    for r in requested {
        let part = stored
            .iter()
            .find(|p| p.part_number == r.part_number && p.etag == normalize_etag(&r.etag))
            .ok_or_else(|| S3Error::invalid_part(upload_id, r.part_number, &r.etag))?;
        for (a, value) in &r.checksums {
            match (mode, &part.checksum_value) {
                (Some((upload_alg, _)), Some(stored)) if upload_alg == *a && stored != value.trim() => {
                    return Err(S3Error::invalid_part(upload_id, r.part_number, &r.etag));
                }
                _ => {}
            }
        }
        chosen.push(part.clone());
    }
    if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size < MIN_PART_BYTES) {
        return Err(S3Error::new(
            "EntityTooSmall",
            400,
            "Your proposed upload is smaller than the minimum allowed object size.",
        )
        .with("ProposedSize", small.size.to_string())
        .with("MinSizeAllowed", MIN_PART_BYTES.to_string())
        .with("PartNumber", small.part_number.to_string())
        .with("ETag", format!("\"{}\"", small.etag)));
    }
    Ok(chosen)
}
