//! `agentcore-local images`: build and list the base images code deployments run in.
//!
//! The build recipes live in `docker/<language>/build.sh` and are embedded, so the single binary
//! can build its images anywhere: from the official slim images where a registry is reachable,
//! otherwise (Python) from Debian packages with debootstrap and `docker import`.

use std::io::Write;
use std::process::Command;

use crate::services::runtime::prepare::runtimes::{self, CodeRuntime};

const PYTHON_BUILD: &str = include_str!("../docker/python/build.sh");
const NODE_BUILD: &str = include_str!("../docker/node/build.sh");

fn script_for(rt: &CodeRuntime) -> &'static str {
    if rt.is_python() {
        PYTHON_BUILD
    } else {
        NODE_BUILD
    }
}

/// Build the base images of `names` (runtime enum values); returns the failures.
pub fn build(names: &[String], force: bool) -> Result<(), String> {
    let mut failed = Vec::new();
    for name in names {
        let rt = runtimes::lookup(name).ok_or_else(|| {
            let known: Vec<&str> = runtimes::RUNTIMES.iter().map(|r| r.name).collect();
            format!("unknown runtime '{name}'; known runtimes: {}", known.join(", "))
        })?;
        let mut script = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        script.write_all(script_for(rt).as_bytes()).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("bash");
        cmd.arg(script.path()).arg(rt.build_arg);
        if force {
            cmd.arg("--force");
        }
        let status = cmd.status().map_err(|e| format!("cannot run bash: {e}"))?;
        if !status.success() {
            failed.push(rt.name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("could not build the base image of {}", failed.join(", ")))
    }
}

/// One line per runtime: its image and whether it exists locally.
pub fn list() -> Result<(), String> {
    for rt in runtimes::RUNTIMES {
        let present = Command::new("docker")
            .args(["image", "inspect", rt.image])
            .output()
            .map(|o| o.status.success())
            .map_err(|e| format!("cannot run docker: {e}"))?;
        println!(
            "{:<12} {:<38} {}",
            rt.name,
            rt.image,
            if present { "built".to_string() } else { format!("missing (build: {})", rt.build_command()) }
        );
    }
    Ok(())
}
