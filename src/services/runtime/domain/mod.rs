//! Control-plane semantics: runtimes, their immutable versions, endpoints, tags and idempotency.
//!
//! Knows nothing of HTTP. Mutations commit in one store transaction and then wake the reconciler,
//! which moves CREATING/UPDATING/DELETING resources to their final state in the background, the
//! way the real service answers 202 and lets clients poll.

pub mod artifact;
mod authorizers;
pub mod endpoints;
pub mod ids;
pub mod lifecycle;
pub mod pagination;
pub mod protocol;
mod reconcile;
pub mod resolve;
pub mod rules;
pub mod runtimes;
mod tags;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, ErrorKind, Result, ValidationReason};
use crate::kernel::store::IdempotencyRecord;
use crate::kernel::store::{Store, Tx};

pub use reconcile::Reconciler;

/// Quotas from the service's published limits (field-notes.md).
pub const MAX_VERSIONS_PER_RUNTIME: u32 = 1000;
pub const MAX_ENDPOINTS_PER_RUNTIME: u32 = 10;
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
/// How long a `clientToken` is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 8 * 3600 * 1000;
pub const DEFAULT_ENDPOINT: &str = "DEFAULT";

pub use futures_util::future::BoxFuture;

/// What the reconciler asks of the execution layer. The sandbox module implements it; the control
/// plane only needs to know whether a version can run and when a runtime is gone.
pub trait Provisioner: Send + Sync + 'static {
    /// Make `version` runnable (resolve its image, unpack its code). `Ok` is what sessions start
    /// from (e.g. the local image id), stored with the version; `Err` is the `failureReason`.
    fn prepare<'a>(
        &'a self,
        runtime: &'a crate::services::runtime::tables::RuntimeRow,
        version: &'a crate::services::runtime::tables::VersionRow,
    ) -> BoxFuture<'a, std::result::Result<String, String>>;
    /// The runtime (or one of its versions, when `version` is given) is being deleted: stop its sessions.
    fn retire<'a>(
        &'a self,
        runtime: &'a crate::services::runtime::tables::RuntimeRow,
        version: Option<u32>,
    ) -> BoxFuture<'a, ()>;
}

/// A `clientToken` and a digest of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub token: Option<String>,
    pub fingerprint: String,
}

#[derive(Clone)]
pub struct ControlPlane {
    store: Store,
    wake: Arc<Notify>,
    /// Invocation targets by request, valid while the store generation is unchanged: the warm
    /// invocation path then needs no database round trip.
    targets: Arc<resolve::TargetCache>,
}

pub use crate::kernel::clock::now_ms;

impl ControlPlane {
    pub fn new(store: Store) -> Self {
        ControlPlane { store, wake: Arc::new(Notify::new()), targets: Arc::default() }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The reconciler bound to this control plane.
    pub fn reconciler(&self, provisioner: Arc<dyn Provisioner>) -> Reconciler {
        Reconciler::new(self.store.clone(), self.wake.clone(), provisioner)
    }

    /// Remember that a pre-started sandbox now serves `session_id` (its labels cannot say so).
    pub async fn record_claim(&self, sandbox_id: String, runtime_id: String, session_id: String) -> Result<()> {
        self.store.write(move |tx| tx.put_claim(&sandbox_id, &runtime_id, &session_id, now_ms())).await
    }

    pub async fn claimed_session(&self, sandbox_id: String) -> Result<Option<String>> {
        self.store.read(move |tx| tx.claim(&sandbox_id)).await
    }

    pub async fn forget_claim(&self, sandbox_id: String) -> Result<()> {
        self.store.write(move |tx| tx.delete_claim(&sandbox_id)).await
    }

    fn wake_reconciler(&self) {
        self.wake.notify_one();
    }
}

/// Look up a remembered token inside the mutation's transaction. `Some(resource)` means "this is a
/// retry of the request that produced `resource`"; a token reused with other parameters is the
/// `IdempotentParameterMismatchException` reason of ValidationException.
fn replayed(tx: &Tx<'_>, caller: &Caller, operation: &str, idem: &Idempotency) -> Result<Option<String>> {
    let Some(token) = &idem.token else {
        return Ok(None);
    };
    match tx.idempotency_record(&caller.account, &caller.region, operation, token)? {
        Some(rec) if rec.created_at + IDEMPOTENCY_TTL_MS < now_ms() => Ok(None),
        Some(rec) if rec.fingerprint == idem.fingerprint => Ok(Some(rec.resource)),
        Some(_) => Err(Error::new(
            ErrorKind::Validation { reason: ValidationReason::IdempotentParameterMismatch, fields: vec![] },
            format!(
                "The clientToken '{token}' was already used for a {operation} request with different parameters. \
                 Use a new clientToken for a different request."
            ),
        )),
        None => Ok(None),
    }
}

fn remember(tx: &Tx<'_>, caller: &Caller, operation: &str, idem: &Idempotency, resource: String) -> Result<()> {
    let Some(token) = &idem.token else {
        return Ok(());
    };
    tx.put_idempotency_record(
        &caller.account,
        &caller.region,
        operation,
        token,
        &IdempotencyRecord { fingerprint: idem.fingerprint.clone(), resource, created_at: now_ms() },
    )
}

fn runtime_not_found(id: &str, caller: &Caller) -> Error {
    Error::not_found(format!(
        "No agent runtime with id '{id}' exists in account {} in {}.",
        caller.account, caller.region
    ))
}
