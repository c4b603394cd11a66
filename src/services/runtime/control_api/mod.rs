//! bedrock-agentcore-control: the runtime, endpoint and tag operations.

mod views;

use std::collections::BTreeMap;

use http::Response;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::app::{AppState, Call};
use crate::kernel::error::{Error, Result};
use crate::kernel::input::{bind_and_validate, canonical_json, HttpInput};
use crate::kernel::model;
use crate::kernel::response::{self, Body};
use crate::services::runtime::domain::pagination::Page;
use crate::services::runtime::domain::Idempotency;

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
            let config = runtime_config(operation, &input, &["agentRuntimeName", "clientToken", "tags"])?;
            let view = cp
                .create_runtime(
                    caller,
                    string(&input, "agentRuntimeName"),
                    config,
                    tags(&input),
                    idempotency(operation, &input),
                )
                .await?;
            // The runtime's own workload identity (named in workloadIdentityDetails). Start-up
            // repairs a crash between the two commits.
            let rt = &view.runtime;
            state.identity.ensure_runtime_workload(rt.account.clone(), rt.region.clone(), rt.id.clone()).await?;
            views::runtime_mutation(&view, false)
        }
        "UpdateAgentRuntime" => {
            let config = runtime_config(operation, &input, &["agentRuntimeId", "clientToken"])?;
            let view = cp
                .update_runtime(caller, string(&input, "agentRuntimeId"), config, idempotency(operation, &input))
                .await?;
            views::runtime_mutation(&view, true)
        }
        "GetAgentRuntime" => {
            let version = opt_version(&input)?;
            views::runtime_detail(&cp.get_runtime(caller, string(&input, "agentRuntimeId"), version).await?)
        }
        "DeleteAgentRuntime" => {
            let version = opt_version(&input)?;
            let out = cp
                .delete_runtime(caller, string(&input, "agentRuntimeId"), version, idempotency(operation, &input))
                .await?;
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
            let page = page(&input, "runtimes")?;
            let (items, next) = cp.list_runtimes(caller, page).await?;
            views::list("agentRuntimes", items.iter().map(views::runtime_summary), next)
        }
        "ListAgentRuntimeVersions" => {
            let id = string(&input, "agentRuntimeId");
            let page = page(&input, &format!("versions:{id}"))?;
            let (items, next) = cp.list_versions(caller, id, page).await?;
            views::list("agentRuntimes", items.iter().map(views::runtime_summary), next)
        }
        "CreateAgentRuntimeEndpoint" => {
            let view = cp
                .create_endpoint(
                    caller,
                    string(&input, "agentRuntimeId"),
                    string(&input, "name"),
                    opt_string(&input, "agentRuntimeVersion"),
                    opt_string(&input, "description"),
                    tags(&input),
                    idempotency(operation, &input),
                )
                .await?;
            views::endpoint_created(&view)
        }
        "GetAgentRuntimeEndpoint" => views::endpoint_detail(
            &cp.get_endpoint(caller, string(&input, "agentRuntimeId"), string(&input, "endpointName")).await?,
        ),
        "UpdateAgentRuntimeEndpoint" => {
            let view = cp
                .update_endpoint(
                    caller,
                    string(&input, "agentRuntimeId"),
                    string(&input, "endpointName"),
                    opt_string(&input, "agentRuntimeVersion"),
                    opt_string(&input, "description"),
                    idempotency(operation, &input),
                )
                .await?;
            views::endpoint_updated(&view)
        }
        "DeleteAgentRuntimeEndpoint" => {
            let view = cp
                .delete_endpoint(
                    caller,
                    string(&input, "agentRuntimeId"),
                    string(&input, "endpointName"),
                    idempotency(operation, &input),
                )
                .await?;
            json!({"status": "DELETING", "agentRuntimeId": view.runtime.id, "endpointName": view.endpoint.name})
        }
        "ListAgentRuntimeEndpoints" => {
            let id = string(&input, "agentRuntimeId");
            let page = page(&input, &format!("endpoints:{id}"))?;
            let (items, next) = cp.list_endpoints(caller, id, page).await?;
            views::list("runtimeEndpoints", items.iter().map(views::endpoint_summary), next)
        }
        "TagResource" => {
            cp.tag_resource(caller, string(&input, "resourceArn"), tags(&input)).await?;
            return Ok(response::no_content(status, call.request_id));
        }
        "UntagResource" => {
            let keys = input["tagKeys"]
                .as_array()
                .map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect())
                .unwrap_or_default();
            cp.untag_resource(caller, string(&input, "resourceArn"), keys).await?;
            return Ok(response::no_content(status, call.request_id));
        }
        "ListTagsForResource" => {
            json!({"tags": cp.list_tags(caller, string(&input, "resourceArn")).await?})
        }
        other => return Err(Error::internal(format!("operation {other} is routed but has no handler"))),
    };
    Ok(response::json(status, &body, call.request_id))
}

/// A required string member; validation has already guaranteed it is present.
fn string(input: &Input, name: &str) -> String {
    input.get(name).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn opt_string(input: &Input, name: &str) -> Option<String> {
    input.get(name).and_then(Value::as_str).map(String::from)
}

fn opt_version(input: &Input) -> Result<Option<u32>> {
    opt_string(input, "agentRuntimeVersion")
        .map(|v| {
            v.parse()
                .map_err(|_| Error::invalid_field("agentRuntimeVersion", format!("'{v}' is not a version number.")))
        })
        .transpose()
}

fn tags(input: &Input) -> BTreeMap<String, String> {
    input
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default()
}

fn page(input: &Input, list: &str) -> Result<Page> {
    Page::new(input.get("maxResults").and_then(Value::as_i64), input.get("nextToken").and_then(Value::as_str), list)
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
    let token = opt_string(input, "clientToken");
    let rest: Input = input.iter().filter(|(k, _)| *k != "clientToken").map(|(k, v)| (k.clone(), v.clone())).collect();
    let digest = Sha256::digest(format!("{operation}\n{}", canonical_json(&Value::Object(rest))).as_bytes());
    Idempotency { token, fingerprint: hex::encode(digest) }
}
