//! Each memory's full-text index: an FTS5 table `memory_index_<memories.seq>` whose rows carry the
//! record's `seq` as rowid (see `retrieval` for why FTS5 and how scores are made from it).

use rusqlite::{params, Transaction};

use super::scope::SearchScope;
use crate::kernel::error::Result;
use crate::kernel::store::db_error;

fn index_table(memory_seq: i64) -> String {
    format!("memory_index_{memory_seq}")
}

/// Create a memory's index (inside the CreateMemory transaction).
pub fn create_index(t: &Transaction<'_>, memory_seq: i64) -> Result<()> {
    t.execute_batch(&format!(
        "CREATE VIRTUAL TABLE IF NOT EXISTS {} USING fts5(content, tokenize = 'porter unicode61')",
        index_table(memory_seq)
    ))
    .map_err(db_error)
}

pub fn drop_index(t: &Transaction<'_>, memory_seq: i64) -> Result<()> {
    t.execute_batch(&format!("DROP TABLE IF EXISTS {}", index_table(memory_seq))).map_err(db_error)
}

/// Index (or re-index) a record's text under its row number.
pub fn index_record(t: &Transaction<'_>, memory_seq: i64, record_seq: i64, content: &str) -> Result<()> {
    let table = index_table(memory_seq);
    t.prepare_cached(&format!("DELETE FROM {table} WHERE rowid = ?1"))
        .and_then(|mut s| s.execute(params![record_seq]))
        .map_err(db_error)?;
    t.prepare_cached(&format!("INSERT INTO {table} (rowid, content) VALUES (?1, ?2)"))
        .and_then(|mut s| s.execute(params![record_seq, content]))
        .map_err(db_error)?;
    Ok(())
}

pub fn unindex_record(t: &Transaction<'_>, memory_seq: i64, record_seq: i64) -> Result<()> {
    t.prepare_cached(&format!("DELETE FROM {} WHERE rowid = ?1", index_table(memory_seq)))
        .and_then(|mut s| s.execute(params![record_seq]))
        .map_err(db_error)?;
    Ok(())
}

/// Rows in a memory's index (the N of IDF).
pub fn indexed_count(t: &Transaction<'_>, memory_seq: i64) -> Result<i64> {
    t.prepare_cached(&format!("SELECT count(*) FROM {}", index_table(memory_seq)))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db_error)
}

/// Rows that contain `phrase` (an FTS5 phrase, quoted).
pub fn term_count(t: &Transaction<'_>, memory_seq: i64, phrase: &str) -> Result<i64> {
    let table = index_table(memory_seq);
    t.prepare_cached(&format!("SELECT count(*) FROM {table} WHERE {table} MATCH ?1"))
        .and_then(|mut s| s.query_row(params![phrase], |r| r.get(0)))
        .map_err(db_error)
}

/// `(record seq, bm25())` of every record in `scope` that contains `phrase`.
pub fn term_scores(t: &Transaction<'_>, scope: &SearchScope<'_>, phrase: &str) -> Result<Vec<(i64, f64)>> {
    let table = index_table(scope.memory_seq);
    let (ns_clause, ns_value) = scope.namespace.sql(3);
    let mut stmt = t
        .prepare_cached(&format!(
            // CROSS JOIN keeps the full-text index as the outer loop (SQLite does not reorder
            // it): with the records outer, the planner ran the MATCH once per record in scope,
            // and a query over 10 000 records took minutes instead of milliseconds.
            "SELECT r.seq, bm25({table}) FROM {table} CROSS JOIN memory_records r ON r.seq = {table}.rowid \
             WHERE {table} MATCH ?1 AND r.memory_id = ?2 AND {ns_clause} AND (?4 IS NULL OR r.strategy_id = ?4) \
             AND (r.expires_at IS NULL OR r.expires_at > ?5)"
        ))
        .map_err(db_error)?;
    let rows = stmt
        .query_map(params![phrase, scope.memory_id, ns_value, scope.strategy_id, scope.now], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error)
}
