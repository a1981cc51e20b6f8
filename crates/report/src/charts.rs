//! The report's charts as inline SVG: the remediation funnel, open items by owner and the exposure
//! timeline. Geometry is computed here; one askama template writes every chart, escaping each label
//! and tooltip (owner names come from imported asset lists). No script, no external resource.

use askama::Template;
use bleedwatch_store::assess::State;
use bleedwatch_store::views::rfc3339_ms;
use serde::Serialize;

use crate::summary::OwnerOpenItems;
use crate::text::{owner_name, thousands};
use crate::timeline::TimelinePoint;

/// Chart width in SVG units; charts scale to their container.
const WIDTH: f64 = 460.0;
/// The timeline spans the page.
const TIMELINE_WIDTH: f64 = 900.0;
const TEXT: &str = "#1f2933";
const MUTED: &str = "#5f6b7a";
const GRID: &str = "#d9dee5";

/// The colour of each state, shared with the page's badges.
pub fn state_color(state: State) -> &'static str {
    match state {
        State::Vulnerable => "#c62828",
        State::Fixed => "#e8710a",
        State::Rekeyed => "#c99a06",
        State::Revoked => "#6a3fb5",
        State::NotifyReady => "#2e7d32",
        State::NeverVulnerable => "#7b8794",
        State::Unknown => "#9aa5b1",
    }
}

/// How the report names each state for people.
pub fn state_label(state: State) -> &'static str {
    match state {
        State::Vulnerable => "Vulnerable",
        State::Fixed => "Patched, old key",
        State::Rekeyed => "Re-keyed",
        State::Revoked => "Revoked, old key",
        State::NotifyReady => "Notify-ready",
        State::NeverVulnerable => "Not affected",
        State::Unknown => "No result",
    }
}

/// A step of the remediation funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FunnelStep {
    /// Seen vulnerable, or serving a key that leaked elsewhere.
    Exposed,
    Patched,
    Rekeyed,
    Revoked,
    NotifyReady,
}

impl FunnelStep {
    pub const ALL: [FunnelStep; 5] =
        [FunnelStep::Exposed, FunnelStep::Patched, FunnelStep::Rekeyed, FunnelStep::Revoked, FunnelStep::NotifyReady];

    pub fn label(self) -> &'static str {
        match self {
            FunnelStep::Exposed => "Exposed",
            FunnelStep::Patched => "Patched",
            FunnelStep::Rekeyed => "Re-keyed",
            FunnelStep::Revoked => "Certificates revoked",
            FunnelStep::NotifyReady => "Ready to notify users",
        }
    }

    /// The label beside the bar (the chart's label column is narrow).
    pub fn short_label(self) -> &'static str {
        match self {
            FunnelStep::Revoked => "Revoked",
            FunnelStep::NotifyReady => "Ready to notify",
            other => other.label(),
        }
    }

    fn color(self) -> &'static str {
        match self {
            FunnelStep::Exposed => state_color(State::Vulnerable),
            FunnelStep::Patched => state_color(State::Fixed),
            FunnelStep::Rekeyed => state_color(State::Rekeyed),
            FunnelStep::Revoked => state_color(State::Revoked),
            FunnelStep::NotifyReady => state_color(State::NotifyReady),
        }
    }
}

/// How many endpoints reached a step, and how many of them face the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FunnelStage {
    pub step: FunnelStep,
    pub total: u64,
    pub internet_facing: u64,
}

#[derive(Debug, Clone)]
struct Rect {
    x: String,
    y: String,
    width: String,
    height: String,
    fill: &'static str,
    opacity: &'static str,
    tooltip: String,
}

#[derive(Debug, Clone)]
struct Label {
    x: String,
    y: String,
    anchor: &'static str,
    size: &'static str,
    weight: &'static str,
    fill: &'static str,
    text: String,
}

#[derive(Debug, Clone)]
struct Polygon {
    points: String,
    fill: &'static str,
    tooltip: String,
}

#[derive(Debug, Clone)]
struct Line {
    x1: String,
    y1: String,
    x2: String,
    y2: String,
    stroke: &'static str,
}

/// Every chart: shapes drawn in order (lines, polygons, rectangles, then labels on top).
#[derive(Template)]
#[template(path = "chart.svg", escape = "html")]
struct ChartSvg<'a> {
    id: &'a str,
    title: &'a str,
    description: String,
    width: String,
    height: String,
    lines: Vec<Line>,
    polygons: Vec<Polygon>,
    rects: Vec<Rect>,
    labels: Vec<Label>,
}

/// SVG coordinates with one decimal; non-finite values (never expected) become 0.
fn px(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.1}")
    } else {
        "0".to_owned()
    }
}

fn label(x: f64, y: f64, anchor: &'static str, text: impl Into<String>) -> Label {
    Label { x: px(x), y: px(y), anchor, size: "12", weight: "400", fill: TEXT, text: text.into() }
}

fn rect(x: f64, y: f64, width: f64, height: f64, fill: &'static str, tooltip: String) -> Rect {
    Rect { x: px(x), y: px(y), width: px(width.max(0.0)), height: px(height.max(0.0)), fill, opacity: "1", tooltip }
}

/// `part / whole` as a share of `full` units (0 when `whole` is 0), computed in f64 so that counts
/// near `u64::MAX` neither overflow nor lose their proportion.
fn share(part: u64, whole: u64, full: f64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * full).clamp(0.0, full)
    }
}

/// A percentage that never rounds up to 100 % (or down to 0 %) when it is not exactly that.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    if part >= whole {
        return "100%".to_owned();
    }
    if part == 0 {
        return "0%".to_owned();
    }
    let value = (part as f64 / whole as f64 * 100.0).floor().clamp(1.0, 99.0);
    format!("{value:.0}%")
}

/// Cuts a label to `max` characters with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max.saturating_sub(1)).collect::<String>())
    }
}

fn render(chart: ChartSvg<'_>) -> String {
    // Rendering into a String only fails if a Display impl fails; ours cannot.
    chart.render().unwrap_or_default()
}

fn empty_chart(id: &str, title: &str, message: &str) -> String {
    render(ChartSvg {
        id,
        title,
        description: message.to_owned(),
        width: px(WIDTH),
        height: px(60.0),
        lines: Vec::new(),
        polygons: Vec::new(),
        rects: vec![Rect { opacity: "1", ..rect(0.5, 0.5, WIDTH - 1.0, 59.0, "#f4f6f8", String::new()) }],
        labels: vec![Label { fill: MUTED, ..label(WIDTH / 2.0, 34.0, "middle", message) }],
    })
}

/// Right edges of the number columns beside the bars (funnel: count, share, internet-facing;
/// owners: open, internet-facing).
const COLUMN_RIGHT: [f64; 3] = [352.0, 402.0, WIDTH - 4.0];

fn column_header(x: f64, text: &str) -> Label {
    Label { size: "10", fill: MUTED, weight: "600", ..label(x, 14.0, "end", text) }
}

fn number(x: f64, y: f64, text: String, weight: &'static str) -> Label {
    Label { weight, ..label(x, y, "end", text) }
}

/// The remediation funnel: one bar per step, internet-facing part solid and internal part light,
/// then the count, its share of the exposed endpoints and how many face the internet. Element id
/// `chart-funnel`.
pub fn funnel_svg(stages: &[FunnelStage]) -> String {
    const ID: &str = "chart-funnel";
    const TITLE: &str = "Remediation funnel";
    let scale = stages.iter().map(|s| s.total).max().unwrap_or(0);
    if scale == 0 {
        return empty_chart(ID, TITLE, "No endpoint was exposed");
    }
    let exposed = stages.first().map_or(0, |s| s.total);
    let (label_right, bar_left, bar_width, row_height, bar_height, top) = (128.0, 136.0, 160.0, 30.0, 18.0, 26.0);
    let [count_right, share_right, internet_right] = COLUMN_RIGHT;
    let mut rects = vec![
        rect(bar_left, 5.0, 10.0, 10.0, TEXT, String::new()),
        Rect { opacity: "0.35", ..rect(bar_left + 84.0, 5.0, 10.0, 10.0, TEXT, String::new()) },
    ];
    let mut labels = vec![
        Label { size: "10", fill: MUTED, ..label(bar_left + 13.0, 14.0, "start", "internet") },
        Label { size: "10", fill: MUTED, ..label(bar_left + 97.0, 14.0, "start", "internal") },
        column_header(count_right, "endpoints"),
        column_header(share_right, "share"),
        column_header(internet_right, "internet"),
    ];
    for (index, stage) in stages.iter().enumerate() {
        let y = top + index as f64 * row_height;
        let text_y = y + 13.0;
        let internet = stage.internet_facing.min(stage.total);
        let internal = stage.total - internet;
        let internet_width = share(internet, scale, bar_width);
        let internal_width = share(internal, scale, bar_width).min(bar_width - internet_width);
        let tooltip = format!(
            "{}: {} endpoints, {} internet-facing, {} internal",
            stage.step.label(),
            thousands(stage.total),
            thousands(internet),
            thousands(internal)
        );
        // A faint track shows the full scale behind each bar.
        rects.push(rect(bar_left, y, bar_width, bar_height, "#eef1f4", String::new()));
        rects.push(rect(bar_left, y, internet_width, bar_height, stage.step.color(), tooltip.clone()));
        rects.push(Rect {
            opacity: "0.4",
            ..rect(bar_left + internet_width, y, internal_width, bar_height, stage.step.color(), tooltip)
        });
        labels.push(Label { weight: "600", ..label(label_right, text_y, "end", stage.step.short_label()) });
        labels.push(number(count_right, text_y, thousands(stage.total), "700"));
        labels.push(number(share_right, text_y, if index == 0 { "–".to_owned() } else { percent(stage.total, exposed) }, "400"));
        labels.push(number(internet_right, text_y, thousands(internet), "400"));
    }
    let height = top + stages.len() as f64 * row_height - 6.0;
    render(ChartSvg {
        id: ID,
        title: TITLE,
        description: stages
            .iter()
            .map(|s| format!("{}: {} ({} internet-facing)", s.step.label(), thousands(s.total), thousands(s.internet_facing)))
            .collect::<Vec<_>>()
            .join("; "),
        width: px(WIDTH),
        height: px(height),
        lines: Vec::new(),
        polygons: Vec::new(),
        rects,
        labels,
    })
}

/// At most this many owner bars; the rest are summed into one.
pub const MAX_OWNER_BARS: usize = 10;

/// Open endpoints per owner, stacked by state, then the open and internet-facing open counts; most
/// urgent owner first. Element id `chart-owners`.
pub fn owners_svg(owners: &[OwnerOpenItems]) -> String {
    const ID: &str = "chart-owners";
    const TITLE: &str = "Open items by owner";
    let mut rows: Vec<(String, String, OwnerOpenItems)> = owners
        .iter()
        .filter(|o| o.open() > 0)
        .map(|o| (shorten(owner_name(&o.owner), 19), owner_name(&o.owner).to_owned(), o.clone()))
        .collect();
    if rows.is_empty() {
        return empty_chart(ID, TITLE, "No open items");
    }
    if rows.len() > MAX_OWNER_BARS {
        let rest = rows.split_off(MAX_OWNER_BARS - 1);
        let mut others = OwnerOpenItems::default();
        for (_, _, owner) in &rest {
            others.vulnerable = others.vulnerable.saturating_add(owner.vulnerable);
            others.fixed = others.fixed.saturating_add(owner.fixed);
            others.rekeyed = others.rekeyed.saturating_add(owner.rekeyed);
            others.revoked = others.revoked.saturating_add(owner.revoked);
            others.internet_facing_open = others.internet_facing_open.saturating_add(owner.internet_facing_open);
        }
        let name = format!("{} other owners", rest.len());
        rows.push((name.clone(), name, others));
    }
    let scale = rows.iter().map(|(_, _, o)| o.open()).max().unwrap_or(0);
    let (label_right, bar_left, bar_width, row_height, bar_height, top) = (128.0, 136.0, 160.0, 24.0, 15.0, 44.0);
    let [_, open_right, internet_right] = COLUMN_RIGHT;
    let mut rects = Vec::new();
    let mut labels = vec![column_header(open_right, "open"), column_header(internet_right, "internet")];
    // The legend on two rows above the bars.
    for (index, state) in [State::Vulnerable, State::Fixed, State::Rekeyed, State::Revoked].into_iter().enumerate() {
        let (lx, ly) = (bar_left + (index % 2) as f64 * 84.0, 5.0 + (index / 2) as f64 * 15.0);
        rects.push(rect(lx, ly, 10.0, 10.0, state_color(state), String::new()));
        labels.push(Label { size: "10", fill: MUTED, ..label(lx + 13.0, ly + 9.0, "start", state_label(state)) });
    }
    for (index, (short, full, owner)) in rows.iter().enumerate() {
        let y = top + index as f64 * row_height;
        let text_y = y + 11.5;
        let mut x = bar_left;
        for (state, count) in owner.by_state() {
            if count == 0 {
                continue;
            }
            let width = share(count, scale, bar_width).min(bar_left + bar_width - x);
            rects.push(rect(
                x,
                y,
                width,
                bar_height,
                state_color(state),
                format!("{full}: {} {}", thousands(count), state_label(state)),
            ));
            x += width;
        }
        labels.push(label(label_right, text_y, "end", short.clone()));
        labels.push(number(open_right, text_y, thousands(owner.open()), "700"));
        labels.push(number(internet_right, text_y, thousands(owner.internet_facing_open), "400"));
    }
    let height = top + rows.len() as f64 * row_height - 4.0;
    render(ChartSvg {
        id: ID,
        title: TITLE,
        description: rows
            .iter()
            .map(|(_, full, o)| {
                format!("{full}: {} open ({} internet-facing)", thousands(o.open()), thousands(o.internet_facing_open))
            })
            .collect::<Vec<_>>()
            .join("; "),
        width: px(WIDTH),
        height: px(height),
        lines: Vec::new(),
        polygons: Vec::new(),
        rects,
        labels,
    })
}

/// The states the timeline stacks, bottom to top (endpoints not affected are left out: they would
/// flatten the response).
pub const TIMELINE_STATES: [State; 5] = [State::Vulnerable, State::Fixed, State::Revoked, State::Rekeyed, State::NotifyReady];

/// Round steps (1, 2, 5 × 10^k, at least 1) from 0 to at least `max`.
fn axis_ticks(max: f64, target: usize) -> Vec<f64> {
    if !max.is_finite() || max <= 0.0 {
        return vec![0.0, 1.0];
    }
    let raw = max / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude).max(1.0);
    let count = (max / step).ceil().clamp(1.0, 20.0) as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// Tick values: exact below ten thousand, then k, M, B, T, then powers of ten.
fn compact(value: f64) -> String {
    let value = value.max(0.0);
    match value {
        v if v < 10_000.0 => format!("{v:.0}"),
        v if v < 1e6 => format!("{:.0}k", v / 1e3),
        v if v < 1e9 => format!("{:.0}M", v / 1e6),
        v if v < 1e12 => format!("{:.0}B", v / 1e9),
        v if v < 1e15 => format!("{:.0}T", v / 1e12),
        v => format!("{v:.0e}"),
    }
}

/// How precise the time axis is: days over long spans, minutes within two days, seconds within
/// an hour (a demo or a quick rescan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AxisPrecision {
    Day,
    Minute,
    Second,
}

impl AxisPrecision {
    fn for_span(span_ms: i64) -> AxisPrecision {
        match span_ms {
            s if s >= 2 * 24 * 3600 * 1000 => AxisPrecision::Day,
            s if s >= 3600 * 1000 => AxisPrecision::Minute,
            _ => AxisPrecision::Second,
        }
    }
}

/// A time axis label: `2026-11-28`, `11-28 18:39` or `18:39:14`.
fn axis_date(ms: i64, precision: AxisPrecision) -> String {
    let text = rfc3339_ms(ms);
    let part = |range: std::ops::Range<usize>| text.get(range).map(str::to_owned);
    let label = match precision {
        AxisPrecision::Day => part(0..10),
        AxisPrecision::Minute => part(5..10).zip(part(11..16)).map(|(day, time)| format!("{day} {time}")),
        AxisPrecision::Second => part(11..19),
    };
    // Out-of-range times are written as numbers by rfc3339_ms.
    label.filter(|_| text.get(10..11) == Some("T")).unwrap_or(text)
}

/// Up to eight date labels spread over the points, the first and the latest always shown, none
/// overlapping: (x, text-anchor, text).
fn axis_labels(
    points: &[TimelinePoint],
    x: &dyn Fn(usize, i64) -> f64,
    precision: AxisPrecision,
) -> Vec<(f64, &'static str, String)> {
    const GAP: f64 = 10.0;
    let Some(last_index) = points.len().checked_sub(1) else { return Vec::new() };
    let wanted = points.len().min(8);
    let mut indices: Vec<usize> = (0..wanted).map(|k| if wanted > 1 { k * last_index / (wanted - 1) } else { 0 }).collect();
    indices.dedup();
    let mut kept: Vec<(f64, f64, f64, &'static str, String)> = Vec::new();
    for index in indices {
        let Some(point) = points.get(index) else { continue };
        let text = axis_date(point.at_ms, precision);
        // DejaVu Sans at 11 units is about 6.2 units per character.
        let width = text.chars().count() as f64 * 6.2;
        let lx = x(index, point.at_ms);
        let (anchor, low, high) = match (index == 0, index == last_index) {
            (true, true) => ("middle", lx - width / 2.0, lx + width / 2.0),
            (true, false) => ("start", lx, lx + width),
            (false, true) => ("end", lx - width, lx),
            (false, false) => ("middle", lx - width / 2.0, lx + width / 2.0),
        };
        let is_latest = index == last_index;
        // The latest point wins over earlier labels it would overlap.
        while is_latest && kept.len() > 1 && kept.last().is_some_and(|(_, _, high_before, _, _)| high_before + GAP > low) {
            kept.pop();
        }
        if kept.last().is_some_and(|(_, _, high_before, _, _)| high_before + GAP > low) {
            continue;
        }
        kept.push((lx, low, high, anchor, text));
    }
    kept.into_iter().map(|(lx, _, _, anchor, text)| (lx, anchor, text)).collect()
}

/// Affected endpoints per state over time, as stacked areas (a column when there is one point).
/// Element id `chart-timeline`.
pub fn timeline_svg(points: &[TimelinePoint]) -> String {
    const ID: &str = "chart-timeline";
    const TITLE: &str = "Exposure timeline";
    let stacks: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            let mut total = 0.0;
            TIMELINE_STATES
                .iter()
                .map(|state| {
                    total += p.count(*state) as f64;
                    total
                })
                .collect()
        })
        .collect();
    if points.is_empty() {
        return empty_chart(ID, TITLE, "No scan recorded yet");
    }
    let max = stacks.iter().filter_map(|s| s.last().copied()).fold(0.0, f64::max);
    let (left, right, top, bottom, height) = (52.0, TIMELINE_WIDTH - 14.0, 12.0, 182.0, 236.0);
    let ticks = axis_ticks(max, 4);
    let y_max = ticks.last().copied().unwrap_or(1.0).max(1.0);
    let y = |value: f64| bottom - (value / y_max).clamp(0.0, 1.0) * (bottom - top);
    let first = points.first().map_or(0, |p| p.at_ms);
    let last = points.last().map_or(0, |p| p.at_ms);
    let span = last.saturating_sub(first);
    let x = |index: usize, at: i64| -> f64 {
        if span > 0 {
            left + (at.saturating_sub(first) as f64 / span as f64) * (right - left)
        } else if points.len() > 1 {
            left + index as f64 / (points.len() - 1) as f64 * (right - left)
        } else {
            (left + right) / 2.0
        }
    };

    let mut lines = Vec::new();
    let mut labels = Vec::new();
    for tick in &ticks {
        let ty = y(*tick);
        lines.push(Line { x1: px(left), y1: px(ty), x2: px(right), y2: px(ty), stroke: GRID });
        labels.push(Label { size: "11", fill: MUTED, ..label(left - 6.0, ty + 4.0, "end", compact(*tick)) });
    }
    let mut polygons = Vec::new();
    let mut rects = Vec::new();
    for (layer, state) in TIMELINE_STATES.iter().enumerate() {
        if points.iter().all(|p| p.count(*state) == 0) {
            continue;
        }
        let upper = |i: usize| stacks.get(i).and_then(|s| s.get(layer)).copied().unwrap_or(0.0);
        let lower =
            |i: usize| if layer == 0 { 0.0 } else { stacks.get(i).and_then(|s| s.get(layer - 1)).copied().unwrap_or(0.0) };
        let tooltip = format!("{}: {} now", state_label(*state), thousands(points.last().map_or(0, |p| p.count(*state))));
        if points.len() == 1 {
            let column = 48.0;
            let cx = x(0, first);
            rects.push(rect(cx - column / 2.0, y(upper(0)), column, y(lower(0)) - y(upper(0)), state_color(*state), tooltip));
            continue;
        }
        let mut outline: Vec<String> =
            points.iter().enumerate().map(|(i, p)| format!("{},{}", px(x(i, p.at_ms)), px(y(upper(i))))).collect();
        outline.extend(points.iter().enumerate().rev().map(|(i, p)| format!("{},{}", px(x(i, p.at_ms)), px(y(lower(i))))));
        polygons.push(Polygon { points: outline.join(" "), fill: state_color(*state), tooltip });
    }
    lines.push(Line { x1: px(left), y1: px(bottom), x2: px(right), y2: px(bottom), stroke: MUTED });

    for (lx, anchor, text) in axis_labels(points, &x, AxisPrecision::for_span(span)) {
        lines.push(Line { x1: px(lx), y1: px(bottom), x2: px(lx), y2: px(bottom + 4.0), stroke: MUTED });
        labels.push(Label { size: "11", fill: MUTED, ..label(lx, bottom + 17.0, anchor, text) });
    }
    let mut legend_x = left;
    for state in TIMELINE_STATES {
        rects.push(rect(legend_x, height - 15.0, 10.0, 10.0, state_color(state), String::new()));
        labels.push(Label { size: "11", fill: MUTED, ..label(legend_x + 14.0, height - 6.0, "start", state_label(state)) });
        legend_x += 14.0 + state_label(state).chars().count() as f64 * 6.2 + 16.0;
    }
    let description = points
        .last()
        .map(|p| {
            let parts: Vec<String> = TIMELINE_STATES
                .iter()
                .map(|s| format!("{} {}", thousands(p.count(*s)), state_label(*s).to_lowercase()))
                .collect();
            format!(
                "{} points from {} to {}; now: {}",
                points.len(),
                axis_date(first, AxisPrecision::Day),
                axis_date(last, AxisPrecision::Day),
                parts.join(", ")
            )
        })
        .unwrap_or_default();
    render(ChartSvg {
        id: ID,
        title: TITLE,
        description,
        width: px(TIMELINE_WIDTH),
        height: px(height),
        lines,
        polygons,
        rects,
        labels,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every chart must be well-formed-ish SVG with finite coordinates.
    fn check(svg: &str, id: &str) {
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains(&format!("id=\"{id}\"")), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        for bad in ["NaN", "inf", "<script", "http"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
        // No negative sizes.
        assert!(!svg.contains("width=\"-") && !svg.contains("height=\"-"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
    }

    fn stage(step: FunnelStep, total: u64, internet_facing: u64) -> FunnelStage {
        FunnelStage { step, total, internet_facing }
    }

    #[test]
    fn funnel_empty_one_many_huge() {
        let empty = funnel_svg(&[]);
        check(&empty, "chart-funnel");
        assert!(empty.contains("No endpoint was exposed"));
        let zeros: Vec<FunnelStage> = FunnelStep::ALL.iter().map(|s| stage(*s, 0, 0)).collect();
        assert!(funnel_svg(&zeros).contains("No endpoint was exposed"));

        let one = funnel_svg(&[stage(FunnelStep::Exposed, 1, 1)]);
        check(&one, "chart-funnel");
        assert!(one.contains(">Exposed</text>"), "{one}");
        assert_eq!(one.matches(">1</text>").count(), 2, "count and internet-facing: {one}");

        let many: Vec<FunnelStage> =
            FunnelStep::ALL.iter().enumerate().map(|(i, s)| stage(*s, 1000 - i as u64 * 200, 100)).collect();
        let svg = funnel_svg(&many);
        check(&svg, "chart-funnel");
        assert!(svg.contains(">Ready to notify</text>") && svg.contains("Ready to notify users: 200 endpoints"), "{svg}");
        assert!(svg.contains(">200</text>") && svg.contains(">20%</text>") && svg.contains(">100</text>"), "{svg}");
        // The exposed bar fills the track: 160 units split into internet and internal parts.
        assert!(svg.contains("width=\"16.0\"") && svg.contains("width=\"144.0\""), "{svg}");

        let huge = funnel_svg(&[stage(FunnelStep::Exposed, u64::MAX, u64::MAX), stage(FunnelStep::Patched, u64::MAX - 1, 7)]);
        check(&huge, "chart-funnel");
        assert!(huge.contains("18,446,744,073,709,551,615"), "{huge}");
        assert!(huge.contains(">99%</text>"), "never rounds up to 100%: {huge}");
        // More internet-facing than total (corrupt input) is clamped, not drawn past the track.
        check(&funnel_svg(&[stage(FunnelStep::Exposed, 3, 9)]), "chart-funnel");
    }

    fn owner(name: &str, vulnerable: u64, fixed: u64) -> OwnerOpenItems {
        OwnerOpenItems { owner: name.into(), vulnerable, fixed, internet_facing_open: vulnerable, ..Default::default() }
    }

    #[test]
    fn owners_empty_one_many_huge() {
        let empty = owners_svg(&[]);
        check(&empty, "chart-owners");
        assert!(empty.contains("No open items"));
        assert!(owners_svg(&[owner("idle", 0, 0)]).contains("No open items"));

        let one = owners_svg(&[owner("", 2, 1)]);
        check(&one, "chart-owners");
        assert!(one.contains(">(no owner)</text>"), "{one}");
        assert!(one.contains(">3</text>") && one.contains(">2</text>"), "{one}");

        let many: Vec<OwnerOpenItems> = (0..25).map(|i| owner(&format!("team-{i:02}"), 25 - i, 1)).collect();
        let svg = owners_svg(&many);
        check(&svg, "chart-owners");
        assert!(svg.contains(">team-00</text>") && svg.contains(">team-08</text>"));
        assert!(!svg.contains(">team-09</text>"), "the tenth bar sums the rest");
        assert!(svg.contains(">16 other owners</text>"), "{svg}");

        let huge = owners_svg(&[owner("big", u64::MAX, u64::MAX), owner("small", 1, 0)]);
        check(&huge, "chart-owners");
        assert!(huge.contains(">18,446,744,073,709,551,615</text>"), "saturates: {huge}");
    }

    #[test]
    fn owner_names_are_escaped_and_shortened() {
        let svg = owners_svg(&[owner("<script>alert(1)</script> & \"team\"", 1, 0)]);
        check(&svg, "chart-owners");
        // askama writes numeric character references.
        assert!(svg.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;team&#34;: 1 Vulnerable"), "{svg}");
        assert!(svg.contains(">&#60;script&#62;alert(1)&#60;/…</text>"), "{svg}");
    }

    fn point(at_ms: i64, counts: &[(State, u64)]) -> TimelinePoint {
        TimelinePoint { at_ms, counts: counts.iter().copied().collect::<BTreeMap<_, _>>() }
    }

    #[test]
    fn timeline_empty_one_many_huge() {
        let empty = timeline_svg(&[]);
        check(&empty, "chart-timeline");
        assert!(empty.contains("No scan recorded yet"));

        let one = timeline_svg(&[point(1_795_891_154_250, &[(State::Vulnerable, 3)])]);
        check(&one, "chart-timeline");
        assert!(one.contains("<rect") && !one.contains("<polygon"), "{one}");
        assert!(one.contains(">18:39:14</text>"), "a single point: span 0, to the second: {one}");

        let day = 24 * 3600 * 1000;
        let many: Vec<TimelinePoint> = (0..40)
            .map(|i| {
                let i = i as u64;
                point(
                    1_795_891_154_250 + i as i64 * day,
                    &[(State::Vulnerable, 40 - i), (State::NotifyReady, i), (State::NeverVulnerable, 99)],
                )
            })
            .collect();
        let svg = timeline_svg(&many);
        check(&svg, "chart-timeline");
        assert_eq!(svg.matches("<polygon").count(), 2, "only states that occur are drawn");
        assert!(svg.contains(">2026-11-28</text>"), "{svg}");
        assert!(svg.matches("</text>").count() <= 8 + 5 + 10, "labels stay few: {svg}");
        assert!(svg.contains(">2027-01-06</text>"), "the latest point is labelled: {svg}");
        assert!(svg.contains(">40</text>"), "axis reaches the maximum: {svg}");

        let same_time = timeline_svg(&[point(5, &[(State::Fixed, 1)]), point(5, &[(State::Fixed, 2)])]);
        check(&same_time, "chart-timeline");

        let huge = timeline_svg(&[
            point(0, &[(State::Vulnerable, u64::MAX), (State::Fixed, u64::MAX)]),
            point(day, &[(State::NotifyReady, u64::MAX)]),
        ]);
        check(&huge, "chart-timeline");
        assert!(huge.contains(">4e19</text>"), "{huge}");
    }

    #[test]
    fn axis_labels_never_overlap_and_keep_the_latest() {
        let day = 24 * 3600 * 1000;
        // Irregular scans: three close together at the end.
        let times = [0, 10 * day, 20 * day, 28 * day, 29 * day, 30 * day];
        let points: Vec<TimelinePoint> = times.iter().map(|t| point(*t, &[(State::Vulnerable, 1)])).collect();
        let x = |_: usize, at: i64| 52.0 + at as f64 / (30 * day) as f64 * 834.0;
        let labels = axis_labels(&points, &x, AxisPrecision::Day);
        let texts: Vec<&str> = labels.iter().map(|(_, _, t)| t.as_str()).collect();
        assert_eq!(texts.first(), Some(&"1970-01-01"));
        assert_eq!(texts.last(), Some(&"1970-01-31"));
        assert!(!texts.contains(&"1970-01-30"), "{texts:?}");
        let extents: Vec<(f64, f64)> = labels
            .iter()
            .map(|(lx, anchor, text)| {
                let width = text.chars().count() as f64 * 6.2;
                match *anchor {
                    "start" => (*lx, lx + width),
                    "end" => (lx - width, *lx),
                    _ => (lx - width / 2.0, lx + width / 2.0),
                }
            })
            .collect();
        assert!(extents.windows(2).all(|w| w[0].1 < w[1].0), "{labels:?}");
        assert!(axis_labels(&[], &x, AxisPrecision::Day).is_empty());
        assert_eq!(axis_labels(&points[..1], &x, AxisPrecision::Minute)[0].1, "middle");
        assert_eq!(axis_date(1_795_891_154_250, AxisPrecision::Day), "2026-11-28");
        assert_eq!(axis_date(1_795_891_154_250, AxisPrecision::Minute), "11-28 18:39");
        assert_eq!(axis_date(1_795_891_154_250, AxisPrecision::Second), "18:39:14");
        assert_eq!(axis_date(i64::MAX, AxisPrecision::Second), i64::MAX.to_string());
        assert_eq!(AxisPrecision::for_span(5_000), AxisPrecision::Second);
    }

    #[test]
    fn ticks_and_numbers() {
        assert_eq!(axis_ticks(0.0, 4), [0.0, 1.0]);
        assert_eq!(axis_ticks(1.0, 4), [0.0, 1.0]);
        assert_eq!(axis_ticks(7.0, 4), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(axis_ticks(100.0, 4), [0.0, 50.0, 100.0]);
        assert_eq!(axis_ticks(f64::NAN, 4), [0.0, 1.0]);
        assert!(axis_ticks(1e300, 4).iter().all(|t| t.is_finite()));
        assert_eq!(compact(12_345.0), "12k");
        assert_eq!(compact(9_999.0), "9999");
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(0, 0), "–");
        assert_eq!(percent(1, 1000), "1%");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
