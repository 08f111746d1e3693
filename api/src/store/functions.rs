//! Functions, each in its namespace, read together with what the namespace allows.

use super::DbError;
use super::builds::{Build, BuildStatus};
use crate::domain::http_trigger::{Cors, HttpAuth, RouteEntry};
use chrono::{DateTime, Utc};
use common::{ArtifactRef, FunctionSpec, Language, Runtime};
use deadpool_postgres::Pool;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::Row;
use uuid::Uuid;

/// A stored function, as the API shows it, with what its namespace allows (not shown).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "id": 1, "namespace": "default", "name": "hello", "route": "/hello",
    "language": "python", "handler": "handler", "timeout": 5, "runtime": "docker",
    "code": "def handler(event, context):\n    return {'message': 'Hello'}",
    "memory_mb": 128, "env": {"GREETING": "Hello"}, "max_concurrency": null,
    "http_methods": ["GET", "POST"], "http_auth": "key", "cors": null,
    "dependencies": null, "build": null, "package": null, "max_retries": 2,
    "max_event_age_secs": 21600, "on_success": null, "on_failure": null, "schedule": null,
    "schedule_timezone": "UTC", "version": 1,
    "created_at": "2026-11-27T16:00:00Z", "updated_at": "2026-11-27T16:00:00Z"
})))]
pub struct Function {
    #[schema(examples(1))]
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub route: String,
    pub language: Language,
    /// The source; `None` for a function deployed as a package (`package` describes it).
    pub code: Option<String>,
    /// What is called: `name` or Lambda's `file.name`.
    pub handler: String,
    pub timeout: i32,
    pub runtime: Runtime,
    pub memory_mb: i32,
    /// Environment variables of its containers. A key without the `manage` scope sees each
    /// value as null.
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub env: BTreeMap<String, String>,
    /// Calls it may run at once across the cluster; `None`: no limit.
    pub max_concurrency: Option<i32>,
    /// The methods its route answers; `None`: all of them.
    pub http_methods: Option<Vec<String>>,
    pub http_auth: HttpAuth,
    pub cors: Option<Cors>,
    /// A `requirements.txt` (Python) or `package.json` (JavaScript); `None`: none.
    pub dependencies: Option<String>,
    /// The build of `dependencies` (its log's last 4 KiB); `None` without dependencies.
    pub build: Option<Build>,
    /// Its deployment package, when it was saved with `code_zip`.
    pub package: Option<PackageInfo>,
    /// Times a failed async call is tried again.
    pub max_retries: i32,
    /// An async call older than this is not started again: it is dead-lettered.
    pub max_event_age_secs: i32,
    /// The function of the namespace invoked async with the outcome of a succeeded async call.
    pub on_success: Option<String>,
    /// The function invoked async with the outcome of a dead-lettered async call.
    pub on_failure: Option<String>,
    /// A 5-field cron expression: one async call per tick.
    pub schedule: Option<String>,
    /// The IANA time zone `schedule` is read in.
    pub schedule_timezone: String,
    /// 1 when created, one more at each update.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The runtimes its namespace allows: with only gVisor, it never runs under runc.
    #[serde(skip)]
    pub allowed_runtimes: Vec<Runtime>,
    /// Calls of all its namespace's functions at once; `None`: no limit.
    #[serde(skip)]
    pub namespace_max_concurrency: Option<i32>,
    /// Its namespace's incarnation (`namespaces.uid`): what a record or async invocation of
    /// it is written under, so that one written after the namespace was deleted is dropped.
    #[serde(skip)]
    pub namespace_uid: Uuid,
    /// While this version's build is not ready: the last runnable version, which calls run.
    #[serde(skip)]
    pub serving: Option<FunctionSpec>,
}

/// Why a function's current version cannot run and nothing can run in its place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotRunnable {
    /// Its dependencies are pending or building.
    #[error(
        "function {0} is not ready: its dependencies are being built (GET /functions/{{id}}/build shows the build)"
    )]
    Building(String),
    /// Its build failed and no version before it could run.
    #[error(
        "the build of function {name}'s dependencies failed; update the function to try again. The log ends with:\n{log_tail}"
    )]
    BuildFailed { name: String, log_tail: String },
}

/// A function's deployment package as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PackageInfo {
    /// The package's artifact: SHA-256 of `package` and its archive's SHA-256. The same files
    /// make the same digest.
    #[schema(examples("9a3f0c1d5e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"))]
    pub digest: String,
    /// Bytes of the zip as uploaded.
    pub zip_bytes: i64,
    /// Bytes of its files, unpacked.
    pub unpacked_bytes: i64,
    /// Its regular files.
    pub files: i32,
}

impl Function {
    /// A plain Python function of namespace `default`, for tests to change what they need.
    #[cfg(test)]
    pub fn example() -> Function {
        Function {
            id: 1,
            namespace: "default".into(),
            name: "hello".into(),
            route: "/hello".into(),
            language: Language::Python,
            code: Some("def handler(event, context):\n    return 1".into()),
            handler: "handler".into(),
            timeout: 5,
            runtime: Runtime::Docker,
            memory_mb: 128,
            env: Default::default(),
            max_concurrency: None,
            http_methods: None,
            http_auth: Default::default(),
            cors: None,
            dependencies: None,
            package: None,
            build: None,
            max_retries: 2,
            max_event_age_secs: 21_600,
            on_success: None,
            on_failure: None,
            schedule: None,
            schedule_timezone: "UTC".into(),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            allowed_runtimes: Runtime::ALL.to_vec(),
            namespace_max_concurrency: None,
            namespace_uid: Uuid::nil(),
            serving: None,
        }
    }

    /// This version as a job runs it, with its artifact.
    fn current_spec(&self, dependencies: Option<ArtifactRef>) -> FunctionSpec {
        FunctionSpec {
            id: self.id,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            version: self.version,
            handler: self.handler.clone(),
            language: self.language,
            code: self.code.clone().unwrap_or_default(),
            timeout_ms: self.timeout as u64 * 1000,
            memory_mb: self.memory_mb as u32,
            env: self.env.clone(),
            dependencies,
            package: self.package.as_ref().map(|package| ArtifactRef {
                digest: package.digest.clone(),
                unpacked_bytes: package.unpacked_bytes.max(0) as u64,
            }),
        }
    }

    /// What a call runs: this version when it needs no build or its build is ready; else the
    /// last version that was runnable (a failed or pending build never takes its place); else
    /// [`NotRunnable`] while building or once failed.
    pub fn runnable(&self) -> Result<FunctionSpec, NotRunnable> {
        let Some(build) = &self.build else {
            return Ok(self.current_spec(None));
        };
        if build.status == BuildStatus::Ready
            && let Some(digest) = &build.digest
        {
            return Ok(self.current_spec(Some(ArtifactRef {
                digest: digest.clone(),
                unpacked_bytes: build.size_bytes.unwrap_or(0).max(0) as u64,
            })));
        }
        if let Some(serving) = &self.serving {
            return Ok(serving.clone());
        }
        Err(match build.status {
            BuildStatus::Failed => NotRunnable::BuildFailed {
                name: self.name.clone(),
                log_tail: tail(&build.log, 2048).to_owned(),
            },
            _ => NotRunnable::Building(self.name.clone()),
        })
    }
}

/// The last `max_bytes` (or fewer, on a character boundary) of `text`.
pub fn tail(text: &str, max_bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(max_bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The columns of a function, of its namespace and of its build, from `f` (functions), `n`
/// (namespaces) and `b` (builds), joined by [`JOINS`].
pub(super) const FUNCTION_COLUMNS: &str = "f.id, f.namespace, f.name, f.route, f.language, f.code, f.handler, f.timeout,
    f.runtime, f.memory_mb, f.env, f.max_concurrency, f.http_methods, f.http_auth, f.cors, f.version, f.created_at, f.updated_at,
    f.dependencies, f.build_key, f.serving,
    f.package_digest, f.package_zip_bytes, f.package_files, pa.unpacked_bytes AS package_unpacked_bytes,
    f.max_retries, f.max_event_age_secs, f.on_success, f.on_failure, f.schedule, f.schedule_timezone,
    n.allowed_runtimes, n.max_concurrency AS namespace_max_concurrency, n.uid AS namespace_uid,
    b.status AS build_status, b.digest AS build_digest, b.size_bytes AS build_size,
    right(b.log, 4096) AS build_log, b.started_at AS build_started_at, b.finished_at AS build_finished_at,
    b.published_at AS build_published_at";

/// A function row `f`'s namespace and build.
pub(super) const JOINS: &str =
    "JOIN namespaces n ON n.name = f.namespace LEFT JOIN builds b ON b.key = f.build_key
     LEFT JOIN artifacts pa ON pa.digest = f.package_digest";

impl TryFrom<&Row> for Function {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        let language: String = row.try_get("language")?;
        let runtime: String = row.try_get("runtime")?;
        let env: serde_json::Value = row.try_get("env")?;
        let allowed: Vec<String> = row.try_get("allowed_runtimes")?;
        let trigger = TriggerSettings::try_from(row)?;
        let build = Build::from_row(row)?;
        let serving: Option<serde_json::Value> = row.try_get("serving")?;
        let package_digest: Option<String> = row.try_get("package_digest")?;
        let package = match package_digest {
            Some(digest) => Some(PackageInfo {
                digest,
                zip_bytes: row
                    .try_get::<_, Option<i64>>("package_zip_bytes")?
                    .unwrap_or(0),
                unpacked_bytes: row
                    .try_get::<_, Option<i64>>("package_unpacked_bytes")?
                    .unwrap_or(0),
                files: row.try_get::<_, Option<i32>>("package_files")?.unwrap_or(0),
            }),
            None => None,
        };
        Ok(Function {
            id: row.try_get("id")?,
            namespace: row.try_get("namespace")?,
            name: row.try_get("name")?,
            route: row.try_get("route")?,
            // The table's CHECK constraints keep both columns inside their enums.
            language: language.parse().unwrap_or(Language::Python),
            code: match package {
                Some(_) => None,
                None => Some(row.try_get("code")?),
            },
            handler: row.try_get("handler")?,
            timeout: row.try_get("timeout")?,
            runtime: runtime.parse().unwrap_or(Runtime::Docker),
            memory_mb: row.try_get("memory_mb")?,
            env: serde_json::from_value(env).unwrap_or_default(),
            max_concurrency: row.try_get("max_concurrency")?,
            http_methods: trigger.methods,
            http_auth: trigger.auth,
            cors: trigger.cors,
            dependencies: row.try_get("dependencies")?,
            build,
            package,
            max_retries: row.try_get("max_retries")?,
            max_event_age_secs: row.try_get("max_event_age_secs")?,
            on_success: row.try_get("on_success")?,
            on_failure: row.try_get("on_failure")?,
            schedule: row.try_get("schedule")?,
            schedule_timezone: row.try_get("schedule_timezone")?,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            // The namespaces table's CHECK keeps these inside the enum.
            allowed_runtimes: allowed.iter().filter_map(|r| r.parse().ok()).collect(),
            namespace_max_concurrency: row.try_get("namespace_max_concurrency")?,
            namespace_uid: row.try_get("namespace_uid")?,
            // Written by this api from a FunctionSpec; unreadable would mean a foreign writer.
            serving: serving.and_then(|value| serde_json::from_value(value).ok()),
        })
    }
}

fn rows_to_functions(rows: &[Row]) -> Result<Vec<Function>, DbError> {
    rows.iter().map(Function::try_from).collect()
}

/// A function row's HTTP trigger settings.
struct TriggerSettings {
    methods: Option<Vec<String>>,
    auth: HttpAuth,
    cors: Option<Cors>,
}

impl TryFrom<&Row> for TriggerSettings {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        let http_auth: String = row.try_get("http_auth")?;
        let cors: Option<serde_json::Value> = row.try_get("cors")?;
        Ok(TriggerSettings {
            methods: row.try_get("http_methods")?,
            // The CHECK keeps it `key` or `none`; the api only stores checked CORS settings.
            auth: HttpAuth::parse(&http_auth).unwrap_or_default(),
            cors: cors.and_then(|value| serde_json::from_value(value).ok()),
        })
    }
}

/// The functions of `namespace`, by id; only the one called `name` when it is given.
pub async fn list_functions(
    pool: &Pool,
    namespace: &str,
    name: Option<&str>,
    skip: i64,
    limit: i64,
) -> Result<Vec<Function>, DbError> {
    let client = pool.get().await?;
    // `functions_namespace_name_key` finds the one named; the namespace's rows otherwise.
    let sql = format!(
        "SELECT {FUNCTION_COLUMNS} FROM functions f {JOINS}
         WHERE f.namespace = $1 AND ($4::text IS NULL OR f.name = $4)
         ORDER BY f.id OFFSET $2 LIMIT $3"
    );
    let rows = client
        .query(&sql, &[&namespace, &skip, &limit, &name])
        .await?;
    rows_to_functions(&rows)
}

/// Function `id`, if `namespace` has it.
pub async fn get_function(
    pool: &Pool,
    namespace: &str,
    id: i64,
) -> Result<Option<Function>, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {FUNCTION_COLUMNS} FROM functions f {JOINS}
         WHERE f.id = $1 AND f.namespace = $2"
    );
    let row = client.query_opt(&sql, &[&id, &namespace]).await?;
    row.as_ref().map(Function::try_from).transpose()
}

/// The function called `name` in `namespace`.
pub async fn get_function_by_name(
    pool: &Pool,
    namespace: &str,
    name: &str,
) -> Result<Option<Function>, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {FUNCTION_COLUMNS} FROM functions f {JOINS}
         WHERE f.namespace = $1 AND f.name = $2"
    );
    let row = client.query_opt(&sql, &[&namespace, &name]).await?;
    row.as_ref().map(Function::try_from).transpose()
}

/// Deletes function `id` of `namespace`; false when it has none.
pub async fn delete_function(pool: &Pool, namespace: &str, id: i64) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let deleted = client
        .execute(
            "DELETE FROM functions WHERE id = $1 AND namespace = $2",
            &[&id, &namespace],
        )
        .await?;
    Ok(deleted > 0)
}

/// Every function's route that holds its shape (those without one share it with an older
/// function, from before shapes were kept unique), as the route table holds it.
pub async fn list_routes(pool: &Pool) -> Result<Vec<RouteEntry>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, namespace, name, route, http_methods, http_auth, cors FROM functions
             WHERE route_shape IS NOT NULL",
        )
        .await?;
    let rows = client.query(&statement, &[]).await?;
    rows.iter()
        .map(|row| {
            let trigger = TriggerSettings::try_from(row)?;
            Ok(RouteEntry {
                function_id: row.try_get("id")?,
                namespace: row.try_get("namespace")?,
                name: row.try_get("name")?,
                route: row.try_get("route")?,
                methods: trigger.methods,
                auth: trigger.auth,
                cors: trigger.cors,
            })
        })
        .collect()
}
