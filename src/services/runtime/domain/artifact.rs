//! What preparing a version produced, stored with the version and read by every session start.

use serde::{Deserialize, Serialize};

/// Where a code deployment's unpacked files appear inside the sandbox.
pub const CODE_MOUNT: &str = "/var/task";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Prepared {
    /// A container image, resolved to its local id.
    Container { image: String },
    /// A code zip unpacked in `code_dir`, run by `command` in the runtime's base image.
    Code { image: String, code_dir: String, command: Vec<String>, runtime: String },
}

impl Prepared {
    /// Versions prepared before this format stored the bare image id.
    pub fn parse(stored: &str) -> Prepared {
        serde_json::from_str(stored).unwrap_or_else(|_| Prepared::Container { image: stored.to_string() })
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("artifact serializes")
    }

    pub fn image(&self) -> &str {
        match self {
            Prepared::Container { image } | Prepared::Code { image, .. } => image,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_bare_ids() {
        let code = Prepared::Code {
            image: "sha256:abc".into(),
            code_dir: "/d".into(),
            command: vec!["python".into(), "main.py".into()],
            runtime: "PYTHON_3_11".into(),
        };
        assert_eq!(Prepared::parse(&code.encode()), code);
        assert_eq!(Prepared::parse("sha256:abc"), Prepared::Container { image: "sha256:abc".into() });
    }
}
