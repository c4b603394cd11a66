//! Matches a request line to a modelled operation, using the models' own URI templates.
//!
//! Both planes share one port: the control- and data-plane templates never overlap (api-wire.md §1),
//! so the path alone selects the operation. A trailing slash is optional (botocore sends it, the
//! Rust and JS SDKs do not) and each `{label}` is one percent-decoded segment.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use super::model::{self, ServiceModel};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plane {
    Control,
    Data,
}

impl Plane {
    pub fn model(self) -> &'static ServiceModel {
        match self {
            Plane::Control => model::control(),
            Plane::Data => model::data(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Label(String),
    Greedy(String),
}

#[derive(Debug)]
struct Template {
    /// Index of the model in its table.
    model: usize,
    operation: String,
    method: String,
    segments: Vec<Segment>,
    implemented: bool,
}

/// A matched operation and its decoded URI labels.
#[derive(Debug, Clone)]
pub struct Route {
    pub plane: Plane,
    pub operation: &'static str,
    pub labels: HashMap<String, String>,
}

/// A match in a `RouteTable`: which of its models, the operation, its decoded URI labels.
#[derive(Debug, Clone)]
pub struct Matched {
    pub model: usize,
    pub operation: &'static str,
    pub labels: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// The path is a modelled operation that agentcore-local does not serve.
    NotImplemented { service: &'static str, operation: String },
    /// The path exists but not with this method.
    WrongMethod { allowed: Vec<String> },
    /// Nothing in either model looks like this path.
    Unknown,
}

fn parse_template(uri: &str) -> Vec<Segment> {
    let path = uri.split('?').next().unwrap_or("");
    split_path(path)
        .into_iter()
        .map(|s| {
            if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                match name.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy.to_string()),
                    None => Segment::Label(name.to_string()),
                }
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

/// Path segments, without the leading slash and without an empty trailing one.
fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// The operations of the models that share one signing name (AgentCore's control and data planes,
/// Bedrock's runtime and control plane), routed by method and path.
pub struct RouteTable {
    /// Each model with the service name an unimplemented operation is reported under.
    models: Vec<(&'static ServiceModel, &'static str)>,
    templates: Vec<Template>,
    /// For each literal first segment, the templates a path starting with it can fit (those
    /// starting with that literal, or with a label), in `templates` order; a request is compared
    /// with these alone instead of every template (some 200).
    by_first_literal: HashMap<String, Vec<usize>>,
    /// The templates a path whose first segment is no template's literal can fit.
    open_first: Vec<usize>,
}

impl RouteTable {
    pub fn new(models: Vec<(&'static ServiceModel, &'static str)>) -> RouteTable {
        let mut templates = Vec::new();
        for (index, (m, _)) in models.iter().enumerate() {
            for (name, summary) in &m.all_operations {
                templates.push(Template {
                    model: index,
                    operation: name.clone(),
                    method: summary.method.clone(),
                    segments: parse_template(&summary.request_uri),
                    implemented: m.operations.contains_key(name),
                });
            }
        }
        // Literal segments beat labels when two templates could match (e.g. `/gateways/x/rules`).
        templates
            .sort_by_key(|t| std::cmp::Reverse(t.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()));
        let first_literal = |t: &Template| match t.segments.first() {
            Some(Segment::Literal(lit)) => Some(lit.clone()),
            _ => None,
        };
        let open_first: Vec<usize> = (0..templates.len()).filter(|&i| first_literal(&templates[i]).is_none()).collect();
        let mut by_first_literal: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in templates.iter().enumerate() {
            if let Some(lit) = first_literal(t) {
                by_first_literal.entry(lit).or_default().push(i);
            }
        }
        for candidates in by_first_literal.values_mut() {
            candidates.extend(&open_first);
            candidates.sort_unstable();
        }
        RouteTable { models, templates, by_first_literal, open_first }
    }

    pub fn route(&self, method: &str, raw_path: &str) -> Result<Matched, NoRoute> {
        self.route_among(method, raw_path, false)
    }

    /// `route`, comparing the path with the templates that can share its first segment, or with
    /// every template when `scan_all` (the tests' reference: both must always agree).
    fn route_among(&self, method: &str, raw_path: &str, scan_all: bool) -> Result<Matched, NoRoute> {
        let segments = split_path(raw_path);
        // Decoded once: every template compares its literals with them (an invocation's ARN
        // segment, full of escapes, was decoded again for each of some 200 templates).
        let decoded: Vec<Cow<'_, str>> =
            segments.iter().map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy()).collect();
        let mut allowed = Vec::new();
        let mut unimplemented = None;
        let every: Vec<usize>;
        let candidates = if scan_all {
            every = (0..self.templates.len()).collect();
            &every
        } else {
            decoded.first().and_then(|first| self.by_first_literal.get(first.as_ref())).unwrap_or(&self.open_first)
        };
        for t in candidates.iter().map(|&i| &self.templates[i]) {
            if !fits(t, &decoded) {
                continue;
            }
            if t.method != method {
                allowed.push(t.method.clone());
                continue;
            }
            let (model, service) = self.models[t.model];
            if t.implemented {
                let operation = model.operation(&t.operation).name.as_str();
                return Ok(Matched { model: t.model, operation, labels: labels_of(t, &segments, &decoded) });
            }
            unimplemented.get_or_insert_with(|| NoRoute::NotImplemented { service, operation: t.operation.clone() });
        }
        if let Some(nr) = unimplemented {
            return Err(nr);
        }
        if !allowed.is_empty() {
            allowed.sort();
            allowed.dedup();
            return Err(NoRoute::WrongMethod { allowed });
        }
        Err(NoRoute::Unknown)
    }
}

/// AgentCore's two planes.
fn agentcore() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        RouteTable::new(vec![(model::control(), "bedrock-agentcore-control"), (model::data(), "bedrock-agentcore")])
    })
}

/// Whether the decoded `segments` fit template `t`. Called for each candidate template until one
/// fits, so it allocates nothing.
fn fits(t: &Template, segments: &[Cow<'_, str>]) -> bool {
    for (i, seg) in t.segments.iter().enumerate() {
        match seg {
            Segment::Greedy(_) => return i < segments.len(),
            _ if i >= segments.len() => return false,
            Segment::Literal(lit) => {
                if segments[i] != lit.as_str() {
                    return false;
                }
            }
            Segment::Label(_) => {
                if segments[i].is_empty() {
                    return false;
                }
            }
        }
    }
    t.segments.len() == segments.len()
}

/// The decoded URI labels of `segments` (`decoded`, each decoded), which fit template `t`.
fn labels_of(t: &Template, segments: &[&str], decoded: &[Cow<'_, str>]) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    for (i, seg) in t.segments.iter().enumerate() {
        match seg {
            Segment::Greedy(name) => {
                labels.insert(name.clone(), decode(&segments[i..].join("/")));
                break;
            }
            Segment::Label(name) => {
                labels.insert(name.clone(), decoded[i].to_string());
            }
            Segment::Literal(_) => {}
        }
    }
    labels
}

pub fn route(method: &str, raw_path: &str) -> Result<Route, NoRoute> {
    if let Some(route) = RECENT_ROUTES.with_borrow(|recent| recent.find(method, raw_path)) {
        return Ok(route);
    }
    let m = agentcore().route(method, raw_path)?;
    let plane = if m.model == 0 { Plane::Control } else { Plane::Data };
    let route = Route { plane, operation: m.operation, labels: m.labels };
    RECENT_ROUTES.with_borrow_mut(|recent| recent.remember(method, raw_path, &route));
    Ok(route)
}

thread_local! {
    /// The routes this thread found last. A route is a function of the method and path alone
    /// (the models are fixed), and clients call the same few paths again and again: a session's
    /// invocations all go to its runtime's path. Matching one anew decodes its segments and
    /// compares them with the candidate templates (some 8 000 instructions for an invocation's
    /// ARN path); finding it here is a comparison of strings and a copy of its labels. Per thread,
    /// as connections are served (`serving`), so no lock.
    static RECENT_ROUTES: std::cell::RefCell<RecentRoutes> = const { std::cell::RefCell::new(RecentRoutes::new()) };
}

/// A few routes by method and path, the oldest replaced first. Bounded in count and in path
/// length, so a client sending endless distinct paths costs a little memory and no more.
struct RecentRoutes {
    entries: Vec<(String, String, Route)>,
    /// Where the next route goes once `entries` is full.
    next: usize,
}

impl RecentRoutes {
    const CAPACITY: usize = 32;
    /// Longer paths are routed every time (an invocation's path is about 110 bytes).
    const LONGEST_PATH: usize = 512;

    const fn new() -> RecentRoutes {
        RecentRoutes { entries: Vec::new(), next: 0 }
    }

    fn find(&self, method: &str, raw_path: &str) -> Option<Route> {
        self.entries.iter().find(|(m, p, _)| p == raw_path && m == method).map(|(_, _, route)| route.clone())
    }

    fn remember(&mut self, method: &str, raw_path: &str, route: &Route) {
        if raw_path.len() > Self::LONGEST_PATH {
            return;
        }
        let entry = (method.to_string(), raw_path.to_string(), route.clone());
        if self.entries.len() < Self::CAPACITY {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % Self::CAPACITY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str) -> &'static str {
        route(method, path).unwrap_or_else(|e| panic!("{method} {path}: {e:?}")).operation
    }

    /// Every modelled path of both planes (labels filled in, with and without a trailing slash,
    /// under every method), and paths no template has, route the same through the first-segment
    /// index as by comparing every template.
    #[test]
    fn the_first_segment_index_routes_as_a_scan_of_every_template() {
        let table = agentcore();
        let mut paths: Vec<String> = ["/", "/nothing/here", "/runtimes/x/y/z/w/v"].map(String::from).to_vec();
        for t in &table.templates {
            let path: Vec<&str> = t
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(lit) => lit.as_str(),
                    Segment::Label(_) => "a-AbCdEf1234",
                    Segment::Greedy(_) => "some/key",
                })
                .collect();
            paths.push(format!("/{}", path.join("/")));
            paths.push(format!("/{}/", path.join("/")));
        }
        for path in &paths {
            for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
                let (indexed, scanned) = (table.route(method, path), table.route_among(method, path, true));
                assert_eq!(
                    indexed.as_ref().map(|m| (m.model, m.operation, &m.labels)),
                    scanned.as_ref().map(|m| (m.model, m.operation, &m.labels)),
                    "{method} {path}"
                );
            }
        }
    }

    /// A route found again among the recent ones is the route matched anew, and the recent
    /// routes stay bounded however many distinct paths come.
    #[test]
    fn a_recent_route_is_the_route_and_recent_routes_stay_bounded() {
        let path =
            "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-AbCdEf1234/invocations";
        let first = route("POST", path).unwrap();
        let again = route("POST", path).unwrap();
        assert_eq!((again.plane, again.operation, &again.labels), (first.plane, first.operation, &first.labels));
        // The same path under another method is another route (or none).
        assert!(matches!(route("GET", path), Err(NoRoute::WrongMethod { .. })));
        assert_eq!(op("GET", "/runtimes/a-AbCdEf1234/"), "GetAgentRuntime");
        for i in 0..100 {
            let labels = route("GET", &format!("/runtimes/a-{i:010}/")).unwrap().labels;
            assert_eq!(labels["agentRuntimeId"], format!("a-{i:010}"));
        }
        RECENT_ROUTES.with_borrow(|recent| assert_eq!(recent.entries.len(), RecentRoutes::CAPACITY));
        let long = format!("/runtimes/{}/", "a".repeat(RecentRoutes::LONGEST_PATH));
        assert_eq!(op("GET", &long), "GetAgentRuntime");
        RECENT_ROUTES.with_borrow(|recent| assert!(recent.entries.iter().all(|(_, p, _)| p != &long)));
    }

    #[test]
    fn control_plane_with_and_without_trailing_slash() {
        assert_eq!(op("PUT", "/runtimes/"), "CreateAgentRuntime");
        assert_eq!(op("PUT", "/runtimes"), "CreateAgentRuntime");
        assert_eq!(op("POST", "/runtimes"), "ListAgentRuntimes");
        assert_eq!(op("GET", "/runtimes/a-AbCdEf1234/"), "GetAgentRuntime");
        assert_eq!(op("POST", "/runtimes/a-AbCdEf1234/versions"), "ListAgentRuntimeVersions");
        assert_eq!(op("DELETE", "/runtimes/a-AbCdEf1234/runtime-endpoints/prod/"), "DeleteAgentRuntimeEndpoint");
        assert_eq!(
            op("GET", "/tags/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-AbCdEf1234"),
            "ListTagsForResource"
        );
    }

    #[test]
    fn data_plane_and_decoded_labels() {
        let r = route(
            "POST",
            "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-AbCdEf1234/invocations",
        )
        .unwrap();
        assert_eq!(r.operation, "InvokeAgentRuntime");
        assert_eq!(r.plane, Plane::Data);
        assert_eq!(
            r.labels["agentRuntimeArn"],
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-AbCdEf1234"
        );
        assert_eq!(op("GET", "/runtimes/x/invocations/.well-known/agent-card.json"), "GetAgentCard");
        assert_eq!(op("POST", "/runtimes/x/stopruntimesession"), "StopRuntimeSession");
    }

    #[test]
    fn unknown_and_unimplemented_paths_are_told_apart() {
        assert!(
            matches!(route("POST", "/gateways/"), Err(NoRoute::NotImplemented { operation, .. }) if operation == "CreateGateway")
        );
        assert!(matches!(route("PATCH", "/runtimes/"), Err(NoRoute::WrongMethod { .. })));
        assert_eq!(route("GET", "/nothing/here").unwrap_err(), NoRoute::Unknown);
        assert_eq!(route("GET", "/").unwrap_err(), NoRoute::Unknown);
    }
}
