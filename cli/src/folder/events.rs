//! A folder's test events, `events/*.json`: each `{"event": ..., "expect": ...}` named by its
//! file's stem, stored with the function (`PUT /functions/{id}/tests`) and run by `faas test`;
//! and what it means for a call to meet an `expect`.

use crate::error::{CliError, CliResult};
use serde_json::{Map, Value, json};
use std::path::Path;

/// The folder holding the test events.
pub const EVENTS_DIR: &str = "events";
/// The most tests the api stores for a function.
pub const MAX_TESTS: usize = 100;

/// One test event.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEvent {
    pub name: String,
    pub event: Value,
    /// `None`: the call must only succeed.
    pub expect: Option<Value>,
}

impl TestEvent {
    /// As the api stores it.
    pub fn to_json(&self) -> Value {
        let mut test = Map::new();
        test.insert("name".into(), json!(self.name));
        test.insert("event".into(), self.event.clone());
        if let Some(expect) = &self.expect {
            test.insert("expect".into(), expect.clone());
        }
        Value::Object(test)
    }
}

/// How a call ended, as far as an `expect` cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Result(Value),
    /// The function failed: its error's `type` (`TimeoutError`, `ValueError`, ...).
    Error {
        kind: String,
        message: String,
    },
}

/// Reads `dir/events/*.json`, sorted by name; none when the folder has no `events/`.
pub fn load(dir: &Path) -> CliResult<Vec<TestEvent>> {
    let events_dir = dir.join(EVENTS_DIR);
    let entries = match std::fs::read_dir(&events_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(CliError::io(&events_dir, error)),
    };
    let mut tests = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| CliError::io(&events_dir, e))?.path();
        if path.extension().is_none_or(|ext| ext != "json") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CliError::io(&path, e))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        tests.push(
            parse(&stem, &text)
                .map_err(|why| CliError::Usage(format!("{EVENTS_DIR}/{stem}.json: {why}")))?,
        );
    }
    if tests.len() > MAX_TESTS {
        return Err(CliError::Usage(format!(
            "{EVENTS_DIR}/ holds {} events; the api keeps at most {MAX_TESTS}",
            tests.len()
        )));
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tests)
}

/// One event file's content, named `name`.
pub fn parse(name: &str, text: &str) -> Result<TestEvent, String> {
    let valid_name = (1..=100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_name {
        return Err("the file's name must be 1 to 100 letters, digits, `.`, `_` or `-`".into());
    }
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(mut object) = value else {
        return Err(r#"must be an object {"event": ..., "expect": ...}"#.into());
    };
    if let Some(other) = object.keys().find(|k| *k != "event" && *k != "expect") {
        return Err(format!(
            "unknown field {other:?}: only \"event\" and \"expect\""
        ));
    }
    let event = object
        .remove("event")
        .ok_or_else(|| r#"missing "event" (the event the function is called with)"#.to_owned())?;
    Ok(TestEvent {
        name: name.to_owned(),
        event,
        expect: object.remove("expect"),
    })
}

/// The error type an `expect` of `{"error": "Type"}` asks for.
fn expected_error(expect: &Value) -> Option<&str> {
    match expect.as_object() {
        Some(object) if object.len() == 1 => object.get("error")?.as_str(),
        _ => None,
    }
}

/// Whether `outcome` meets `expect`; the reason when it does not.
pub fn check(expect: Option<&Value>, outcome: &Outcome) -> Result<(), String> {
    match (expect, outcome) {
        (None, Outcome::Result(_)) => Ok(()),
        (None, Outcome::Error { kind, message }) => Err(format!("failed: {kind}: {message}")),
        (Some(expect), outcome) => match (expected_error(expect), outcome) {
            (Some(wanted), Outcome::Error { kind, .. }) if wanted == kind => Ok(()),
            (Some(wanted), Outcome::Error { kind, message }) => Err(format!(
                "expected an error of type {wanted}, got {kind}: {message}"
            )),
            (Some(wanted), Outcome::Result(result)) => Err(format!(
                "expected an error of type {wanted}, got the result {result}"
            )),
            (None, Outcome::Result(result)) if result == expect => Ok(()),
            (None, Outcome::Result(result)) => Err(format!("expected {expect}, got {result}")),
            (None, Outcome::Error { kind, message }) => {
                Err(format!("expected {expect}, got {kind}: {message}"))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_files_are_read_with_their_expectation() {
        let test = parse("hello", r#"{"event": {"name": "Ada"}, "expect": {"m": 1}}"#).unwrap();
        assert_eq!(test.event, json!({"name": "Ada"}));
        assert_eq!(
            test.to_json(),
            json!({"name": "hello", "event": {"name": "Ada"}, "expect": {"m": 1}})
        );
        let bare = parse("a.b-c_1", r#"{"event": null}"#).unwrap();
        assert_eq!(bare.expect, None);
        assert_eq!(bare.to_json(), json!({"name": "a.b-c_1", "event": null}));
    }

    #[test]
    fn bad_event_files_say_why() {
        for (name, text, why) in [
            ("ok", "{", "not JSON"),
            ("ok", "[1]", "must be an object"),
            ("ok", r#"{"expect": 1}"#, "missing \"event\""),
            (
                "ok",
                r#"{"event": 1, "expected": 1}"#,
                "unknown field \"expected\"",
            ),
            ("a b", r#"{"event": 1}"#, "file's name"),
        ] {
            let error = parse(name, text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn expectations_match_results_by_equality_and_errors_by_type() {
        let result = |v: Value| Outcome::Result(v);
        let error = |kind: &str| Outcome::Error {
            kind: kind.into(),
            message: "boom".into(),
        };
        assert!(check(None, &result(json!(1))).is_ok());
        assert!(check(None, &error("ValueError")).is_err());
        let expect = json!({"message": "Hello, Ada"});
        assert!(check(Some(&expect), &result(json!({"message": "Hello, Ada"}))).is_ok());
        let why = check(Some(&expect), &result(json!({"message": "Hello"}))).unwrap_err();
        assert!(
            why.contains("expected {\"message\":\"Hello, Ada\"}"),
            "{why}"
        );
        let wants_error = json!({"error": "ValueError"});
        assert!(check(Some(&wants_error), &error("ValueError")).is_ok());
        assert!(check(Some(&wants_error), &error("TypeError")).is_err());
        assert!(check(Some(&wants_error), &result(json!(1))).is_err());
        // With more than the one field, it is a result to equal.
        let literal = json!({"error": "ValueError", "code": 1});
        assert!(check(Some(&literal), &result(literal.clone())).is_ok());
        assert!(check(Some(&json!({"error": 3})), &result(json!({"error": 3}))).is_ok());
    }

    #[test]
    fn a_folder_without_events_has_none() {
        let dir = std::env::temp_dir().join(format!("faas-events-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(EVENTS_DIR)).unwrap();
        assert_eq!(load(&dir.join("absent")).unwrap(), Vec::new());
        std::fs::write(dir.join("events/b.json"), r#"{"event": 2}"#).unwrap();
        std::fs::write(dir.join("events/a.json"), r#"{"event": 1}"#).unwrap();
        std::fs::write(dir.join("events/readme.txt"), "not an event").unwrap();
        let names: Vec<String> = load(&dir).unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["a", "b"]);
        std::fs::write(dir.join("events/c.json"), "{").unwrap();
        let error = load(&dir).unwrap_err().to_string();
        assert!(error.starts_with("events/c.json: not JSON"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
