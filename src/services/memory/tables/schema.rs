//! Memory's own tables and their migrations.
//!
//! The steps are numbered by the `meta` key `schema.memory` (not the database's `user_version`,
//! which belongs to the store's shared migrations), so this service's schema evolves on its own.
//! Append only: never edit a shipped step.
//!
//! Each memory also gets a full-text index table of its own, `memory_index_<memories.seq>`
//! (see `retrieval`): BM25 statistics are then per memory, as the service keeps an index per
//! memory, and deleting a memory drops its index whole.

use rusqlite::{OptionalExtension, Transaction};

const META_KEY: &str = "schema.memory";

const MIGRATIONS: &[&str] = &[
    // 1: memories, strategies, events, sessions, branches, records, tags, client tokens, extraction
    // queue and jobs
    r#"
    CREATE TABLE memories (
        seq                INTEGER PRIMARY KEY AUTOINCREMENT,
        id                 TEXT NOT NULL UNIQUE,
        account            TEXT NOT NULL,
        region             TEXT NOT NULL,
        name               TEXT NOT NULL,
        arn                TEXT NOT NULL,
        description        TEXT,
        encryption_key_arn TEXT,
        execution_role_arn TEXT,
        event_expiry_days  INTEGER NOT NULL,
        status             TEXT NOT NULL,
        failure_reason     TEXT,
        settings           TEXT NOT NULL,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        UNIQUE (account, region, name)
    );
    CREATE TABLE memory_strategies (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        memory_id   TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        id          TEXT NOT NULL,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        description TEXT,
        spec        TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        UNIQUE (memory_id, id)
    );
    CREATE TABLE memory_sessions (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        memory_id     TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        actor_id      TEXT NOT NULL,
        session_id    TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        last_event_at INTEGER NOT NULL,
        UNIQUE (memory_id, actor_id, session_id)
    );
    CREATE INDEX memory_sessions_by_actor ON memory_sessions (memory_id, actor_id, seq);
    CREATE TABLE memory_events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        memory_id   TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        actor_id    TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        event_ts    INTEGER NOT NULL,
        branch      TEXT,
        payload     TEXT NOT NULL,
        metadata    TEXT,
        expires_at  INTEGER NOT NULL,
        extract     INTEGER NOT NULL,
        UNIQUE (memory_id, actor_id, session_id, event_id)
    );
    CREATE INDEX memory_events_in_order ON memory_events (memory_id, actor_id, session_id, event_ts, seq);
    CREATE INDEX memory_events_by_expiry ON memory_events (expires_at);
    CREATE TABLE memory_branches (
        memory_id     TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        actor_id      TEXT NOT NULL,
        session_id    TEXT NOT NULL,
        name          TEXT NOT NULL,
        root_event_id TEXT NOT NULL,
        parent        TEXT,
        created_at    INTEGER NOT NULL,
        PRIMARY KEY (memory_id, actor_id, session_id, name)
    );
    CREATE TABLE memory_records (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        memory_id   TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        id          TEXT NOT NULL UNIQUE,
        strategy_id TEXT NOT NULL,
        namespace   TEXT NOT NULL,
        content     TEXT NOT NULL,
        metadata    TEXT,
        source_ts   INTEGER,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        slot        TEXT
    );
    CREATE INDEX memory_records_by_namespace ON memory_records (memory_id, namespace, seq);
    CREATE UNIQUE INDEX memory_records_by_slot ON memory_records (memory_id, slot) WHERE slot IS NOT NULL;
    CREATE INDEX memory_records_by_expiry ON memory_records (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE memory_tags (
        memory_id TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        key       TEXT NOT NULL,
        value     TEXT NOT NULL,
        PRIMARY KEY (memory_id, key)
    );
    CREATE TABLE memory_client_tokens (
        account     TEXT NOT NULL,
        region      TEXT NOT NULL,
        operation   TEXT NOT NULL,
        token       TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (account, region, operation, token)
    );
    CREATE TABLE memory_extraction_queue (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        memory_id   TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        actor_id    TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        strategy_id TEXT,
        job_id      TEXT,
        variables   TEXT,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE memory_extraction_jobs (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id         TEXT NOT NULL UNIQUE,
        memory_id      TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
        strategy_id    TEXT NOT NULL,
        actor_id       TEXT NOT NULL,
        session_id     TEXT NOT NULL,
        event_ids      TEXT NOT NULL,
        messages       TEXT NOT NULL,
        variables      TEXT,
        status         TEXT NOT NULL,
        failure_reason TEXT,
        created_at     INTEGER NOT NULL
    );
    "#,
];

/// The schema version this build understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Why the memory tables could not be brought up to date; shown verbatim at start-up.
#[derive(Debug, thiserror::Error)]
#[error("memory tables: {0}")]
pub struct SchemaError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("schema version {found} is newer than this build understands ({known}); upgrade agentcore-local or use another --data-dir")]
    TooNew { found: i64, known: i64 },
    #[error("migration failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Bring the memory tables up to date inside `txn` (the caller commits).
pub fn migrate(txn: &Transaction<'_>) -> Result<(), MigrateError> {
    let found: i64 = txn
        .query_row("SELECT value FROM meta WHERE key = ?1", [META_KEY], |r| r.get::<_, String>(0))
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(MigrateError::TooNew { found, known: SCHEMA_VERSION });
    }
    for sql in MIGRATIONS.iter().skip(found as usize) {
        txn.execute_batch(sql)?;
    }
    txn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        rusqlite::params![META_KEY, SCHEMA_VERSION.to_string()],
    )?;
    Ok(())
}
