//! `faas logs`: the records with their logs, and `-f` following the stream live, resuming
//! across an api restart without gaps or duplicates.

use crate::support::{Running, Scratch, cluster, free_port, unique};
use std::time::{Duration, Instant};

/// Deploys the python template as `name`.
fn deployed(scratch: &Scratch, name: &str) {
    scratch.faas(&["init", name]).ok();
    scratch.faas(&["deploy", name]).ok();
}

/// Calls `name` through the shared api; the invocation id.
fn call(scratch: &Scratch, name: &str, who: &str) -> String {
    let event = format!("{{\"name\": \"{who}\"}}");
    let run = scratch
        .faas(&["invoke", name, "-d", &event, "-o", "json"])
        .ok();
    run.json()["invocation_id"].as_str().unwrap().to_owned()
}

#[test]
fn logs_lists_invocations_with_their_log_lines() {
    let scratch = Scratch::new("logs-list");
    let name = format!("logs-{}", unique());
    deployed(&scratch, &name);
    let first = call(&scratch, &name, "Ada");
    let second = call(&scratch, &name, "Bo");
    let run = scratch.faas(&["logs", &name, "--since", "5m"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = |id: &str| {
        lines
            .iter()
            .position(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} missing: {}", run.stdout))
    };
    // Oldest first, each header followed by its logs, indented.
    assert!(at(&first) < at(&second), "{}", run.stdout);
    assert!(lines[at(&first)].contains("succeeded"), "{}", run.stdout);
    assert!(lines[at(&first)].contains("attempt 1"), "{}", run.stdout);
    assert_eq!(lines[at(&first) + 1], "    greeting Ada", "{}", run.stdout);
    assert_eq!(lines[at(&second) + 1], "    greeting Bo", "{}", run.stdout);

    let one = scratch.faas(&["logs", "--id", &second]).ok();
    assert!(
        one.stdout.contains(&second) && !one.stdout.contains(&first),
        "{one:#?}"
    );
    let failed = scratch.faas(&["logs", &name, "--status", "failed"]).ok();
    assert!(failed.stdout.trim().is_empty(), "{failed:#?}");
    let json = scratch.faas(&["logs", &name, "-o", "json"]).ok();
    for line in json.stdout.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["function"], name.as_str());
    }
}

#[test]
fn logs_follow_shows_a_call_made_from_another_process_within_a_second() {
    let scratch = Scratch::new("logs-follow");
    let name = format!("follow-{}", unique());
    deployed(&scratch, &name);
    let mut follower = Running::spawn(scratch.command(&["logs", &name, "-f"]));
    // Let it connect: only calls finished after the stream opened are sent.
    std::thread::sleep(Duration::from_millis(1500));
    let id = call(&scratch, &name, "Live");
    let called = Instant::now();
    let line = follower.wait_for(&id, Duration::from_secs(5));
    let waited = called.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "shown after {waited:?}: {line}"
    );
    follower.wait_for("    greeting Live", Duration::from_secs(1));
    follower.stop();
}

#[test]
fn logs_follow_resumes_across_an_api_restart_without_gaps_or_duplicates() {
    let scratch = Scratch::new("logs-resume");
    let name = format!("resume-{}", unique());
    deployed(&scratch, &name);
    let cluster = cluster();
    // A second api replica, which the follower reads, restarted while calls go through the first.
    let (port, functions_port) = (free_port(), free_port());
    let mut replica = cluster.start_api(port, functions_port, &format!("replica-{name}"));
    let replica_url = format!("http://127.0.0.1:{port}");
    let mut follower =
        Running::spawn(scratch.command(&["logs", &name, "-f", "--url", &replica_url]));
    std::thread::sleep(Duration::from_millis(1500));

    let mut ids = Vec::new();
    for who in ["a1", "a2", "a3"] {
        ids.push(call(&scratch, &name, who));
    }
    follower.wait_for(&ids[2], Duration::from_secs(10));
    replica.stop();
    for who in ["b1", "b2", "b3"] {
        ids.push(call(&scratch, &name, who));
    }
    let mut replica = cluster.start_api(port, functions_port, &format!("replica-{name}"));
    for who in ["c1", "c2"] {
        ids.push(call(&scratch, &name, who));
    }
    follower.wait_for(&ids[7], Duration::from_secs(30));
    follower.drain(Duration::from_secs(2));
    let seen = follower.seen.clone();
    let stderr = follower.stop();
    replica.stop();
    for id in &ids {
        let count = seen
            .iter()
            .filter(|line| line.contains(id.as_str()))
            .count();
        assert_eq!(
            count,
            1,
            "{id} shown {count} times:\n{}\nstderr: {stderr}",
            seen.join("\n")
        );
    }
    // In the order they were made.
    let positions: Vec<usize> = ids
        .iter()
        .map(|id| seen.iter().position(|l| l.contains(id.as_str())).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{}",
        seen.join("\n")
    );
    assert!(stderr.contains("reconnecting"), "{stderr}");
}
