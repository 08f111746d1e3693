//! What `faas init` writes: a handler per language and template, a `faas.toml` naming every
//! function field (the optional ones as commented examples), `.faasignore`, and one sample event
//! with the answer the template gives it, so that `faas test` passes on a fresh folder.

use clap::ValueEnum;

/// The kinds of function `init` starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// A function called with an event, returning JSON.
    Plain,
    /// An HTTP endpoint on its route: reads the query, answers with a status and a body.
    Http,
    /// Runs on a cron schedule.
    Cron,
    /// A public POST route that checks the sender's HMAC signature.
    Webhook,
}

/// The languages `init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitLanguage {
    Python,
    Javascript,
}

/// One file to write, relative to the new folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: &'static str,
    pub content: String,
}

/// Every file of a new folder for function `name`.
pub fn files(name: &str, language: InitLanguage, template: Template) -> Vec<NewFile> {
    let (handler_path, handler_name, language_name) = match language {
        InitLanguage::Python => ("main.py", "main.handler", "python"),
        InitLanguage::Javascript => ("index.js", "index.handler", "javascript"),
    };
    let (source, event_name, event) = handler(language, template);
    vec![
        NewFile {
            path: "faas.toml",
            content: manifest(name, language_name, handler_name, template),
        },
        NewFile {
            path: handler_path,
            content: source.to_owned(),
        },
        NewFile {
            path: ".faasignore",
            content: IGNORE.to_owned(),
        },
        NewFile {
            path: event_name,
            content: event.to_owned(),
        },
    ]
}

const IGNORE: &str = "\
# Left out of the package `faas deploy` uploads (gitignore syntax). node_modules/, .git/ and
# .env are never uploaded; dependencies come from requirements.txt / package.json.
events/
__pycache__/
*.pyc
.venv/
*.env
";

fn manifest(name: &str, language: &str, handler: &str, template: Template) -> String {
    let (methods, auth, schedule) = match template {
        Template::Plain | Template::Http => (
            "# http_methods = [\"GET\", \"POST\"]",
            "# http_auth = \"key\"",
            "# schedule = \"*/5 * * * *\"",
        ),
        Template::Cron => (
            "# http_methods = [\"GET\", \"POST\"]",
            "# http_auth = \"key\"",
            "schedule = \"*/5 * * * *\"",
        ),
        Template::Webhook => (
            "http_methods = [\"POST\"]",
            "http_auth = \"none\"",
            "# schedule = \"*/5 * * * *\"",
        ),
    };
    let secret_hint = if template == Template::Webhook {
        "# WEBHOOK_SECRET comes from `faas deploy --env-file secrets.env`, never from this file.\n"
    } else {
        ""
    };
    format!(
        "\
# The function `faas deploy` makes of this folder. Commented lines are optional settings,
# shown with an example value; the api's defaults apply to those left out.
name = \"{name}\"
language = \"{language}\"
# FILE.FUNCTION: the function `{handler}` is called with (event, context).
handler = \"{handler}\"
# docker (runc) or gvisor (runsc)
runtime = \"docker\"
memory_mb = 128
# seconds, 1 to 900
timeout = 10
# Its HTTP trigger's path on the functions' origin (port 8080).
route = \"/{name}\"
{methods}
{auth}
# max_concurrency = 10
# Async calls: retries after a failure, and the age after which they are dropped.
# max_retries = 2
# max_event_age_secs = 21600
# on_success = \"another-function\"
# on_failure = \"another-function\"
{schedule}
# schedule_timezone = \"UTC\"

# [cors]
# allow_origins = [\"https://app.example.com\"]

[env]
# GREETING = \"Hello\"
{secret_hint}"
    )
}

/// The handler's source, the sample event's path and its content.
fn handler(
    language: InitLanguage,
    template: Template,
) -> (&'static str, &'static str, &'static str) {
    use InitLanguage::{Javascript, Python};
    match (language, template) {
        (Python, Template::Plain) => (
            "def handler(event, context):\n    \
             name = (event or {}).get(\"name\", \"world\")\n    \
             print(f\"greeting {name}\")\n    \
             return {\"message\": f\"Hello, {name}!\"}\n",
            "events/hello.json",
            "{\"event\": {\"name\": \"Ada\"}, \"expect\": {\"message\": \"Hello, Ada!\"}}\n",
        ),
        (Javascript, Template::Plain) => (
            "exports.handler = async (event) => {\n  \
             const name = (event && event.name) || \"world\";\n  \
             console.log(`greeting ${name}`);\n  \
             return { message: `Hello, ${name}!` };\n};\n",
            "events/hello.json",
            "{\"event\": {\"name\": \"Ada\"}, \"expect\": {\"message\": \"Hello, Ada!\"}}\n",
        ),
        (Python, Template::Http) => (
            "import json\n\n\n\
             def handler(event, context):\n    \
             \"\"\"An API Gateway (HTTP API 2.0) event in, a status and a body out.\"\"\"\n    \
             query = event.get(\"queryStringParameters\") or {}\n    \
             name = query.get(\"name\", \"world\")\n    \
             return {\n        \
             \"statusCode\": 200,\n        \
             \"headers\": {\"content-type\": \"application/json\"},\n        \
             \"body\": json.dumps({\"message\": f\"Hello, {name}!\"}, separators=(\",\", \":\")),\n    \
             }\n",
            "events/get.json",
            HTTP_EVENT,
        ),
        (Javascript, Template::Http) => (
            "// An API Gateway (HTTP API 2.0) event in, a status and a body out.\n\
             exports.handler = async (event) => {\n  \
             const query = event.queryStringParameters || {};\n  \
             const name = query.name || \"world\";\n  \
             return {\n    \
             statusCode: 200,\n    \
             headers: { \"content-type\": \"application/json\" },\n    \
             body: JSON.stringify({ message: `Hello, ${name}!` }),\n  \
             };\n};\n",
            "events/get.json",
            HTTP_EVENT,
        ),
        (Python, Template::Cron) => (
            "def handler(event, context):\n    \
             \"\"\"Called at each tick of `schedule` with {\"source\": \"schedule\", \"scheduled_time\": ...}.\"\"\"\n    \
             print(f\"tick at {event.get('scheduled_time')}\")\n    \
             return {\"ran_for\": event.get(\"scheduled_time\")}\n",
            "events/tick.json",
            CRON_EVENT,
        ),
        (Javascript, Template::Cron) => (
            "// Called at each tick of `schedule` with {source: \"schedule\", scheduled_time}.\n\
             exports.handler = async (event) => {\n  \
             console.log(`tick at ${event.scheduled_time}`);\n  \
             return { ran_for: event.scheduled_time };\n};\n",
            "events/tick.json",
            CRON_EVENT,
        ),
        (Python, Template::Webhook) => (
            "\"\"\"A webhook on a public route: the sender signs the body with a shared secret\n\
             (`X-Hub-Signature-256: sha256=<hex HMAC>`); 202 when it matches, else 401.\"\"\"\n\
             import base64\nimport hashlib\nimport hmac\nimport json\nimport os\n\n\n\
             def handler(event, context):\n    \
             body = event.get(\"body\") or \"\"\n    \
             raw = base64.b64decode(body) if event.get(\"isBase64Encoded\") else body.encode()\n    \
             secret = os.environ.get(\"WEBHOOK_SECRET\", \"\").encode()\n    \
             sent = (event.get(\"headers\") or {}).get(\"x-hub-signature-256\", \"\")\n    \
             expected = \"sha256=\" + hmac.new(secret, raw, hashlib.sha256).hexdigest()\n    \
             if not secret or not hmac.compare_digest(sent, expected):\n        \
             return {\"statusCode\": 401, \"body\": json.dumps({\"error\": \"bad signature\"}, separators=(\",\", \":\"))}\n    \
             payload = json.loads(raw or b\"{}\")\n    \
             print(f\"received {payload.get('action')}\")\n    \
             return {\"statusCode\": 202, \"body\": json.dumps({\"received\": payload.get(\"action\")}, separators=(\",\", \":\"))}\n",
            "events/unsigned.json",
            WEBHOOK_EVENT,
        ),
        (Javascript, Template::Webhook) => (
            "// A webhook on a public route: the sender signs the body with a shared secret\n\
             // (`X-Hub-Signature-256: sha256=<hex HMAC>`); 202 when it matches, else 401.\n\
             const crypto = require(\"crypto\");\n\n\
             exports.handler = async (event) => {\n  \
             const raw = Buffer.from(event.body || \"\", event.isBase64Encoded ? \"base64\" : \"utf8\");\n  \
             const secret = process.env.WEBHOOK_SECRET || \"\";\n  \
             const sent = Buffer.from((event.headers || {})[\"x-hub-signature-256\"] || \"\");\n  \
             const expected = Buffer.from(\n    \
             \"sha256=\" + crypto.createHmac(\"sha256\", secret).update(raw).digest(\"hex\"),\n  \
             );\n  \
             if (!secret || sent.length !== expected.length || !crypto.timingSafeEqual(sent, expected)) {\n    \
             return { statusCode: 401, body: JSON.stringify({ error: \"bad signature\" }) };\n  \
             }\n  \
             const payload = JSON.parse(raw.toString(\"utf8\") || \"{}\");\n  \
             console.log(`received ${payload.action}`);\n  \
             return { statusCode: 202, body: JSON.stringify({ received: payload.action }) };\n};\n",
            "events/unsigned.json",
            WEBHOOK_EVENT,
        ),
    }
}

const HTTP_EVENT: &str = "{\"event\": {\"version\": \"2.0\", \"rawPath\": \"/\", \"queryStringParameters\": {\"name\": \"Ada\"}, \"headers\": {}, \"requestContext\": {\"http\": {\"method\": \"GET\", \"path\": \"/\"}}}, \"expect\": {\"statusCode\": 200, \"headers\": {\"content-type\": \"application/json\"}, \"body\": \"{\\\"message\\\":\\\"Hello, Ada!\\\"}\"}}\n";

const CRON_EVENT: &str = "{\"event\": {\"source\": \"schedule\", \"scheduled_time\": \"2026-01-01T09:00:00Z\"}, \"expect\": {\"ran_for\": \"2026-01-01T09:00:00Z\"}}\n";

const WEBHOOK_EVENT: &str = "{\"event\": {\"version\": \"2.0\", \"headers\": {}, \"body\": \"{\\\"action\\\":\\\"opened\\\"}\", \"isBase64Encoded\": false}, \"expect\": {\"statusCode\": 401, \"body\": \"{\\\"error\\\":\\\"bad signature\\\"}\"}}\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::{events, manifest};

    #[test]
    fn every_template_has_a_valid_manifest_naming_every_field_and_a_valid_event() {
        for language in [InitLanguage::Python, InitLanguage::Javascript] {
            for template in Template::value_variants() {
                let files = files("hello", language, *template);
                let toml = &files[0].content;
                let parsed = manifest::parse(toml)
                    .unwrap_or_else(|e| panic!("{language:?} {template:?}: {e}"));
                assert_eq!(parsed.route, "/hello");
                for field in manifest::FIELDS {
                    assert!(toml.contains(field), "{template:?} lacks {field}");
                }
                let event = &files[3];
                let stem = event
                    .path
                    .trim_start_matches("events/")
                    .trim_end_matches(".json");
                let test = events::parse(stem, &event.content).unwrap();
                assert!(test.expect.is_some());
                assert!(files[1].path == "main.py" || files[1].path == "index.js");
            }
        }
        let cron = files("tick", InitLanguage::Python, Template::Cron);
        let parsed = manifest::parse(&cron[0].content).unwrap();
        assert_eq!(parsed.fields["schedule"], "*/5 * * * *");
        let hook = files("hook", InitLanguage::Javascript, Template::Webhook);
        let parsed = manifest::parse(&hook[0].content).unwrap();
        assert_eq!(parsed.fields["http_auth"], "none");
    }
}
