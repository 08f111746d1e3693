//! What a scenario gives the report: the [`Section`] each scenario implements beside its own
//! results (its markdown, its clause of the opening line, its rows of the CPU, error and
//! server-side tables, its targets), the [`TargetCheck`] it judges against, and the number
//! formats every section shares. The report (`report`) keeps the frame: the header, the order
//! of the sections, the tables all scenarios fill, and the memory of the platform's processes.

use crate::config::{Config, Runtime};
use crate::cpu::CpuUsage;
use crate::stats::{CallStats, ErrorKind, Summary};
use serde::Serialize;

/// One scenario's part of the report.
pub trait Section {
    /// What one runtime's run of the scenario measured.
    type Result: 'static;

    /// Scenarios 7 to 10 run once per run, on one runtime: their targets come after those of
    /// every runtime's other scenarios.
    const ONCE_PER_RUN: bool = false;

    /// What the run was set to do for this scenario, a clause of the report's opening line;
    /// `None` to say nothing there.
    fn settings(&self, _settings: &Config) -> Option<String> {
        None
    }

    /// The scenario's section, from every runtime that ran it, in the run's order (never
    /// empty).
    fn markdown(&self, runs: &[(Runtime, &Self::Result)], settings: &Config) -> String;

    /// The measured phases whose CPU was read, by name (`1. warm`).
    fn cpu<'r>(&self, _result: &'r Self::Result) -> Vec<(&'static str, &'r CpuUsage)> {
        Vec::new()
    }

    /// Lines of the error table: the failed calls and anything else that went wrong.
    fn errors(&self, _runtime: Runtime, _result: &Self::Result) -> Vec<String> {
        Vec::new()
    }

    /// Sets of calls for the server-side breakdown (`--verbose`), by name.
    fn server_side<'r>(&self, _result: &'r Self::Result) -> Vec<(&'static str, &'r CallStats)> {
        Vec::new()
    }

    /// The targets on this scenario; `result` is `None` when the runtime did not run
    /// it.
    fn targets(
        &self,
        _runtime: Runtime,
        _result: Option<&Self::Result>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        Vec::new()
    }
}

/// Whether a target was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    Missed,
    /// Measured, but the noise is too wide to say either.
    Inconclusive,
    NotMeasured,
}

impl Status {
    /// Met when `met`, else missed.
    pub fn of(met: bool) -> Self {
        if met { Status::Met } else { Status::Missed }
    }

    /// How the status reads in the targets table.
    pub fn word(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Missed => "**missed**",
            Status::Inconclusive => "inconclusive",
            Status::NotMeasured => "not measured",
        }
    }
}

/// One of the targets against the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// The runtime, or the process (`api`, `worker docker`, ...) for memory targets.
    pub subject: String,
    pub what: String,
    pub target: String,
    pub measured: String,
    pub status: Status,
}

/// A latency-type target: `value(summary) <= limit`.
pub fn latency_check(
    subject: &str,
    what: &str,
    limit_ms: f64,
    stats: Option<&CallStats>,
    value: fn(&Summary) -> f64,
) -> TargetCheck {
    let (measured, status) = match stats {
        None => ("-".to_owned(), Status::NotMeasured),
        Some(stats) => match &stats.latency_ms {
            Some(summary) => (
                format!("{} ms", ms(value(summary))),
                Status::of(value(summary) <= limit_ms),
            ),
            None => ("no successful call".to_owned(), Status::Missed),
        },
    };
    TargetCheck {
        subject: subject.to_owned(),
        what: what.to_owned(),
        target: format!("≤ {limit_ms} ms"),
        measured,
        status,
    }
}

/// A target of a scenario that did not run.
pub fn not_measured(subject: &str, what: &str, target: &str) -> TargetCheck {
    TargetCheck {
        subject: subject.to_owned(),
        what: what.to_owned(),
        target: target.to_owned(),
        measured: "-".to_owned(),
        status: Status::NotMeasured,
    }
}

/// A section that is one table with a row per runtime: `head` (title and table head), then
/// the rows.
pub fn table(head: &str, rows: &[String]) -> String {
    format!("{head}\n{}\n\n", rows.join("\n"))
}

/// The error table's lines of a set of failed calls, one per status and code.
pub fn error_rows(scenario: &str, runtime: Runtime, kinds: &[ErrorKind]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| {
            format!(
                "| {scenario} | {} | {} | {} | {} | {} |",
                runtime.as_str(),
                k.status,
                k.code,
                k.count,
                cell(&k.detail)
            )
        })
        .collect()
}

/// `text` made to fit in one table cell.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Milliseconds with the precision that matters at their size.
pub fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// One value of a summary in [`ms`], or `-`.
pub fn opt_ms(summary: Option<&Summary>, value: fn(&Summary) -> f64) -> String {
    summary.map_or("-".to_owned(), |s| ms(value(s)))
}

/// `p50 / p99` of a summary in [`ms`], or `-`.
pub fn p50_p99(summary: Option<&Summary>) -> String {
    summary.map_or("-".to_owned(), |s| {
        format!("{} / {}", ms(s.p50_ms), ms(s.p99_ms))
    })
}

/// A ratio to two decimals, or `-`.
pub fn ratio_cell(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |ratio| format!("{ratio:.2}"))
}

/// `low–high` of a set of values, or `-`.
pub fn range_cell(values: &[f64], format: fn(f64) -> String) -> String {
    let low = values.iter().copied().reduce(f64::min);
    let high = values.iter().copied().reduce(f64::max);
    match (low, high) {
        (Some(low), Some(high)) => format!("{}–{}", format(low), format(high)),
        _ => "-".to_owned(),
    }
}
