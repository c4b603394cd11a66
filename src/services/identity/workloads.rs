//! Workload identities: Create/Get/Update/Delete/ListWorkloadIdentities, and the identity each
//! agent runtime owns (named after the runtime id, as `workloadIdentityDetails` shows it).

use std::collections::{BTreeMap, HashSet};

use super::tables::WorkloadRow;
use super::{now_ms, tables, IdentityService};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::kernel::store::Tx;
use crate::services::runtime::domain::pagination::{self, Page};

/// `ListWorkloadIdentities` returns at most this many per page (the model's maximum).
pub const MAX_WORKLOAD_PAGE: usize = 20;

/// The ARN form the developer guide shows for workload identities.
pub fn workload_identity_arn(account: &str, region: &str, name: &str) -> String {
    let partition = crate::kernel::caller::partition_of(region);
    format!("arn:{partition}:bedrock-agentcore:{region}:{account}:workload-identity-directory/default/workload-identity/{name}")
}

fn not_found(caller: &Caller, name: &str) -> Error {
    Error::not_found(format!(
        "No workload identity named '{name}' exists in account {} in {}.",
        caller.account, caller.region
    ))
}

impl IdentityService {
    pub async fn create_workload(
        &self,
        caller: Caller,
        name: String,
        return_urls: Vec<String>,
        tags: BTreeMap<String, String>,
    ) -> Result<WorkloadRow> {
        self.store
            .write(move |tx| {
                let t = tables(tx);
                if t.workload(&caller.account, &caller.region, &name)?.is_some() {
                    // The model gives CreateWorkloadIdentity no ConflictException.
                    return Err(Error::invalid_field(
                        "name",
                        format!("A workload identity named '{name}' already exists in this account and Region."),
                    ));
                }
                let now = now_ms();
                t.insert_workload(&WorkloadRow {
                    seq: 0,
                    arn: workload_identity_arn(&caller.account, &caller.region, &name),
                    account: caller.account,
                    region: caller.region,
                    name,
                    return_urls,
                    runtime_id: None,
                    tags,
                    created_at: now,
                    updated_at: now,
                })
            })
            .await
    }

    pub async fn get_workload(&self, caller: Caller, name: String) -> Result<WorkloadRow> {
        self.store
            .read(move |tx| {
                tables(tx).workload(&caller.account, &caller.region, &name)?.ok_or_else(|| not_found(&caller, &name))
            })
            .await
    }

    /// Replace the allowed return URLs (when given). A runtime's own identity may be updated too:
    /// that is how its USER_FEDERATION return URLs are registered.
    pub async fn update_workload(
        &self,
        caller: Caller,
        name: String,
        return_urls: Option<Vec<String>>,
    ) -> Result<WorkloadRow> {
        self.store
            .write(move |tx| {
                let t = tables(tx);
                let row =
                    t.workload(&caller.account, &caller.region, &name)?.ok_or_else(|| not_found(&caller, &name))?;
                if let Some(urls) = return_urls {
                    t.update_workload_return_urls(row.seq, &urls, now_ms())?;
                }
                t.workload(&caller.account, &caller.region, &name)?.ok_or_else(|| not_found(&caller, &name))
            })
            .await
    }

    pub async fn delete_workload(&self, caller: Caller, name: String) -> Result<()> {
        self.store
            .write(move |tx| {
                let t = tables(tx);
                let row =
                    t.workload(&caller.account, &caller.region, &name)?.ok_or_else(|| not_found(&caller, &name))?;
                if let Some(runtime) = &row.runtime_id {
                    return Err(Error::invalid_field(
                        "name",
                        format!(
                            "Workload identity '{name}' is managed by agent runtime '{runtime}' and is deleted with it."
                        ),
                    ));
                }
                t.delete_workload(row.seq)?;
                t.delete_workload_tokens(&caller.account, &caller.region, &name)
            })
            .await
    }

    pub async fn list_workloads(
        &self,
        caller: Caller,
        max_results: Option<i64>,
        next_token: Option<String>,
    ) -> Result<(Vec<WorkloadRow>, Option<String>)> {
        let list = "workload-identities";
        let page = Page::new(Some(max_results.unwrap_or(MAX_WORKLOAD_PAGE as i64)), next_token.as_deref(), list)?;
        let rows = self
            .store
            .read(move |tx| {
                tables(tx).workloads(&caller.account, &caller.region, page.after.unwrap_or(0), page.max_results + 1)
            })
            .await?;
        Ok(pagination::finish(rows, &page, list, |w| w.seq))
    }

    /// The workload identity of a runtime, created if it does not exist yet. Called when a
    /// runtime is created and before a workload access token is minted for it.
    pub async fn ensure_runtime_workload(
        &self,
        account: String,
        region: String,
        runtime_id: String,
    ) -> Result<WorkloadRow> {
        self.store.write(move |tx| ensure_runtime_workload_in(tx, &account, &region, &runtime_id)).await
    }

    /// A runtime is gone: its workload identity and the tokens kept for it go too.
    pub async fn remove_runtime_workload(&self, runtime_id: String) -> Result<()> {
        self.store.write(move |tx| remove_runtime_workload_in(tx, &runtime_id)).await
    }

    /// Every live runtime has its identity, and no identity outlives its runtime: repairs a
    /// crash between a runtime's commit and its identity's (CreateAgentRuntime and
    /// DeleteAgentRuntime each commit twice). `live_runtimes` lists (account, Region, id) of the
    /// runtimes not being deleted.
    ///
    /// Runs once after start-up, while requests are already served, so it reads and repairs in
    /// one write transaction: a runtime created or deleted meanwhile is seen either wholly before
    /// or wholly after, never between its two commits. Returns how many identities it repaired.
    pub async fn sync_runtime_workloads<F>(&self, live_runtimes: F) -> Result<usize>
    where
        F: FnOnce(&Tx<'_>) -> Result<Vec<(String, String, String)>> + Send + 'static,
    {
        self.store
            .write(move |tx| {
                let runtimes = live_runtimes(tx)?;
                let owned: HashSet<String> = tables(tx).runtime_owned_workloads()?.into_iter().collect();
                let alive: HashSet<&str> = runtimes.iter().map(|(_, _, id)| id.as_str()).collect();
                let mut repaired = 0;
                for (account, region, id) in runtimes.iter().filter(|(_, _, id)| !owned.contains(id)) {
                    ensure_runtime_workload_in(tx, account, region, id)?;
                    repaired += 1;
                }
                for id in owned.iter().filter(|id| !alive.contains(id.as_str())) {
                    remove_runtime_workload_in(tx, id)?;
                    repaired += 1;
                }
                Ok(repaired)
            })
            .await
    }
}

/// The workload identity `runtime_id` owns, and the tokens kept for it, removed in `tx`.
fn remove_runtime_workload_in(tx: &Tx<'_>, runtime_id: &str) -> Result<()> {
    let t = tables(tx);
    if let Some(row) = t.runtime_workload(runtime_id)? {
        t.delete_workload(row.seq)?;
        t.delete_workload_tokens(&row.account, &row.region, &row.name)?;
    }
    Ok(())
}

/// The runtime's workload identity, created in `tx` if it does not exist yet.
fn ensure_runtime_workload_in(tx: &Tx<'_>, account: &str, region: &str, runtime_id: &str) -> Result<WorkloadRow> {
    let t = tables(tx);
    if let Some(row) = t.workload(account, region, runtime_id)? {
        return Ok(row);
    }
    let now = now_ms();
    t.insert_workload(&WorkloadRow {
        seq: 0,
        arn: workload_identity_arn(account, region, runtime_id),
        account: account.to_string(),
        region: region.to_string(),
        name: runtime_id.to_string(),
        return_urls: vec![],
        runtime_id: Some(runtime_id.to_string()),
        tags: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    })
}
