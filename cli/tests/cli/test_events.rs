//! `faas test`: the folder's events against the deployed function, pass and fail as their
//! `expect` says, and stored with the function.

use crate::support::{Scratch, cluster, unique};

#[test]
fn test_passes_and_fails_as_the_events_expect_and_stores_them() {
    let scratch = Scratch::new("test-events");
    let name = format!("tested-{}", unique());
    let toml =
        format!("name = \"{name}\"\nlanguage = \"python\"\nroute = \"/{name}\"\ntimeout = 5\n");
    let dir = scratch.write(
        &name,
        &[
            ("faas.toml", &toml),
            ("main.py", "def handler(event, context):\n    if event.get(\"fail\"):\n        raise ValueError(\"asked to\")\n    return {\"double\": event[\"n\"] * 2}\n"),
            ("events/double.json", r#"{"event": {"n": 2}, "expect": {"double": 4}}"#),
            ("events/raises.json", r#"{"event": {"fail": true}, "expect": {"error": "ValueError"}}"#),
            ("events/runs.json", r#"{"event": {"n": 0}}"#),
        ],
    );
    scratch.faas(&["deploy", &name]).ok();
    let passed = scratch.faas(&["test", &name]).ok();
    for event in ["double", "raises", "runs"] {
        assert!(
            passed.stdout.contains(&format!("PASS {event}")),
            "{passed:#?}"
        );
    }
    let id = cluster().functions_named(&name)[0]["id"].as_i64().unwrap();
    let (status, stored) = cluster().api("GET", &format!("/functions/{id}/tests"), None);
    assert_eq!(status, 200, "{stored}");
    let names: Vec<&str> = stored["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["double", "raises", "runs"]);
    assert_eq!(
        stored["tests"][1]["expect"],
        serde_json::json!({"error": "ValueError"})
    );

    std::fs::write(
        dir.join("events/wrong.json"),
        r#"{"event": {"n": 2}, "expect": {"double": 5}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("events/wrong-error.json"),
        r#"{"event": {"fail": true}, "expect": {"error": "KeyError"}}"#,
    )
    .unwrap();
    let failed = scratch.faas(&["test", &name]).fails(1);
    assert!(
        failed
            .stdout
            .contains("FAIL wrong: expected {\"double\":5}, got {\"double\":4}"),
        "{failed:#?}"
    );
    assert!(
        failed
            .stdout
            .contains("FAIL wrong-error: expected an error of type KeyError, got ValueError"),
        "{failed:#?}"
    );
    assert!(failed.stdout.contains("PASS double"), "{failed:#?}");
    let json = scratch.faas(&["test", &name, "-o", "json"]).fails(1).json();
    assert_eq!(json["passed"], 3);
    assert_eq!(json["failed"], 2);
    let (_, stored) = cluster().api("GET", &format!("/functions/{id}/tests"), None);
    assert_eq!(stored["tests"].as_array().unwrap().len(), 5);
}
