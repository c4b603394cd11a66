//! ListMemoryExtractionJobs and StartMemoryExtractionJob: extractions that failed, and running
//! one again.

use super::worker::{JOB_FAILED, JOB_STARTED};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::services::memory::events::Page;
use crate::services::memory::idempotency::{remember, replayed};
use crate::services::memory::tables::Db;
use crate::services::memory::tables::{JobRow, QueueRow};
use crate::services::memory::{live_memory, time, tokens, MemoryService};
use crate::services::runtime::domain::Idempotency;

/// ListMemoryExtractionJobs' `filter`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub strategy_id: Option<String>,
    pub session_id: Option<String>,
    pub actor_id: Option<String>,
}

impl JobFilter {
    fn keeps(&self, j: &JobRow) -> bool {
        self.strategy_id.as_ref().is_none_or(|s| s == &j.strategy_id)
            && self.session_id.as_ref().is_none_or(|s| s == &j.session_id)
            && self.actor_id.as_ref().is_none_or(|s| s == &j.actor_id)
    }
}

impl MemoryService {
    /// Failed extractions, oldest first: the jobs StartMemoryExtractionJob can run.
    pub async fn list_extraction_jobs(
        &self,
        caller: Caller,
        memory_id: String,
        filter: JobFilter,
        max_results: usize,
        next_token: Option<String>,
    ) -> Result<Page<JobRow>> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let list = format!("jobs|{}|{filter:?}", memory.id);
                let after = tokens::decode_number(next_token.as_deref(), &list)?.unwrap_or(0);
                let mut items: Vec<JobRow> = Db::new(tx.txn)
                    .jobs(&memory.id, JOB_FAILED, after)?
                    .into_iter()
                    .filter(|j| filter.keeps(j))
                    .collect();
                let next_token = (items.len() > max_results).then(|| {
                    items.truncate(max_results);
                    tokens::encode(&list, &items.last().map(|j| j.seq).unwrap_or(0).to_string())
                });
                Ok(Page { items, next_token })
            })
            .await
    }

    /// Queue a failed job's events again for its strategy.
    pub async fn start_extraction_job(
        &self,
        caller: Caller,
        memory_id: String,
        job_id: String,
        idem: Idempotency,
    ) -> Result<String> {
        let out = self
            .store()
            .write(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                if let Some(job) = replayed(tx, &caller, "StartMemoryExtractionJob", &idem)? {
                    return Ok(job);
                }
                let db = Db::new(tx.txn);
                let job = db
                    .job(&memory.id, &job_id)?
                    .ok_or_else(|| Error::not_found(format!("Extraction job not found: {job_id}")))?;
                if job.status != JOB_FAILED {
                    return Err(Error::validation(format!("Extraction job {job_id} is already running.")));
                }
                let now = time::now_ms();
                for event_id in &job.event_ids {
                    db.enqueue(
                        &QueueRow {
                            seq: 0,
                            memory_id: memory.id.clone(),
                            actor_id: job.actor_id.clone(),
                            session_id: job.session_id.clone(),
                            event_id: event_id.clone(),
                            strategy_id: Some(job.strategy_id.clone()),
                            job_id: Some(job.job_id.clone()),
                            variables: job.variables.clone(),
                        },
                        now,
                    )?;
                }
                db.set_job_status(&job.job_id, JOB_STARTED, None)?;
                remember(tx, &caller, "StartMemoryExtractionJob", &idem, job.job_id.clone())?;
                Ok(job.job_id)
            })
            .await?;
        self.inner.extract.notify_one();
        Ok(out)
    }
}
