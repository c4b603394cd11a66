//! Bedrock's botocore model subsets (generated into `model/` by tools/extract_model.py): the
//! runtime API and the control plane, both signed as `bedrock`.

use std::sync::OnceLock;

use crate::kernel::model::{self, ServiceModel};

/// `bedrock-runtime` (Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream).
pub fn runtime() -> &'static ServiceModel {
    static MODEL: OnceLock<ServiceModel> = OnceLock::new();
    MODEL.get_or_init(|| model::load(include_str!("model/bedrock-runtime.json")))
}

/// `bedrock` (ListFoundationModels, GetFoundationModel).
pub fn control() -> &'static ServiceModel {
    static MODEL: OnceLock<ServiceModel> = OnceLock::new();
    MODEL.get_or_init(|| model::load(include_str!("model/bedrock.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_load_and_every_pattern_compiles() {
        for m in [runtime(), control()] {
            for (name, shape) in &m.shapes {
                if shape.pattern.is_some() {
                    assert!(shape.pattern_regex().is_some(), "pattern of {name} does not compile");
                }
            }
        }
        assert_eq!(runtime().metadata.api_version, "2023-09-30");
        assert_eq!(control().metadata.api_version, "2023-04-20");
        assert!(runtime().shape("Document").document);
    }

    #[test]
    fn documents_take_any_json_and_unions_one_member() {
        let request = serde_json::json!({
            "modelId": "m",
            "messages": [{"role": "user", "content": [
                {"toolResult": {"toolUseId": "t", "content": [{"json": [1, "two", {"three": 3}]}, {"json": "plain"}]}}
            ]}],
        });
        assert_eq!(model::validate(runtime(), "ConverseRequest", &request), vec![]);
        let two_members = serde_json::json!({"modelId": "m", "messages": [{"role": "user", "content": [
            {"text": "a", "image": {"format": "png", "source": {"bytes": "AA=="}}}
        ]}]});
        let problems = model::validate(runtime(), "ConverseRequest", &two_members);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "messages.1.content.1");
    }
}
