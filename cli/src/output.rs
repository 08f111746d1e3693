//! How commands print: tables and sentences for people (`-o text`), or one JSON document with
//! stable field names for scripts (`-o json`); progress only on a terminal.

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;
use std::io::IsTerminal as _;

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Tables and sentences.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// A table of `rows` under `headers`, as text.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `value` as a table cell: strings bare, null as `-`, the rest as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether progress may be drawn: stderr is a terminal and the output is not JSON.
pub fn shows_progress(format: Format) -> bool {
    format == Format::Text && std::io::stderr().is_terminal()
}

/// A spinner on stderr with `message`, or nothing when progress is not shown.
pub fn spinner(format: Format, message: &str) -> Option<indicatif::ProgressBar> {
    if !shows_progress(format) {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}

/// `text` with each line indented by four spaces.
pub fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_have_upper_case_headers_and_no_borders() {
        let text = table(
            &["name", "version"],
            vec![
                vec!["hello".into(), "3".into()],
                vec!["a-long-name".into(), "12".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("NAME") && lines[0].contains("VERSION"),
            "{text}"
        );
        assert!(
            lines[2].contains("a-long-name") && lines[2].ends_with("12"),
            "{text}"
        );
        assert!(!text.contains('|') && !text.contains('+'), "{text}");
    }

    #[test]
    fn cells_and_indents() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("x")), "x");
        assert_eq!(cell(&json!(["GET"])), "[\"GET\"]");
        assert_eq!(indent("a\nb"), "    a\n    b");
    }
}
