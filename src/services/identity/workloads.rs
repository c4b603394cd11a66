//! Workload identities: Create/Get/Update/Delete/ListWorkloadIdentities, and the identity each
//! agent runtime owns (named after the runtime id, as `workloadIdentityDetails` shows it).

use std::collections::{BTreeMap, HashSet};

use super::tables::WorkloadRow;
use super::{now_ms, tables, IdentityService};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
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
        self.store
            .write(move |tx| {
                let t = tables(tx);
                if let Some(row) = t.runtime_workload(&runtime_id)? {
                    t.delete_workload(row.seq)?;
                    t.delete_workload_tokens(&row.account, &row.region, &row.name)?;
                }
                Ok(())
            })
            .await
    }

    /// At start-up: every existing runtime has its identity, and no identity outlives its runtime
    /// (a crash between a runtime's commit and its identity's is repaired here).
    pub async fn sync_runtime_workloads(&self, runtimes: Vec<(String, String, String)>) -> Result<()> {
        let alive: HashSet<String> = runtimes.iter().map(|(_, _, id)| id.clone()).collect();
        // This runs before the server accepts connections, and a data dir may hold thousands of
        // runtimes: one query finds the workloads that exist, and only a crash's leftovers (a
        // runtime without its workload) cost a write, all in one transaction.
        let owned: HashSet<String> =
            self.store.read(|tx| tables(tx).runtime_owned_workloads()).await?.into_iter().collect();
        let missing: Vec<(String, String, String)> =
            runtimes.into_iter().filter(|(_, _, id)| !owned.contains(id)).collect();
        if !missing.is_empty() {
            self.store
                .write(move |tx| {
                    for (account, region, id) in &missing {
                        ensure_runtime_workload_in(tx, account, region, id)?;
                    }
                    Ok(())
                })
                .await?;
        }
        for id in owned.into_iter().filter(|id| !alive.contains(id)) {
            self.remove_runtime_workload(id).await?;
        }
        Ok(())
    }
}

/// The runtime's workload identity, created in `tx` if it does not exist yet.
fn ensure_runtime_workload_in(
    tx: &crate::kernel::store::Tx<'_>,
    account: &str,
    region: &str,
    runtime_id: &str,
) -> Result<WorkloadRow> {
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
