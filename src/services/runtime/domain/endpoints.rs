//! Runtime endpoints: DEFAULT follows the latest version; named endpoints pin one.

use std::collections::BTreeMap;

use super::pagination::{self, Page};
use super::{
    ids, now_ms, remember, replayed, runtime_not_found, ControlPlane, Idempotency, DEFAULT_ENDPOINT,
    MAX_ENDPOINTS_PER_RUNTIME,
};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::kernel::store::Tx;
use crate::services::runtime::tables::{EndpointRow, ResourceStatus, RuntimeRow};

/// What Create/UpdateAgentRuntimeEndpoint ask for: the endpoint, and the version it should serve
/// and its description where given (an update leaves what is not given as it is).
#[derive(Debug, Clone)]
pub struct EndpointChange {
    pub runtime_id: String,
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EndpointView {
    pub runtime: RuntimeRow,
    pub endpoint: EndpointRow,
}

fn runtime_for_endpoints(tx: &Tx<'_>, caller: &Caller, runtime_id: &str) -> Result<RuntimeRow> {
    let runtime = tx
        .runtime(&caller.account, &caller.region, runtime_id)?
        .ok_or_else(|| runtime_not_found(runtime_id, caller))?;
    Ok(runtime)
}

fn endpoint_not_found(runtime_id: &str, name: &str) -> Error {
    Error::not_found(format!("Agent runtime '{runtime_id}' has no endpoint named '{name}'."))
}

/// The caller's runtime and its endpoint `name` (ResourceNotFound for either).
fn existing_endpoint(tx: &Tx<'_>, caller: &Caller, runtime_id: &str, name: &str) -> Result<EndpointView> {
    let runtime = runtime_for_endpoints(tx, caller, runtime_id)?;
    let endpoint = tx.endpoint(runtime_id, name)?.ok_or_else(|| endpoint_not_found(runtime_id, name))?;
    Ok(EndpointView { runtime, endpoint })
}

/// A version an endpoint may point at: it exists and did not fail.
fn check_servable_version(tx: &Tx<'_>, runtime_id: &str, version: u32) -> Result<()> {
    let row = tx.version(runtime_id, version)?.ok_or_else(|| {
        Error::not_found(format!("Version {version} of agent runtime '{runtime_id}' does not exist."))
    })?;
    match row.status {
        ResourceStatus::CreateFailed | ResourceStatus::UpdateFailed | ResourceStatus::Deleting => {
            Err(Error::invalid_field(
                "agentRuntimeVersion",
                format!(
                    "Version {version} of agent runtime '{runtime_id}' is {} and cannot serve an endpoint{}.",
                    row.status.as_str(),
                    row.failure_reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A version as named on the wire (`agentRuntimeVersion`), as a number.
pub fn parse_version(v: &str) -> Result<u32> {
    v.parse().map_err(|_| Error::invalid_field("agentRuntimeVersion", format!("'{v}' is not a version number.")))
}

impl ControlPlane {
    pub async fn create_endpoint(
        &self,
        caller: Caller,
        change: EndpointChange,
        tags: BTreeMap<String, String>,
        idem: Idempotency,
    ) -> Result<EndpointView> {
        let EndpointChange { runtime_id, name, version, description } = change;
        let view = self
            .store
            .write(move |tx| {
                let runtime = runtime_for_endpoints(tx, &caller, &runtime_id)?;
                if let Some(resource) = replayed(tx, &caller, "CreateAgentRuntimeEndpoint", &idem)? {
                    if let Some(endpoint) = tx.endpoint(&runtime_id, &resource)? {
                        return Ok(EndpointView { runtime, endpoint });
                    }
                }
                if runtime.deleting {
                    return Err(Error::conflict(format!("Agent runtime '{runtime_id}' is being deleted.")));
                }
                if tx.endpoint(&runtime_id, &name)?.is_some() {
                    return Err(Error::conflict(format!("Agent runtime '{runtime_id}' already has an endpoint named '{name}'.")));
                }
                if tx.count_endpoints(&runtime_id)? >= MAX_ENDPOINTS_PER_RUNTIME {
                    return Err(Error::quota(format!(
                        "Agent runtime '{runtime_id}' already has {MAX_ENDPOINTS_PER_RUNTIME} endpoints (including DEFAULT), the maximum per runtime."
                    )));
                }
                let target = match version {
                    Some(v) => parse_version(&v)?,
                    None => runtime.latest_version,
                };
                check_servable_version(tx, &runtime_id, target)?;
                let now = now_ms();
                let endpoint = tx.insert_endpoint(&EndpointRow {
                    seq: 0,
                    runtime_id: runtime_id.clone(),
                    id: ids::new_resource_id(&name),
                    arn: ids::endpoint_arn(&runtime.arn, &name),
                    name: name.clone(),
                    live_version: None,
                    target_version: target,
                    description,
                    status: ResourceStatus::Creating,
                    failure_reason: None,
                    created_at: now,
                    updated_at: now,
                })?;
                tx.put_tags(&endpoint.arn, &tags)?;
                remember(tx, &caller, "CreateAgentRuntimeEndpoint", &idem, name)?;
                Ok(EndpointView { runtime, endpoint })
            })
            .await?;
        self.wake_reconciler();
        Ok(view)
    }

    pub async fn update_endpoint(
        &self,
        caller: Caller,
        change: EndpointChange,
        idem: Idempotency,
    ) -> Result<EndpointView> {
        let EndpointChange { runtime_id, name, version, description } = change;
        let view = self
            .store
            .write(move |tx| {
                let EndpointView { runtime, mut endpoint } = existing_endpoint(tx, &caller, &runtime_id, &name)?;
                if replayed(tx, &caller, "UpdateAgentRuntimeEndpoint", &idem)?.is_some() {
                    return Ok(EndpointView { runtime, endpoint });
                }
                if name == DEFAULT_ENDPOINT {
                    return Err(Error::invalid_field(
                        "endpointName",
                        "The DEFAULT endpoint always serves the latest version and cannot be updated; create a named endpoint to pin a version.",
                    ));
                }
                if endpoint.status.in_progress() || runtime.deleting {
                    return Err(Error::conflict(format!(
                        "Endpoint '{name}' of agent runtime '{runtime_id}' is {}; wait until it is READY.",
                        if runtime.deleting { "DELETING" } else { endpoint.status.as_str() }
                    )));
                }
                let now = now_ms();
                if let Some(v) = version {
                    let target = parse_version(&v)?;
                    check_servable_version(tx, &runtime_id, target)?;
                    endpoint.target_version = target;
                }
                if description.is_some() {
                    endpoint.description = description;
                }
                endpoint.status = ResourceStatus::Updating;
                endpoint.failure_reason = None;
                endpoint.updated_at = now;
                tx.update_endpoint(&endpoint)?;
                remember(tx, &caller, "UpdateAgentRuntimeEndpoint", &idem, name)?;
                Ok(EndpointView { runtime, endpoint })
            })
            .await?;
        self.wake_reconciler();
        Ok(view)
    }

    pub async fn get_endpoint(&self, caller: Caller, runtime_id: String, name: String) -> Result<EndpointView> {
        self.store.read(move |tx| existing_endpoint(tx, &caller, &runtime_id, &name)).await
    }

    pub async fn delete_endpoint(
        &self,
        caller: Caller,
        runtime_id: String,
        name: String,
        idem: Idempotency,
    ) -> Result<EndpointView> {
        let view = self
            .store
            .write(move |tx| {
                let EndpointView { runtime, mut endpoint } = existing_endpoint(tx, &caller, &runtime_id, &name)?;
                if replayed(tx, &caller, "DeleteAgentRuntimeEndpoint", &idem)?.is_some() {
                    return Ok(EndpointView { runtime, endpoint });
                }
                if name == DEFAULT_ENDPOINT {
                    return Err(Error::conflict(
                        "The DEFAULT endpoint is managed by the service and is deleted with its runtime (DeleteAgentRuntime).",
                    ));
                }
                if endpoint.status == ResourceStatus::Deleting {
                    return Err(Error::conflict(format!("Endpoint '{name}' is already being deleted.")));
                }
                endpoint.status = ResourceStatus::Deleting;
                endpoint.updated_at = now_ms();
                tx.update_endpoint(&endpoint)?;
                remember(tx, &caller, "DeleteAgentRuntimeEndpoint", &idem, name)?;
                Ok(EndpointView { runtime, endpoint })
            })
            .await?;
        self.wake_reconciler();
        Ok(view)
    }

    pub async fn list_endpoints(
        &self,
        caller: Caller,
        runtime_id: String,
        page: Page,
    ) -> Result<(Vec<EndpointView>, Option<String>)> {
        let list = format!("endpoints:{runtime_id}");
        self.store
            .read(move |tx| {
                let runtime = runtime_for_endpoints(tx, &caller, &runtime_id)?;
                let rows = tx.list_endpoints(&runtime_id, page.after.unwrap_or(0), page.max_results + 1)?;
                let (rows, next) = pagination::finish(rows, &page, &list, |e| e.seq);
                Ok((
                    rows.into_iter().map(|endpoint| EndpointView { runtime: runtime.clone(), endpoint }).collect(),
                    next,
                ))
            })
            .await
    }
}
