//! Short-term memory: events in sessions of actors, their branches, and the sessions and actors
//! they make up.
//!
//! Events are immutable; they are listed newest first (`eventTimestamp`, then arrival), expire
//! `eventExpiryDuration` days after they are written (fixed at write time: changing the memory's
//! duration later does not move them), and each written event is queued for extraction unless
//! its `extractionMode` is SKIP.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::filters::{event_matches, EventFilter};
use super::idempotency::{remember, replayed};
use super::strategies::{template_variables, Pipeline, StrategyStatus, BUILT_IN_VARIABLES};
use super::tables::Db;
use super::tables::{BranchRow, EventRow, MemoryRow, QueueRow, SessionRow};
use super::{ids, live_memory, time, tokens, MemoryService, MAX_EVENT_BYTES, MAX_JSON_PAYLOAD_BYTES};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::services::runtime::domain::Idempotency;

/// The branch every event without one is on.
pub const MAIN_BRANCH: &str = "main";

/// `Branch` of a CreateEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRef {
    pub name: String,
    pub root_event_id: Option<String>,
}

/// CreateEvent's request, typed.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor_id: String,
    pub session_id: Option<String>,
    pub event_ts: i64,
    /// The `payload` list as sent.
    pub payload: Vec<Value>,
    pub branch: Option<BranchRef>,
    pub metadata: Option<Value>,
    /// `extractionMode` is not SKIP.
    pub extract: bool,
    /// `extractionConfig.namespaceVariables`.
    pub variables: BTreeMap<String, String>,
}

/// An event with the root of its branch (the `branch` the wire shows).
#[derive(Debug, Clone)]
pub struct EventView {
    pub event: EventRow,
    pub branch_root: Option<String>,
}

/// ListEvents' filters.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub include_payloads: bool,
    /// Branch name and whether its parent branches (up to where it forked) are included.
    pub branch: Option<(String, bool)>,
    pub metadata: Vec<EventFilter>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

fn event_not_found(event_id: &str) -> Error {
    Error::not_found(format!("Event not found: {event_id}"))
}

/// The payload is within the service's limits and has something in it worth keeping.
fn check_payload(payload: &[Value]) -> Result<()> {
    let mut total = 0usize;
    for (i, item) in payload.iter().enumerate() {
        let size = item.to_string().len();
        total += size;
        if item.get("json").is_some() && size > MAX_JSON_PAYLOAD_BYTES + 32 {
            return Err(Error::invalid_field(
                &format!("payload.{}.json", i + 1),
                format!("A json payload item may hold at most {MAX_JSON_PAYLOAD_BYTES} bytes."),
            ));
        }
    }
    if total > MAX_EVENT_BYTES {
        return Err(Error::validation(format!("An event may hold at most {MAX_EVENT_BYTES} bytes of payload.")));
    }
    Ok(())
}

/// Namespace variables are declared keys with allowed values, and every custom variable a
/// strategy's namespace needs is there when the event is extracted.
fn check_variables(db: &Db<'_>, memory: &MemoryRow, new: &NewEvent) -> Result<()> {
    let keys = &memory.settings.namespace_keys;
    for (name, value) in &new.variables {
        let key = keys.iter().find(|k| &k.key == name).ok_or_else(|| {
            Error::validation(format!(
                "Namespace variable '{name}' is not one of memory {}'s namespaceKeys.",
                memory.id
            ))
        })?;
        if let Some(v) = &key.validation {
            if let Some(allowed) = &v.allowed_values {
                if !allowed.contains(value) {
                    return Err(Error::validation(format!(
                        "Namespace variable '{name}' must be one of [{}]; got '{value}'.",
                        allowed.join(", ")
                    )));
                }
            }
            if let Some(pattern) = &v.regex_pattern {
                let re = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|_| Error::validation(format!("Namespace key '{name}' has an invalid regexPattern.")))?;
                if !re.is_match(value) {
                    return Err(Error::validation(format!(
                        "Namespace variable '{name}' must match {pattern}; got '{value}'."
                    )));
                }
            }
        }
    }
    if new.extract {
        let extracting = db
            .strategies(&memory.id)?
            .into_iter()
            .filter(|s| s.status != StrategyStatus::Deleting && s.pipeline() != Pipeline::SelfManaged);
        for s in extracting {
            for template in s.spec.namespaces.iter().chain(&s.spec.reflection_namespaces) {
                for var in template_variables(template) {
                    if !BUILT_IN_VARIABLES.contains(&var) && !new.variables.contains_key(var) {
                        return Err(Error::validation(format!(
                            "Strategy {} writes to '{template}', so events need extractionConfig.namespaceVariables.{var}.",
                            s.id
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Payload items extraction reads: conversational and JSON (blobs stay short-term only).
fn has_extractable(payload: &[Value]) -> bool {
    payload.iter().any(|p| p.get("conversational").is_some() || p.get("json").is_some())
}

/// The branch an event goes on: existing, or new from a root event of the same session.
fn resolve_branch(
    db: &Db<'_>,
    memory: &MemoryRow,
    actor: &str,
    session: &str,
    b: &BranchRef,
    now: i64,
) -> Result<Option<String>> {
    if b.name == MAIN_BRANCH && b.root_event_id.is_none() {
        return Ok(None);
    }
    match (db.branch(&memory.id, actor, session, &b.name)?, &b.root_event_id) {
        (Some(existing), Some(root)) if &existing.root_event_id != root => Err(Error::validation(format!(
            "Branch '{}' already exists with root event {}; it cannot be rooted at {root}.",
            b.name, existing.root_event_id
        ))),
        (Some(_), _) => Ok(Some(b.name.clone())),
        (None, None) => Err(Error::validation(format!(
            "Branch '{}' does not exist in session {session}; give rootEventId to create it.",
            b.name
        ))),
        (None, Some(root)) => {
            let root_event = db
                .event(&memory.id, actor, session, root, now)?
                .ok_or_else(|| Error::not_found(format!("Root event not found: {root}")))?;
            db.insert_branch(
                &memory.id,
                actor,
                session,
                &BranchRow { name: b.name.clone(), root_event_id: root.clone(), parent: root_event.branch },
                now,
            )?;
            Ok(Some(b.name.clone()))
        }
    }
}

fn with_roots(db: &Db<'_>, memory_id: &str, events: Vec<EventRow>) -> Result<Vec<EventView>> {
    let mut roots: HashMap<(String, String, String), Option<String>> = HashMap::new();
    events
        .into_iter()
        .map(|event| {
            let branch_root = match &event.branch {
                None => None,
                Some(name) => {
                    let key = (event.actor_id.clone(), event.session_id.clone(), name.clone());
                    match roots.get(&key) {
                        Some(r) => r.clone(),
                        None => {
                            let r = db
                                .branch(memory_id, &event.actor_id, &event.session_id, name)?
                                .map(|b| b.root_event_id);
                            roots.insert(key, r.clone());
                            r
                        }
                    }
                }
            };
            Ok(EventView { event, branch_root })
        })
        .collect()
}

/// A position in a session's event order: (`eventTimestamp`, arrival).
type Position = (i64, i64);

/// Which events a branch filter shows: the branch itself, and with parents each ancestor
/// branch up to (and including) the event the child forked from.
struct Lineage {
    /// (branch, newest position shown on it); `None` branch is main, `None` bound is unbounded.
    steps: Vec<(Option<String>, Option<Position>)>,
}

impl Lineage {
    fn build(
        db: &Db<'_>,
        memory_id: &str,
        actor: &str,
        session: &str,
        name: &str,
        parents: bool,
        now: i64,
    ) -> Result<Lineage> {
        let branch = db.branch(memory_id, actor, session, name)?;
        let Some(mut current) = branch else {
            // `main` names the events created without a branch.
            let steps = if name == MAIN_BRANCH { vec![(None, None)] } else { Vec::new() };
            return Ok(Lineage { steps });
        };
        let mut steps = vec![(Some(name.to_string()), None)];
        if !parents {
            return Ok(Lineage { steps });
        }
        loop {
            let Some(root) = db.event(memory_id, actor, session, &current.root_event_id, now)? else {
                break;
            };
            steps.push((current.parent.clone(), Some((root.event_ts, root.seq))));
            match &current.parent {
                Some(parent) if steps.len() < 64 => match db.branch(memory_id, actor, session, parent)? {
                    Some(p) => current = p,
                    None => break,
                },
                _ => break,
            }
        }
        Ok(Lineage { steps })
    }

    fn shows(&self, e: &EventRow) -> bool {
        self.steps.iter().any(|(branch, bound)| {
            branch == &e.branch && bound.is_none_or(|(ts, seq)| (e.event_ts, e.seq) <= (ts, seq))
        })
    }
}

impl MemoryService {
    pub async fn create_event(
        &self,
        caller: Caller,
        memory_id: String,
        new: NewEvent,
        idem: Idempotency,
    ) -> Result<EventView> {
        let expiry_ms_per_day = self.days_ms(1);
        let out = self
            .store()
            .write(move |tx| {
                let db = Db::new(tx.txn);
                let memory = live_memory(tx, &caller, &memory_id)?;
                let now = time::now_ms();
                if let Some(key) = replayed(tx, &caller, "CreateEvent", &idem)? {
                    let parts: Vec<&str> = key.splitn(3, '\n').collect();
                    if let [actor, session, event_id] = parts.as_slice() {
                        if let Some(event) = db.event(&memory.id, actor, session, event_id, now)? {
                            return Ok(with_roots(&db, &memory.id, vec![event])?.remove(0));
                        }
                    }
                }
                check_payload(&new.payload)?;
                check_variables(&db, &memory, &new)?;
                let session_id = new.session_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let branch = match &new.branch {
                    Some(b) => resolve_branch(&db, &memory, &new.actor_id, &session_id, b, now)?,
                    None => None,
                };
                let mut event = EventRow {
                    seq: 0,
                    actor_id: new.actor_id.clone(),
                    session_id: session_id.clone(),
                    event_id: ids::new_event_id(new.event_ts),
                    event_ts: new.event_ts,
                    branch,
                    payload: Value::Array(new.payload.clone()),
                    metadata: new.metadata.clone(),
                    expires_at: now + memory.event_expiry_days * expiry_ms_per_day,
                    extract: new.extract,
                };
                event.seq = db.insert_event(&memory.id, &event)?;
                db.touch_session(&memory.id, &event.actor_id, &session_id, now)?;
                if new.extract && has_extractable(&new.payload) && !db.strategies(&memory.id)?.is_empty() {
                    db.enqueue(
                        &QueueRow {
                            seq: 0,
                            memory_id: memory.id.clone(),
                            actor_id: event.actor_id.clone(),
                            session_id: session_id.clone(),
                            event_id: event.event_id.clone(),
                            strategy_id: None,
                            job_id: None,
                            variables: (!new.variables.is_empty())
                                .then(|| serde_json::to_value(&new.variables).unwrap_or_default()),
                        },
                        now,
                    )?;
                }
                let key = format!("{}\n{}\n{}", event.actor_id, event.session_id, event.event_id);
                remember(tx, &caller, "CreateEvent", &idem, key)?;
                Ok(with_roots(&db, &memory.id, vec![event])?.remove(0))
            })
            .await?;
        self.inner.extract.notify_one();
        Ok(out)
    }

    pub async fn get_event(
        &self,
        caller: Caller,
        memory_id: String,
        actor: String,
        session: String,
        event_id: String,
    ) -> Result<EventView> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let db = Db::new(tx.txn);
                let event = db
                    .event(&memory.id, &actor, &session, &event_id, time::now_ms())?
                    .ok_or_else(|| event_not_found(&event_id))?;
                Ok(with_roots(&db, &memory.id, vec![event])?.remove(0))
            })
            .await
    }

    pub async fn delete_event(
        &self,
        caller: Caller,
        memory_id: String,
        actor: String,
        session: String,
        event_id: String,
    ) -> Result<String> {
        self.store()
            .write(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let db = Db::new(tx.txn);
                db.event(&memory.id, &actor, &session, &event_id, time::now_ms())?
                    .ok_or_else(|| event_not_found(&event_id))?;
                db.delete_event(&memory.id, &actor, &session, &event_id)?;
                Ok(event_id)
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn list_events(
        &self,
        caller: Caller,
        memory_id: String,
        actor: String,
        session: String,
        query: EventQuery,
        max_results: usize,
        next_token: Option<String>,
    ) -> Result<Page<EventView>> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let db = Db::new(tx.txn);
                let now = time::now_ms();
                let list = format!("events|{}|{actor}|{session}", memory.id);
                let cursor = match next_token {
                    Some(t) => {
                        let pos = tokens::decode(&t, &list)?;
                        let (ts, seq) = pos.split_once(':').unwrap_or_default();
                        Some((ts.parse().unwrap_or(i64::MIN), seq.parse().unwrap_or(i64::MIN)))
                    }
                    None => None,
                };
                let lineage = match &query.branch {
                    Some((name, parents)) => {
                        Some(Lineage::build(&db, &memory.id, &actor, &session, name, *parents, now)?)
                    }
                    None => None,
                };
                let mut found = Vec::new();
                db.scan_events_newest_first(&memory.id, &actor, &session, cursor, now, |e| {
                    if lineage.as_ref().is_none_or(|l| l.shows(&e))
                        && event_matches(e.metadata.as_ref(), &query.metadata)
                    {
                        found.push(e);
                    }
                    found.len() <= max_results
                })?;
                let next_token = (found.len() > max_results).then(|| {
                    found.truncate(max_results);
                    let last = found.last().map(|e| (e.event_ts, e.seq)).unwrap_or_default();
                    tokens::encode(&list, &format!("{}:{}", last.0, last.1))
                });
                if !query.include_payloads {
                    for e in &mut found {
                        e.payload = Value::Array(Vec::new());
                    }
                }
                Ok(Page { items: with_roots(&db, &memory.id, found)?, next_token })
            })
            .await
    }

    pub async fn list_sessions(
        &self,
        caller: Caller,
        memory_id: String,
        actor: String,
        with_events_only: bool,
        max_results: usize,
        next_token: Option<String>,
    ) -> Result<Page<SessionRow>> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let list = format!("sessions|{}|{actor}|{with_events_only}", memory.id);
                let before = tokens::decode_number(next_token.as_deref(), &list)?.unwrap_or(i64::MAX);
                let now = time::now_ms();
                let mut items = Db::new(tx.txn).sessions(
                    &memory.id,
                    &actor,
                    before,
                    with_events_only.then_some(now),
                    max_results + 1,
                )?;
                let next_token = (items.len() > max_results).then(|| {
                    items.truncate(max_results);
                    tokens::encode(&list, &items.last().map(|s| s.seq).unwrap_or(0).to_string())
                });
                Ok(Page { items, next_token })
            })
            .await
    }

    pub async fn list_actors(
        &self,
        caller: Caller,
        memory_id: String,
        max_results: usize,
        next_token: Option<String>,
    ) -> Result<Page<String>> {
        self.store()
            .read(move |tx| {
                let memory = live_memory(tx, &caller, &memory_id)?;
                let list = format!("actors|{}", memory.id);
                let after = next_token.map(|t| tokens::decode(&t, &list)).transpose()?.unwrap_or_default();
                let mut items = Db::new(tx.txn).actors(&memory.id, &after, max_results + 1)?;
                let next_token = (items.len() > max_results).then(|| {
                    items.truncate(max_results);
                    tokens::encode(&list, items.last().map(String::as_str).unwrap_or_default())
                });
                Ok(Page { items, next_token })
            })
            .await
    }
}
