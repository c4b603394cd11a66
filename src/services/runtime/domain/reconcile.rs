//! Drives resources from CREATING/UPDATING/DELETING to their final states.
//!
//! The API answers 202 as soon as the intent is committed; this loop does the work afterwards, so
//! the state in SQLite is always the truth and a restart simply resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{now_ms, Provisioner, DEFAULT_ENDPOINT, IDEMPOTENCY_TTL_MS};
use crate::kernel::error::Result;
use crate::kernel::store::{Store, Tx};
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
                                // In the same transaction: a client that saw the runtime READY
                                // must find its endpoints READY too. Settled in a later write,
                                // they lagged by every other version's preparation in this pass,
                                // and an invocation right after READY was refused as CREATING.
                                settle_endpoints_in(tx)?;
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
        self.store.write(settle_endpoints_in).await
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

/// Moves every endpoint in progress whose target version has settled to that version's outcome,
/// and removes deleted endpoints of runtimes that are not being deleted, in `tx`.
fn settle_endpoints_in(tx: &Tx<'_>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::super::{ControlPlane, Idempotency, Provisioner};
    use super::*;
    use crate::kernel::caller::Caller;
    use crate::services::runtime::tables::{RuntimeRow, VersionRow};
    use futures_util::future::BoxFuture;

    /// Prepares runtime `slow` only once `release` is notified; any other at once.
    struct SlowOne {
        release: Arc<Notify>,
    }

    impl Provisioner for SlowOne {
        fn prepare<'a>(
            &'a self,
            runtime: &'a RuntimeRow,
            _: &'a VersionRow,
        ) -> BoxFuture<'a, std::result::Result<String, String>> {
            Box::pin(async move {
                if runtime.name == "slow" {
                    self.release.notified().await;
                }
                Ok("image".to_string())
            })
        }
        fn retire<'a>(&'a self, _: &'a RuntimeRow, _: Option<u32>) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_runtime_seen_ready_has_its_endpoint_ready_while_other_versions_are_still_prepared() {
        let plane = ControlPlane::new(Store::in_memory().unwrap());
        let caller = Caller::new("123456789012", "us-east-1");
        let idem = || Idempotency { token: None, fingerprint: String::new() };
        let create = |name: &str| {
            plane.create_runtime(caller.clone(), name.to_string(), Default::default(), Default::default(), idem())
        };
        let fast = create("fast").await.unwrap().runtime.id;
        // Prepared after `fast` (versions are taken in order of creation).
        tokio::time::sleep(Duration::from_millis(5)).await;
        create("slow").await.unwrap();
        let release = Arc::new(Notify::new());
        let reconciler = plane.reconciler(Arc::new(SlowOne { release: release.clone() }));
        let pass = tokio::spawn(async move { reconciler.pass().await });

        // While the pass waits on `slow`, `fast` is READY, and so is the endpoint clients invoke.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while plane.get_runtime(caller.clone(), fast.clone(), None).await.unwrap().status() != ResourceStatus::Ready {
            assert!(tokio::time::Instant::now() < deadline, "the fast runtime became READY");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let endpoint = plane.get_endpoint(caller.clone(), fast.clone(), DEFAULT_ENDPOINT.into()).await.unwrap();
        assert_eq!(endpoint.endpoint.status, ResourceStatus::Ready, "{:?}", endpoint.endpoint);
        assert_eq!(endpoint.endpoint.live_version, Some(1));
        assert!(!pass.is_finished(), "the pass was still preparing the slow runtime");

        release.notify_one();
        pass.await.unwrap().unwrap();
    }
}
