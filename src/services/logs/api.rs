//! A CloudWatch Logs subset (awsJson1_1, `X-Amz-Target: Logs_20140328.<Op>`, signing name `logs`)
//! over the agent output the emulator captures: DescribeLogGroups, DescribeLogStreams,
//! GetLogEvents, FilterLogEvents.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderValue, Response};
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::kernel::caller::Caller;
use crate::kernel::response::{self, Body};
use crate::services::logs::{Direction, FilterQuery, LogStore};

const TARGET_PREFIX: &str = "Logs_20140328.";
/// GetLogEvents and FilterLogEvents return at most this many events per call (the service's cap).
const MAX_EVENTS: usize = 10_000;
const MAX_DESCRIBE: usize = 50;

/// An awsJson1_1 error: HTTP 400 with `__type`, which botocore maps to the modelled exception.
fn error(code: &str, message: &str, request_id: &str) -> Response<Body> {
    let mut resp = response::json(400, &json!({ "__type": code, "message": message }), request_id);
    if let Ok(v) = HeaderValue::from_str(code) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    resp
}

fn ok(body: Value, request_id: &str) -> Response<Body> {
    let mut resp = response::json(200, &body, request_id);
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    resp
}

fn page_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("logs|{n}"))
}

fn parse_page_token(token: Option<&str>) -> Result<usize, String> {
    let Some(token) = token else { return Ok(0) };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| format!("The nextToken '{token}' is not valid."))?;
    String::from_utf8_lossy(&raw)
        .strip_prefix("logs|")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("The nextToken '{token}' is not valid."))
}

/// The page size asked for (the model has checked its range), else the operation's maximum.
fn limit(input: &Map<String, Value>, max: usize) -> usize {
    input.get("limit").and_then(Value::as_u64).map_or(max, |n| (n as usize).min(max))
}

fn group_arn(caller: &Caller, group: &str) -> String {
    format!("arn:aws:logs:{}:{}:log-group:{group}", caller.region, caller.account)
}

/// The group named by `logGroupName` or `logGroupIdentifier` (a name or an ARN).
fn group_of(input: &Map<String, Value>) -> Option<String> {
    if let Some(name) = input.get("logGroupName").and_then(Value::as_str) {
        return Some(name.to_string());
    }
    let id = input.get("logGroupIdentifier").and_then(Value::as_str)?;
    Some(match id.strip_prefix("arn:") {
        Some(_) => id.split(":log-group:").nth(1).unwrap_or(id).trim_end_matches(":*").to_string(),
        None => id.to_string(),
    })
}

pub fn handle(
    state: &AppState,
    caller: &Caller,
    headers: &[(String, String)],
    body: &[u8],
    request_id: &str,
) -> Response<Body> {
    let target =
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")).map(|(_, v)| v.as_str()).unwrap_or("");
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return error(
            "UnknownOperationException",
            &format!("Unknown X-Amz-Target '{target}' for CloudWatch Logs."),
            request_id,
        );
    };
    let input: Map<String, Value> = match serde_json::from_slice::<Value>(if body.is_empty() { b"{}" } else { body }) {
        Ok(Value::Object(m)) => m,
        _ => return error("SerializationException", "The request body is not a JSON object.", request_id),
    };
    let implemented = ["DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents"];
    if implemented.contains(&operation) {
        let logs = super::model();
        let shape = logs.operation(operation).input.as_ref().map(|i| i.shape.clone()).unwrap_or_default();
        let problems = crate::kernel::model::validate(logs, &shape, &Value::Object(input.clone()));
        if !problems.is_empty() {
            return error(
                "InvalidParameterException",
                &crate::kernel::input::validation_message(&problems),
                request_id,
            );
        }
    }
    let Some(store) = state.logs.as_ref().map(|s| s.scoped(&caller.account, &caller.region)) else {
        return error(
            "ResourceNotFoundException",
            "This emulator runs with --sandbox none and keeps no agent logs.",
            request_id,
        );
    };
    let result = match operation {
        "DescribeLogGroups" => describe_groups(&store, caller, &input),
        "DescribeLogStreams" => describe_streams(&store, caller, &input),
        "GetLogEvents" => get_events(&store, &input),
        "FilterLogEvents" => filter_events(&store, &input),
        other => Err((
            "UnknownOperationException",
            format!("CloudWatch Logs {other} is not implemented by agentcore-local."),
        )),
    };
    match result {
        Ok(body) => ok(body, request_id),
        Err((code, message)) => error(code, &message, request_id),
    }
}

type OpResult = Result<Value, (&'static str, String)>;

fn invalid(message: String) -> (&'static str, String) {
    ("InvalidParameterException", message)
}

fn require_group(store: &LogStore, input: &Map<String, Value>) -> Result<String, (&'static str, String)> {
    let group = group_of(input).ok_or_else(|| invalid("logGroupName or logGroupIdentifier is required.".into()))?;
    if !store.group_exists(&group) {
        return Err(("ResourceNotFoundException", "The specified log group does not exist.".into()));
    }
    Ok(group)
}

fn describe_groups(store: &LogStore, caller: &Caller, input: &Map<String, Value>) -> OpResult {
    let prefix = input.get("logGroupNamePrefix").and_then(Value::as_str).unwrap_or("");
    let pattern = input.get("logGroupNamePattern").and_then(Value::as_str);
    let limit = limit(input, MAX_DESCRIBE);
    let start = parse_page_token(input.get("nextToken").and_then(Value::as_str)).map_err(invalid)?;
    let groups: Vec<_> = store
        .groups()
        .into_iter()
        .filter(|g| g.name.starts_with(prefix) && pattern.is_none_or(|p| g.name.contains(p)))
        .collect();
    let page: Vec<Value> = groups
        .iter()
        .skip(start)
        .take(limit)
        .map(|g| {
            let arn = group_arn(caller, &g.name);
            json!({"logGroupName": g.name, "creationTime": g.created, "storedBytes": g.stored_bytes,
                   "metricFilterCount": 0, "arn": format!("{arn}:*"), "logGroupArn": arn, "logGroupClass": "STANDARD"})
        })
        .collect();
    let mut body = json!({ "logGroups": page });
    if start + limit < groups.len() {
        body["nextToken"] = json!(page_token(start + limit));
    }
    Ok(body)
}

fn describe_streams(store: &LogStore, caller: &Caller, input: &Map<String, Value>) -> OpResult {
    let group = require_group(store, input)?;
    let prefix = input.get("logStreamNamePrefix").and_then(Value::as_str).unwrap_or("");
    let by_time = input.get("orderBy").and_then(Value::as_str) == Some("LastEventTime");
    if by_time && !prefix.is_empty() {
        return Err(invalid("Cannot order by LastEventTime with a logStreamNamePrefix.".into()));
    }
    let descending = input.get("descending").and_then(Value::as_bool).unwrap_or(false);
    let limit = limit(input, MAX_DESCRIBE);
    let start = parse_page_token(input.get("nextToken").and_then(Value::as_str)).map_err(invalid)?;
    let mut streams: Vec<_> = store.streams(&group).into_iter().filter(|s| s.name.starts_with(prefix)).collect();
    if by_time {
        streams.sort_by_key(|s| s.last_event.unwrap_or(0));
    }
    if descending {
        streams.reverse();
    }
    let page: Vec<Value> = streams
        .iter()
        .skip(start)
        .take(limit)
        .map(|s| {
            let mut v = json!({"logStreamName": s.name, "creationTime": s.created, "storedBytes": s.stored_bytes,
                "arn": format!("{}:log-stream:{}", group_arn(caller, &group), s.name)});
            for (key, value) in [
                ("firstEventTimestamp", s.first_event),
                ("lastEventTimestamp", s.last_event),
                ("lastIngestionTime", s.last_ingestion),
            ] {
                if let Some(t) = value {
                    v[key] = json!(t);
                }
            }
            v
        })
        .collect();
    let mut body = json!({ "logStreams": page });
    if start + limit < streams.len() {
        body["nextToken"] = json!(page_token(start + limit));
    }
    Ok(body)
}

/// GetLogEvents tokens are `f/<offset>` and `b/<offset>`, as the service's look.
fn parse_event_token(token: &str) -> Result<(Direction, u64), (&'static str, String)> {
    let bad = || invalid(format!("The specified nextToken '{token}' is invalid."));
    let (dir, offset) = token.split_once('/').ok_or_else(bad)?;
    let offset = offset.parse().map_err(|_| bad())?;
    match dir {
        "f" => Ok((Direction::Forward, offset)),
        "b" => Ok((Direction::Backward, offset)),
        _ => Err(bad()),
    }
}

fn get_events(store: &LogStore, input: &Map<String, Value>) -> OpResult {
    let group = require_group(store, input)?;
    let stream = input.get("logStreamName").and_then(Value::as_str).unwrap_or_default();
    if !store.stream_exists(&group, stream) {
        return Err(("ResourceNotFoundException", "The specified log stream does not exist.".into()));
    }
    let limit = limit(input, MAX_EVENTS);
    let (start, end) = (input.get("startTime").and_then(Value::as_i64), input.get("endTime").and_then(Value::as_i64));
    let (direction, offset) = match input.get("nextToken").and_then(Value::as_str) {
        Some(t) => {
            let (d, o) = parse_event_token(t)?;
            (d, Some(o))
        }
        // startFromHead=false (the default) reads the newest events first.
        None if input.get("startFromHead").and_then(Value::as_bool).unwrap_or(false) => (Direction::Forward, None),
        None => (Direction::Backward, None),
    };
    let query = crate::services::logs::EventsQuery { offset, direction, start, end, limit };
    let page = store.events(&group, stream, &query).map_err(|e| ("ServiceUnavailableException", e.to_string()))?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| json!({"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingested}))
        .collect();
    Ok(json!({
        "events": events,
        "nextForwardToken": format!("f/{}", page.next_forward),
        "nextBackwardToken": format!("b/{}", page.next_backward),
    }))
}

fn filter_events(store: &LogStore, input: &Map<String, Value>) -> OpResult {
    let group = require_group(store, input)?;
    let names: Option<Vec<String>> = input
        .get("logStreamNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect());
    let prefix = input.get("logStreamNamePrefix").and_then(Value::as_str).map(String::from);
    if names.is_some() && prefix.is_some() {
        return Err(invalid("logStreamNames and logStreamNamePrefix cannot both be given.".into()));
    }
    let query = FilterQuery {
        streams: names,
        stream_prefix: prefix,
        start: input.get("startTime").and_then(Value::as_i64),
        end: input.get("endTime").and_then(Value::as_i64),
        pattern: input.get("filterPattern").and_then(Value::as_str).map(String::from),
    };
    let limit = limit(input, MAX_EVENTS);
    let after = parse_page_token(input.get("nextToken").and_then(Value::as_str)).map_err(invalid)?;
    let (hits, next) = store.filter(&group, &query, after, limit);
    let events: Vec<Value> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({"logStreamName": h.stream, "timestamp": h.event.timestamp, "message": h.event.message,
                   "ingestionTime": h.event.ingested, "eventId": format!("{:020}{:010}", h.event.timestamp, after + i)})
        })
        .collect();
    let mut body = json!({ "events": events, "searchedLogStreams": [] });
    if let Some(n) = next {
        body["nextToken"] = json!(page_token(n));
    }
    Ok(body)
}
