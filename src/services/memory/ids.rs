//! Identifiers and ARNs in the service's formats.

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;

use crate::kernel::caller::Caller;

/// `{name}-{10 alphanumerics}`: memory and strategy ids.
pub fn new_named_id(name: &str) -> String {
    format!("{name}-{}", Alphanumeric.sample_string(&mut rand::rng(), 10))
}

pub fn memory_arn(caller: &Caller, memory_id: &str) -> String {
    format!("arn:{}:bedrock-agentcore:{}:{}:memory/{memory_id}", caller.partition(), caller.region, caller.account)
}

/// `{19-digit event time in ms}#{8 hex}`: the model's `[0-9]+#[a-fA-F0-9]+`. Leading with the
/// zero-padded time makes ids sort like the events they name.
pub fn new_event_id(event_ts_ms: i64) -> String {
    format!("{:019}#{:08x}", event_ts_ms.max(0), rand::rng().random::<u32>())
}

/// `mem-` and a UUID: 40 characters, inside the model's 40–50 and `mem-[a-zA-Z0-9-_]*`.
pub fn new_record_id() -> String {
    format!("mem-{}", uuid::Uuid::new_v4())
}

/// Extraction job ids (`ExtractionJobMetadata.jobID` is a free string).
pub fn new_job_id() -> String {
    format!("job-{}", uuid::Uuid::new_v4().simple())
}

/// A memory named by id or by ARN (the data plane accepts both): the id, when an ARN names the
/// caller's own account and Region. Any other ARN names a memory this caller cannot see.
pub fn memory_id_of<'a>(caller: &Caller, id_or_arn: &'a str) -> Option<&'a str> {
    if !id_or_arn.starts_with("arn:") {
        return Some(id_or_arn);
    }
    let parsed = parse_memory_arn(id_or_arn)?;
    (parsed.account == caller.account && parsed.region == caller.region).then_some(parsed.memory_id)
}

#[derive(Debug, PartialEq, Eq)]
pub struct MemoryArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub memory_id: &'a str,
}

/// `arn:<partition>:bedrock-agentcore:<region>:<account>:memory/<id>`.
pub fn parse_memory_arn(arn: &str) -> Option<MemoryArn<'_>> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != "arn" || service != "bedrock-agentcore" {
        return None;
    }
    let memory_id = resource.strip_prefix("memory/")?;
    (!memory_id.is_empty() && !memory_id.contains('/')).then_some(MemoryArn { region, account, memory_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_model_patterns() {
        let re = |p: &str| regex::Regex::new(&format!("^(?:{p})$")).unwrap();
        assert!(re("[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}").is_match(&new_named_id("my_memory")));
        let event = new_event_id(1_764_000_000_123);
        assert!(re("[0-9]+#[a-fA-F0-9]+").is_match(&event), "{event}");
        assert!(event.starts_with("0000001764000000123#"));
        let record = new_record_id();
        assert!(re("mem-[a-zA-Z0-9-_]*").is_match(&record) && (40..=50).contains(&record.len()), "{record}");
    }

    #[test]
    fn arns_round_trip_and_foreign_arns_are_invisible() {
        let caller = Caller::new("123456789012", "us-east-1");
        let arn = memory_arn(&caller, "m-AbCdEf1234");
        assert_eq!(arn, "arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/m-AbCdEf1234");
        assert_eq!(memory_id_of(&caller, &arn), Some("m-AbCdEf1234"));
        assert_eq!(memory_id_of(&caller, "m-AbCdEf1234"), Some("m-AbCdEf1234"));
        let other = Caller::new("210987654321", "us-east-1");
        assert_eq!(memory_id_of(&other, &arn), None);
        assert!(parse_memory_arn("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/r-1").is_none());
    }
}
