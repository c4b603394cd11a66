//! Turning queued events into records: one run per (memory, actor, session) group, every active
//! strategy of the memory (or the one strategy of a re-run job), then one transaction that
//! writes the records, records failures as jobs and takes the events off the queue. A crash
//! before that commit leaves the events queued, and the next run starts over (facts already
//! written are not written twice; slots are rewritten).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{messages_of, Extracted, ExtractionInput, Message, Slot};
use crate::kernel::error::Result;
use crate::services::memory::strategies::{resolve_template, Pipeline, Strategy, StrategyStatus};
use crate::services::memory::tables::index;
use crate::services::memory::tables::{Db, RecordWrite};
use crate::services::memory::tables::{JobRow, MemoryStatus, QueueRow};
use crate::services::memory::{ids, time, MemoryService};

/// Queue rows taken per pass.
const BATCH: usize = 256;

/// The status a started job has until its run settles (only FAILED jobs are listed).
pub const JOB_STARTED: &str = "STARTED";
pub const JOB_FAILED: &str = "FAILED";

type GroupKey = (String, String, String, Option<String>, Option<String>);

/// What one strategy's run produced.
struct Outcome {
    strategy: Strategy,
    result: std::result::Result<Vec<Extracted>, String>,
}

fn slot_key(strategy_id: &str, slot: Slot, actor: &str, session: &str) -> String {
    match slot {
        Slot::SessionSummary => format!("{strategy_id}|summary|{actor}|{session}"),
        Slot::Episode => format!("{strategy_id}|episode|{actor}|{session}"),
        Slot::Reflection => format!("{strategy_id}|reflection|{actor}"),
    }
}

impl MemoryService {
    /// Process up to one batch of the queue; returns how many queue rows it settled.
    pub async fn extraction_pass(&self) -> Result<usize> {
        let rows = self.store().read(|tx| Db::new(tx.txn).queued(BATCH)).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut groups: BTreeMap<GroupKey, Vec<QueueRow>> = BTreeMap::new();
        for row in rows {
            let key = (
                row.memory_id.clone(),
                row.actor_id.clone(),
                row.session_id.clone(),
                row.strategy_id.clone(),
                row.job_id.clone(),
            );
            groups.entry(key).or_default().push(row);
        }
        let mut settled = 0;
        for ((memory_id, actor, session, only_strategy, job_id), rows) in groups {
            settled += rows.len();
            self.run_group(memory_id, actor, session, only_strategy, job_id, rows).await?;
        }
        Ok(settled)
    }

    async fn run_group(
        &self,
        memory_id: String,
        actor: String,
        session: String,
        only_strategy: Option<String>,
        job_id: Option<String>,
        rows: Vec<QueueRow>,
    ) -> Result<()> {
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let event_ids: BTreeSet<String> = rows.iter().map(|r| r.event_id.clone()).collect();
        let mut variables: BTreeMap<String, String> = BTreeMap::new();
        for r in &rows {
            if let Some(Value::Object(vars)) = &r.variables {
                for (k, v) in vars {
                    variables.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
        }
        let now = time::now_ms();
        let (mid, a, s) = (memory_id.clone(), actor.clone(), session.clone());
        let snapshot = self
            .store()
            .read(move |tx| {
                let db = Db::new(tx.txn);
                let Some(memory) = db.memory_by_id(&mid)? else { return Ok(None) };
                let strategies = db.strategies(&mid)?;
                let events = db.session_events(&mid, &a, &s, now)?;
                Ok(Some((memory, strategies, events)))
            })
            .await?;
        let Some((memory, strategies, events)) = snapshot.filter(|(m, _, _)| m.status != MemoryStatus::Deleting) else {
            return self.store().write(move |tx| Db::new(tx.txn).dequeue(&seqs)).await;
        };
        // Events written with extractionMode SKIP stay out of long-term memory, summaries included.
        let session_messages: Vec<Message> = events
            .iter()
            .filter(|e| e.extract)
            .flat_map(|e| messages_of(&e.event_id, e.event_ts, &e.payload))
            .collect();
        let new_messages: Vec<Message> =
            session_messages.iter().filter(|m| event_ids.contains(&m.event_id)).cloned().collect();

        let mut outcomes = Vec::new();
        for strategy in strategies {
            let runs = only_strategy.as_ref().is_none_or(|id| id == &strategy.id)
                && matches!(strategy.status, StrategyStatus::Active | StrategyStatus::Creating)
                && strategy.pipeline() != Pipeline::SelfManaged;
            if !runs || new_messages.is_empty() {
                continue;
            }
            let (mid, sid, a, s) = (memory.id.clone(), strategy.id.clone(), actor.clone(), session.clone());
            let (previous, other_episodes) = self
                .store()
                .read(move |tx| {
                    let db = Db::new(tx.txn);
                    let previous = strategy_slot(&db, &mid, &sid, &a, &s)?;
                    let episodes = db
                        .records_in_slots(&mid, &format!("{sid}|episode|{a}|"))?
                        .into_iter()
                        .filter(|r| r.slot.as_deref() != Some(&slot_key(&sid, Slot::Episode, &a, &s)))
                        .map(|r| r.content)
                        .collect::<Vec<_>>();
                    Ok((previous, episodes))
                })
                .await?;
            let input = ExtractionInput {
                strategy: &strategy,
                actor_id: &actor,
                session_id: &session,
                new_messages: &new_messages,
                session_messages: &session_messages,
                previous: previous.as_deref(),
                other_episodes: &other_episodes,
            };
            let result = self.extractor().extract(input).await;
            if let Err(reason) = &result {
                tracing::warn!(memory = %memory.id, strategy = %strategy.id, %reason, "extraction failed");
            }
            outcomes.push(Outcome { strategy, result });
        }

        let expiry_day_ms = self.days_ms(1);
        let source_ts = new_messages.iter().map(|m| m.event_ts).max();
        let messages: Vec<Value> =
            new_messages.iter().map(|m| json!({"eventId": m.event_id, "messageIndex": m.index})).collect();
        let event_ids: Vec<String> = event_ids.into_iter().collect();
        let vars_value = (!variables.is_empty()).then(|| serde_json::to_value(&variables).unwrap_or_default());
        self.store()
            .write(move |tx| {
                let db = Db::new(tx.txn);
                let now = time::now_ms();
                let mut failed = false;
                for Outcome { strategy, result } in outcomes {
                    let extracted = match result {
                        Ok(e) => e,
                        Err(reason) => {
                            failed = true;
                            match &job_id {
                                Some(job) => db.set_job_status(job, JOB_FAILED, Some(&reason))?,
                                None => db.insert_job(
                                    &memory.id,
                                    &JobRow {
                                        seq: 0,
                                        job_id: ids::new_job_id(),
                                        strategy_id: strategy.id.clone(),
                                        actor_id: actor.clone(),
                                        session_id: session.clone(),
                                        event_ids: event_ids.clone(),
                                        messages: Value::Array(messages.clone()),
                                        variables: vars_value.clone(),
                                        status: JOB_FAILED.into(),
                                        failure_reason: Some(reason),
                                    },
                                    now,
                                )?,
                            }
                            continue;
                        }
                    };
                    let lookup = |var: &str| match var {
                        "actorId" => Some(actor.clone()),
                        "sessionId" => Some(session.clone()),
                        "memoryStrategyId" => Some(strategy.id.clone()),
                        other => variables.get(other).cloned(),
                    };
                    let namespace_of = |templates: &[String]| {
                        templates.first().map(|t| resolve_template(t, lookup)).unwrap_or(Some(String::new()))
                    };
                    let expires_at = strategy.spec.record_expiry_days.map(|d| now + d * expiry_day_ms);
                    for item in extracted {
                        let (content, slot, templates) = match &item {
                            Extracted::Fact(text) => (text, None, &strategy.spec.namespaces),
                            Extracted::Slot(slot, text) => {
                                let templates = match slot {
                                    Slot::Reflection => &strategy.spec.reflection_namespaces,
                                    _ => &strategy.spec.namespaces,
                                };
                                (text, Some(slot_key(&strategy.id, *slot, &actor, &session)), templates)
                            }
                        };
                        if content.trim().is_empty() {
                            continue;
                        }
                        let Some(namespace) = namespace_of(templates) else {
                            // CreateEvent checks the variables; a strategy changed since then.
                            continue;
                        };
                        let content: String = content.chars().take(super::rules::MAX_RECORD_CHARS).collect();
                        let existing = match &slot {
                            Some(key) => db.record_in_slot(&memory.id, key)?,
                            None => None,
                        };
                        if slot.is_none() && db.has_same_fact(&memory.id, &strategy.id, &namespace, &content, now)? {
                            continue;
                        }
                        let id = existing.as_ref().map(|r| r.id.clone()).unwrap_or_else(ids::new_record_id);
                        let write = RecordWrite {
                            id: &id,
                            strategy_id: &strategy.id,
                            namespace: &namespace,
                            content: &content,
                            metadata: None,
                            source_ts,
                            expires_at,
                            slot: slot.as_deref(),
                        };
                        let seq = match &existing {
                            Some(r) => {
                                db.rewrite_record(r.seq, &write)?;
                                r.seq
                            }
                            None => db.insert_record(&memory.id, &write, now)?,
                        };
                        index::index_record(tx.txn, memory.seq, seq, &content)?;
                    }
                }
                if let (Some(job), false) = (&job_id, failed) {
                    db.delete_job(job)?;
                }
                db.dequeue(&seqs)
            })
            .await
    }
}

/// The current text of this session's summary or episode for a strategy.
fn strategy_slot(
    db: &Db<'_>,
    memory_id: &str,
    strategy_id: &str,
    actor: &str,
    session: &str,
) -> Result<Option<String>> {
    for slot in [Slot::SessionSummary, Slot::Episode] {
        if let Some(r) = db.record_in_slot(memory_id, &slot_key(strategy_id, slot, actor, session))? {
            return Ok(Some(r.content));
        }
    }
    Ok(None)
}
