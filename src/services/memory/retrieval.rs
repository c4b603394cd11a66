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
//! Scoring: FTS5 tokenizes (unicode61 with the Porter stemmer) and measures each query term's
//! saturated, length-normalised frequency in each record through `bm25()` on that term alone
//! (k1 = 1.2, b = 0.75). The terms are weighted with Lucene's IDF, `ln(1 + (N - n + 0.5) /
//! (n + 0.5))`, rather than FTS5's own, which drops to 1e-6 for a term in half the records or
//! more: in the small namespaces memories often have (a user's handful of facts), a record that
//! shares a term with the query should still score above nothing. `score` is the sum divided by
//! its largest possible value, `(k1 + 1) * Σ idf(term)`, so it lies in [0, 1): the share of the
//! query's weight a record carries. The service's score is a cosine similarity of embeddings
//! instead (README).

use std::collections::HashMap;

use rusqlite::Transaction;

pub use super::tables::SearchScope;
use super::tables::{index, Db, RecordRow};
use crate::kernel::error::Result;

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

/// FTS5's IDF of a term found in `n` of `total` rows (negative values floor at 1e-6, as bm25()
/// does): what divides a single-term bm25() back into the term's frequency part.
fn fts5_idf(total: f64, n: f64) -> f64 {
    let v = ((total - n + 0.5) / (n + 0.5)).ln();
    if v <= 0.0 {
        1e-6
    } else {
        v
    }
}

/// Lucene's BM25 IDF: positive for every term that occurs.
fn idf(total: f64, n: f64) -> f64 {
    (1.0 + (total - n + 0.5) / (n + 0.5)).ln()
}

/// A retrieved record and its relevance in [0, 1).
#[derive(Debug, Clone)]
pub struct Hit {
    pub record: RecordRow,
    pub score: f64,
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
    let total = index::indexed_count(t, scope.memory_seq)? as f64;
    let mut scores: HashMap<i64, f64> = HashMap::new();
    let mut bound = 0.0;
    for term in &terms {
        let phrase = phrase(term);
        let n = index::term_count(t, scope.memory_seq, &phrase)? as f64;
        if n == 0.0 {
            continue;
        }
        let (weight, unweight) = (idf(total, n), fts5_idf(total, n));
        bound += weight * (K1 + 1.0);
        for (seq, raw) in index::term_scores(t, scope, &phrase)? {
            // bm25() is negative, and for one term it is that term's IDF times its frequency part.
            *scores.entry(seq).or_default() += weight * (-raw / unweight);
        }
    }
    let mut ranked: Vec<(i64, f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    let db = Db::new(t);
    let mut hits = Vec::new();
    for (seq, score) in ranked {
        let Some(record) = db.record_by_seq(seq)? else { continue };
        if !accept(&record) {
            continue;
        }
        hits.push(Hit { record, score: if bound > 0.0 { (score / bound).clamp(0.0, 1.0) } else { 0.0 } });
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
    fn idf_stays_positive_where_fts5s_floors() {
        assert!(idf(10.0, 1.0) > idf(10.0, 3.0));
        assert_eq!(fts5_idf(2.0, 2.0), 1e-6);
        assert!(idf(2.0, 2.0) > 0.1 && idf(4.0, 2.0) > 0.5);
    }
}
