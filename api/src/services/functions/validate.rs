//! What a saved function may be: its input as the API takes it, and [`ValidFunction::parse`],
//! which checks every field against the platform's rules and its namespace's policy and fills
//! in the defaults. Pure: no I/O, so every rule is tested by a table below.

use crate::domain::deps;
use crate::domain::http_trigger::{self, Cors, HttpAuth, RoutePattern};
use crate::domain::schedule::{self, Schedule};
use crate::store::FunctionFields;
use common::{Language, Runtime};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

const MAX_NAME_LEN: usize = 64;
const TIMEOUT_RANGE_S: RangeInclusive<i64> = 1..=900;
const MEMORY_RANGE_MB: RangeInclusive<i64> = 64..=10_240;
const DEFAULT_MEMORY_MB: i64 = 128;
/// The longest `handler`.
const MAX_HANDLER_LEN: usize = 128;
const MAX_CONCURRENCY_RANGE: RangeInclusive<i64> = 1..=1000;
const MAX_RETRIES_RANGE: RangeInclusive<i64> = 0..=5;
const DEFAULT_MAX_RETRIES: i64 = 2;
const MAX_EVENT_AGE_RANGE_S: RangeInclusive<i64> = 60..=21_600;
const DEFAULT_MAX_EVENT_AGE_SECS: i64 = 21_600;
/// Lambda's limit on the summed size of a function's environment.
const MAX_ENV_BYTES: usize = 4 * 1024;

/// The body of `POST /functions/` and `PUT /functions/{id}`. The schema's limits are those
/// `ValidFunction::parse` enforces (the schemathesis run in scripts/schema-check.sh holds them together).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "name": "hello",
    "route": "/hello",
    "language": "python",
    "code": "def handler(event, context):\n    return {\"message\": \"Hello from faas\", \"event\": event}",
    "timeout": 5
})))]
pub struct FunctionInput {
    /// Unique in the namespace.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    name: String,
    /// Its HTTP trigger's path on the functions' origin: `/`, or `/`-separated segments
    /// that are literals, `{name}` parameters or a final `{name+}` (the rest of the path), each
    /// parameter name once; at most 256 bytes. Unique across namespaces, and so is its shape
    /// (the route with its parameter names erased): the same shape is 409. A route starting
    /// with a parameter needs an admin key (403 otherwise).
    #[schema(
        pattern = r"^(/|(/([A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\}))+(/\{[A-Za-z_][A-Za-z0-9_]*\+\})?|/\{[A-Za-z_][A-Za-z0-9_]*\+\})$",
        max_length = 256,
        example = "/hello"
    )]
    route: String,
    language: Language,
    /// The source, defining the handler: not blank, no NUL, at most `MAX_CODE_BYTES` (1 MiB
    /// by default) bytes (413 over it). Exactly one of `code` and `code_zip`.
    #[serde(default)]
    #[schema(
        min_length = 1,
        pattern = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    )]
    code: Option<String>,
    /// A deployment package, as Lambda takes one: a .zip of the function's files, base64
    /// (standard alphabet), at most 50 MB zipped and 250 MB unpacked (with its dependencies).
    /// `handler` must then be `file.name`, the file in the zip (`file.py` or `file/__init__.py`;
    /// `file.js`, `.mjs` or `.cjs`). Entries that leave the package root (`../`, absolute,
    /// backslashes, symlinks pointing out) and zip bombs are 422. Exactly one of `code` and
    /// `code_zip`.
    #[serde(default)]
    #[schema(format = Byte, min_length = 1)]
    code_zip: Option<String>,
    /// What is called: `name` or Lambda's `file.name` (the file part is ignored for a
    /// single-source function; with `code_zip` it names the file). Absent or null: `handler`.
    #[serde(default)]
    #[schema(
        pattern = r"^([A-Za-z0-9_$-]+(/[A-Za-z0-9_$-]+)*(\.[A-Za-z0-9_$-]+)*\.)?[A-Za-z_$][A-Za-z0-9_$]*$",
        max_length = 128
    )]
    handler: Option<String>,
    /// Whole seconds a call may run.
    #[serde(deserialize_with = "crate::domain::wire::whole_number")]
    #[schema(minimum = 1, maximum = 900)]
    timeout: i64,
    /// Absent or null: `docker` where the namespace allows it, else its first allowed runtime.
    #[serde(default)]
    runtime: Option<Runtime>,
    /// The container's memory limit; absent or null: 128.
    #[serde(
        default,
        deserialize_with = "crate::domain::wire::optional_whole_number"
    )]
    #[schema(minimum = 64, maximum = 10240)]
    memory_mb: Option<i64>,
    /// Environment variables of its containers: names `[A-Za-z_][A-Za-z0-9_]*`, values
    /// without NUL, at most 4 KiB of names and values together.
    #[serde(default)]
    #[schema(schema_with = crate::domain::wire::env_input_schema)]
    env: Option<BTreeMap<String, String>>,
    /// Calls it may run at once across the cluster. Absent or null: no limit.
    #[serde(
        default,
        deserialize_with = "crate::domain::wire::optional_whole_number"
    )]
    #[schema(minimum = 1, maximum = 1000)]
    max_concurrency: Option<i64>,
    /// The methods its route answers; absent or null: all of them.
    #[serde(default)]
    #[schema(schema_with = crate::domain::wire::http_methods_schema)]
    http_methods: Option<Vec<String>>,
    /// Who may call its route: `key` (an `invoke` key of its namespace) or `none` (anyone).
    /// Absent or null: `key`.
    #[serde(default)]
    #[schema(nullable)]
    http_auth: Option<HttpAuth>,
    /// CORS of its route, answered by the api (preflights included); absent or null: none.
    #[serde(default)]
    #[schema(nullable)]
    cors: Option<Cors>,
    /// Python: the text of a `requirements.txt` (requirements only: no options, URLs or
    /// paths); JavaScript: a `package.json` with a `dependencies` object of registry version
    /// ranges. At most 64 KiB. Built once per distinct text into an artifact mounted read-only
    /// on the import path; absent or null: none (no build).
    #[serde(default)]
    #[schema(max_length = 65536)]
    dependencies: Option<String>,
    /// Times a failed async call (error, timeout, out of memory, crash) is tried again, with
    /// exponential backoff from `RETRY_BASE_SECS`. Absent or null: 2.
    #[serde(
        default,
        deserialize_with = "crate::domain::wire::optional_whole_number"
    )]
    #[schema(minimum = 0, maximum = 5)]
    max_retries: Option<i64>,
    /// Seconds after which an async call is not started again (it is dead-lettered), counted
    /// from its acceptance or its last redrive. Absent or null: 21600 (6 hours).
    #[serde(
        default,
        deserialize_with = "crate::domain::wire::optional_whole_number"
    )]
    #[schema(minimum = 60, maximum = 21600)]
    max_event_age_secs: Option<i64>,
    /// Another function of the namespace, invoked async with the outcome of each succeeded
    /// async call: `{"source": "destination", "invocation_id", "status", "result", "event"}`.
    #[serde(default)]
    #[schema(
        pattern = "^[A-Za-z0-9_-]{1,64}$",
        min_length = 1,
        max_length = 64,
        example = "notify"
    )]
    on_success: Option<String>,
    /// Another function of the namespace, invoked async with the outcome (`error` instead of
    /// `result`) of each dead-lettered async call.
    #[serde(default)]
    #[schema(
        pattern = "^[A-Za-z0-9_-]{1,64}$",
        min_length = 1,
        max_length = 64,
        example = "notify"
    )]
    on_failure: Option<String>,
    /// A 5-field cron expression (minute hour day-of-month month day-of-week): one async call
    /// per tick, its event `{"source": "schedule", "scheduled_time": RFC 3339}`. Absent or
    /// null: none.
    #[serde(default)]
    #[schema(max_length = 200, example = "0 9 * * MON-FRI")]
    schedule: Option<String>,
    /// The IANA time zone `schedule` is read in. Absent or null: `UTC`.
    #[serde(default)]
    #[schema(max_length = 64, example = "Europe/Paris")]
    schedule_timezone: Option<String>,
}

/// What the namespace and the caller allow a function to be.
#[derive(Debug, Clone, Copy)]
pub struct NamespacePolicy<'a> {
    /// The runtimes the namespace allows; empty: any.
    pub allowed_runtimes: &'a [Runtime],
    /// Whether the caller may take a route that starts with a parameter (admin keys).
    pub may_catch_all: bool,
    /// `MAX_CODE_BYTES`.
    pub max_code_bytes: usize,
}

/// Why an input is refused: 422, 413 (code over its limit) or 403 (a route only an admin may
/// take). The text names the field and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{0}")]
    Field(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Forbidden(String),
}

/// A function's input, checked except for its package, which the service checks and stores
/// (unpacking it is the costly part, done once the rest is valid).
#[derive(Debug)]
pub struct ValidFunction {
    pub fields: FunctionFields,
    pub code_zip: Option<String>,
}

/// 422 naming `what` unless `value` is in `range`.
fn within(what: &str, range: RangeInclusive<i64>, value: i64) -> Result<(), Invalid> {
    within_saying(what, range, value, "")
}

/// [`within`] for a field whose null means "no limit".
fn within_or_null(what: &str, range: RangeInclusive<i64>, value: i64) -> Result<(), Invalid> {
    within_saying(what, range, value, ", or null for no limit")
}

fn within_saying(
    what: &str,
    range: RangeInclusive<i64>,
    value: i64,
    or: &str,
) -> Result<(), Invalid> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(Invalid::Field(format!(
        "{what} from {} to {}{or}; got {value}",
        range.start(),
        range.end()
    )))
}

impl ValidFunction {
    /// `input`, checked against the rules and `policy`; the runtime defaults to docker where
    /// the namespace allows it, else its first allowed one. Only a caller that may take a
    /// route starting with a parameter (`/{proxy+}`, an admin) gets one: it answers every path
    /// no other route claims, in every namespace's stead. Pure: nothing is read or stored.
    pub fn parse(input: FunctionInput, policy: &NamespacePolicy<'_>) -> Result<Self, Invalid> {
        let allowed = policy.allowed_runtimes;
        if !valid_name(&input.name) {
            return Err(Invalid::Field(format!(
                "name must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, _ and -; got {:?}",
                input.name
            )));
        }
        let route =
            RoutePattern::parse(&input.route).map_err(|error| Invalid::Field(error.to_string()))?;
        if route.catches_all() && !policy.may_catch_all {
            return Err(Invalid::Forbidden(format!(
                "route {:?} starts with a parameter, so it would answer every path no other route claims, other namespaces' included; only an admin key may set one",
                input.route
            )));
        }
        let http_methods = input
            .http_methods
            .map(http_trigger::validate_methods)
            .transpose()
            .map_err(Invalid::Field)?;
        let cors = input
            .cors
            .map(Cors::validate)
            .transpose()
            .map_err(Invalid::Field)?;
        let (code, code_zip) = match (input.code, input.code_zip) {
            (Some(code), None) => {
                validate_code(&code, policy.max_code_bytes)?;
                (code, None)
            }
            // The package is checked once the rest is valid: unpacking it is the costly part.
            (None, Some(zip)) => (String::new(), Some(zip)),
            (Some(_), Some(_)) => {
                return Err(Invalid::Field(
                    "give either code or code_zip, not both".into(),
                ));
            }
            (None, None) => {
                return Err(Invalid::Field(
                    "code or code_zip is required: the function's source, or a .zip of its files"
                        .into(),
                ));
            }
        };
        let handler = input.handler.unwrap_or_else(|| "handler".to_owned());
        validate_handler(&handler)?;
        within(
            "timeout must be a whole number of seconds",
            TIMEOUT_RANGE_S,
            input.timeout,
        )?;
        let memory_mb = input.memory_mb.unwrap_or(DEFAULT_MEMORY_MB);
        within("memory_mb must be", MEMORY_RANGE_MB, memory_mb)?;
        let env = input.env.unwrap_or_default();
        validate_env(&env)?;
        if let Some(limit) = input.max_concurrency {
            within_or_null("max_concurrency must be", MAX_CONCURRENCY_RANGE, limit)?;
        }
        let dependencies = input.dependencies.filter(|text| !text.trim().is_empty());
        if let Some(text) = &dependencies {
            deps::validate(input.language, text).map_err(Invalid::Field)?;
        }
        let max_retries = input.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        within("max_retries must be", MAX_RETRIES_RANGE, max_retries)?;
        let max_event_age_secs = input
            .max_event_age_secs
            .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECS);
        within(
            "max_event_age_secs must be",
            MAX_EVENT_AGE_RANGE_S,
            max_event_age_secs,
        )?;
        for (field, destination) in [
            ("on_success", &input.on_success),
            ("on_failure", &input.on_failure),
        ] {
            if let Some(destination) = destination {
                if !valid_name(destination) {
                    return Err(Invalid::Field(format!(
                        "{field} must name a function of this namespace (1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, _ and -); got {destination:?}"
                    )));
                }
                if *destination == input.name {
                    return Err(Invalid::Field(format!(
                        "{field} names the function itself: its outcome would invoke it again, without end"
                    )));
                }
            }
        }
        let schedule_timezone = input.schedule_timezone.unwrap_or_else(|| "UTC".to_owned());
        match &input.schedule {
            Some(expr) => {
                Schedule::parse(expr, Some(&schedule_timezone))
                    .map_err(|error| Invalid::Field(format!("schedule: {error}")))?;
            }
            None => {
                // Checked even without a schedule, so that a typo is not stored silently.
                schedule::parse_zone(&schedule_timezone)
                    .map_err(|error| Invalid::Field(format!("schedule_timezone: {error}")))?;
            }
        }
        let runtime = match input.runtime {
            Some(runtime) if !allowed.contains(&runtime) => {
                let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(Invalid::Field(format!(
                    "runtime {runtime} is not allowed in this namespace; it allows {}",
                    names.join(", ")
                )));
            }
            Some(runtime) => runtime,
            None if allowed.contains(&Runtime::Docker) || allowed.is_empty() => Runtime::Docker,
            None => allowed[0],
        };
        let fields = FunctionFields {
            name: input.name,
            route: input.route,
            language: input.language,
            code,
            handler,
            timeout: input.timeout as i32,
            runtime,
            memory_mb: memory_mb as i32,
            env,
            max_concurrency: input.max_concurrency.map(|limit| limit as i32),
            http_methods,
            http_auth: input.http_auth.unwrap_or_default(),
            cors,
            route_shape: route.shape(),
            build_key: dependencies
                .as_deref()
                .map(|text| deps::build_key(input.language, text)),
            dependencies,
            package: None,
            max_retries: max_retries as i32,
            max_event_age_secs: max_event_age_secs as i32,
            on_success: input.on_success,
            on_failure: input.on_failure,
            schedule: input.schedule.map(|expr| expr.trim().to_owned()),
            schedule_timezone,
        };
        Ok(ValidFunction { fields, code_zip })
    }
}

/// A function name: 1 to [`MAX_NAME_LEN`] of `A-Za-z0-9_-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Single-source code: not blank, no NUL, within the limit.
fn validate_code(code: &str, max_code_bytes: usize) -> Result<(), Invalid> {
    // Postgres text cannot hold U+0000: refuse it here rather than fail the insert.
    if code.contains('\0') {
        return Err(Invalid::Field(
            "code must not contain NUL (U+0000) characters".into(),
        ));
    }
    if code.trim().is_empty() {
        return Err(Invalid::Field("code must not be empty".into()));
    }
    if code.len() > max_code_bytes {
        return Err(Invalid::TooLarge(format!(
            "code is {} bytes, over the limit of {max_code_bytes}",
            code.len()
        )));
    }
    Ok(())
}

/// `name` or Lambda's `file.name`: the name an identifier (Python's and JavaScript's
/// characters), the file a relative path of letters, digits, `_`, `-`, `$` and `/`, without
/// `..`.
fn validate_handler(handler: &str) -> Result<(), Invalid> {
    let identifier = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    let (file, name) = match handler.rsplit_once('.') {
        Some((file, name)) => (Some(file), name),
        None => (None, handler),
    };
    let file_ok = file.is_none_or(|file| {
        !file.is_empty()
            && !file.starts_with('/')
            && file
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
            && file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-$/.".contains(c))
    });
    if handler.len() > MAX_HANDLER_LEN || !identifier(name) || !file_ok {
        return Err(Invalid::Field(format!(
            "handler must be `name` or `file.name` (Lambda's form), the name an identifier and the file a relative path, at most {MAX_HANDLER_LEN} characters; got {handler:?}"
        )));
    }
    Ok(())
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<(), Invalid> {
    for (key, value) in env {
        // Postgres text cannot hold U+0000, and neither can a process environment.
        if value.contains('\0') {
            return Err(Invalid::Field(format!(
                "env value of {key:?} must not contain NUL (U+0000) characters"
            )));
        }
        let mut bytes = key.bytes();
        let ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(Invalid::Field(format!(
                "env keys must match [A-Za-z_][A-Za-z0-9_]*; got {key:?}"
            )));
        }
    }
    let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_ENV_BYTES {
        return Err(Invalid::Field(format!(
            "env holds {size} bytes, over the limit of {MAX_ENV_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_are_a_name_or_lambdas_file_dot_name() {
        for good in [
            "handler",
            "lambda_handler",
            "lambda_function.lambda_handler",
            "index.handler",
            "src/app.main",
            "my-file.$run",
            "a.b.handler",
        ] {
            assert!(validate_handler(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1handler",
            "handler.",
            ".handler",
            "lambda handler",
            "index.my-handler",
            "../up.handler",
            "/abs.handler",
            "a//b.handler",
            "a/./b.handler",
            &format!("{}.h", "f".repeat(200)),
        ] {
            assert!(validate_handler(bad).is_err(), "{bad}");
        }
    }

    fn input(changes: serde_json::Value) -> FunctionInput {
        let mut body = serde_json::json!({
            "name": "hello",
            "route": "/hello",
            "language": "python",
            "code": "def handler(event, context):\n    return 1",
            "timeout": 5
        });
        for (field, value) in changes.as_object().expect("an object") {
            body[field] = value.clone();
        }
        serde_json::from_value(body).expect("a well-formed input")
    }

    const DOCKER_AND_GVISOR: &[Runtime] = &[Runtime::Docker, Runtime::Gvisor];

    fn policy(allowed: &[Runtime]) -> NamespacePolicy<'_> {
        NamespacePolicy {
            allowed_runtimes: allowed,
            may_catch_all: false,
            max_code_bytes: 64,
        }
    }

    fn refusal(changes: serde_json::Value) -> Invalid {
        ValidFunction::parse(input(changes), &policy(DOCKER_AND_GVISOR)).expect_err("refused")
    }

    #[test]
    fn the_defaults_fill_what_is_left_out() {
        let valid = ValidFunction::parse(input(serde_json::json!({})), &policy(DOCKER_AND_GVISOR))
            .expect("valid");
        let fields = valid.fields;
        assert_eq!(fields.handler, "handler");
        assert_eq!(fields.runtime, Runtime::Docker);
        assert_eq!(fields.memory_mb, 128);
        assert_eq!(fields.max_retries, 2);
        assert_eq!(fields.max_event_age_secs, 21_600);
        assert_eq!(fields.schedule_timezone, "UTC");
        assert_eq!(fields.max_concurrency, None);
        assert_eq!(fields.route_shape, "/hello");
        assert!(valid.code_zip.is_none());
        // A namespace that allows only gVisor gets it without asking.
        let gvisor =
            ValidFunction::parse(input(serde_json::json!({})), &policy(&[Runtime::Gvisor]))
                .expect("valid");
        assert_eq!(gvisor.fields.runtime, Runtime::Gvisor);
    }

    #[test]
    fn each_field_out_of_its_rules_is_refused_with_its_name() {
        use serde_json::json;
        let field = |why: &str| Invalid::Field(why.to_owned());
        let cases = [
            (
                json!({"name": "a b"}),
                field("name must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -; got \"a b\""),
            ),
            (
                json!({"timeout": 0}),
                field("timeout must be a whole number of seconds from 1 to 900; got 0"),
            ),
            (
                json!({"timeout": 901}),
                field("timeout must be a whole number of seconds from 1 to 900; got 901"),
            ),
            (
                json!({"memory_mb": 63}),
                field("memory_mb must be from 64 to 10240; got 63"),
            ),
            (
                json!({"max_concurrency": 0}),
                field("max_concurrency must be from 1 to 1000, or null for no limit; got 0"),
            ),
            (
                json!({"max_retries": 6}),
                field("max_retries must be from 0 to 5; got 6"),
            ),
            (
                json!({"max_event_age_secs": 59}),
                field("max_event_age_secs must be from 60 to 21600; got 59"),
            ),
            (json!({"code": "   "}), field("code must not be empty")),
            (
                json!({"code": "x\u{0000}"}),
                field("code must not contain NUL (U+0000) characters"),
            ),
            (
                json!({"code": "x".repeat(65)}),
                Invalid::TooLarge("code is 65 bytes, over the limit of 64".into()),
            ),
            (
                json!({"code": null}),
                field(
                    "code or code_zip is required: the function's source, or a .zip of its files",
                ),
            ),
            (
                json!({"code_zip": "UEsFBg=="}),
                field("give either code or code_zip, not both"),
            ),
            (
                json!({"env": {"1A": "x"}}),
                field("env keys must match [A-Za-z_][A-Za-z0-9_]*; got \"1A\""),
            ),
            (
                json!({"on_success": "hello"}),
                field(
                    "on_success names the function itself: its outcome would invoke it again, without end",
                ),
            ),
            (
                json!({"on_failure": "no good"}),
                field(
                    "on_failure must name a function of this namespace (1 to 64 characters of A-Z, a-z, 0-9, _ and -); got \"no good\"",
                ),
            ),
            (
                json!({"memory_mb": 10_241}),
                field("memory_mb must be from 64 to 10240; got 10241"),
            ),
            (
                json!({"handler": "1x"}),
                field(
                    "handler must be `name` or `file.name` (Lambda's form), the name an identifier and the file a relative path, at most 128 characters; got \"1x\"",
                ),
            ),
            (
                json!({"env": {"A": "x\u{0000}"}}),
                field("env value of \"A\" must not contain NUL (U+0000) characters"),
            ),
            (
                json!({"env": {"A-B": "x"}}),
                field("env keys must match [A-Za-z_][A-Za-z0-9_]*; got \"A-B\""),
            ),
            (
                // 3 bytes of name and 4094 of value: one over Lambda's 4 KiB.
                json!({"env": {"BIG": "x".repeat(4094)}}),
                field("env holds 4097 bytes, over the limit of 4096"),
            ),
            // The rules of other modules, named by the field they apply to.
            (
                json!({"route": "no-slash"}),
                field("route \"no-slash\" is not valid: it must start with /"),
            ),
            (
                json!({"http_methods": ["get"]}),
                field(
                    "http_methods: \"get\" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (upper case)",
                ),
            ),
            (
                json!({"cors": {"allow_origins": ["not an origin"]}}),
                field(
                    "cors.allow_origins entries are \"*\" or scheme://host[:port] with no path; got \"not an origin\"",
                ),
            ),
            (
                json!({"dependencies": "-e ."}),
                field(
                    "requirements line 1: \"-e .\" is not accepted: options (-e, -r, -c, --index-url, --extra-index-url, ...) are not allowed; the operator's index settings decide where packages come from",
                ),
            ),
            (
                json!({"schedule": "not cron"}),
                field(
                    "schedule: invalid schedule \"not cron\": 2 fields: expected 5 (minute hour day-of-month month day-of-week), without seconds or years",
                ),
            ),
            (
                // Checked without a schedule too: a typo is not stored silently.
                json!({"schedule_timezone": "Mars/Olympus"}),
                field(
                    "schedule_timezone: unknown time zone \"Mars/Olympus\": expected an IANA name such as \"Europe/Paris\"",
                ),
            ),
        ];
        for (changes, expected) in cases {
            assert_eq!(refusal(changes.clone()), expected, "{changes}");
        }
        let wrong_runtime = ValidFunction::parse(
            input(json!({"runtime": "gvisor"})),
            &policy(&[Runtime::Docker]),
        )
        .expect_err("refused");
        assert_eq!(
            wrong_runtime,
            field("runtime gvisor is not allowed in this namespace; it allows docker")
        );
    }

    #[test]
    fn what_is_given_is_kept() {
        let valid = ValidFunction::parse(
            input(serde_json::json!({
                "route": "/users/{id}",
                "handler": "app.main",
                "runtime": "gvisor",
                "memory_mb": 512,
                "env": {"GREETING": "hi"},
                "max_concurrency": 10,
                "http_methods": ["GET", "POST"],
                "http_auth": "none",
                "dependencies": "requests==2.31.0\n",
                "max_retries": 0,
                "max_event_age_secs": 60,
                "on_success": "notify",
                "schedule": " 0 9 * * MON-FRI ",
                "schedule_timezone": "Europe/Paris"
            })),
            &policy(DOCKER_AND_GVISOR),
        )
        .expect("valid");
        let fields = valid.fields;
        assert_eq!(fields.route_shape, "/users/{}");
        assert_eq!(fields.handler, "app.main");
        assert_eq!((fields.runtime, fields.memory_mb), (Runtime::Gvisor, 512));
        assert_eq!(fields.env["GREETING"], "hi");
        assert_eq!(fields.max_concurrency, Some(10));
        assert_eq!(
            fields.http_methods,
            Some(vec!["GET".to_owned(), "POST".to_owned()])
        );
        assert_eq!(fields.http_auth, HttpAuth::None);
        assert_eq!(
            fields.build_key,
            Some(deps::build_key(Language::Python, "requests==2.31.0\n"))
        );
        assert_eq!((fields.max_retries, fields.max_event_age_secs), (0, 60));
        assert_eq!(fields.on_success.as_deref(), Some("notify"));
        // Stored trimmed, read in its zone.
        assert_eq!(fields.schedule.as_deref(), Some("0 9 * * MON-FRI"));
        assert_eq!(fields.schedule_timezone, "Europe/Paris");
        // Blank dependencies are none: nothing to build.
        let blank = ValidFunction::parse(
            input(serde_json::json!({"dependencies": " \n "})),
            &policy(DOCKER_AND_GVISOR),
        )
        .expect("valid");
        assert_eq!(
            (blank.fields.dependencies, blank.fields.build_key),
            (None, None)
        );
    }

    #[test]
    fn only_a_caller_that_may_catch_all_takes_a_route_starting_with_a_parameter() {
        let catch_all = || input(serde_json::json!({"route": "/{proxy+}"}));
        assert!(matches!(
            ValidFunction::parse(catch_all(), &policy(DOCKER_AND_GVISOR)),
            Err(Invalid::Forbidden(_))
        ));
        let admin = NamespacePolicy {
            may_catch_all: true,
            ..policy(DOCKER_AND_GVISOR)
        };
        assert!(ValidFunction::parse(catch_all(), &admin).is_ok());
    }
}
