//! The managed runtimes of direct code deployment: their base images and how an `entryPoint`
//! becomes a command line.

use std::path::Path;

use crate::services::runtime::domain::artifact::CODE_MOUNT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRuntime {
    /// The model's enum value, e.g. `PYTHON_3_11`.
    pub name: &'static str,
    /// The local image sessions of this runtime start from.
    pub image: &'static str,
    pub interpreter: &'static str,
    /// The `docker/<…>/build.sh` argument that builds the image.
    pub build_arg: &'static str,
}

pub const RUNTIMES: &[CodeRuntime] = &[
    CodeRuntime {
        name: "PYTHON_3_10",
        image: "agentcore-local-runtime:python3.10",
        interpreter: "python",
        build_arg: "3.10",
    },
    CodeRuntime {
        name: "PYTHON_3_11",
        image: "agentcore-local-runtime:python3.11",
        interpreter: "python",
        build_arg: "3.11",
    },
    CodeRuntime {
        name: "PYTHON_3_12",
        image: "agentcore-local-runtime:python3.12",
        interpreter: "python",
        build_arg: "3.12",
    },
    CodeRuntime {
        name: "PYTHON_3_13",
        image: "agentcore-local-runtime:python3.13",
        interpreter: "python",
        build_arg: "3.13",
    },
    CodeRuntime {
        name: "PYTHON_3_14",
        image: "agentcore-local-runtime:python3.14",
        interpreter: "python",
        build_arg: "3.14",
    },
    CodeRuntime { name: "NODE_22", image: "agentcore-local-runtime:node22", interpreter: "node", build_arg: "22" },
];

pub fn lookup(name: &str) -> Option<&'static CodeRuntime> {
    RUNTIMES.iter().find(|r| r.name == name)
}

impl CodeRuntime {
    pub fn is_python(&self) -> bool {
        self.interpreter == "python"
    }

    /// The command that builds this runtime's base image.
    pub fn build_command(&self) -> String {
        format!("agentcore-local images build {}", self.name)
    }
}

fn listing(code_dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(code_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names.truncate(15);
    names.join(", ")
}

/// `["main.py"]` runs the script with the runtime's interpreter; `[launcher, "main.py"]` runs the
/// launcher with `interpreter main.py` as its arguments (e.g. `opentelemetry-instrument python
/// main.py`). A Python launcher shipped in the zip's `bin/` is started through the interpreter, so
/// the shebang pip wrote on the build machine does not matter.
pub fn command(runtime: &CodeRuntime, entry_point: &[String], code_dir: &Path) -> Result<Vec<String>, String> {
    let (launcher, script) = match entry_point {
        [script] => (None, script),
        [launcher, script] => (Some(launcher), script),
        _ => return Err("entryPoint must have one or two elements.".into()),
    };
    if !code_dir.join(script).is_file() {
        return Err(format!(
            "entryPoint '{script}' is not a file in the code archive (its top level has: {}).",
            listing(code_dir)
        ));
    }
    let run_script = vec![runtime.interpreter.to_string(), script.clone()];
    let Some(launcher) = launcher else { return Ok(run_script) };
    let bundled = code_dir.join("bin").join(launcher);
    let mut command = if runtime.is_python() && bundled.is_file() {
        vec![runtime.interpreter.to_string(), format!("{CODE_MOUNT}/bin/{launcher}")]
    } else {
        vec![launcher.clone()]
    };
    command.extend(run_script);
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_become_commands() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.py"), "").unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/opentelemetry-instrument"), "").unwrap();
        let py = lookup("PYTHON_3_11").unwrap();
        assert_eq!(command(py, &["main.py".into()], dir.path()).unwrap(), ["python", "main.py"]);
        assert_eq!(
            command(py, &["opentelemetry-instrument".into(), "main.py".into()], dir.path()).unwrap(),
            ["python", "/var/task/bin/opentelemetry-instrument", "python", "main.py"]
        );
        assert_eq!(command(py, &["uv".into(), "main.py".into()], dir.path()).unwrap(), ["uv", "python", "main.py"]);
        let err = command(py, &["app.py".into()], dir.path()).unwrap_err();
        assert!(err.contains("'app.py'") && err.contains("main.py"), "{err}");
        assert!(lookup("RUBY_3").is_none());
    }
}
