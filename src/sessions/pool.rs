//! Warm pool: pre-started, ready sandboxes per runtime version, so a new session does not wait for
//! a container start (hundreds of milliseconds with Docker) once its version is in use.
//!
//! A version gets spares after its first session starts, and keeps them while new sessions keep
//! arriving; after the version's idle timeout without demand its spares are stopped. A spare
//! serves exactly one session and is never returned, so sessions stay isolated.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use super::{readiness, spec, Sessions};
use crate::kernel::clock::now_ms;
use crate::sandbox::SandboxHandle;
use crate::services::runtime::domain::resolve::InvocationTarget;

type PoolKey = (String, u32);

struct Entry {
    spares: Vec<SandboxHandle>,
    filling: usize,
    last_demand: Instant,
    idle_limit: Duration,
}

#[derive(Default)]
pub struct Pool {
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

impl Sessions {
    /// A ready spare for `target`'s version, if one is waiting.
    pub(super) fn take_spare(&self, target: &InvocationTarget) -> Option<SandboxHandle> {
        let mut entries = self.pool.lock();
        let entry = entries.get_mut(&key(target))?;
        entry.last_demand = Instant::now();
        entry.spares.pop()
    }

    /// Record demand for `target`'s version and start spares up to the pool size.
    pub(super) fn replenish(self: &Arc<Self>, target: &InvocationTarget) {
        let size = self.config.warm_pool;
        if size == 0 {
            return;
        }
        let missing = {
            let mut entries = self.pool.lock();
            let entry = entries.entry(key(target)).or_insert_with(|| Entry {
                spares: Vec::new(),
                filling: 0,
                last_demand: Instant::now(),
                idle_limit: self.config.scaled(Duration::from_secs(target.lifecycle.idle_timeout_secs)),
            });
            entry.last_demand = Instant::now();
            let missing = size.saturating_sub(entry.spares.len() + entry.filling);
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
        let spec = spec::build(&self.config, &self.instance_id, self.urls(), &target, None, now_ms());
        let started = match self.backend.start(&spec).await {
            Ok(handle) => {
                // A spare has no session yet; it gets one (and credentials named after it) when claimed.
                self.directory.enter(&handle, &target, None);
                let addr = handle.ports.get(&target.protocol.port).copied();
                let ready = match addr {
                    Some(addr) => readiness::wait_ready(
                        self.backend.as_ref(),
                        &self.client,
                        &handle.id,
                        addr,
                        &target.protocol,
                        self.config.startup_timeout,
                    )
                    .await
                    .is_ok(),
                    None => false,
                };
                if ready {
                    Some(handle)
                } else {
                    self.stop_in_background(handle.id);
                    None
                }
            }
            Err(e) => {
                tracing::debug!(runtime = %target.runtime_id, error = %e, "warm pool sandbox did not start");
                None
            }
        };
        let mut entries = self.pool.lock();
        match (entries.get_mut(&key(&target)), started) {
            (Some(entry), Some(handle)) => {
                entry.filling = entry.filling.saturating_sub(1);
                entry.spares.push(handle);
            }
            (Some(entry), None) => entry.filling = entry.filling.saturating_sub(1),
            // The version was drained while this spare started: it is not wanted any more.
            (None, Some(handle)) => {
                drop(entries);
                self.stop_in_background(handle.id);
            }
            (None, None) => {}
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
            keys.iter().filter_map(|k| entries.remove(k)).flat_map(|e| e.spares).collect()
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
            keys.iter().filter_map(|k| entries.remove(k)).flat_map(|e| e.spares).collect()
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
