//! What the console's forms mean, pure: a function's settings form as the body of a save, the
//! field an api message is about (so the form shows it by that field), and the templates a new
//! function starts from. No I/O: every rule is unit-tested below.

use serde_json::{Map, Value, json};

/// The settings form's fields, in the order the page shows them.
pub const SETTINGS_FIELDS: [&str; 16] = [
    "handler",
    "runtime",
    "memory_mb",
    "timeout",
    "max_concurrency",
    "route",
    "http_methods",
    "http_auth",
    "env",
    "dependencies",
    "max_retries",
    "max_event_age_secs",
    "on_success",
    "on_failure",
    "schedule",
    "schedule_timezone",
];

/// The fields a number goes in; empty means "none" (null) where the api allows it.
const NUMBER_FIELDS: [&str; 5] = [
    "memory_mb",
    "timeout",
    "max_concurrency",
    "max_retries",
    "max_event_age_secs",
];

/// A form field's problem: which field, and the message the page shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// A field of the form, or `None` for a problem of the whole form.
    pub field: Option<&'static str>,
    pub message: String,
}

/// The field an api message names first (`"timeout from 1 to 900; got 0"` is about `timeout`,
/// `"schedule: ..."` about `schedule`), among `fields`; `None` when it names none of them.
pub fn field_of(message: &str, fields: &[&'static str]) -> Option<&'static str> {
    let word: String = message
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
        .collect();
    fields.iter().copied().find(|field| *field == word)
}

/// The body that saves `current` (a version's body, as `store::version_body` writes it) with
/// the settings form's `form` applied; a field the form does not carry keeps its value. Every
/// value is checked by the api's own validation afterwards; this only turns text into JSON.
pub fn apply_settings(current: &Value, form: &[(String, String)]) -> Result<Value, FieldProblem> {
    let mut body = current.as_object().cloned().unwrap_or_else(Map::new);
    for &field in &SETTINGS_FIELDS {
        let Some(text) = form.iter().find(|(k, _)| k == field).map(|(_, v)| v.trim()) else {
            continue;
        };
        let value = if NUMBER_FIELDS.contains(&field) {
            number(field, text)?
        } else {
            match field {
                "env" => env(text)?,
                "http_methods" => methods(text),
                "dependencies" | "on_success" | "on_failure" | "schedule" if text.is_empty() => {
                    Value::Null
                }
                _ => Value::String(text.to_owned()),
            }
        };
        body.insert(field.to_owned(), value);
    }
    Ok(Value::Object(body))
}

fn number(field: &'static str, text: &str) -> Result<Value, FieldProblem> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    text.parse::<i64>()
        .map(Value::from)
        .map_err(|_| FieldProblem {
            field: Some(field),
            message: format!("{field} must be a whole number; got {text:?}"),
        })
}

/// `NAME=value` lines (blank lines skipped) as the env object.
fn env(text: &str) -> Result<Value, FieldProblem> {
    let mut env = Map::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(FieldProblem {
                field: Some("env"),
                message: format!(
                    "env line {} must be NAME=value; got {:?}",
                    n + 1,
                    line.chars().take(64).collect::<String>()
                ),
            });
        };
        env.insert(name.trim().to_owned(), Value::String(value.to_owned()));
    }
    Ok(Value::Object(env))
}

/// Methods separated by commas or spaces, upper-cased; none: every method (null).
fn methods(text: &str) -> Value {
    let methods: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    if methods.is_empty() {
        Value::Null
    } else {
        json!(methods)
    }
}

/// The env object as the form's `NAME=value` lines.
pub fn env_lines(env: &Value) -> String {
    env.as_object()
        .map(|env| {
            env.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// A function to start from.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Its value in the form.
    pub id: &'static str,
    pub title: &'static str,
    pub language: &'static str,
    pub code: &'static str,
    /// Whether its route answers anyone (`http_auth: none`), as a webhook's must.
    pub public: bool,
    /// Its schedule, for the cron template.
    pub schedule: Option<&'static str>,
    /// Its methods, for the HTTP API and webhook templates.
    pub methods: Option<&'static [&'static str]>,
}

/// The templates a new function starts from.
pub const TEMPLATES: [Template; 6] = [
    Template {
        id: "python-hello",
        title: "Python: hello",
        language: "python",
        code: "def handler(event, context):\n    name = event.get(\"name\", \"world\")\n    print(f\"saying hello to {name}\")\n    return {\"message\": f\"Hello, {name}\"}\n",
        public: false,
        schedule: None,
        methods: None,
    },
    Template {
        id: "javascript-hello",
        title: "JavaScript: hello",
        language: "javascript",
        code: "exports.handler = async (event, context) => {\n  const name = event.name || \"world\";\n  console.log(`saying hello to ${name}`);\n  return { message: `Hello, ${name}` };\n};\n",
        public: false,
        schedule: None,
        methods: None,
    },
    Template {
        id: "python-http-api",
        title: "Python: HTTP API",
        language: "python",
        code: "import json\n\n\ndef handler(event, context):\n    # An HTTP trigger's event is API Gateway's HTTP API payload 2.0.\n    method = event.get(\"requestContext\", {}).get(\"http\", {}).get(\"method\", \"GET\")\n    body = json.loads(event.get(\"body\") or \"{}\")\n    print(f\"{method} {event.get('rawPath')}\")\n    return {\n        \"statusCode\": 200,\n        \"headers\": {\"content-type\": \"application/json\"},\n        \"body\": json.dumps({\"method\": method, \"received\": body}),\n    }\n",
        public: false,
        schedule: None,
        methods: Some(&["GET", "POST"]),
    },
    Template {
        id: "javascript-http-api",
        title: "JavaScript: HTTP API",
        language: "javascript",
        code: "exports.handler = async (event) => {\n  // An HTTP trigger's event is API Gateway's HTTP API payload 2.0.\n  const method = event.requestContext?.http?.method || \"GET\";\n  const body = event.body ? JSON.parse(event.body) : {};\n  console.log(`${method} ${event.rawPath}`);\n  return {\n    statusCode: 200,\n    headers: { \"content-type\": \"application/json\" },\n    body: JSON.stringify({ method, received: body }),\n  };\n};\n",
        public: false,
        schedule: None,
        methods: Some(&["GET", "POST"]),
    },
    Template {
        id: "python-webhook",
        title: "Python: webhook (public POST)",
        language: "python",
        code: "import json\n\n\ndef handler(event, context):\n    # Anyone may call a public route: check what you receive before you trust it.\n    payload = json.loads(event.get(\"body\") or \"{}\")\n    print(\"webhook received\", sorted(payload)[:10])\n    return {\"statusCode\": 204, \"body\": \"\"}\n",
        public: true,
        schedule: None,
        methods: Some(&["POST"]),
    },
    Template {
        id: "python-cron",
        title: "Python: every 5 minutes",
        language: "python",
        code: "def handler(event, context):\n    # A schedule's event: {\"source\": \"schedule\", \"scheduled_time\": RFC 3339}.\n    print(\"tick\", event.get(\"scheduled_time\"))\n    return {\"ok\": True}\n",
        public: false,
        schedule: Some("*/5 * * * *"),
        methods: None,
    },
];

/// The template `id` names.
pub fn template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

/// The body that creates function `name` from `template`, its route `/name`.
pub fn from_template(template: &Template, name: &str) -> Value {
    let mut body = json!({
        "name": name,
        "route": format!("/{name}"),
        "language": template.language,
        "code": template.code,
        "timeout": 10,
    });
    if template.public {
        body["http_auth"] = json!("none");
    }
    if let Some(schedule) = template.schedule {
        body["schedule"] = json!(schedule);
    }
    if let Some(methods) = template.methods {
        body["http_methods"] = json!(methods);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_message_is_about_the_field_it_names_first() {
        let fields = &SETTINGS_FIELDS;
        assert_eq!(
            field_of("timeout from 1 to 900; got 0", fields),
            Some("timeout")
        );
        assert_eq!(field_of("schedule: invalid cron", fields), Some("schedule"));
        assert_eq!(
            field_of("memory_mb from 64 to 10240; got 1", fields),
            Some("memory_mb")
        );
        assert_eq!(field_of("route /a is taken", fields), Some("route"));
        assert_eq!(field_of("code must not be blank", fields), None);
        assert_eq!(field_of("Timeout is wrong", fields), None);
        assert_eq!(field_of("", fields), None);
    }

    #[test]
    fn the_settings_form_becomes_a_save_body_that_keeps_what_it_does_not_carry() {
        let current =
            json!({"name": "f", "code": "x", "timeout": 5, "cors": {"allow_origins": ["*"]}});
        let body = apply_settings(
            &current,
            &form(&[
                ("timeout", " 30 "),
                ("max_concurrency", ""),
                ("env", "A=1\n\nB = two=2\r\n"),
                ("http_methods", "get, post"),
                ("schedule", ""),
                ("handler", "main"),
                ("csrf", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(body["timeout"], 30);
        assert_eq!(body["max_concurrency"], Value::Null);
        assert_eq!(body["env"], json!({"A": "1", "B": " two=2"}));
        assert_eq!(body["http_methods"], json!(["GET", "POST"]));
        assert_eq!(body["schedule"], Value::Null);
        assert_eq!(body["handler"], "main");
        assert_eq!(body["code"], "x", "kept");
        assert_eq!(body["cors"], json!({"allow_origins": ["*"]}), "kept");
        assert!(body.get("csrf").is_none());
    }

    #[test]
    fn a_form_value_that_is_not_what_its_field_takes_is_that_fields_problem() {
        let current = json!({});
        let problem = apply_settings(&current, &form(&[("timeout", "ten")])).unwrap_err();
        assert_eq!(problem.field, Some("timeout"));
        assert!(problem.message.contains("whole number"), "{problem:?}");
        let problem = apply_settings(&current, &form(&[("env", "A=1\nnot a pair")])).unwrap_err();
        assert_eq!(problem.field, Some("env"));
        assert!(problem.message.contains("line 2"), "{problem:?}");
    }

    #[test]
    fn env_lines_read_back_as_the_same_env() {
        let env = json!({"A": "1", "B": "x=y"});
        let body = apply_settings(&json!({}), &form(&[("env", &env_lines(&env))])).unwrap();
        assert_eq!(body["env"], env);
    }

    #[test]
    fn every_template_makes_a_body_of_its_language_under_its_name() {
        for template in &TEMPLATES {
            let body = from_template(template, "t1");
            assert_eq!(body["name"], "t1");
            assert_eq!(body["route"], "/t1");
            assert_eq!(body["language"], template.language);
            assert!(!template.code.trim().is_empty());
        }
        assert_eq!(
            from_template(template("python-webhook").unwrap(), "w")["http_auth"],
            "none"
        );
        assert!(template("nope").is_none());
    }
}
