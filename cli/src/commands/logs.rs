//! `faas logs` (invocations with their logs, from the records or followed live over
//! `GET /invocations/stream`), `faas invocations` and `faas retry`.

use crate::Context;
use crate::client::{Client, api_error, path_segment, query_value, read_json};
use crate::error::{CliError, CliResult};
use crate::output::{Format, cell, indent, print_json, table};
use crate::sse;
use serde_json::Value;
use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::time::Duration;
use ureq::http::StatusCode;

/// `faas logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only this function's invocations.
    pub name: Option<String>,
    /// Follow: print each invocation as it finishes, until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Only invocations from this long ago (30s, 10m, 2h, 1d) or this RFC 3339 time on.
    #[arg(long)]
    pub since: Option<String>,
    /// Only invocations that succeeded, or that failed (any other ending).
    #[arg(long, value_parser = ["succeeded", "failed"])]
    pub status: Option<String>,
    /// Only this invocation.
    #[arg(long, conflicts_with_all = ["follow", "since", "status", "name"])]
    pub id: Option<String>,
    /// The most invocations listed (without -f).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
}

/// One invocation as `logs` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub time: String,
    pub function: String,
    pub id: String,
    pub status: String,
    pub duration_ms: Option<f64>,
    pub cold: Option<bool>,
    pub attempt: Option<i64>,
    pub logs: Option<String>,
    pub logs_truncated: bool,
}

impl LogEntry {
    /// From an invocation of `GET /invocations/` (its last attempt's figures).
    pub fn from_view(view: &Value) -> LogEntry {
        let last = view["attempts"]
            .as_array()
            .and_then(|attempts| attempts.last())
            .cloned()
            .unwrap_or(Value::Null);
        LogEntry {
            time: cell(&view["created_at"]),
            function: cell(&view["function"]),
            id: cell(&view["invocation_id"]),
            status: cell(&view["status"]),
            duration_ms: last["duration_ms"].as_f64(),
            cold: last["cold_start"].as_bool(),
            attempt: last["attempt"].as_i64(),
            logs: view["logs"].as_str().map(str::to_owned),
            logs_truncated: view["logs_truncated"].as_bool().unwrap_or(false),
        }
    }

    /// From a record of the stream (`data:` of an `invocation` event).
    pub fn from_record(record: &Value) -> LogEntry {
        LogEntry {
            time: cell(&record["created_at"]),
            function: cell(&record["function"]),
            id: cell(&record["invocation_id"]),
            status: cell(&record["status"]),
            duration_ms: record["duration_ms"].as_f64(),
            cold: record["cold_start"].as_bool(),
            attempt: record["attempt"].as_i64(),
            logs: record["logs"].as_str().map(str::to_owned),
            logs_truncated: record["logs_truncated"].as_bool().unwrap_or(false),
        }
    }

    /// The header line, then the log lines indented.
    pub fn render(&self) -> String {
        let duration = self
            .duration_ms
            .map(|ms| format!("{ms:.1}ms"))
            .unwrap_or_else(|| "-".into());
        let cold = match self.cold {
            Some(true) => "cold",
            Some(false) => "warm",
            None => "-",
        };
        let attempt = self
            .attempt
            .map(|n| format!("attempt {n}"))
            .unwrap_or_else(|| "attempt -".into());
        let mut text = format!(
            "{} {} {} {} {duration} {cold} {attempt}",
            self.time, self.function, self.id, self.status
        );
        if let Some(logs) = self.logs.as_deref().filter(|l| !l.is_empty()) {
            text.push('\n');
            text.push_str(&indent(logs.trim_end_matches('\n')));
        }
        if self.logs_truncated {
            text.push_str("\n    [logs truncated]");
        }
        text
    }
}

/// Whether a listed invocation's `status` passes `--status` (`failed`: any ending but
/// success).
fn status_matches(wanted: Option<&str>, status: &str) -> bool {
    match wanted {
        None => true,
        Some("succeeded") => status == "succeeded",
        Some(_) => !matches!(status, "succeeded" | "queued" | "running"),
    }
}

/// Prints one entry (JSON: one line per record).
fn print_entry(format: Format, entry: &LogEntry, raw: &Value) {
    match format {
        Format::Json => println!("{raw}"),
        Format::Text => println!("{}", entry.render()),
    }
}

/// `faas logs`.
pub fn logs(context: &Context, args: LogsArgs) -> CliResult {
    let client = context.client()?;
    if let Some(id) = &args.id {
        let view = client.get(&format!("/invocations/{}", path_segment(id)))?;
        print_entry(context.format, &LogEntry::from_view(&view), &view);
        return Ok(());
    }
    let since = args
        .since
        .as_deref()
        .map(|text| crate::since::parse(text, chrono::Utc::now()))
        .transpose()
        .map_err(CliError::Usage)?;
    let mut printed = HashSet::new();
    if !args.follow || since.is_some() {
        let mut path = format!("/invocations/?limit={}", args.limit);
        if let Some(name) = &args.name {
            path.push_str(&format!("&function={}", query_value(name)));
        }
        if args.status.as_deref() == Some("succeeded") {
            path.push_str("&status=succeeded");
        }
        if let Some(since) = since {
            path.push_str(&format!("&since={}", query_value(&since.to_rfc3339())));
        }
        let listed = client.get(&path)?;
        let mut views: Vec<&Value> = listed
            .as_array()
            .into_iter()
            .flatten()
            .filter(|view| {
                status_matches(
                    args.status.as_deref(),
                    view["status"].as_str().unwrap_or(""),
                )
            })
            .filter(|view| {
                let created = view["created_at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                match (since, created) {
                    (Some(since), Some(created)) => created >= since,
                    _ => true,
                }
            })
            .collect();
        // Oldest first, as logs read.
        views.reverse();
        for view in views {
            printed.insert(cell(&view["invocation_id"]));
            print_entry(context.format, &LogEntry::from_view(view), view);
        }
    }
    if args.follow {
        let filter = StreamFilter {
            function: args.name.clone(),
            status: args.status.clone(),
        };
        follow(&client, &filter, context.format, printed)?;
    }
    Ok(())
}

/// What the stream is asked for.
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    pub function: Option<String>,
    pub status: Option<String>,
}

impl StreamFilter {
    fn path(&self) -> String {
        let mut query = Vec::new();
        if let Some(function) = &self.function {
            query.push(format!("function={}", query_value(function)));
        }
        if let Some(status) = &self.status {
            query.push(format!("status={}", query_value(status)));
        }
        if query.is_empty() {
            "/invocations/stream".into()
        } else {
            format!("/invocations/stream?{}", query.join("&"))
        }
    }
}

/// The `seq`s printed lately: enough to skip what a resume sends again.
#[derive(Debug, Default)]
pub struct SeenSeqs {
    seqs: std::collections::BTreeSet<i64>,
}

impl SeenSeqs {
    /// The most kept; older ones are forgotten first.
    const KEPT: usize = 10_000;

    /// Whether `seq` is new (and remembers it).
    pub fn admit(&mut self, seq: i64) -> bool {
        if !self.seqs.insert(seq) {
            return false;
        }
        if self.seqs.len() > Self::KEPT {
            self.seqs.pop_first();
        }
        true
    }
}

/// The longest pause between two tries to reach the stream again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows the stream until interrupted: reconnects with `Last-Event-ID` whenever it ends (an
/// api restart, a dropped connection), retrying with backoff while the api does not answer,
/// and prints each invocation once. `history` holds the ids printed from the records already.
pub fn follow(
    client: &Client,
    filter: &StreamFilter,
    format: Format,
    history: HashSet<String>,
) -> CliResult {
    let mut last_id: Option<String> = None;
    let mut seen = SeenSeqs::default();
    let mut backoff = Duration::from_millis(250);
    let mut away = false;
    loop {
        let mut headers = vec![("accept", "text/event-stream")];
        if let Some(id) = &last_id {
            headers.push(("last-event-id", id.as_str()));
        }
        let sent = client.send("GET", &filter.path(), &headers, None);
        let retry_reason = match sent {
            Err(CliError::Unreachable { url, reason }) => Some(format!("{url}: {reason}")),
            Err(error) => return Err(error),
            Ok(response)
                if response.status() == StatusCode::TOO_MANY_REQUESTS
                    || response.status().is_server_error() =>
            {
                Some(format!("the api answered {}", response.status()))
            }
            Ok(mut response) if !response.status().is_success() => {
                let status = response.status();
                let body =
                    read_json(&client.url(&filter.path()), &mut response).unwrap_or(Value::Null);
                return Err(api_error(status, &body));
            }
            Ok(mut response) => {
                if away {
                    eprintln!("[faas] following again");
                    away = false;
                }
                backoff = Duration::from_millis(250);
                let mut parser = sse::Parser::default();
                let mut reader = response.body_mut().as_reader();
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(read @ 1..) = reader.read(&mut buffer) {
                    for event in parser.feed(&buffer[..read]) {
                        if event.event != "invocation" {
                            continue;
                        }
                        let Ok(record) = serde_json::from_str::<Value>(&event.data) else {
                            continue;
                        };
                        // Resume after the last event received, as browsers do: records
                        // of several replicas may come out of order, and any seen again
                        // after a resume is skipped here.
                        if let Some(id) = &event.id {
                            last_id = Some(id.clone());
                        }
                        let seq = record["seq"]
                            .as_i64()
                            .or_else(|| event.id.as_deref().and_then(|id| id.parse().ok()));
                        if let Some(seq) = seq
                            && !seen.admit(seq)
                        {
                            continue;
                        }
                        let entry = LogEntry::from_record(&record);
                        if history.contains(&entry.id) && entry.attempt.unwrap_or(1) <= 1 {
                            continue;
                        }
                        print_entry(format, &entry, &record);
                    }
                    let _ = std::io::stdout().flush();
                }
                Some("the stream ended".to_owned())
            }
        };
        if let Some(reason) = retry_reason {
            if !away {
                eprintln!("[faas] {reason}; reconnecting");
                away = true;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// `faas invocations`.
#[derive(Debug, clap::Args)]
pub struct InvocationsArgs {
    /// Only this function's.
    pub name: Option<String>,
    /// Only this status: queued, running, succeeded, failed, timeout, dead_lettered, expired.
    #[arg(long)]
    pub status: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
}

/// Lists invocations.
pub fn invocations(context: &Context, args: InvocationsArgs) -> CliResult {
    let client = context.client()?;
    let mut path = format!("/invocations/?limit={}", args.limit);
    if let Some(name) = &args.name {
        path.push_str(&format!("&function={}", query_value(name)));
    }
    if let Some(status) = &args.status {
        path.push_str(&format!("&status={}", query_value(status)));
    }
    let listed = client.get(&path)?;
    match context.format {
        Format::Json => print_json(&listed),
        Format::Text => {
            let headers = [
                "created_at",
                "invocation_id",
                "function",
                "mode",
                "status",
                "attempts",
                "duration",
            ];
            let rows = listed
                .as_array()
                .into_iter()
                .flatten()
                .map(|view| {
                    let entry = LogEntry::from_view(view);
                    vec![
                        entry.time,
                        entry.id,
                        entry.function,
                        cell(&view["mode"]),
                        entry.status,
                        view["attempts"].as_array().map_or(0, Vec::len).to_string(),
                        crate::commands::functions::millis(&view["attempts"][0]["duration_ms"]),
                    ]
                })
                .collect();
            println!("{}", table(&headers, rows));
        }
    }
    Ok(())
}

/// `faas retry`.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The dead-lettered invocation's id.
    pub id: String,
}

/// Redrives a dead-lettered invocation.
pub fn retry(context: &Context, args: RetryArgs) -> CliResult {
    let client = context.client()?;
    let invocation = client.send_json(
        "POST",
        &format!("/invocations/{}/retry", path_segment(&args.id)),
        &Value::Null,
    )?;
    match context.format {
        Format::Json => print_json(&invocation),
        Format::Text => println!("Queued {} again ({})", args.id, cell(&invocation["status"])),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_shows_time_id_status_duration_cold_and_attempt_then_its_logs() {
        let view = json!({
            "invocation_id": "abc", "function": "hello", "status": "succeeded",
            "created_at": "2026-12-07T05:00:00Z", "logs": "one\ntwo\n", "logs_truncated": false,
            "attempts": [{"attempt": 1, "cold_start": false, "duration_ms": 9.0},
                         {"attempt": 2, "cold_start": true, "duration_ms": 12.34}]
        });
        assert_eq!(
            LogEntry::from_view(&view).render(),
            "2026-12-07T05:00:00Z hello abc succeeded 12.3ms cold attempt 2\n    one\n    two"
        );
        let record = json!({
            "seq": 4, "invocation_id": "def", "function": "hello", "status": "error",
            "cold_start": false, "duration_ms": 3.0, "created_at": "2026-12-07T05:00:01Z",
            "logs": null, "logs_truncated": true
        });
        assert_eq!(
            LogEntry::from_record(&record).render(),
            "2026-12-07T05:00:01Z hello def error 3.0ms warm attempt -\n    [logs truncated]"
        );
    }

    #[test]
    fn failed_means_any_ending_but_success() {
        assert!(status_matches(None, "queued"));
        assert!(status_matches(Some("succeeded"), "succeeded"));
        assert!(!status_matches(Some("succeeded"), "failed"));
        for ended in ["failed", "timeout", "dead_lettered", "expired"] {
            assert!(status_matches(Some("failed"), ended));
        }
        assert!(!status_matches(Some("failed"), "running"));
    }

    #[test]
    fn a_seq_is_printed_once_whatever_the_order() {
        let mut seen = SeenSeqs::default();
        assert!(seen.admit(10));
        assert!(
            seen.admit(9),
            "a lower seq from another replica is still new"
        );
        assert!(!seen.admit(10));
        assert!(!seen.admit(9));
        for seq in 100..(100 + SeenSeqs::KEPT as i64) {
            assert!(seen.admit(seq));
        }
        assert_eq!(seen.seqs.len(), SeenSeqs::KEPT);
    }

    #[test]
    fn the_stream_path_carries_the_filters() {
        assert_eq!(StreamFilter::default().path(), "/invocations/stream");
        let filter = StreamFilter {
            function: Some("hello".into()),
            status: Some("failed".into()),
        };
        assert_eq!(
            filter.path(),
            "/invocations/stream?function=hello&status=failed"
        );
    }
}
