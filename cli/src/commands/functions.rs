//! `faas ls`, `get NAME`, `rm NAME` and `build-log NAME`.

use super::{function_id, require_function, urls};
use crate::Context;
use crate::error::CliResult;
use crate::folder::manifest::FIELDS;
use crate::output::{Format, cell, print_json, table};
use serde_json::{Value, json};

/// A function's name.
#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// The function's name.
    pub name: String,
}

/// The fields `ls` shows, in order; also its JSON's names.
const LISTED: [&str; 7] = [
    "name",
    "language",
    "runtime",
    "version",
    "route",
    "build",
    "updated_at",
];

fn listed(function: &Value) -> Value {
    json!({
        "id": function["id"],
        "name": function["name"],
        "language": function["language"],
        "runtime": function["runtime"],
        "version": function["version"],
        "route": function["route"],
        "build": function["build"]["status"],
        "updated_at": function["updated_at"],
    })
}

/// `faas ls`.
pub fn list(context: &Context) -> CliResult {
    let client = context.client()?;
    let functions = client.get("/functions/?limit=1000")?;
    let rows: Vec<Value> = functions
        .as_array()
        .into_iter()
        .flatten()
        .map(listed)
        .collect();
    match context.format {
        Format::Json => print_json(&Value::Array(rows)),
        Format::Text if rows.is_empty() => {
            println!("No functions yet: `faas init NAME` then `faas deploy NAME`.")
        }
        Format::Text => println!(
            "{}",
            table(
                &LISTED,
                rows.iter()
                    .map(|row| LISTED.iter().map(|field| cell(&row[field])).collect())
                    .collect()
            )
        ),
    }
    Ok(())
}

/// `faas get NAME`.
pub fn get(context: &Context, args: NameArg) -> CliResult {
    let client = context.client()?;
    let mut function = require_function(&client, &args.name)?;
    let id = function_id(&function)?;
    let stats = client.get(&format!("/functions/{id}/stats?window_secs=3600"))?;
    let urls = urls(&client.target, &args.name, function["route"].as_str());
    if let Some(object) = function.as_object_mut() {
        // The source is long and says nothing `get` is for.
        object.remove("code");
    }
    match context.format {
        Format::Json => print_json(&json!({"function": function, "urls": urls, "stats": stats})),
        Format::Text => {
            let fields = ["id", "version"]
                .into_iter()
                .chain(FIELDS)
                .chain(["created_at", "updated_at"]);
            for field in fields {
                println!("{:<20}{}", format!("{field}:"), cell(&function[field]));
            }
            match function["build"]["status"].as_str() {
                Some(status) => println!("{:<20}{status}", "build:"),
                None => println!("{:<20}none (no dependencies)", "build:"),
            }
            if let Some(package) = function["package"].as_object() {
                println!(
                    "{:<20}{} files, {} bytes zipped",
                    "package:",
                    cell(&package["files"].clone()),
                    cell(&package["zip_bytes"].clone())
                );
            }
            println!("{:<20}{}", "execute url:", cell(&urls["execute"]));
            println!("{:<20}{}", "trigger url:", cell(&urls["trigger"]));
            println!(
                "last hour:          {} calls, {} errors, p50 {}, p99 {}",
                cell(&stats["calls"]),
                cell(&stats["errors"]),
                millis(&stats["p50_ms"]),
                millis(&stats["p99_ms"])
            );
        }
    }
    Ok(())
}

/// A duration in milliseconds as text: `-` when there is none.
pub fn millis(value: &Value) -> String {
    match value.as_f64() {
        Some(ms) => format!("{ms:.1} ms"),
        None => "-".into(),
    }
}

/// `faas rm NAME`.
pub fn remove(context: &Context, args: NameArg) -> CliResult {
    let client = context.client()?;
    let function = require_function(&client, &args.name)?;
    let id = function_id(&function)?;
    let answer = client.delete(&format!("/functions/{id}"))?;
    match context.format {
        Format::Json => print_json(
            &json!({"name": args.name, "id": id, "deleted": true, "message": answer["message"]}),
        ),
        Format::Text => println!("Deleted {}", args.name),
    }
    Ok(())
}

/// `faas build-log NAME`.
pub fn build_log(context: &Context, args: NameArg) -> CliResult {
    let client = context.client()?;
    let function = require_function(&client, &args.name)?;
    let id = function_id(&function)?;
    let build = client.get(&format!("/functions/{id}/build"))?;
    match context.format {
        Format::Json => print_json(&build),
        Format::Text if build.is_null() => {
            println!("{} has no dependencies: nothing is built.", args.name)
        }
        Format::Text => {
            eprintln!(
                "build {} (digest {})",
                cell(&build["status"]),
                cell(&build["digest"])
            );
            print!("{}", build["log"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}
