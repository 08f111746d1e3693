//! The console's overview (DESIGN §17; `read`, `manage` or `admin`): the namespace's calls,
//! errors, latency and cold starts over the last hour, 24 hours or 7 days, as charts drawn
//! here in SVG from the rollups of its invocation records (`store::overview`; no Prometheus
//! needed), with their totals, and every bucket's numbers in a visually hidden table for
//! screen readers.
//!
//! No inline style (the CSP forbids it): SVG presentation attributes draw and the console's
//! stylesheet colours by class. A chart keeps its shape as it scales to the page's width
//! (`viewBox`, width 100%); its axis labels are text of the page around it, not of the
//! drawing, so they read at 390 px as at 1280 px.

use super::pages::{self, Session, ms};
use super::{READERS, page_of, session_with, unavailable};
use crate::http::state::AppState;
use crate::store::{self, CallStats, Overview, OverviewRange};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

/// A chart's drawing box (its `viewBox`), and where its plot's top and baseline are.
const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 120.0;
const TOP: f64 = 4.0;
const BASE: f64 = 118.0;

#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    /// `1h`, `24h` or `7d`; anything else (or nothing) is 24h.
    range: Option<String>,
}

pub async fn get_overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let range = OverviewRange::from_param(query.range.as_deref());
    let path = format!("/console/overview?range={}", range.as_str());
    let session = match session_with(&state, &headers, &path, READERS, "The overview").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let namespace = &session.principal.namespace;
    match store::overview(&state.db, namespace, range, Utc::now()).await {
        Ok(overview) => {
            page(&page_of(&session.principal, &session.csrf_token), &overview).into_response()
        }
        Err(error) => unavailable(error),
    }
}

/// What a range's links and sentences call it.
fn range_title(range: OverviewRange) -> &'static str {
    match range {
        OverviewRange::Hour => "Last hour",
        OverviewRange::Day => "Last 24 hours",
        OverviewRange::Week => "Last 7 days",
    }
}

/// A bucket's width, as in "calls per …".
fn per(range: OverviewRange) -> &'static str {
    match range {
        OverviewRange::Hour => "5 minutes",
        OverviewRange::Day => "hour",
        OverviewRange::Week => "6 hours",
    }
}

/// A time on an axis or in a sentence (UTC): the weekday too over 7 days.
fn clock(range: OverviewRange, at: DateTime<Utc>) -> String {
    match range {
        OverviewRange::Week => at.format("%a %H:%M").to_string(),
        _ => at.format("%H:%M").to_string(),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |rate| format!("{:.1}%", rate * 100.0))
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10ⁿ) at or above
/// `value`: a chart's top, so that the tallest bar fills most of it; 1 for nothing.
fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|top| *top >= value * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// A duration on an axis: `500 ms`, `0.2 ms`, `2 s`.
fn ms_label(value: f64) -> String {
    if value >= 1000.0 {
        format!("{} s", round3(value / 1000.0))
    } else {
        format!("{} ms", round3(value))
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A number drawn at one decimal (SVG coordinates).
fn at1(value: f64) -> String {
    format!("{value:.1}")
}

/// The height on the plot of `value` out of `top`.
fn y_of(value: f64, top: f64) -> f64 {
    BASE - (value / top).clamp(0.0, 1.0) * (BASE - TOP)
}

/// The counts the bar charts show.
#[derive(Debug, Clone, Copy)]
enum Count {
    Calls,
    Errors,
    ColdStarts,
}

impl Count {
    fn id(self) -> &'static str {
        match self {
            Count::Calls => "calls",
            Count::Errors => "errors",
            Count::ColdStarts => "cold-starts",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Count::Calls => "Calls",
            Count::Errors => "Errors",
            Count::ColdStarts => "Cold starts",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Count::Calls => "calls",
            Count::Errors => "errors",
            Count::ColdStarts => "cold starts",
        }
    }

    /// The bars' class, and their colour without the stylesheet.
    fn class(self) -> (&'static str, &'static str) {
        match self {
            Count::Calls => ("bar calls", "#0a58ca"),
            Count::Errors => ("bar errors", "#b42318"),
            Count::ColdStarts => ("bar cold", "#8250df"),
        }
    }

    fn of(self, stats: &CallStats) -> i64 {
        match self {
            Count::Calls => stats.calls,
            Count::Errors => stats.errors,
            Count::ColdStarts => stats.cold_starts,
        }
    }
}

/// The overview page.
fn page(session: &Session<'_>, overview: &Overview) -> Markup {
    let range = overview.range;
    let totals = &overview.totals;
    pages::layout(
        "Overview",
        Some(session),
        html! {
            h1 { "Overview" }
            nav aria-label="Range" class="tabs" {
                @for each in OverviewRange::ALL {
                    @let href = format!("/console/overview?range={}", each.as_str());
                    @if each == range {
                        a href=(href) aria-current="page" { (range_title(each)) }
                    } @else {
                        a href=(href) { (range_title(each)) }
                    }
                }
            }
            p {
                "Namespace " strong { (session.namespace) } ", "
                (overview.start.format("%Y-%m-%d %H:%M")) " to "
                (overview.end.format("%Y-%m-%d %H:%M")) " UTC, per " (per(range)) "."
                @if totals.calls == 0 { " No calls in this window." }
            }
            p class="help" {
                "Counts are exact. Latency percentiles are read from duration bins 10% wide, so they are within 5% of the calls' own."
            }
            h2 id="totals-title" { "Totals" }
            dl class="totals" aria-labelledby="totals-title" {
                div { dt { "Calls" } dd { (totals.calls) } }
                div { dt { "Errors" } dd { (totals.errors) } }
                div { dt { "Error rate" } dd { (percent(totals.error_rate())) } }
                div { dt { "p50" } dd { (ms(totals.p50_ms)) } }
                div { dt { "p99" } dd { (ms(totals.p99_ms)) } }
                div { dt { "Cold starts" } dd { (totals.cold_starts) } }
            }
            h2 { "Charts" }
            div class="charts" {
                (bar_chart(overview, Count::Calls))
                (bar_chart(overview, Count::Errors))
                (latency_chart(overview))
                (bar_chart(overview, Count::ColdStarts))
            }
            (data_table(overview))
        },
    )
}

/// The gridlines of a plot: its top, its middle and its baseline.
fn grid() -> Markup {
    html! {
        @for y in [TOP, (TOP + BASE) / 2.0, BASE] {
            line class="grid" x1="0" x2=(at1(WIDTH)) y1=(at1(y)) y2=(at1(y))
                stroke="#d0d7de" stroke-width="1" {}
        }
    }
}

/// A time axis under a chart: the window's start, its middle bucket's start, and now.
fn x_axis(overview: &Overview) -> Markup {
    let middle = &overview.buckets[overview.buckets.len() / 2];
    html! {
        div class="axis x" aria-hidden="true" {
            span { (clock(overview.range, overview.start)) }
            span { (clock(overview.range, middle.start)) }
            span { "now" }
        }
    }
}

/// A bucket's span, as a tooltip or a sentence says it.
fn span_of(overview: &Overview, start: DateTime<Utc>) -> String {
    let range = overview.range;
    let end = start + range.bucket_width();
    format!("{}–{}", clock(range, start), clock(range, end))
}

/// A chart: its title, the top of its scale, its drawing (over the gridlines), what goes
/// under it (`below`: the time axis, a legend) and one sentence that sums it up. The `svg` is
/// labelled by the title and described by the sentence.
fn chart(
    id: &str,
    title: &str,
    axis_top: &str,
    drawing: Markup,
    below: Markup,
    summary: &str,
) -> Markup {
    html! {
        section class="chart" {
            h3 id={ (id) "-title" } { (title) }
            div class="axis y" aria-hidden="true" { (axis_top) }
            svg class="chart" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%"
                preserveAspectRatio="xMidYMid meet" role="img"
                aria-labelledby={ (id) "-title" } aria-describedby={ (id) "-summary" } {
                (grid())
                (drawing)
            }
            (below)
            p id={ (id) "-summary" } class="help" { (summary) }
        }
    }
}

/// Bars of one count per bucket.
fn bar_chart(overview: &Overview, count: Count) -> Markup {
    let range = overview.range;
    let values: Vec<i64> = overview
        .buckets
        .iter()
        .map(|b| count.of(&b.stats))
        .collect();
    let peak = values.iter().copied().max().unwrap_or(0);
    let top = nice_ceiling(peak as f64);
    let slot = WIDTH / values.len().max(1) as f64;
    let width = slot * 0.7;
    let (class, fill) = count.class();
    let summary = match values.iter().position(|v| *v == peak) {
        Some(at) if peak > 0 => format!(
            "{} {} in all; at most {peak} in one bucket, {}.",
            count.of(&overview.totals),
            count.noun(),
            span_of(overview, overview.buckets[at].start)
        ),
        _ => format!("No {} in this window.", count.noun()),
    };
    let drawing = html! {
        @for (i, (bucket, value)) in overview.buckets.iter().zip(&values).enumerate() {
            @if *value > 0 {
                @let y = y_of(*value as f64, top).min(BASE - 1.0);
                rect class=(class) fill=(fill) x=(at1(i as f64 * slot + (slot - width) / 2.0))
                    y=(at1(y)) width=(at1(width)) height=(at1(BASE - y)) {
                    title { (span_of(overview, bucket.start)) ": " (value) " " (count.noun()) }
                }
            }
        }
    };
    chart(
        count.id(),
        &format!("{} per {}", count.title(), per(range)),
        &(top.round() as i64).to_string(),
        drawing,
        x_axis(overview),
        &summary,
    )
}

/// A latency series: its name, its colour without the stylesheet, and its value in a bucket.
type Series = (&'static str, &'static str, fn(&CallStats) -> Option<f64>);

const SERIES: [Series; 2] = [
    ("p50", "#0a58ca", |s| s.p50_ms),
    ("p99", "#bc4c00", |s| s.p99_ms),
];

/// The p50 and p99 of each bucket with calls, as two lines (broken where a bucket has none)
/// with a dot per bucket.
fn latency_chart(overview: &Overview) -> Markup {
    let range = overview.range;
    let slot = WIDTH / overview.buckets.len().max(1) as f64;
    let peak = overview
        .buckets
        .iter()
        .filter_map(|b| b.stats.p99_ms)
        .fold(0.0, f64::max);
    let top = nice_ceiling(peak);
    let summary = if overview.totals.calls > 0 {
        format!(
            "Over the window: p50 {}, p99 {}.",
            ms(overview.totals.p50_ms),
            ms(overview.totals.p99_ms)
        )
    } else {
        "No calls in this window.".to_owned()
    };
    let drawing = html! {
        @for (name, colour, value_of) in SERIES {
            @let points: Vec<Option<(f64, f64)>> = overview
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| value_of(&b.stats).map(|v| ((i as f64 + 0.5) * slot, y_of(v, top))))
                .collect();
            @for run in points.split(Option::is_none).filter(|run| run.len() > 1) {
                @let line: Vec<String> = run
                    .iter()
                    .flatten()
                    .map(|(x, y)| format!("{},{}", at1(*x), at1(*y)))
                    .collect();
                polyline class={ "line " (name) } fill="none" stroke=(colour) stroke-width="2"
                    points=(line.join(" ")) {}
            }
            @for (bucket, point) in overview.buckets.iter().zip(&points) {
                @if let Some((x, y)) = point {
                    circle class={ "dot " (name) } fill=(colour) cx=(at1(*x)) cy=(at1(*y)) r="3" {
                        title {
                            (span_of(overview, bucket.start)) ": " (name) " "
                            (ms(value_of(&bucket.stats)))
                        }
                    }
                }
            }
        }
    };
    let below = html! {
        (x_axis(overview))
        ul class="legend" aria-hidden="true" {
            li { span class="swatch p50" {} "p50 (median)" }
            li { span class="swatch p99" {} "p99" }
        }
    };
    chart(
        "latency",
        &format!("Latency per {}", per(range)),
        &ms_label(top),
        drawing,
        below,
        &summary,
    )
}

/// Every bucket's numbers: what the charts draw, for screen readers (and tests).
fn data_table(overview: &Overview) -> Markup {
    html! {
        table id="overview-data" class="visually-hidden" {
            caption {
                "The charts' numbers per " (per(overview.range)) ", oldest first (UTC)"
            }
            thead {
                tr {
                    th scope="col" { "From" }
                    th scope="col" { "Calls" }
                    th scope="col" { "Errors" }
                    th scope="col" { "p50" }
                    th scope="col" { "p99" }
                    th scope="col" { "Cold starts" }
                }
            }
            tbody {
                @for bucket in &overview.buckets {
                    @let s = &bucket.stats;
                    tr {
                        th scope="row" { (bucket.start.format("%Y-%m-%d %H:%M")) }
                        td { (s.calls) }
                        td { (s.errors) }
                        td { (ms(s.p50_ms)) }
                        td { (ms(s.p99_ms)) }
                        td { (s.cold_starts) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OverviewBucket;
    use chrono::TimeZone;

    #[test]
    fn a_charts_top_is_the_next_round_number() {
        let cases = [
            (0.0, 1.0),
            (1.0, 1.0),
            (3.0, 3.0),
            (7.0, 8.0),
            (10.0, 10.0),
            (11.0, 12.0),
            (5209.0, 6000.0),
            (292.0, 300.0),
            (0.03, 0.03),
            (0.031, 0.04),
            (1201.0, 1500.0),
            (f64::NAN, 1.0),
        ];
        for (value, top) in cases {
            assert!(
                (nice_ceiling(value) - top).abs() < 1e-9,
                "{value}: {}",
                nice_ceiling(value)
            );
        }
        assert_eq!(ms_label(500.0), "500 ms");
        assert_eq!(ms_label(0.2), "0.2 ms");
        assert_eq!(ms_label(2000.0), "2 s");
    }

    fn sample(range: OverviewRange) -> Overview {
        let end = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let mut buckets: Vec<OverviewBucket> = range
            .bucket_starts(end)
            .into_iter()
            .map(|start| OverviewBucket {
                start,
                stats: CallStats::default(),
            })
            .collect();
        let last = buckets.len() - 1;
        let busy = CallStats {
            calls: 3,
            errors: 1,
            cold_starts: 2,
            p50_ms: Some(20.0),
            p99_ms: Some(29.8),
        };
        buckets[last].stats = busy.clone();
        buckets[last - 2].stats = busy.clone();
        buckets[last - 1].stats = busy.clone();
        Overview {
            range,
            start: end - range.window(),
            end,
            buckets,
            totals: busy,
        }
    }

    #[test]
    fn the_page_has_no_inline_style_and_labelled_charts_and_a_row_per_bucket() {
        let session = Session {
            namespace: "default",
            csrf_token: "t",
            admin: false,
        };
        for range in OverviewRange::ALL {
            let html = page(&session, &sample(range)).into_string();
            assert!(
                !html.contains(" style=") && !html.contains("<style"),
                "{html}"
            );
            assert!(!html.contains("<script"), "{html}");
            assert_eq!(html.matches("role=\"img\"").count(), 4);
            for id in ["calls", "errors", "latency", "cold-starts"] {
                assert!(html.contains(&format!("aria-labelledby=\"{id}-title\"")));
                assert!(html.contains(&format!("id=\"{id}-title\"")));
            }
            let current = format!(
                "href=\"/console/overview?range={}\" aria-current=\"page\"",
                range.as_str()
            );
            assert!(html.contains(&current), "{html}");
            assert_eq!(html.matches("aria-current").count(), 1);
            // One row per bucket in the table, and a bar per non-empty bucket and count.
            let table = &html[html.find("id=\"overview-data\"").unwrap()..];
            assert_eq!(
                table.matches("<th scope=\"row\">").count(),
                range.bucket_count()
            );
            assert_eq!(html.matches("<rect ").count(), 9);
            // Three buckets in a row: one line per percentile, a dot per bucket.
            assert_eq!(html.matches("<polyline ").count(), 2);
            assert_eq!(html.matches("<circle ").count(), 6);
            // Every SVG element is closed: none swallows the next.
            assert_eq!(
                html.matches("<rect ").count(),
                html.matches("</rect>").count()
            );
            assert_eq!(
                html.matches("<line ").count(),
                html.matches("</line>").count()
            );
        }
    }
}
