//! Bedrock's routes: the runtime's and the control plane's URI templates in one table (they share
//! the signing name `bedrock`; their paths never overlap).

use std::sync::OnceLock;

use super::models;
use crate::kernel::model::ServiceModel;
use crate::kernel::router::{Matched, NoRoute, RouteTable};

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| RouteTable::new(vec![(models::runtime(), "bedrock-runtime"), (models::control(), "bedrock")]))
}

/// The operation a request names, and the model its input is bound with.
pub fn route(method: &str, raw_path: &str) -> Result<(Matched, &'static ServiceModel), NoRoute> {
    let m = table().route(method, raw_path)?;
    let model = if m.model == 0 { models::runtime() } else { models::control() };
    Ok((m, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str) -> &'static str {
        route(method, path).unwrap_or_else(|e| panic!("{method} {path}: {e:?}")).0.operation
    }

    #[test]
    fn runtime_and_control_paths() {
        assert_eq!(op("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"), "Converse");
        assert_eq!(op("POST", "/model/m/converse-stream"), "ConverseStream");
        assert_eq!(op("POST", "/model/m/invoke"), "InvokeModel");
        assert_eq!(op("POST", "/model/m/invoke-with-response-stream"), "InvokeModelWithResponseStream");
        assert_eq!(op("POST", "/model/m/count-tokens"), "CountTokens");
        assert_eq!(op("GET", "/foundation-models"), "ListFoundationModels");
        assert_eq!(op("GET", "/foundation-models/amazon.nova-lite-v1%3A0"), "GetFoundationModel");
        let (m, _) = route(
            "POST",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Famazon.nova-lite-v1%3A0/converse",
        )
        .unwrap();
        assert_eq!(m.labels["modelId"], "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0");
    }

    #[test]
    fn unserved_bedrock_operations_are_named() {
        assert_eq!(
            route("POST", "/guardrail/g/version/1/apply").unwrap_err(),
            NoRoute::NotImplemented { service: "bedrock-runtime", operation: "ApplyGuardrail".into() }
        );
        assert!(matches!(route("GET", "/guardrails").unwrap_err(), NoRoute::NotImplemented { service: "bedrock", .. }));
        assert_eq!(route("GET", "/runtimes/").unwrap_err(), NoRoute::Unknown);
    }
}
