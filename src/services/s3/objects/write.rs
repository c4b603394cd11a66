//! Writing object versions: PutObject, CopyObject, and the version bookkeeping that
//! CompleteMultipartUpload shares (versioned buckets keep every version; otherwise the `null`
//! version is replaced).

use std::collections::BTreeMap;

use super::buckets::VERSIONING_ENABLED;
use super::checksum::{self, Algorithm, ChecksumType};
use super::error::{S3Error, S3Result};
use super::names::{new_version_id, NULL_VERSION};
use super::{now_ms, owned_bucket, Objects, Staged, Staging};
use crate::kernel::store::Tx;
use crate::services::s3::tables::{BucketRow, ObjectRow};

/// What a writer says about an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttrs {
    /// Content headers kept with the object (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// User metadata (names without `x-amz-meta-`).
    pub metadata: BTreeMap<String, String>,
}

/// A checksum as stored with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChecksum {
    pub algorithm: Algorithm,
    /// Base64, with `-<parts>` for a composite checksum.
    pub value: String,
    pub kind: ChecksumType,
}

impl StoredChecksum {
    pub fn of_row(row: &ObjectRow) -> Option<StoredChecksum> {
        Some(StoredChecksum {
            algorithm: Algorithm::parse(row.checksum_algorithm.as_deref()?)?,
            value: row.checksum_value.clone()?,
            kind: row.checksum_type.as_deref().and_then(ChecksumType::parse).unwrap_or(ChecksumType::FullObject),
        })
    }
}

/// A version to add: everything but its identity, which the bucket's versioning decides.
pub(crate) struct NewVersion {
    pub size: u64,
    pub etag: String,
    pub file: String,
    pub attrs: ObjectAttrs,
    pub checksum: Option<StoredChecksum>,
    pub part_sizes: Option<Vec<u64>>,
}

/// Adds a version (or delete marker when `v` is `None`) as the latest of `key`. Returns it and the
/// files of versions it replaced (the `null` version, unless versioning is enabled).
pub(crate) fn insert_version(
    tx: &Tx<'_>,
    bucket: &BucketRow,
    key: &str,
    v: Option<NewVersion>,
) -> crate::kernel::error::Result<(ObjectRow, Vec<String>)> {
    let mut replaced = Vec::new();
    let version_id = if bucket.versioning.as_deref() == Some(VERSIONING_ENABLED) {
        new_version_id()
    } else {
        if let Some(old) = tx.s3_version(&bucket.name, key, NULL_VERSION)? {
            tx.s3_delete_version(&old)?;
            replaced.extend(old.file);
        }
        NULL_VERSION.to_string()
    };
    let row = match v {
        Some(v) => ObjectRow {
            seq: 0,
            bucket: bucket.name.clone(),
            key: key.to_string(),
            version_id,
            is_latest: true,
            delete_marker: false,
            size: v.size,
            etag: v.etag,
            last_modified: now_ms(),
            file: Some(v.file),
            headers: v.attrs.headers,
            metadata: v.attrs.metadata,
            checksum_algorithm: v.checksum.as_ref().map(|c| c.algorithm.name().to_string()),
            checksum_value: v.checksum.as_ref().map(|c| c.value.clone()),
            checksum_type: v.checksum.as_ref().map(|c| c.kind.as_str().to_string()),
            part_sizes: v.part_sizes,
        },
        None => ObjectRow {
            seq: 0,
            bucket: bucket.name.clone(),
            key: key.to_string(),
            version_id,
            is_latest: true,
            delete_marker: true,
            size: 0,
            etag: String::new(),
            last_modified: now_ms(),
            file: None,
            headers: BTreeMap::new(),
            metadata: BTreeMap::new(),
            checksum_algorithm: None,
            checksum_value: None,
            checksum_type: None,
            part_sizes: None,
        },
    };
    Ok((tx.s3_insert_latest(&row)?, replaced))
}

/// Where a copy reads from.
#[derive(Debug, Clone)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Written {
    pub bucket: BucketRow,
    pub object: ObjectRow,
}

impl Objects {
    /// A staging file for new bytes, hashing `checksum` (and SHA-256 when `sha256`).
    pub fn staging(&self, checksum: Option<Algorithm>, sha256: bool) -> S3Result<Staging> {
        self.files().staging(checksum, sha256).map_err(|e| S3Error::io("creating a staging file", e))
    }

    /// Makes staged bytes durable under a stored name, then commits the version that uses them.
    pub(crate) async fn commit_version(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        file: String,
        make: impl FnOnce(String) -> NewVersion + Send + 'static,
    ) -> S3Result<Written> {
        let (account, bucket, key) = (account.to_string(), bucket.to_string(), key.to_string());
        let written_file = file.clone();
        let result = self
            .store()
            .write(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &account, &bucket)?);
                let (object, replaced) = insert_version(tx, &bucket, &key, Some(make(file)))?;
                Ok(Ok((Written { bucket, object }, replaced)))
            })
            .await;
        self.settle(result, written_file).await
    }

    /// PutObject with bytes already staged and checked. The stored checksum is the staged one
    /// (full object).
    pub async fn put_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        staged: Staged,
        attrs: ObjectAttrs,
    ) -> S3Result<Written> {
        let size = staged.size;
        let etag = hex::encode(staged.md5);
        let checksum = staged.checksum.as_ref().map(|(a, bytes)| StoredChecksum {
            algorithm: *a,
            value: checksum::base64(bytes),
            kind: ChecksumType::FullObject,
        });
        let file = self.blocking(move |fs| fs.commit(staged)).await?;
        self.commit_version(account, bucket, key, file, move |file| NewVersion {
            size,
            etag,
            file,
            attrs,
            checksum,
            part_sizes: None,
        })
        .await
    }

    /// CopyObject. `attrs` `None` copies the source's metadata (directive COPY); `checksum`
    /// asks for the copy's checksum in another algorithm.
    pub async fn copy_object(
        &self,
        account: &str,
        source: &CopySource,
        bucket: &str,
        key: &str,
        attrs: Option<ObjectAttrs>,
        checksum: Option<Algorithm>,
    ) -> S3Result<(Written, ObjectRow)> {
        let src = self.find(account, &source.bucket, &source.key, source.version_id.as_deref()).await.map_err(|e| {
            // A missing source is reported without the headers of a delete marker.
            S3Error { headers: Vec::new(), ..e }
        })?;
        self.bucket(account, bucket).await?;
        let same_object =
            source.bucket == bucket && source.key == key && (source.version_id.is_none() || src.object.is_latest);
        if same_object && attrs.is_none() && checksum.is_none() {
            return Err(S3Error::invalid_request(
                "This copy request is illegal because it is trying to copy an object to itself without changing the \
                 object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let source_row = src.object.clone();
        let old = StoredChecksum::of_row(&source_row);
        let want = checksum.or(old.as_ref().map(|c| c.algorithm)).unwrap_or(Algorithm::Crc64Nvme);
        let reuse_checksum =
            old.as_ref().filter(|c| c.algorithm == want && c.kind == ChecksumType::FullObject).cloned();
        let multipart = source_row.part_sizes.is_some();
        let need_hash = reuse_checksum.is_none();
        let src_file = source_row.file.clone().unwrap_or_default();
        let copied = self
            .blocking(move |fs| {
                let file = match fs.duplicate(&src_file) {
                    Ok(f) => f,
                    // Deleted since it was looked up.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let mut md5 = multipart.then(checksum::new_md5);
                let mut hasher = need_hash.then(|| want.hasher());
                if md5.is_some() || hasher.is_some() {
                    fs.hash_file(&file, &mut md5, &mut hasher)?;
                }
                Ok(Some((file, md5.map(|h| hex::encode(md5::Digest::finalize(h))), hasher.map(|h| h.finish()))))
            })
            .await?;
        let Some((file, md5, computed)) = copied else {
            return Err(S3Error::no_such_key(&source.key));
        };
        let checksum = computed
            .map(|bytes| StoredChecksum {
                algorithm: want,
                value: checksum::base64(&bytes),
                kind: ChecksumType::FullObject,
            })
            .or(reuse_checksum);
        let attrs = attrs.unwrap_or_else(|| ObjectAttrs {
            headers: source_row.headers.clone(),
            metadata: source_row.metadata.clone(),
        });
        let size = source_row.size;
        let etag = md5.unwrap_or_else(|| source_row.etag.clone());
        let written = self
            .commit_version(account, bucket, key, file, move |file| NewVersion {
                size,
                etag,
                file,
                attrs,
                checksum,
                part_sizes: None,
            })
            .await?;
        Ok((written, source_row))
    }
}
