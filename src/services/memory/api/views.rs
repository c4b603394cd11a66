//! Output shapes: the domain's rows as the model's output structures.

use serde_json::{json, Map, Value};

use crate::services::memory::events::EventView;
use crate::services::memory::memories::MemoryView;
use crate::services::memory::records::BatchOutcome;
use crate::services::memory::retrieval::Hit;
use crate::services::memory::strategies::{OverrideKind, PromptOverride, Strategy, StrategyKind};
use crate::services::memory::tables::{JobRow, MemoryRow, RecordRow, SessionRow};
use crate::services::memory::time::epoch_seconds;

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v);
    }
}

fn prompt(p: &PromptOverride) -> Value {
    json!({"appendToPrompt": p.append_to_prompt, "modelId": p.model_id})
}

/// `StrategyConfiguration`: the override type and its steps, or an episodic strategy's
/// reflection namespaces. `None` for strategies without either.
fn configuration(s: &Strategy) -> Option<Value> {
    let spec = &s.spec;
    let mut c = Map::new();
    let reflection_namespaces = |with: Option<&PromptOverride>| {
        let mut r = with.map(|p| prompt(p).as_object().cloned().unwrap_or_default()).unwrap_or_default();
        r.insert("namespaces".into(), json!(spec.reflection_namespaces));
        r.insert("namespaceTemplates".into(), json!(spec.reflection_namespaces));
        put(&mut r, "memoryRecordSchema", spec.reflection_schema.clone());
        Value::Object(r)
    };
    match (s.kind, spec.override_kind) {
        (StrategyKind::Custom, Some(kind)) => {
            c.insert("type".into(), json!(kind.as_str()));
            let (extraction_key, consolidation_key) = match kind {
                OverrideKind::SemanticOverride => {
                    (Some("semanticExtractionOverride"), Some("semanticConsolidationOverride"))
                }
                OverrideKind::SummaryOverride => (None, Some("summaryConsolidationOverride")),
                OverrideKind::UserPreferenceOverride => {
                    (Some("userPreferenceExtractionOverride"), Some("userPreferenceConsolidationOverride"))
                }
                OverrideKind::EpisodicOverride => {
                    (Some("episodicExtractionOverride"), Some("episodicConsolidationOverride"))
                }
                OverrideKind::SelfManaged => (None, None),
            };
            if let (Some(key), Some(p)) = (extraction_key, &spec.prompts.extraction) {
                c.insert("extraction".into(), json!({"customExtractionConfiguration": {key: prompt(p)}}));
            }
            if let (Some(key), Some(p)) = (consolidation_key, &spec.prompts.consolidation) {
                c.insert("consolidation".into(), json!({"customConsolidationConfiguration": {key: prompt(p)}}));
            }
            if kind == OverrideKind::EpisodicOverride {
                if let Some(p) = &spec.prompts.reflection {
                    c.insert(
                        "reflection".into(),
                        json!({"customReflectionConfiguration": {"episodicReflectionOverride": reflection_namespaces(Some(p))}}),
                    );
                } else if !spec.reflection_namespaces.is_empty() {
                    c.insert(
                        "reflection".into(),
                        json!({"episodicReflectionConfiguration": reflection_namespaces(None)}),
                    );
                }
            }
            put(&mut c, "selfManagedConfiguration", spec.self_managed.clone());
        }
        (StrategyKind::Episodic, _) if !spec.reflection_namespaces.is_empty() => {
            c.insert("reflection".into(), json!({"episodicReflectionConfiguration": reflection_namespaces(None)}));
        }
        _ => return None,
    }
    Some(Value::Object(c))
}

pub fn strategy(s: &Strategy) -> Value {
    let mut m = Map::new();
    m.insert("strategyId".into(), json!(s.id));
    m.insert("name".into(), json!(s.name));
    put(&mut m, "description", s.description.as_ref().map(|d| json!(d)));
    put(&mut m, "configuration", configuration(s));
    m.insert("type".into(), json!(s.kind.as_str()));
    m.insert("namespaces".into(), json!(s.spec.namespaces));
    m.insert("namespaceTemplates".into(), json!(s.spec.namespaces));
    m.insert("createdAt".into(), epoch_seconds(s.created_at));
    m.insert("updatedAt".into(), epoch_seconds(s.updated_at));
    m.insert("status".into(), json!(s.status.as_str()));
    put(&mut m, "memoryRecordSchema", s.spec.record_schema.clone());
    put(&mut m, "recordExpiryDurationDays", s.spec.record_expiry_days.map(|d| json!(d)));
    Value::Object(m)
}

pub fn memory(v: &MemoryView) -> Value {
    let mem = &v.memory;
    let mut m = Map::new();
    m.insert("arn".into(), json!(mem.arn));
    m.insert("id".into(), json!(mem.id));
    m.insert("name".into(), json!(mem.name));
    put(&mut m, "description", mem.description.as_ref().map(|d| json!(d)));
    put(&mut m, "encryptionKeyArn", mem.encryption_key_arn.as_ref().map(|d| json!(d)));
    put(&mut m, "memoryExecutionRoleArn", mem.execution_role_arn.as_ref().map(|d| json!(d)));
    m.insert("eventExpiryDuration".into(), json!(mem.event_expiry_days));
    m.insert("status".into(), json!(mem.status.as_str()));
    put(&mut m, "failureReason", mem.failure_reason.as_ref().map(|d| json!(d)));
    m.insert("createdAt".into(), epoch_seconds(mem.created_at));
    m.insert("updatedAt".into(), epoch_seconds(mem.updated_at));
    m.insert("strategies".into(), Value::Array(v.strategies.iter().map(strategy).collect()));
    if !mem.settings.indexed_keys.is_empty() {
        m.insert("indexedKeys".into(), json!(mem.settings.indexed_keys));
    }
    if !mem.settings.namespace_keys.is_empty() {
        m.insert("namespaceKeys".into(), json!(mem.settings.namespace_keys));
    }
    put(&mut m, "streamDeliveryResources", mem.settings.stream_delivery.clone());
    Value::Object(m)
}

pub fn memory_summary(mem: &MemoryRow) -> Value {
    json!({
        "arn": mem.arn,
        "id": mem.id,
        "status": mem.status.as_str(),
        "createdAt": epoch_seconds(mem.created_at),
        "updatedAt": epoch_seconds(mem.updated_at),
    })
}

pub fn event(memory_id: &str, v: &EventView) -> Value {
    let e = &v.event;
    let mut m = Map::new();
    m.insert("memoryId".into(), json!(memory_id));
    m.insert("actorId".into(), json!(e.actor_id));
    m.insert("sessionId".into(), json!(e.session_id));
    m.insert("eventId".into(), json!(e.event_id));
    m.insert("eventTimestamp".into(), epoch_seconds(e.event_ts));
    m.insert("payload".into(), e.payload.clone());
    if let Some(name) = &e.branch {
        let mut b = Map::new();
        put(&mut b, "rootEventId", v.branch_root.as_ref().map(|r| json!(r)));
        b.insert("name".into(), json!(name));
        m.insert("branch".into(), Value::Object(b));
    }
    put(&mut m, "metadata", e.metadata.clone());
    Value::Object(m)
}

fn record_common(r: &RecordRow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("memoryRecordId".into(), json!(r.id));
    m.insert("content".into(), json!({"text": r.content}));
    m.insert("memoryStrategyId".into(), json!(r.strategy_id));
    let namespaces: Vec<&str> = if r.namespace.is_empty() { Vec::new() } else { vec![&r.namespace] };
    m.insert("namespaces".into(), json!(namespaces));
    m.insert("createdAt".into(), epoch_seconds(r.created_at));
    put(&mut m, "timestamp", r.source_ts.map(epoch_seconds));
    put(&mut m, "metadata", r.metadata.clone());
    m
}

/// `MemoryRecord` (GetMemoryRecord).
pub fn record(r: &RecordRow) -> Value {
    let mut m = record_common(r);
    put(&mut m, "expiresAt", r.expires_at.map(epoch_seconds));
    Value::Object(m)
}

/// `MemoryRecordSummary` (lists).
pub fn record_summary(r: &RecordRow) -> Value {
    Value::Object(record_common(r))
}

/// `MemoryRecordSummary` with its relevance.
pub fn hit(h: &Hit) -> Value {
    let mut m = record_common(&h.record);
    // Rounded so equal relevance prints equally whatever the float noise.
    m.insert("score".into(), json!((h.score * 1e6).round() / 1e6));
    Value::Object(m)
}

pub fn batch(outcome: &BatchOutcome) -> Value {
    let entry = |o: &crate::services::memory::records::RecordOutcome| {
        let mut m = Map::new();
        m.insert("memoryRecordId".into(), json!(o.record_id));
        m.insert("status".into(), json!(if o.error.is_some() { "FAILED" } else { "SUCCEEDED" }));
        put(&mut m, "requestIdentifier", o.request_identifier.as_ref().map(|r| json!(r)));
        if let Some((code, message)) = &o.error {
            m.insert("errorCode".into(), json!(code));
            m.insert("errorMessage".into(), json!(message));
        }
        Value::Object(m)
    };
    json!({
        "successfulRecords": outcome.successful.iter().map(entry).collect::<Vec<_>>(),
        "failedRecords": outcome.failed.iter().map(entry).collect::<Vec<_>>(),
    })
}

pub fn session(s: &SessionRow) -> Value {
    json!({"sessionId": s.session_id, "actorId": s.actor_id, "createdAt": epoch_seconds(s.created_at)})
}

pub fn job(j: &JobRow) -> Value {
    let mut m = Map::new();
    m.insert("jobID".into(), json!(j.job_id));
    m.insert("messages".into(), json!({"messagesList": j.messages}));
    m.insert("status".into(), json!("FAILED"));
    put(&mut m, "failureReason", j.failure_reason.as_ref().map(|r| json!(r)));
    m.insert("strategyId".into(), json!(j.strategy_id));
    m.insert("sessionId".into(), json!(j.session_id));
    m.insert("actorId".into(), json!(j.actor_id));
    Value::Object(m)
}

/// A list output: `items` under `key`, and `nextToken` when there is more.
pub fn list(key: &str, items: Vec<Value>, next_token: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), Value::Array(items));
    put(&mut m, "nextToken", next_token.map(Value::String));
    Value::Object(m)
}
