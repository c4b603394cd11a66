//! AgentCore Memory: memories and their strategies (control plane, `bedrock-agentcore-control`),
//! events, long-term records, retrieval and extraction (data plane, `bedrock-agentcore`).
//!
//! `api/` is the wire (typed inputs per operation, output shapes, dispatch). The domain:
//! `memories` (CreateMemory … ListMemories and their background settling), `strategies`,
//! `events` (short-term memory, branches, sessions, actors), `records` (long-term memory),
//! `retrieval` (BM25 over a per-memory FTS5 index), `extraction/` (strategies turning events
//! into records, asynchronously), `lifecycle` (the background loops). `schema` and `sql` hold the
//! service's tables and its only SQL. Everything is scoped by (account, Region) through the
//! memory a request names.

pub mod api;
mod events;
pub mod extraction;
mod filters;
mod idempotency;
mod ids;
mod lifecycle;
mod memories;
mod overview;
mod records;
mod retrieval;
mod strategies;
mod tables;
pub mod tags;
mod time;
mod tokens;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::kernel::store::{Store, Tx};
pub use extraction::{MemoryModel, ModelRequest};
pub use ids::parse_memory_arn;
pub use overview::{MemoryActivity, MemoryDetail, MemoryName, MemoryOverview};
pub use strategies::Strategy;
pub use tables::schema::SchemaError;
use tables::Db;
pub use tables::{EventRow, MemoryRow, MemoryStatus, RecordRow};

/// Memories per account and Region (service quota).
pub const MAX_MEMORIES_PER_REGION: usize = 150;
/// Indexed metadata keys per memory (`IndexedKeysList` max).
pub const MAX_INDEXED_KEYS: usize = 10;
/// A `json` payload item's content, serialized (service limit).
pub const MAX_JSON_PAYLOAD_BYTES: usize = 100 * 1024;
/// One event, serialized (service limit).
pub const MAX_EVENT_BYTES: usize = 10 * 1024 * 1024;
/// Sessions without events are removed after a day ("Empty sessions are automatically deleted
/// after one day", ListSessions).
pub const EMPTY_SESSION_DAYS: i64 = 1;

/// Settings of the memory service.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// How long one day of `eventExpiryDuration`, record expiry and empty-session clean-up lasts,
    /// relative to a real day (tests shrink it).
    pub time_scale: f64,
    /// The model built-in strategies' prompts run on when a model is configured.
    pub default_model_id: String,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { time_scale: 1.0, default_model_id: extraction::DEFAULT_MODEL_ID.to_string() }
    }
}

/// The memory service: its store, its background work, and how it extracts.
#[derive(Clone)]
pub struct MemoryService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: MemoryConfig,
    /// Wakes the loop that settles CREATING/UPDATING/DELETING memories.
    settle: Notify,
    /// Wakes the extraction loop.
    extract: Notify,
    /// How strategies extract; replaced when a model provider is plugged in.
    extractor: parking_lot::RwLock<Arc<dyn extraction::Extractor>>,
}

impl MemoryService {
    /// Bring the memory tables up to date and set up extraction: through `model` when one is
    /// configured, otherwise with the deterministic rules (see `extraction::rules`).
    pub async fn open(
        store: Store,
        config: MemoryConfig,
        model: Option<Arc<dyn MemoryModel>>,
    ) -> std::result::Result<Self, SchemaError> {
        // A failed step returns an error, so its transaction rolls back whole.
        store
            .write(|tx| tables::schema::migrate(tx.txn).map_err(|e| Error::internal(e.to_string())))
            .await
            .map_err(|e| SchemaError(e.message))?;
        let extractor = extraction::pick(model, &config.default_model_id);
        Ok(MemoryService {
            inner: Arc::new(Inner {
                store,
                config,
                settle: Notify::new(),
                extract: Notify::new(),
                extractor: parking_lot::RwLock::new(extractor),
            }),
        })
    }

    /// Extract through `model` from now on (`None`: the deterministic rules). This is where the
    /// model provider plugs in once it is configured.
    pub fn set_model(&self, model: Option<Arc<dyn MemoryModel>>) {
        self.set_extractor(extraction::pick(model, &self.inner.config.default_model_id));
    }

    /// Extract with `extractor` from now on.
    pub fn set_extractor(&self, extractor: Arc<dyn extraction::Extractor>) {
        *self.inner.extractor.write() = extractor;
    }

    fn extractor(&self) -> Arc<dyn extraction::Extractor> {
        self.inner.extractor.read().clone()
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Milliseconds in `days` of expiry time.
    fn days_ms(&self, days: i64) -> i64 {
        (days as f64 * time::DAY_MS as f64 * self.inner.config.time_scale) as i64
    }
}

/// The memory a request names (by id or ARN) in the caller's account and Region; one being
/// deleted is already gone for requests.
fn live_memory(tx: &Tx<'_>, caller: &Caller, id_or_arn: &str) -> Result<MemoryRow> {
    let missing = || Error::not_found(format!("Memory not found: {id_or_arn}"));
    let id = ids::memory_id_of(caller, id_or_arn).ok_or_else(missing)?;
    match Db::new(tx.txn).memory(&caller.account, &caller.region, id)? {
        Some(m) if m.status != MemoryStatus::Deleting => Ok(m),
        _ => Err(missing()),
    }
}
