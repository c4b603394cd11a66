//! Lexical retrieval: BM25 over each memory's own SQLite FTS5 index.
//!
//! Why FTS5 rather than the `bm25` or `tantivy` crates: it is already compiled into the bundled
//! SQLite that `rusqlite` ships (no new dependency), and its index lives in the same database and
//! the same transaction as the records. A record and its index entry therefore commit together,
//! a kill -9 can never leave them disagreeing, and nothing is rebuilt at start-up; the crates keep
//! their index in memory (`bm25`) or in files of their own (`tantivy`) that would have to be kept
//! consistent with SQLite by hand. Each memory has its own table, so term statistics (IDF, average
//! length) are per memory, like the service's per-memory index.
//!
//! Scores: FTS5's `bm25()` (k1 = 1.2, b = 0.75) divided by the largest value the query could
//! reach, `(k1 + 1) * Σ idf(term)`, so `score` is in [0, 1): the share of the query's BM25 weight
//! a record carries. The service's score is a cosine similarity of embeddings instead (README).

use rusqlite::{params, Transaction};

use super::records::NamespaceScope;
use super::rows::RecordRow;
use super::sql::{record_row, RECORD_COLS};
use crate::kernel::error::Result;
use crate::kernel::store::db_error;

/// FTS5's BM25 parameters (fts5_aux.c).
const K1: f64 = 1.2;
/// Query terms beyond this many are ignored (a query may be 10 000 characters).
const MAX_QUERY_TERMS: usize = 64;

/// Words that carry no topic; dropped from queries (documents keep them).
const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does",
    "for", "from", "had", "has", "have", "he", "her", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "me", "my", "of", "on", "or", "our", "she", "should", "so", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "us", "was", "we", "were", "what", "when", "where", "which", "who", "whom",
    "why", "will", "with", "would", "you", "your",
];

pub fn index_table(memory_seq: i64) -> String {
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

/// The words of a query worth searching for, lower-cased, without stop words or repeats.
pub fn query_terms(query: &str) -> Vec<String> {
    let words: Vec<String> =
        query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let mut terms: Vec<String> = words.iter().filter(|w| !STOP_WORDS.contains(&w.as_str())).cloned().collect();
    if terms.is_empty() {
        // A query of stop words only ("who am I?") still searches for what it says.
        terms = words;
    }
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    terms.truncate(MAX_QUERY_TERMS);
    terms
}

fn phrase(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

/// FTS5's IDF of a term found in `n` of `total` rows (negative values floor at 1e-6, as bm25() does).
fn idf(total: f64, n: f64) -> f64 {
    let v = ((total - n + 0.5) / (n + 0.5)).ln();
    if v <= 0.0 {
        1e-6
    } else {
        v
    }
}

/// A retrieved record and its relevance in [0, 1).
#[derive(Debug, Clone)]
pub struct Hit {
    pub record: RecordRow,
    pub score: f64,
}

/// Where to search and what else a record must satisfy.
pub struct SearchScope<'s> {
    pub memory_id: &'s str,
    pub memory_seq: i64,
    pub namespace: &'s NamespaceScope,
    pub strategy_id: Option<&'s str>,
    pub now: i64,
}

/// The `top_k` most relevant records that `accept` keeps, best first.
pub fn search(
    t: &Transaction<'_>,
    scope: &SearchScope<'_>,
    query: &str,
    top_k: usize,
    accept: impl Fn(&RecordRow) -> bool,
) -> Result<Vec<Hit>> {
    let terms = query_terms(query);
    if terms.is_empty() || top_k == 0 {
        return Ok(Vec::new());
    }
    let table = index_table(scope.memory_seq);
    let count = |expr: Option<&str>| -> Result<f64> {
        let n: i64 = match expr {
            None => t
                .prepare_cached(&format!("SELECT count(*) FROM {table}"))
                .and_then(|mut s| s.query_row([], |r| r.get(0))),
            Some(e) => t
                .prepare_cached(&format!("SELECT count(*) FROM {table} WHERE {table} MATCH ?1"))
                .and_then(|mut s| s.query_row(params![e], |r| r.get(0))),
        }
        .map_err(db_error)?;
        Ok(n as f64)
    };
    let total = count(None)?;
    let mut bound = 0.0;
    for term in &terms {
        bound += idf(total, count(Some(&phrase(term)))?) * (K1 + 1.0);
    }
    let expr: Vec<String> = terms.iter().map(|t| phrase(t)).collect();
    let (ns_clause, ns_value) = scope.namespace.sql(3);
    let mut stmt = t
        .prepare_cached(&format!(
            "SELECT {RECORD_COLS}, bm25({table}) FROM {table} JOIN memory_records r ON r.seq = {table}.rowid \
             WHERE {table} MATCH ?1 AND r.memory_id = ?2 AND {ns_clause} AND (?4 IS NULL OR r.strategy_id = ?4) \
             AND (r.expires_at IS NULL OR r.expires_at > ?5) ORDER BY bm25({table}), r.seq DESC"
        ))
        .map_err(db_error)?;
    let mut rows = stmt
        .query(params![expr.join(" OR "), scope.memory_id, ns_value, scope.strategy_id, scope.now])
        .map_err(db_error)?;
    let mut hits = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let record = record_row(row).map_err(db_error)?;
        if !accept(&record) {
            continue;
        }
        let raw: f64 = row.get(10).map_err(db_error)?;
        let score = if bound > 0.0 { (-raw / bound).clamp(0.0, 1.0) } else { 0.0 };
        hits.push(Hit { record, score });
        if hits.len() >= top_k {
            break;
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_lose_stop_words_and_repeats() {
        assert_eq!(
            query_terms("What does the user LIKE to drink? like, coffee!"),
            vec!["user", "like", "drink", "coffee"]
        );
        assert_eq!(query_terms("who am I"), vec!["who", "am", "i"]);
        assert!(query_terms("  ?! ").is_empty());
    }

    #[test]
    fn idf_floors_like_fts5() {
        assert!(idf(10.0, 1.0) > idf(10.0, 3.0));
        assert_eq!(idf(2.0, 2.0), 1e-6);
    }
}
