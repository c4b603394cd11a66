//! Which records a query looks at: a namespace (exact) or a namespace path, and the rest of a
//! retrieval's scope.

use crate::kernel::error::{Error, Result};

/// `namespace` (exact) or `namespacePath` (that namespace and everything under it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    Exact(String),
    Path(String),
}

impl NamespaceScope {
    /// Exactly one of the two, as the model's documentation requires.
    pub fn from_request(namespace: Option<String>, path: Option<String>) -> Result<NamespaceScope> {
        match (namespace, path) {
            (Some(ns), None) => Ok(NamespaceScope::Exact(ns)),
            (None, Some(p)) => Ok(NamespaceScope::Path(p)),
            (Some(_), Some(_)) => Err(Error::validation("Specify either namespace or namespacePath, not both.")),
            (None, None) => Err(Error::validation("Either namespace or namespacePath is required.")),
        }
    }

    /// The SQL condition on `r.namespace` with parameter `?{n}`, and that parameter's value.
    pub fn sql(&self, n: usize) -> (String, String) {
        match self {
            NamespaceScope::Exact(ns) => (format!("r.namespace = ?{n}"), ns.clone()),
            NamespaceScope::Path(p) => (
                format!("(?{n} = '' OR r.namespace = ?{n} OR substr(r.namespace, 1, length(?{n}) + 1) = ?{n} || '/')"),
                p.trim_end_matches('/').to_string(),
            ),
        }
    }

    /// A stable text form (page tokens are bound to it).
    pub fn key(&self) -> String {
        match self {
            NamespaceScope::Exact(ns) => format!("ns:{ns}"),
            NamespaceScope::Path(p) => format!("path:{p}"),
        }
    }
}

/// Where a retrieval searches.
pub struct SearchScope<'s> {
    pub memory_id: &'s str,
    pub memory_seq: i64,
    pub namespace: &'s NamespaceScope,
    pub strategy_id: Option<&'s str>,
    pub now: i64,
}
