//! Typed inputs of the runtime control-plane operations, deserialized from the input the model
//! has bound and validated (so a required member is present and of its type by now). Member
//! names are the model's (camelCase); the version configuration of Create/UpdateAgentRuntime
//! stays JSON, opaque to the domain, and is taken from the input by `runtime_config`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::kernel::error::{Error, Result};
use crate::services::runtime::domain::endpoints::parse_version;

/// The validated input as the operation's typed struct.
pub fn typed<T: DeserializeOwned>(operation: &str, input: &Map<String, Value>) -> Result<T> {
    T::deserialize(Value::Object(input.clone()))
        .map_err(|e| Error::internal(format!("{operation}: the validated input does not fit its typed shape: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRuntime {
    pub agent_runtime_name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// GetAgentRuntime, DeleteAgentRuntime and UpdateAgentRuntime's id; a version where one is taken.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeRef {
    pub agent_runtime_id: String,
    pub agent_runtime_version: Option<String>,
}

impl RuntimeRef {
    /// The version as a number (the model's pattern allows only digits, but not every length fits).
    pub fn version(&self) -> Result<Option<u32>> {
        self.agent_runtime_version.as_deref().map(parse_version).transpose()
    }
}

/// ListAgentRuntimes, ListAgentRuntimeVersions and ListAgentRuntimeEndpoints.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    pub agent_runtime_id: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEndpoint {
    pub agent_runtime_id: String,
    pub name: String,
    pub agent_runtime_version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Get/Update/DeleteAgentRuntimeEndpoint.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRef {
    pub agent_runtime_id: String,
    pub endpoint_name: String,
    pub agent_runtime_version: Option<String>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResource {
    pub resource_arn: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResource {
    pub resource_arn: String,
    #[serde(default)]
    pub tag_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub resource_arn: String,
}
