//! What `GET /invocations/` shows: one view over async invocations (with their attempts) and
//! the synchronous calls' records, newest first; and the redrive of a dead-lettered invocation.

use super::DbError;
use crate::domain::async_status::{AsyncStatus, InvocationStatus, Mode};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// What [`redrive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redriven {
    /// Back to `accepting`: publish its next attempt, then [`mark_published`].
    Requeued {
        next_attempt: u32,
        /// The function it calls.
        function: String,
    },
    /// It is not dead-lettered; its status as a client sees it.
    NotDeadLettered(InvocationStatus),
    NotFound,
}

/// Gives dead-lettered invocation `id` of `namespace` its retries afresh, its age counted from
/// now.
pub async fn redrive(pool: &Pool, namespace: &str, id: Uuid) -> Result<Redriven, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE async_invocations
             SET status = 'accepting', retry_floor = attempts, redriven_at = now(),
                 finished_at = NULL, updated_at = now()
             WHERE id = $1 AND namespace = $2 AND status = 'dead_lettered'
             RETURNING attempts, function_name",
            &[&id, &namespace],
        )
        .await?;
    if let Some(row) = row {
        let attempts: i32 = row.try_get(0)?;
        return Ok(Redriven::Requeued {
            next_attempt: attempts as u32 + 1,
            function: row.try_get(1)?,
        });
    }
    let row = client
        .query_opt(
            "SELECT status FROM async_invocations WHERE id = $1 AND namespace = $2",
            &[&id, &namespace],
        )
        .await?;
    Ok(match row {
        Some(row) => Redriven::NotDeadLettered(row.try_get::<_, AsyncStatus>(0)?.public()),
        None => Redriven::NotFound,
    })
}

/// One attempt of an invocation, as `GET /invocations/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1-based; what the handler saw as `context.attempt`.
    pub attempt: i32,
    /// How it ended: a reply status (`success`, `error`, `init_error`, `timeout`, `oom`,
    /// `crashed`, `result_too_large`, `expired`), `no_reply`, or `not_run` (`error` says why).
    pub outcome: String,
    pub error: Option<Value>,
    pub worker_id: Option<String>,
    pub cold_start: bool,
    /// From publish to reply, as the api saw it.
    pub duration_ms: Option<f64>,
    /// The worker's `{queue_ms, init_ms, run_ms}`, when it answered.
    pub timing: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// An invocation, sync or async, as `GET /invocations/` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "invocation_id": "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "function": "hello",
    "version": 1, "runtime": "docker", "mode": "async", "status": "succeeded",
    "attempts": [{"attempt": 1, "outcome": "success", "error": null, "worker_id": "worker-1",
        "cold_start": false, "duration_ms": 3.1,
        "timing": {"queue_ms": 0.3, "init_ms": 0.0, "run_ms": 1.2},
        "started_at": "2026-11-27T16:00:00Z",
        "finished_at": "2026-11-27T16:00:00Z"}],
    "result": {"ok": true}, "error": null, "logs": "", "logs_truncated": false,
    "timing": {"queue_ms": 0.3, "init_ms": 0.0, "run_ms": 1.2},
    "created_at": "2026-11-27T16:00:00Z", "finished_at": "2026-11-27T16:00:00Z"
})))]
pub struct InvocationView {
    pub invocation_id: Uuid,
    pub function: String,
    /// The version that ran (the last attempt's); null before any ran.
    pub version: Option<i32>,
    pub runtime: Option<String>,
    /// `sync` (`/execute`, routes), `async` (`/execute_async`, destinations) or `schedule`.
    #[schema(value_type = String)]
    pub mode: Mode,
    /// `queued`, `running`, `succeeded`, `failed`, `timeout`, `dead_lettered` or `expired`.
    /// An async invocation ends `succeeded` or `dead_lettered`; `failed`, `timeout` and
    /// `expired` are the endings of sync calls.
    #[schema(value_type = String)]
    pub status: InvocationStatus,
    /// Every attempt, oldest first (a sync call has one).
    pub attempts: Vec<AttemptView>,
    /// What the handler returned (async only: a sync caller got it in its answer).
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Box<serde_json::value::RawValue>>,
    /// The last attempt's error, or why it was dead-lettered without running.
    pub error: Option<Value>,
    /// What the last attempt printed: all the worker sent for an async invocation, at most
    /// 16 KiB for a sync call (null when no worker answered).
    pub logs: Option<String>,
    /// Whether `logs` were cut, by the worker or to fit the record.
    pub logs_truncated: bool,
    pub timing: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The columns of both kinds of invocations as one shape: `async_invocations` as `a` and the
/// sync records of `invocations` as `s`, with the sync statuses mapped to the async vocabulary.
const VIEW_SELECT: &str = "
    SELECT a.id, a.function_name, a.function_version, a.runtime, a.mode,
           CASE a.status WHEN 'accepting' THEN 'queued' ELSE a.status END AS status,
           a.result, a.error, a.logs, a.logs_truncated, a.timing, a.created_at, a.finished_at,
           NULL::text AS outcome, NULL::text AS worker_id, false AS cold_start,
           NULL::float8 AS duration_ms
    FROM async_invocations a WHERE a.namespace = $1 AND ($2::uuid IS NULL OR a.id = $2)
      AND ($3::text IS NULL OR a.function_name = $3)
      AND ($6::timestamptz IS NULL OR a.created_at >= $6)
    UNION ALL
    SELECT s.id, s.function_name, s.function_version, s.runtime, 'sync',
           CASE s.status WHEN 'success' THEN 'succeeded' WHEN 'timeout' THEN 'timeout'
                         WHEN 'expired' THEN 'expired' ELSE 'failed' END,
           NULL, s.error, s.logs, s.logs_truncated,
           jsonb_build_object('queue_ms', s.queue_ms, 'init_ms', s.init_ms, 'run_ms', s.run_ms),
           s.created_at, s.created_at, s.status, s.worker_id, s.cold_start, s.duration_ms
    FROM invocations s WHERE s.namespace = $1 AND ($2::uuid IS NULL OR s.id = $2)
      AND ($3::text IS NULL OR s.function_name = $3) AND s.trigger IN ('execute', 'http')
      AND ($6::timestamptz IS NULL OR s.created_at >= $6)";

/// Invocation `id` of `namespace`, sync or async.
pub async fn get_invocation(
    pool: &Pool,
    namespace: &str,
    id: Uuid,
) -> Result<Option<InvocationView>, DbError> {
    let mut views = query_views(pool, namespace, Some(id), None, None, None, 1).await?;
    Ok(views.pop())
}

/// The invocations of `namespace`, newest first, optionally of one function or one status,
/// and only those created at or after `since`.
pub async fn list_invocation_views(
    pool: &Pool,
    namespace: &str,
    function: Option<&str>,
    status: Option<InvocationStatus>,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<InvocationView>, DbError> {
    query_views(pool, namespace, None, function, status, since, limit).await
}

async fn query_views(
    pool: &Pool,
    namespace: &str,
    id: Option<Uuid>,
    function: Option<&str>,
    status: Option<InvocationStatus>,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<InvocationView>, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT * FROM ({VIEW_SELECT}) v WHERE ($4::text IS NULL OR v.status = $4)
         ORDER BY v.created_at DESC, v.id DESC LIMIT $5"
    );
    let rows = client
        .query(&sql, &[&namespace, &id, &function, &status, &limit, &since])
        .await?;
    let mut views = Vec::with_capacity(rows.len());
    let mut async_ids = Vec::new();
    for row in &rows {
        let mode: Mode = row.try_get("mode")?;
        let id: Uuid = row.try_get("id")?;
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        let result: Option<String> = row.try_get("result")?;
        let error: Option<Value> = row.try_get("error")?;
        let attempts = match row.try_get::<_, Option<String>>("outcome")? {
            // A sync call's record is its one attempt.
            Some(outcome) if mode == Mode::Sync => vec![AttemptView {
                attempt: 1,
                outcome,
                error: error.clone(),
                worker_id: row.try_get("worker_id")?,
                cold_start: row.try_get("cold_start")?,
                duration_ms: row.try_get("duration_ms")?,
                timing: row.try_get("timing")?,
                started_at: created_at,
                finished_at: created_at,
            }],
            _ => {
                async_ids.push(id);
                Vec::new()
            }
        };
        views.push(InvocationView {
            invocation_id: id,
            function: row.try_get("function_name")?,
            version: row.try_get("function_version")?,
            runtime: row.try_get("runtime")?,
            mode,
            status: row.try_get("status")?,
            attempts,
            // Stored from a worker's reply, which is JSON; anything else shows as null.
            result: result.and_then(|text| serde_json::value::RawValue::from_string(text).ok()),
            error,
            logs: row.try_get("logs")?,
            logs_truncated: row.try_get("logs_truncated")?,
            timing: row.try_get("timing")?,
            created_at,
            finished_at: row.try_get("finished_at")?,
        });
    }
    if !async_ids.is_empty() {
        let mut attempts = attempts_of(&client, &async_ids).await?;
        for view in &mut views {
            if let Some(list) = attempts.remove(&view.invocation_id) {
                view.attempts = list;
            }
        }
    }
    Ok(views)
}

async fn attempts_of(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<AttemptView>>, DbError> {
    let rows = client
        .query(
            "SELECT invocation_id, attempt, outcome, error, worker_id, cold_start, duration_ms,
                    timing, started_at, finished_at
             FROM invocation_attempts WHERE invocation_id = ANY($1) ORDER BY attempt",
            &[&ids],
        )
        .await?;
    let mut by_id: HashMap<Uuid, Vec<AttemptView>> = HashMap::new();
    for row in &rows {
        by_id
            .entry(row.try_get("invocation_id")?)
            .or_default()
            .push(AttemptView {
                attempt: row.try_get("attempt")?,
                outcome: row.try_get("outcome")?,
                error: row.try_get("error")?,
                worker_id: row.try_get("worker_id")?,
                cold_start: row.try_get("cold_start")?,
                duration_ms: row.try_get("duration_ms")?,
                timing: row.try_get("timing")?,
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
            });
    }
    Ok(by_id)
}
