//! `faas invoke NAME`: a synchronous call (result on stdout, logs on stderr), or an async one
//! (`--async` prints its id, `--wait` follows it to its end).

use crate::Context;
use crate::client::{Answer, Client, api_error, path_segment};
use crate::error::{CliError, CliResult};
use crate::folder::events::Outcome;
use crate::output::{Format, print_json};
use serde_json::{Value, json};
use std::io::Read as _;
use std::time::Duration;

/// `faas invoke`.
#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// The function's name.
    pub name: String,
    /// The event: JSON, `@FILE` for a file's JSON, or `-` for stdin's [default: {}].
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// Queue the call and print its invocation id.
    #[arg(long = "async")]
    pub is_async: bool,
    /// With --async (implied): wait for the call's end and print it like a synchronous one.
    #[arg(long)]
    pub wait: bool,
    /// Run it in gVisor (`/execute_gvisor`), whatever its runtime.
    #[arg(long, conflicts_with = "is_async")]
    pub gvisor: bool,
}

/// The event `-d` names.
pub fn read_event(data: Option<&str>) -> CliResult<Value> {
    let (text, source) = match data {
        None => return Ok(json!({})),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::io("stdin", e))?;
            (text, "stdin".to_owned())
        }
        Some(path) if path.starts_with('@') => {
            let path = &path[1..];
            let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))?;
            (text, path.to_owned())
        }
        Some(text) => (text.to_owned(), "-d".to_owned()),
    };
    serde_json::from_str(&text)
        .map_err(|error| CliError::Usage(format!("{source}: the event is not JSON: {error}")))
}

/// Calls the function.
pub fn invoke(context: &Context, args: InvokeArgs) -> CliResult {
    let event = read_event(args.data.as_deref())?;
    let client = context.client()?;
    if args.is_async || args.wait {
        let accepted = client.send_json(
            "POST",
            &format!("/execute_async/{}", path_segment(&args.name)),
            &json!({"event": event}),
        )?;
        let id = accepted["invocation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !args.wait {
            match context.format {
                Format::Json => print_json(&accepted),
                Format::Text => println!("{id}"),
            }
            return Ok(());
        }
        let finished = wait_for(&client, &id)?;
        return report_async(context.format, &finished);
    }
    let answer = call(&client, &args.name, &event, args.gvisor)?;
    report_sync(context.format, &answer)
}

/// `POST /execute/NAME` (or `/execute_gvisor`): the answer of a call that ran, failed or not;
/// an error when the platform refused it.
pub fn call(client: &Client, name: &str, event: &Value, gvisor: bool) -> CliResult<Answer> {
    let route = if gvisor { "execute_gvisor" } else { "execute" };
    let answer = client.answer(
        "POST",
        &format!("/{route}/{}", path_segment(name)),
        Some(&json!({"event": event})),
    )?;
    if answer.status.is_success() || ran(&answer.body) {
        Ok(answer)
    } else {
        Err(api_error(answer.status, &answer.body))
    }
}

/// Whether an error answer is the function's own failure (it ran, or tried to): an error of
/// its own, or its timeout.
fn ran(body: &Value) -> bool {
    body["invocation_id"].is_string()
        && (body["error"].is_object() || body["code"] == "function_timeout")
}

/// How a call's answer ended.
pub fn outcome(answer: &Answer) -> Outcome {
    if answer.status.is_success() {
        return Outcome::Result(answer.body["result"].clone());
    }
    error_outcome(&answer.body["error"], &answer.body)
}

fn error_outcome(error: &Value, body: &Value) -> Outcome {
    Outcome::Error {
        kind: error["type"]
            .as_str()
            .or_else(|| body["code"].as_str())
            .unwrap_or("Error")
            .to_owned(),
        message: error["message"]
            .as_str()
            .or_else(|| body["detail"].as_str())
            .unwrap_or("")
            .to_owned(),
    }
}

fn print_logs(logs: &Value) {
    if let Some(logs) = logs.as_str().filter(|l| !l.is_empty()) {
        eprint!("{logs}");
        if !logs.ends_with('\n') {
            eprintln!();
        }
    }
}

/// Prints a synchronous call's answer; exit 1 when the function failed.
fn report_sync(format: Format, answer: &Answer) -> CliResult {
    match format {
        Format::Json => print_json(&answer.body),
        Format::Text => {
            print_logs(&answer.body["logs"]);
            if answer.status.is_success() {
                print_json(&answer.body["result"]);
            }
        }
    }
    match outcome(answer) {
        Outcome::Result(_) => Ok(()),
        Outcome::Error { kind, message } => Err(CliError::FunctionFailed(format!(
            "{kind}: {message} (invocation {})",
            answer.body["invocation_id"].as_str().unwrap_or("?")
        ))),
    }
}

/// Statuses an async invocation ends in.
const FINAL: [&str; 5] = ["succeeded", "failed", "timeout", "dead_lettered", "expired"];

/// Polls `GET /invocations/{id}` until the invocation ended.
pub fn wait_for(client: &Client, id: &str) -> CliResult<Value> {
    let mut pause = Duration::from_millis(200);
    loop {
        let invocation = client.get(&format!("/invocations/{}", path_segment(id)))?;
        if invocation["status"]
            .as_str()
            .is_some_and(|status| FINAL.contains(&status))
        {
            return Ok(invocation);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn report_async(format: Format, invocation: &Value) -> CliResult {
    match format {
        Format::Json => print_json(invocation),
        Format::Text => {
            print_logs(&invocation["logs"]);
            if invocation["status"] == "succeeded" {
                print_json(&invocation["result"]);
            }
        }
    }
    if invocation["status"] == "succeeded" {
        return Ok(());
    }
    let Outcome::Error { kind, message } = error_outcome(&invocation["error"], invocation) else {
        unreachable!("error_outcome is an error")
    };
    Err(CliError::FunctionFailed(format!(
        "{} ({kind}: {message}) (invocation {})",
        invocation["status"].as_str().unwrap_or("?"),
        invocation["invocation_id"].as_str().unwrap_or("?")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::StatusCode;

    #[test]
    fn events_come_from_the_flag_or_a_file() {
        assert_eq!(read_event(None).unwrap(), json!({}));
        assert_eq!(read_event(Some(r#"{"a": 1}"#)).unwrap(), json!({"a": 1}));
        let path = std::env::temp_dir().join(format!("faas-event-{}.json", std::process::id()));
        std::fs::write(&path, "[1, 2]").unwrap();
        assert_eq!(
            read_event(Some(&format!("@{}", path.display()))).unwrap(),
            json!([1, 2])
        );
        std::fs::remove_file(&path).unwrap();
        let error = read_event(Some("{nope")).unwrap_err().to_string();
        assert!(error.starts_with("-d: the event is not JSON"), "{error}");
        assert!(read_event(Some("@/no/such/file")).is_err());
    }

    #[test]
    fn a_function_error_is_an_outcome_a_refusal_is_not() {
        let failed = Answer {
            status: StatusCode::BAD_GATEWAY,
            body: json!({"code": "function_error", "detail": "d", "invocation_id": "i",
                         "error": {"type": "ValueError", "message": "bad"}}),
        };
        assert!(ran(&failed.body));
        assert_eq!(
            outcome(&failed),
            Outcome::Error {
                kind: "ValueError".into(),
                message: "bad".into()
            }
        );
        let refused = json!({"code": "function_not_found", "detail": "no"});
        assert!(!ran(&refused));
        let ok = Answer {
            status: StatusCode::OK,
            body: json!({"result": {"m": 1}}),
        };
        assert_eq!(outcome(&ok), Outcome::Result(json!({"m": 1})));
    }
}
