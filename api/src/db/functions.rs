//! Functions, each in its namespace, read together with what the namespace allows.

use crate::error::{ApiError, DbError};
use crate::http_trigger::{Cors, HttpAuth, RouteEntry};
use chrono::{DateTime, Utc};
use common::{Language, Runtime};
use deadpool_postgres::Pool;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

/// A stored function, as the API shows it, with what its namespace allows (not shown).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "id": 1, "namespace": "default", "name": "hello", "route": "/hello",
    "language": "python", "handler": "handler", "timeout": 5, "runtime": "docker",
    "code": "def handler(event, context):\n    return {'message': 'Hello'}",
    "memory_mb": 128, "env": {"GREETING": "Hello"}, "max_concurrency": null,
    "http_methods": ["GET", "POST"], "http_auth": "key", "cors": null, "version": 1,
    "created_at": "2026-11-27T16:00:00Z", "updated_at": "2026-11-27T16:00:00Z"
})))]
pub struct Function {
    #[schema(examples(1))]
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub route: String,
    pub language: Language,
    pub code: String,
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
}

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
}

/// The columns of a function and of its namespace, from `f` (functions) and `n` (namespaces).
const FUNCTION_COLUMNS: &str = "f.id, f.namespace, f.name, f.route, f.language, f.code, f.handler, f.timeout,
    f.runtime, f.memory_mb, f.env, f.max_concurrency, f.http_methods, f.http_auth, f.cors, f.version, f.created_at, f.updated_at,
    n.allowed_runtimes, n.max_concurrency AS namespace_max_concurrency";

impl TryFrom<&Row> for Function {
    type Error = DbError;
    fn try_from(row: &Row) -> Result<Self, DbError> {
        let language: String = row.try_get("language")?;
        let runtime: String = row.try_get("runtime")?;
        let env: serde_json::Value = row.try_get("env")?;
        let allowed: Vec<String> = row.try_get("allowed_runtimes")?;
        let trigger = TriggerSettings::try_from(row)?;
        Ok(Function {
            id: row.try_get("id")?,
            namespace: row.try_get("namespace")?,
            name: row.try_get("name")?,
            route: row.try_get("route")?,
            // The table's CHECK constraints keep both columns inside their enums.
            language: language.parse().unwrap_or(Language::Python),
            code: row.try_get("code")?,
            handler: row.try_get("handler")?,
            timeout: row.try_get("timeout")?,
            runtime: runtime.parse().unwrap_or(Runtime::Docker),
            memory_mb: row.try_get("memory_mb")?,
            env: serde_json::from_value(env).unwrap_or_default(),
            max_concurrency: row.try_get("max_concurrency")?,
            http_methods: trigger.methods,
            http_auth: trigger.auth,
            cors: trigger.cors,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            // The namespaces table's CHECK keeps these inside the enum.
            allowed_runtimes: allowed.iter().filter_map(|r| r.parse().ok()).collect(),
            namespace_max_concurrency: row.try_get("namespace_max_concurrency")?,
        })
    }
}

fn rows_to_functions(rows: &[Row]) -> Result<Vec<Function>, ApiError> {
    rows.iter()
        .map(|row| Function::try_from(row).map_err(ApiError::from))
        .collect()
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

/// Turns a unique-constraint violation into the 409 that names what is taken.
fn conflict_or(error: tokio_postgres::Error, fields: &FunctionFields) -> ApiError {
    if let Some(db) = error.as_db_error()
        && *db.code() == SqlState::UNIQUE_VIOLATION
    {
        return match db.constraint() {
            // Routes are unique across namespaces; which one holds it is not said.
            Some("functions_route_key") => ApiError::Conflict(format!(
                "a function with route {:?} already exists",
                fields.route
            )),
            Some("functions_route_shape_key") => ApiError::Conflict(format!(
                "route {:?} is ambiguous: a function's route has the same shape {:?} (the same path with other parameter names)",
                fields.route, fields.route_shape
            )),
            _ => ApiError::Conflict(format!(
                "a function named {:?} already exists in this namespace",
                fields.name
            )),
        };
    }
    if let Some(db) = error.as_db_error()
        && *db.code() == SqlState::FOREIGN_KEY_VIOLATION
    {
        // The namespace was deleted between the key's check and the insert.
        return ApiError::Conflict("the key's namespace no longer exists".into());
    }
    error.into()
}

/// The columns a client sets, in the order of [`FieldValues::params`].
const FIELD_COLUMNS: [&str; 14] = [
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
];

/// [`FunctionFields`] as query parameters: the JSON columns encoded, the enums as text.
struct FieldValues<'a> {
    fields: &'a FunctionFields,
    language: &'static str,
    runtime: &'static str,
    http_auth: &'static str,
    env: serde_json::Value,
    cors: Option<serde_json::Value>,
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
        }
    }

    /// The values of [`FIELD_COLUMNS`], in their order.
    fn params(&self) -> [&(dyn ToSql + Sync); 14] {
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
        ]
    }
}

/// Creates a function in `namespace`.
pub async fn insert_function(
    pool: &Pool,
    namespace: &str,
    fields: &FunctionFields,
) -> Result<Function, ApiError> {
    let client = pool.get().await?;
    // $1 is the namespace, the fields follow.
    let placeholders: Vec<String> = (2..FIELD_COLUMNS.len() + 2)
        .map(|n| format!("${n}"))
        .collect();
    let sql = format!(
        "WITH f AS (
             INSERT INTO functions (namespace, {})
             VALUES ($1, {}) RETURNING *)
         SELECT {FUNCTION_COLUMNS} FROM f JOIN namespaces n ON n.name = f.namespace",
        FIELD_COLUMNS.join(", "),
        placeholders.join(", ")
    );
    let values = FieldValues::new(fields);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&namespace];
    params.extend(values.params());
    let row = client
        .query_one(&sql, &params)
        .await
        .map_err(|e| conflict_or(e, fields))?;
    Ok(Function::try_from(&row)?)
}

/// Replaces every field of function `id` of `namespace` and bumps its version; `None` when
/// that namespace has no such function.
pub async fn update_function(
    pool: &Pool,
    namespace: &str,
    id: i64,
    fields: &FunctionFields,
) -> Result<Option<Function>, ApiError> {
    let client = pool.get().await?;
    // $1 and $2 are the id and the namespace, the fields follow.
    let assignments: Vec<String> = FIELD_COLUMNS
        .iter()
        .zip(3..)
        .map(|(column, n)| format!("{column} = ${n}"))
        .collect();
    let sql = format!(
        "WITH f AS (
             UPDATE functions SET {}, version = version + 1, updated_at = now()
             WHERE id = $1 AND namespace = $2 RETURNING *)
         SELECT {FUNCTION_COLUMNS} FROM f JOIN namespaces n ON n.name = f.namespace",
        assignments.join(", ")
    );
    let values = FieldValues::new(fields);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &namespace];
    params.extend(values.params());
    let row = client
        .query_opt(&sql, &params)
        .await
        .map_err(|e| conflict_or(e, fields))?;
    Ok(row.as_ref().map(Function::try_from).transpose()?)
}

/// The functions of `namespace`, by id.
pub async fn list_functions(
    pool: &Pool,
    namespace: &str,
    skip: i64,
    limit: i64,
) -> Result<Vec<Function>, ApiError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {FUNCTION_COLUMNS} FROM functions f JOIN namespaces n ON n.name = f.namespace
         WHERE f.namespace = $1 ORDER BY f.id OFFSET $2 LIMIT $3"
    );
    let rows = client.query(&sql, &[&namespace, &skip, &limit]).await?;
    rows_to_functions(&rows)
}

/// Function `id`, if `namespace` has it.
pub async fn get_function(
    pool: &Pool,
    namespace: &str,
    id: i64,
) -> Result<Option<Function>, ApiError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {FUNCTION_COLUMNS} FROM functions f JOIN namespaces n ON n.name = f.namespace
         WHERE f.id = $1 AND f.namespace = $2"
    );
    let row = client.query_opt(&sql, &[&id, &namespace]).await?;
    Ok(row.as_ref().map(Function::try_from).transpose()?)
}

/// The function called `name` in `namespace`.
pub async fn get_function_by_name(
    pool: &Pool,
    namespace: &str,
    name: &str,
) -> Result<Option<Function>, ApiError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {FUNCTION_COLUMNS} FROM functions f JOIN namespaces n ON n.name = f.namespace
         WHERE f.namespace = $1 AND f.name = $2"
    );
    let row = client.query_opt(&sql, &[&namespace, &name]).await?;
    Ok(row.as_ref().map(Function::try_from).transpose()?)
}

/// Deletes function `id` of `namespace`; false when it has none.
pub async fn delete_function(pool: &Pool, namespace: &str, id: i64) -> Result<bool, ApiError> {
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
