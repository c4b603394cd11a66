//! The files behind log groups and streams.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use serde::{Deserialize, Serialize};

/// One line of agent output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Unix milliseconds when the agent wrote it.
    #[serde(rename = "t")]
    pub timestamp: i64,
    /// `stdout` or `stderr`.
    #[serde(rename = "s")]
    pub stream: String,
    #[serde(rename = "m")]
    pub message: String,
    /// When the emulator stored it.
    #[serde(rename = "i")]
    pub ingested: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub created: i64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub group: String,
    pub name: String,
    pub created: i64,
    pub first_event: Option<i64>,
    pub last_event: Option<i64>,
    pub last_ingestion: Option<i64>,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A page of GetLogEvents: events in time order, and byte offsets to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsPage {
    pub events: Vec<LogEvent>,
    /// Offset after the last event returned (continue forward).
    pub next_forward: u64,
    /// Offset of the first event returned (continue backward).
    pub next_backward: u64,
}

/// Which page of a stream GetLogEvents wants.
#[derive(Debug, Clone, Copy)]
pub struct EventsQuery {
    pub offset: Option<u64>,
    pub direction: Direction,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FilterQuery {
    pub streams: Option<Vec<String>>,
    pub stream_prefix: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// CloudWatch's simple term syntax: all terms must occur (quoted phrases allowed), `-term`
    /// excludes, `?term` makes terms alternatives.
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredEvent {
    pub stream: String,
    pub event: LogEvent,
}

/// Longest percent-encoded name kept as the file name itself. File systems allow 255 bytes per
/// component and encoding can triple a name (a 256-character session id of dashes, or `ü`s, is
/// 768 bytes), so longer names are stored under a digest with the name beside it.
const MAX_ENCODED_NAME: usize = 200;

/// Suffix of the file that holds the real name of a digest-named group or stream.
const NAME_SUFFIX: &str = ".name";

/// The file-name component for a name (CloudWatch names contain `/`, `[`, `]`): the name
/// percent-encoded, or `~` and its SHA-256 when that would not fit. `~` is never produced by the
/// encoding (it encodes every non-alphanumeric byte), so the two forms cannot collide.
fn component(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string();
    if encoded.len() <= MAX_ENCODED_NAME {
        encoded
    } else {
        format!("~{}", hex::encode(Sha256::digest(name.as_bytes())))
    }
}

fn is_digest(component: &str) -> bool {
    component.starts_with('~')
}

/// The file beside a digest-named component (in the same `parent`) that holds its name.
fn name_file(parent: &Path, component: &str) -> PathBuf {
    parent.join(format!("{component}{NAME_SUFFIX}"))
}

/// The name a component in `parent` stands for.
fn name_of(parent: &Path, component: &str) -> Option<String> {
    if is_digest(component) {
        std::fs::read_to_string(name_file(parent, component)).ok()
    } else {
        Some(percent_encoding::percent_decode_str(component).decode_utf8_lossy().into_owned())
    }
}

/// Write the name of a digest-named component beside it, before anything is stored under it, so
/// a listing always finds the name (renamed into place: a reader never sees half of it).
fn remember_name(parent: &Path, component: &str, name: &str) -> std::io::Result<()> {
    if !is_digest(component) {
        return Ok(());
    }
    let path = name_file(parent, component);
    if path.is_file() {
        return Ok(());
    }
    let tmp = parent.join(format!("{component}{NAME_SUFFIX}.tmp"));
    std::fs::write(&tmp, name)?;
    std::fs::rename(tmp, path)
}

#[derive(Clone)]
pub struct LogStore {
    root: PathBuf,
    /// Bytes kept per log group before its oldest streams are deleted.
    max_group_bytes: u64,
    /// Serializes appends and retention (readers do not need it: lines are appended whole), and
    /// holds each group's size so an append need not list the group's streams: it did, so every
    /// line an agent wrote cost a `stat` of every stream of its runtime endpoint.
    write_lock: Arc<Mutex<GroupSizes>>,
}

/// Bytes of stream files per group directory: counted by listing on a group's first append, then
/// kept by adding what is appended. Deletions elsewhere (DeleteLogStream, another emulator) only
/// make it high, which the listing at the cap corrects. One entry per group ever written.
type GroupSizes = std::collections::HashMap<PathBuf, u64>;

/// Default cap per log group (runtime endpoint).
pub const DEFAULT_MAX_GROUP_BYTES: u64 = 256 * 1024 * 1024;

impl LogStore {
    pub fn new(root: PathBuf, max_group_bytes: u64) -> LogStore {
        LogStore { root, max_group_bytes, write_lock: Arc::default() }
    }

    /// The groups of one account and Region (CloudWatch Logs is regional, per account).
    pub fn scoped(&self, account: &str, region: &str) -> LogStore {
        LogStore { root: self.root.join(component(account)).join(component(region)), ..self.clone() }
    }

    fn group_dir(&self, group: &str) -> PathBuf {
        self.root.join(component(group))
    }

    fn stream_file(&self, group: &str, stream: &str) -> PathBuf {
        self.group_dir(group).join(format!("{}.jsonl", component(stream)))
    }

    /// Append events to a stream (creating group and stream), then enforce the group's cap.
    pub fn append(&self, group: &str, stream: &str, events: &[LogEvent]) -> std::io::Result<()> {
        let mut sizes = self.write_lock.lock();
        let dir = self.group_dir(group);
        std::fs::create_dir_all(&dir)?;
        remember_name(&self.root, &component(group), group)?;
        remember_name(&dir, &component(stream), stream)?;
        if !sizes.contains_key(&dir) {
            let listed = stream_files(&dir)?.iter().map(|(_, len, _)| len).sum();
            sizes.insert(dir.clone(), listed);
        }
        let path = self.stream_file(group, stream);
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut buf = Vec::new();
        for e in events {
            serde_json::to_writer(&mut buf, e).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        file.write_all(&buf)?;
        let size = sizes.get_mut(&dir).expect("counted above");
        *size += buf.len() as u64;
        if *size > self.max_group_bytes {
            *size = self.enforce_cap(&dir, &path)?;
        }
        Ok(())
    }

    /// Deletes the group's oldest streams (never `writing`) until it fits its cap; returns the
    /// bytes left.
    fn enforce_cap(&self, dir: &Path, writing: &Path) -> std::io::Result<u64> {
        let mut files = stream_files(dir)?;
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_group_bytes {
                break;
            }
            if path == writing {
                continue;
            }
            std::fs::remove_file(&path)?;
            // A digest-named stream's name goes with it.
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()).filter(|s| is_digest(s)) {
                let _ = std::fs::remove_file(name_file(dir, stem));
            }
            total -= len;
        }
        Ok(total)
    }

    pub fn groups(&self) -> Vec<GroupInfo> {
        let mut out: Vec<GroupInfo> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let path = e.path();
                let stored_bytes = std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum();
                let name = name_of(&self.root, &e.file_name().to_string_lossy())?;
                Some(GroupInfo { name, created: created_ms(&path), stored_bytes })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn group_exists(&self, group: &str) -> bool {
        self.group_dir(group).is_dir()
    }

    pub fn streams(&self, group: &str) -> Vec<StreamInfo> {
        let dir = self.group_dir(group);
        let mut out: Vec<StreamInfo> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file_name = e.file_name().to_string_lossy().into_owned();
                let name = name_of(&dir, file_name.strip_suffix(".jsonl")?)?;
                Some(self.stream_info(group, &name, &e.path()))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn stream_info(&self, group: &str, name: &str, path: &Path) -> StreamInfo {
        let events = read_events(path).unwrap_or_default();
        StreamInfo {
            group: group.to_string(),
            name: name.to_string(),
            created: created_ms(path),
            first_event: events.first().map(|(_, e)| e.timestamp),
            last_event: events.last().map(|(_, e)| e.timestamp),
            last_ingestion: events.last().map(|(_, e)| e.ingested),
            stored_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }

    pub fn stream_exists(&self, group: &str, stream: &str) -> bool {
        self.stream_file(group, stream).is_file()
    }

    /// GetLogEvents: up to `q.limit` events from `q.offset` (a byte position from a previous page,
    /// or the start/end of the stream), within [start, end).
    pub fn events(&self, group: &str, stream: &str, q: &EventsQuery) -> std::io::Result<EventsPage> {
        let EventsQuery { offset, direction, start, end, limit } = *q;
        let all = read_events(&self.stream_file(group, stream))?;
        let in_range: Vec<(u64, LogEvent)> = all
            .into_iter()
            .filter(|(_, e)| start.is_none_or(|s| e.timestamp >= s) && end.is_none_or(|x| e.timestamp < x))
            .collect();
        let page: Vec<(u64, LogEvent)> = match direction {
            Direction::Forward => {
                let from = offset.unwrap_or(0);
                in_range.into_iter().filter(|(o, _)| *o >= from).take(limit).collect()
            }
            Direction::Backward => {
                let before = offset.unwrap_or(u64::MAX);
                let mut older: Vec<(u64, LogEvent)> = in_range.into_iter().filter(|(o, _)| *o < before).collect();
                let skip = older.len().saturating_sub(limit);
                older.drain(..skip);
                older
            }
        };
        let next_forward = page.last().map(|(o, e)| o + line_len(e)).or(offset).unwrap_or(0);
        let next_backward = page.first().map(|(o, _)| *o).or(offset).unwrap_or(0);
        Ok(EventsPage { events: page.into_iter().map(|(_, e)| e).collect(), next_forward, next_backward })
    }

    /// FilterLogEvents over a group's streams, in time order, from position `after` (exclusive;
    /// an index into the merged result, for paging).
    pub fn filter(
        &self,
        group: &str,
        query: &FilterQuery,
        after: usize,
        limit: usize,
    ) -> (Vec<FilteredEvent>, Option<usize>) {
        let matcher = Pattern::parse(query.pattern.as_deref().unwrap_or(""));
        let mut all: Vec<FilteredEvent> = Vec::new();
        for info in self.streams(group) {
            if query.streams.as_ref().is_some_and(|names| !names.contains(&info.name)) {
                continue;
            }
            if query.stream_prefix.as_ref().is_some_and(|p| !info.name.starts_with(p.as_str())) {
                continue;
            }
            for (_, event) in read_events(&self.stream_file(group, &info.name)).unwrap_or_default() {
                // FilterLogEvents' endTime is inclusive ("later than this time are not returned"),
                // unlike GetLogEvents'.
                let in_time =
                    query.start.is_none_or(|s| event.timestamp >= s) && query.end.is_none_or(|x| event.timestamp <= x);
                if in_time && matcher.matches(&event.message) {
                    all.push(FilteredEvent { stream: info.name.clone(), event });
                }
            }
        }
        all.sort_by_key(|f| (f.event.timestamp, f.event.ingested));
        let page: Vec<FilteredEvent> = all.iter().skip(after).take(limit).cloned().collect();
        let next = (after + page.len() < all.len()).then_some(after + page.len());
        (page, next)
    }

    /// Every stream of a runtime's log groups, in every account and Region (the root store's
    /// scopes), with the scoped store that holds it.
    pub fn runtime_streams(&self, runtime_id: &str) -> Vec<(LogStore, StreamInfo)> {
        let prefix = format!("/aws/bedrock-agentcore/runtimes/{runtime_id}-");
        let dirs = |p: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        };
        let mut out = Vec::new();
        for account in dirs(&self.root) {
            for region in dirs(&account) {
                let scoped = LogStore { root: region, ..self.clone() };
                for group in scoped.groups().into_iter().filter(|g| g.name.starts_with(&prefix)) {
                    out.extend(scoped.streams(&group.name).into_iter().map(|s| (scoped.clone(), s)));
                }
            }
        }
        out
    }

    /// Events of one stream after byte `offset`, and the offset to continue from (following).
    pub fn events_after(&self, group: &str, stream: &str, offset: u64) -> (Vec<LogEvent>, u64) {
        let all = read_events(&self.stream_file(group, stream)).unwrap_or_default();
        let mut next = offset;
        let events = all
            .into_iter()
            .filter(|(o, _)| *o >= offset)
            .map(|(o, e)| {
                next = o + line_len(&e);
                e
            })
            .collect();
        (events, next)
    }

    /// The last `n` events of a stream, read from the end of its file (its size does not matter).
    pub fn last_events(&self, group: &str, stream: &str, n: usize) -> Vec<LogEvent> {
        tail_events(&self.stream_file(group, stream), n).unwrap_or_default()
    }

    /// Delete a group's files (the runtime is gone).
    pub fn delete_group(&self, group: &str) {
        let _ = std::fs::remove_dir_all(self.group_dir(group));
        let _ = std::fs::remove_file(name_file(&self.root, &component(group)));
    }
}

fn line_len(e: &LogEvent) -> u64 {
    serde_json::to_vec(e).map(|v| v.len() as u64 + 1).unwrap_or(1)
}

fn created_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.created().or_else(|_| m.modified()))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every complete line of a stream file with its byte offset.
/// A group directory's stream files: (modified, length, path).
fn stream_files(dir: &Path) -> std::io::Result<Vec<(std::time::SystemTime, u64, PathBuf)>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect())
}

fn read_events(path: &Path) -> std::io::Result<Vec<(u64, LogEvent)>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        if let Ok(e) = serde_json::from_str::<LogEvent>(line.trim_end()) {
            out.push((offset, e));
        }
        offset += n as u64;
    }
    Ok(out)
}

/// The last `n` complete lines of a stream file as events, reading blocks backwards from its end
/// until they hold more than `n` line ends.
fn tail_events(path: &Path, n: usize) -> std::io::Result<Vec<LogEvent>> {
    const BLOCK: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let mut start = file.metadata()?.len();
    let mut tail: Vec<u8> = Vec::new();
    let mut line_ends = 0;
    while start > 0 && line_ends <= n {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        std::io::Read::read_exact(&mut file, &mut block)?;
        line_ends += block.iter().filter(|b| **b == b'\n').count();
        block.extend_from_slice(&tail);
        tail = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&tail);
    // A line still being written (no line end yet) is left for later, as `read_events` does; read
    // from the middle of the file, the first line may have begun before the tail.
    let mut lines: Vec<&str> = text.split_inclusive('\n').filter(|l| l.ends_with('\n')).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().filter_map(|l| serde_json::from_str(l.trim_end()).ok()).collect())
}

/// CloudWatch Logs' filter pattern for unstructured text.
struct Pattern {
    required: Vec<String>,
    excluded: Vec<String>,
    any_of: Vec<String>,
}

impl Pattern {
    fn parse(text: &str) -> Pattern {
        let mut terms = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let (prefix, body) = match rest.as_bytes()[0] {
                b'-' | b'?' => (Some(rest.as_bytes()[0]), &rest[1..]),
                _ => (None, rest),
            };
            let (term, remaining) = if let Some(quoted) = body.strip_prefix('"') {
                match quoted.find('"') {
                    Some(end) => (&quoted[..end], &quoted[end + 1..]),
                    None => (quoted, ""),
                }
            } else {
                match body.find(char::is_whitespace) {
                    Some(end) => (&body[..end], &body[end..]),
                    None => (body, ""),
                }
            };
            if !term.is_empty() {
                terms.push((prefix, term.to_string()));
            }
            rest = remaining.trim_start();
        }
        let mut p = Pattern { required: vec![], excluded: vec![], any_of: vec![] };
        for (prefix, term) in terms {
            match prefix {
                Some(b'-') => p.excluded.push(term),
                Some(b'?') => p.any_of.push(term),
                _ => p.required.push(term),
            }
        }
        p
    }

    fn matches(&self, message: &str) -> bool {
        self.required.iter().all(|t| message.contains(t.as_str()))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
            && (self.any_of.is_empty() || self.any_of.iter().any(|t| message.contains(t.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, m: &str) -> LogEvent {
        LogEvent { timestamp: t, stream: "stdout".into(), message: m.into(), ingested: t + 1 }
    }

    #[test]
    fn names_of_any_length_and_character_are_stored_and_listed_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 1 << 20).scoped("123456789012", "us-east-1");
        let group = format!("/aws/bedrock-agentcore/runtimes/{}-DEFAULT", "g".repeat(400));
        // Session ids of up to 256 characters, any of them allowed; CloudWatch's stream names.
        let streams = [
            format!("2026/12/02/[runtime-logs]{}", "a".repeat(256)),
            format!("2026/12/02/[runtime-logs]{}", "-".repeat(256)),
            format!("2026/12/02/[runtime-logs]{}", "ü".repeat(128)),
            "2026/12/02/[runtime-logs]short".to_string(),
        ];
        for (i, stream) in streams.iter().enumerate() {
            logs.append(&group, stream, &[ev(i as i64, stream)]).unwrap();
        }
        assert_eq!(logs.groups().iter().map(|g| g.name.clone()).collect::<Vec<_>>(), vec![group.clone()]);
        let mut want: Vec<String> = streams.to_vec();
        want.sort();
        assert_eq!(logs.streams(&group).into_iter().map(|s| s.name).collect::<Vec<_>>(), want);
        for stream in &streams {
            assert!(logs.stream_exists(&group, stream));
            let q = EventsQuery { offset: None, direction: Direction::Forward, start: None, end: None, limit: 10 };
            assert_eq!(logs.events(&group, stream, &q).unwrap().events[0].message, *stream);
        }
        // Short names keep their readable encoded form.
        assert!(component("2026/12/02/[runtime-logs]short").starts_with("2026%2F12"));
        logs.delete_group(&group);
        assert!(logs.groups().is_empty());
        assert_eq!(std::fs::read_dir(&logs.root).unwrap().count(), 0, "the group's name file goes with it");
    }

    #[test]
    fn the_last_events_are_read_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 1 << 30).scoped("123456789012", "us-east-1");
        let (group, stream) = ("/aws/bedrock-agentcore/runtimes/t-DEFAULT", "2026/12/02/[runtime-logs]s");
        assert!(logs.last_events(group, stream, 5).is_empty(), "no file yet");
        let events: Vec<LogEvent> =
            (0..5000).map(|i| ev(i, &format!("line {i} {}", "x".repeat(i as usize % 97)))).collect();
        logs.append(group, stream, &events).unwrap();
        for n in [0, 1, 7, 200, 4999, 5000, 6000] {
            let want: Vec<String> =
                events[events.len().saturating_sub(n)..].iter().map(|e| e.message.clone()).collect();
            let got: Vec<String> = logs.last_events(group, stream, n).into_iter().map(|e| e.message).collect();
            assert_eq!(got, want, "last {n}");
        }
    }

    #[test]
    fn append_list_page_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 1 << 20);
        let g = "/aws/bedrock-agentcore/runtimes/a-1-DEFAULT";
        logs.append(g, "2026/11/26/[runtime-logs]s1", &[ev(1, "starting"), ev(2, "ERROR boom"), ev(3, "ready")])
            .unwrap();
        logs.append(g, "2026/11/26/[runtime-logs]s2", &[ev(4, "other ERROR")]).unwrap();
        assert_eq!(logs.groups().iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), vec![g]);
        let streams = logs.streams(g);
        assert_eq!(streams.len(), 2);
        assert_eq!((streams[0].first_event, streams[0].last_event), (Some(1), Some(3)));

        let q = |offset, direction| EventsQuery { offset, direction, start: None, end: None, limit: 2 };
        let first = logs.events(g, &streams[0].name, &q(None, Direction::Forward)).unwrap();
        assert_eq!(first.events.iter().map(|e| e.timestamp).collect::<Vec<_>>(), vec![1, 2]);
        let second = logs.events(g, &streams[0].name, &q(Some(first.next_forward), Direction::Forward)).unwrap();
        assert_eq!(second.events.iter().map(|e| e.timestamp).collect::<Vec<_>>(), vec![3]);
        let back = logs.events(g, &streams[0].name, &q(None, Direction::Backward)).unwrap();
        assert_eq!(back.events.iter().map(|e| e.timestamp).collect::<Vec<_>>(), vec![2, 3]);

        let (hits, next) = logs.filter(g, &FilterQuery { pattern: Some("ERROR".into()), ..Default::default() }, 0, 1);
        assert_eq!((hits.len(), next), (1, Some(1)));
        let (hits, _) =
            logs.filter(g, &FilterQuery { pattern: Some("ERROR -other".into()), ..Default::default() }, 0, 10);
        assert_eq!(hits.iter().map(|h| h.event.timestamp).collect::<Vec<_>>(), vec![2]);
        let (hits, _) = logs.filter(g, &FilterQuery { start: Some(3), ..Default::default() }, 0, 10);
        assert_eq!(hits.len(), 2);
    }

    #[test]
    fn the_oldest_streams_go_when_a_group_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf(), 300);
        let g = "/g";
        logs.append(g, "old", &[ev(1, &"x".repeat(200))]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        logs.append(g, "new", &[ev(2, &"y".repeat(200))]).unwrap();
        let names: Vec<String> = logs.streams(g).into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["new".to_string()]);
    }

    #[test]
    fn a_group_written_before_a_restart_counts_towards_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        LogStore::new(dir.path().to_path_buf(), 400).append("/g", "old", &[ev(1, &"x".repeat(200))]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Each event is its text plus ~40 bytes of JSON. A new store (the next emulator) knows nothing of the group's size until it lists it.
        let logs = LogStore::new(dir.path().to_path_buf(), 400);
        logs.append("/g", "new", &[ev(2, &"y".repeat(50))]).unwrap();
        assert_eq!(logs.streams("/g").len(), 2, "under the cap: both kept");
        logs.append("/g", "new", &[ev(3, &"y".repeat(200))]).unwrap();
        let names: Vec<String> = logs.streams("/g").into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["new".to_string()]);
    }
}
