//! The memory service's wire: the control-plane operations (bedrock-agentcore-control) and the
//! data-plane operations (bedrock-agentcore), each bound and validated from its botocore model,
//! deserialized into its typed input, handed to the domain, and answered in its output shape.

mod inputs;
mod views;

use http::Response;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::extraction::JobFilter;
use super::records::{NamespaceScope, RecordQuery};
use super::MemoryService;
use crate::app::Call;
use crate::kernel::error::{Error, ErrorKind, Result, ValidationReason};
use crate::kernel::input::{bind_and_validate, canonical_json, HttpInput};
use crate::kernel::model::ServiceModel;
use crate::kernel::response::{self, Body};
use crate::services::runtime::domain::Idempotency;
use inputs::*;

/// Control-plane operations this service answers.
pub const CONTROL_OPERATIONS: &[&str] = &["CreateMemory", "GetMemory", "UpdateMemory", "DeleteMemory", "ListMemories"];
/// Data-plane operations this service answers.
pub const DATA_OPERATIONS: &[&str] = &[
    "CreateEvent",
    "GetEvent",
    "ListEvents",
    "DeleteEvent",
    "ListSessions",
    "ListActors",
    "BatchCreateMemoryRecords",
    "BatchUpdateMemoryRecords",
    "BatchDeleteMemoryRecords",
    "GetMemoryRecord",
    "DeleteMemoryRecord",
    "ListMemoryRecords",
    "RetrieveMemoryRecords",
    "StartMemoryExtractionJob",
    "ListMemoryExtractionJobs",
];

/// Page size when a data-plane list gives no `maxResults` (the model documents 20).
const DEFAULT_MAX_RESULTS: usize = 20;
/// ListMemories' page size without `maxResults`.
const DEFAULT_MAX_MEMORIES: usize = 100;
/// RetrieveMemoryRecords' `topK` default.
const DEFAULT_TOP_K: usize = 10;

pub fn serves(operation: &str) -> bool {
    CONTROL_OPERATIONS.contains(&operation) || DATA_OPERATIONS.contains(&operation)
}

type Input = Map<String, Value>;

fn typed<T: DeserializeOwned>(input: &Input) -> Result<T> {
    serde_json::from_value(Value::Object(input.clone())).map_err(|e| {
        Error::new(
            ErrorKind::Validation { reason: ValidationReason::CannotParse, fields: vec![] },
            format!("The request could not be read: {e}"),
        )
    })
}

/// The token and a digest of everything else in the request.
fn idempotency(operation: &str, input: &Input) -> Idempotency {
    let token = input.get("clientToken").and_then(Value::as_str).map(String::from);
    let rest: Input = input.iter().filter(|(k, _)| *k != "clientToken").map(|(k, v)| (k.clone(), v.clone())).collect();
    let digest = Sha256::digest(format!("{operation}\n{}", canonical_json(&Value::Object(rest))).as_bytes());
    Idempotency { token, fingerprint: hex::encode(digest) }
}

/// Answer one memory operation of `model`.
pub async fn handle(service: &MemoryService, model: &ServiceModel, call: &Call<'_>) -> Result<Response<Body>> {
    let operation = call.route.operation;
    let input = bind_and_validate(
        model,
        operation,
        &HttpInput { labels: &call.route.labels, raw_query: call.raw_query, headers: call.headers, body: &call.body },
    )?;
    let status = model.operation(operation).http.response_code;
    let body = run(service, call, operation, &input).await.map_err(|e| match e.kind {
        // The memory operations model their server fault as ServiceException.
        ErrorKind::InternalServer => Error::new(ErrorKind::Service, e.message),
        _ => e,
    })?;
    Ok(response::json(status, &body, call.request_id))
}

async fn run(m: &MemoryService, call: &Call<'_>, operation: &str, input: &Input) -> Result<Value> {
    let caller = call.caller.clone();
    let idem = || idempotency(operation, input);
    Ok(match operation {
        "CreateMemory" => {
            let req = typed::<CreateMemoryInput>(input)?.into_domain()?;
            json!({"memory": views::memory(&m.create_memory(caller, req, idem()).await?)})
        }
        "GetMemory" => {
            let req: MemoryIdInput = typed(input)?;
            json!({"memory": views::memory(&m.get_memory(caller, req.memory_id).await?)})
        }
        "UpdateMemory" => {
            let (id, changes) = typed::<UpdateMemoryInput>(input)?.into_domain()?;
            json!({"memory": views::memory(&m.update_memory(caller, id, changes, idem()).await?)})
        }
        "DeleteMemory" => {
            let req: MemoryIdInput = typed(input)?;
            json!({"memoryId": m.delete_memory(caller, req.memory_id, idem()).await?, "status": "DELETING"})
        }
        "ListMemories" => {
            let req: ListInput = typed(input)?;
            let (items, next) =
                m.list_memories(caller, req.max_results.unwrap_or(DEFAULT_MAX_MEMORIES), req.next_token).await?;
            views::list("memories", items.iter().map(views::memory_summary).collect(), next)
        }
        "CreateEvent" => {
            let (memory_id, event) = typed::<CreateEventInput>(input)?.into_domain()?;
            let id = memory_id.clone();
            json!({"event": views::event(&shown_id(&id), &m.create_event(caller, memory_id, event, idem()).await?)})
        }
        "GetEvent" => {
            let r: EventRefInput = typed(input)?;
            let shown = shown_id(&r.memory_id);
            json!({"event": views::event(&shown, &m.get_event(caller, r.memory_id, r.actor_id, r.session_id, r.event_id).await?)})
        }
        "DeleteEvent" => {
            let r: EventRefInput = typed(input)?;
            json!({"eventId": m.delete_event(caller, r.memory_id, r.actor_id, r.session_id, r.event_id).await?})
        }
        "ListEvents" => {
            let r: ListEventsInput = typed(input)?;
            let query = r.query()?;
            let shown = shown_id(&r.memory_id);
            let page = m
                .list_events(
                    caller,
                    r.memory_id,
                    r.actor_id,
                    r.session_id,
                    query,
                    r.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
                    r.next_token,
                )
                .await?;
            views::list("events", page.items.iter().map(|e| views::event(&shown, e)).collect(), page.next_token)
        }
        "ListSessions" => {
            let r: ListSessionsInput = typed(input)?;
            let with_events = r.filter.and_then(|f| f.event_filter).is_some_and(|f| f == "HAS_EVENTS");
            let page = m
                .list_sessions(
                    caller,
                    r.memory_id,
                    r.actor_id,
                    with_events,
                    r.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
                    r.next_token,
                )
                .await?;
            views::list("sessionSummaries", page.items.iter().map(views::session).collect(), page.next_token)
        }
        "ListActors" => {
            let r: ListActorsInput = typed(input)?;
            let page =
                m.list_actors(caller, r.memory_id, r.max_results.unwrap_or(DEFAULT_MAX_RESULTS), r.next_token).await?;
            views::list("actorSummaries", page.items.iter().map(|a| json!({"actorId": a})).collect(), page.next_token)
        }
        "BatchCreateMemoryRecords" => {
            let (memory_id, records, expiry) = typed::<BatchCreateInput>(input)?.into_domain()?;
            views::batch(&m.batch_create_records(caller, memory_id, records, expiry, idem()).await?)
        }
        "BatchUpdateMemoryRecords" => {
            let (memory_id, changes, expiry) = typed::<BatchUpdateInput>(input)?.into_domain()?;
            views::batch(&m.batch_update_records(caller, memory_id, changes, expiry).await?)
        }
        "BatchDeleteMemoryRecords" => {
            let r: BatchDeleteInput = typed(input)?;
            let ids = r.records.into_iter().map(|r| r.memory_record_id).collect();
            views::batch(&m.batch_delete_records(caller, r.memory_id, ids).await?)
        }
        "GetMemoryRecord" => {
            let r: RecordRefInput = typed(input)?;
            json!({"memoryRecord": views::record(&m.get_record(caller, r.memory_id, r.memory_record_id).await?)})
        }
        "DeleteMemoryRecord" => {
            let r: RecordRefInput = typed(input)?;
            json!({"memoryRecordId": m.delete_record(caller, r.memory_id, r.memory_record_id).await?})
        }
        "ListMemoryRecords" => {
            let r: ListRecordsInput = typed(input)?;
            let query = RecordQuery {
                namespace: NamespaceScope::from_request(r.namespace, r.namespace_path)?,
                strategy_id: r.memory_strategy_id,
                filters: record_filters(r.metadata_filters.as_deref())?,
            };
            let page = m
                .list_records(caller, r.memory_id, query, r.max_results.unwrap_or(DEFAULT_MAX_RESULTS), r.next_token)
                .await?;
            views::list(
                "memoryRecordSummaries",
                page.items.iter().map(views::record_summary).collect(),
                page.next_token,
            )
        }
        "RetrieveMemoryRecords" => {
            let r: RetrieveInput = typed(input)?;
            let query = RecordQuery {
                namespace: NamespaceScope::from_request(r.namespace, r.namespace_path)?,
                strategy_id: r.search_criteria.memory_strategy_id,
                filters: record_filters(r.search_criteria.metadata_filters.as_deref())?,
            };
            let page = m
                .retrieve_records(
                    caller,
                    r.memory_id,
                    query,
                    r.search_criteria.search_query,
                    r.search_criteria.top_k.unwrap_or(DEFAULT_TOP_K),
                    r.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
                    r.next_token,
                )
                .await?;
            views::list("memoryRecordSummaries", page.items.iter().map(views::hit).collect(), page.next_token)
        }
        "StartMemoryExtractionJob" => {
            let r: StartJobInput = typed(input)?;
            json!({"jobId": m.start_extraction_job(caller, r.memory_id, r.extraction_job.job_id, idem()).await?})
        }
        "ListMemoryExtractionJobs" => {
            let r: ListJobsInput = typed(input)?;
            let filter = r
                .filter
                .map(|f| JobFilter { strategy_id: f.strategy_id, session_id: f.session_id, actor_id: f.actor_id })
                .unwrap_or_default();
            let page = m
                .list_extraction_jobs(
                    caller,
                    r.memory_id,
                    filter,
                    r.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
                    r.next_token,
                )
                .await?;
            views::list("jobs", page.items.iter().map(views::job).collect(), page.next_token)
        }
        other => return Err(Error::internal(format!("operation {other} is routed to memory but has no handler"))),
    })
}

/// The memory id an output shows: the id itself, also when the request named the memory by ARN.
fn shown_id(id_or_arn: &str) -> String {
    match super::parse_memory_arn(id_or_arn) {
        Some(arn) => arn.memory_id.to_string(),
        None => id_or_arn.to_string(),
    }
}
