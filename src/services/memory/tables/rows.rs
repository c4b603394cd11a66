//! Typed rows of the memory tables. Times are unix milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `MemoryStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryStatus {
    Creating,
    Active,
    Updating,
    Deleting,
    Failed,
}

impl MemoryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryStatus::Creating => "CREATING",
            MemoryStatus::Active => "ACTIVE",
            MemoryStatus::Updating => "UPDATING",
            MemoryStatus::Deleting => "DELETING",
            MemoryStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATING" => MemoryStatus::Creating,
            "ACTIVE" => MemoryStatus::Active,
            "UPDATING" => MemoryStatus::Updating,
            "DELETING" => MemoryStatus::Deleting,
            "FAILED" => MemoryStatus::Failed,
            _ => return None,
        })
    }
}

/// `IndexedKey`: a record metadata key that filters may use, and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedKey {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `NamespaceKeyEntry`: a namespace variable besides the built-in ones, and what it may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceKey {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<NamespaceKeyValidation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceKeyValidation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_pattern: Option<String>,
}

/// The memory's settings besides its scalar columns, stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySettings {
    #[serde(default)]
    pub indexed_keys: Vec<IndexedKey>,
    #[serde(default)]
    pub namespace_keys: Vec<NamespaceKey>,
    /// `streamDeliveryResources` as given (delivery to Kinesis is not emulated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_delivery: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct MemoryRow {
    pub seq: i64,
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub encryption_key_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub event_expiry_days: i64,
    pub status: MemoryStatus,
    pub failure_reason: Option<String>,
    pub settings: MemorySettings,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub actor_id: String,
    pub session_id: String,
    pub event_id: String,
    pub event_ts: i64,
    /// `None` for the main branch.
    pub branch: Option<String>,
    /// The `payload` list as sent.
    pub payload: Value,
    pub metadata: Option<Value>,
    pub expires_at: i64,
    /// Long-term extraction reads this event (its `extractionMode` was not SKIP).
    pub extract: bool,
}

#[derive(Debug, Clone)]
pub struct BranchRow {
    pub name: String,
    pub root_event_id: String,
    /// The branch the root event is on; `None` for main.
    pub parent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub seq: i64,
    pub actor_id: String,
    pub session_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct RecordRow {
    pub seq: i64,
    pub id: String,
    pub strategy_id: String,
    /// `""` for a record without a namespace.
    pub namespace: String,
    pub content: String,
    pub metadata: Option<Value>,
    pub source_ts: Option<i64>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// Set on extracted records that are rewritten in place (a session's summary, an episode).
    pub slot: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QueueRow {
    pub seq: i64,
    pub memory_id: String,
    pub actor_id: String,
    pub session_id: String,
    pub event_id: String,
    /// Set when a job re-runs one strategy; otherwise every active strategy extracts.
    pub strategy_id: Option<String>,
    pub job_id: Option<String>,
    /// Namespace variables from the event's `extractionConfig`.
    pub variables: Option<Value>,
}

/// `ExtractionJobStatus` is only FAILED on the wire; a started job is STARTED until it settles.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub seq: i64,
    pub job_id: String,
    pub strategy_id: String,
    pub actor_id: String,
    pub session_id: String,
    pub event_ids: Vec<String>,
    /// `[{eventId, messageIndex}]`.
    pub messages: Value,
    pub variables: Option<Value>,
    pub status: String,
    pub failure_reason: Option<String>,
}

/// `MemoryStrategyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StrategyKind {
    Semantic,
    Summarization,
    UserPreference,
    Episodic,
    Custom,
}

impl StrategyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Semantic => "SEMANTIC",
            StrategyKind::Summarization => "SUMMARIZATION",
            StrategyKind::UserPreference => "USER_PREFERENCE",
            StrategyKind::Episodic => "EPISODIC",
            StrategyKind::Custom => "CUSTOM",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "SEMANTIC" => StrategyKind::Semantic,
            "SUMMARIZATION" => StrategyKind::Summarization,
            "USER_PREFERENCE" => StrategyKind::UserPreference,
            "EPISODIC" => StrategyKind::Episodic,
            "CUSTOM" => StrategyKind::Custom,
            _ => return None,
        })
    }
}

/// `OverrideType`: which built-in pipeline a custom strategy overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OverrideKind {
    SemanticOverride,
    SummaryOverride,
    UserPreferenceOverride,
    EpisodicOverride,
    SelfManaged,
}

impl OverrideKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::SemanticOverride => "SEMANTIC_OVERRIDE",
            OverrideKind::SummaryOverride => "SUMMARY_OVERRIDE",
            OverrideKind::UserPreferenceOverride => "USER_PREFERENCE_OVERRIDE",
            OverrideKind::EpisodicOverride => "EPISODIC_OVERRIDE",
            OverrideKind::SelfManaged => "SELF_MANAGED",
        }
    }
}

/// An override's `appendToPrompt` and the model it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptOverride {
    pub append_to_prompt: String,
    pub model_id: String,
}

/// The override prompts of a custom strategy, by step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prompts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraction: Option<PromptOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consolidation: Option<PromptOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection: Option<PromptOverride>,
}

/// Everything about a strategy besides its identity, stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategySpec {
    /// Namespace templates (the model allows one).
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_kind: Option<OverrideKind>,
    #[serde(default)]
    pub prompts: Prompts,
    /// Episodic reflections' namespace templates (empty: no reflections).
    #[serde(default)]
    pub reflection_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection_schema: Option<Value>,
    /// `memoryRecordSchema` as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_expiry_days: Option<i64>,
    /// `selfManagedConfiguration` in its output shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_managed: Option<Value>,
}

/// A strategy as the memory holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub id: String,
    pub name: String,
    pub kind: StrategyKind,
    pub description: Option<String>,
    pub spec: StrategySpec,
    pub status: StrategyStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `MemoryStrategyStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyStatus {
    Creating,
    Active,
    Deleting,
    Failed,
}

impl StrategyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyStatus::Creating => "CREATING",
            StrategyStatus::Active => "ACTIVE",
            StrategyStatus::Deleting => "DELETING",
            StrategyStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATING" => StrategyStatus::Creating,
            "ACTIVE" => StrategyStatus::Active,
            "DELETING" => StrategyStatus::Deleting,
            "FAILED" => StrategyStatus::Failed,
            _ => return None,
        })
    }
}
