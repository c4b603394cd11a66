//! The control plane's Provisioner for each execution mode.

use std::sync::Arc;

use serde_json::Value;

use super::SandboxBackend;
use crate::control::{BoxFuture, Provisioner};
use crate::sessions::Sessions;
use crate::store::{RuntimeRow, VersionRow};

/// Versions run in sandboxes: container images are resolved when the version is created or
/// updated (not at the first invocation), and deleting a runtime stops its sessions.
pub struct SandboxProvisioner {
    backend: Arc<dyn SandboxBackend>,
    sessions: Arc<Sessions>,
}

impl SandboxProvisioner {
    pub fn new(backend: Arc<dyn SandboxBackend>, sessions: Arc<Sessions>) -> Self {
        SandboxProvisioner { backend, sessions }
    }
}

impl Provisioner for SandboxProvisioner {
    fn prepare<'a>(
        &'a self,
        _runtime: &'a RuntimeRow,
        version: &'a VersionRow,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let artifact = version.config.get("agentRuntimeArtifact");
            if let Some(uri) =
                artifact.and_then(|a| a.pointer("/containerConfiguration/containerUri")).and_then(Value::as_str)
            {
                return self.backend.resolve_image(uri).await;
            }
            if artifact.and_then(|a| a.get("codeConfiguration")).is_some() {
                return Err(
                    "Direct code deployment (agentRuntimeArtifact.codeConfiguration) is not supported by this \
                            build of agentcore-local; deploy a container image with containerConfiguration instead."
                        .into(),
                );
            }
            Err("agentRuntimeArtifact names no container image.".into())
        })
    }

    fn retire<'a>(&'a self, runtime: &'a RuntimeRow, version: Option<u32>) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.sessions.retire(&runtime.id, version).await })
    }
}

/// `--sandbox none`: a control-plane-only emulator. Versions become READY without checking their
/// artifact, and invocations answer that nothing can run.
pub struct ControlPlaneOnly;

impl Provisioner for ControlPlaneOnly {
    fn prepare<'a>(
        &'a self,
        _runtime: &'a RuntimeRow,
        _version: &'a VersionRow,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async { Ok(String::new()) })
    }

    fn retire<'a>(&'a self, _runtime: &'a RuntimeRow, _version: Option<u32>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
