//! The control plane: CreateMemory, GetMemory, UpdateMemory, DeleteMemory, ListMemories, and
//! tags on memory ARNs.
//!
//! Mutations commit their intent (CREATING, a strategy CREATING or DELETING, DELETING) in one
//! transaction and wake `lifecycle`, which settles them in the background, as the service
//! answers 202 and lets clients poll GetMemory.

use std::collections::BTreeMap;

use serde_json::Value;

use super::idempotency::{remember, replayed};
use super::strategies::{
    check_set, check_templates, ExpiryChange, NewStrategy, Strategy, StrategyStatus, StrategyUpdates,
};
use super::tables::index;
use super::tables::Db;
use super::tables::{IndexedKey, MemoryRow, MemorySettings, MemoryStatus, NamespaceKey};
use super::{ids, live_memory, tokens, MemoryService, MAX_INDEXED_KEYS, MAX_MEMORIES_PER_REGION};
use crate::kernel::caller::Caller;
use crate::kernel::clock::now_ms;
use crate::kernel::error::{Error, Result};
use crate::services::runtime::domain::{Idempotency, MAX_TAGS_PER_RESOURCE};

/// CreateMemory's request, typed.
#[derive(Debug, Clone)]
pub struct NewMemory {
    pub name: String,
    pub description: Option<String>,
    pub encryption_key_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub event_expiry_days: i64,
    pub strategies: Vec<NewStrategy>,
    pub settings: MemorySettings,
    pub tags: BTreeMap<String, String>,
}

/// UpdateMemory's request, typed: `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct MemoryChanges {
    pub description: Option<String>,
    pub event_expiry_days: Option<i64>,
    pub execution_role_arn: Option<String>,
    pub strategies: StrategyUpdates,
    pub add_indexed_keys: Vec<IndexedKey>,
    pub namespace_keys: Option<Vec<NamespaceKey>>,
    pub stream_delivery: Option<Value>,
}

/// A memory and its strategies (those not yet removed).
#[derive(Debug, Clone)]
pub struct MemoryView {
    pub memory: MemoryRow,
    pub strategies: Vec<Strategy>,
}

fn view(db: &Db<'_>, memory: MemoryRow) -> Result<MemoryView> {
    let strategies = db.strategies(&memory.id)?;
    Ok(MemoryView { memory, strategies })
}

fn check_indexed_keys(keys: &[IndexedKey]) -> Result<()> {
    if keys.len() > MAX_INDEXED_KEYS {
        return Err(Error::validation(format!(
            "A memory can index at most {MAX_INDEXED_KEYS} metadata keys; this request would give it {}.",
            keys.len()
        )));
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].iter().any(|o| o.key == k.key) {
            return Err(Error::validation(format!("Metadata key '{}' is already indexed.", k.key)));
        }
    }
    Ok(())
}

/// Every namespace template of every strategy uses only known variables.
fn check_strategy_templates<'s>(
    strategies: impl IntoIterator<Item = (&'s Vec<String>, &'s Vec<String>)>,
    keys: &[NamespaceKey],
) -> Result<()> {
    let declared: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
    for (namespaces, reflection) in strategies {
        check_templates(namespaces.iter().chain(reflection.iter()), &declared)?;
    }
    Ok(())
}

fn new_strategy_row(s: NewStrategy, now: i64) -> Strategy {
    Strategy {
        id: ids::new_named_id(&s.name),
        name: s.name,
        kind: s.kind,
        description: s.description,
        spec: s.spec,
        status: StrategyStatus::Creating,
        created_at: now,
        updated_at: now,
    }
}

fn memory_by_replay(db: &Db<'_>, id: &str) -> Result<Option<MemoryView>> {
    db.memory_by_id(id)?.map(|m| view(db, m)).transpose()
}

impl MemoryService {
    pub async fn create_memory(&self, caller: Caller, req: NewMemory, idem: Idempotency) -> Result<MemoryView> {
        let out = self
            .store()
            .write(move |tx| {
                let db = Db::new(tx.txn);
                if let Some(id) = replayed(tx, &caller, "CreateMemory", &idem)? {
                    if let Some(v) = memory_by_replay(&db, &id)? {
                        return Ok(v);
                    }
                }
                if db.memory_by_name(&caller.account, &caller.region, &req.name)?.is_some() {
                    return Err(Error::validation(format!("Memory with name {} already exists", req.name)));
                }
                if db.count_memories(&caller.account, &caller.region)? >= MAX_MEMORIES_PER_REGION {
                    return Err(Error::quota(format!(
                        "Account {} already has {MAX_MEMORIES_PER_REGION} memories in {}, the most it can have.",
                        caller.account, caller.region
                    )));
                }
                if req.tags.len() > MAX_TAGS_PER_RESOURCE {
                    return Err(Error::quota(format!("A resource can have at most {MAX_TAGS_PER_RESOURCE} tags.")));
                }
                let named: Vec<(&str, _)> = req.strategies.iter().map(|s| (s.name.as_str(), s.kind)).collect();
                check_set(&named)?;
                check_strategy_templates(
                    req.strategies.iter().map(|s| (&s.spec.namespaces, &s.spec.reflection_namespaces)),
                    &req.settings.namespace_keys,
                )?;
                check_indexed_keys(&req.settings.indexed_keys)?;
                let now = now_ms();
                let id = ids::new_named_id(&req.name);
                let mut memory = MemoryRow {
                    seq: 0,
                    arn: ids::memory_arn(&caller, &id),
                    id,
                    account: caller.account.clone(),
                    region: caller.region.clone(),
                    name: req.name,
                    description: req.description,
                    encryption_key_arn: req.encryption_key_arn,
                    execution_role_arn: req.execution_role_arn,
                    event_expiry_days: req.event_expiry_days,
                    status: MemoryStatus::Creating,
                    failure_reason: None,
                    settings: req.settings,
                    created_at: now,
                    updated_at: now,
                };
                memory.seq = db.insert_memory(&memory)?;
                for s in req.strategies {
                    db.insert_strategy(&memory.id, &new_strategy_row(s, now))?;
                }
                index::create_index(tx.txn, memory.seq)?;
                db.put_tags(&memory.id, &req.tags)?;
                remember(tx, &caller, "CreateMemory", &idem, memory.id.clone())?;
                view(&db, memory)
            })
            .await?;
        self.inner.settle.notify_one();
        Ok(out)
    }

    pub async fn get_memory(&self, caller: Caller, id: String) -> Result<MemoryView> {
        self.store()
            .read(move |tx| {
                let db = Db::new(tx.txn);
                let memory = db
                    .memory(&caller.account, &caller.region, &id)?
                    .ok_or_else(|| Error::not_found(format!("Memory not found: {id}")))?;
                view(&db, memory)
            })
            .await
    }

    pub async fn update_memory(
        &self,
        caller: Caller,
        id: String,
        changes: MemoryChanges,
        idem: Idempotency,
    ) -> Result<MemoryView> {
        let out = self
            .store()
            .write(move |tx| {
                let db = Db::new(tx.txn);
                if let Some(id) = replayed(tx, &caller, "UpdateMemory", &idem)? {
                    if let Some(v) = memory_by_replay(&db, &id)? {
                        return Ok(v);
                    }
                }
                let mut memory = live_memory(tx, &caller, &id)?;
                if !matches!(memory.status, MemoryStatus::Active | MemoryStatus::Failed) {
                    return Err(Error::conflict(format!(
                        "Memory {} is {}; it can be updated once it is ACTIVE.",
                        memory.id,
                        memory.status.as_str()
                    )));
                }
                let now = now_ms();
                apply_settings(&mut memory, &changes)?;
                let strategies_changed = !changes.strategies.is_empty();
                apply_strategy_updates(&db, &memory, changes.strategies, now)?;
                if strategies_changed {
                    // The SDK documents this: a memory whose strategies change is CREATING until
                    // they are in place.
                    memory.status = MemoryStatus::Creating;
                    memory.failure_reason = None;
                }
                memory.updated_at = now;
                db.update_memory(&memory)?;
                remember(tx, &caller, "UpdateMemory", &idem, memory.id.clone())?;
                view(&db, memory)
            })
            .await?;
        self.inner.settle.notify_one();
        Ok(out)
    }

    /// Mark the memory DELETING; the background loop removes it and everything in it.
    pub async fn delete_memory(&self, caller: Caller, id: String, idem: Idempotency) -> Result<String> {
        let out = self
            .store()
            .write(move |tx| {
                let db = Db::new(tx.txn);
                if let Some(id) = replayed(tx, &caller, "DeleteMemory", &idem)? {
                    return Ok(id);
                }
                let mut memory = db
                    .memory(&caller.account, &caller.region, &id)?
                    .ok_or_else(|| Error::not_found(format!("Memory not found: {id}")))?;
                if memory.status != MemoryStatus::Deleting {
                    memory.status = MemoryStatus::Deleting;
                    memory.updated_at = now_ms();
                    db.update_memory(&memory)?;
                }
                remember(tx, &caller, "DeleteMemory", &idem, memory.id.clone())?;
                Ok(memory.id)
            })
            .await?;
        self.inner.settle.notify_one();
        Ok(out)
    }

    pub async fn list_memories(
        &self,
        caller: Caller,
        max_results: usize,
        next_token: Option<String>,
    ) -> Result<(Vec<MemoryRow>, Option<String>)> {
        let list = format!("memories|{}|{}", caller.account, caller.region);
        let after = tokens::decode_number(next_token.as_deref(), &list)?.unwrap_or(0);
        self.store()
            .read(move |tx| {
                let mut rows =
                    Db::new(tx.txn).list_memories(&caller.account, &caller.region, after, max_results + 1)?;
                let next = (rows.len() > max_results).then(|| {
                    rows.truncate(max_results);
                    tokens::encode(&list, &rows.last().map(|m| m.seq).unwrap_or(0).to_string())
                });
                Ok((rows, next))
            })
            .await
    }
}

fn apply_settings(memory: &mut MemoryRow, changes: &MemoryChanges) -> Result<()> {
    if let Some(d) = &changes.description {
        memory.description = Some(d.clone());
    }
    if let Some(days) = changes.event_expiry_days {
        // Applies to events written from now on; stored events keep their expiry.
        memory.event_expiry_days = days;
    }
    if let Some(role) = &changes.execution_role_arn {
        memory.execution_role_arn = Some(role.clone());
    }
    if !changes.add_indexed_keys.is_empty() {
        let mut keys = memory.settings.indexed_keys.clone();
        keys.extend(changes.add_indexed_keys.iter().cloned());
        check_indexed_keys(&keys)?;
        memory.settings.indexed_keys = keys;
    }
    if let Some(keys) = &changes.namespace_keys {
        memory.settings.namespace_keys = keys.clone();
    }
    if let Some(stream) = &changes.stream_delivery {
        memory.settings.stream_delivery = Some(stream.clone());
    }
    Ok(())
}

/// Add, modify and delete strategies, then check the whole set.
fn apply_strategy_updates(db: &Db<'_>, memory: &MemoryRow, updates: StrategyUpdates, now: i64) -> Result<()> {
    let mut current: Vec<Strategy> =
        db.strategies(&memory.id)?.into_iter().filter(|s| s.status != StrategyStatus::Deleting).collect();
    let unknown = |id: &str| Error::validation(format!("Memory {} has no strategy {id}.", memory.id));
    for id in &updates.delete {
        let s = current.iter_mut().find(|s| &s.id == id).ok_or_else(|| unknown(id))?;
        s.status = StrategyStatus::Deleting;
        s.updated_at = now;
        db.update_strategy(&memory.id, s)?;
    }
    current.retain(|s| s.status != StrategyStatus::Deleting);
    for change in updates.modify {
        let s = current.iter_mut().find(|s| s.id == change.strategy_id).ok_or_else(|| unknown(&change.strategy_id))?;
        if let Some(kind) = change.override_kind {
            if s.spec.override_kind.is_some_and(|k| k != kind) {
                return Err(Error::validation(format!(
                    "Strategy {} is a {} strategy; its configuration cannot become {}.",
                    s.id,
                    s.spec.override_kind.map(|k| k.as_str()).unwrap_or(s.kind.as_str()),
                    kind.as_str()
                )));
            }
        }
        if let Some(d) = change.description {
            s.description = Some(d);
        }
        if let Some(ns) = change.namespaces {
            s.spec.namespaces = ns;
        }
        for (slot, new) in [
            (&mut s.spec.prompts.extraction, change.prompts.extraction),
            (&mut s.spec.prompts.consolidation, change.prompts.consolidation),
            (&mut s.spec.prompts.reflection, change.prompts.reflection),
        ] {
            if new.is_some() {
                *slot = new;
            }
        }
        if let Some(ns) = change.reflection_namespaces {
            s.spec.reflection_namespaces = ns;
        }
        if let Some(schema) = change.record_schema {
            s.spec.record_schema = Some(schema);
        }
        match change.record_expiry {
            Some(ExpiryChange::Days(d)) => s.spec.record_expiry_days = Some(d),
            Some(ExpiryChange::Remove) => s.spec.record_expiry_days = None,
            None => {}
        }
        if let Some(sm) = change.self_managed {
            s.spec.self_managed = Some(sm);
        }
        s.updated_at = now;
        db.update_strategy(&memory.id, s)?;
    }
    for new in updates.add {
        let row = new_strategy_row(new, now);
        db.insert_strategy(&memory.id, &row)?;
        current.push(row);
    }
    let named: Vec<(&str, _)> = current.iter().map(|s| (s.name.as_str(), s.kind)).collect();
    check_set(&named)?;
    check_strategy_templates(
        current.iter().map(|s| (&s.spec.namespaces, &s.spec.reflection_namespaces)),
        &memory.settings.namespace_keys,
    )
}
