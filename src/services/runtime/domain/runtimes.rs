//! CreateAgentRuntime, UpdateAgentRuntime, GetAgentRuntime, DeleteAgentRuntime and the two lists.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::pagination::{self, Page};
use super::{
    ids, now_ms, remember, replayed, runtime_not_found, ControlPlane, Idempotency, DEFAULT_ENDPOINT,
    MAX_VERSIONS_PER_RUNTIME,
};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::kernel::store::Tx;
use crate::services::runtime::tables::{EndpointRow, ResourceStatus, RuntimeRow, VersionRow};

/// A runtime as seen through one of its versions.
#[derive(Debug, Clone)]
pub struct RuntimeView {
    pub runtime: RuntimeRow,
    pub version: VersionRow,
}

impl RuntimeView {
    /// The status a caller sees: a runtime being deleted is DELETING whatever its versions say.
    pub fn status(&self) -> ResourceStatus {
        if self.runtime.deleting {
            ResourceStatus::Deleting
        } else {
            self.version.status
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeleteRuntimeOutcome {
    pub runtime_id: String,
    pub version: Option<u32>,
}

fn load_view(tx: &Tx<'_>, runtime: RuntimeRow, version: u32) -> Result<RuntimeView> {
    let version_row = tx.version(&runtime.id, version)?.ok_or_else(|| {
        Error::not_found(format!("Version {version} of agent runtime '{}' does not exist.", runtime.id))
    })?;
    Ok(RuntimeView { runtime, version: version_row })
}

fn live_runtime(tx: &Tx<'_>, caller: &Caller, id: &str) -> Result<RuntimeRow> {
    tx.runtime(&caller.account, &caller.region, id)?.ok_or_else(|| runtime_not_found(id, caller))
}

fn parse_resource(resource: &str) -> Option<(String, u32)> {
    let (id, v) = resource.rsplit_once('#')?;
    Some((id.to_string(), v.parse().ok()?))
}

impl ControlPlane {
    pub async fn create_runtime(
        &self,
        caller: Caller,
        name: String,
        config: Map<String, Value>,
        tags: BTreeMap<String, String>,
        idem: Idempotency,
    ) -> Result<RuntimeView> {
        let view = self
            .store
            .write(move |tx| {
                if let Some(resource) = replayed(tx, &caller, "CreateAgentRuntime", &idem)? {
                    if let Some((id, v)) = parse_resource(&resource) {
                        if let Some(rt) = tx.runtime(&caller.account, &caller.region, &id)? {
                            return load_view(tx, rt, v);
                        }
                    }
                }
                if let Some(existing) = tx.runtime_by_name(&caller.account, &caller.region, &name)? {
                    return Err(Error::conflict(format!(
                        "An agent runtime named '{name}' already exists in account {} in {} (id {}). \
                         Runtime names are unique per account and Region: choose another name or delete the existing runtime.",
                        caller.account, caller.region, existing.id
                    )));
                }
                let now = now_ms();
                let id = ids::new_resource_id(&name);
                let arn = ids::runtime_arn(&caller, &id);
                let runtime = tx.insert_runtime(&RuntimeRow {
                    seq: 0,
                    id: id.clone(),
                    account: caller.account.clone(),
                    region: caller.region.clone(),
                    name,
                    arn: arn.clone(),
                    created_at: now,
                    latest_version: 1,
                    deleting: false,
                })?;
                let version = VersionRow {
                    runtime_id: id.clone(),
                    version: 1,
                    config,
                    status: ResourceStatus::Creating,
                    failure_reason: None,
                    created_at: now,
                    updated_at: now,
                    artifact: None,
                };
                tx.insert_version(&version)?;
                tx.insert_endpoint(&EndpointRow {
                    seq: 0,
                    runtime_id: id.clone(),
                    name: DEFAULT_ENDPOINT.into(),
                    id: ids::new_resource_id(DEFAULT_ENDPOINT),
                    arn: ids::endpoint_arn(&arn, DEFAULT_ENDPOINT),
                    live_version: None,
                    target_version: 1,
                    description: None,
                    status: ResourceStatus::Creating,
                    failure_reason: None,
                    created_at: now,
                    updated_at: now,
                })?;
                tx.put_tags(&arn, &tags)?;
                remember(tx, &caller, "CreateAgentRuntime", &idem, format!("{id}#1"))?;
                Ok(RuntimeView { runtime, version })
            })
            .await?;
        self.wake_reconciler();
        Ok(view)
    }

    pub async fn update_runtime(
        &self,
        caller: Caller,
        id: String,
        config: Map<String, Value>,
        idem: Idempotency,
    ) -> Result<RuntimeView> {
        let view = self
            .store
            .write(move |tx| {
                if let Some(resource) = replayed(tx, &caller, "UpdateAgentRuntime", &idem)? {
                    if let Some((rid, v)) = parse_resource(&resource).filter(|(rid, _)| *rid == id) {
                        let rt = live_runtime(tx, &caller, &rid)?;
                        return load_view(tx, rt, v);
                    }
                }
                let runtime = live_runtime(tx, &caller, &id)?;
                if runtime.deleting {
                    return Err(Error::conflict(format!("Agent runtime '{id}' is being deleted and cannot be updated.")));
                }
                let latest = load_view(tx, runtime.clone(), runtime.latest_version)?;
                if latest.version.status.in_progress() {
                    return Err(Error::conflict(format!(
                        "Agent runtime '{id}' is {} (version {}); wait until its status is READY before updating it again.",
                        latest.version.status.as_str(),
                        latest.version.version
                    )));
                }
                if tx.count_versions(&id)? >= MAX_VERSIONS_PER_RUNTIME {
                    return Err(Error::quota(format!(
                        "Agent runtime '{id}' already has {MAX_VERSIONS_PER_RUNTIME} versions, the maximum per runtime. \
                         Delete old versions with DeleteAgentRuntime --agent-runtime-version before updating."
                    )));
                }
                let now = now_ms();
                let next = runtime.latest_version + 1;
                let version = VersionRow {
                    runtime_id: id.clone(),
                    version: next,
                    config,
                    status: ResourceStatus::Updating,
                    failure_reason: None,
                    created_at: now,
                    updated_at: now,
                    artifact: None,
                };
                tx.insert_version(&version)?;
                tx.set_latest_version(&id, next)?;
                if let Some(mut default) = tx.endpoint(&id, DEFAULT_ENDPOINT)? {
                    default.target_version = next;
                    default.status = ResourceStatus::Updating;
                    default.failure_reason = None;
                    default.updated_at = now;
                    tx.update_endpoint(&default)?;
                }
                remember(tx, &caller, "UpdateAgentRuntime", &idem, format!("{id}#{next}"))?;
                Ok(RuntimeView { runtime: RuntimeRow { latest_version: next, ..runtime }, version })
            })
            .await?;
        self.wake_reconciler();
        Ok(view)
    }

    pub async fn get_runtime(&self, caller: Caller, id: String, version: Option<u32>) -> Result<RuntimeView> {
        self.store
            .read(move |tx| {
                let runtime = live_runtime(tx, &caller, &id)?;
                let v = version.unwrap_or(runtime.latest_version);
                load_view(tx, runtime, v)
            })
            .await
    }

    pub async fn delete_runtime(
        &self,
        caller: Caller,
        id: String,
        version: Option<u32>,
        idem: Idempotency,
    ) -> Result<DeleteRuntimeOutcome> {
        let outcome = self
            .store
            .write(move |tx| {
                if replayed(tx, &caller, "DeleteAgentRuntime", &idem)?.is_some() {
                    return Ok(DeleteRuntimeOutcome { runtime_id: id, version });
                }
                let runtime = live_runtime(tx, &caller, &id)?;
                let now = now_ms();
                match version {
                    None => {
                        tx.mark_runtime_deleting(&id)?;
                        for mut ep in tx.list_endpoints(&id, 0, usize::MAX >> 1)? {
                            ep.status = crate::services::runtime::tables::ResourceStatus::Deleting;
                            ep.updated_at = now;
                            tx.update_endpoint(&ep)?;
                        }
                    }
                    Some(v) => {
                        let row = load_view(tx, runtime.clone(), v)?.version;
                        if runtime.deleting {
                            return Err(Error::conflict(format!("Agent runtime '{id}' is already being deleted.")));
                        }
                        if tx.count_versions(&id)? <= 1 {
                            return Err(Error::conflict(format!(
                                "Version {v} is the only version of agent runtime '{id}'; delete the runtime itself instead."
                            )));
                        }
                        if let Some(endpoint) = tx.version_in_use(&id, v)? {
                            return Err(Error::conflict(format!(
                                "Version {v} of agent runtime '{id}' is in use by endpoint '{endpoint}'. \
                                 Point the endpoint at another version (or delete it) first."
                            )));
                        }
                        tx.set_version_status(&id, v, ResourceStatus::Deleting, row.failure_reason.as_deref(), now)?;
                    }
                }
                remember(tx, &caller, "DeleteAgentRuntime", &idem, format!("{id}#{}", version.unwrap_or(0)))?;
                Ok(DeleteRuntimeOutcome { runtime_id: id, version })
            })
            .await?;
        self.wake_reconciler();
        Ok(outcome)
    }

    /// Every runtime (all accounts and Regions) with its latest version and endpoints, for the
    /// local dashboard.
    pub async fn overview(&self, limit: usize) -> Result<Vec<(RuntimeView, Vec<EndpointRow>)>> {
        self.store
            .read(move |tx| {
                tx.all_runtimes(limit)?
                    .into_iter()
                    .map(|r| {
                        let endpoints = tx.list_endpoints(&r.id, 0, 100)?;
                        let v = r.latest_version;
                        Ok((load_view(tx, r, v)?, endpoints))
                    })
                    .collect()
            })
            .await
    }

    /// (account, Region, id) of every runtime not being deleted, read in `tx`: what owns a
    /// workload identity. Identity's start-up repair reads it inside its own write transaction.
    pub fn live_runtime_keys(tx: &Tx<'_>) -> Result<Vec<(String, String, String)>> {
        tx.live_runtime_keys()
    }

    /// Runtimes of the caller's account and Region, each through its latest version.
    pub async fn list_runtimes(&self, caller: Caller, page: Page) -> Result<(Vec<RuntimeView>, Option<String>)> {
        self.store
            .read(move |tx| {
                let rows =
                    tx.list_runtimes(&caller.account, &caller.region, page.after.unwrap_or(0), page.max_results + 1)?;
                let (rows, next) = pagination::finish(rows, &page, "runtimes", |r| r.seq);
                let views = rows
                    .into_iter()
                    .map(|r| {
                        let v = r.latest_version;
                        load_view(tx, r, v)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((views, next))
            })
            .await
    }

    /// Versions of one runtime, newest first.
    pub async fn list_versions(
        &self,
        caller: Caller,
        id: String,
        page: Page,
    ) -> Result<(Vec<RuntimeView>, Option<String>)> {
        let list = format!("versions:{id}");
        self.store
            .read(move |tx| {
                let runtime = live_runtime(tx, &caller, &id)?;
                let before = page.after.map(|a| a as u32).unwrap_or(u32::MAX);
                let rows = tx.list_versions(&id, before, page.max_results + 1)?;
                let (rows, next) = pagination::finish(rows, &page, &list, |v| v.version as i64);
                Ok((rows.into_iter().map(|version| RuntimeView { runtime: runtime.clone(), version }).collect(), next))
            })
            .await
    }
}
