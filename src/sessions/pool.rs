//! Warm pool: pre-started, ready sandboxes per runtime version, so a new session does not wait for
//! a container start (hundreds of milliseconds with Docker) once its version is in use.
//!
//! On by default (`--warm-pool 1`): a version gets spares after its first session starts, and
//! keeps them while new sessions keep arriving; after the version's idle timeout without demand its
//! spares are stopped, and they are stopped with their version (update, delete, shutdown). A spare
//! serves exactly one session and is never returned, so sessions stay isolated; it is started with
//! exactly the environment a cold sandbox gets (the session id reaches the agent per request, in
//! headers), so the agent cannot tell the two apart.
//!
//! The spares of all versions together hold at most `--warm-pool-memory-mib`: each spare's memory
//! is measured when it becomes ready, and no new spare is started while the measured total is at
//! the budget (one spare may cross it, since its size is known only once it runs).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use super::readiness::{StartFailure, Started};
use super::report::SpareReport;
use super::{spec, Sessions};
use crate::kernel::clock::now_ms;
use crate::sandbox::SandboxHandle;
use crate::services::runtime::domain::resolve::InvocationTarget;

type PoolKey = (String, u32);

struct Spare {
    handle: SandboxHandle,
    ready_at_ms: i64,
    memory_bytes: u64,
}

struct Entry {
    account: String,
    spares: Vec<Spare>,
    filling: usize,
    last_demand: Instant,
    idle_limit: Duration,
    /// The budget kept this version without a spare; logged once until a spare fits again.
    held_back: bool,
}

#[derive(Default)]
pub struct Pool {
    /// Spares per version. One short-held lock: every critical section is a few map operations,
    /// never a sandbox call.
    entries: Mutex<HashMap<PoolKey, Entry>>,
    /// Spares being started, so shutdown can wait for them (and stop them) instead of orphaning.
    fills: Mutex<tokio::task::JoinSet<()>>,
}

impl Pool {
    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<PoolKey, Entry>> {
        self.entries.lock()
    }
}

fn key(target: &InvocationTarget) -> PoolKey {
    (target.runtime_id.clone(), target.version)
}

/// Memory the ready spares of every version hold, as measured when each became ready.
fn held_bytes(entries: &HashMap<PoolKey, Entry>) -> u64 {
    entries.values().flat_map(|e| &e.spares).map(|s| s.memory_bytes).sum()
}

impl Sessions {
    /// A ready spare for `target`'s version, if one is waiting.
    pub(super) fn take_spare(&self, target: &InvocationTarget) -> Option<SandboxHandle> {
        let mut entries = self.pool.lock();
        let entry = entries.get_mut(&key(target))?;
        entry.last_demand = Instant::now();
        entry.spares.pop().map(|s| s.handle)
    }

    /// The ready spares, newest first, for the session report.
    pub fn spares(&self) -> Vec<SpareReport> {
        let entries = self.pool.lock();
        let mut spares: Vec<SpareReport> = entries
            .iter()
            .flat_map(|((runtime_id, version), e)| {
                e.spares.iter().map(move |s| SpareReport {
                    account: e.account.clone(),
                    runtime_id: runtime_id.clone(),
                    version: *version,
                    ready_at_ms: s.ready_at_ms,
                    memory_bytes: s.memory_bytes,
                })
            })
            .collect();
        spares.sort_by_key(|s| std::cmp::Reverse(s.ready_at_ms));
        spares
    }

    /// Record demand for `target`'s version and start spares up to the pool size.
    pub(super) fn replenish(self: &Arc<Self>, target: &InvocationTarget) {
        let size = self.config.warm_pool;
        if size == 0 {
            return;
        }
        let missing = {
            let mut entries = self.pool.lock();
            let held = held_bytes(&entries);
            let entry = entries.entry(key(target)).or_insert_with(|| Entry {
                account: target.account.clone(),
                spares: Vec::new(),
                filling: 0,
                last_demand: Instant::now(),
                idle_limit: self.config.scaled(Duration::from_secs(target.lifecycle.idle_timeout_secs)),
                held_back: false,
            });
            entry.last_demand = Instant::now();
            let mut missing = size.saturating_sub(entry.spares.len() + entry.filling);
            if missing > 0 && held >= self.config.warm_pool_memory_bytes {
                if !entry.held_back {
                    tracing::info!(
                        runtime = %target.runtime_id,
                        version = target.version,
                        held_mib = held / (1024 * 1024),
                        budget_mib = self.config.warm_pool_memory_bytes / (1024 * 1024),
                        "no warm spare for this version: the warm pool's spares already hold its memory budget \
                         (--warm-pool-memory-mib)"
                    );
                }
                entry.held_back = true;
                missing = 0;
            } else if missing > 0 {
                entry.held_back = false;
            }
            entry.filling += missing;
            missing
        };
        let mut fills = self.pool.fills.lock();
        while fills.try_join_next().is_some() {}
        for _ in 0..missing {
            let (this, target) = (self.clone(), target.clone());
            fills.spawn(async move { this.fill_one(target).await });
        }
    }

    async fn fill_one(self: Arc<Self>, target: InvocationTarget) {
        let started_ms = now_ms();
        let spec = spec::build(&self.config, &self.instance_id, self.urls(&target), &target, None, started_ms);
        // A spare has no session yet; it gets one (and credentials named after it) when claimed.
        let started = match self.start_and_wait(&spec, &target, None, started_ms).await {
            // Claimable at once; its memory is measured just after (a stats call can take a while
            // on a busy Docker daemon, and a new session should not wait for it).
            Ok(Started { ready, .. }) => Some(Spare { handle: ready.handle, ready_at_ms: now_ms(), memory_bytes: 0 }),
            Err(StartFailure::NotStarted(e)) => {
                tracing::debug!(runtime = %target.runtime_id, error = %e, "warm pool sandbox did not start");
                None
            }
            Err(StartFailure::NoAgentPort { handle } | StartFailure::NotReady { handle, .. }) => {
                self.stop_in_background(handle.id);
                None
            }
        };
        let measure = started.as_ref().map(|s| s.handle.id.clone());
        {
            let mut entries = self.pool.lock();
            match (entries.get_mut(&key(&target)), started) {
                (Some(entry), Some(spare)) => {
                    entry.filling = entry.filling.saturating_sub(1);
                    entry.spares.push(spare);
                }
                (Some(entry), None) => entry.filling = entry.filling.saturating_sub(1),
                // The version was drained while this spare started: it is not wanted any more.
                (None, Some(spare)) => {
                    drop(entries);
                    self.stop_in_background(spare.handle.id);
                    return;
                }
                (None, None) => {}
            }
        }
        if let Some(id) = measure {
            if let Some(stats) = self.backend.stats(&id).await {
                // The spare may have been claimed (or its version drained) meanwhile; then there is
                // nothing to count.
                let mut entries = self.pool.lock();
                let spares = entries.get_mut(&key(&target)).map(|e| e.spares.iter_mut());
                if let Some(spare) = spares.into_iter().flatten().find(|s| s.handle.id == id) {
                    spare.memory_bytes = stats.memory_bytes;
                }
            }
        }
    }

    /// Stop the spares of a runtime (or one of its versions), or of everything with `None`.
    pub(super) fn drain_pool(self: &Arc<Self>, runtime_id: Option<&str>, version: Option<u32>) {
        let drained: Vec<SandboxHandle> = {
            let mut entries = self.pool.lock();
            let keys: Vec<PoolKey> = entries
                .keys()
                .filter(|(r, v)| runtime_id.is_none_or(|id| id == r) && version.is_none_or(|want| want == *v))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| entries.remove(k)).flat_map(|e| e.spares).map(|s| s.handle).collect()
        };
        for spare in drained {
            self.stop_in_background(spare.id);
        }
    }

    /// Wait for spares still starting; with the pool drained, each stops itself when ready.
    pub(super) async fn wait_for_fills(&self) {
        let mut fills = std::mem::take(&mut *self.pool.fills.lock());
        while fills.join_next().await.is_some() {}
    }

    /// Stop the spares of versions nobody asked for within their idle timeout.
    pub(super) fn expire_pool(self: &Arc<Self>) {
        let expired: Vec<SandboxHandle> = {
            let mut entries = self.pool.lock();
            let keys: Vec<PoolKey> = entries
                .iter()
                .filter(|(_, e)| e.last_demand.elapsed() >= e.idle_limit)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| entries.remove(k)).flat_map(|e| e.spares).map(|s| s.handle).collect()
        };
        for spare in expired {
            self.stop_in_background(spare.id);
        }
    }

    /// Periodically expire unused spares; runs until the process ends.
    pub fn spawn_pool_janitor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = self.config.ping_interval();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match weak.upgrade() {
                    Some(sessions) => sessions.expire_pool(),
                    None => return,
                }
            }
        });
    }
}
