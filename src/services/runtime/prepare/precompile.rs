//! Python bytecode for a code deployment, compiled once per version in the runtime's own image.
//!
//! Sessions mount the code read-only, so without this every session compiles every module it
//! imports from source (over half a second for bedrock-agentcore and boto3 on a 2-core machine).
//! Compiling is an optimisation: a failure is logged and the version still becomes READY.

use std::time::Duration;

use futures_util::StreamExt;

use crate::sandbox::{SandboxBackend, SandboxError, SandboxSpec, SandboxState};

/// Longest a compile job may run before it is killed (a huge zip; the sessions still work).
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

/// The argv that compiles everything under `dir` with `interpreter`, on every core.
pub fn command(interpreter: &str, dir: &str) -> Vec<String> {
    [interpreter, "-m", "compileall", "-q", "-j", "0", dir].map(String::from).to_vec()
}

/// Run `spec` (a job whose command compiles the mounted code) to completion and remove it.
/// `Ok` once it exited 0; otherwise what went wrong, with its last output.
pub async fn run(backend: &dyn SandboxBackend, spec: &SandboxSpec, timeout: Duration) -> Result<(), String> {
    let handle = match backend.start(spec).await {
        Ok(handle) => handle,
        Err(SandboxError::ExitedAtStart { code: 0, .. }) => return Ok(()),
        Err(SandboxError::ExitedAtStart { code, logs }) => return Err(exit_message(code, &logs)),
        Err(e) => return Err(e.to_string()),
    };
    // The output stream ends when the job's process exits.
    let mut output = backend.follow_output(&handle.id, 0).await;
    let finished = tokio::time::timeout(timeout, async { while output.next().await.is_some() {} }).await.is_ok();
    let outcome = match backend.state(&handle.id).await {
        _ if !finished => Err(format!("compiling took longer than {timeout:?}; stopped")),
        SandboxState::Exited { code: 0 } => Ok(()),
        SandboxState::Exited { code } => Err(exit_message(code, &backend.logs(&handle.id, 10).await)),
        state => Err(format!("the compile job ended in state {state:?}")),
    };
    let _ = backend.stop(&handle.id, Duration::ZERO).await;
    outcome
}

fn exit_message(code: i64, logs: &str) -> String {
    format!("compileall exited with code {code}: {}", logs.trim_end())
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiles_the_whole_tree_in_parallel() {
        assert_eq!(super::command("python", "/var/task"), ["python", "-m", "compileall", "-q", "-j", "0", "/var/task"]);
    }
}
