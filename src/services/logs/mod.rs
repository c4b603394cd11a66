//! Agent output, kept the way CloudWatch Logs presents it: a log group per runtime endpoint
//! (`/aws/bedrock-agentcore/runtimes/<id>-<endpoint>`) and a stream per session
//! (`YYYY/MM/DD/[runtime-logs]<session id>`), as runtime-contract.md §11 describes.
//!
//! Each stream is a file of JSON lines under the data dir, appended as output arrives, so nothing
//! is lost when an agent crashes or the emulator restarts. Each group is capped in size; the
//! oldest streams go first.

pub mod api;

/// CloudWatch Logs' botocore model subset (generated into `model/` by tools/extract_model.py):
/// requests are validated against it like every other service's.
pub fn model() -> &'static crate::kernel::model::ServiceModel {
    static MODEL: std::sync::OnceLock<crate::kernel::model::ServiceModel> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| crate::kernel::model::load(include_str!("model/logs.json")))
}
mod store;
mod tail;

pub use store::{
    Direction, EventsPage, EventsQuery, FilterQuery, FilteredEvent, GroupInfo, LogEvent, LogStore, StreamInfo,
    DEFAULT_MAX_GROUP_BYTES,
};
pub use tail::tail_runtime;

/// The log group of a runtime endpoint.
pub fn group_name(runtime_id: &str, endpoint: &str) -> String {
    format!("/aws/bedrock-agentcore/runtimes/{runtime_id}-{endpoint}")
}

/// The log stream of a session, dated by its start (UTC).
pub fn stream_name(session_id: &str, started_at_ms: i64) -> String {
    let date = aws_smithy_types::DateTime::from_millis(started_at_ms)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    // 2026-11-26T15:15:16Z → 2026/11/26
    let day = date.get(..10).unwrap_or("1970-01-01").replace('-', "/");
    format!("{day}/[runtime-logs]{session_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_service() {
        assert_eq!(group_name("a-AbCdEf1234", "DEFAULT"), "/aws/bedrock-agentcore/runtimes/a-AbCdEf1234-DEFAULT");
        assert_eq!(stream_name("sess-1", 1795700000000), "2026/11/26/[runtime-logs]sess-1");
    }
}
