//! The dashboard's pictures, drawn on the server as plain HTML and inline SVG (no script): a
//! session's start phases as a proportional bar, and its CPU and memory over time as a line chart
//! or a table-sized sparkline.

use maud::{html, Markup};

use crate::sessions::report::UsagePoint;
use crate::sessions::StartPhases;

const MIB: f64 = 1024.0 * 1024.0;

/// `3.2 ms`, `412 ms`, `1.24 s`.
pub fn millis(ms: f64) -> String {
    match ms {
        m if m < 10.0 => format!("{m:.1} ms"),
        m if m < 1000.0 => format!("{m:.0} ms"),
        m => format!("{:.2} s", m / 1000.0),
    }
}

/// One segment of a start: its class, what it was, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub class: &'static str,
    pub label: &'static str,
    pub ms: f64,
}

/// `cold`, `warm` (given a warm-pool spare) or `unknown` (re-adopted after a restart, or still
/// starting), and the phases as consecutive segments. The report's phase times are counted from
/// the session's start; a segment is the time since the phase before it.
pub fn segments(p: &StartPhases) -> (&'static str, Vec<Segment>) {
    let marks: [(&'static str, &'static str, Option<f64>); 4] = if p.warm_spare {
        [
            ("warm", "warm spare claimed", p.agent_ready_ms),
            ("first-response", "first response", p.first_response_ms),
            ("", "", None),
            ("", "", None),
        ]
    } else {
        [
            ("created", "sandbox created", p.sandbox_created_ms),
            ("started", "sandbox started", p.sandbox_started_ms),
            ("ready", "agent ready", p.agent_ready_ms),
            ("first-response", "first response", p.first_response_ms),
        ]
    };
    let mut previous = 0.0;
    let mut out = Vec::new();
    for (class, label, at) in marks {
        if let Some(at) = at {
            out.push(Segment { class, label, ms: (at - previous).max(0.0) });
            previous = at;
        }
    }
    let kind = if p.warm_spare {
        "warm"
    } else if out.is_empty() {
        "unknown"
    } else {
        "cold"
    };
    (kind, out)
}

/// A session's start as a bar of proportional segments, each titled with its phase and time;
/// `detailed` also writes the times inside the segments and a legend below.
pub fn phase_bar(p: &StartPhases, detailed: bool) -> Markup {
    let (kind, segs) = segments(p);
    let total: f64 = segs.iter().map(|s| s.ms).sum();
    html! {
        div.phases.detailed[detailed] data-start=(kind) {
            span.kind.(kind) { (match kind { "warm" => "warm", "cold" => "cold", _ => "–" }) }
            @if segs.is_empty() {
                span.muted { "no start recorded" }
            } @else {
                span.bar title=(format!("start: {}", millis(total))) {
                    @for s in &segs {
                        span.seg.(s.class) style=(format!("flex-grow:{:.3}", s.ms.max(0.001)))
                            title=(format!("{}: {}", s.label, millis(s.ms))) {
                            @if detailed { (millis(s.ms)) }
                        }
                    }
                }
                span.total { (millis(total)) }
            }
        }
        @if detailed && !segs.is_empty() {
            ul.legend {
                @for s in &segs {
                    li { i.swatch.(s.class) {} (s.label) ": " b { (millis(s.ms)) } }
                }
            }
        }
    }
}

/// CPU use between consecutive samples, in percent of one vCPU, at each sample's time.
pub fn cpu_series(points: &[UsagePoint]) -> Vec<(i64, f64)> {
    points
        .windows(2)
        .filter(|w| w[1].at_ms > w[0].at_ms)
        .map(|w| {
            let cpu_ms = w[1].cpu_ns.saturating_sub(w[0].cpu_ns) as f64 / 1e6;
            (w[1].at_ms, 100.0 * cpu_ms / (w[1].at_ms - w[0].at_ms) as f64)
        })
        .collect()
}

/// Memory in MiB at each point (the highest of the samples it merged).
pub fn memory_series(points: &[UsagePoint]) -> Vec<(i64, f64)> {
    points.iter().map(|p| (p.at_ms, p.memory_bytes as f64 / MIB)).collect()
}

/// Where the points fall in a `width` × `height` box: time across, zero at the bottom, the
/// series' highest value near the top.
fn plot(series: &[(i64, f64)], width: f64, height: f64) -> (Vec<(f64, f64)>, f64) {
    let top = series.iter().map(|p| p.1).fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let (first, last) = (series.first().map_or(0, |p| p.0), series.last().map_or(0, |p| p.0));
    let span = (last - first).max(1) as f64;
    let xy = series
        .iter()
        .map(|(t, v)| ((t - first) as f64 / span * width, height - (v / top * height).clamp(0.0, height)))
        .collect();
    (xy, top)
}

fn points_attr(xy: &[(f64, f64)]) -> String {
    xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")
}

/// `2m 05s`, `1h 03m`.
fn span_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A labelled line chart of one series (`unit` after the values), `data-points` saying how many
/// points it drew.
pub fn line_chart(id: &str, title: &str, unit: &str, class: &str, series: &[(i64, f64)]) -> Markup {
    const W: f64 = 360.0;
    const H: f64 = 96.0;
    let (xy, top) = plot(series, W, H);
    let last = series.last().map(|p| p.1);
    let span = series.last().map_or(0, |p| p.0) - series.first().map_or(0, |p| p.0);
    let mut area = xy.clone();
    if let (Some(first), Some(end)) = (xy.first(), xy.last()) {
        area.push((end.0, H));
        area.push((first.0, H));
    }
    html! {
        figure.chart.(class) id=(id) data-points=(series.len()) {
            figcaption {
                b { (title) }
                @if let Some(v) = last { span.now { "now " (format!("{v:.1}")) " " (unit) } }
            }
            svg viewBox=(format!("-1 -4 {} {}", W + 2.0, H + 8.0)) preserveAspectRatio="none" role="img" {
                title { (title) ", " (series.len()) " points" }
                @for f in [0.25, 0.5, 0.75] {
                    line.grid x1="0" x2=(W) y1=(H * f) y2=(H * f) {}
                }
                line.axis x1="0" x2=(W) y1=(H) y2=(H) {}
                @if xy.len() > 1 {
                    polygon.area points=(points_attr(&area)) {}
                    polyline.line points=(points_attr(&xy)) {}
                } @else if let Some((x, y)) = xy.first() {
                    circle.dot cx=(x) cy=(y) r="3" {}
                }
            }
            div.scale {
                span { "0 – " (format!("{:.1}", if series.is_empty() { 0.0 } else { top / 1.15 })) " " (unit) }
                @if series.len() > 1 { span { "over " (span_text(span)) } } @else { span.muted { "collecting samples…" } }
            }
        }
    }
}

/// A table-sized line without labels; its title gives the latest value.
pub fn sparkline(class: &str, what: &str, unit: &str, series: &[(i64, f64)]) -> Markup {
    const W: f64 = 64.0;
    const H: f64 = 16.0;
    let (xy, _) = plot(series, W, H);
    let title = match series.last() {
        Some((_, v)) => format!("{what}: {v:.1} {unit} now ({} samples)", series.len()),
        None => format!("{what}: no samples yet"),
    };
    html! {
        svg.spark.(class) viewBox=(format!("-1 -1 {} {}", W + 2.0, H + 2.0)) width=(W) height=(H) role="img" {
            title { (title) }
            @if xy.len() > 1 {
                polyline points=(points_attr(&xy)) {}
            } @else {
                line x1="0" x2=(W) y1=(H) y2=(H) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_ms: i64, cpu_ms: u64, mib: u64) -> UsagePoint {
        UsagePoint { at_ms, cpu_ns: cpu_ms * 1_000_000, memory_bytes: mib << 20, samples: 1 }
    }

    #[test]
    fn a_cold_start_is_four_consecutive_segments() {
        let p = StartPhases {
            warm_spare: false,
            sandbox_created_ms: Some(40.0),
            sandbox_started_ms: Some(300.0),
            agent_ready_ms: Some(900.0),
            first_response_ms: Some(950.0),
        };
        let (kind, segs) = segments(&p);
        assert_eq!(kind, "cold");
        let got: Vec<(&str, f64)> = segs.iter().map(|s| (s.class, s.ms)).collect();
        assert_eq!(got, [("created", 40.0), ("started", 260.0), ("ready", 600.0), ("first-response", 50.0)]);
        let html = phase_bar(&p, true).into_string();
        assert!(html.contains("title=\"agent ready: 600 ms\"") && html.contains("data-start=\"cold\""), "{html}");
    }

    #[test]
    fn a_warm_start_says_so() {
        let p = StartPhases {
            warm_spare: true,
            agent_ready_ms: Some(2.5),
            first_response_ms: Some(12.5),
            ..Default::default()
        };
        let (kind, segs) = segments(&p);
        assert_eq!((kind, segs.len()), ("warm", 2));
        assert!(phase_bar(&p, false).into_string().contains(">warm<"));
        assert_eq!(segments(&StartPhases::default()).0, "unknown");
    }

    #[test]
    fn cpu_is_the_rate_between_samples_and_charts_draw_every_point() {
        let points = [point(0, 0, 10), point(1000, 500, 12), point(3000, 500, 11)];
        assert_eq!(cpu_series(&points), vec![(1000, 50.0), (3000, 0.0)]);
        let chart = line_chart("memory-chart", "Memory", "MiB", "mem", &memory_series(&points)).into_string();
        assert!(chart.contains("data-points=\"3\"") && chart.contains("<polyline"), "{chart}");
        assert!(chart.contains("over 3s"));
        let (xy, _) = plot(&memory_series(&points), 100.0, 10.0);
        assert_eq!((xy[0].0, xy[2].0), (0.0, 100.0), "time runs across the whole width");
        assert!(xy.iter().all(|(_, y)| (0.0..=10.0).contains(y)));
    }

    #[test]
    fn text_is_escaped() {
        let chart = line_chart("c", "<script>", "\"", "x", &[]).into_string();
        assert!(!chart.contains("<script>") && chart.contains("&lt;script&gt;"), "{chart}");
    }
}
