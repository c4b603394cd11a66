//! Which sandbox is at which address, and whose it is. The metadata service knows its caller only
//! by the address a request comes from; sandboxes share one network with traffic between them
//! blocked and no raw sockets, so that address cannot be forged by another session.
//!
//! A sandbox is entered as soon as it starts (the agent may fetch credentials while it boots), a
//! warm-pool spare without a session; claiming the spare gives it the session; stopping removes it.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::sandbox::SandboxHandle;
use crate::services::runtime::domain::resolve::InvocationTarget;

/// A sandbox as the metadata service needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxIdentity {
    pub sandbox_id: String,
    pub account: String,
    pub runtime_id: String,
    /// The runtime version's execution role.
    pub role_arn: String,
    /// `metadataConfiguration.requireMMDSV2` of the version.
    pub require_mmds_v2: bool,
    /// `None` for a warm-pool spare not yet given to a session.
    pub session_id: Option<String>,
}

#[derive(Default)]
pub struct SandboxDirectory {
    by_address: parking_lot::Mutex<HashMap<IpAddr, SandboxIdentity>>,
}

impl SandboxDirectory {
    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<IpAddr, SandboxIdentity>> {
        self.by_address.lock()
    }

    /// Enter a started sandbox (`session_id` is `None` for a warm-pool spare).
    pub fn enter(&self, handle: &SandboxHandle, target: &InvocationTarget, session_id: Option<&str>) {
        let Some(address) = handle.address else { return };
        let entry = SandboxIdentity {
            sandbox_id: handle.id.clone(),
            account: target.account.clone(),
            runtime_id: target.runtime_id.clone(),
            role_arn: target.role_arn.clone(),
            require_mmds_v2: target.require_mmds_v2,
            session_id: session_id.map(str::to_string),
        };
        self.lock().insert(address, entry);
    }

    /// A spare was given to `session_id`.
    pub fn claimed(&self, sandbox_id: &str, session_id: &str) {
        if let Some(entry) = self.lock().values_mut().find(|e| e.sandbox_id == sandbox_id) {
            entry.session_id = Some(session_id.to_string());
        }
    }

    /// The sandbox is gone (its address may soon belong to another one).
    pub fn remove(&self, sandbox_id: &str) {
        self.lock().retain(|_, e| e.sandbox_id != sandbox_id);
    }

    /// The sandbox a request from `address` comes from.
    pub fn at(&self, address: IpAddr) -> Option<SandboxIdentity> {
        self.lock().get(&address).cloned()
    }
}
