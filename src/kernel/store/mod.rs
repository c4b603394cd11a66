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
        // Cached like the other statements: `query_row` would compile the SQL on every call.
        let mut stmt = self.txn.prepare_cached(sql).map_err(db_error)?;
        stmt.query_row(p, f).optional().map_err(db_error)
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

/// The integrity check `Store::open_checking_aside` left running; `None` when it ran already.
pub struct IntegrityCheck(Option<(PathBuf, std::thread::JoinHandle<std::result::Result<(), OpenError>>)>);

impl IntegrityCheck {
    /// A check that has nothing left to do (an in-memory database was checked as it opened).
    pub fn done() -> IntegrityCheck {
        IntegrityCheck(None)
    }

    /// Blocks until the check has run: `Err` if the database is corrupt.
    pub fn wait(self) -> std::result::Result<(), OpenError> {
        match self.0 {
            None => Ok(()),
            Some((path, handle)) => {
                handle.join().unwrap_or_else(|_| Err(OpenError::Corrupt { path, detail: "its check panicked".into() }))
            }
        }
    }
}

/// The database file as a clean shutdown's check left it, in a file beside it: length, and the
/// modification and status-change times and inode. The status-change time cannot be set back by
/// any write to the file, so a file that matches is the one that was checked. The stamp is used
/// once (the start-up removes it), and only when no write-ahead log waits to be applied.
struct CheckedStamp;

impl CheckedStamp {
    fn stamp_path(db: &Path) -> PathBuf {
        db.with_extension("sqlite3.checked")
    }

    fn of(db: &Path) -> std::io::Result<String> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(db)?;
        Ok(format!(
            "{} {}.{} {}.{} {} {}\n",
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.ino(),
            m.dev()
        ))
    }

    fn write(db: &Path) -> std::io::Result<()> {
        let stamp = Self::of(db)?;
        let target = Self::stamp_path(db);
        let partial = target.with_extension("checked.partial");
        std::fs::write(&partial, stamp)?;
        std::fs::rename(&partial, &target)
    }

    /// Whether the stamp beside `db` matches it with an empty or absent WAL; the stamp is
    /// removed either way.
    fn take(db: &Path) -> bool {
        let target = Self::stamp_path(db);
        let Ok(recorded) = std::fs::read_to_string(&target) else { return false };
        let _ = std::fs::remove_file(&target);
        let wal_empty = match std::fs::metadata(db.with_extension("sqlite3-wal")) {
            Ok(m) => m.len() == 0,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        wal_empty && Self::of(db).is_ok_and(|now| now == recorded)
    }
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
        let (conn, path) = Self::open_file(data_dir)?;
        Self::prepare(conn, Some(path))
    }

    /// The database file inside `data_dir` (both made if missing), not yet configured.
    fn open_file(data_dir: &Path) -> std::result::Result<(Connection, PathBuf), OpenError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| OpenError::DataDir { dir: data_dir.to_path_buf(), source })?;
        let path = data_dir.join(DB_FILE_NAME);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| OpenError::Open { path: path.clone(), source })?;
        Ok((conn, path))
    }

    /// `open`, with the integrity check of an up-to-date database run on a connection of its own
    /// while the caller goes on starting (it reads every page: about 10 ms for 1 000 runtimes and
    /// 10 000 objects, most of a start-up); the caller waits for it before acting on the
    /// database's contents elsewhere (re-adopting sandboxes) and before serving. A database that
    /// needs migrating is checked first, as `open` does.
    /// A database a clean shutdown checked and nothing changed since (`CheckedStamp`) is not
    /// checked again.
    pub fn open_checking_aside(data_dir: &Path) -> std::result::Result<(Store, IntegrityCheck), OpenError> {
        // Taken (and removed) before the connection opens: the stamp speaks of the file as the
        // last clean shutdown left it, and holds for this start only.
        let checked_at_shutdown = CheckedStamp::take(&data_dir.join(DB_FILE_NAME));
        let (conn, path) = Self::open_file(data_dir)?;
        let conn = Self::configure(conn, &path)?;
        let up_to_date = migrations::up_to_date(&conn, &path)?;
        if !up_to_date {
            Self::quick_check(&conn, &path)?;
        } else if checked_at_shutdown {
            tracing::debug!("database checked at the last clean shutdown and unchanged since: not checked again");
        }
        if !up_to_date || checked_at_shutdown {
            return Ok((Self::migrated(conn, Some(path))?, IntegrityCheck(None)));
        }
        let checked = path.clone();
        let check = std::thread::Builder::new()
            .name("db-integrity".into())
            .spawn(move || {
                let conn = Connection::open_with_flags(
                    &checked,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|source| OpenError::Open { path: checked.clone(), source })?;
                Self::quick_check(&conn, &checked)
            })
            .map_err(|e| OpenError::Corrupt { path: path.clone(), detail: format!("cannot start its check: {e}") })?;
        Ok((Self::migrated(conn, Some(path.clone()))?, IntegrityCheck(Some((path, check)))))
    }

    /// A database that lives only in memory (tests, `--in-memory`).
    pub fn in_memory() -> std::result::Result<Store, OpenError> {
        let conn = Connection::open_in_memory()
            .map_err(|source| OpenError::Open { path: PathBuf::from(":memory:"), source })?;
        Self::prepare(conn, None)
    }

    fn prepare(conn: Connection, path: Option<PathBuf>) -> std::result::Result<Store, OpenError> {
        let shown = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
        let conn = Self::configure(conn, &shown)?;
        Self::quick_check(&conn, &shown)?;
        Self::migrated(conn, path)
    }

    /// WAL, durable commits, foreign keys, a statement cache; `path` is for messages.
    fn configure(conn: Connection, path: &Path) -> std::result::Result<Connection, OpenError> {
        let corrupt = |e: rusqlite::Error| OpenError::Corrupt { path: path.to_path_buf(), detail: e.to_string() };
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(corrupt)?;
        // Every query goes through the statement cache; the services together use far more than
        // rusqlite's default of 16 distinct statements, and a miss compiles the SQL again.
        conn.set_prepared_statement_cache_capacity(256);
        // journal_mode is the first statement that reads the file, so a non-database fails here.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(corrupt)?;
        if path != Path::new(":memory:") && !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("could not enable WAL (got {mode})"),
            });
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;").map_err(corrupt)?;
        Ok(conn)
    }

    fn quick_check(conn: &Connection, path: &Path) -> std::result::Result<(), OpenError> {
        let corrupt = |e: rusqlite::Error| OpenError::Corrupt { path: path.to_path_buf(), detail: e.to_string() };
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(corrupt)?;
        if check != "ok" {
            return Err(OpenError::Corrupt { path: path.to_path_buf(), detail: check });
        }
        Ok(())
    }

    fn migrated(mut conn: Connection, path: Option<PathBuf>) -> std::result::Result<Store, OpenError> {
        let shown = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
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

    /// Called on clean shutdown: flushes the WAL into the main file, then checks the database
    /// (`quick_check`) and, if it is sound, leaves a stamp of the file beside it so the next
    /// start-up can skip the check of a file nobody changed since (`CheckedStamp`). The check
    /// moves from the start-up, where a user waits for it, to the shutdown, where nobody does.
    pub fn close_cleanly(&self) {
        let conn = self.conn.lock();
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
            return;
        }
        let Some(path) = &self.path else { return };
        if let Err(e) = Self::quick_check(&conn, path) {
            tracing::error!(error = %e, "the database failed its check at shutdown; the next start-up checks it again");
            return;
        }
        if let Err(e) = CheckedStamp::write(path) {
            tracing::warn!(error = %e, "cannot record the database's check; the next start-up checks it again");
        }
    }
}

pub(crate) fn db_error(e: rusqlite::Error) -> Error {
    Error::internal(format!("database error: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_corrupt_page_is_found_by_the_check_run_aside_and_by_open() {
        let dir = tempfile::tempdir().unwrap();
        filled_and_closed_cleanly(dir.path()).await;
        // Up to date and sound: opened, and the check passes (run aside: without the clean
        // shutdown's stamp, as after a crash).
        std::fs::remove_file(CheckedStamp::stamp_path(&dir.path().join(DB_FILE_NAME))).unwrap();
        let (_, check) = Store::open_checking_aside(dir.path()).unwrap();
        assert!(check.0.is_some());
        check.wait().unwrap();

        // A page in the middle of the filler table overwritten: the file still opens (its header
        // is intact), the check run aside reports it, and so does the plain open.
        let file = dir.path().join(DB_FILE_NAME);
        let mut bytes = std::fs::read(&file).unwrap();
        assert!(bytes.len() > 40 * 4096);
        bytes[30 * 4096..31 * 4096].fill(0xFF);
        std::fs::write(&file, bytes).unwrap();
        let (_, check) = Store::open_checking_aside(dir.path()).unwrap();
        let err = check.wait().expect_err("the check must find the damage");
        assert!(matches!(err, OpenError::Corrupt { .. }) && err.to_string().contains("another --data-dir"), "{err}");
        assert!(matches!(Store::open(dir.path()).err(), Some(OpenError::Corrupt { .. })));
    }

    async fn filled_and_closed_cleanly(dir: &Path) {
        let store = Store::open(dir).unwrap();
        store
            .write(|tx| {
                tx.exec("CREATE TABLE filler (x BLOB)", [])?;
                for _ in 0..2000 {
                    tx.exec("INSERT INTO filler VALUES (randomblob(100))", [])?;
                }
                Ok(())
            })
            .await
            .unwrap();
        store.close_cleanly();
    }

    #[tokio::test]
    async fn a_database_checked_at_clean_shutdown_is_not_checked_again_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        filled_and_closed_cleanly(dir.path()).await;
        let stamp = CheckedStamp::stamp_path(&dir.path().join(DB_FILE_NAME));
        assert!(stamp.exists(), "a clean shutdown leaves its stamp");
        let (store, check) = Store::open_checking_aside(dir.path()).unwrap();
        assert!(check.0.is_none(), "checked at shutdown and unchanged: no check at start-up");
        assert!(!stamp.exists(), "the stamp holds for one start-up only");
        drop(store);
        // Closed without a clean shutdown (a crash): the next start-up checks.
        let (_, check) = Store::open_checking_aside(dir.path()).unwrap();
        assert!(check.0.is_some());
        check.wait().unwrap();
    }

    #[tokio::test]
    async fn a_database_changed_after_its_clean_shutdown_is_checked_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        filled_and_closed_cleanly(dir.path()).await;
        // Damaged while no emulator ran, with its length and modification time put back: the
        // status-change time still tells, and the check finds the damage.
        let file = dir.path().join(DB_FILE_NAME);
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[30 * 4096..31 * 4096].fill(0xFF);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, bytes).unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(modified).unwrap();
        let (_, check) = Store::open_checking_aside(dir.path()).unwrap();
        assert!(matches!(check.wait(), Err(OpenError::Corrupt { .. })));

        // A write-ahead log left beside the file (changes not yet in it) also means a check.
        let dir = tempfile::tempdir().unwrap();
        filled_and_closed_cleanly(dir.path()).await;
        std::fs::write(dir.path().join(DB_FILE_NAME).with_extension("sqlite3-wal"), b"not empty").unwrap();
        assert!(!CheckedStamp::take(&dir.path().join(DB_FILE_NAME)));
    }

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
