//! `faas deploy [DIR]`: the folder checked and zipped, the function created or updated by name,
//! its build followed to the end, its test events stored, and its version and URLs printed.

use super::{find_function, function_id, urls};
use crate::Context;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::folder::Folder;
use crate::output::{self, Format, print_json};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Lines of a failed build's log printed.
const FAILED_LOG_LINES: usize = 20;

/// `faas deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The function's folder [default: the current directory].
    pub dir: Option<PathBuf>,
    /// A `KEY=value` file whose variables join `env` (secrets kept out of faas.toml).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub function: Value,
    /// Whether the save made a new version.
    pub changed: bool,
}

/// Deploys and prints the outcome.
pub fn deploy(context: &Context, args: DeployArgs) -> CliResult<Deployed> {
    let dir = crate::folder_or_here(args.dir);
    let folder = Folder::load(&dir, args.env_file.as_deref())?;
    let client = context.client()?;
    let deployed = save(&client, &folder, context.format)?;
    report(context.format, &client, &deployed);
    check_build(&deployed.function)?;
    Ok(deployed)
}

/// Creates or updates the function of `folder`, waits for its build and stores its tests.
pub fn save(client: &Client, folder: &Folder, format: Format) -> CliResult<Deployed> {
    let name = &folder.manifest.name;
    let spinner = output::spinner(format, &format!("deploying {name}"));
    let existing = find_function(client, name)?;
    let saved = match &existing {
        Some(function) => {
            let id = function_id(function)?;
            client.send_json("PUT", &format!("/functions/{id}"), &folder.body)
        }
        None => client.send_json("POST", "/functions/", &folder.body),
    };
    let mut function = match saved {
        Ok(function) => function,
        Err(error) => {
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            return Err(error);
        }
    };
    let changed = existing
        .as_ref()
        .is_none_or(|before| before["version"] != function["version"]);
    let id = function_id(&function)?;
    if let Some(bar) = &spinner {
        bar.set_message(format!("building {name}'s dependencies"));
    }
    let build = wait_for_build(client, id, &function, spinner.as_ref());
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    function["build"] = build?;
    put_tests(client, id, folder)?;
    Ok(Deployed { function, changed })
}

/// The build once it is no longer pending (polled each second), or `null` without one.
fn wait_for_build(
    client: &Client,
    id: i64,
    function: &Value,
    spinner: Option<&indicatif::ProgressBar>,
) -> CliResult<Value> {
    let mut build = function["build"].clone();
    while matches!(build["status"].as_str(), Some("pending" | "building")) {
        if let Some(bar) = spinner {
            let last = build["log"]
                .as_str()
                .and_then(|log| log.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("");
            bar.set_message(format!(
                "build {}: {}",
                build["status"].as_str().unwrap_or("?"),
                last.chars().take(80).collect::<String>()
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
        build = client.get(&format!("/functions/{id}/build"))?;
    }
    Ok(build)
}

/// Replaces the function's stored test events with the folder's.
pub fn put_tests(client: &Client, id: i64, folder: &Folder) -> CliResult<()> {
    let tests: Vec<Value> = folder.tests.iter().map(|t| t.to_json()).collect();
    client
        .send_json(
            "PUT",
            &format!("/functions/{id}/tests"),
            &json!({"tests": tests}),
        )
        .map(drop)
}

/// Prints the version and URLs.
pub fn report(format: Format, client: &Client, deployed: &Deployed) {
    let function = &deployed.function;
    let name = function["name"].as_str().unwrap_or("?");
    let urls = urls(&client.target, name, function["route"].as_str());
    match format {
        Format::Json => print_json(&json!({
            "id": function["id"],
            "name": name,
            "version": function["version"],
            "changed": deployed.changed,
            "build": function["build"]["status"],
            "urls": urls,
        })),
        Format::Text => {
            let what = if deployed.changed {
                "Deployed"
            } else {
                "Unchanged:"
            };
            println!(
                "{what} {name} version {}",
                output::cell(&function["version"])
            );
            if let Some(status) = function["build"]["status"].as_str() {
                println!("  build:   {status}");
            }
            println!("  execute: {}", output::cell(&urls["execute"]));
            println!("  trigger: {}", output::cell(&urls["trigger"]));
        }
    }
}

/// A failed build: its log's last lines on stderr and exit 1.
pub fn check_build(function: &Value) -> CliResult<()> {
    if function["build"]["status"] != "failed" {
        return Ok(());
    }
    let log = function["build"]["log"].as_str().unwrap_or("");
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(FAILED_LOG_LINES)..];
    eprintln!("the dependency build failed; its log ends with:");
    for line in tail {
        eprintln!("    {line}");
    }
    Err(CliError::FunctionFailed(format!(
        "the build of {}'s dependencies failed (the whole log: faas build-log {})",
        function["name"].as_str().unwrap_or("?"),
        function["name"].as_str().unwrap_or("?")
    )))
}
