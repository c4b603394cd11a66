//! What `agentcore-local sessions` and the dashboard show: every live and recently ended session
//! with its state, age, idle time, invocations, CPU seconds and peak memory (from the sandbox's
//! cgroup) and what AgentCore would bill for it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::session::{Session, SessionKey, StartPhases};
use super::Sessions;
use crate::kernel::clock::now_ms;
use crate::sandbox::SandboxStats;
use crate::services::runtime::domain::resolve::InvocationTarget;

/// Published per-second prices (field-notes.md): CPU actually consumed, and memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub vcpu_hour_usd: f64,
    pub gb_hour_usd: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices { vcpu_hour_usd: 0.0895, gb_hour_usd: 0.00945 }
    }
}

impl Prices {
    /// CPU is billed for the seconds consumed (not while idle waiting); memory for the peak
    /// held over the session's life.
    pub fn cost(&self, cpu_seconds: f64, peak_memory_bytes: u64, lifetime_seconds: f64) -> f64 {
        let gb = peak_memory_bytes as f64 / 1e9;
        cpu_seconds / 3600.0 * self.vcpu_hour_usd + gb * lifetime_seconds / 3600.0 * self.gb_hour_usd
    }
}

/// Ended sessions remembered for the report.
pub const RECENT_SESSIONS: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionReport {
    pub account: String,
    pub region: String,
    pub runtime_id: String,
    pub runtime_arn: String,
    pub version: u32,
    pub endpoint: String,
    pub session_id: String,
    /// `starting`, `healthy`, `busy`, `stopping` or `ended`.
    pub state: String,
    pub ended_reason: Option<String>,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub age_seconds: f64,
    pub idle_seconds: f64,
    pub invocations: u64,
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
    pub peak_memory_bytes: u64,
    pub estimated_cost_usd: f64,
    /// Where the session's start spent its time (empty for sessions re-adopted after a restart).
    pub start_phases: StartPhases,
    /// Where the emulator reaches the session's agent (`host:port`): the container's own bridge
    /// address, or a port forwarded on this host. A request sent there skips the emulator.
    pub agent_address: Option<String>,
    /// CPU and memory over the session's life, oldest first (the dashboard's charts; left out of
    /// the JSON report, which stays one line per session's figures).
    #[serde(skip)]
    pub usage_history: Arc<[UsagePoint]>,
    #[serde(skip)]
    pub sandbox_id: String,
}

/// A warm-pool spare: a started, ready sandbox waiting for a version's next new session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpareReport {
    pub account: String,
    pub runtime_id: String,
    pub version: u32,
    /// When it answered its readiness probe.
    pub ready_at_ms: i64,
    /// Memory it held when it became ready (what the warm pool's budget counts).
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuntimeTotals {
    pub runtime_id: String,
    pub sessions: usize,
    pub live: usize,
    pub invocations: u64,
    pub cpu_seconds: f64,
    pub estimated_cost_usd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub sessions: Vec<SessionReport>,
    pub totals: Vec<RuntimeTotals>,
    /// Ready warm-pool spares (`--warm-pool`), newest first.
    pub spares: Vec<SpareReport>,
    pub prices: Prices,
}

fn live_state(session: &Session, in_flight: u32) -> &'static str {
    let busy = in_flight > 0 || session.last_ping().is_some_and(|p| p.status == "HealthyBusy");
    if busy {
        "busy"
    } else {
        "healthy"
    }
}

impl Sessions {
    fn describe(&self, session: &Session, stats: Option<SandboxStats>) -> SessionReport {
        let (idle, in_flight) = session.idle_state();
        let usage = session.record_usage(stats);
        let age = session.started_at.elapsed().as_secs_f64();
        SessionReport {
            account: session.target.account.clone(),
            region: session.target.region.clone(),
            runtime_id: session.key.runtime_id.clone(),
            runtime_arn: session.target.runtime_arn.clone(),
            version: session.target.version,
            endpoint: session.target.endpoint_name.clone(),
            session_id: session.key.session_id.clone(),
            state: live_state(session, in_flight).to_string(),
            ended_reason: None,
            started_at_ms: session.started_at_unix_ms,
            ended_at_ms: None,
            age_seconds: age,
            idle_seconds: idle.as_secs_f64(),
            invocations: session.invocations(),
            cpu_seconds: usage.cpu_ns as f64 / 1e9,
            memory_bytes: usage.memory_bytes,
            peak_memory_bytes: usage.memory_peak_bytes,
            estimated_cost_usd: self.config.prices.cost(usage.cpu_ns as f64 / 1e9, usage.memory_peak_bytes, age),
            start_phases: session.phases(),
            agent_address: session.agent_address().map(|a| a.to_string()),
            usage_history: session.usage_history(),
            sandbox_id: session.sandbox.id.clone(),
        }
    }

    fn recent(&self) -> parking_lot::MutexGuard<'_, VecDeque<SessionReport>> {
        self.recent.lock()
    }

    /// Newest first; the oldest beyond `RECENT_SESSIONS` are forgotten.
    fn remember(&self, report: SessionReport) {
        let mut recent = self.recent();
        recent.push_front(report);
        recent.truncate(RECENT_SESSIONS);
    }

    /// Record an ended session as `stopping` (its sandbox is being stopped), with final usage.
    pub(super) fn remember_ended(&self, session: &Arc<Session>, stats: Option<SandboxStats>) {
        let mut report = self.describe(session, stats);
        report.state = "stopping".into();
        report.ended_reason = session.ended().map(|r| r.describe());
        report.ended_at_ms = Some(now_ms());
        report.idle_seconds = 0.0;
        self.remember(report);
    }

    /// Record a session whose sandbox never became ready: it ended before it served anything.
    pub(super) fn remember_failed_start(
        &self,
        key: &SessionKey,
        target: &InvocationTarget,
        started_at_ms: i64,
        reason: String,
    ) {
        let mut report = Self::starting_report(key, target, started_at_ms, (now_ms() - started_at_ms) as f64 / 1e3);
        report.state = "ended".into();
        report.ended_reason = Some(format!("failed to start: {reason}"));
        report.ended_at_ms = Some(now_ms());
        self.remember(report);
    }

    /// A session with no sandbox ready yet (so no usage to show).
    fn starting_report(key: &SessionKey, target: &InvocationTarget, started_at_ms: i64, age: f64) -> SessionReport {
        SessionReport {
            account: target.account.clone(),
            region: target.region.clone(),
            runtime_id: key.runtime_id.clone(),
            runtime_arn: target.runtime_arn.clone(),
            version: target.version,
            endpoint: target.endpoint_name.clone(),
            session_id: key.session_id.clone(),
            state: "starting".into(),
            ended_reason: None,
            started_at_ms,
            ended_at_ms: None,
            age_seconds: age,
            idle_seconds: 0.0,
            invocations: 0,
            cpu_seconds: 0.0,
            memory_bytes: 0,
            peak_memory_bytes: 0,
            estimated_cost_usd: 0.0,
            start_phases: StartPhases::default(),
            agent_address: None,
            usage_history: Arc::from([]),
            sandbox_id: String::new(),
        }
    }

    /// Fold the final resource sample of an ended session (if its sandbox still gave one) into
    /// its record and history; also called when a sample that was under way as the session
    /// ended lands, so the record holds the newest usage the session has.
    pub(super) fn update_ended_usage(&self, session: &Session, stats: Option<SandboxStats>) {
        if let Some(stats) = stats {
            session.record_sample(stats);
        }
        let usage = session.record_usage(None);
        let mut recent = self.recent();
        if let Some(r) = recent.iter_mut().find(|r| r.sandbox_id == session.sandbox.id) {
            r.usage_history = session.usage_history();
            r.cpu_seconds = usage.cpu_ns as f64 / 1e9;
            r.memory_bytes = usage.memory_bytes;
            r.peak_memory_bytes = usage.memory_peak_bytes;
            r.estimated_cost_usd = self.config.prices.cost(r.cpu_seconds, r.peak_memory_bytes, r.age_seconds);
        }
    }

    /// The sandbox of an ended session is gone.
    pub(super) fn mark_removed(&self, sandbox_id: &str) {
        let mut recent = self.recent();
        if let Some(r) = recent.iter_mut().find(|r| r.sandbox_id == sandbox_id) {
            r.state = "ended".into();
        }
    }

    /// Live sessions (usage sampled now) and recent ones, newest first, with totals per runtime.
    pub async fn report(&self, account: Option<&str>) -> Report {
        let live = self.live_of(account);
        let samples = futures_util::future::join_all(live.iter().map(|s| self.backend.stats(&s.sandbox.id))).await;
        self.assemble(account, live, samples)
    }

    /// The report as of the supervisors' latest samples (one per ping interval): no sandbox is
    /// asked anything, so the dashboard's live updates can build it every second.
    pub fn recorded_report(&self, account: Option<&str>) -> Report {
        let live = self.live_of(account);
        let samples = vec![None; live.len()];
        self.assemble(account, live, samples)
    }

    fn live_of(&self, account: Option<&str>) -> Vec<Arc<Session>> {
        self.live().into_iter().filter(|s| account.is_none_or(|a| a == s.target.account)).collect()
    }

    fn assemble(&self, account: Option<&str>, live: Vec<Arc<Session>>, samples: Vec<Option<SandboxStats>>) -> Report {
        let mut sessions: Vec<SessionReport> =
            live.iter().zip(samples).map(|(s, stats)| self.describe(s, stats)).collect();
        sessions.extend(
            self.starting().into_iter().filter(|(_, target, _, _)| account.is_none_or(|a| a == target.account)).map(
                |(key, target, began, started_ms)| {
                    Self::starting_report(&key, &target, started_ms, began.elapsed().as_secs_f64())
                },
            ),
        );
        sessions.sort_by_key(|r| std::cmp::Reverse(r.started_at_ms));
        let recent: VecDeque<SessionReport> = self.recent().clone();
        sessions.extend(recent.into_iter().filter(|r| account.is_none_or(|a| a == r.account)));
        let mut totals: Vec<RuntimeTotals> = Vec::new();
        for s in &sessions {
            let t = match totals.iter_mut().find(|t| t.runtime_id == s.runtime_id) {
                Some(t) => t,
                None => {
                    totals.push(RuntimeTotals { runtime_id: s.runtime_id.clone(), ..Default::default() });
                    totals.last_mut().expect("just pushed")
                }
            };
            t.sessions += 1;
            t.live += usize::from(s.ended_at_ms.is_none());
            t.invocations += s.invocations;
            t.cpu_seconds += s.cpu_seconds;
            t.estimated_cost_usd += s.estimated_cost_usd;
        }
        let spares = self.spares().into_iter().filter(|s| account.is_none_or(|a| a == s.account)).collect();
        Report { sessions, totals, spares, prices: self.config.prices }
    }
}

/// Points kept of one session's CPU and memory history. A session samples its sandbox about once
/// per ping interval; once it has this many points, the oldest two neighbours of equal weight are
/// merged for each new one, so older stretches become coarser and the recent ones stay fine. Each
/// session (live, or among the `RECENT_SESSIONS` ended ones) so holds at most 120 points of 32
/// bytes, whatever its age: history memory grows with the session count only, never with time.
pub const USAGE_HISTORY_POINTS: usize = 120;

/// One point of a session's history: the samples of a stretch of its life, merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UsagePoint {
    /// When the stretch's last sample was taken (Unix ms); it began after the previous point's.
    pub at_ms: i64,
    /// CPU the sandbox had consumed at `at_ms`, in nanoseconds (a counter: rates come from the
    /// difference between points).
    pub cpu_ns: u64,
    /// The highest memory any sample of the stretch saw.
    pub memory_bytes: u64,
    /// Samples merged into this point (a power of two; never more than an older point's).
    pub samples: u32,
}

/// A session's bounded CPU and memory history (see `USAGE_HISTORY_POINTS`).
#[derive(Debug, Clone, Default)]
pub struct UsageHistory {
    points: Vec<UsagePoint>,
}

impl UsageHistory {
    pub fn push(&mut self, at_ms: i64, stats: SandboxStats) {
        if self.points.len() >= USAGE_HISTORY_POINTS {
            self.compact();
        }
        let cpu_ns = self.points.last().map_or(stats.cpu_ns, |p| p.cpu_ns.max(stats.cpu_ns));
        self.points.push(UsagePoint { at_ms, cpu_ns, memory_bytes: stats.memory_bytes, samples: 1 });
    }

    /// Merge the oldest neighbours of the smallest equal weight. Weights are powers of two that
    /// never grow towards the newest point, so such a pair exists whenever the history is full
    /// (120 points cannot hold 120 distinct powers of two below 2^32), and merging it keeps that
    /// order.
    fn compact(&mut self) {
        let pair = self
            .points
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0].samples == w[1].samples)
            .min_by_key(|(i, w)| (w[0].samples, *i))
            .map(|(i, _)| i);
        // Unreachable by the argument above; drop the oldest point rather than grow.
        let Some(i) = pair else {
            self.points.remove(0);
            return;
        };
        let later = self.points.remove(i + 1);
        let merged = &mut self.points[i];
        merged.at_ms = later.at_ms;
        merged.cpu_ns = later.cpu_ns;
        merged.memory_bytes = merged.memory_bytes.max(later.memory_bytes);
        merged.samples = merged.samples.saturating_add(later.samples);
    }

    /// Oldest first.
    pub fn points(&self) -> &[UsagePoint] {
        &self.points
    }
}

/// Usage seen so far: the latest sample, with the highest memory observed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory_bytes: u64,
    pub memory_peak_bytes: u64,
    pub sampled: Option<Instant>,
}

impl Usage {
    pub fn merge(&mut self, stats: SandboxStats) {
        self.cpu_ns = self.cpu_ns.max(stats.cpu_ns);
        self.memory_bytes = stats.memory_bytes;
        self.memory_peak_bytes = self.memory_peak_bytes.max(stats.memory_peak_bytes).max(stats.memory_bytes);
        self.sampled = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_follows_the_published_prices() {
        let p = Prices::default();
        // One vCPU-hour of CPU and 1 GB held for an hour.
        let c = p.cost(3600.0, 1_000_000_000, 3600.0);
        assert!((c - (0.0895 + 0.00945)).abs() < 1e-9, "{c}");
        assert_eq!(p.cost(0.0, 0, 100.0), 0.0);
    }

    #[test]
    fn history_stays_bounded_and_keeps_recent_points_finest() {
        let mut h = UsageHistory::default();
        let sample = |i: u64| SandboxStats { cpu_ns: i * 1_000, memory_bytes: i % 7, memory_peak_bytes: 0 };
        for i in 0..10_000u64 {
            h.push(i as i64, sample(i));
            assert!(h.points().len() <= USAGE_HISTORY_POINTS);
        }
        let points = h.points();
        assert_eq!(points.iter().map(|p| u64::from(p.samples)).sum::<u64>(), 10_000, "no sample is lost");
        assert!(points.windows(2).all(|w| w[0].samples >= w[1].samples), "older points are coarser");
        assert!(points.windows(2).all(|w| w[0].at_ms < w[1].at_ms && w[0].cpu_ns <= w[1].cpu_ns));
        assert_eq!(points.last().map(|p| (p.at_ms, p.samples)), Some((9_999, 1)), "the newest is a single sample");
        assert!(points.iter().all(|p| p.samples < 8 || p.memory_bytes == 6), "a merged point keeps the highest");
    }
}
