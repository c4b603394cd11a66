//! Typed inputs of every memory operation (deserialized from the input the model binding built
//! and validated), and their conversion to the domain's requests.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::kernel::error::{Error, Result};
use crate::services::memory::events::{BranchRef, EventQuery, NewEvent};
use crate::services::memory::filters::{EventFilter, MetaValue, Operator, RecordFilter};
use crate::services::memory::memories::{MemoryChanges, NewMemory};
use crate::services::memory::records::{NewRecord, RecordChange};
use crate::services::memory::strategies::{
    choose_namespaces, ExpiryChange, NewStrategy, OverrideKind, PromptOverride, Prompts, StrategyChange, StrategyKind,
    StrategySpec, StrategyUpdates,
};
use crate::services::memory::tables::{IndexedKey, MemorySettings, NamespaceKey};
use crate::services::memory::time::parse_ms;

// ---- control plane ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMemoryInput {
    pub name: String,
    pub description: Option<String>,
    pub encryption_key_arn: Option<String>,
    pub memory_execution_role_arn: Option<String>,
    pub event_expiry_duration: i64,
    #[serde(default)]
    pub memory_strategies: Vec<StrategyInput>,
    pub indexed_keys: Option<Vec<IndexedKey>>,
    pub namespace_keys: Option<Vec<NamespaceKey>>,
    pub stream_delivery_resources: Option<Value>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryIdInput {
    pub memory_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMemoryInput {
    pub memory_id: String,
    pub description: Option<String>,
    pub event_expiry_duration: Option<i64>,
    pub memory_execution_role_arn: Option<String>,
    pub memory_strategies: Option<ModifyMemoryStrategiesInput>,
    pub add_indexed_keys: Option<Vec<IndexedKey>>,
    pub namespace_keys: Option<Vec<NamespaceKey>>,
    pub stream_delivery_resources: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListInput {
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
}

/// `MemoryStrategyInput` (a union).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyInput {
    pub semantic_memory_strategy: Option<BuiltInStrategyInput>,
    pub summary_memory_strategy: Option<BuiltInStrategyInput>,
    pub user_preference_memory_strategy: Option<BuiltInStrategyInput>,
    pub episodic_memory_strategy: Option<EpisodicStrategyInput>,
    pub custom_memory_strategy: Option<CustomStrategyInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuiltInStrategyInput {
    pub name: String,
    pub description: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub namespace_templates: Option<Vec<String>>,
    pub memory_record_schema: Option<Value>,
    pub record_expiry_specification: Option<RecordExpiryInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpisodicStrategyInput {
    pub name: String,
    pub description: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub namespace_templates: Option<Vec<String>>,
    pub reflection_configuration: Option<ReflectionInput>,
    pub memory_record_schema: Option<Value>,
    pub record_expiry_specification: Option<RecordExpiryInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReflectionInput {
    pub namespaces: Option<Vec<String>>,
    pub namespace_templates: Option<Vec<String>>,
    pub memory_record_schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomStrategyInput {
    pub name: String,
    pub description: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub namespace_templates: Option<Vec<String>>,
    pub configuration: Option<CustomConfigurationInput>,
    pub memory_record_schema: Option<Value>,
    pub record_expiry_specification: Option<RecordExpiryInput>,
}

/// `CustomConfigurationInput` (a union of overrides).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomConfigurationInput {
    pub semantic_override: Option<OverrideStepsInput>,
    pub summary_override: Option<OverrideStepsInput>,
    pub user_preference_override: Option<OverrideStepsInput>,
    pub episodic_override: Option<OverrideStepsInput>,
    pub self_managed_configuration: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideStepsInput {
    pub extraction: Option<PromptOverride>,
    pub consolidation: Option<PromptOverride>,
    pub reflection: Option<ReflectionOverrideInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReflectionOverrideInput {
    pub append_to_prompt: String,
    pub model_id: String,
    pub namespaces: Option<Vec<String>>,
    pub namespace_templates: Option<Vec<String>>,
    pub memory_record_schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordExpiryInput {
    pub record_expiry_duration_days: Option<i64>,
    pub action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyMemoryStrategiesInput {
    #[serde(default)]
    pub add_memory_strategies: Vec<StrategyInput>,
    #[serde(default)]
    pub modify_memory_strategies: Vec<ModifyStrategyInput>,
    #[serde(default)]
    pub delete_memory_strategies: Vec<DeleteStrategyInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStrategyInput {
    pub memory_strategy_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyStrategyInput {
    pub memory_strategy_id: String,
    pub description: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub namespace_templates: Option<Vec<String>>,
    pub configuration: Option<ModifyConfigurationInput>,
    pub memory_record_schema: Option<Value>,
    pub record_expiry_specification: Option<RecordExpiryInput>,
}

/// `ModifyStrategyConfiguration`: each step names the override it changes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyConfigurationInput {
    pub extraction: Option<ModifyExtractionInput>,
    pub consolidation: Option<ModifyConsolidationInput>,
    pub reflection: Option<ModifyReflectionInput>,
    pub self_managed_configuration: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyExtractionInput {
    pub custom_extraction_configuration: Option<ExtractionOverridesInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyConsolidationInput {
    pub custom_consolidation_configuration: Option<ConsolidationOverridesInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractionOverridesInput {
    pub semantic_extraction_override: Option<PromptOverride>,
    pub user_preference_extraction_override: Option<PromptOverride>,
    pub episodic_extraction_override: Option<PromptOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsolidationOverridesInput {
    pub semantic_consolidation_override: Option<PromptOverride>,
    pub summary_consolidation_override: Option<PromptOverride>,
    pub user_preference_consolidation_override: Option<PromptOverride>,
    pub episodic_consolidation_override: Option<PromptOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyReflectionInput {
    pub episodic_reflection_configuration: Option<ReflectionInput>,
    pub custom_reflection_configuration: Option<CustomReflectionInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomReflectionInput {
    pub episodic_reflection_override: Option<ReflectionOverrideInput>,
}

fn expiry(spec: Option<RecordExpiryInput>, field: &str) -> Result<Option<ExpiryChange>> {
    match spec {
        None => Ok(None),
        Some(RecordExpiryInput { record_expiry_duration_days: Some(d), action: None }) => {
            Ok(Some(ExpiryChange::Days(d)))
        }
        Some(RecordExpiryInput { record_expiry_duration_days: None, action: Some(a) }) if a == "REMOVE" => {
            Ok(Some(ExpiryChange::Remove))
        }
        Some(_) => Err(Error::invalid_field(field, "Give exactly one of recordExpiryDurationDays and action.")),
    }
}

/// A strategy's own record expiry: days only (REMOVE only undoes one on modification).
fn strategy_expiry(spec: Option<RecordExpiryInput>, field: &str) -> Result<Option<i64>> {
    match expiry(spec, field)? {
        Some(ExpiryChange::Days(d)) => Ok(Some(d)),
        Some(ExpiryChange::Remove) => {
            Err(Error::invalid_field(field, "The REMOVE action applies only when modifying a strategy."))
        }
        None => Ok(None),
    }
}

fn reflection_namespaces(r: Option<ReflectionInput>, field: &str) -> Result<(Vec<String>, Option<Value>)> {
    match r {
        None => Ok((Vec::new(), None)),
        Some(r) => {
            let ns = match (r.namespaces, r.namespace_templates) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid_field(
                        field,
                        "Specify either namespaceTemplates or namespaces, not both.",
                    ))
                }
                (Some(l), None) | (None, Some(l)) => l,
                (None, None) => Vec::new(),
            };
            Ok((ns, r.memory_record_schema))
        }
    }
}

impl StrategyInput {
    pub fn into_domain(self, field: &str) -> Result<NewStrategy> {
        let StrategyInput {
            semantic_memory_strategy,
            summary_memory_strategy,
            user_preference_memory_strategy,
            episodic_memory_strategy,
            custom_memory_strategy,
        } = self;
        let built_in = |s: BuiltInStrategyInput, kind: StrategyKind| -> Result<NewStrategy> {
            Ok(NewStrategy {
                spec: StrategySpec {
                    namespaces: choose_namespaces(kind, s.namespaces, s.namespace_templates, field)?,
                    record_schema: s.memory_record_schema,
                    record_expiry_days: strategy_expiry(s.record_expiry_specification, field)?,
                    ..StrategySpec::default()
                },
                name: s.name,
                description: s.description,
                kind,
            })
        };
        if let Some(s) = semantic_memory_strategy {
            return built_in(s, StrategyKind::Semantic);
        }
        if let Some(s) = summary_memory_strategy {
            return built_in(s, StrategyKind::Summarization);
        }
        if let Some(s) = user_preference_memory_strategy {
            return built_in(s, StrategyKind::UserPreference);
        }
        if let Some(s) = episodic_memory_strategy {
            let (reflection_namespaces, reflection_schema) = reflection_namespaces(s.reflection_configuration, field)?;
            return Ok(NewStrategy {
                spec: StrategySpec {
                    namespaces: choose_namespaces(StrategyKind::Episodic, s.namespaces, s.namespace_templates, field)?,
                    reflection_namespaces,
                    reflection_schema,
                    record_schema: s.memory_record_schema,
                    record_expiry_days: strategy_expiry(s.record_expiry_specification, field)?,
                    ..StrategySpec::default()
                },
                name: s.name,
                description: s.description,
                kind: StrategyKind::Episodic,
            });
        }
        let Some(s) = custom_memory_strategy else {
            return Err(Error::invalid_field(field, "A memory strategy must name exactly one strategy type."));
        };
        let config = s.configuration.ok_or_else(|| {
            Error::invalid_field(
                &format!("{field}.customMemoryStrategy.configuration"),
                "A custom strategy needs a configuration.",
            )
        })?;
        let (override_kind, steps, self_managed, base) = match config {
            CustomConfigurationInput { semantic_override: Some(o), .. } => {
                (OverrideKind::SemanticOverride, Some(o), None, StrategyKind::Semantic)
            }
            CustomConfigurationInput { summary_override: Some(o), .. } => {
                (OverrideKind::SummaryOverride, Some(o), None, StrategyKind::Summarization)
            }
            CustomConfigurationInput { user_preference_override: Some(o), .. } => {
                (OverrideKind::UserPreferenceOverride, Some(o), None, StrategyKind::UserPreference)
            }
            CustomConfigurationInput { episodic_override: Some(o), .. } => {
                (OverrideKind::EpisodicOverride, Some(o), None, StrategyKind::Episodic)
            }
            CustomConfigurationInput { self_managed_configuration: Some(sm), .. } => {
                (OverrideKind::SelfManaged, None, Some(self_managed_output(sm)), StrategyKind::Custom)
            }
            _ => return Err(Error::invalid_field(field, "A custom strategy's configuration must name one override.")),
        };
        let mut spec = StrategySpec {
            namespaces: choose_namespaces(base, s.namespaces, s.namespace_templates, field)?,
            override_kind: Some(override_kind),
            self_managed,
            record_schema: s.memory_record_schema,
            record_expiry_days: strategy_expiry(s.record_expiry_specification, field)?,
            ..StrategySpec::default()
        };
        if let Some(steps) = steps {
            spec.prompts =
                Prompts { extraction: steps.extraction, consolidation: steps.consolidation, reflection: None };
            if let Some(r) = steps.reflection {
                let (ns, schema) = reflection_namespaces(
                    Some(ReflectionInput {
                        namespaces: r.namespaces,
                        namespace_templates: r.namespace_templates,
                        memory_record_schema: r.memory_record_schema,
                    }),
                    field,
                )?;
                spec.reflection_namespaces = ns;
                spec.reflection_schema = schema;
                spec.prompts.reflection =
                    Some(PromptOverride { append_to_prompt: r.append_to_prompt, model_id: r.model_id });
            }
        }
        Ok(NewStrategy { name: s.name, description: s.description, kind: StrategyKind::Custom, spec })
    }
}

/// `SelfManagedConfigurationInput` in the output shape `SelfManagedConfiguration`, whose
/// members are all required (the window defaults to 4 messages).
fn self_managed_output(input: Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("triggerConditions".into(), input.get("triggerConditions").cloned().unwrap_or(Value::Array(Vec::new())));
    out.insert(
        "invocationConfiguration".into(),
        input.get("invocationConfiguration").cloned().unwrap_or(Value::Object(Default::default())),
    );
    out.insert(
        "historicalContextWindowSize".into(),
        input.get("historicalContextWindowSize").cloned().unwrap_or(Value::from(4)),
    );
    Value::Object(out)
}

impl ModifyStrategyInput {
    fn into_domain(self, field: &str) -> Result<StrategyChange> {
        let mut change = StrategyChange {
            strategy_id: self.memory_strategy_id,
            description: self.description,
            namespaces: match (self.namespaces, self.namespace_templates) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid_field(
                        field,
                        "Specify either namespaceTemplates or namespaces, not both.",
                    ))
                }
                (a, b) => a.or(b),
            },
            record_schema: self.memory_record_schema,
            record_expiry: expiry(self.record_expiry_specification, field)?,
            ..StrategyChange::default()
        };
        if let Some(c) = self.configuration {
            if let Some(e) = c.extraction.and_then(|s| s.custom_extraction_configuration) {
                let (kind, p) = match e {
                    ExtractionOverridesInput { semantic_extraction_override: Some(p), .. } => {
                        (OverrideKind::SemanticOverride, p)
                    }
                    ExtractionOverridesInput { user_preference_extraction_override: Some(p), .. } => {
                        (OverrideKind::UserPreferenceOverride, p)
                    }
                    ExtractionOverridesInput { episodic_extraction_override: Some(p), .. } => {
                        (OverrideKind::EpisodicOverride, p)
                    }
                    _ => return Err(Error::invalid_field(field, "An extraction change must name one override.")),
                };
                change.override_kind = Some(kind);
                change.prompts.extraction = Some(p);
            }
            if let Some(cons) = c.consolidation.and_then(|s| s.custom_consolidation_configuration) {
                let (kind, p) = match cons {
                    ConsolidationOverridesInput { semantic_consolidation_override: Some(p), .. } => {
                        (OverrideKind::SemanticOverride, p)
                    }
                    ConsolidationOverridesInput { summary_consolidation_override: Some(p), .. } => {
                        (OverrideKind::SummaryOverride, p)
                    }
                    ConsolidationOverridesInput { user_preference_consolidation_override: Some(p), .. } => {
                        (OverrideKind::UserPreferenceOverride, p)
                    }
                    ConsolidationOverridesInput { episodic_consolidation_override: Some(p), .. } => {
                        (OverrideKind::EpisodicOverride, p)
                    }
                    _ => return Err(Error::invalid_field(field, "A consolidation change must name one override.")),
                };
                if change.override_kind.is_some_and(|k| k != kind) {
                    return Err(Error::invalid_field(
                        field,
                        "Extraction and consolidation changes name different overrides.",
                    ));
                }
                change.override_kind = Some(kind);
                change.prompts.consolidation = Some(p);
            }
            if let Some(r) = c.reflection {
                if let Some(cfg) = r.episodic_reflection_configuration {
                    change.reflection_namespaces = Some(reflection_namespaces(Some(cfg), field)?.0);
                }
                if let Some(o) = r.custom_reflection_configuration.and_then(|c| c.episodic_reflection_override) {
                    let ns = reflection_namespaces(
                        Some(ReflectionInput {
                            namespaces: o.namespaces,
                            namespace_templates: o.namespace_templates,
                            memory_record_schema: None,
                        }),
                        field,
                    )?
                    .0;
                    if !ns.is_empty() {
                        change.reflection_namespaces = Some(ns);
                    }
                    change.prompts.reflection =
                        Some(PromptOverride { append_to_prompt: o.append_to_prompt, model_id: o.model_id });
                }
            }
            if let Some(sm) = c.self_managed_configuration {
                change.override_kind = Some(OverrideKind::SelfManaged);
                change.self_managed = Some(self_managed_output(sm));
            }
        }
        Ok(change)
    }
}

impl CreateMemoryInput {
    pub fn into_domain(self) -> Result<NewMemory> {
        let strategies = self
            .memory_strategies
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.into_domain(&format!("memoryStrategies.{}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        Ok(NewMemory {
            name: self.name,
            description: self.description,
            encryption_key_arn: self.encryption_key_arn,
            execution_role_arn: self.memory_execution_role_arn,
            event_expiry_days: self.event_expiry_duration,
            strategies,
            settings: MemorySettings {
                indexed_keys: self.indexed_keys.unwrap_or_default(),
                namespace_keys: self.namespace_keys.unwrap_or_default(),
                stream_delivery: self.stream_delivery_resources,
            },
            tags: self.tags,
        })
    }
}

impl UpdateMemoryInput {
    pub fn into_domain(self) -> Result<(String, MemoryChanges)> {
        let mut strategies = StrategyUpdates::default();
        if let Some(m) = self.memory_strategies {
            for (i, s) in m.add_memory_strategies.into_iter().enumerate() {
                strategies.add.push(s.into_domain(&format!("memoryStrategies.addMemoryStrategies.{}", i + 1))?);
            }
            for (i, s) in m.modify_memory_strategies.into_iter().enumerate() {
                strategies.modify.push(s.into_domain(&format!("memoryStrategies.modifyMemoryStrategies.{}", i + 1))?);
            }
            strategies.delete = m.delete_memory_strategies.into_iter().map(|d| d.memory_strategy_id).collect();
        }
        Ok((
            self.memory_id,
            MemoryChanges {
                description: self.description,
                event_expiry_days: self.event_expiry_duration,
                execution_role_arn: self.memory_execution_role_arn,
                strategies,
                add_indexed_keys: self.add_indexed_keys.unwrap_or_default(),
                namespace_keys: self.namespace_keys,
                stream_delivery: self.stream_delivery_resources,
            },
        ))
    }
}

// ---- data plane: events ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEventInput {
    pub memory_id: String,
    pub actor_id: String,
    pub session_id: Option<String>,
    pub event_timestamp: Value,
    #[serde(default)]
    pub payload: Vec<Value>,
    pub branch: Option<BranchInput>,
    pub metadata: Option<Value>,
    pub extraction_mode: Option<String>,
    pub extraction_config: Option<ExtractionConfigInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchInput {
    pub name: String,
    pub root_event_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractionConfigInput {
    #[serde(default)]
    pub namespace_variables: BTreeMap<String, String>,
}

impl CreateEventInput {
    pub fn into_domain(self) -> Result<(String, NewEvent)> {
        let event_ts = parse_ms(&self.event_timestamp)
            .ok_or_else(|| Error::invalid_field("eventTimestamp", "eventTimestamp is not a timestamp."))?;
        Ok((
            self.memory_id,
            NewEvent {
                actor_id: self.actor_id,
                session_id: self.session_id,
                event_ts,
                payload: self.payload,
                branch: self.branch.map(|b| BranchRef { name: b.name, root_event_id: b.root_event_id }),
                metadata: self.metadata,
                extract: self.extraction_mode.as_deref() != Some("SKIP"),
                variables: self.extraction_config.map(|c| c.namespace_variables).unwrap_or_default(),
            },
        ))
    }
}

/// GetEvent and DeleteEvent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRefInput {
    pub memory_id: String,
    pub session_id: String,
    pub actor_id: String,
    pub event_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEventsInput {
    pub memory_id: String,
    pub session_id: String,
    pub actor_id: String,
    pub include_payloads: Option<bool>,
    pub filter: Option<EventFilterInput>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFilterInput {
    pub branch: Option<BranchFilterInput>,
    pub event_metadata: Option<Vec<FilterExpressionInput>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchFilterInput {
    pub name: String,
    pub include_parent_branches: Option<bool>,
}

/// `EventMetadataFilterExpression` and `MemoryMetadataFilterExpression`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterExpressionInput {
    pub left: LeftInput,
    pub operator: String,
    pub right: Option<RightInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeftInput {
    pub metadata_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RightInput {
    pub metadata_value: Value,
}

impl ListEventsInput {
    pub fn query(&self) -> Result<EventQuery> {
        let filter = self.filter.as_ref();
        let metadata = filter
            .and_then(|f| f.event_metadata.as_ref())
            .map(|list| {
                list.iter()
                    .map(|f| {
                        let key = f.left.metadata_key.clone();
                        Ok(match f.operator.as_str() {
                            "EXISTS" => EventFilter::Exists { key },
                            "NOT_EXISTS" => EventFilter::NotExists { key },
                            _ => {
                                let value = f
                                    .right
                                    .as_ref()
                                    .and_then(|r| r.metadata_value.get("stringValue"))
                                    .and_then(Value::as_str)
                                    .ok_or_else(|| {
                                        Error::validation(format!(
                                            "The EQUALS_TO filter on '{key}' needs a right-hand stringValue."
                                        ))
                                    })?;
                                EventFilter::Equals { key, value: value.to_string() }
                            }
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(EventQuery {
            include_payloads: self.include_payloads.unwrap_or(true),
            branch: filter
                .and_then(|f| f.branch.as_ref())
                // The service's default is true: the Rust SDK, generated from the Smithy model,
                // leaves the member out exactly when it is true.
                .map(|b| (b.name.clone(), b.include_parent_branches.unwrap_or(true))),
            metadata,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListSessionsInput {
    pub memory_id: String,
    pub actor_id: String,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub filter: Option<SessionFilterInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionFilterInput {
    pub event_filter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListActorsInput {
    pub memory_id: String,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
}

// ---- data plane: records ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentInput {
    pub text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateInput {
    pub memory_id: String,
    pub records: Vec<RecordCreateInput>,
    pub record_expiry_specification: Option<RecordExpiryInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordCreateInput {
    pub request_identifier: String,
    #[serde(default)]
    pub namespaces: Vec<String>,
    pub content: ContentInput,
    pub timestamp: Value,
    pub memory_strategy_id: Option<String>,
    pub metadata: Option<Value>,
}

impl BatchCreateInput {
    pub fn into_domain(self) -> Result<(String, Vec<NewRecord>, Option<ExpiryChange>)> {
        let records = self
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(NewRecord {
                    timestamp: parse_ms(&r.timestamp).ok_or_else(|| {
                        Error::invalid_field(&format!("records.{}.timestamp", i + 1), "timestamp is not a timestamp.")
                    })?,
                    request_identifier: r.request_identifier,
                    namespace: r.namespaces.into_iter().next(),
                    content: r.content.text,
                    strategy_id: r.memory_strategy_id,
                    metadata: r.metadata,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((self.memory_id, records, expiry(self.record_expiry_specification, "recordExpirySpecification")?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateInput {
    pub memory_id: String,
    pub records: Vec<RecordUpdateInput>,
    pub record_expiry_specification: Option<RecordExpiryInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordUpdateInput {
    pub memory_record_id: String,
    pub timestamp: Value,
    pub content: Option<ContentInput>,
    pub namespaces: Option<Vec<String>>,
    pub memory_strategy_id: Option<String>,
    pub metadata: Option<Value>,
}

impl BatchUpdateInput {
    pub fn into_domain(self) -> Result<(String, Vec<RecordChange>, Option<ExpiryChange>)> {
        let changes = self
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(RecordChange {
                    timestamp: parse_ms(&r.timestamp).ok_or_else(|| {
                        Error::invalid_field(&format!("records.{}.timestamp", i + 1), "timestamp is not a timestamp.")
                    })?,
                    record_id: r.memory_record_id,
                    content: r.content.map(|c| c.text),
                    namespace: r.namespaces.map(|ns| ns.into_iter().next()),
                    strategy_id: r.memory_strategy_id,
                    metadata: r.metadata,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((self.memory_id, changes, expiry(self.record_expiry_specification, "recordExpirySpecification")?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteInput {
    pub memory_id: String,
    pub records: Vec<RecordDeleteInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordDeleteInput {
    pub memory_record_id: String,
}

/// GetMemoryRecord and DeleteMemoryRecord.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRefInput {
    pub memory_id: String,
    pub memory_record_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRecordsInput {
    pub memory_id: String,
    pub namespace: Option<String>,
    pub namespace_path: Option<String>,
    pub memory_strategy_id: Option<String>,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
    pub metadata_filters: Option<Vec<FilterExpressionInput>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrieveInput {
    pub memory_id: String,
    pub namespace: Option<String>,
    pub namespace_path: Option<String>,
    pub search_criteria: SearchCriteriaInput,
    pub next_token: Option<String>,
    pub max_results: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchCriteriaInput {
    pub search_query: String,
    pub memory_strategy_id: Option<String>,
    pub top_k: Option<usize>,
    pub metadata_filters: Option<Vec<FilterExpressionInput>>,
}

pub fn record_filters(list: Option<&[FilterExpressionInput]>) -> Result<Vec<RecordFilter>> {
    list.unwrap_or_default()
        .iter()
        .map(|f| {
            let op = Operator::parse(&f.operator)
                .ok_or_else(|| Error::validation(format!("Unknown metadata filter operator {}.", f.operator)))?;
            Ok(RecordFilter {
                key: f.left.metadata_key.clone(),
                op,
                value: f.right.as_ref().and_then(|r| MetaValue::from_wire(&r.metadata_value)),
            })
        })
        .collect()
}

// ---- data plane: extraction jobs ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartJobInput {
    pub memory_id: String,
    pub extraction_job: JobRefInput,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRefInput {
    pub job_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListJobsInput {
    pub memory_id: String,
    pub max_results: Option<usize>,
    pub filter: Option<JobFilterInput>,
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFilterInput {
    pub strategy_id: Option<String>,
    pub session_id: Option<String>,
    pub actor_id: Option<String>,
}
