//! Async invocations: the row that holds each one's state (accepted, claimed attempt by attempt,
//! its outcome recorded once), its attempts, and the views `GET /invocations/` shows of them and
//! of the synchronous calls' records.
//!
//! Every transition is one conditional `UPDATE` on the row, so that of two api replicas holding
//! copies of the same job only one moves it: the claim of attempt N needs the row at N - 1 (or
//! at N with a lapsed claim), the outcome of attempt N needs it running at N.
//!
//! Statuses and modes are [`AsyncStatus`] and [`Mode`] in Rust. A status that is a statement's
//! parameter is bound as one; the statuses written in the SQL stay literal, since a partial
//! index (`WHERE status IN ('accepting', 'queued')`) serves only a query that spells its
//! predicate out.

use super::DbError;
use crate::domain::async_status::{AsyncStatus, InvocationStatus, Mode};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// How long an `Idempotency-Key` keeps answering with the invocation it made.
const IDEMPOTENCY_WINDOW: &str = "24 hours";

/// An invocation to accept.
#[derive(Debug, Clone)]
pub struct NewAsync {
    pub id: Uuid,
    pub namespace: String,
    pub function_id: i64,
    pub function_name: String,
    /// [`Mode::Async`] or [`Mode::Schedule`].
    pub mode: Mode,
    /// The event, JSON text.
    pub event: String,
    pub idempotency_key: Option<String>,
    /// 0 for a client's or a schedule's call; a destination's is its source's plus one.
    pub chain_depth: i32,
}

/// What [`insert_async`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored, status `accepting`: its job is to be published, then [`mark_published`].
    New(Uuid),
    /// The idempotency key names this invocation already (made within 24 h).
    Existing(Uuid),
    /// The idempotency key names an invocation (made within 24 h) of another function or with
    /// another event: nothing was stored.
    KeyReused(Uuid),
    /// The namespace is at its limit of pending invocations: nothing was stored.
    TooManyPending,
}

/// Stores `new` as `accepting`, unless its idempotency key made an invocation within 24 h, or
/// its namespace is `at_limit` (a repeat is answered even then).
pub async fn insert_async(
    pool: &Pool,
    new: &NewAsync,
    at_limit: bool,
) -> Result<Inserted, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let inserted = insert_async_in(&tx, new, at_limit).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// The async invocations of `namespace` waiting or running, counted up to `limit`.
pub async fn count_pending(pool: &Pool, namespace: &str, limit: i64) -> Result<i64, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT count(*) FROM (
                 SELECT 1 FROM async_invocations
                 WHERE namespace = $1 AND status IN ('accepting', 'queued', 'running')
                 LIMIT $2) pending",
        )
        .await?;
    Ok(client
        .query_one(&statement, &[&namespace, &limit])
        .await?
        .try_get(0)?)
}

async fn insert_async_in(
    client: &impl GenericClient,
    new: &NewAsync,
    at_limit: bool,
) -> Result<Inserted, DbError> {
    if let Some(key) = &new.idempotency_key {
        // A key older than the window is free again: the old invocation keeps its row.
        client
            .execute(
                &format!(
                    "UPDATE async_invocations SET idempotency_key = NULL
                     WHERE namespace = $1 AND idempotency_key = $2
                       AND created_at < now() - interval '{IDEMPOTENCY_WINDOW}'"
                ),
                &[&new.namespace, key],
            )
            .await?;
    }
    if at_limit {
        // A repeat is answered even at the limit. Below it, the insert's conflict finds one.
        let repeat = match new.idempotency_key {
            Some(_) => find_by_key(client, new).await?,
            None => None,
        };
        return Ok(repeat.unwrap_or(Inserted::TooManyPending));
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO async_invocations
                 (id, namespace, function_id, function_name, mode, status, event, idempotency_key,
                  chain_depth)
             VALUES ($1, $2, $3, $4, $5, 'accepting', $6, $7, $8)
             ON CONFLICT (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &new.id,
                &new.namespace,
                &new.function_id,
                &new.function_name,
                &new.mode,
                &new.event,
                &new.idempotency_key,
                &new.chain_depth,
            ],
        )
        .await?;
    if row.is_some() {
        return Ok(Inserted::New(new.id));
    }
    // The same key was stored by a call side by side with this one; its row is committed (the
    // insert waited for it), and only a row older than the window loses its key.
    find_by_key(client, new).await?.ok_or(DbError::Inconsistent(
        "an idempotency key conflicted with no row",
    ))
}

/// The invocation that `new`'s idempotency key names, if any: [`Inserted::Existing`] when it is
/// of the same function with the same event (as bytes), else [`Inserted::KeyReused`].
async fn find_by_key(
    client: &impl GenericClient,
    new: &NewAsync,
) -> Result<Option<Inserted>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT id, function_id = $3 AND event = $4 FROM async_invocations
             WHERE namespace = $1 AND idempotency_key = $2",
        )
        .await?;
    let Some(row) = client
        .query_opt(
            &statement,
            &[
                &new.namespace,
                &new.idempotency_key,
                &new.function_id,
                &new.event,
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let id = row.try_get(0)?;
    Ok(Some(if row.try_get(1)? {
        Inserted::Existing(id)
    } else {
        Inserted::KeyReused(id)
    }))
}

/// The broker confirmed the job of `id`: the sweeper leaves it alone from now on. Losing this
/// write costs at most a duplicate publish (dropped by the claim), so it spares the WAL flush.
pub async fn mark_published(pool: &Pool, id: Uuid) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
        .await?;
    tx.execute(
        "UPDATE async_invocations SET status = 'queued', updated_at = now()
         WHERE id = $1 AND status = 'accepting'",
        &[&id],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a just-accepted invocation whose job the broker refused (the caller gets 503).
pub async fn forget_unpublished(pool: &Pool, id: Uuid) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "DELETE FROM async_invocations WHERE id = $1 AND status = 'accepting' AND attempts = 0",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Invocations stored but never confirmed published for `older_than` (an api died between the
/// insert and the publish, or the publish failed): the sweeper publishes them again. Each with
/// the attempt its job must carry.
pub async fn unpublished(
    pool: &Pool,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    sweep(
        pool,
        "SELECT id, attempts FROM async_invocations
         WHERE status = 'accepting' AND updated_at < now() - make_interval(secs => $1)
         ORDER BY updated_at LIMIT $2",
        older_than,
        limit,
    )
    .await
}

/// Invocations `queued` for `older_than` without a change: their retry's job may have been
/// lost (a delay queue's dead-lettering is at most once if the broker dies at that moment).
/// Each is stamped as seen, so that it is published again at most once per `older_than`, and
/// returned with the attempt its job must carry. A duplicate is dropped by the claim.
pub async fn stale_queued(
    pool: &Pool,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    sweep(
        pool,
        "UPDATE async_invocations SET updated_at = now()
         WHERE id = ANY(ARRAY(
             SELECT id FROM async_invocations
             WHERE status = 'queued' AND updated_at < now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED))
         RETURNING id, attempts",
        older_than,
        limit,
    )
    .await
}

/// Invocations `queued` whose job was due back from a delay queue over `grace` ago: the
/// broker may have dropped it while dead-lettering. Each is unstamped (the rule for stale
/// queued rows covers it from then on) and returned with the attempt its job must carry. A
/// job that was only late is a duplicate, dropped by the claim.
pub async fn overdue(
    pool: &Pool,
    grace: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    sweep(
        pool,
        "UPDATE async_invocations SET due_back = NULL, updated_at = now()
         WHERE id = ANY(ARRAY(
             SELECT id FROM async_invocations
             WHERE status = 'queued' AND due_back < now() - make_interval(secs => $1)
             ORDER BY due_back LIMIT $2 FOR UPDATE SKIP LOCKED))
         RETURNING id, attempts",
        grace,
        limit,
    )
    .await
}

/// Runs one of the sweeper's queries (`$1` an age in seconds, `$2` a row limit, returning
/// `id, attempts`) and gives the jobs to publish.
async fn sweep(
    pool: &Pool,
    query: &str,
    age: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, u32)>, DbError> {
    let client = pool.get().await?;
    let rows = client.query(query, &[&age.as_secs_f64(), &limit]).await?;
    next_jobs(&rows)
}

/// Rows of `(id, attempts)` as the jobs to publish: each its next attempt.
fn next_jobs(rows: &[tokio_postgres::Row]) -> Result<Vec<(Uuid, u32)>, DbError> {
    rows.iter()
        .map(|row| {
            let attempts: i32 = row.try_get(1)?;
            Ok((row.try_get(0)?, attempts as u32 + 1))
        })
        .collect()
}

/// An invocation's state, as a job of it finds it.
#[derive(Debug, Clone)]
pub struct AsyncState {
    pub id: Uuid,
    pub namespace: String,
    pub function_name: String,
    pub mode: Mode,
    pub status: AsyncStatus,
    pub event: String,
    pub attempts: i32,
    pub retry_floor: i32,
    pub claimed_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub redriven_at: Option<DateTime<Utc>>,
    pub chain_depth: i32,
}

/// The columns of [`AsyncState`].
const STATE_COLUMNS: &str =
    "id, namespace, function_name, mode, status, event, attempts, retry_floor,
    claimed_until, created_at, redriven_at, chain_depth";

fn state_of(row: &tokio_postgres::Row) -> Result<AsyncState, DbError> {
    Ok(AsyncState {
        id: row.try_get("id")?,
        namespace: row.try_get("namespace")?,
        function_name: row.try_get("function_name")?,
        mode: row.try_get("mode")?,
        status: row.try_get("status")?,
        event: row.try_get("event")?,
        attempts: row.try_get("attempts")?,
        retry_floor: row.try_get("retry_floor")?,
        claimed_until: row.try_get("claimed_until")?,
        created_at: row.try_get("created_at")?,
        redriven_at: row.try_get("redriven_at")?,
        chain_depth: row.try_get("chain_depth")?,
    })
}

/// The state of invocation `id`, if it exists.
pub async fn get_async_state(pool: &Pool, id: Uuid) -> Result<Option<AsyncState>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {STATE_COLUMNS} FROM async_invocations WHERE id = $1"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    row.as_ref().map(state_of).transpose()
}

/// Takes attempt `attempt` of `id` until `until`: from `accepting`/`queued` at `attempt - 1`,
/// or from `running` at `attempt` whose claim lapsed (its api died mid-run). The invocation as
/// claimed, or `None` when another job copy holds it or moved it on (or there is none).
pub async fn claim_attempt(
    pool: &Pool,
    id: Uuid,
    attempt: i32,
    until: DateTime<Utc>,
) -> Result<Option<AsyncState>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "UPDATE async_invocations
             SET status = 'running', attempts = $2, claimed_until = $3, due_back = NULL,
                 updated_at = now()
             WHERE id = $1
               AND ((status IN ('accepting', 'queued') AND attempts = $2 - 1)
                    OR (status = 'running' AND attempts = $2 AND claimed_until < now()))
             RETURNING {STATE_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&id, &attempt, &until])
        .await?;
    row.as_ref().map(state_of).transpose()
}

/// Moves the claim of a running attempt to `until` (the attempt waited for a slot); false when
/// it is not this attempt's any more.
pub async fn extend_claim(
    pool: &Pool,
    id: Uuid,
    attempt: i32,
    until: DateTime<Utc>,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE async_invocations SET claimed_until = $3
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
            &[&id, &attempt, &until],
        )
        .await?;
    Ok(updated == 1)
}

/// Gives back attempt `attempt` of `id` unstarted: `queued` at the attempt before, so that
/// the job set aside for it, `due_back` then, claims it again; false when it is not this
/// attempt's any more.
pub async fn unclaim(
    pool: &Pool,
    id: Uuid,
    attempt: i32,
    due_back: DateTime<Utc>,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE async_invocations
             SET status = 'queued', attempts = attempts - 1, claimed_until = NULL,
                 due_back = $3, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
            &[&id, &attempt, &due_back],
        )
        .await?;
    Ok(updated == 1)
}

/// Lets the redelivered job take the attempt over at once: this api lost its broker
/// connection, so the job is back in the queue.
pub async fn release_claim(pool: &Pool, id: Uuid, attempt: i32) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE async_invocations SET claimed_until = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
            &[&id, &attempt],
        )
        .await?;
    Ok(())
}

/// How an attempt ended, and what the invocation becomes.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempt: i32,
    /// [`AsyncStatus::Queued`] (a retry follows), [`AsyncStatus::Succeeded`] or
    /// [`AsyncStatus::DeadLettered`].
    pub next_status: AsyncStatus,
    /// The reply status, `no_reply`, or `not_run` (with `error` saying why).
    pub outcome: String,
    pub result: Option<String>,
    pub error: Option<Value>,
    pub logs: Option<String>,
    pub logs_truncated: bool,
    pub timing: Option<Value>,
    pub duration_ms: Option<f64>,
    pub cold_start: bool,
    pub worker_id: Option<String>,
    pub function_version: Option<i32>,
    pub runtime: Option<String>,
    pub started_at: DateTime<Utc>,
    /// With a retry: when its job is due back from the delay queue.
    pub due_back: Option<DateTime<Utc>>,
    /// The destination invocation to accept with this outcome, in the same transaction.
    pub destination: Option<NewAsync>,
}

/// What [`record_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored; the destination invocation made, if any (to publish).
    Stored { destination: Option<Uuid> },
    /// Another copy of the job recorded this attempt, or moved the invocation on.
    AlreadyRecorded,
}

/// Stores the outcome of a running attempt, once: the row must still be running that attempt.
/// The attempt's row and the destination's invocation are written in the same transaction.
pub async fn record_attempt(
    pool: &Pool,
    id: Uuid,
    outcome: &AttemptOutcome,
) -> Result<Recorded, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let terminal = outcome.next_status.is_final();
    let updated = tx
        .execute(
            "UPDATE async_invocations
             SET status = $3, result = $4, error = $5, logs = $6, logs_truncated = $7,
                 timing = $8, duration_ms = $9, worker_id = $10, function_version = $11,
                 runtime = $12, claimed_until = NULL, due_back = $14, updated_at = now(),
                 finished_at = CASE WHEN $13 THEN now() END
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
            &[
                &id,
                &outcome.attempt,
                &outcome.next_status,
                &outcome.result,
                &outcome.error,
                &outcome.logs,
                &outcome.logs_truncated,
                &outcome.timing,
                &outcome.duration_ms,
                &outcome.worker_id,
                &outcome.function_version,
                &outcome.runtime,
                &terminal,
                &outcome.due_back,
            ],
        )
        .await?;
    if updated == 0 {
        return Ok(Recorded::AlreadyRecorded);
    }
    tx.execute(
        "INSERT INTO invocation_attempts
             (invocation_id, attempt, outcome, error, worker_id, timing, duration_ms, cold_start,
              started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (invocation_id, attempt) DO NOTHING",
        &[
            &id,
            &outcome.attempt,
            &outcome.outcome,
            &outcome.error,
            &outcome.worker_id,
            &outcome.timing,
            &outcome.duration_ms,
            &outcome.cold_start,
            &outcome.started_at,
        ],
    )
    .await?;
    let destination = match &outcome.destination {
        Some(new) => match insert_async_in(&tx, new, false).await? {
            Inserted::New(id) => Some(id),
            Inserted::Existing(_) | Inserted::KeyReused(_) | Inserted::TooManyPending => None,
        },
        None => None,
    };
    tx.commit().await?;
    Ok(Recorded::Stored { destination })
}

/// What [`redrive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redriven {
    /// Back to `accepting`: publish its next attempt, then [`mark_published`].
    Requeued {
        next_attempt: u32,
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
             RETURNING attempts",
            &[&id, &namespace],
        )
        .await?;
    if let Some(row) = row {
        let attempts: i32 = row.try_get(0)?;
        return Ok(Redriven::Requeued {
            next_attempt: attempts as u32 + 1,
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
    /// What the last attempt printed (async only).
    pub logs: Option<String>,
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
    UNION ALL
    SELECT s.id, s.function_name, s.function_version, s.runtime, 'sync',
           CASE s.status WHEN 'success' THEN 'succeeded' WHEN 'timeout' THEN 'timeout'
                         WHEN 'expired' THEN 'expired' ELSE 'failed' END,
           NULL, s.error, NULL, false,
           jsonb_build_object('queue_ms', s.queue_ms, 'init_ms', s.init_ms, 'run_ms', s.run_ms),
           s.created_at, s.created_at, s.status, s.worker_id, s.cold_start, s.duration_ms
    FROM invocations s WHERE s.namespace = $1 AND ($2::uuid IS NULL OR s.id = $2)
      AND ($3::text IS NULL OR s.function_name = $3) AND s.trigger IN ('execute', 'http')";

/// Invocation `id` of `namespace`, sync or async.
pub async fn get_invocation(
    pool: &Pool,
    namespace: &str,
    id: Uuid,
) -> Result<Option<InvocationView>, DbError> {
    let mut views = query_views(pool, namespace, Some(id), None, None, 1).await?;
    Ok(views.pop())
}

/// The invocations of `namespace`, newest first, optionally of one function or one status.
pub async fn list_invocation_views(
    pool: &Pool,
    namespace: &str,
    function: Option<&str>,
    status: Option<InvocationStatus>,
    limit: i64,
) -> Result<Vec<InvocationView>, DbError> {
    query_views(pool, namespace, None, function, status, limit).await
}

async fn query_views(
    pool: &Pool,
    namespace: &str,
    id: Option<Uuid>,
    function: Option<&str>,
    status: Option<InvocationStatus>,
    limit: i64,
) -> Result<Vec<InvocationView>, DbError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT * FROM ({VIEW_SELECT}) v WHERE ($4::text IS NULL OR v.status = $4)
         ORDER BY v.created_at DESC, v.id DESC LIMIT $5"
    );
    let rows = client
        .query(&sql, &[&namespace, &id, &function, &status, &limit])
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

/// A function's schedule, as the scheduler reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledFunction {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub schedule: String,
    pub timezone: String,
}

/// Every function that has a schedule.
pub async fn list_schedules(pool: &Pool) -> Result<Vec<ScheduledFunction>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, namespace, name, schedule, schedule_timezone FROM functions
             WHERE schedule IS NOT NULL",
        )
        .await?;
    let rows = client.query(&statement, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(ScheduledFunction {
                id: row.try_get(0)?,
                namespace: row.try_get(1)?,
                name: row.try_get(2)?,
                schedule: row.try_get(3)?,
                timezone: row.try_get(4)?,
            })
        })
        .collect()
}

/// Deletes up to `limit` finished async invocations (with their attempts) that ended before
/// `cutoff`; returns how many went.
pub async fn delete_async_before(
    pool: &Pool,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM async_invocations WHERE id = ANY(ARRAY(
                 SELECT id FROM async_invocations
                 WHERE finished_at < $1 AND status IN ('succeeded', 'dead_lettered')
                 ORDER BY finished_at LIMIT $2))",
        )
        .await?;
    Ok(client.execute(&statement, &[&cutoff, &limit]).await?)
}
