//! DeleteObject and DeleteObjects: delete markers in versioned buckets, permanent deletion of a
//! version by id, removal of the `null` version otherwise.

use super::error::{S3Error, S3Result};
use super::names::NULL_VERSION;
use super::write::insert_version;
use super::{owned_bucket, Objects};
use crate::kernel::store::Tx;
use crate::services::s3::tables::BucketRow;

/// What a deletion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The version removed, or the delete marker created (absent for unversioned buckets).
    pub version_id: Option<String>,
    /// A delete marker was created, or the version removed was one.
    pub delete_marker: bool,
}

/// One key of a DeleteObjects request and its outcome.
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    pub key: String,
    pub version_id: Option<String>,
    pub result: Result<Deleted, S3Error>,
}

fn delete_in(
    tx: &Tx<'_>,
    bucket: &BucketRow,
    key: &str,
    version_id: Option<&str>,
    files: &mut Vec<String>,
) -> crate::kernel::error::Result<Deleted> {
    let versioned = bucket.versioning.is_some();
    match version_id {
        Some(v) => {
            let Some(row) = tx.s3_version(&bucket.name, key, v)? else {
                // Deleting a version that does not exist succeeds.
                return Ok(Deleted { version_id: Some(v.to_string()), delete_marker: false });
            };
            tx.s3_delete_version(&row)?;
            files.extend(row.file.clone());
            Ok(Deleted { version_id: Some(row.version_id), delete_marker: row.delete_marker })
        }
        None if !versioned => {
            if let Some(row) = tx.s3_version(&bucket.name, key, NULL_VERSION)? {
                tx.s3_delete_version(&row)?;
                files.extend(row.file);
            }
            Ok(Deleted { version_id: None, delete_marker: false })
        }
        None => {
            // Enabled: a new marker on top. Suspended: the marker replaces the null version.
            let (marker, replaced) = insert_version(tx, bucket, key, None)?;
            files.extend(replaced);
            Ok(Deleted { version_id: Some(marker.version_id), delete_marker: true })
        }
    }
}

impl Objects {
    pub async fn delete_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<Deleted> {
        let (account, bucket, key) = (account.to_string(), bucket.to_string(), key.to_string());
        let version_id = version_id.map(str::to_string);
        let (deleted, files) = self
            .store()
            .write(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &account, &bucket)?);
                let mut files = Vec::new();
                let deleted = delete_in(tx, &bucket, &key, version_id.as_deref(), &mut files)?;
                Ok(Ok((deleted, files)))
            })
            .await??;
        self.remove_files(files).await;
        Ok(deleted)
    }

    /// Deletes many keys in one transaction; each key gets its own outcome.
    pub async fn delete_objects(
        &self,
        account: &str,
        bucket: &str,
        keys: Vec<(String, Option<String>)>,
    ) -> S3Result<Vec<DeleteOutcome>> {
        let (account, bucket) = (account.to_string(), bucket.to_string());
        let (outcomes, files) = self
            .store()
            .write(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &account, &bucket)?);
                let mut files = Vec::new();
                let mut outcomes = Vec::with_capacity(keys.len());
                for (key, version_id) in keys {
                    let result = match super::names::validate_key(&key) {
                        Ok(()) => Ok(delete_in(tx, &bucket, &key, version_id.as_deref(), &mut files)?),
                        Err(e) => Err(e),
                    };
                    outcomes.push(DeleteOutcome { key, version_id, result });
                }
                Ok(Ok((outcomes, files)))
            })
            .await??;
        self.remove_files(files).await;
        Ok(outcomes)
    }
}
