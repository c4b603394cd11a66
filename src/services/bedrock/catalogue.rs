//! The foundation models the `bedrock` control plane describes (ListFoundationModels,
//! GetFoundationModel), for SDKs and tools that look a model up before calling it.
//!
//! Every model id is answered by the configured provider, so GetFoundationModel describes any id
//! it is asked about. ListFoundationModels lists the models agent frameworks default to plus every
//! foundation model called since the emulator started; each entry names the provider that answers
//! it, so nobody mistakes the list for Bedrock's real catalogue.

use parking_lot::Mutex;
use std::collections::BTreeSet;

use serde_json::{json, Value};

/// Foundation models the agent frameworks this emulator is tested with use by default (Strands'
/// `BedrockModel`: `global.anthropic.claude-sonnet-4-6` in strands-agents 1.62, earlier
/// `us.anthropic.claude-sonnet-4-20250514-v1:0`; langchain-aws examples; Amazon Nova), so a fresh
/// emulator lists them.
pub const FRAMEWORK_DEFAULTS: &[&str] = &[
    "anthropic.claude-sonnet-4-6",
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-micro-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
];

/// Called foundation models remembered for the list, at most.
pub const MAX_REMEMBERED: usize = 200;

/// Geography prefixes of cross-Region inference profile ids (`us.anthropic…`).
const PROFILE_PREFIXES: &[&str] = &["us", "eu", "apac", "us-gov", "ca", "jp", "au", "global"];

#[derive(Default)]
pub struct Catalogue {
    called: Mutex<BTreeSet<String>>,
}

/// The foundation model behind a model id, inference profile id or foundation-model ARN; `None`
/// for ids that name no foundation model (custom models, provisioned throughput …).
pub fn foundation_model_id(model_id: &str) -> Option<String> {
    let id = if model_id.starts_with("arn:") {
        let resource = model_id.splitn(6, ':').nth(5)?;
        let (kind, id) = resource.split_once('/')?;
        if !matches!(kind, "foundation-model" | "inference-profile") {
            return None;
        }
        id
    } else {
        model_id
    };
    let parts: Vec<&str> = id.split('.').collect();
    let id = match parts.as_slice() {
        [geo, _, _, ..] if PROFILE_PREFIXES.contains(geo) => &id[geo.len() + 1..],
        _ => id,
    };
    let valid =
        id.contains('.') && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b));
    valid.then(|| id.to_string())
}

fn provider_name(model_id: &str) -> String {
    let prefix = model_id.split('.').next().unwrap_or_default();
    match prefix {
        "anthropic" => "Anthropic".into(),
        "amazon" => "Amazon".into(),
        "meta" => "Meta".into(),
        "mistral" => "Mistral AI".into(),
        "cohere" => "Cohere".into(),
        "ai21" => "AI21 Labs".into(),
        "deepseek" => "DeepSeek".into(),
        "openai" => "OpenAI".into(),
        "stability" => "Stability AI".into(),
        other => {
            let mut c = other.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
        }
    }
}

/// A FoundationModelSummary (the same members as FoundationModelDetails).
pub fn summary(model_id: &str, region: &str, provider: &str) -> Value {
    json!({
        "modelArn": format!("arn:aws:bedrock:{region}::foundation-model/{model_id}"),
        "modelId": model_id,
        "modelName": format!("{model_id} (answered by agentcore-local's {provider} model provider)"),
        "providerName": provider_name(model_id),
        "inputModalities": ["TEXT", "IMAGE"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": true,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    })
}

/// ListFoundationModels' filters.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListFilter {
    pub by_provider: Option<String>,
    pub by_customization_type: Option<String>,
    pub by_output_modality: Option<String>,
    pub by_inference_type: Option<String>,
}

impl Catalogue {
    /// Remember a called model for the list.
    pub fn called(&self, model_id: &str) {
        let Some(id) = foundation_model_id(model_id) else { return };
        let mut called = self.called.lock();
        if called.len() < MAX_REMEMBERED || called.contains(&id) {
            called.insert(id);
        }
    }

    pub fn list(&self, filter: &ListFilter, region: &str, provider: &str) -> Vec<Value> {
        let mut ids: BTreeSet<String> = FRAMEWORK_DEFAULTS.iter().map(|s| s.to_string()).collect();
        ids.extend(self.called.lock().iter().cloned());
        // Every model here is text-out, on-demand and not customizable.
        if filter.by_customization_type.is_some()
            || filter.by_output_modality.as_deref().is_some_and(|m| m != "TEXT")
            || filter.by_inference_type.as_deref().is_some_and(|t| t != "ON_DEMAND")
        {
            return Vec::new();
        }
        ids.iter()
            .filter(|id| {
                filter.by_provider.as_deref().is_none_or(|p| {
                    p.eq_ignore_ascii_case(&provider_name(id))
                        || p.eq_ignore_ascii_case(id.split('.').next().unwrap_or(""))
                })
            })
            .map(|id| summary(id, region, provider))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foundation_models_behind_ids() {
        assert_eq!(
            foundation_model_id("us.anthropic.claude-sonnet-4-20250514-v1:0").as_deref(),
            Some("anthropic.claude-sonnet-4-20250514-v1:0")
        );
        assert_eq!(
            foundation_model_id("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0").as_deref(),
            Some("amazon.nova-lite-v1:0")
        );
        assert_eq!(
            foundation_model_id("amazon.titan-text-express-v1").as_deref(),
            Some("amazon.titan-text-express-v1")
        );
        assert_eq!(foundation_model_id("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc"), None);
        assert_eq!(
            foundation_model_id("global.anthropic.claude-sonnet-4-6").as_deref(),
            Some("anthropic.claude-sonnet-4-6")
        );
        assert_eq!(foundation_model_id("local"), None);
    }

    #[test]
    fn lists_defaults_and_called_models_with_filters() {
        let c = Catalogue::default();
        c.called("eu.mistral.pixtral-large-2502-v1:0");
        c.called("local");
        let all = c.list(&ListFilter::default(), "us-east-1", "echo");
        assert_eq!(all.len(), FRAMEWORK_DEFAULTS.len() + 1);
        let mistral =
            c.list(&ListFilter { by_provider: Some("mistral".into()), ..Default::default() }, "eu-west-1", "echo");
        assert_eq!(mistral.len(), 1);
        assert_eq!(
            mistral[0]["modelArn"],
            "arn:aws:bedrock:eu-west-1::foundation-model/mistral.pixtral-large-2502-v1:0"
        );
        assert_eq!(mistral[0]["providerName"], "Mistral AI");
        let anthropic =
            c.list(&ListFilter { by_provider: Some("Anthropic".into()), ..Default::default() }, "r", "echo");
        assert_eq!(anthropic.len(), 5);
        let provisioned =
            c.list(&ListFilter { by_inference_type: Some("PROVISIONED".into()), ..Default::default() }, "r", "echo");
        assert!(provisioned.is_empty());
    }
}
