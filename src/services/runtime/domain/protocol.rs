//! `protocolConfiguration`: which port and path the agent serves, with the service's defaults.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerProtocol {
    Http,
    Mcp,
    A2a,
    Agui,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub kind: ServerProtocol,
    pub port: u16,
    pub path: String,
}

impl Protocol {
    /// Defaults (runtime-contract.md §0): HTTP and AGUI 8080 `/invocations`, MCP 8000 `/mcp`,
    /// A2A 9000 `/`; `port` and `path` override them.
    pub fn of(config: &Map<String, Value>) -> Protocol {
        let pc = config.get("protocolConfiguration");
        let kind = match pc.and_then(|p| p.get("serverProtocol")).and_then(Value::as_str) {
            Some("MCP") => ServerProtocol::Mcp,
            Some("A2A") => ServerProtocol::A2a,
            Some("AGUI") => ServerProtocol::Agui,
            _ => ServerProtocol::Http,
        };
        let (port, path) = match kind {
            ServerProtocol::Http | ServerProtocol::Agui => (8080, "/invocations"),
            ServerProtocol::Mcp => (8000, "/mcp"),
            ServerProtocol::A2a => (9000, "/"),
        };
        Protocol {
            kind,
            port: pc.and_then(|p| p.get("port")).and_then(Value::as_u64).map(|p| p as u16).unwrap_or(port),
            path: pc.and_then(|p| p.get("path")).and_then(Value::as_str).unwrap_or(path).to_string(),
        }
    }

    /// HTTP and AG-UI agents must answer `GET /ping`; MCP and A2A servers usually have none.
    pub fn has_ping(&self) -> bool {
        matches!(self.kind, ServerProtocol::Http | ServerProtocol::Agui)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_overrides() {
        let of = |v: Value| Protocol::of(v.as_object().unwrap());
        assert_eq!(of(json!({})), Protocol { kind: ServerProtocol::Http, port: 8080, path: "/invocations".into() });
        assert_eq!(of(json!({"protocolConfiguration": {"serverProtocol": "MCP"}})).port, 8000);
        assert_eq!(of(json!({"protocolConfiguration": {"serverProtocol": "A2A"}})).path, "/");
        let custom = of(json!({"protocolConfiguration": {"serverProtocol": "HTTP", "port": 9100, "path": "/run"}}));
        assert_eq!((custom.port, custom.path.as_str()), (9100, "/run"));
    }
}
