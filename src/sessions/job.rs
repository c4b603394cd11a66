//! One-shot job sandboxes: a command run to completion in a runtime's image, with the same limits
//! and ownership labels as a session (used by version preparation, e.g. to compile bytecode).

use std::time::Duration;

use futures_util::StreamExt;

use super::{spec, Sessions};
use crate::sandbox::{Mount, SandboxError, SandboxState};

/// A job to run: what, where, as whom, and for how long at most.
pub struct Job {
    pub runtime_id: String,
    pub image: String,
    pub command: Vec<String>,
    pub mounts: Vec<Mount>,
    /// `uid:gid` to run as; `None` for the image's own user.
    pub user: Option<String>,
    pub timeout: Duration,
}

/// Why a job did not finish with exit code 0.
#[derive(Debug)]
pub enum JobFailure {
    /// The command exited non-zero; its last output.
    Exited {
        code: i64,
        output: String,
    },
    TimedOut(Duration),
    /// The sandbox could not be started, or ended in an unexpected state.
    Sandbox(String),
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFailure::Exited { code, output } => write!(f, "exited with code {code}: {}", output.trim_end()),
            JobFailure::TimedOut(t) => write!(f, "took longer than {t:?}; stopped"),
            JobFailure::Sandbox(e) => f.write_str(e),
        }
    }
}

impl Sessions {
    /// Find `reference` among local images (or fetch it); the id sandboxes start from.
    pub async fn resolve_image(&self, reference: &str) -> Result<String, String> {
        self.backend.resolve_image(reference).await
    }

    /// The id of a local image, without fetching; `Ok(None)` when it does not exist.
    pub async fn local_image(&self, reference: &str) -> Result<Option<String>, String> {
        self.backend.local_image(reference).await
    }

    /// Run `job` to completion and remove its sandbox.
    pub async fn run_job(&self, job: Job) -> Result<(), JobFailure> {
        let spec =
            spec::job(&self.config, &self.instance_id, &job.runtime_id, &job.image, job.command, job.mounts, job.user);
        let handle = match self.backend.start(&spec).await {
            Ok(handle) => handle,
            Err(SandboxError::ExitedAtStart { code: 0, .. }) => return Ok(()),
            Err(SandboxError::ExitedAtStart { code, logs }) => return Err(JobFailure::Exited { code, output: logs }),
            Err(e) => return Err(JobFailure::Sandbox(e.to_string())),
        };
        // The output stream ends when the job's process exits.
        let mut output = self.backend.follow_output(&handle.id, 0).await;
        let finished =
            tokio::time::timeout(job.timeout, async { while output.next().await.is_some() {} }).await.is_ok();
        let outcome = match self.backend.state(&handle.id).await {
            _ if !finished => Err(JobFailure::TimedOut(job.timeout)),
            SandboxState::Exited { code: 0, .. } => Ok(()),
            SandboxState::Exited { code, .. } => {
                Err(JobFailure::Exited { code, output: self.backend.logs(&handle.id, 10).await })
            }
            state => Err(JobFailure::Sandbox(format!("the job ended in state {state:?}"))),
        };
        let _ = self.backend.stop(&handle.id, Duration::ZERO).await;
        outcome
    }
}
