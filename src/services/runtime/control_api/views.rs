//! Domain records → the JSON output shapes of the control-plane operations.

use serde_json::{json, Map, Value};

use crate::kernel::model;
use crate::kernel::response::timestamp;
use crate::services::runtime::domain::endpoints::EndpointView;
use crate::services::runtime::domain::lifecycle;
use crate::services::runtime::domain::runtimes::RuntimeView;

fn workload_identity(view: &RuntimeView) -> Value {
    let arn =
        crate::services::identity::workload_identity_arn(&view.runtime.account, &view.runtime.region, &view.runtime.id);
    json!({"workloadIdentityArn": arn})
}

/// Output of Create and Update.
pub fn runtime_mutation(view: &RuntimeView, with_last_updated: bool) -> Value {
    let mut body = json!({
        "agentRuntimeArn": view.runtime.arn,
        "agentRuntimeId": view.runtime.id,
        "agentRuntimeVersion": view.version.version.to_string(),
        "createdAt": timestamp(view.runtime.created_at),
        "status": view.status().as_str(),
        "workloadIdentityDetails": workload_identity(view),
    });
    if with_last_updated {
        body["lastUpdatedAt"] = timestamp(view.version.updated_at);
    }
    body
}

/// GetAgentRuntime: every configuration member the output shape has, plus the service's fields.
pub fn runtime_detail(view: &RuntimeView) -> Value {
    let output = model::control().shape("GetAgentRuntimeResponse");
    let mut body: Map<String, Value> = view
        .version
        .config
        .iter()
        .filter(|(k, _)| output.members.get(k).is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    body.insert("agentRuntimeArn".into(), json!(view.runtime.arn));
    body.insert("agentRuntimeName".into(), json!(view.runtime.name));
    body.insert("agentRuntimeId".into(), json!(view.runtime.id));
    body.insert("agentRuntimeVersion".into(), json!(view.version.version.to_string()));
    body.insert("createdAt".into(), timestamp(view.runtime.created_at));
    body.insert("lastUpdatedAt".into(), timestamp(view.version.updated_at));
    body.insert("status".into(), json!(view.status().as_str()));
    body.insert("workloadIdentityDetails".into(), workload_identity(view));
    let lc = lifecycle::effective(&view.version.config);
    body.insert(
        "lifecycleConfiguration".into(),
        json!({"idleRuntimeSessionTimeout": lc.idle_timeout_secs, "maxLifetime": lc.max_lifetime_secs}),
    );
    if let Some(reason) = &view.version.failure_reason {
        body.insert("failureReason".into(), json!(reason));
    }
    Value::Object(body)
}

/// An item of ListAgentRuntimes / ListAgentRuntimeVersions.
pub fn runtime_summary(view: &RuntimeView) -> Value {
    let mut item = json!({
        "agentRuntimeArn": view.runtime.arn,
        "agentRuntimeId": view.runtime.id,
        "agentRuntimeVersion": view.version.version.to_string(),
        "agentRuntimeName": view.runtime.name,
        "lastUpdatedAt": timestamp(view.version.updated_at),
        "status": view.status().as_str(),
    });
    if let Some(d) = view.version.config.get("description") {
        item["description"] = d.clone();
    }
    item
}

pub fn list(key: &str, items: impl Iterator<Item = Value>, next: Option<String>) -> Value {
    let mut body = json!({ key: items.collect::<Vec<_>>() });
    if let Some(t) = next {
        body["nextToken"] = json!(t);
    }
    body
}

fn version_opt(v: Option<u32>) -> Value {
    v.map(|v| json!(v.to_string())).unwrap_or(Value::Null)
}

fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    v
}

pub fn endpoint_created(view: &EndpointView) -> Value {
    let e = &view.endpoint;
    json!({
        "targetVersion": e.target_version.to_string(),
        "agentRuntimeEndpointArn": e.arn,
        "agentRuntimeArn": view.runtime.arn,
        "agentRuntimeId": view.runtime.id,
        "endpointName": e.name,
        "status": e.status.as_str(),
        "createdAt": timestamp(e.created_at),
    })
}

pub fn endpoint_updated(view: &EndpointView) -> Value {
    let e = &view.endpoint;
    strip_nulls(json!({
        "liveVersion": version_opt(e.live_version),
        "targetVersion": e.target_version.to_string(),
        "agentRuntimeEndpointArn": e.arn,
        "agentRuntimeArn": view.runtime.arn,
        "status": e.status.as_str(),
        "createdAt": timestamp(e.created_at),
        "lastUpdatedAt": timestamp(e.updated_at),
    }))
}

fn endpoint_status(view: &EndpointView) -> &'static str {
    if view.runtime.deleting {
        "DELETING"
    } else {
        view.endpoint.status.as_str()
    }
}

pub fn endpoint_detail(view: &EndpointView) -> Value {
    let e = &view.endpoint;
    strip_nulls(json!({
        "liveVersion": version_opt(e.live_version),
        "targetVersion": e.target_version.to_string(),
        "agentRuntimeEndpointArn": e.arn,
        "agentRuntimeArn": view.runtime.arn,
        "description": e.description,
        "status": endpoint_status(view),
        "createdAt": timestamp(e.created_at),
        "lastUpdatedAt": timestamp(e.updated_at),
        "failureReason": e.failure_reason,
        "name": e.name,
        "id": e.id,
    }))
}

pub fn endpoint_summary(view: &EndpointView) -> Value {
    let e = &view.endpoint;
    strip_nulls(json!({
        "name": e.name,
        "liveVersion": version_opt(e.live_version),
        "targetVersion": e.target_version.to_string(),
        "agentRuntimeEndpointArn": e.arn,
        "agentRuntimeArn": view.runtime.arn,
        "status": endpoint_status(view),
        "id": e.id,
        "description": e.description,
        "createdAt": timestamp(e.created_at),
        "lastUpdatedAt": timestamp(e.updated_at),
    }))
}
