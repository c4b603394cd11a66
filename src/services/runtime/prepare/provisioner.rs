//! The control plane's Provisioner for each execution mode.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::{code, precompile, runtimes};
use crate::sandbox::Mount;
use crate::services::runtime::domain::artifact::{Prepared, CODE_MOUNT};
use crate::services::runtime::domain::{BoxFuture, Provisioner};
use crate::services::runtime::tables::{RuntimeRow, VersionRow};
use crate::sessions::{Job, Sessions};

/// Where code deployments come from: the embedded S3 (`codeConfiguration.code.s3`).
pub trait CodeSource: Send + Sync + 'static {
    /// The local file holding the object's bytes; `Err` says what is missing.
    fn fetch<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<PathBuf, String>>;
}

/// Versions run in sandboxes: container images are resolved and code zips unpacked when the
/// version is created or updated (never at the first invocation, never per session), and deleting
/// a runtime stops its sessions and removes its unpacked code.
pub struct SandboxProvisioner {
    sessions: Arc<Sessions>,
    code: Option<CodeDeployments>,
}

/// Where code zips come from and where they are unpacked: `<root>/<runtime id>/<version>`.
struct CodeDeployments {
    source: Arc<dyn CodeSource>,
    root: PathBuf,
}

impl SandboxProvisioner {
    pub fn new(sessions: Arc<Sessions>) -> Self {
        SandboxProvisioner { sessions, code: None }
    }

    /// Enable direct code deployment from `source`, unpacking under `root`.
    pub fn with_code(mut self, source: Arc<dyn CodeSource>, root: PathBuf) -> Self {
        self.code = Some(CodeDeployments { source, root });
        self
    }

    async fn prepare_code(&self, runtime: &RuntimeRow, version: &VersionRow, config: &Value) -> Result<String, String> {
        let Some(deployments) = &self.code else {
            return Err("Direct code deployment (codeConfiguration) is not available in this emulator; deploy a \
                        container image with containerConfiguration instead."
                .into());
        };
        let name = config.get("runtime").and_then(Value::as_str).unwrap_or_default();
        let rt = runtimes::lookup(name).ok_or_else(|| format!("Unknown code runtime '{name}'."))?;
        let image = self.sessions.local_image(rt.image).await?.ok_or_else(|| {
            format!(
                "No base image for runtime {} ({} is not in the local Docker image store). Build it with: {}",
                rt.name,
                rt.image,
                rt.build_command()
            )
        })?;
        let s3 = config.pointer("/code/s3").ok_or("codeConfiguration.code names no S3 object.")?;
        let text = |k: &str| s3.get(k).and_then(Value::as_str);
        let (bucket, key) = (text("bucket").unwrap_or_default(), text("prefix").unwrap_or_default());
        let zip = deployments
            .source
            .fetch(&runtime.account, bucket, key, text("versionId"))
            .await
            .map_err(|e| format!("The code object s3://{bucket}/{key} cannot be read: {e}"))?;
        let dir = deployments.root.join(&runtime.id).join(version.version.to_string());
        let staging =
            deployments.root.join(&runtime.id).join(format!(".{}-{}", version.version, uuid::Uuid::new_v4().simple()));
        let (dir2, staging2) = (dir.clone(), staging.clone());
        let unpacked = tokio::task::spawn_blocking(move || {
            // A version re-prepared after a crash starts from scratch.
            let _ = std::fs::remove_dir_all(&dir2);
            let unpacked = code::unpack(&zip, &staging2)?;
            std::fs::rename(&staging2, &dir2).map_err(|e| format!("cannot move the unpacked code into place: {e}"))?;
            Ok::<_, String>(unpacked)
        })
        .await
        .map_err(|e| format!("unpacking failed: {e}"))??;
        let entry: Vec<String> = config
            .get("entryPoint")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        let command = runtimes::command(rt, &entry, &dir)?;
        tracing::info!(runtime = %runtime.id, version = version.version, files = unpacked.files, bytes = unpacked.bytes, "code unpacked");
        if rt.is_python() {
            self.compile_bytecode(&runtime.id, &image, rt.interpreter, &dir).await;
        }
        Ok(Prepared::Code {
            image,
            code_dir: dir.to_string_lossy().into_owned(),
            command,
            runtime: rt.name.to_string(),
        }
        .encode())
    }

    /// Compile the unpacked code's modules once, in the runtime's image, writing as the owner of
    /// the code directory (the emulator's user), so sessions import them without compiling.
    async fn compile_bytecode(&self, runtime_id: &str, image: &str, interpreter: &str, dir: &Path) {
        use std::os::unix::fs::MetadataExt;
        let user = std::fs::metadata(dir).ok().map(|m| format!("{}:{}", m.uid(), m.gid()));
        let mount =
            Mount { host_path: dir.to_string_lossy().into_owned(), target: CODE_MOUNT.into(), read_only: false };
        let job = Job {
            runtime_id: runtime_id.to_string(),
            image: image.to_string(),
            command: precompile::command(interpreter, CODE_MOUNT),
            mounts: vec![mount],
            user,
            timeout: precompile::COMPILE_TIMEOUT,
        };
        let started = std::time::Instant::now();
        match self.sessions.run_job(job).await {
            Ok(()) => {
                tracing::info!(runtime = %runtime_id, ms = started.elapsed().as_millis() as u64, "python bytecode compiled")
            }
            Err(e) => {
                tracing::warn!(runtime = %runtime_id, error = %format!("compileall {e}"), "python bytecode not compiled; sessions will compile modules as they import them")
            }
        }
    }
}

fn remove_dir(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove unpacked code");
        }
    }
}

impl Provisioner for SandboxProvisioner {
    fn prepare<'a>(
        &'a self,
        runtime: &'a RuntimeRow,
        version: &'a VersionRow,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let artifact = version.config.get("agentRuntimeArtifact");
            if let Some(uri) =
                artifact.and_then(|a| a.pointer("/containerConfiguration/containerUri")).and_then(Value::as_str)
            {
                let image = self.sessions.resolve_image(uri).await?;
                return Ok(Prepared::Container { image }.encode());
            }
            if let Some(code) = artifact.and_then(|a| a.get("codeConfiguration")) {
                return self.prepare_code(runtime, version, code).await;
            }
            Err("agentRuntimeArtifact names neither a container image nor code.".into())
        })
    }

    fn retire<'a>(&'a self, runtime: &'a RuntimeRow, version: Option<u32>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.sessions.retire(&runtime.id, version).await;
            let Some(deployments) = &self.code else { return };
            let dir = match version {
                Some(v) => deployments.root.join(&runtime.id).join(v.to_string()),
                None => deployments.root.join(&runtime.id),
            };
            let _ = tokio::task::spawn_blocking(move || remove_dir(&dir)).await;
        })
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
