//! Typed records as stored. Times are unix milliseconds.

use serde_json::{Map, Value};

/// `AgentRuntimeStatus` / `AgentRuntimeEndpointStatus` (the model defines them identically).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceStatus {
    Creating,
    CreateFailed,
    Updating,
    UpdateFailed,
    Ready,
    Deleting,
    DeleteFailed,
}

impl ResourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Creating => "CREATING",
            ResourceStatus::CreateFailed => "CREATE_FAILED",
            ResourceStatus::Updating => "UPDATING",
            ResourceStatus::UpdateFailed => "UPDATE_FAILED",
            ResourceStatus::Ready => "READY",
            ResourceStatus::Deleting => "DELETING",
            ResourceStatus::DeleteFailed => "DELETE_FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATING" => ResourceStatus::Creating,
            "CREATE_FAILED" => ResourceStatus::CreateFailed,
            "UPDATING" => ResourceStatus::Updating,
            "UPDATE_FAILED" => ResourceStatus::UpdateFailed,
            "READY" => ResourceStatus::Ready,
            "DELETING" => ResourceStatus::Deleting,
            "DELETE_FAILED" => ResourceStatus::DeleteFailed,
            _ => return None,
        })
    }

    /// Still moving towards a final state.
    pub fn in_progress(self) -> bool {
        matches!(self, ResourceStatus::Creating | ResourceStatus::Updating | ResourceStatus::Deleting)
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeRow {
    pub seq: i64,
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub created_at: i64,
    pub latest_version: u32,
    pub deleting: bool,
}

/// One immutable version: the configuration given to Create or Update, verbatim.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub runtime_id: String,
    pub version: u32,
    pub config: Map<String, Value>,
    pub status: ResourceStatus,
    pub failure_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// What preparing the version produced (for containers: the local image id).
    pub artifact: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub seq: i64,
    pub runtime_id: String,
    pub name: String,
    pub id: String,
    pub arn: String,
    pub live_version: Option<u32>,
    pub target_version: u32,
    pub description: Option<String>,
    pub status: ResourceStatus,
    pub failure_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}
