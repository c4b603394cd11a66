//! Long-term memory records: the batch operations, get, delete, list, and retrieval.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::events::Page;
use super::filters::{record_matches, MetaValue, RecordFilter};
use super::idempotency::{remember, replayed};
use super::retrieval::{self, Hit};
use super::strategies::ExpiryChange;
pub use super::tables::NamespaceScope;
use super::tables::{index, SearchScope};
use super::tables::{Db, RecordWrite};
use super::tables::{MemoryRow, RecordRow};
use super::{ids, live_memory, time, tokens, MemoryService};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::services::runtime::domain::Idempotency;

/// What records without a `memoryStrategyId` report as theirs (the output member is required).
pub const NO_STRATEGY: &str = "none";

/// One `MemoryRecordCreateInput`.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub request_identifier: String,
    pub namespace: Option<String>,
    pub content: String,
    pub timestamp: i64,
    pub strategy_id: Option<String>,
    pub metadata: Option<Value>,
}

/// One `MemoryRecordUpdateInput`: `None` leaves a part as it is.
#[derive(Debug, Clone)]
pub struct RecordChange {
    pub record_id: String,
    pub timestamp: i64,
    pub content: Option<String>,
    /// `Some(None)`: the record's namespaces become empty.
    pub namespace: Option<Option<String>>,
    pub strategy_id: Option<String>,
    pub metadata: Option<Value>,
}

/// One entry of a batch's `successfulRecords` or `failedRecords`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RecordOutcome {
    pub record_id: String,
    pub request_identifier: Option<String>,
    /// HTTP-style code and message of a failed entry.
    pub error: Option<(u16, String)>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct BatchOutcome {
    pub successful: Vec<RecordOutcome>,
    pub failed: Vec<RecordOutcome>,
}

impl BatchOutcome {
    fn ok(&mut self, record_id: String, request_identifier: Option<String>) {
        self.successful.push(RecordOutcome { record_id, request_identifier, error: None });
    }

    fn fail(&mut self, record_id: String, request_identifier: Option<String>, code: u16, message: String) {
        self.failed.push(RecordOutcome { record_id, request_identifier, error: Some((code, message)) });
    }
}

/// Which records a list or retrieval returns besides their namespace.
#[derive(Debug, Clone)]
pub struct RecordQuery {
    pub namespace: NamespaceScope,
    pub strategy_id: Option<String>,
    pub filters: Vec<RecordFilter>,
}

/// A record's metadata values have the types the memory's indexed keys declare.
fn check_metadata(memory: &MemoryRow, metadata: Option<&Value>) -> std::result::Result<(), String> {
    let Some(Value::Object(map)) = metadata else { return Ok(()) };
    for (key, value) in map {
        let declared = memory.settings.indexed_keys.iter().find(|k| &k.key == key);
        if let (Some(declared), Some(v)) = (declared, MetaValue::from_wire(value)) {
            if declared.kind != v.type_name() {
                return Err(format!(
                    "Metadata key '{key}' is indexed as {}; the value is a {}.",
                    declared.kind,
                    v.type_name()
                ));
            }
        }
    }
    Ok(())
}

/// Filters may only use the memory's indexed keys, and need a value unless they test existence.
fn check_filters(memory: &MemoryRow, filters: &[RecordFilter]) -> Result<()> {
    for f in filters {
        if !memory.settings.indexed_keys.iter().any(|k| k.key == f.key) {
            return Err(Error::validation(format!(
                "Metadata key '{}' is not an indexed key of memory {}; add it with indexedKeys first.",
                f.key, memory.id
            )));
        }
        if f.op.needs_value() && f.value.is_none() {
            return Err(Error::validation(format!("The filter on '{}' needs a right-hand value.", f.key)));
        }
    }
    Ok(())
}

fn record_not_found(id: &str) -> Error {
    Error::not_found(format!("Memory record not found: {id}"))
}

impl MemoryService {
    pub async fn batch_create_records(
        &self,
        caller: Caller,
        memory_id: String,
        records: Vec<NewRecord>,
        expiry_days: Option<ExpiryChange>,
        idem: Idempotency,
    ) -> Result<BatchOutcome> {
        let expiry_ms = match expiry_days {
            Some(ExpiryChange::Remove) => {
                return Err(Error::invalid_field(
                    "recordExpirySpecification.action",
                    "The REMOVE action does not apply when creating records.",
                ))
            }
            Some(ExpiryChange::Days(d)) => Some(self.days_ms(d)),
            None => None,
        };
        self.store()
            .write(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                if let Some(stored) = replayed(tx, &caller, "BatchCreateMemoryRecords", &idem)? {
                    if let Ok(outcome) = serde_json::from_str::<BatchOutcome>(&stored) {
                        return Ok(outcome);
                    }
                }
                let db = Db::new(tx.txn);
                let now = time::now_ms();
                let mut outcome = BatchOutcome::default();
                for r in records {
                    let id = ids::new_record_id();
                    if let Err(reason) = check_metadata(&memory, r.metadata.as_ref()) {
                        outcome.fail(id, Some(r.request_identifier), 400, reason);
                        continue;
                    }
                    let write = RecordWrite {
                        id: &id,
                        strategy_id: r.strategy_id.as_deref().unwrap_or(NO_STRATEGY),
                        namespace: r.namespace.as_deref().unwrap_or_default(),
                        content: &r.content,
                        metadata: r.metadata.as_ref(),
                        source_ts: Some(r.timestamp),
                        expires_at: expiry_ms.map(|ms| now + ms),
                        slot: None,
                    };
                    let seq = db.insert_record(&memory.id, &write, now)?;
                    index::index_record(tx.txn, memory.seq, seq, &r.content)?;
                    outcome.ok(id, Some(r.request_identifier));
                }
                let stored = serde_json::to_string(&outcome).unwrap_or_default();
                remember(tx, &caller, "BatchCreateMemoryRecords", &idem, stored)?;
                Ok(outcome)
            })
            .await
    }

    pub async fn batch_update_records(
        &self,
        caller: Caller,
        memory_id: String,
        changes: Vec<RecordChange>,
        expiry: Option<ExpiryChange>,
    ) -> Result<BatchOutcome> {
        let expiry_ms = match expiry {
            Some(ExpiryChange::Days(d)) => Some(Some(self.days_ms(d))),
            Some(ExpiryChange::Remove) => Some(None),
            None => None,
        };
        self.store()
            .write(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let db = Db::new(tx.txn);
                let now = time::now_ms();
                let mut outcome = BatchOutcome::default();
                for c in changes {
                    let Some(current) = db.record(&memory.id, &c.record_id, now)? else {
                        outcome.fail(
                            c.record_id.clone(),
                            None,
                            404,
                            format!("Memory record not found: {}", c.record_id),
                        );
                        continue;
                    };
                    if let Err(reason) = check_metadata(&memory, c.metadata.as_ref()) {
                        outcome.fail(c.record_id, None, 400, reason);
                        continue;
                    }
                    let content = c.content.unwrap_or(current.content.clone());
                    let namespace = match c.namespace {
                        Some(ns) => ns.unwrap_or_default(),
                        None => current.namespace.clone(),
                    };
                    let metadata = c.metadata.or(current.metadata.clone());
                    let write = RecordWrite {
                        id: &current.id,
                        strategy_id: c.strategy_id.as_deref().unwrap_or(&current.strategy_id),
                        namespace: &namespace,
                        content: &content,
                        metadata: metadata.as_ref(),
                        source_ts: Some(c.timestamp),
                        expires_at: match expiry_ms {
                            Some(ms) => ms.map(|ms| now + ms),
                            None => current.expires_at,
                        },
                        slot: current.slot.as_deref(),
                    };
                    db.rewrite_record(current.seq, &write)?;
                    if content != current.content {
                        index::index_record(tx.txn, memory.seq, current.seq, &content)?;
                    }
                    outcome.ok(c.record_id, None);
                }
                Ok(outcome)
            })
            .await
    }

    pub async fn batch_delete_records(
        &self,
        caller: Caller,
        memory_id: String,
        record_ids: Vec<String>,
    ) -> Result<BatchOutcome> {
        self.store()
            .write(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let db = Db::new(tx.txn);
                let now = time::now_ms();
                let mut outcome = BatchOutcome::default();
                for id in record_ids {
                    match db.record(&memory.id, &id, now)? {
                        Some(r) => {
                            index::unindex_record(tx.txn, memory.seq, r.seq)?;
                            db.delete_record(r.seq)?;
                            outcome.ok(id, None);
                        }
                        None => {
                            let message = format!("Memory record not found: {id}");
                            outcome.fail(id, None, 404, message);
                        }
                    }
                }
                Ok(outcome)
            })
            .await
    }

    pub async fn get_record(&self, caller: Caller, memory_id: String, record_id: String) -> Result<RecordRow> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                Db::new(tx.txn)
                    .record(&memory.id, &record_id, time::now_ms())?
                    .ok_or_else(|| record_not_found(&record_id))
            })
            .await
    }

    pub async fn delete_record(&self, caller: Caller, memory_id: String, record_id: String) -> Result<String> {
        self.store()
            .write(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let db = Db::new(tx.txn);
                let record =
                    db.record(&memory.id, &record_id, time::now_ms())?.ok_or_else(|| record_not_found(&record_id))?;
                index::unindex_record(tx.txn, memory.seq, record.seq)?;
                db.delete_record(record.seq)?;
                Ok(record_id)
            })
            .await
    }

    pub async fn list_records(
        &self,
        caller: Caller,
        memory_id: String,
        query: RecordQuery,
        max_results: usize,
        next_token: Option<String>,
    ) -> Result<Page<RecordRow>> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                check_filters(&memory, &query.filters)?;
                let list = format!("records|{}|{}|{:?}", memory.id, query.namespace.key(), query.strategy_id);
                let before = tokens::decode_number(next_token.as_deref(), &list)?.unwrap_or(i64::MAX);
                let mut items = Vec::new();
                Db::new(tx.txn).scan_records(
                    &memory.id,
                    &query.namespace,
                    query.strategy_id.as_deref(),
                    before,
                    time::now_ms(),
                    |r| {
                        if record_matches(r.metadata.as_ref(), &query.filters) {
                            items.push(r);
                        }
                        items.len() <= max_results
                    },
                )?;
                let next_token = (items.len() > max_results).then(|| {
                    items.truncate(max_results);
                    tokens::encode(&list, &items.last().map(|r| r.seq).unwrap_or(0).to_string())
                });
                Ok(Page { items, next_token })
            })
            .await
    }

    /// The `top_k` most relevant records for `search_query`, served `max_results` at a time.
    #[allow(clippy::too_many_arguments)]
    pub async fn retrieve_records(
        &self,
        caller: Caller,
        memory_id: String,
        query: RecordQuery,
        search_query: String,
        top_k: usize,
        max_results: usize,
        next_token: Option<String>,
    ) -> Result<Page<Hit>> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                check_filters(&memory, &query.filters)?;
                // A page token belongs to one query: the same ranking is recomputed for each page.
                let list = format!(
                    "retrieve|{}|{}|{:?}|{top_k}|{}",
                    memory.id,
                    query.namespace.key(),
                    query.strategy_id,
                    hex::encode(Sha256::digest(search_query.as_bytes()))
                );
                let offset = tokens::decode_number(next_token.as_deref(), &list)?.unwrap_or(0).max(0) as usize;
                let scope = SearchScope {
                    memory_id: &memory.id,
                    memory_seq: memory.seq,
                    namespace: &query.namespace,
                    strategy_id: query.strategy_id.as_deref(),
                    now: time::now_ms(),
                };
                let hits = retrieval::search(tx.txn, &scope, &search_query, top_k, |r| {
                    record_matches(r.metadata.as_ref(), &query.filters)
                })?;
                let end = (offset + max_results).min(hits.len());
                let next_token = (end < hits.len()).then(|| tokens::encode(&list, &end.to_string()));
                let items = hits.into_iter().skip(offset).take(end.saturating_sub(offset)).collect();
                Ok(Page { items, next_token })
            })
            .await
    }
}
