//! Buckets: create, delete, list, versioning. Names are global; a bucket belongs to the account
//! that created it, and other accounts get AccessDenied.

use super::error::{S3Error, S3Result};
use super::names::validate_bucket_name;
use super::{now_ms, owned_bucket, Objects};
use crate::services::s3::tables::BucketRow;

/// The Region whose buckets have no LocationConstraint.
pub const DEFAULT_BUCKET_REGION: &str = "us-east-1";

/// `x-amz-bucket-versioning` states.
pub const VERSIONING_ENABLED: &str = "Enabled";
pub const VERSIONING_SUSPENDED: &str = "Suspended";

impl Objects {
    /// Creates a bucket in `region` (the request's Region). Re-creating one's own bucket in
    /// us-east-1 succeeds (as S3 does there); elsewhere it is BucketAlreadyOwnedByYou.
    pub async fn create_bucket(
        &self,
        account: &str,
        region: &str,
        name: &str,
        location_constraint: Option<&str>,
    ) -> S3Result<BucketRow> {
        validate_bucket_name(name)?;
        match location_constraint.filter(|c| !c.is_empty()) {
            Some(c) if region == DEFAULT_BUCKET_REGION && c == DEFAULT_BUCKET_REGION => {
                return Err(S3Error::new("InvalidLocationConstraint", 400, "The specified location-constraint is not valid")
                    .with("LocationConstraint", c))
            }
            Some(c) if c != region => {
                return Err(S3Error::new(
                    "IllegalLocationConstraintException",
                    400,
                    format!("The {c} location constraint is incompatible for the region specific endpoint this request was sent to."),
                ))
            }
            _ => {}
        }
        let row = BucketRow {
            name: name.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            created_at: now_ms(),
            versioning: None,
        };
        self.store()
            .write(move |tx| {
                Ok(match tx.s3_bucket(&row.name)? {
                    Some(existing) if existing.account != row.account => Err(S3Error::bucket_already_exists(&row.name)),
                    Some(existing)
                        if existing.region == DEFAULT_BUCKET_REGION && row.region == DEFAULT_BUCKET_REGION =>
                    {
                        Ok(existing)
                    }
                    Some(_) => Err(S3Error::bucket_already_owned_by_you(&row.name)),
                    None => {
                        tx.s3_insert_bucket(&row)?;
                        Ok(row)
                    }
                })
            })
            .await?
    }

    /// The bucket, if it exists and belongs to `account` (NoSuchBucket / AccessDenied).
    pub async fn bucket(&self, account: &str, name: &str) -> S3Result<BucketRow> {
        let (account, name) = (account.to_string(), name.to_string());
        self.store().read(move |tx| owned_bucket(tx, &account, &name)).await?
    }

    /// Deletes an empty bucket (no versions, no delete markers); its unfinished multipart
    /// uploads go with it.
    pub async fn delete_bucket(&self, account: &str, name: &str) -> S3Result<()> {
        let (account, name) = (account.to_string(), name.to_string());
        let files = self
            .store()
            .write(move |tx| {
                s3_try!(owned_bucket(tx, &account, &name)?);
                if tx.s3_bucket_has_objects(&name)? {
                    return Ok(Err(S3Error::bucket_not_empty(&name)));
                }
                let mut files = Vec::new();
                for upload in tx.s3_upload_ids_of_bucket(&name)? {
                    files.extend(tx.s3_delete_upload(&upload)?);
                }
                tx.s3_delete_bucket(&name)?;
                Ok(Ok(files))
            })
            .await??;
        self.remove_files(files).await;
        Ok(())
    }

    pub async fn list_buckets(&self, account: &str) -> S3Result<Vec<BucketRow>> {
        let account = account.to_string();
        Ok(self.store().read(move |tx| tx.s3_buckets_of(&account)).await?)
    }

    /// Sets versioning to `Enabled` or `Suspended` (a bucket can never go back to unversioned).
    pub async fn set_versioning(&self, account: &str, name: &str, status: &str) -> S3Result<()> {
        if status != VERSIONING_ENABLED && status != VERSIONING_SUSPENDED {
            return Err(S3Error::malformed_xml());
        }
        let (account, name, status) = (account.to_string(), name.to_string(), status.to_string());
        self.store()
            .write(move |tx| {
                s3_try!(owned_bucket(tx, &account, &name)?);
                tx.s3_set_versioning(&name, &status)?;
                Ok(Ok(()))
            })
            .await?
    }
}
