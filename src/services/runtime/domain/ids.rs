//! Identifiers and ARNs in the service's formats (api-wire.md §6).

use rand::distr::{Alphanumeric, SampleString};

use crate::kernel::caller::Caller;

/// `{name}-{10 alphanumerics}`: the only generated part of runtime and endpoint ids.
pub fn new_resource_id(name: &str) -> String {
    format!("{name}-{}", Alphanumeric.sample_string(&mut rand::rng(), 10))
}

pub fn runtime_arn(caller: &Caller, runtime_id: &str) -> String {
    format!("arn:{}:bedrock-agentcore:{}:{}:runtime/{runtime_id}", caller.partition(), caller.region, caller.account)
}

pub fn endpoint_arn(runtime_arn: &str, endpoint_name: &str) -> String {
    format!("{runtime_arn}/runtime-endpoint/{endpoint_name}")
}

/// A parsed `arn:<partition>:bedrock-agentcore:<region>:<account>:runtime/<id>[/runtime-endpoint/<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeArn {
    pub region: String,
    pub account: String,
    pub runtime_id: String,
    pub endpoint: Option<String>,
}

pub fn parse_runtime_arn(arn: &str) -> Option<RuntimeArn> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != "arn" || service != "bedrock-agentcore" {
        return None;
    }
    let segments: Vec<&str> = resource.split('/').collect();
    let (runtime_id, endpoint) = match segments.as_slice() {
        ["runtime", id] => (*id, None),
        ["runtime", id, "runtime-endpoint", name] => (*id, Some(name.to_string())),
        _ => return None,
    };
    if runtime_id.is_empty() {
        return None;
    }
    Some(RuntimeArn { region: region.into(), account: account.into(), runtime_id: runtime_id.into(), endpoint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_arns_have_the_service_shape() {
        let id = new_resource_id("my_agent");
        assert!(regex::Regex::new(r"^my_agent-[A-Za-z0-9]{10}$").unwrap().is_match(&id), "{id}");
        let caller = Caller::new("123456789012", "us-east-1");
        let arn = runtime_arn(&caller, &id);
        assert_eq!(arn, format!("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/{id}"));
        let parsed = parse_runtime_arn(&endpoint_arn(&arn, "prod")).unwrap();
        assert_eq!(parsed.runtime_id, id);
        assert_eq!(parsed.endpoint.as_deref(), Some("prod"));
        assert_eq!(runtime_arn(&Caller::new("1", "cn-north-1"), "x-1").split(':').nth(1), Some("aws-cn"));
        assert!(parse_runtime_arn("arn:aws:bedrock-agentcore:us-east-1:123456789012:gateway/g-1").is_none());
    }
}
