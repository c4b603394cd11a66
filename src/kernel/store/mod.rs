//! SQLite persistence: the only module that contains SQL.
//!
//! One connection behind a mutex, used from `spawn_blocking` so no tokio worker ever blocks on disk.
//! WAL with `synchronous=FULL`: a write is acknowledged only after its transaction is durable, so a
//! kill -9 at any point loses nothing that a client was told had happened. Every mutation runs in
//! one `BEGIN IMMEDIATE` transaction (`Store::write`).

mod idempotency;
mod migrations;

pub use idempotency::IdempotencyRecord;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::kernel::error::{Error, Result};

/// An open transaction, handed to the typed queries of each service's `tables` module (they add
/// their methods with their own `impl Tx` blocks).
pub struct Tx<'a> {
    pub(crate) txn: &'a rusqlite::Transaction<'a>,
}

impl<'a> Tx<'a> {
    pub fn new(txn: &'a Transaction<'a>) -> Self {
        Tx { txn }
    }

    pub fn query_opt<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.txn.query_row(sql, p, f).optional().map_err(db_error)
    }

    pub fn query_all<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.txn.prepare_cached(sql).map_err(db_error)?;
        let rows = stmt.query_map(p, f).map_err(db_error)?;
        rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db_error)
    }

    pub fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
        self.txn.prepare_cached(sql).and_then(|mut s| s.execute(p)).map_err(db_error)
    }
}

pub const DB_FILE_NAME: &str = "agentcore-local.sqlite3";

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
    /// Bumped after every committed write, so caches of reads know when they are stale.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

/// Why the database could not be opened; shown to the user verbatim at start-up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {dir}: {source}")]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot open database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("database {path} is corrupt or not an agentcore-local database ({detail}); move it aside or choose another --data-dir")]
    Corrupt { path: PathBuf, detail: String },
    #[error("database {path} has schema version {found}, newer than this build of agentcore-local understands ({known}); upgrade agentcore-local or use another --data-dir")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("migrating database {path} failed: {source}")]
    Migrate { path: PathBuf, source: rusqlite::Error },
}

impl Store {
    /// Open (creating if needed) the database inside `data_dir`.
    pub fn open(data_dir: &Path) -> std::result::Result<Store, OpenError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| OpenError::DataDir { dir: data_dir.to_path_buf(), source })?;
        let path = data_dir.join(DB_FILE_NAME);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| OpenError::Open { path: path.clone(), source })?;
        Self::prepare(conn, Some(path))
    }

    /// A database that lives only in memory (tests, `--in-memory`).
    pub fn in_memory() -> std::result::Result<Store, OpenError> {
        let conn = Connection::open_in_memory()
            .map_err(|source| OpenError::Open { path: PathBuf::from(":memory:"), source })?;
        Self::prepare(conn, None)
    }

    fn prepare(mut conn: Connection, path: Option<PathBuf>) -> std::result::Result<Store, OpenError> {
        let shown = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
        let corrupt = |e: rusqlite::Error| OpenError::Corrupt { path: shown.clone(), detail: e.to_string() };
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(corrupt)?;
        // journal_mode is the first statement that reads the file, so a non-database fails here.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(corrupt)?;
        if path.is_some() && !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Corrupt { path: shown, detail: format!("could not enable WAL (got {mode})") });
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;").map_err(corrupt)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(corrupt)?;
        if check != "ok" {
            return Err(OpenError::Corrupt { path: shown, detail: check });
        }
        migrations::migrate(&mut conn, &shown)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), path, generation: Arc::default() })
    }

    /// Changes whenever a write commits. Read it before a read to tag what the read returns.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Run `f` in an immediate (write) transaction, committed only if `f` succeeds.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.run(TransactionBehavior::Immediate, f).await
    }

    /// Run `f` in a read transaction (a consistent snapshot).
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.run(TransactionBehavior::Deferred, f).await
    }

    async fn run<T, F>(&self, behavior: TransactionBehavior, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let generation = self.generation.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock();
            let txn = guard.transaction_with_behavior(behavior).map_err(db_error)?;
            let result = f(&Tx::new(&txn))?;
            txn.commit().map_err(db_error)?;
            if matches!(behavior, TransactionBehavior::Immediate) {
                generation.fetch_add(1, std::sync::atomic::Ordering::Release);
            }
            Ok(result)
        })
        .await
        .map_err(|e| Error::internal(format!("store task failed: {e}")))?
    }

    /// Flush the WAL into the main file; called on clean shutdown.
    pub fn checkpoint(&self) {
        let conn = self.conn.lock();
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
    }
}

pub(crate) fn db_error(e: rusqlite::Error) -> Error {
    Error::internal(format!("database error: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE_NAME), vec![0x42u8; 8192]).unwrap();
        let err = Store::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("another --data-dir"), "{err}");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
        conn.execute_batch("PRAGMA user_version = 999;").unwrap();
        drop(conn);
        let err = Store::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, OpenError::TooNew { found: 999, .. }), "{err}");
    }
}
