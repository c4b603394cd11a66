//! The memory service's background work: settling memories (CREATING → ACTIVE, strategies
//! CREATING → ACTIVE and DELETING → gone, DELETING memories removed), running extraction, and
//! sweeping expired events, records and empty sessions.
//!
//! The truth is always in SQLite, so after a crash or restart the loops pick up where they
//! stopped: a memory left CREATING settles, queued extraction runs.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::idempotency::TOKEN_TTL_MS;
use super::strategies::StrategyStatus;
use super::tables::index;
use super::tables::Db;
use super::tables::MemoryStatus;
use super::{time, MemoryService, EMPTY_SESSION_DAYS};
use crate::kernel::error::Result;

/// Without a wake-up, look again this often.
const IDLE_RESCAN: Duration = Duration::from_secs(1);
/// Expired data is hidden from reads at once; it is removed this often.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Expired records removed per sweep transaction (keeps each write short).
const SWEEP_BATCH: usize = 500;

impl MemoryService {
    /// Start the settling and the extraction loops; both end when `shutdown` is cancelled.
    pub fn spawn_background(&self, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let settle = {
            let this = self.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut last_sweep = std::time::Instant::now();
                loop {
                    if let Err(e) = this.settle_pass().await {
                        tracing::error!(error = %e, "memory settle pass failed; will retry");
                    }
                    if last_sweep.elapsed() >= SWEEP_EVERY {
                        last_sweep = std::time::Instant::now();
                        if let Err(e) = this.sweep_pass().await {
                            tracing::error!(error = %e, "memory expiry sweep failed; will retry");
                        }
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = this.inner.settle.notified() => {}
                        _ = tokio::time::sleep(IDLE_RESCAN) => {}
                    }
                }
            })
        };
        let extract = {
            let this = self.clone();
            let stop = shutdown;
            tokio::spawn(async move {
                loop {
                    let more = match this.extraction_pass().await {
                        Ok(n) => n > 0,
                        Err(e) => {
                            tracing::error!(error = %e, "memory extraction pass failed; will retry");
                            false
                        }
                    };
                    if more {
                        continue;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = this.inner.extract.notified() => {}
                        _ = tokio::time::sleep(IDLE_RESCAN) => {}
                    }
                }
            })
        };
        vec![settle, extract]
    }

    /// Move every memory in progress to where it is going. Public so tests can drive it.
    pub async fn settle_pass(&self) -> Result<()> {
        let busy = [MemoryStatus::Creating, MemoryStatus::Updating, MemoryStatus::Deleting];
        // Most passes find nothing to do; a read costs no write (nor a store generation).
        if self.store().read(move |tx| Ok(Db::new(tx.txn).memories_with_status(&busy)?.is_empty())).await? {
            return Ok(());
        }
        self.store()
            .write(|tx| {
                let db = Db::new(tx.txn);
                for mut memory in db.memories_with_status(&[MemoryStatus::Creating, MemoryStatus::Updating])? {
                    for mut s in db.strategies(&memory.id)? {
                        match s.status {
                            StrategyStatus::Creating => {
                                s.status = StrategyStatus::Active;
                                db.update_strategy(&memory.id, &s)?;
                            }
                            StrategyStatus::Deleting => db.delete_strategy(&memory.id, &s.id)?,
                            _ => {}
                        }
                    }
                    memory.status = MemoryStatus::Active;
                    db.update_memory(&memory)?;
                    tracing::info!(memory = %memory.id, "memory ACTIVE");
                }
                for memory in db.memories_with_status(&[MemoryStatus::Deleting])? {
                    index::drop_index(tx.txn, memory.seq)?;
                    db.delete_memory(&memory)?;
                    tracing::info!(memory = %memory.id, "memory deleted");
                }
                Ok(())
            })
            .await
    }

    /// Remove what has expired. Reads already hide it; this frees the space.
    pub async fn sweep_pass(&self) -> Result<()> {
        let now = time::now_ms();
        let empty_session_ms = self.days_ms(EMPTY_SESSION_DAYS);
        self.store()
            .write(move |tx| {
                let db = Db::new(tx.txn);
                db.purge_expired_events(now)?;
                db.purge_empty_sessions(now - empty_session_ms, now)?;
                db.purge_client_tokens(now - TOKEN_TTL_MS)?;
                for (record_seq, memory_seq) in db.expired_records(now, SWEEP_BATCH)? {
                    index::unindex_record(tx.txn, memory_seq, record_seq)?;
                    db.delete_record(record_seq)?;
                }
                Ok(())
            })
            .await
    }
}
