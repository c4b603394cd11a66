//! The embedded S3 subset's domain: buckets, object versions, multipart uploads, listings.
//!
//! Bytes live in immutable files (`files`), metadata in SQLite (`crate::kernel::store`, `s3_*` tables).
//! A write stages the bytes to a temp file (hashing them on the way), fsyncs and renames it into
//! place, and only then commits the row that makes it visible; a crash in between leaves an
//! unreferenced file that the next start removes. Nothing here knows HTTP: `api::s3` maps the
//! wire onto these calls, and other features (code deployment) read objects through
//! [`Objects::object_file`].

/// Inside a store transaction (`Result<S3Result<T>>`): an S3 error such as NoSuchBucket is the
/// transaction's answer, not a store failure, so it returns `Ok(Err(e))` at once.
macro_rules! s3_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

pub mod buckets;
pub mod checksum;
pub mod delete;
pub mod error;
pub mod files;
pub mod list;
pub mod multipart;
pub mod names;
pub mod read;
pub mod staging;
pub mod write;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::kernel::store::{Store, Tx};
use crate::services::s3::tables::BucketRow;

pub use error::{S3Error, S3Result};
pub use files::{FileStore, Staged, Staging};

/// Largest object a single PutObject (or UploadPart) may carry: 5 GiB.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Smallest size of every part but the last of a multipart upload: 5 MiB.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// Part numbers run from 1 to 10,000.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Most keys one DeleteObjects request may name.
pub const MAX_DELETE_KEYS: usize = 1000;
/// Most entries one listing returns.
pub const MAX_LIST_KEYS: usize = 1000;

/// The object store: cheap to clone, shared by the S3 API and the features that read objects.
#[derive(Clone)]
pub struct Objects {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    files: FileStore,
    /// With `--in-memory`, the directory holding the files; removed when the last clone drops.
    _scratch: Option<tempfile::TempDir>,
}

/// Where an object's bytes are, for readers outside the S3 API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFile {
    /// Stays readable (same bytes) until this version is deleted or overwritten.
    pub path: PathBuf,
    pub size: u64,
    /// The version read, when the bucket is versioned (`None` for the `null` version).
    pub version_id: Option<String>,
}

pub(crate) use crate::services::runtime::domain::now_ms;

/// The bucket, if it exists and belongs to `account`.
pub(crate) fn owned_bucket(
    tx: &Tx<'_>,
    account: &str,
    name: &str,
) -> crate::kernel::error::Result<S3Result<BucketRow>> {
    Ok(match tx.s3_bucket(name)? {
        None => Err(S3Error::no_such_bucket(name)),
        Some(b) if b.account != account => Err(S3Error::access_denied()),
        Some(b) => Ok(b),
    })
}

impl Objects {
    /// Object files go under `<data_dir>/objects`, or into a temp directory (removed when the last
    /// clone is dropped) when `data_dir` is `None`.
    pub fn open(store: Store, data_dir: Option<&Path>) -> std::io::Result<Objects> {
        let (root, scratch) = match data_dir {
            Some(dir) => (dir.join("objects"), None),
            None => {
                let tmp = tempfile::Builder::new().prefix("agentcore-local-objects-").tempdir()?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let files = FileStore::open(&root)?;
        tracing::info!(dir = %root.display(), "object files");
        Ok(Objects { inner: Arc::new(Inner { store, files, _scratch: scratch }) })
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn files(&self) -> &FileStore {
        &self.inner.files
    }

    /// Runs `f` on the blocking pool with the file store.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> S3Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&FileStore) -> std::io::Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this.files()))
            .await
            .map_err(|e| S3Error::internal(format!("file task failed: {e}")))?
            .map_err(|e| S3Error::io("object storage", e))
    }

    /// Removes files no longer referenced (after the transaction that dropped them committed).
    /// The outcome of a transaction that put a new `file` in place of older ones: on commit the
    /// files it replaced go, otherwise the new file does (no row refers to it).
    pub(crate) async fn settle<T>(
        &self,
        result: crate::kernel::error::Result<S3Result<(T, Vec<String>)>>,
        file: String,
    ) -> S3Result<T> {
        match result {
            Ok(Ok((value, replaced))) => {
                self.remove_files(replaced).await;
                Ok(value)
            }
            Ok(Err(e)) => {
                self.remove_files(vec![file]).await;
                Err(e)
            }
            Err(e) => {
                self.remove_files(vec![file]).await;
                Err(e.into())
            }
        }
    }

    pub(crate) async fn remove_files(&self, files: Vec<String>) {
        if files.is_empty() {
            return;
        }
        let _ = self
            .blocking(move |fs| {
                fs.remove(&files);
                Ok(())
            })
            .await;
    }

    /// Removes object files that no row refers to: what a crash between writing a file and
    /// committing its row leaves behind. Call once at start-up, before serving.
    pub async fn remove_orphans(&self) -> S3Result<usize> {
        let referenced: HashSet<String> = self.store().read(|tx| tx.s3_referenced_files()).await?.into_iter().collect();
        let removed = self.blocking(move |fs| fs.remove_unreferenced(&referenced)).await?;
        if removed > 0 {
            tracing::info!(removed, "removed object files left by an interrupted write");
        }
        Ok(removed)
    }

    /// The file holding an object's bytes (latest version, or `version_id`), for the caller's account.
    pub async fn object_file(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectFile, crate::kernel::error::Error> {
        let found = self.find(account, bucket, key, version_id).await.map_err(S3Error::into_error)?;
        let file = found.object.file.as_deref().unwrap_or_default();
        Ok(ObjectFile {
            path: self.files().path(file),
            size: found.object.size,
            version_id: Some(found.object.version_id.clone()).filter(|v| v != names::NULL_VERSION),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::error::ErrorKind;

    const ACCOUNT: &str = "123456789012";

    async fn put(objects: &Objects, bucket: &str, key: &str, data: &[u8]) -> write::Written {
        let mut staging = objects.staging(None, false).unwrap();
        staging.write(data).unwrap();
        let staged = staging.finish().unwrap();
        objects.put_object(ACCOUNT, bucket, key, staged, Default::default()).await.unwrap()
    }

    #[tokio::test]
    async fn object_file_reads_versions_and_names_what_is_missing() {
        let objects = Objects::open(Store::in_memory().unwrap(), None).unwrap();
        objects.create_bucket(ACCOUNT, "us-east-1", "code", None).await.unwrap();
        put(&objects, "code", "agent.zip", b"v1").await;
        let f = objects.object_file(ACCOUNT, "code", "agent.zip", None).await.unwrap();
        assert_eq!((std::fs::read(&f.path).unwrap(), f.size, f.version_id), (b"v1".to_vec(), 2, None));

        objects.set_versioning(ACCOUNT, "code", buckets::VERSIONING_ENABLED).await.unwrap();
        let v2 = put(&objects, "code", "agent.zip", b"two").await.object.version_id;
        let held = objects.object_file(ACCOUNT, "code", "agent.zip", None).await.unwrap();
        let v3 = put(&objects, "code", "agent.zip", b"three").await.object.version_id;
        // A path handed out stays valid (same bytes) while newer versions are written.
        assert_eq!(std::fs::read(&held.path).unwrap(), b"two");
        let f = objects.object_file(ACCOUNT, "code", "agent.zip", Some(&v2)).await.unwrap();
        assert_eq!((std::fs::read(&f.path).unwrap(), f.version_id.as_deref()), (b"two".to_vec(), Some(v2.as_str())));
        let latest = objects.object_file(ACCOUNT, "code", "agent.zip", None).await.unwrap();
        assert_eq!((std::fs::read(&latest.path).unwrap(), latest.version_id), (b"three".to_vec(), Some(v3)));
        let null = objects.object_file(ACCOUNT, "code", "agent.zip", Some("null")).await.unwrap();
        assert_eq!(std::fs::read(&null.path).unwrap(), b"v1");

        let e = objects.object_file(ACCOUNT, "nobucket", "agent.zip", None).await.unwrap_err();
        assert!(e.kind == ErrorKind::ResourceNotFound && e.message.contains("'nobucket'"), "{e}");
        let e = objects.object_file(ACCOUNT, "code", "missing.zip", None).await.unwrap_err();
        assert!(e.kind == ErrorKind::ResourceNotFound && e.message.contains("'missing.zip'"), "{e}");
        let e = objects.object_file(ACCOUNT, "code", "agent.zip", Some("v-none")).await.unwrap_err();
        assert!(e.kind == ErrorKind::ResourceNotFound && e.message.contains("'v-none'"), "{e}");
        let e = objects.object_file("210987654321", "code", "agent.zip", None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::AccessDenied);

        objects.delete_object(ACCOUNT, "code", "agent.zip", None).await.unwrap();
        let e = objects.object_file(ACCOUNT, "code", "agent.zip", None).await.unwrap_err();
        assert!(e.kind == ErrorKind::ResourceNotFound && e.message.contains("'agent.zip'"), "{e}");
        assert!(objects.object_file(ACCOUNT, "code", "agent.zip", Some(&v2)).await.is_ok());
    }
}
