//! `faas dev`: deploys, redeploys after a file changes, and tails the function's logs.

use crate::support::{Running, Scratch, unique};
use serde_json::json;
use std::time::Duration;

#[test]
fn dev_redeploys_after_a_file_changes_and_tails_the_logs() {
    let scratch = Scratch::new("dev");
    let name = format!("dev-{}", unique());
    scratch.faas(&["init", &name]).ok();
    let mut dev = Running::spawn(scratch.command(&["dev", &name]));
    dev.wait_for(
        &format!("Deployed {name} version 1"),
        Duration::from_secs(60),
    );
    // The watcher and the log stream start right after the first deploy.
    std::thread::sleep(Duration::from_millis(1500));
    let handler = scratch.dir.join(&name).join("main.py");
    let source = std::fs::read_to_string(&handler).unwrap();
    std::fs::write(&handler, source.replace("Hello", "Howdy")).unwrap();
    dev.wait_for(
        &format!("Deployed {name} version 2"),
        Duration::from_secs(30),
    );
    let run = scratch
        .faas(&["invoke", &name, "-d", r#"{"name": "Ada"}"#, "-o", "json"])
        .ok();
    assert_eq!(run.json()["result"], json!({"message": "Howdy, Ada!"}));
    let id = run.json()["invocation_id"].as_str().unwrap().to_owned();
    dev.wait_for(&id, Duration::from_secs(5));
    dev.wait_for("    greeting Ada", Duration::from_secs(2));
    dev.stop();
}
