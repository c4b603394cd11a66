//! Drives resources from CREATING/UPDATING/DELETING to their final states.
//!
//! The API answers 202 as soon as the intent is committed; this loop does the work afterwards, so
//! the state in SQLite is always the truth and a restart simply resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{now_ms, Provisioner, DEFAULT_ENDPOINT, IDEMPOTENCY_TTL_MS};
use crate::kernel::error::Result;
use crate::kernel::store::Store;
use crate::services::runtime::tables::{EndpointRow, ResourceStatus};

/// Without a wake-up, look again this often (catches anything a crash interrupted).
const IDLE_RESCAN: Duration = Duration::from_secs(30);

pub struct Reconciler {
    store: Store,
    wake: Arc<Notify>,
    provisioner: Arc<dyn Provisioner>,
}

impl Reconciler {
    pub(super) fn new(store: Store, wake: Arc<Notify>, provisioner: Arc<dyn Provisioner>) -> Self {
        Reconciler { store, wake, provisioner }
    }

    /// Run until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.pass().await {
                tracing::error!(error = %e, "reconciler pass failed; will retry");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_RESCAN) => {}
            }
        }
    }

    /// One sweep over everything in progress. Public so tests can drive it deterministically.
    pub async fn pass(&self) -> Result<()> {
        self.settle_versions().await?;
        self.settle_endpoints().await?;
        self.finish_runtime_deletions().await?;
        self.store.write(|tx| tx.purge_idempotency_records(now_ms() - IDEMPOTENCY_TTL_MS)).await?;
        Ok(())
    }

    async fn settle_versions(&self) -> Result<()> {
        for version in self.store.read(|tx| tx.versions_in_progress()).await? {
            let id = version.runtime_id.clone();
            let Some(runtime) = self.store.read(move |tx| tx.runtime_by_id(&id)).await? else {
                continue;
            };
            let (rid, v) = (version.runtime_id.clone(), version.version);
            match version.status {
                ResourceStatus::Deleting => {
                    self.provisioner.retire(&runtime, Some(v)).await;
                    self.store.write(move |tx| tx.delete_version(&rid, v)).await?;
                    tracing::info!(runtime = %runtime.id, version = v, "version deleted");
                }
                status => {
                    let outcome = self.provisioner.prepare(&runtime, &version).await;
                    let artifact = outcome.as_ref().ok().filter(|a| !a.is_empty()).cloned();
                    let (next, reason) = match (&outcome, status) {
                        (Ok(_), _) => (ResourceStatus::Ready, None),
                        (Err(r), ResourceStatus::Creating) => (ResourceStatus::CreateFailed, Some(r.clone())),
                        (Err(r), _) => (ResourceStatus::UpdateFailed, Some(r.clone())),
                    };
                    match &reason {
                        None => tracing::info!(runtime = %runtime.id, version = v, "version READY"),
                        Some(r) => {
                            tracing::warn!(runtime = %runtime.id, version = v, reason = %r, "version {}", next.as_str())
                        }
                    }
                    self.store
                        .write(move |tx| {
                            // Only move a version that is still where we found it.
                            if tx.version(&rid, v)?.is_some_and(|row| row.status == status) {
                                tx.set_version_artifact(&rid, v, artifact.as_deref())?;
                                tx.set_version_status(&rid, v, next, reason.as_deref(), now_ms())?;
                            }
                            Ok(())
                        })
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn settle_endpoints(&self) -> Result<()> {
        self.store
            .write(|tx| {
                for mut ep in tx.endpoints_in_progress()? {
                    if ep.status == ResourceStatus::Deleting {
                        if !tx.runtime_by_id(&ep.runtime_id)?.is_some_and(|r| r.deleting) {
                            tx.delete_endpoint(&ep)?;
                        }
                        continue;
                    }
                    let Some(target) = tx.version(&ep.runtime_id, ep.target_version)? else {
                        continue;
                    };
                    if target.status.in_progress() {
                        continue;
                    }
                    settle_endpoint(&mut ep, target.status, target.failure_reason.as_deref());
                    tx.update_endpoint(&ep)?;
                }
                Ok(())
            })
            .await
    }

    async fn finish_runtime_deletions(&self) -> Result<()> {
        for runtime in self.store.read(|tx| tx.runtimes_deleting()).await? {
            self.provisioner.retire(&runtime, None).await;
            let r = runtime.clone();
            self.store.write(move |tx| tx.delete_runtime(&r)).await?;
            tracing::info!(runtime = %runtime.id, "runtime deleted");
        }
        Ok(())
    }
}

/// Apply the outcome of the endpoint's target version to the endpoint.
fn settle_endpoint(ep: &mut EndpointRow, target_status: ResourceStatus, target_reason: Option<&str>) {
    let was = ep.status;
    ep.updated_at = now_ms();
    if target_status == ResourceStatus::Ready {
        ep.live_version = Some(ep.target_version);
        ep.status = ResourceStatus::Ready;
        ep.failure_reason = None;
        return;
    }
    let reason = format!("Version {} failed: {}", ep.target_version, target_reason.unwrap_or("unknown reason"));
    ep.failure_reason = Some(reason);
    match (was, ep.live_version) {
        // An update that failed leaves the endpoint serving what it served before.
        (ResourceStatus::Updating, Some(live)) => {
            ep.target_version = live;
            ep.status = ResourceStatus::UpdateFailed;
        }
        _ => {
            ep.status = if was == ResourceStatus::Updating {
                ResourceStatus::UpdateFailed
            } else {
                ResourceStatus::CreateFailed
            }
        }
    }
    if ep.name == DEFAULT_ENDPOINT {
        tracing::warn!(runtime = %ep.runtime_id, reason = ?ep.failure_reason, "DEFAULT endpoint did not move");
    }
}
