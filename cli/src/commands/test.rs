//! `faas test [DIR]`: each of the folder's `events/*.json` sent to the deployed function (a
//! synchronous call), its answer checked against the event's `expect`; the events are stored
//! with the function too, so that the console runs the same ones.

use super::deploy::put_tests;
use super::invoke::{call, outcome};
use super::{function_id, require_function};
use crate::Context;
use crate::error::{CliError, CliResult};
use crate::folder::{Folder, events};
use crate::output::{Format, print_json};
use serde_json::json;
use std::path::PathBuf;

/// `faas test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The function's folder [default: the current directory].
    pub dir: Option<PathBuf>,
    /// Run the events in gVisor (`/execute_gvisor`).
    #[arg(long)]
    pub gvisor: bool,
}

/// Runs the events; exit 1 when one fails.
pub fn test(context: &Context, args: TestArgs) -> CliResult {
    let dir = crate::folder_or_here(args.dir);
    let folder = Folder::load(&dir, None)?;
    if folder.tests.is_empty() {
        return Err(CliError::Usage(format!(
            "{} has no test events: add events/NAME.json files ({{\"event\": ..., \"expect\": ...}})",
            dir.display()
        )));
    }
    let client = context.client()?;
    let name = &folder.manifest.name;
    let function = require_function(&client, name).map_err(|error| match error {
        CliError::Usage(why) => CliError::Usage(format!(
            "{why}; deploy it first: faas deploy {}",
            dir.display()
        )),
        other => other,
    })?;
    put_tests(&client, function_id(&function)?, &folder)?;
    let mut results = Vec::new();
    let mut failed = 0;
    for test in &folder.tests {
        let answer = call(&client, name, &test.event, args.gvisor)?;
        let verdict = events::check(test.expect.as_ref(), &outcome(&answer));
        if verdict.is_err() {
            failed += 1;
        }
        if context.format == Format::Text {
            match &verdict {
                Ok(()) => println!("PASS {}", test.name),
                Err(why) => println!("FAIL {}: {why}", test.name),
            }
        }
        results.push(json!({
            "name": test.name,
            "passed": verdict.is_ok(),
            "reason": verdict.err(),
            "invocation_id": answer.body["invocation_id"],
        }));
    }
    let total = folder.tests.len();
    match context.format {
        Format::Json => print_json(&json!({
            "function": name,
            "passed": total - failed,
            "failed": failed,
            "results": results,
        })),
        Format::Text => println!("{} of {total} events passed", total - failed),
    }
    if failed > 0 {
        return Err(CliError::TestsFailed { failed, total });
    }
    Ok(())
}
