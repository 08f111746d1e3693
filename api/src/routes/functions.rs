//! Function CRUD: `/functions/` and `/functions/{id}`, within the key's namespace: a function
//! of another namespace is 404, exactly as if it did not exist.

use crate::auth::{Principal, Scope};
use crate::bodies::Message;
use crate::db::{self, Build, DbError, Function, FunctionFields, Namespace, Saved, Violation};
use crate::deps;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http_trigger::{self, Cors, HttpAuth, RoutePattern};
use crate::package;
use crate::schedule::{self, Schedule};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::{BuildJob, FunctionEvent, Language, Runtime};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

const MAX_NAME_LEN: usize = 64;
const TIMEOUT_RANGE_S: std::ops::RangeInclusive<i64> = 1..=900;
const MEMORY_RANGE_MB: std::ops::RangeInclusive<i64> = 64..=10_240;
const DEFAULT_MEMORY_MB: i64 = 128;
/// The longest `handler`.
const MAX_HANDLER_LEN: usize = 128;
const MAX_CONCURRENCY_RANGE: std::ops::RangeInclusive<i64> = 1..=1000;
const MAX_RETRIES_RANGE: std::ops::RangeInclusive<i64> = 0..=5;
const DEFAULT_MAX_RETRIES: i64 = 2;
const MAX_EVENT_AGE_RANGE_S: std::ops::RangeInclusive<i64> = 60..=21_600;
const DEFAULT_MAX_EVENT_AGE_SECS: i64 = 21_600;
/// Lambda's limit on the summed size of a function's environment.
const MAX_ENV_BYTES: usize = 4 * 1024;

/// The body of `POST /functions/` and `PUT /functions/{id}`. The schema's limits are those
/// `validate` enforces (the schemathesis run in scripts/schema-check.sh holds them together).
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
    /// Its HTTP trigger's path below `ROUTE_PREFIX` (`/fn`): `/`, or `/`-separated segments
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
    #[serde(deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 900)]
    timeout: i64,
    /// Absent or null: `docker` where the namespace allows it, else its first allowed runtime.
    #[serde(default)]
    runtime: Option<Runtime>,
    /// The container's memory limit; absent or null: 128.
    #[serde(default, deserialize_with = "crate::extract::optional_whole_number")]
    #[schema(minimum = 64, maximum = 10240)]
    memory_mb: Option<i64>,
    /// Environment variables of its containers: names `[A-Za-z_][A-Za-z0-9_]*`, values
    /// without NUL, at most 4 KiB of names and values together.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::env_input_schema)]
    env: Option<BTreeMap<String, String>>,
    /// Calls it may run at once across the cluster. Absent or null: no limit.
    #[serde(default, deserialize_with = "crate::extract::optional_whole_number")]
    #[schema(minimum = 1, maximum = 1000)]
    max_concurrency: Option<i64>,
    /// The methods its route answers; absent or null: all of them.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::http_methods_schema)]
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
    #[serde(default, deserialize_with = "crate::extract::optional_whole_number")]
    #[schema(minimum = 0, maximum = 5)]
    max_retries: Option<i64>,
    /// Seconds after which an async call is not started again (it is dead-lettered), counted
    /// from its acceptance or its last redrive. Absent or null: 21600 (6 hours).
    #[serde(default, deserialize_with = "crate::extract::optional_whole_number")]
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

impl FunctionInput {
    /// The fields, checked; `allowed` are the runtimes the namespace allows (the default is
    /// docker where allowed, else the first allowed). Only an admin may take a route that
    /// starts with a parameter (`/{proxy+}`): it answers every path no other route claims,
    /// in every namespace's stead.
    fn validate(
        self,
        max_code_bytes: usize,
        allowed: &[Runtime],
        principal: &Principal,
    ) -> Result<Validated, ApiError> {
        if !valid_name(&self.name) {
            return Err(ApiError::Invalid(format!(
                "name must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, _ and -; got {:?}",
                self.name
            )));
        }
        let route = RoutePattern::parse(&self.route)
            .map_err(|error| ApiError::Invalid(error.to_string()))?;
        if route.catches_all() && !principal.has(Scope::Admin) {
            return Err(ApiError::Forbidden(format!(
                "route {:?} starts with a parameter, so it would answer every path no other route claims, other namespaces' included; only an admin key may set one",
                self.route
            )));
        }
        let http_methods = self
            .http_methods
            .map(http_trigger::validate_methods)
            .transpose()
            .map_err(ApiError::Invalid)?;
        let cors = self
            .cors
            .map(Cors::validate)
            .transpose()
            .map_err(ApiError::Invalid)?;
        let (code, code_zip) = match (self.code, self.code_zip) {
            (Some(code), None) => {
                validate_code(&code, max_code_bytes)?;
                (code, None)
            }
            // The package is checked once the rest is valid: unpacking it is the costly part.
            (None, Some(zip)) => (String::new(), Some(zip)),
            (Some(_), Some(_)) => {
                return Err(ApiError::Invalid(
                    "give either code or code_zip, not both".into(),
                ));
            }
            (None, None) => {
                return Err(ApiError::Invalid(
                    "code or code_zip is required: the function's source, or a .zip of its files"
                        .into(),
                ));
            }
        };
        let handler = self.handler.unwrap_or_else(|| "handler".to_owned());
        validate_handler(&handler)?;
        if !TIMEOUT_RANGE_S.contains(&self.timeout) {
            return Err(ApiError::Invalid(format!(
                "timeout must be a whole number of seconds from {} to {}; got {}",
                TIMEOUT_RANGE_S.start(),
                TIMEOUT_RANGE_S.end(),
                self.timeout
            )));
        }
        let memory_mb = self.memory_mb.unwrap_or(DEFAULT_MEMORY_MB);
        if !MEMORY_RANGE_MB.contains(&memory_mb) {
            return Err(ApiError::Invalid(format!(
                "memory_mb must be from {} to {}; got {memory_mb}",
                MEMORY_RANGE_MB.start(),
                MEMORY_RANGE_MB.end()
            )));
        }
        let env = self.env.unwrap_or_default();
        validate_env(&env)?;
        if let Some(limit) = self.max_concurrency
            && !MAX_CONCURRENCY_RANGE.contains(&limit)
        {
            return Err(ApiError::Invalid(format!(
                "max_concurrency must be from {} to {}, or null for no limit; got {limit}",
                MAX_CONCURRENCY_RANGE.start(),
                MAX_CONCURRENCY_RANGE.end()
            )));
        }
        let dependencies = self.dependencies.filter(|text| !text.trim().is_empty());
        if let Some(text) = &dependencies {
            deps::validate(self.language, text).map_err(ApiError::Invalid)?;
        }
        let max_retries = self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        if !MAX_RETRIES_RANGE.contains(&max_retries) {
            return Err(ApiError::Invalid(format!(
                "max_retries must be from {} to {}; got {max_retries}",
                MAX_RETRIES_RANGE.start(),
                MAX_RETRIES_RANGE.end()
            )));
        }
        let max_event_age_secs = self
            .max_event_age_secs
            .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECS);
        if !MAX_EVENT_AGE_RANGE_S.contains(&max_event_age_secs) {
            return Err(ApiError::Invalid(format!(
                "max_event_age_secs must be from {} to {}; got {max_event_age_secs}",
                MAX_EVENT_AGE_RANGE_S.start(),
                MAX_EVENT_AGE_RANGE_S.end()
            )));
        }
        for (field, destination) in [
            ("on_success", &self.on_success),
            ("on_failure", &self.on_failure),
        ] {
            if let Some(destination) = destination {
                if !valid_name(destination) {
                    return Err(ApiError::Invalid(format!(
                        "{field} must name a function of this namespace (1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, _ and -); got {destination:?}"
                    )));
                }
                if *destination == self.name {
                    return Err(ApiError::Invalid(format!(
                        "{field} names the function itself: its outcome would invoke it again, without end"
                    )));
                }
            }
        }
        let schedule_timezone = self.schedule_timezone.unwrap_or_else(|| "UTC".to_owned());
        match &self.schedule {
            Some(expr) => {
                Schedule::parse(expr, Some(&schedule_timezone))
                    .map_err(|error| ApiError::Invalid(format!("schedule: {error}")))?;
            }
            None => {
                // Checked even without a schedule, so that a typo is not stored silently.
                schedule::parse_zone(&schedule_timezone)
                    .map_err(|error| ApiError::Invalid(format!("schedule_timezone: {error}")))?;
            }
        }
        let runtime = match self.runtime {
            Some(runtime) if !allowed.contains(&runtime) => {
                let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(ApiError::Invalid(format!(
                    "runtime {runtime} is not allowed in this namespace; it allows {}",
                    names.join(", ")
                )));
            }
            Some(runtime) => runtime,
            None if allowed.contains(&Runtime::Docker) || allowed.is_empty() => Runtime::Docker,
            None => allowed[0],
        };
        let fields = FunctionFields {
            name: self.name,
            route: self.route,
            language: self.language,
            code,
            handler,
            timeout: self.timeout as i32,
            runtime,
            memory_mb: memory_mb as i32,
            env,
            max_concurrency: self.max_concurrency.map(|limit| limit as i32),
            http_methods,
            http_auth: self.http_auth.unwrap_or_default(),
            cors,
            route_shape: route.shape(),
            build_key: dependencies
                .as_deref()
                .map(|text| deps::build_key(self.language, text)),
            dependencies,
            package: None,
            max_retries: max_retries as i32,
            max_event_age_secs: max_event_age_secs as i32,
            on_success: self.on_success,
            on_failure: self.on_failure,
            schedule: self.schedule.map(|expr| expr.trim().to_owned()),
            schedule_timezone,
        };
        Ok(Validated { fields, code_zip })
    }
}

/// 422 unless `on_success` and `on_failure` name functions of `namespace`. A destination
/// deleted later makes its invocations fail (logged and counted), as Lambda's do.
async fn check_destinations(
    state: &AppState,
    namespace: &str,
    fields: &FunctionFields,
) -> Result<(), ApiError> {
    for (field, destination) in [
        ("on_success", &fields.on_success),
        ("on_failure", &fields.on_failure),
    ] {
        if let Some(name) = destination
            && db::get_function_by_name(&state.db, namespace, name)
                .await?
                .is_none()
        {
            return Err(ApiError::Invalid(format!(
                "{field} names {name:?}, which is no function of this namespace"
            )));
        }
    }
    Ok(())
}

/// A function name: 1 to [`MAX_NAME_LEN`] of `A-Za-z0-9_-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A function's input, checked except for its package, which is checked and stored by
/// [`store_package`].
struct Validated {
    fields: FunctionFields,
    code_zip: Option<String>,
}

/// Single-source code: not blank, no NUL, within the limit.
fn validate_code(code: &str, max_code_bytes: usize) -> Result<(), ApiError> {
    // Postgres text cannot hold U+0000: refuse it here rather than fail the insert.
    if code.contains('\0') {
        return Err(ApiError::Invalid(
            "code must not contain NUL (U+0000) characters".into(),
        ));
    }
    if code.trim().is_empty() {
        return Err(ApiError::Invalid("code must not be empty".into()));
    }
    if code.len() > max_code_bytes {
        return Err(ApiError::TooLarge(format!(
            "code is {} bytes, over the limit of {max_code_bytes}",
            code.len()
        )));
    }
    Ok(())
}

/// Checks `code_zip` (off the async threads: inflating it is CPU work), stores its artifact
/// unless the same files are stored already, and returns the fields that name it. Nothing is
/// stored for a package that is refused.
async fn store_package(state: &AppState, validated: Validated) -> Result<FunctionFields, ApiError> {
    let Validated {
        mut fields,
        code_zip,
    } = validated;
    let Some(code_zip) = code_zip else {
        return Ok(fields);
    };
    let (language, handler) = (fields.language, fields.handler.clone());
    let prepared =
        tokio::task::spawn_blocking(move || package::prepare(&code_zip, language, &handler))
            .await
            .map_err(|error| {
                ApiError::Invalid(format!("the package could not be read: {error}"))
            })?;
    let package = prepared.map_err(|error| match error {
        package::PackageError::TooLarge(why) => ApiError::TooLarge(why),
        other => ApiError::Invalid(other.to_string()),
    })?;
    if let Some(key) = &fields.build_key
        && let Some(deps_bytes) = db::ready_build_size(&state.db, key).await?
        && package.unpacked_bytes + deps_bytes.max(0) as u64 > package::MAX_UNPACKED_BYTES
    {
        return Err(ApiError::TooLarge(format!(
            "the package ({} bytes unpacked) and its dependencies ({deps_bytes} bytes) are over the limit of {} MB together",
            package.unpacked_bytes,
            package::MAX_UNPACKED_BYTES / (1024 * 1024)
        )));
    }
    db::store_package(&state.db, &package).await?;
    tracing::info!(digest = %package.digest, zip_bytes = package.zip_bytes, files = package.files, "package stored");
    fields.package = Some(db::PackageInfo {
        digest: package.digest,
        zip_bytes: package.zip_bytes as i64,
        unpacked_bytes: package.unpacked_bytes as i64,
        files: package.files as i32,
    });
    Ok(fields)
}

/// `name` or Lambda's `file.name`: the name an identifier (Python's and JavaScript's
/// characters), the file a relative path of letters, digits, `_`, `-`, `$` and `/`, without
/// `..`.
fn validate_handler(handler: &str) -> Result<(), ApiError> {
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
        return Err(ApiError::Invalid(format!(
            "handler must be `name` or `file.name` (Lambda's form), the name an identifier and the file a relative path, at most {MAX_HANDLER_LEN} characters; got {handler:?}"
        )));
    }
    Ok(())
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (key, value) in env {
        // Postgres text cannot hold U+0000, and neither can a process environment.
        if value.contains('\0') {
            return Err(ApiError::Invalid(format!(
                "env value of {key:?} must not contain NUL (U+0000) characters"
            )));
        }
        let mut bytes = key.bytes();
        let ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(ApiError::Invalid(format!(
                "env keys must match [A-Za-z_][A-Za-z0-9_]*; got {key:?}"
            )));
        }
    }
    let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_ENV_BYTES {
        return Err(ApiError::Invalid(format!(
            "env holds {size} bytes, over the limit of {MAX_ENV_BYTES}"
        )));
    }
    Ok(())
}

/// Bodies larger than a single-source function's (packages) read at once; the others wait.
/// Each holds the body, the zip and its files in memory, up to a few hundred MB.
pub const UPLOADS_AT_ONCE: usize = 2;

/// What [`admit_upload`] needs.
#[derive(Clone)]
pub struct UploadGuard {
    pub state: AppState,
    pub permits: Arc<Semaphore>,
    /// The largest body of a function saved with `code`: larger ones carry a package.
    pub source_body_max: usize,
}

/// Lets a body larger than a single-source function's be read only for a key that may save
/// functions, and only [`UPLOADS_AT_ONCE`] of them at a time: an anonymous client must not
/// make the api buffer tens of MB, nor a key hundreds of them at once (a refused body is
/// discarded as it arrives, as an oversized one is). Smaller bodies pass through (their
/// handler checks the key as usual).
pub async fn admit_upload(
    State(guard): State<UploadGuard>,
    request: Request,
    next: Next,
) -> Response {
    let declared = crate::limits::declared_length(request.headers());
    let chunked = declared.is_none() && request.headers().contains_key(header::TRANSFER_ENCODING);
    let large = declared.is_some_and(|length| length > guard.source_body_max as u64) || chunked;
    if !large {
        return next.run(request).await;
    }
    let allowed = match Principal::from_headers(&guard.state, request.headers()).await {
        Ok(principal) => principal.require(Scope::Manage),
        Err(error) => Err(error),
    };
    if let Err(error) = allowed {
        // Discarded, never held: a client that writes its whole body first reads the 401.
        crate::limits::discard(request.into_body()).await;
        let mut response = error.into_response();
        // What was not drained must not be taken for the next request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let Ok(_permit) = guard.permits.acquire().await else {
        return ApiError::Overloaded("the api is shutting down".into()).into_response();
    };
    next.run(request).await
}

/// `?skip=0&limit=100`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Functions to pass over, in id order.
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    skip: i64,
    /// Functions to list.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// `?wait=true`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SaveOptions {
    /// Answer once the dependencies' build has ended (at most `BUILD_WAIT_SECS`), rather than
    /// at once with the build pending; at once anyway when no worker takes builds.
    #[serde(default)]
    wait: bool,
}

/// Checks `limit` against 1..=`max` and `skip` against 0.., the paging rules of every list.
pub fn check_page(skip: i64, limit: i64, max: i64) -> Result<(), ApiError> {
    if skip < 0 {
        return Err(ApiError::Invalid(format!(
            "skip must be 0 or more; got {skip}"
        )));
    }
    if !(1..=max).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit must be from 1 to {max}; got {limit}"
        )));
    }
    Ok(())
}

/// Drops the function from this replica's cache and reloads its route table before answering
/// (so the caller's next call runs what it just saved, a name cached as missing is found, and
/// its route answers), and tells the other replicas and the workers.
async fn announce(
    state: &AppState,
    function_id: i64,
    namespace: &str,
    version: Option<i32>,
    name: Option<&str>,
) {
    state
        .functions
        .invalidate(function_id, Some(namespace), name);
    state
        .invoker
        .publish_event(&FunctionEvent {
            function_id,
            namespace: Some(namespace.to_owned()),
            name: name.map(str::to_owned),
            version,
        })
        .await;
    state.routes.refresh().await;
}

/// The key's namespace. Its keys go with it, so only a race with its deletion finds none.
async fn namespace_of(state: &AppState, principal: &Principal) -> Result<Namespace, ApiError> {
    db::get_namespace(&state.db, &principal.namespace)
        .await?
        .ok_or_else(|| ApiError::NamespaceNotFound(principal.namespace.clone()))
}

/// A function as `principal` may see it: `env` values only for `manage`.
fn view(function: &Function, principal: &Principal) -> Value {
    let mut value = serde_json::to_value(function).expect("a function always serializes");
    if !principal.has(Scope::Manage)
        && let Some(env) = value.get_mut("env").and_then(Value::as_object_mut)
    {
        for secret in env.values_mut() {
            *secret = Value::Null;
        }
    }
    value
}

/// A save's failure: a taken name or route, or a row the save named deleted under it, is 409
/// naming what is taken (never which namespace holds a route); anything else is the database's.
fn on_save_error(error: DbError, fields: &FunctionFields) -> ApiError {
    match error.violation() {
        // Routes are unique across namespaces; which one holds it is not said.
        Some(Violation::Unique(Some("functions_route_key"))) => ApiError::Conflict(format!(
            "a function with route {:?} already exists",
            fields.route
        )),
        Some(Violation::Unique(Some("functions_route_shape_key"))) => ApiError::Conflict(format!(
            "route {:?} is ambiguous: a function's route has the same shape {:?} (the same path with other parameter names)",
            fields.route, fields.route_shape
        )),
        Some(Violation::Unique(_)) => ApiError::Conflict(format!(
            "a function named {:?} already exists in this namespace",
            fields.name
        )),
        // Its package or build, unused for ARTIFACT_GRACE_SECS until this save named it, was
        // deleted by the retention task in between.
        Some(Violation::ForeignKey(Some(
            "functions_package_digest_fkey" | "functions_build_key_fkey",
        ))) => ApiError::Conflict(
            "the package or dependency build this save names was being deleted as unused; send the save again".into(),
        ),
        // The namespace was deleted between the key's check and the insert.
        Some(Violation::ForeignKey(_)) => {
            ApiError::Conflict("the key's namespace no longer exists".into())
        }
        None => error.into(),
    }
}

/// Creates a function in the key's namespace (`manage` scope).
#[utoipa::path(
    post,
    path = "/functions/",
    tag = "functions",
    summary = "Create a function",
    params(SaveOptions),
    request_body = FunctionInput,
    responses(
        (status = 201, description = "Created, at version 1.", body = Function),
        (status = 404, description = "`namespace_not_found`: the key's namespace was deleted meanwhile.", body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken in the namespace, or the route anywhere.", body = ErrorBody),
        crate::openapi::BodyErrors,
        crate::openapi::KeyErrors,
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn create_function(
    principal: Principal,
    State(state): State<AppState>,
    Query(options): Query<SaveOptions>,
    Json(input): Json<FunctionInput>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    principal.require(Scope::Manage)?;
    let namespace = namespace_of(&state, &principal).await?;
    let validated = input.validate(
        state.limits.max_code_bytes,
        &namespace.allowed_runtimes,
        &principal,
    )?;
    check_destinations(&state, &principal.namespace, &validated.fields).await?;
    let fields = store_package(&state, validated).await?;
    let saved = db::insert_function(&state.db, &principal.namespace, &fields)
        .await
        .map_err(|error| on_save_error(error, &fields))?;
    tracing::info!(id = saved.function.id, namespace = %saved.function.namespace, name = %saved.function.name, "function created");
    let function = after_save(&state, saved, &fields, options.wait).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&function, &principal))))
}

/// What a create or update does once committed: queues the build it started, tells the
/// caches, and with `wait` polls until the build has ended.
async fn after_save(
    state: &AppState,
    saved: Saved,
    fields: &FunctionFields,
    wait: bool,
) -> Result<Function, ApiError> {
    let Saved {
        mut function,
        publish_build,
    } = saved;
    if let (Some(attempt), Some(key), Some(dependencies)) =
        (publish_build, &fields.build_key, &fields.dependencies)
    {
        let job = BuildJob {
            key: key.clone(),
            attempt,
            language: fields.language,
            dependencies: dependencies.clone(),
        };
        match state.invoker.publish_build(&job).await {
            Ok(()) => tracing::info!(build_key = %key, %attempt, "build queued"),
            Err(error) => {
                tracing::error!(build_key = %key, %error, "build not queued");
                let why = format!(
                    "the build could not be queued ({error}); save the function again to retry"
                );
                db::fail_unpublished(&state.db, key, attempt, &why).await?;
                function = reload(state, &function).await?;
            }
        }
    }
    // Workers retire containers of versions below the one announced: while this version
    // waits for its build, the one that serves calls is announced.
    let serving_version = function
        .runnable()
        .map_or(function.version, |spec| spec.version);
    announce(
        state,
        function.id,
        &function.namespace,
        Some(serving_version),
        Some(&function.name),
    )
    .await;
    // Waiting for a build no worker will take would only hold the request for BUILD_WAIT_SECS.
    if wait
        && function
            .build
            .as_ref()
            .is_some_and(|b| !b.status.is_final())
        && state.invoker.build_consumers().await == 0
    {
        tracing::warn!(
            id = function.id,
            "?wait=true answered at once: no worker takes builds"
        );
    } else if wait {
        let until = tokio::time::Instant::now() + state.limits.build_wait;
        while function
            .build
            .as_ref()
            .is_some_and(|b| !b.status.is_final())
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(BUILD_POLL).await;
            function = reload(state, &function).await?;
        }
    }
    Ok(function)
}

/// How often `?wait=true` looks at the build.
const BUILD_POLL: std::time::Duration = std::time::Duration::from_millis(250);

async fn reload(state: &AppState, function: &Function) -> Result<Function, ApiError> {
    db::get_function(&state.db, &function.namespace, function.id)
        .await?
        .ok_or_else(|| ApiError::FunctionNotFound(function.id.to_string()))
}

/// The key's namespace's functions, in id order (`manage` or `read` scope; `read` keys see
/// `env` values as null).
#[utoipa::path(
    get,
    path = "/functions/",
    tag = "functions",
    summary = "List functions",
    params(Page),
    responses(
        (status = 200, description = "A page of functions.", body = Vec<Function>),
        (status = 422, description = "`invalid_request`: `skip` or `limit` out of range.", body = ErrorBody),
        crate::openapi::KeyErrors,
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn list_functions(
    principal: Principal,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<axum::Json<Vec<Value>>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    check_page(page.skip, page.limit, 1000)?;
    let functions =
        db::list_functions(&state.db, &principal.namespace, page.skip, page.limit).await?;
    Ok(axum::Json(
        functions.iter().map(|f| view(f, &principal)).collect(),
    ))
}

/// One function (`manage` or `read` scope).
#[utoipa::path(
    get,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Get a function",
    params(crate::openapi::FunctionId),
    responses(
        (status = 200, description = "The function.", body = Function),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::openapi::KeyErrors,
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    db::get_function(&state.db, &principal.namespace, id)
        .await?
        .map(|function| axum::Json(view(&function, &principal)))
        .ok_or_else(|| ApiError::FunctionNotFound(id.to_string()))
}

/// Replaces a function's definition (`manage` scope); its version goes up by one and the next
/// call runs the new code.
#[utoipa::path(
    put,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Update a function",
    params(crate::openapi::FunctionId, SaveOptions),
    request_body = FunctionInput,
    responses(
        (status = 200, description = "Updated, at the next version.", body = Function),
        (status = 404, description = "`function_not_found` or `namespace_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the new name or route is taken.", body = ErrorBody),
        crate::openapi::BodyErrors,
        crate::openapi::KeyErrors,
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn update_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(options): Query<SaveOptions>,
    Json(input): Json<FunctionInput>,
) -> Result<axum::Json<Value>, ApiError> {
    principal.require(Scope::Manage)?;
    let namespace = namespace_of(&state, &principal).await?;
    let validated = input.validate(
        state.limits.max_code_bytes,
        &namespace.allowed_runtimes,
        &principal,
    )?;
    check_destinations(&state, &principal.namespace, &validated.fields).await?;
    let fields = store_package(&state, validated).await?;
    let saved = db::update_function(&state.db, &principal.namespace, id, &fields)
        .await
        .map_err(|error| on_save_error(error, &fields))?
        .ok_or_else(|| ApiError::FunctionNotFound(id.to_string()))?;
    tracing::info!(id, version = saved.function.version, "function updated");
    let function = after_save(&state, saved, &fields, options.wait).await?;
    Ok(axum::Json(view(&function, &principal)))
}

/// The build of a function's dependencies, with its whole log (`manage` or `read` scope).
#[utoipa::path(
    get,
    path = "/functions/{id}/build",
    tag = "functions",
    summary = "Get a function's dependency build",
    params(crate::openapi::FunctionId),
    responses(
        (status = 200, description = "The build, its whole log included; `null` when the function has no dependencies (nothing to build).", body = Option<Build>),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::openapi::KeyErrors,
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn get_function_build(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Option<Build>>, ApiError> {
    principal.require_any(&[Scope::Manage, Scope::Read])?;
    match db::get_function_build(&state.db, &principal.namespace, id).await? {
        Some(build) => Ok(axum::Json(build)),
        None => Err(ApiError::FunctionNotFound(id.to_string())),
    }
}

/// Deletes a function (`manage` scope); its warm containers go too.
#[utoipa::path(
    delete,
    path = "/functions/{id}",
    tag = "functions",
    summary = "Delete a function",
    params(crate::openapi::FunctionId),
    responses(
        (status = 200, description = "Deleted.", body = Message, example = json!({"message": "Function deleted"})),
        (status = 404, description = "`function_not_found`: no such function in the key's namespace.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the id is not an integer.", body = ErrorBody),
        crate::openapi::KeyErrors,
        crate::openapi::Unavailable,
    ),
    security(("bearer" = [])),
)]
pub async fn delete_function(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Message>, ApiError> {
    principal.require(Scope::Manage)?;
    if !db::delete_function(&state.db, &principal.namespace, id).await? {
        return Err(ApiError::FunctionNotFound(id.to_string()));
    }
    tracing::info!(id, "function deleted");
    announce(&state, id, &principal.namespace, None, None).await;
    Ok(axum::Json(Message::new("Function deleted")))
}

#[cfg(test)]
mod tests {
    use super::validate_handler;

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
}
