//! Saving a function: its fields as a client sets them, inserted or updated in one
//! transaction with the build its dependencies need.

use super::DbError;
use super::builds::{BuildStatus, Requested, request_build, store_package_in};
use super::function_versions::record_version;
use super::functions::{FUNCTION_COLUMNS, Function, JOINS, PackageInfo};
use crate::domain::http_trigger::{Cors, HttpAuth, RoutePattern};
use crate::domain::package::Package;
use crate::domain::quota::{self, Quota, QuotaDefaults};
use common::{Language, Runtime};
use deadpool_postgres::Pool;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;

/// A function's fields as a client sets them, already validated.
#[derive(Debug, Clone)]
pub struct FunctionFields {
    pub name: String,
    pub route: String,
    pub language: Language,
    pub code: String,
    pub handler: String,
    pub timeout: i32,
    pub runtime: Runtime,
    pub memory_mb: i32,
    pub env: BTreeMap<String, String>,
    pub max_concurrency: Option<i32>,
    pub http_methods: Option<Vec<String>>,
    pub http_auth: HttpAuth,
    pub cors: Option<Cors>,
    /// The route with its parameter names erased: unique, so that no two are ambiguous.
    pub route_shape: String,
    pub dependencies: Option<String>,
    /// The build `dependencies` need ([`crate::domain::deps::build_key`]).
    pub build_key: Option<String>,
    /// The stored package, for a function saved with `code_zip` (then `code` is empty).
    pub package: Option<PackageInfo>,
    pub max_retries: i32,
    pub max_event_age_secs: i32,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub schedule: Option<String>,
    pub schedule_timezone: String,
}

/// The columns a client sets, in the order of [`FieldValues::params`].
const FIELD_COLUMNS: [&str; 25] = [
    "name",
    "route",
    "language",
    "code",
    "handler",
    "timeout",
    "runtime",
    "memory_mb",
    "env",
    "max_concurrency",
    "http_methods",
    "http_auth",
    "cors",
    "route_shape",
    "dependencies",
    "build_key",
    "package_digest",
    "package_zip_bytes",
    "package_files",
    "max_retries",
    "max_event_age_secs",
    "on_success",
    "on_failure",
    "schedule",
    "schedule_timezone",
];

/// [`FunctionFields`] as query parameters: the JSON columns encoded, the enums as text.
struct FieldValues<'a> {
    fields: &'a FunctionFields,
    language: &'static str,
    runtime: &'static str,
    http_auth: &'static str,
    env: Value,
    cors: Option<Value>,
    package_digest: Option<&'a str>,
    package_zip_bytes: Option<i64>,
    package_files: Option<i32>,
}

impl<'a> FieldValues<'a> {
    fn new(fields: &'a FunctionFields) -> Self {
        FieldValues {
            fields,
            language: fields.language.as_str(),
            runtime: fields.runtime.as_str(),
            http_auth: fields.http_auth.as_str(),
            env: serde_json::to_value(&fields.env).unwrap_or_default(),
            cors: fields
                .cors
                .as_ref()
                .map(|cors| serde_json::to_value(cors).unwrap_or_default()),
            package_digest: fields.package.as_ref().map(|p| p.digest.as_str()),
            package_zip_bytes: fields.package.as_ref().map(|p| p.zip_bytes),
            package_files: fields.package.as_ref().map(|p| p.files),
        }
    }

    /// The values of [`FIELD_COLUMNS`], in their order.
    fn params(&self) -> [&(dyn ToSql + Sync); 25] {
        let f = self.fields;
        [
            &f.name,
            &f.route,
            &self.language,
            &f.code,
            &f.handler,
            &f.timeout,
            &self.runtime,
            &f.memory_mb,
            &self.env,
            &f.max_concurrency,
            &f.http_methods,
            &self.http_auth,
            &self.cors,
            &f.route_shape,
            &f.dependencies,
            &f.build_key,
            &self.package_digest,
            &self.package_zip_bytes,
            &self.package_files,
            &f.max_retries,
            &f.max_event_age_secs,
            &f.on_success,
            &f.on_failure,
            &f.schedule,
            &f.schedule_timezone,
        ]
    }
}

/// A function just saved, and the attempt of the build to claim and publish once it is
/// committed, if its build is not queued yet.
#[derive(Debug)]
pub struct Saved {
    pub function: Function,
    pub publish_build: Option<uuid::Uuid>,
}

/// Asks for the build `fields` need, for a function of `namespace`, in the saving transaction.
async fn request_fields_build(
    tx: &deadpool_postgres::Transaction<'_>,
    namespace: &str,
    fields: &FunctionFields,
) -> Result<Option<Requested>, DbError> {
    match (&fields.build_key, &fields.dependencies) {
        (Some(key), Some(dependencies)) => Ok(Some(
            request_build(tx, key, fields.language, dependencies, namespace).await?,
        )),
        _ => Ok(None),
    }
}

/// Refuses `route` for a function of `namespace` when it would take requests that another
/// namespace's route answers (`RoutePattern::takes_from`). The admin's catch-all routes (a
/// parameter first) are left out: they answer what no other route claims, and would otherwise
/// refuse every route after them. Every save of a route that starts with a literal takes the
/// same transaction-scoped lock first, so that two saves in two namespaces cannot both pass.
async fn check_route_is_free(
    tx: &deadpool_postgres::Transaction<'_>,
    namespace: &str,
    route: &str,
) -> Result<(), DbError> {
    // Only a route that starts with a literal can take from another (a catch-all or `/` is
    // the least specific on every path it shares), and only from one with the same literal
    // first: those are the rows to read.
    let Ok(wanted) = RoutePattern::parse(route) else {
        // Checked before the save; a route that does not parse routes nothing.
        return Ok(());
    };
    let Some(first) = wanted.first_literal() else {
        return Ok(());
    };
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ROUTES_LOCK])
        .await?;
    let others = tx
        .query(
            "SELECT route FROM functions
             WHERE namespace <> $1 AND route_shape IS NOT NULL AND split_part(route, '/', 2) = $2",
            &[&namespace, &first],
        )
        .await?;
    for row in others {
        let theirs: String = row.get(0);
        if RoutePattern::parse(&theirs)
            .is_ok_and(|theirs| !theirs.catches_all() && wanted.takes_from(&theirs))
        {
            return Err(DbError::RouteOverlap(route.to_owned()));
        }
    }
    Ok(())
}

/// Refuses a save that would pass namespace `namespace`'s `functions` quota (a create:
/// `replacing` is `None`) or add stored artifact bytes past its `artifact_bytes` quota. The
/// namespace's row is locked (`FOR NO KEY UPDATE`, which function inserts' key-share locks do
/// not wait for) so that two saves in one namespace count one after the other. Bytes are the
/// distinct artifacts (packages, builds' outputs) its functions name, before and after the
/// save; the new package is already in `artifacts`, written by this transaction.
async fn check_save_quotas(
    tx: &deadpool_postgres::Transaction<'_>,
    namespace: &str,
    replacing: Option<i64>,
    fields: &FunctionFields,
    defaults: &QuotaDefaults,
) -> Result<(), DbError> {
    let limits = tx
        .query_opt(
            "SELECT coalesce(quota_functions, $2), coalesce(quota_artifact_bytes, $3)
             FROM namespaces WHERE name = $1 FOR NO KEY UPDATE",
            &[&namespace, &defaults.functions, &defaults.artifact_bytes],
        )
        .await?;
    // Gone: the insert fails on its foreign key, which says so.
    let Some(limits) = limits else { return Ok(()) };
    if replacing.is_none() {
        let held: i64 = tx
            .query_one(
                "SELECT count(*) FROM functions WHERE namespace = $1",
                &[&namespace],
            )
            .await?
            .try_get(0)?;
        quota::check(Quota::Functions, limits.try_get(0)?, held, 1)?;
    }
    let package = fields.package.as_ref().map(|p| p.digest.as_str());
    let bytes = tx
        .query_one(
            "WITH mine AS (
                 SELECT id, package_digest AS digest FROM functions WHERE namespace = $1
                 UNION ALL
                 SELECT f.id, b.digest FROM functions f JOIN builds b ON b.key = f.build_key
                 WHERE f.namespace = $1),
             after AS (
                 SELECT digest FROM mine WHERE id IS DISTINCT FROM $2
                 UNION SELECT $3::text
                 UNION SELECT digest FROM builds WHERE key = $4)
             SELECT
                 (SELECT coalesce(sum(size_bytes), 0) FROM artifacts
                  WHERE digest IN (SELECT digest FROM mine))::bigint,
                 (SELECT coalesce(sum(size_bytes), 0) FROM artifacts
                  WHERE digest IN (SELECT digest FROM after))::bigint",
            &[&namespace, &replacing, &package, &fields.build_key],
        )
        .await?;
    let (before, after): (i64, i64) = (bytes.try_get(0)?, bytes.try_get(1)?);
    quota::check(
        Quota::ArtifactBytes,
        limits.try_get(1)?,
        before,
        after - before,
    )?;
    Ok(())
}

/// The advisory lock every function save takes while it checks its route against the other
/// namespaces' (an arbitrary constant: "faas" and "routes" in ASCII).
const ROUTES_LOCK: i64 = 0x6661_6173_726f_7574;

/// Creates a function in `namespace`, with the build its dependencies need and its package's
/// artifact, all in one transaction.
pub async fn insert_function(
    pool: &Pool,
    namespace: &str,
    fields: &FunctionFields,
    package: Option<&Package>,
    quotas: &QuotaDefaults,
) -> Result<Saved, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // First, before any lock is taken: a large package takes a while to write.
    if let Some(package) = package {
        store_package_in(&tx, package).await?;
    }
    check_save_quotas(&tx, namespace, None, fields, quotas).await?;
    check_route_is_free(&tx, namespace, &fields.route).await?;
    let build = request_fields_build(&tx, namespace, fields).await?;
    // $1 is the namespace, the fields follow.
    let placeholders: Vec<String> = (2..FIELD_COLUMNS.len() + 2)
        .map(|n| format!("${n}"))
        .collect();
    let sql = format!(
        "WITH f AS (
             INSERT INTO functions (namespace, {})
             VALUES ($1, {}) RETURNING *)
         SELECT {FUNCTION_COLUMNS} FROM f {JOINS}",
        FIELD_COLUMNS.join(", "),
        placeholders.join(", ")
    );
    let values = FieldValues::new(fields);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&namespace];
    params.extend(values.params());
    let row = tx.query_one(&sql, &params).await?;
    let function = Function::try_from(&row)?;
    record_version(&tx, function.id, function.version, &version_body(fields)).await?;
    tx.commit().await?;
    Ok(Saved {
        function,
        publish_build: build.and_then(|b| b.publish),
    })
}

/// Replaces every field of function `id` of `namespace` and bumps its version; `None` when
/// that namespace has no such function. When the new version must wait for a build, the
/// version that ran until now keeps serving calls (its spec is kept in `serving`).
pub async fn update_function(
    pool: &Pool,
    namespace: &str,
    id: i64,
    fields: &FunctionFields,
    package: Option<&Package>,
    quotas: &QuotaDefaults,
) -> Result<Option<Saved>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(package) = package {
        store_package_in(&tx, package).await?;
    }
    let old = tx
        .query_opt(
            &format!(
                "SELECT {FUNCTION_COLUMNS} FROM functions f {JOINS}
                 WHERE f.id = $1 AND f.namespace = $2 FOR UPDATE OF f"
            ),
            &[&id, &namespace],
        )
        .await?;
    let Some(old) = old else { return Ok(None) };
    let old = Function::try_from(&old)?;
    check_save_quotas(&tx, namespace, Some(id), fields, quotas).await?;
    check_route_is_free(&tx, namespace, &fields.route).await?;
    let build = request_fields_build(&tx, namespace, fields).await?;
    let ready_now = build
        .as_ref()
        .is_none_or(|b| b.status == BuildStatus::Ready);
    let serving = if ready_now {
        None
    } else {
        old.runnable()
            .ok()
            .map(|spec| serde_json::to_value(spec).expect("a spec always serializes"))
    };
    // $1, $2 and $3 are the id, the namespace and `serving`; the fields follow.
    let assignments: Vec<String> = FIELD_COLUMNS
        .iter()
        .zip(4..)
        .map(|(column, n)| format!("{column} = ${n}"))
        .collect();
    let sql = format!(
        "WITH f AS (
             UPDATE functions SET {}, serving = $3, version = version + 1, updated_at = now()
             WHERE id = $1 AND namespace = $2 RETURNING *)
         SELECT {FUNCTION_COLUMNS} FROM f {JOINS}",
        assignments.join(", ")
    );
    let values = FieldValues::new(fields);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &namespace, &serving];
    params.extend(values.params());
    let row = tx.query_one(&sql, &params).await?;
    let function = Function::try_from(&row)?;
    record_version(&tx, function.id, function.version, &version_body(fields)).await?;
    tx.commit().await?;
    Ok(Some(Saved {
        function,
        publish_build: build.and_then(|b| b.publish),
    }))
}

/// `fields` as the body that saves them again (nulls left out, as a client may).
pub fn version_body(fields: &FunctionFields) -> Value {
    let mut body = json!({
        "name": fields.name,
        "route": fields.route,
        "language": fields.language.as_str(),
        "handler": fields.handler,
        "timeout": fields.timeout,
        "runtime": fields.runtime.as_str(),
        "memory_mb": fields.memory_mb,
        "env": fields.env,
        "http_auth": fields.http_auth.as_str(),
        "max_retries": fields.max_retries,
        "max_event_age_secs": fields.max_event_age_secs,
        "schedule_timezone": fields.schedule_timezone,
    });
    let optional = [
        ("max_concurrency", fields.max_concurrency.map(Value::from)),
        (
            "http_methods",
            fields.http_methods.as_ref().map(|m| json!(m)),
        ),
        ("cors", fields.cors.as_ref().map(|c| json!(c))),
        ("dependencies", fields.dependencies.clone().map(Value::from)),
        ("on_success", fields.on_success.clone().map(Value::from)),
        ("on_failure", fields.on_failure.clone().map(Value::from)),
        ("schedule", fields.schedule.clone().map(Value::from)),
        (
            "package",
            fields
                .package
                .as_ref()
                .map(|p| json!({"digest": p.digest, "zip_bytes": p.zip_bytes, "files": p.files})),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    if fields.package.is_none() {
        body["code"] = json!(fields.code);
    }
    body
}
