//! bedrock-agentcore-control: the runtime, endpoint and tag operations.

mod inputs;
mod views;

use http::Response;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::app::{AppState, Call};
use crate::kernel::error::{Error, Result};
use crate::kernel::input::{bind_and_validate, canonical_json, HttpInput};
use crate::kernel::model;
use crate::kernel::response::{self, Body};
use crate::services::runtime::domain::endpoints::EndpointChange;
use crate::services::runtime::domain::pagination::Page;
use crate::services::runtime::domain::Idempotency;
use inputs::{
    typed, CreateEndpoint, CreateRuntime, EndpointRef, ListPage, ResourceRef, RuntimeRef, TagResource, UntagResource,
};

type Input = Map<String, Value>;

pub async fn dispatch(state: &AppState, call: &Call<'_>) -> Result<Response<Body>> {
    let model = model::control();
    let operation = call.route.operation;
    let input = bind_and_validate(
        model,
        operation,
        &HttpInput { labels: &call.route.labels, raw_query: call.raw_query, headers: call.headers, body: &call.body },
    )?;
    let cp = &state.control;
    let caller = call.caller.clone();
    let status = model.operation(operation).http.response_code;
    let body = match operation {
        "CreateAgentRuntime" => {
            let req: CreateRuntime = typed(operation, &input)?;
            let config = runtime_config(operation, &input, &["agentRuntimeName", "clientToken", "tags"])?;
            let view = cp
                .create_runtime(caller, req.agent_runtime_name, config, req.tags, idempotency(operation, &input))
                .await?;
            // The runtime's own workload identity (named in workloadIdentityDetails). Start-up
            // repairs a crash between the two commits.
            let rt = &view.runtime;
            state.identity.ensure_runtime_workload(rt.account.clone(), rt.region.clone(), rt.id.clone()).await?;
            views::runtime_mutation(&view, false)
        }
        "UpdateAgentRuntime" => {
            let req: RuntimeRef = typed(operation, &input)?;
            let config = runtime_config(operation, &input, &["agentRuntimeId", "clientToken"])?;
            let view = cp.update_runtime(caller, req.agent_runtime_id, config, idempotency(operation, &input)).await?;
            views::runtime_mutation(&view, true)
        }
        "GetAgentRuntime" => {
            let req: RuntimeRef = typed(operation, &input)?;
            let version = req.version()?;
            views::runtime_detail(&cp.get_runtime(caller, req.agent_runtime_id, version).await?)
        }
        "DeleteAgentRuntime" => {
            let req: RuntimeRef = typed(operation, &input)?;
            let version = req.version()?;
            let out = cp.delete_runtime(caller, req.agent_runtime_id, version, idempotency(operation, &input)).await?;
            if out.version.is_none() {
                // The runtime is going: its workload identity and the tokens kept for it go now.
                state.identity.remove_runtime_workload(out.runtime_id.clone()).await?;
            }
            let mut body = json!({"status": "DELETING", "agentRuntimeId": out.runtime_id});
            if let Some(v) = out.version {
                body["agentRuntimeVersion"] = json!(v.to_string());
            }
            body
        }
        "ListAgentRuntimes" => {
            let req: ListPage = typed(operation, &input)?;
            let (items, next) = cp.list_runtimes(caller, page(&req, "runtimes")?).await?;
            views::list("agentRuntimes", items.iter().map(views::runtime_summary), next)
        }
        "ListAgentRuntimeVersions" => {
            let req: ListPage = typed(operation, &input)?;
            let id = req.agent_runtime_id.clone().unwrap_or_default();
            let (items, next) = cp.list_versions(caller, id.clone(), page(&req, &format!("versions:{id}"))?).await?;
            views::list("agentRuntimes", items.iter().map(views::runtime_summary), next)
        }
        "CreateAgentRuntimeEndpoint" => {
            let req: CreateEndpoint = typed(operation, &input)?;
            let change = EndpointChange {
                runtime_id: req.agent_runtime_id,
                name: req.name,
                version: req.agent_runtime_version,
                description: req.description,
            };
            views::endpoint_created(
                &cp.create_endpoint(caller, change, req.tags, idempotency(operation, &input)).await?,
            )
        }
        "GetAgentRuntimeEndpoint" => {
            let req: EndpointRef = typed(operation, &input)?;
            views::endpoint_detail(&cp.get_endpoint(caller, req.agent_runtime_id, req.endpoint_name).await?)
        }
        "UpdateAgentRuntimeEndpoint" => {
            let req: EndpointRef = typed(operation, &input)?;
            let change = EndpointChange {
                runtime_id: req.agent_runtime_id,
                name: req.endpoint_name,
                version: req.agent_runtime_version,
                description: req.description,
            };
            views::endpoint_updated(&cp.update_endpoint(caller, change, idempotency(operation, &input)).await?)
        }
        "DeleteAgentRuntimeEndpoint" => {
            let req: EndpointRef = typed(operation, &input)?;
            let view = cp
                .delete_endpoint(caller, req.agent_runtime_id, req.endpoint_name, idempotency(operation, &input))
                .await?;
            json!({"status": "DELETING", "agentRuntimeId": view.runtime.id, "endpointName": view.endpoint.name})
        }
        "ListAgentRuntimeEndpoints" => {
            let req: ListPage = typed(operation, &input)?;
            let id = req.agent_runtime_id.clone().unwrap_or_default();
            let (items, next) = cp.list_endpoints(caller, id.clone(), page(&req, &format!("endpoints:{id}"))?).await?;
            views::list("runtimeEndpoints", items.iter().map(views::endpoint_summary), next)
        }
        "TagResource" => {
            let req: TagResource = typed(operation, &input)?;
            cp.tag_resource(caller, req.resource_arn, req.tags).await?;
            return Ok(response::no_content(status, call.request_id));
        }
        "UntagResource" => {
            let req: UntagResource = typed(operation, &input)?;
            cp.untag_resource(caller, req.resource_arn, req.tag_keys).await?;
            return Ok(response::no_content(status, call.request_id));
        }
        "ListTagsForResource" => {
            let req: ResourceRef = typed(operation, &input)?;
            json!({"tags": cp.list_tags(caller, req.resource_arn).await?})
        }
        other => return Err(Error::internal(format!("operation {other} is routed but has no handler"))),
    };
    Ok(response::json(status, &body, call.request_id))
}

fn page(req: &ListPage, list: &str) -> Result<Page> {
    Page::new(req.max_results, req.next_token.as_deref(), list)
}

/// The version configuration: every member given, except the ones that are not configuration, with
/// members the model does not define dropped at every depth.
fn runtime_config(operation: &str, input: &Input, exclude: &[&str]) -> Result<Input> {
    let model = model::control();
    let shape = model.shape(model.operation(operation).input.as_ref().map(|i| i.shape.as_str()).unwrap_or_default());
    let config: Input = input
        .iter()
        .filter(|(k, _)| !exclude.contains(&k.as_str()))
        .map(|(k, v)| {
            let pruned = match shape.members.get(k) {
                Some(member) => model::prune(model, &member.shape, v),
                None => v.clone(),
            };
            (k.clone(), pruned)
        })
        .collect();
    crate::services::runtime::domain::rules::check(&config)?;
    Ok(config)
}

/// The token and a digest of everything else in the request.
fn idempotency(operation: &str, input: &Input) -> Idempotency {
    let token = input.get("clientToken").and_then(Value::as_str).map(String::from);
    let rest: Input = input.iter().filter(|(k, _)| *k != "clientToken").map(|(k, v)| (k.clone(), v.clone())).collect();
    let digest = Sha256::digest(format!("{operation}\n{}", canonical_json(&Value::Object(rest))).as_bytes());
    Idempotency { token, fingerprint: hex::encode(digest) }
}
