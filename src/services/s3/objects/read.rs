//! Finding the version a read addresses: the latest, or a given version id; delete markers answer
//! as S3 answers them (404 with `x-amz-delete-marker` for the latest, 405 when addressed by id).

use super::error::{S3Error, S3Result};
use super::{owned_bucket, Objects};
use crate::services::s3::tables::{BucketRow, ObjectRow};

#[derive(Debug, Clone)]
pub struct Found {
    pub bucket: BucketRow,
    pub object: ObjectRow,
}

/// The headers S3 puts on a response about a delete marker.
fn delete_marker_error(e: S3Error, marker: &ObjectRow) -> S3Error {
    e.header("x-amz-delete-marker", "true").header("x-amz-version-id", marker.version_id.clone())
}

impl Objects {
    /// The object version that a GET/HEAD of `key` (optionally `version_id`) reads.
    pub async fn find(&self, account: &str, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<Found> {
        let (account, bucket, key) = (account.to_string(), bucket.to_string(), key.to_string());
        let version_id = version_id.map(str::to_string);
        self.store()
            .read(move |tx| {
                let bucket = s3_try!(owned_bucket(tx, &account, &bucket)?);
                Ok(match version_id {
                    None => match tx.s3_latest(&bucket.name, &key)? {
                        None => Err(S3Error::no_such_key(&key)),
                        Some(o) if o.delete_marker => Err(delete_marker_error(S3Error::no_such_key(&key), &o)),
                        Some(object) => Ok(Found { bucket, object }),
                    },
                    Some(v) => match tx.s3_version(&bucket.name, &key, &v)? {
                        None => Err(S3Error::no_such_version(&key, &v)),
                        Some(o) if o.delete_marker => {
                            Err(delete_marker_error(S3Error::method_not_allowed("GET", "DeleteMarker"), &o))
                        }
                        Some(object) => Ok(Found { bucket, object }),
                    },
                })
            })
            .await?
    }
}
