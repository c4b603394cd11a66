//! Schema migrations, numbered by `PRAGMA user_version`. Append only: never edit a shipped step.

use std::path::Path;

use rusqlite::Connection;

use super::OpenError;

const MIGRATIONS: &[&str] = &[
    // 1: control plane
    r#"
    CREATE TABLE runtimes (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT NOT NULL UNIQUE,
        account        TEXT NOT NULL,
        region         TEXT NOT NULL,
        name           TEXT NOT NULL,
        arn            TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        latest_version INTEGER NOT NULL,
        deleting       INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account, region, name)
    );
    CREATE TABLE runtime_versions (
        runtime_id     TEXT NOT NULL REFERENCES runtimes(id) ON DELETE CASCADE,
        version        INTEGER NOT NULL,
        config         TEXT NOT NULL,
        status         TEXT NOT NULL,
        failure_reason TEXT,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        PRIMARY KEY (runtime_id, version)
    );
    CREATE TABLE runtime_endpoints (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        runtime_id     TEXT NOT NULL REFERENCES runtimes(id) ON DELETE CASCADE,
        name           TEXT NOT NULL,
        id             TEXT NOT NULL,
        arn            TEXT NOT NULL,
        live_version   INTEGER,
        target_version INTEGER NOT NULL,
        description    TEXT,
        status         TEXT NOT NULL,
        failure_reason TEXT,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        UNIQUE (runtime_id, name)
    );
    CREATE TABLE tags (
        resource_arn TEXT NOT NULL,
        key          TEXT NOT NULL,
        value        TEXT NOT NULL,
        PRIMARY KEY (resource_arn, key)
    );
    CREATE TABLE idempotency_tokens (
        account     TEXT NOT NULL,
        region      TEXT NOT NULL,
        operation   TEXT NOT NULL,
        token       TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        resource    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (account, region, operation, token)
    );
    "#,
    // 2: what preparing a version produced (the local image id), and emulator-wide settings
    r#"
    ALTER TABLE runtime_versions ADD COLUMN artifact TEXT;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 3: which session a pre-started (warm pool) sandbox was given to, for re-adoption
    r#"
    CREATE TABLE sandbox_claims (
        sandbox_id TEXT PRIMARY KEY,
        runtime_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        claimed_at INTEGER NOT NULL
    );
    "#,
    // 4: the embedded S3 subset: buckets, object versions (bytes live in files named by `file`),
    // multipart uploads and their parts
    r#"
    CREATE TABLE s3_buckets (
        name       TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        region     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        versioning TEXT
    );
    CREATE INDEX s3_buckets_by_account ON s3_buckets (account, name);
    CREATE TABLE s3_objects (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        bucket             TEXT NOT NULL REFERENCES s3_buckets(name),
        key                TEXT NOT NULL,
        version_id         TEXT NOT NULL,
        is_latest          INTEGER NOT NULL,
        delete_marker      INTEGER NOT NULL,
        size               INTEGER NOT NULL,
        etag               TEXT NOT NULL,
        last_modified      INTEGER NOT NULL,
        file               TEXT,
        headers            TEXT NOT NULL,
        metadata           TEXT NOT NULL,
        checksum_algorithm TEXT,
        checksum_value     TEXT,
        checksum_type      TEXT,
        part_sizes         TEXT,
        UNIQUE (bucket, key, version_id)
    );
    CREATE INDEX s3_objects_latest ON s3_objects (bucket, is_latest, key);
    CREATE INDEX s3_objects_versions ON s3_objects (bucket, key, seq);
    CREATE TABLE s3_uploads (
        upload_id          TEXT PRIMARY KEY,
        bucket             TEXT NOT NULL REFERENCES s3_buckets(name),
        key                TEXT NOT NULL,
        initiated          INTEGER NOT NULL,
        headers            TEXT NOT NULL,
        metadata           TEXT NOT NULL,
        checksum_algorithm TEXT,
        checksum_type      TEXT
    );
    CREATE INDEX s3_uploads_by_key ON s3_uploads (bucket, key, initiated);
    CREATE TABLE s3_parts (
        upload_id      TEXT NOT NULL REFERENCES s3_uploads(upload_id) ON DELETE CASCADE,
        part_number    INTEGER NOT NULL,
        size           INTEGER NOT NULL,
        etag           TEXT NOT NULL,
        checksum_value TEXT,
        file           TEXT NOT NULL,
        last_modified  INTEGER NOT NULL,
        PRIMARY KEY (upload_id, part_number)
    );
    "#,
    // 5: temporary credentials issued to sessions and by STS (no secrets: they are derived from the
    // credential key file, see crate::credentials::keys)
    r#"
    CREATE TABLE issued_credentials (
        access_key_id TEXT PRIMARY KEY,
        account       TEXT NOT NULL,
        role_arn      TEXT NOT NULL,
        session_name  TEXT NOT NULL,
        source        TEXT NOT NULL,
        sandbox_id    TEXT,
        runtime_id    TEXT,
        session_id    TEXT,
        issued_at     INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL
    );
    CREATE INDEX issued_credentials_by_expiry ON issued_credentials (expires_at);
    "#,
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Whether the database is at this build's schema version (nothing to migrate).
pub fn up_to_date(conn: &Connection, path: &Path) -> Result<bool, OpenError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| OpenError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })?;
    Ok(found == SCHEMA_VERSION)
}

pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let corrupt = |e: rusqlite::Error| OpenError::Corrupt { path: path.to_path_buf(), detail: e.to_string() };
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(corrupt)?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::TooNew { path: path.to_path_buf(), found, known: SCHEMA_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let step = index as i64 + 1;
        let migrate_err = |source| OpenError::Migrate { path: path.to_path_buf(), source };
        let txn = conn.transaction().map_err(migrate_err)?;
        txn.execute_batch(sql).map_err(migrate_err)?;
        txn.execute_batch(&format!("PRAGMA user_version = {step};")).map_err(migrate_err)?;
        txn.commit().map_err(migrate_err)?;
    }
    Ok(())
}
