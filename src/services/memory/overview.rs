//! What the emulator's dashboard shows of memories: every memory with its counts, and one memory's
//! latest events and records. Reads only; across accounts (the dashboard is the operator's view).

use super::strategies::Strategy;
use super::tables::Db;
use super::tables::{EventRow, MemoryRow, RecordRow};
use super::{time, MemoryService};
use crate::kernel::error::Result;

/// One memory's row on the dashboard.
#[derive(Debug, Clone)]
pub struct MemoryOverview {
    pub memory: MemoryRow,
    pub strategies: usize,
    pub events: i64,
    pub records: i64,
}

/// One memory's page: its strategies and its latest events and records.
#[derive(Debug, Clone)]
pub struct MemoryDetail {
    pub memory: MemoryRow,
    pub strategies: Vec<Strategy>,
    pub events: Vec<EventRow>,
    pub records: Vec<RecordRow>,
}

/// The latest events and records across memories (the dashboard's recent memory activity), each
/// with the id and name of its memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryActivity {
    pub events: Vec<(MemoryName, EventRow)>,
    pub records: Vec<(MemoryName, RecordRow)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryName {
    pub id: String,
    pub name: String,
}

impl MemoryService {
    pub async fn overview(&self) -> Result<Vec<MemoryOverview>> {
        self.store()
            .read(|tx| {
                let db = Db::new(tx.txn);
                let now = time::now_ms();
                db.all_memories()?
                    .into_iter()
                    .map(|memory| {
                        Ok(MemoryOverview {
                            strategies: db.strategies(&memory.id)?.len(),
                            events: db.count_events(&memory.id, now)?,
                            records: db.count_records(&memory.id)?,
                            memory,
                        })
                    })
                    .collect()
            })
            .await
    }

    /// The latest `limit` events and records of all memories, whatever account they are in.
    pub async fn recent_activity(&self, limit: usize) -> Result<MemoryActivity> {
        self.store()
            .read(move |tx| {
                let db = Db::new(tx.txn);
                let now = time::now_ms();
                let names: std::collections::HashMap<String, String> =
                    db.all_memories()?.into_iter().map(|m| (m.id, m.name)).collect();
                let named = |id: String| MemoryName { name: names.get(&id).cloned().unwrap_or_default(), id };
                Ok(MemoryActivity {
                    events: db
                        .latest_events_everywhere(now, limit)?
                        .into_iter()
                        .map(|(id, e)| (named(id), e))
                        .collect(),
                    records: db
                        .latest_records_everywhere(now, limit)?
                        .into_iter()
                        .map(|(id, r)| (named(id), r))
                        .collect(),
                })
            })
            .await
    }

    /// The latest `limit` events and records of a memory, whatever account it is in.
    pub async fn detail(&self, memory_id: String, limit: usize) -> Result<Option<MemoryDetail>> {
        self.store()
            .read(move |tx| {
                let db = Db::new(tx.txn);
                let Some(memory) = db.memory_by_id(&memory_id)? else { return Ok(None) };
                let now = time::now_ms();
                Ok(Some(MemoryDetail {
                    strategies: db.strategies(&memory.id)?,
                    events: db.latest_events(&memory.id, now, limit)?,
                    records: db.latest_records(&memory.id, now, limit)?,
                    memory,
                }))
            })
            .await
    }
}
