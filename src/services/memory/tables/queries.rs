//! The only SQL of the memory service: typed queries inside one store transaction.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde_json::Value;

use super::rows::{
    BranchRow, EventRow, JobRow, MemoryRow, MemorySettings, MemoryStatus, QueueRow, RecordRow, SessionRow, Strategy,
    StrategyKind, StrategySpec, StrategyStatus,
};
use super::scope::NamespaceScope;
use crate::kernel::error::Result;
use crate::kernel::store::db_error;

/// A `clientToken` of one operation in one account and Region.
pub struct TokenKey<'k> {
    pub account: &'k str,
    pub region: &'k str,
    pub operation: &'k str,
    pub token: &'k str,
}

pub struct Db<'a> {
    t: &'a Transaction<'a>,
}

fn bad_column(idx: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, msg.into())
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| bad_column(idx, e.to_string()))
}

fn opt_json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| bad_column(idx, e.to_string()))).transpose()
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

const MEMORY_COLS: &str = "seq, id, account, region, name, arn, description, encryption_key_arn, execution_role_arn, \
     event_expiry_days, status, failure_reason, settings, created_at, updated_at";

fn memory_row(row: &Row<'_>) -> rusqlite::Result<MemoryRow> {
    let status: String = row.get(10)?;
    Ok(MemoryRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        account: row.get(2)?,
        region: row.get(3)?,
        name: row.get(4)?,
        arn: row.get(5)?,
        description: row.get(6)?,
        encryption_key_arn: row.get(7)?,
        execution_role_arn: row.get(8)?,
        event_expiry_days: row.get(9)?,
        status: MemoryStatus::parse(&status).ok_or_else(|| bad_column(10, format!("unknown status {status}")))?,
        failure_reason: row.get(11)?,
        settings: json_col::<MemorySettings>(row, 12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
    })
}

const STRATEGY_COLS: &str = "id, name, kind, description, spec, status, created_at, updated_at";

fn strategy_row(row: &Row<'_>) -> rusqlite::Result<Strategy> {
    let kind: String = row.get(2)?;
    let status: String = row.get(5)?;
    Ok(Strategy {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: StrategyKind::parse(&kind).ok_or_else(|| bad_column(2, format!("unknown kind {kind}")))?,
        description: row.get(3)?,
        spec: json_col::<StrategySpec>(row, 4)?,
        status: StrategyStatus::parse(&status).ok_or_else(|| bad_column(5, format!("unknown status {status}")))?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

const EVENT_COLS: &str =
    "seq, actor_id, session_id, event_id, event_ts, branch, payload, metadata, expires_at, extract";

fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: row.get(0)?,
        actor_id: row.get(1)?,
        session_id: row.get(2)?,
        event_id: row.get(3)?,
        event_ts: row.get(4)?,
        branch: row.get(5)?,
        payload: json_col(row, 6)?,
        metadata: opt_json_col(row, 7)?,
        expires_at: row.get(8)?,
        extract: row.get(9)?,
    })
}

const RECORD_COLS: &str =
    "r.seq, r.id, r.strategy_id, r.namespace, r.content, r.metadata, r.source_ts, r.created_at, r.expires_at, r.slot";

fn record_row(row: &Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        strategy_id: row.get(2)?,
        namespace: row.get(3)?,
        content: row.get(4)?,
        metadata: opt_json_col(row, 5)?,
        source_ts: row.get(6)?,
        created_at: row.get(7)?,
        expires_at: row.get(8)?,
        slot: row.get(9)?,
    })
}

/// A record to insert or rewrite.
pub struct RecordWrite<'r> {
    pub id: &'r str,
    pub strategy_id: &'r str,
    pub namespace: &'r str,
    pub content: &'r str,
    pub metadata: Option<&'r Value>,
    pub source_ts: Option<i64>,
    pub expires_at: Option<i64>,
    pub slot: Option<&'r str>,
}

impl<'a> Db<'a> {
    pub fn new(t: &'a Transaction<'a>) -> Self {
        Db { t }
    }

    fn one<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.t.prepare_cached(sql).and_then(|mut s| s.query_row(p, f).optional()).map_err(db_error)
    }

    fn all<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.t.prepare_cached(sql).map_err(db_error)?;
        let rows = stmt.query_map(p, f).map_err(db_error)?;
        rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db_error)
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
        self.t.prepare_cached(sql).and_then(|mut s| s.execute(p)).map_err(db_error)
    }

    // ---- memories ----

    pub fn memory(&self, account: &str, region: &str, id: &str) -> Result<Option<MemoryRow>> {
        self.one(
            &format!("SELECT {MEMORY_COLS} FROM memories WHERE account = ?1 AND region = ?2 AND id = ?3"),
            params![account, region, id],
            memory_row,
        )
    }

    pub fn memory_by_id(&self, id: &str) -> Result<Option<MemoryRow>> {
        self.one(&format!("SELECT {MEMORY_COLS} FROM memories WHERE id = ?1"), params![id], memory_row)
    }

    pub fn memory_by_name(&self, account: &str, region: &str, name: &str) -> Result<Option<MemoryRow>> {
        self.one(
            &format!("SELECT {MEMORY_COLS} FROM memories WHERE account = ?1 AND region = ?2 AND name = ?3"),
            params![account, region, name],
            memory_row,
        )
    }

    pub fn count_memories(&self, account: &str, region: &str) -> Result<usize> {
        let n: Option<i64> = self.one(
            "SELECT count(*) FROM memories WHERE account = ?1 AND region = ?2",
            params![account, region],
            |r| r.get(0),
        )?;
        Ok(n.unwrap_or(0) as usize)
    }

    /// Memories of one account and Region in creation order, after `after_seq`.
    pub fn list_memories(&self, account: &str, region: &str, after_seq: i64, limit: usize) -> Result<Vec<MemoryRow>> {
        self.all(
            &format!("SELECT {MEMORY_COLS} FROM memories WHERE account = ?1 AND region = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4"),
            params![account, region, after_seq, limit as i64],
            memory_row,
        )
    }

    /// Every memory of every account (the dashboard).
    pub fn all_memories(&self) -> Result<Vec<MemoryRow>> {
        self.all(&format!("SELECT {MEMORY_COLS} FROM memories ORDER BY seq"), [], memory_row)
    }

    pub fn memories_with_status(&self, statuses: &[MemoryStatus]) -> Result<Vec<MemoryRow>> {
        let mut out = Vec::new();
        for s in statuses {
            out.extend(self.all(
                &format!("SELECT {MEMORY_COLS} FROM memories WHERE status = ?1 ORDER BY seq"),
                params![s.as_str()],
                memory_row,
            )?);
        }
        Ok(out)
    }

    pub fn insert_memory(&self, m: &MemoryRow) -> Result<i64> {
        self.exec(
            "INSERT INTO memories (id, account, region, name, arn, description, encryption_key_arn, execution_role_arn, \
             event_expiry_days, status, failure_reason, settings, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                m.id,
                m.account,
                m.region,
                m.name,
                m.arn,
                m.description,
                m.encryption_key_arn,
                m.execution_role_arn,
                m.event_expiry_days,
                m.status.as_str(),
                m.failure_reason,
                to_json(&m.settings),
                m.created_at,
                m.updated_at
            ],
        )?;
        Ok(self.t.last_insert_rowid())
    }

    /// Writes back every mutable column of `m`.
    pub fn update_memory(&self, m: &MemoryRow) -> Result<()> {
        self.exec(
            "UPDATE memories SET description = ?2, execution_role_arn = ?3, event_expiry_days = ?4, status = ?5, \
             failure_reason = ?6, settings = ?7, updated_at = ?8 WHERE id = ?1",
            params![
                m.id,
                m.description,
                m.execution_role_arn,
                m.event_expiry_days,
                m.status.as_str(),
                m.failure_reason,
                to_json(&m.settings),
                m.updated_at
            ],
        )?;
        Ok(())
    }

    /// Removes the memory and (by cascade) everything in it, its tags included.
    pub fn delete_memory(&self, m: &MemoryRow) -> Result<()> {
        self.exec("DELETE FROM memories WHERE id = ?1", params![m.id])?;
        Ok(())
    }

    // ---- tags ----

    pub fn tags(&self, memory_id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self
            .all("SELECT key, value FROM memory_tags WHERE memory_id = ?1", params![memory_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect())
    }

    pub fn put_tags(&self, memory_id: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        for (k, v) in tags {
            self.exec(
                "INSERT INTO memory_tags (memory_id, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (memory_id, key) DO UPDATE SET value = excluded.value",
                params![memory_id, k, v],
            )?;
        }
        Ok(())
    }

    pub fn remove_tags(&self, memory_id: &str, keys: &[String]) -> Result<()> {
        for k in keys {
            self.exec("DELETE FROM memory_tags WHERE memory_id = ?1 AND key = ?2", params![memory_id, k])?;
        }
        Ok(())
    }

    // ---- client tokens ----

    /// The (fingerprint, outcome, time) a `clientToken` was first used with.
    pub fn client_token(&self, key: &TokenKey<'_>) -> Result<Option<(String, String, i64)>> {
        self.one(
            "SELECT fingerprint, outcome, created_at FROM memory_client_tokens \
             WHERE account = ?1 AND region = ?2 AND operation = ?3 AND token = ?4",
            params![key.account, key.region, key.operation, key.token],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    pub fn put_client_token(&self, key: &TokenKey<'_>, fingerprint: &str, outcome: &str, now: i64) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO memory_client_tokens (account, region, operation, token, fingerprint, outcome, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![key.account, key.region, key.operation, key.token, fingerprint, outcome, now],
        )?;
        Ok(())
    }

    pub fn purge_client_tokens(&self, older_than: i64) -> Result<usize> {
        self.exec("DELETE FROM memory_client_tokens WHERE created_at < ?1", params![older_than])
    }

    // ---- strategies ----

    pub fn strategies(&self, memory_id: &str) -> Result<Vec<Strategy>> {
        self.all(
            &format!("SELECT {STRATEGY_COLS} FROM memory_strategies WHERE memory_id = ?1 ORDER BY seq"),
            params![memory_id],
            strategy_row,
        )
    }

    pub fn insert_strategy(&self, memory_id: &str, s: &Strategy) -> Result<()> {
        self.exec(
            "INSERT INTO memory_strategies (memory_id, id, name, kind, description, spec, status, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                memory_id,
                s.id,
                s.name,
                s.kind.as_str(),
                s.description,
                to_json(&s.spec),
                s.status.as_str(),
                s.created_at,
                s.updated_at
            ],
        )?;
        Ok(())
    }

    pub fn update_strategy(&self, memory_id: &str, s: &Strategy) -> Result<()> {
        self.exec(
            "UPDATE memory_strategies SET description = ?3, spec = ?4, status = ?5, updated_at = ?6 \
             WHERE memory_id = ?1 AND id = ?2",
            params![memory_id, s.id, s.description, to_json(&s.spec), s.status.as_str(), s.updated_at],
        )?;
        Ok(())
    }

    pub fn delete_strategy(&self, memory_id: &str, strategy_id: &str) -> Result<()> {
        self.exec("DELETE FROM memory_strategies WHERE memory_id = ?1 AND id = ?2", params![memory_id, strategy_id])?;
        Ok(())
    }

    // ---- sessions and branches ----

    /// Record that the session has an event at `now` (creating it if new).
    pub fn touch_session(&self, memory_id: &str, actor_id: &str, session_id: &str, now: i64) -> Result<()> {
        self.exec(
            "INSERT INTO memory_sessions (memory_id, actor_id, session_id, created_at, last_event_at) VALUES (?1, ?2, ?3, ?4, ?4) \
             ON CONFLICT (memory_id, actor_id, session_id) DO UPDATE SET last_event_at = excluded.last_event_at",
            params![memory_id, actor_id, session_id, now],
        )?;
        Ok(())
    }

    /// Sessions of an actor, newest first, before `before_seq`; with `live_events_at`, only
    /// sessions with an unexpired event.
    pub fn sessions(
        &self,
        memory_id: &str,
        actor_id: &str,
        before_seq: i64,
        live_events_at: Option<i64>,
        limit: usize,
    ) -> Result<Vec<SessionRow>> {
        let f = |r: &Row<'_>| {
            Ok(SessionRow { seq: r.get(0)?, actor_id: r.get(1)?, session_id: r.get(2)?, created_at: r.get(3)? })
        };
        match live_events_at {
            None => self.all(
                "SELECT seq, actor_id, session_id, created_at FROM memory_sessions \
                 WHERE memory_id = ?1 AND actor_id = ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4",
                params![memory_id, actor_id, before_seq, limit as i64],
                f,
            ),
            Some(now) => self.all(
                "SELECT s.seq, s.actor_id, s.session_id, s.created_at FROM memory_sessions s \
                 WHERE s.memory_id = ?1 AND s.actor_id = ?2 AND s.seq < ?3 AND EXISTS (SELECT 1 FROM memory_events e \
                 WHERE e.memory_id = s.memory_id AND e.actor_id = s.actor_id AND e.session_id = s.session_id AND e.expires_at > ?5) \
                 ORDER BY s.seq DESC LIMIT ?4",
                params![memory_id, actor_id, before_seq, limit as i64, now],
                f,
            ),
        }
    }

    /// Distinct actors in id order, after `after`.
    pub fn actors(&self, memory_id: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        self.all(
            "SELECT DISTINCT actor_id FROM memory_sessions WHERE memory_id = ?1 AND actor_id > ?2 ORDER BY actor_id LIMIT ?3",
            params![memory_id, after, limit as i64],
            |r| r.get(0),
        )
    }

    /// Sessions with no unexpired event whose last event is older than `idle_before`.
    pub fn purge_empty_sessions(&self, idle_before: i64, now: i64) -> Result<usize> {
        self.exec(
            "DELETE FROM memory_sessions WHERE last_event_at < ?1 AND NOT EXISTS (SELECT 1 FROM memory_events e \
             WHERE e.memory_id = memory_sessions.memory_id AND e.actor_id = memory_sessions.actor_id \
             AND e.session_id = memory_sessions.session_id AND e.expires_at > ?2)",
            params![idle_before, now],
        )
    }

    pub fn branch(&self, memory_id: &str, actor_id: &str, session_id: &str, name: &str) -> Result<Option<BranchRow>> {
        self.one(
            "SELECT name, root_event_id, parent FROM memory_branches \
             WHERE memory_id = ?1 AND actor_id = ?2 AND session_id = ?3 AND name = ?4",
            params![memory_id, actor_id, session_id, name],
            |r| Ok(BranchRow { name: r.get(0)?, root_event_id: r.get(1)?, parent: r.get(2)? }),
        )
    }

    pub fn insert_branch(
        &self,
        memory_id: &str,
        actor_id: &str,
        session_id: &str,
        b: &BranchRow,
        now: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO memory_branches (memory_id, actor_id, session_id, name, root_event_id, parent, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![memory_id, actor_id, session_id, b.name, b.root_event_id, b.parent, now],
        )?;
        Ok(())
    }

    // ---- events ----

    pub fn insert_event(&self, memory_id: &str, e: &EventRow) -> Result<i64> {
        self.exec(
            "INSERT INTO memory_events (memory_id, actor_id, session_id, event_id, event_ts, branch, payload, metadata, expires_at, extract) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                memory_id,
                e.actor_id,
                e.session_id,
                e.event_id,
                e.event_ts,
                e.branch,
                to_json(&e.payload),
                e.metadata.as_ref().map(to_json),
                e.expires_at,
                e.extract
            ],
        )?;
        Ok(self.t.last_insert_rowid())
    }

    /// One unexpired event.
    pub fn event(
        &self,
        memory_id: &str,
        actor_id: &str,
        session_id: &str,
        event_id: &str,
        now: i64,
    ) -> Result<Option<EventRow>> {
        self.one(
            &format!(
                "SELECT {EVENT_COLS} FROM memory_events WHERE memory_id = ?1 AND actor_id = ?2 AND session_id = ?3 \
                 AND event_id = ?4 AND expires_at > ?5"
            ),
            params![memory_id, actor_id, session_id, event_id, now],
            event_row,
        )
    }

    pub fn delete_event(&self, memory_id: &str, actor_id: &str, session_id: &str, event_id: &str) -> Result<usize> {
        self.exec(
            "DELETE FROM memory_events WHERE memory_id = ?1 AND actor_id = ?2 AND session_id = ?3 AND event_id = ?4",
            params![memory_id, actor_id, session_id, event_id],
        )
    }

    /// Unexpired events of a session, newest first, strictly before the `(event_ts, seq)` cursor,
    /// handed one at a time to `visit` until it returns false.
    pub fn scan_events_newest_first(
        &self,
        memory_id: &str,
        actor_id: &str,
        session_id: &str,
        before: Option<(i64, i64)>,
        now: i64,
        mut visit: impl FnMut(EventRow) -> bool,
    ) -> Result<()> {
        let (ts, seq) = before.unwrap_or((i64::MAX, i64::MAX));
        let mut stmt = self
            .t
            .prepare_cached(&format!(
                "SELECT {EVENT_COLS} FROM memory_events WHERE memory_id = ?1 AND actor_id = ?2 AND session_id = ?3 \
                 AND expires_at > ?6 AND (event_ts < ?4 OR (event_ts = ?4 AND seq < ?5)) ORDER BY event_ts DESC, seq DESC"
            ))
            .map_err(db_error)?;
        let mut rows = stmt.query(params![memory_id, actor_id, session_id, ts, seq, now]).map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            if !visit(event_row(row).map_err(db_error)?) {
                break;
            }
        }
        Ok(())
    }

    /// Unexpired events of a session in time order (what extraction reads).
    pub fn session_events(&self, memory_id: &str, actor_id: &str, session_id: &str, now: i64) -> Result<Vec<EventRow>> {
        self.all(
            &format!(
                "SELECT {EVENT_COLS} FROM memory_events WHERE memory_id = ?1 AND actor_id = ?2 AND session_id = ?3 \
                 AND expires_at > ?4 ORDER BY event_ts, seq"
            ),
            params![memory_id, actor_id, session_id, now],
            event_row,
        )
    }

    /// The memory's latest unexpired events across actors and sessions (the dashboard).
    pub fn latest_events(&self, memory_id: &str, now: i64, limit: usize) -> Result<Vec<EventRow>> {
        self.all(
            &format!("SELECT {EVENT_COLS} FROM memory_events WHERE memory_id = ?1 AND expires_at > ?2 ORDER BY seq DESC LIMIT ?3"),
            params![memory_id, now, limit as i64],
            event_row,
        )
    }

    /// The latest `limit` events of every memory, newest first, each with its memory's id. (`+`
    /// keeps SQLite on the primary key, read backwards, instead of sorting the expiry index.)
    pub fn latest_events_everywhere(&self, now: i64, limit: usize) -> Result<Vec<(String, EventRow)>> {
        self.all(
            &format!(
                "SELECT {EVENT_COLS}, memory_id FROM memory_events WHERE +expires_at > ?1 ORDER BY seq DESC LIMIT ?2"
            ),
            params![now, limit as i64],
            |r| Ok((r.get(10)?, event_row(r)?)),
        )
    }

    pub fn purge_expired_events(&self, now: i64) -> Result<usize> {
        self.exec("DELETE FROM memory_events WHERE expires_at <= ?1", params![now])
    }

    // ---- records ----

    pub fn insert_record(&self, memory_id: &str, r: &RecordWrite<'_>, now: i64) -> Result<i64> {
        self.exec(
            "INSERT INTO memory_records (memory_id, id, strategy_id, namespace, content, metadata, source_ts, created_at, expires_at, slot) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                memory_id,
                r.id,
                r.strategy_id,
                r.namespace,
                r.content,
                r.metadata.map(to_json),
                r.source_ts,
                now,
                r.expires_at,
                r.slot
            ],
        )?;
        Ok(self.t.last_insert_rowid())
    }

    /// Rewrites a record's content and attributes (its id, creation time and slot stay).
    pub fn rewrite_record(&self, seq: i64, r: &RecordWrite<'_>) -> Result<()> {
        self.exec(
            "UPDATE memory_records SET strategy_id = ?2, namespace = ?3, content = ?4, metadata = ?5, source_ts = ?6, expires_at = ?7 \
             WHERE seq = ?1",
            params![seq, r.strategy_id, r.namespace, r.content, r.metadata.map(to_json), r.source_ts, r.expires_at],
        )?;
        Ok(())
    }

    /// One unexpired record of a memory.
    pub fn record(&self, memory_id: &str, id: &str, now: i64) -> Result<Option<RecordRow>> {
        self.one(
            &format!(
                "SELECT {RECORD_COLS} FROM memory_records r WHERE r.memory_id = ?1 AND r.id = ?2 \
                 AND (r.expires_at IS NULL OR r.expires_at > ?3)"
            ),
            params![memory_id, id, now],
            record_row,
        )
    }

    pub fn record_by_seq(&self, seq: i64) -> Result<Option<RecordRow>> {
        self.one(&format!("SELECT {RECORD_COLS} FROM memory_records r WHERE r.seq = ?1"), params![seq], record_row)
    }

    pub fn record_in_slot(&self, memory_id: &str, slot: &str) -> Result<Option<RecordRow>> {
        self.one(
            &format!("SELECT {RECORD_COLS} FROM memory_records r WHERE r.memory_id = ?1 AND r.slot = ?2"),
            params![memory_id, slot],
            record_row,
        )
    }

    /// Records whose slot starts with `prefix` (an actor's episodes).
    pub fn records_in_slots(&self, memory_id: &str, prefix: &str) -> Result<Vec<RecordRow>> {
        self.all(
            &format!(
                "SELECT {RECORD_COLS} FROM memory_records r WHERE r.memory_id = ?1 AND substr(r.slot, 1, length(?2)) = ?2 \
                 ORDER BY r.seq"
            ),
            params![memory_id, prefix],
            record_row,
        )
    }

    /// An unexpired record of this strategy in this namespace with the same text (case and
    /// surrounding space aside): extraction does not write a fact twice.
    pub fn has_same_fact(
        &self,
        memory_id: &str,
        strategy_id: &str,
        namespace: &str,
        content: &str,
        now: i64,
    ) -> Result<bool> {
        Ok(self
            .one(
                "SELECT 1 FROM memory_records WHERE memory_id = ?1 AND namespace = ?2 AND strategy_id = ?3 \
                 AND lower(trim(content)) = lower(trim(?4)) AND (expires_at IS NULL OR expires_at > ?5) LIMIT 1",
                params![memory_id, namespace, strategy_id, content, now],
                |_| Ok(()),
            )?
            .is_some())
    }

    pub fn delete_record(&self, seq: i64) -> Result<()> {
        self.exec("DELETE FROM memory_records WHERE seq = ?1", params![seq])?;
        Ok(())
    }

    /// Unexpired records, newest first, before `before_seq`, in a namespace (exact) or under a
    /// namespace path, handed to `visit` until it returns false.
    pub fn scan_records(
        &self,
        memory_id: &str,
        namespace: &NamespaceScope,
        strategy_id: Option<&str>,
        before_seq: i64,
        now: i64,
        mut visit: impl FnMut(RecordRow) -> bool,
    ) -> Result<()> {
        let (clause, ns) = namespace.sql(2);
        let mut stmt = self
            .t
            .prepare_cached(&format!(
                "SELECT {RECORD_COLS} FROM memory_records r WHERE r.memory_id = ?1 AND {clause} \
                 AND (?3 IS NULL OR r.strategy_id = ?3) AND r.seq < ?4 AND (r.expires_at IS NULL OR r.expires_at > ?5) \
                 ORDER BY r.seq DESC"
            ))
            .map_err(db_error)?;
        let mut rows = stmt.query(params![memory_id, ns, strategy_id, before_seq, now]).map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            if !visit(record_row(row).map_err(db_error)?) {
                break;
            }
        }
        Ok(())
    }

    /// The memory's latest unexpired records (the dashboard).
    pub fn latest_records(&self, memory_id: &str, now: i64, limit: usize) -> Result<Vec<RecordRow>> {
        self.all(
            &format!(
                "SELECT {RECORD_COLS} FROM memory_records r WHERE r.memory_id = ?1 AND (r.expires_at IS NULL OR r.expires_at > ?2) \
                 ORDER BY r.seq DESC LIMIT ?3"
            ),
            params![memory_id, now, limit as i64],
            record_row,
        )
    }

    /// The latest `limit` records of every memory, newest first, each with its memory's id.
    pub fn latest_records_everywhere(&self, now: i64, limit: usize) -> Result<Vec<(String, RecordRow)>> {
        self.all(
            &format!(
                "SELECT {RECORD_COLS}, r.memory_id FROM memory_records r WHERE (r.expires_at IS NULL OR +r.expires_at > ?1) \
                 ORDER BY r.seq DESC LIMIT ?2"
            ),
            params![now, limit as i64],
            |r| Ok((r.get(10)?, record_row(r)?)),
        )
    }

    pub fn expired_records(&self, now: i64, limit: usize) -> Result<Vec<(i64, i64)>> {
        self.all(
            "SELECT r.seq, m.seq FROM memory_records r JOIN memories m ON m.id = r.memory_id \
             WHERE r.expires_at IS NOT NULL AND r.expires_at <= ?1 LIMIT ?2",
            params![now, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    pub fn count_records(&self, memory_id: &str) -> Result<i64> {
        Ok(self
            .one("SELECT count(*) FROM memory_records WHERE memory_id = ?1", params![memory_id], |r| r.get(0))?
            .unwrap_or(0))
    }

    pub fn count_events(&self, memory_id: &str, now: i64) -> Result<i64> {
        Ok(self
            .one(
                "SELECT count(*) FROM memory_events WHERE memory_id = ?1 AND expires_at > ?2",
                params![memory_id, now],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    // ---- extraction queue and jobs ----

    pub fn enqueue(&self, q: &QueueRow, now: i64) -> Result<()> {
        self.exec(
            "INSERT INTO memory_extraction_queue (memory_id, actor_id, session_id, event_id, strategy_id, job_id, variables, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                q.memory_id,
                q.actor_id,
                q.session_id,
                q.event_id,
                q.strategy_id,
                q.job_id,
                q.variables.as_ref().map(to_json),
                now
            ],
        )?;
        Ok(())
    }

    pub fn queued(&self, limit: usize) -> Result<Vec<QueueRow>> {
        self.all(
            "SELECT seq, memory_id, actor_id, session_id, event_id, strategy_id, job_id, variables \
             FROM memory_extraction_queue ORDER BY seq LIMIT ?1",
            params![limit as i64],
            |r| {
                Ok(QueueRow {
                    seq: r.get(0)?,
                    memory_id: r.get(1)?,
                    actor_id: r.get(2)?,
                    session_id: r.get(3)?,
                    event_id: r.get(4)?,
                    strategy_id: r.get(5)?,
                    job_id: r.get(6)?,
                    variables: opt_json_col(r, 7)?,
                })
            },
        )
    }

    pub fn dequeue(&self, seqs: &[i64]) -> Result<()> {
        for seq in seqs {
            self.exec("DELETE FROM memory_extraction_queue WHERE seq = ?1", params![seq])?;
        }
        Ok(())
    }

    pub fn insert_job(&self, memory_id: &str, j: &JobRow, now: i64) -> Result<()> {
        self.exec(
            "INSERT INTO memory_extraction_jobs (job_id, memory_id, strategy_id, actor_id, session_id, event_ids, messages, \
             variables, status, failure_reason, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                j.job_id,
                memory_id,
                j.strategy_id,
                j.actor_id,
                j.session_id,
                to_json(&j.event_ids),
                to_json(&j.messages),
                j.variables.as_ref().map(to_json),
                j.status,
                j.failure_reason,
                now
            ],
        )?;
        Ok(())
    }

    fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
        Ok(JobRow {
            seq: r.get(0)?,
            job_id: r.get(1)?,
            strategy_id: r.get(2)?,
            actor_id: r.get(3)?,
            session_id: r.get(4)?,
            event_ids: json_col(r, 5)?,
            messages: json_col(r, 6)?,
            variables: opt_json_col(r, 7)?,
            status: r.get(8)?,
            failure_reason: r.get(9)?,
        })
    }

    pub fn job(&self, memory_id: &str, job_id: &str) -> Result<Option<JobRow>> {
        self.one(
            "SELECT seq, job_id, strategy_id, actor_id, session_id, event_ids, messages, variables, status, failure_reason \
             FROM memory_extraction_jobs WHERE memory_id = ?1 AND job_id = ?2",
            params![memory_id, job_id],
            Self::job_row,
        )
    }

    /// Jobs with `status`, oldest first, after `after_seq`.
    pub fn jobs(&self, memory_id: &str, status: &str, after_seq: i64) -> Result<Vec<JobRow>> {
        self.all(
            "SELECT seq, job_id, strategy_id, actor_id, session_id, event_ids, messages, variables, status, failure_reason \
             FROM memory_extraction_jobs WHERE memory_id = ?1 AND status = ?2 AND seq > ?3 ORDER BY seq",
            params![memory_id, status, after_seq],
            Self::job_row,
        )
    }

    pub fn set_job_status(&self, job_id: &str, status: &str, failure_reason: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE memory_extraction_jobs SET status = ?2, failure_reason = coalesce(?3, failure_reason) WHERE job_id = ?1",
            params![job_id, status, failure_reason],
        )?;
        Ok(())
    }

    pub fn delete_job(&self, job_id: &str) -> Result<()> {
        self.exec("DELETE FROM memory_extraction_jobs WHERE job_id = ?1", params![job_id])?;
        Ok(())
    }
}
