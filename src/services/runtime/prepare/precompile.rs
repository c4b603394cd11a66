//! Python bytecode for a code deployment, compiled once per version in the runtime's own image.
//!
//! Sessions mount the code read-only, so without this every session compiles every module it
//! imports from source (over half a second for bedrock-agentcore and boto3 on a 2-core machine).
//! Compiling is an optimisation: a failure is logged and the version still becomes READY.

use std::time::Duration;

/// Longest a compile job may run before it is killed (a huge zip; the sessions still work).
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

/// The argv that compiles everything under `dir` with `interpreter`, on every core.
pub fn command(interpreter: &str, dir: &str) -> Vec<String> {
    [interpreter, "-m", "compileall", "-q", "-j", "0", dir].map(String::from).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiles_the_whole_tree_in_parallel() {
        assert_eq!(super::command("python", "/var/task"), ["python", "-m", "compileall", "-q", "-j", "0", "/var/task"]);
    }
}
