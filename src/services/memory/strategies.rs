//! Memory strategies: what each kind extracts, its namespaces, its override prompts, and the rules
//! a memory's set of strategies must follow.

use serde_json::Value;

use crate::kernel::error::{Error, Result};

/// Strategies per memory (service quota, not adjustable).
pub const MAX_STRATEGIES_PER_MEMORY: usize = 6;
/// Template variables every namespace may use; others must be declared as `namespaceKeys`.
pub const BUILT_IN_VARIABLES: [&str; 3] = ["actorId", "sessionId", "memoryStrategyId"];

pub use super::tables::{OverrideKind, PromptOverride, Prompts, Strategy, StrategyKind, StrategySpec, StrategyStatus};

/// The namespace the service's SDK fills in when a strategy names none.
fn default_namespace(kind: StrategyKind) -> &'static str {
    match kind {
        StrategyKind::Summarization | StrategyKind::Episodic => {
            "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/"
        }
        _ => "/strategies/{memoryStrategyId}/actors/{actorId}/",
    }
}

/// What extraction does for a strategy, whatever it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    Semantic,
    Summary,
    UserPreference,
    Episodic,
    /// The customer's own pipeline runs outside the service; nothing is extracted here.
    SelfManaged,
}

impl Strategy {
    pub fn pipeline(&self) -> Pipeline {
        match (self.kind, self.spec.override_kind) {
            (StrategyKind::Semantic, _) | (StrategyKind::Custom, Some(OverrideKind::SemanticOverride)) => {
                Pipeline::Semantic
            }
            (StrategyKind::Summarization, _) | (StrategyKind::Custom, Some(OverrideKind::SummaryOverride)) => {
                Pipeline::Summary
            }
            (StrategyKind::UserPreference, _) | (StrategyKind::Custom, Some(OverrideKind::UserPreferenceOverride)) => {
                Pipeline::UserPreference
            }
            (StrategyKind::Episodic, _) | (StrategyKind::Custom, Some(OverrideKind::EpisodicOverride)) => {
                Pipeline::Episodic
            }
            (StrategyKind::Custom, Some(OverrideKind::SelfManaged) | None) => Pipeline::SelfManaged,
        }
    }
}

/// A strategy to add (CreateMemory, or UpdateMemory's `addMemoryStrategies`).
#[derive(Debug, Clone)]
pub struct NewStrategy {
    pub name: String,
    pub description: Option<String>,
    pub kind: StrategyKind,
    pub spec: StrategySpec,
}

/// `recordExpirySpecification` of a strategy change or a record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryChange {
    Days(i64),
    Remove,
}

/// One `modifyMemoryStrategies` entry: `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct StrategyChange {
    pub strategy_id: String,
    pub description: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub override_kind: Option<OverrideKind>,
    pub prompts: Prompts,
    pub reflection_namespaces: Option<Vec<String>>,
    pub record_schema: Option<Value>,
    pub record_expiry: Option<ExpiryChange>,
    pub self_managed: Option<Value>,
}

/// UpdateMemory's `memoryStrategies`.
#[derive(Debug, Clone, Default)]
pub struct StrategyUpdates {
    pub add: Vec<NewStrategy>,
    pub modify: Vec<StrategyChange>,
    pub delete: Vec<String>,
}

impl StrategyUpdates {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.modify.is_empty() && self.delete.is_empty()
    }
}

/// `namespaceTemplates` or the deprecated `namespaces` (exactly one may be given), or the default.
pub fn choose_namespaces(
    kind: StrategyKind,
    namespaces: Option<Vec<String>>,
    templates: Option<Vec<String>>,
    field: &str,
) -> Result<Vec<String>> {
    match (namespaces, templates) {
        (Some(_), Some(_)) => Err(Error::invalid_field(
            field,
            "Specify either namespaceTemplates or the deprecated namespaces, not both.",
        )),
        (Some(list), None) | (None, Some(list)) => Ok(list),
        (None, None) => Ok(vec![default_namespace(kind).to_string()]),
    }
}

/// The `{variables}` a namespace template uses.
pub fn template_variables(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        out.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    out
}

/// Every variable of every template is built in or a declared namespace key.
pub fn check_templates<'a>(templates: impl IntoIterator<Item = &'a String>, declared_keys: &[String]) -> Result<()> {
    for template in templates {
        for var in template_variables(template) {
            if !BUILT_IN_VARIABLES.contains(&var) && !declared_keys.iter().any(|k| k == var) {
                return Err(Error::validation(format!(
                    "Namespace template '{template}' uses {{{var}}}, which is neither one of {{actorId}}, {{sessionId}}, \
                     {{memoryStrategyId}} nor a key declared in the memory's namespaceKeys."
                )));
            }
        }
    }
    Ok(())
}

/// Fill a template: `{actorId}`, `{sessionId}`, `{memoryStrategyId}` and namespace keys.
/// `None` when a variable has no value.
pub fn resolve_template(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&lookup(&rest[start + 1..start + len])?);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The rules a memory's whole set of strategies must follow: at most six, at most one of each
/// built-in type, unique names.
pub fn check_set(strategies: &[(&str, StrategyKind)]) -> Result<()> {
    if strategies.len() > MAX_STRATEGIES_PER_MEMORY {
        return Err(Error::validation(format!(
            "A memory can have at most {MAX_STRATEGIES_PER_MEMORY} strategies; this request would give it {}.",
            strategies.len()
        )));
    }
    for (i, (name, kind)) in strategies.iter().enumerate() {
        for (other_name, other_kind) in &strategies[..i] {
            if other_name == name {
                return Err(Error::validation(format!(
                    "Strategy names must be unique in a memory; '{name}' is used twice."
                )));
            }
            if kind == other_kind && *kind != StrategyKind::Custom {
                return Err(Error::validation(format!(
                    "A memory can have only one {} strategy; '{other_name}' and '{name}' are both {}.",
                    kind.as_str(),
                    kind.as_str()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_resolve_and_unknown_variables_are_refused() {
        let t = "/strategies/{memoryStrategyId}/actors/{actorId}/{tenant}";
        assert_eq!(template_variables(t), vec!["memoryStrategyId", "actorId", "tenant"]);
        let resolved = resolve_template(t, |v| match v {
            "memoryStrategyId" => Some("s-1".into()),
            "actorId" => Some("alice".into()),
            "tenant" => Some("acme".into()),
            _ => None,
        });
        assert_eq!(resolved.as_deref(), Some("/strategies/s-1/actors/alice/acme"));
        assert_eq!(resolve_template(t, |_| None), None);
        assert!(check_templates([&t.to_string()], &["tenant".into()]).is_ok());
        assert!(check_templates([&t.to_string()], &[]).is_err());
    }

    #[test]
    fn a_memory_holds_six_strategies_one_of_each_built_in() {
        use StrategyKind::*;
        assert!(check_set(&[("a", Semantic), ("b", Custom), ("c", Custom)]).is_ok());
        assert!(check_set(&[("a", Semantic), ("b", Semantic)]).is_err());
        assert!(check_set(&[("a", Semantic), ("a", Summarization)]).is_err());
        let seven: Vec<(String, StrategyKind)> = (0..7).map(|i| (format!("c{i}"), Custom)).collect();
        let seven: Vec<(&str, StrategyKind)> = seven.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        assert!(check_set(&seven).is_err());
    }

    #[test]
    fn namespaces_default_per_kind_and_both_forms_are_refused() {
        assert_eq!(
            choose_namespaces(StrategyKind::Summarization, None, None, "x").unwrap(),
            vec!["/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/".to_string()]
        );
        assert!(choose_namespaces(StrategyKind::Semantic, Some(vec![]), Some(vec![]), "x").is_err());
    }
}
