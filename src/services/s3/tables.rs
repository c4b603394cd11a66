//! Typed rows and queries of the embedded S3 subset: buckets, object versions, multipart uploads
//! and parts. The bytes themselves live in files (`crate::services::s3::objects::files`); rows name them.

use std::collections::BTreeMap;

use rusqlite::{params, Row};

use crate::kernel::error::Result;
use crate::kernel::store::Tx;

/// A bucket. `versioning` is `None` until versioning is first configured, then `Enabled` or
/// `Suspended`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRow {
    pub name: String,
    pub account: String,
    pub region: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub versioning: Option<String>,
}

/// One version of an object, or a delete marker (`delete_marker`, no `file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    /// Insertion order; the newest version of a key has the highest `seq`.
    pub seq: i64,
    pub bucket: String,
    pub key: String,
    /// `null` for objects written while versioning was never enabled or is suspended.
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    /// Hex MD5, or `<hex>-<parts>` for a multipart object; without quotes.
    pub etag: String,
    /// Unix milliseconds.
    pub last_modified: i64,
    /// The data file, relative to the object store's data directory.
    pub file: Option<String>,
    /// Stored content headers (lower-case names: content-type, content-encoding, …).
    pub headers: BTreeMap<String, String>,
    /// User metadata (`x-amz-meta-*` without the prefix, lower-case names).
    pub metadata: BTreeMap<String, String>,
    pub checksum_algorithm: Option<String>,
    /// Base64 of the checksum, `-<parts>` appended for a composite multipart checksum.
    pub checksum_value: Option<String>,
    pub checksum_type: Option<String>,
    /// Sizes of the parts of a multipart object, in order.
    pub part_sizes: Option<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    /// Unix milliseconds.
    pub initiated: i64,
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub checksum_algorithm: Option<String>,
    pub checksum_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub upload_id: String,
    pub part_number: u32,
    pub size: u64,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    /// Base64 checksum of the part in the upload's algorithm, if it has one.
    pub checksum_value: Option<String>,
    pub file: String,
    pub last_modified: i64,
}

fn map_to_text(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

fn map_of(row: &Row<'_>, idx: usize) -> rusqlite::Result<BTreeMap<String, String>> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

const BUCKET_COLS: &str = "name, account, region, created_at, versioning";

fn bucket_row(row: &Row<'_>) -> rusqlite::Result<BucketRow> {
    Ok(BucketRow {
        name: row.get(0)?,
        account: row.get(1)?,
        region: row.get(2)?,
        created_at: row.get(3)?,
        versioning: row.get(4)?,
    })
}

const OBJECT_COLS: &str = "seq, bucket, key, version_id, is_latest, delete_marker, size, etag, last_modified, file, \
                           headers, metadata, checksum_algorithm, checksum_value, checksum_type, part_sizes";

fn object_row(row: &Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        seq: row.get(0)?,
        bucket: row.get(1)?,
        key: row.get(2)?,
        version_id: row.get(3)?,
        is_latest: row.get(4)?,
        delete_marker: row.get(5)?,
        size: row.get::<_, i64>(6)? as u64,
        etag: row.get(7)?,
        last_modified: row.get(8)?,
        file: row.get(9)?,
        headers: map_of(row, 10)?,
        metadata: map_of(row, 11)?,
        checksum_algorithm: row.get(12)?,
        checksum_value: row.get(13)?,
        checksum_type: row.get(14)?,
        part_sizes: row
            .get::<_, Option<String>>(15)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(15, rusqlite::types::Type::Text, Box::new(e)))?,
    })
}

const UPLOAD_COLS: &str = "upload_id, bucket, key, initiated, headers, metadata, checksum_algorithm, checksum_type";

fn upload_row(row: &Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        upload_id: row.get(0)?,
        bucket: row.get(1)?,
        key: row.get(2)?,
        initiated: row.get(3)?,
        headers: map_of(row, 4)?,
        metadata: map_of(row, 5)?,
        checksum_algorithm: row.get(6)?,
        checksum_type: row.get(7)?,
    })
}

const PART_COLS: &str = "upload_id, part_number, size, etag, checksum_value, file, last_modified";

fn part_row(row: &Row<'_>) -> rusqlite::Result<PartRow> {
    Ok(PartRow {
        upload_id: row.get(0)?,
        part_number: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        etag: row.get(3)?,
        checksum_value: row.get(4)?,
        file: row.get(5)?,
        last_modified: row.get(6)?,
    })
}

impl Tx<'_> {
    // ---- buckets ----

    pub fn s3_bucket(&self, name: &str) -> Result<Option<BucketRow>> {
        self.query_opt(&format!("SELECT {BUCKET_COLS} FROM s3_buckets WHERE name = ?1"), params![name], bucket_row)
    }

    pub fn s3_insert_bucket(&self, b: &BucketRow) -> Result<()> {
        self.exec(
            "INSERT INTO s3_buckets (name, account, region, created_at, versioning) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![b.name, b.account, b.region, b.created_at, b.versioning],
        )?;
        Ok(())
    }

    pub fn s3_delete_bucket(&self, name: &str) -> Result<()> {
        self.exec("DELETE FROM s3_buckets WHERE name = ?1", params![name])?;
        Ok(())
    }

    /// The buckets of one account, by name.
    pub fn s3_buckets_of(&self, account: &str) -> Result<Vec<BucketRow>> {
        self.query_all(
            &format!("SELECT {BUCKET_COLS} FROM s3_buckets WHERE account = ?1 ORDER BY name"),
            params![account],
            bucket_row,
        )
    }

    pub fn s3_set_versioning(&self, name: &str, status: &str) -> Result<()> {
        self.exec("UPDATE s3_buckets SET versioning = ?2 WHERE name = ?1", params![name, status])?;
        Ok(())
    }

    /// Whether the bucket holds any object version or delete marker.
    pub fn s3_bucket_has_objects(&self, name: &str) -> Result<bool> {
        Ok(self.query_opt("SELECT 1 FROM s3_objects WHERE bucket = ?1 LIMIT 1", params![name], |_| Ok(()))?.is_some())
    }

    // ---- object versions ----

    pub fn s3_latest(&self, bucket: &str, key: &str) -> Result<Option<ObjectRow>> {
        self.query_opt(
            &format!("SELECT {OBJECT_COLS} FROM s3_objects WHERE bucket = ?1 AND is_latest = 1 AND key = ?2"),
            params![bucket, key],
            object_row,
        )
    }

    pub fn s3_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<Option<ObjectRow>> {
        self.query_opt(
            &format!("SELECT {OBJECT_COLS} FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"),
            params![bucket, key, version_id],
            object_row,
        )
    }

    /// Inserts a version as the latest of its key (the previous latest stops being latest) and
    /// returns it with its sequence number.
    pub fn s3_insert_latest(&self, o: &ObjectRow) -> Result<ObjectRow> {
        self.exec(
            "UPDATE s3_objects SET is_latest = 0 WHERE bucket = ?1 AND key = ?2 AND is_latest = 1",
            params![o.bucket, o.key],
        )?;
        self.exec(
            "INSERT INTO s3_objects (bucket, key, version_id, is_latest, delete_marker, size, etag, last_modified, file, \
             headers, metadata, checksum_algorithm, checksum_value, checksum_type, part_sizes) \
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                o.bucket,
                o.key,
                o.version_id,
                o.delete_marker,
                o.size as i64,
                o.etag,
                o.last_modified,
                o.file,
                map_to_text(&o.headers),
                map_to_text(&o.metadata),
                o.checksum_algorithm,
                o.checksum_value,
                o.checksum_type,
                o.part_sizes.as_ref().map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into())),
            ],
        )?;
        Ok(ObjectRow { seq: self.txn.last_insert_rowid(), is_latest: true, ..o.clone() })
    }

    /// Removes one version; if it was the latest, the newest remaining version of the key becomes
    /// the latest.
    pub fn s3_delete_version(&self, row: &ObjectRow) -> Result<()> {
        self.exec("DELETE FROM s3_objects WHERE seq = ?1", params![row.seq])?;
        if row.is_latest {
            self.exec(
                "UPDATE s3_objects SET is_latest = 1 WHERE seq = \
                 (SELECT MAX(seq) FROM s3_objects WHERE bucket = ?1 AND key = ?2)",
                params![row.bucket, row.key],
            )?;
        }
        Ok(())
    }

    /// Latest versions that are not delete markers, by key, starting after `from` (or at it when
    /// `inclusive`).
    pub fn s3_list_latest(&self, bucket: &str, from: &str, inclusive: bool, limit: usize) -> Result<Vec<ObjectRow>> {
        let op = if inclusive { ">=" } else { ">" };
        self.query_all(
            &format!(
                "SELECT {OBJECT_COLS} FROM s3_objects WHERE bucket = ?1 AND is_latest = 1 AND delete_marker = 0 \
                 AND key {op} ?2 ORDER BY key LIMIT ?3"
            ),
            params![bucket, from, limit as i64],
            object_row,
        )
    }

    /// Every version and delete marker, by key and then newest first, starting after the version
    /// `(from_key, from_seq)`; with `from_seq` `None`, at `from_key` (inclusive) or after every
    /// version of it.
    pub fn s3_list_versions(
        &self,
        bucket: &str,
        from_key: &str,
        from_seq: Option<i64>,
        inclusive: bool,
        limit: usize,
    ) -> Result<Vec<ObjectRow>> {
        match from_seq {
            Some(seq) => self.query_all(
                &format!(
                    "SELECT {OBJECT_COLS} FROM s3_objects WHERE bucket = ?1 AND (key > ?2 OR (key = ?2 AND seq < ?3)) \
                     ORDER BY key, seq DESC LIMIT ?4"
                ),
                params![bucket, from_key, seq, limit as i64],
                object_row,
            ),
            None => {
                let op = if inclusive { ">=" } else { ">" };
                self.query_all(
                    &format!(
                        "SELECT {OBJECT_COLS} FROM s3_objects WHERE bucket = ?1 AND key {op} ?2 \
                         ORDER BY key, seq DESC LIMIT ?3"
                    ),
                    params![bucket, from_key, limit as i64],
                    object_row,
                )
            }
        }
    }

    /// Every data file a row refers to (objects and parts), for removing orphans at start-up.
    pub fn s3_referenced_files(&self) -> Result<Vec<String>> {
        self.query_all("SELECT file FROM s3_objects WHERE file IS NOT NULL UNION SELECT file FROM s3_parts", [], |r| {
            r.get(0)
        })
    }

    // ---- multipart uploads ----

    pub fn s3_insert_upload(&self, u: &UploadRow) -> Result<()> {
        self.exec(
            "INSERT INTO s3_uploads (upload_id, bucket, key, initiated, headers, metadata, checksum_algorithm, checksum_type) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                u.upload_id,
                u.bucket,
                u.key,
                u.initiated,
                map_to_text(&u.headers),
                map_to_text(&u.metadata),
                u.checksum_algorithm,
                u.checksum_type
            ],
        )?;
        Ok(())
    }

    pub fn s3_upload(&self, upload_id: &str) -> Result<Option<UploadRow>> {
        self.query_opt(
            &format!("SELECT {UPLOAD_COLS} FROM s3_uploads WHERE upload_id = ?1"),
            params![upload_id],
            upload_row,
        )
    }

    /// Removes an upload and its parts; returns the parts' files.
    pub fn s3_delete_upload(&self, upload_id: &str) -> Result<Vec<String>> {
        let files =
            self.query_all("SELECT file FROM s3_parts WHERE upload_id = ?1", params![upload_id], |r| r.get(0))?;
        self.exec("DELETE FROM s3_parts WHERE upload_id = ?1", params![upload_id])?;
        self.exec("DELETE FROM s3_uploads WHERE upload_id = ?1", params![upload_id])?;
        Ok(files)
    }

    pub fn s3_upload_ids_of_bucket(&self, bucket: &str) -> Result<Vec<String>> {
        self.query_all("SELECT upload_id FROM s3_uploads WHERE bucket = ?1", params![bucket], |r| r.get(0))
    }

    /// Uploads of a bucket ordered by key and upload id, after `(from_key, from_upload_id)`
    /// (with an empty `from_upload_id`: at or after `from_key` when `inclusive`, else after it).
    pub fn s3_list_uploads(
        &self,
        bucket: &str,
        from_key: &str,
        from_upload_id: &str,
        inclusive: bool,
        limit: usize,
    ) -> Result<Vec<UploadRow>> {
        let cond = if !from_upload_id.is_empty() {
            "(key > ?2 OR (key = ?2 AND upload_id > ?3))"
        } else if inclusive {
            "key >= ?2 AND ?3 = ''"
        } else {
            "key > ?2 AND ?3 = ''"
        };
        self.query_all(
            &format!(
                "SELECT {UPLOAD_COLS} FROM s3_uploads WHERE bucket = ?1 AND {cond} ORDER BY key, upload_id LIMIT ?4"
            ),
            params![bucket, from_key, from_upload_id, limit as i64],
            upload_row,
        )
    }

    /// Stores a part, replacing an earlier upload of the same number; returns the replaced file.
    pub fn s3_put_part(&self, p: &PartRow) -> Result<Option<String>> {
        let old: Option<String> = self.query_opt(
            "SELECT file FROM s3_parts WHERE upload_id = ?1 AND part_number = ?2",
            params![p.upload_id, p.part_number],
            |r| r.get(0),
        )?;
        self.exec(
            "INSERT OR REPLACE INTO s3_parts (upload_id, part_number, size, etag, checksum_value, file, last_modified) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![p.upload_id, p.part_number, p.size as i64, p.etag, p.checksum_value, p.file, p.last_modified],
        )?;
        Ok(old)
    }

    /// Parts of an upload by number, after `after_part`.
    pub fn s3_parts(&self, upload_id: &str, after_part: u32, limit: usize) -> Result<Vec<PartRow>> {
        self.query_all(
            &format!(
                "SELECT {PART_COLS} FROM s3_parts WHERE upload_id = ?1 AND part_number > ?2 ORDER BY part_number LIMIT ?3"
            ),
            params![upload_id, after_part, limit as i64],
            part_row,
        )
    }
}
