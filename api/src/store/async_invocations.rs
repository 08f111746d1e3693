//! Async invocations: the row that holds each one's state (accepted, claimed attempt by attempt,
//! its outcome recorded once) and its attempts. What `GET /invocations/` shows of them, and of
//! the synchronous calls' records, and the redrive of a dead letter, are in `invocation_views`.
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
use super::quotas::{AcceptQuotas, Counted, charge_results, count_quotas};
use crate::domain::async_status::{AsyncStatus, Mode};
use crate::domain::quota::QuotaExceeded;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value;
use uuid::Uuid;

/// How long an `Idempotency-Key` keeps answering with the invocation it made.
const IDEMPOTENCY_WINDOW: &str = "24 hours";

/// An invocation to accept.
#[derive(Debug, Clone)]
pub struct NewAsync {
    pub id: Uuid,
    pub namespace: String,
    /// The incarnation of `namespace` it is accepted into (its function's): nothing is stored
    /// once that one is deleted, even if a namespace of the same name was made since.
    pub namespace_uid: Uuid,
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
    /// A quota of the namespace (pending async calls, stored result bytes) refuses it:
    /// nothing was stored.
    Quota(QuotaExceeded),
    /// The namespace (the incarnation the caller named) is gone: nothing was stored.
    NamespaceGone,
}

/// Stores `new` as `accepting`, unless its idempotency key made an invocation within 24 h, or
/// (when `quotas` is given) a quota of its namespace refuses it: its pending invocations at
/// their limit, or its stored result bytes at theirs (a repeat is answered even then). The
/// count and the insert happen under a transaction-scoped lock per namespace, so that calls
/// side by side on any replica count one after the other.
pub async fn insert_async(
    pool: &Pool,
    new: &NewAsync,
    quotas: Option<AcceptQuotas>,
) -> Result<(Inserted, Option<Counted>), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let counted = match quotas {
        Some(quotas) => count_quotas(&tx, &new.namespace, quotas).await?,
        None => None,
    };
    let (counted, refusal) = match counted {
        Some((counted, refusal)) => (Some(counted), refusal),
        None => (None, None),
    };
    let inserted = insert_async_in(&tx, new, refusal).await?;
    tx.commit().await?;
    Ok((inserted, counted))
}

async fn insert_async_in(
    client: &impl GenericClient,
    new: &NewAsync,
    refusal: Option<QuotaExceeded>,
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
    if let Some(refusal) = refusal {
        // A repeat is answered even at the limit. Below it, the insert's conflict finds one.
        let repeat = match new.idempotency_key {
            Some(_) => find_by_key(client, new).await?,
            None => None,
        };
        return Ok(repeat.unwrap_or(Inserted::Quota(refusal)));
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO async_invocations
                 (id, namespace, function_id, function_name, mode, status, event, idempotency_key,
                  chain_depth)
             SELECT $1, $2, $3, $4, $5, 'accepting', $6, $7, $8
             WHERE EXISTS (SELECT 1 FROM namespaces WHERE name = $2 AND uid = $9 FOR KEY SHARE)
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
                &new.namespace_uid,
            ],
        )
        .await?;
    if row.is_some() {
        return Ok(Inserted::New(new.id));
    }
    let alive: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM namespaces WHERE name = $1 AND uid = $2)",
            &[&new.namespace, &new.namespace_uid],
        )
        .await?
        .try_get(0)?;
    if !alive {
        return Ok(Inserted::NamespaceGone);
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

/// How an attempt ended, as its rows record it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// The reply status, `no_reply`, or `not_run` (with `error` saying why).
    pub outcome: String,
    /// What the handler returned, JSON text, when it succeeded.
    pub result: Option<String>,
    pub error: Option<Value>,
    pub logs: Option<String>,
    pub logs_truncated: bool,
    pub timing: Option<Value>,
    pub duration_ms: Option<f64>,
    pub cold_start: bool,
    pub worker_id: Option<String>,
}

/// How an attempt ended, and what the invocation becomes.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempt: i32,
    /// [`AsyncStatus::Queued`] (a retry follows), [`AsyncStatus::Succeeded`] or
    /// [`AsyncStatus::DeadLettered`].
    pub next_status: AsyncStatus,
    pub record: AttemptRecord,
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
/// The attempt's row and the destination's invocation are written in the same transaction,
/// and the bytes of its result and logs charged to its namespace's `result_bytes` (its own
/// quota, else `default_result_bytes`): past the quota they are dropped for a marker
/// (`quotas::charge_results`).
pub async fn record_attempt(
    pool: &Pool,
    id: Uuid,
    outcome: &AttemptOutcome,
    default_result_bytes: i64,
) -> Result<Recorded, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let terminal = outcome.next_status.is_final();
    let updated = tx
        .query_opt(
            "WITH old AS (
                 SELECT (coalesce(octet_length(result), 0)
                         + coalesce(octet_length(logs), 0))::bigint AS bytes
                 FROM async_invocations WHERE id = $1)
             UPDATE async_invocations
             SET status = $3, result = $4, error = $5, logs = $6, logs_truncated = $7,
                 timing = $8, duration_ms = $9, worker_id = $10, function_version = $11,
                 runtime = $12, claimed_until = NULL, due_back = $14, updated_at = now(),
                 finished_at = CASE WHEN $13 THEN now() END
             WHERE id = $1 AND attempts = $2 AND status = 'running'
             RETURNING namespace, (SELECT bytes FROM old)",
            &[
                &id,
                &outcome.attempt,
                &outcome.next_status,
                &outcome.record.result,
                &outcome.record.error,
                &outcome.record.logs,
                &outcome.record.logs_truncated,
                &outcome.record.timing,
                &outcome.record.duration_ms,
                &outcome.record.worker_id,
                &outcome.function_version,
                &outcome.runtime,
                &terminal,
                &outcome.due_back,
            ],
        )
        .await?;
    let Some(updated) = updated else {
        return Ok(Recorded::AlreadyRecorded);
    };
    let namespace: String = updated.try_get(0)?;
    let old_bytes: i64 = updated.try_get::<_, Option<i64>>(1)?.unwrap_or(0);
    charge_results(
        &tx,
        id,
        &namespace,
        old_bytes,
        (
            outcome.record.result.as_deref(),
            outcome.record.logs.as_deref(),
        ),
        default_result_bytes,
    )
    .await?;
    tx.execute(
        "INSERT INTO invocation_attempts
             (invocation_id, attempt, outcome, error, worker_id, timing, duration_ms, cold_start,
              started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (invocation_id, attempt) DO NOTHING",
        &[
            &id,
            &outcome.attempt,
            &outcome.record.outcome,
            &outcome.record.error,
            &outcome.record.worker_id,
            &outcome.record.timing,
            &outcome.record.duration_ms,
            &outcome.record.cold_start,
            &outcome.started_at,
        ],
    )
    .await?;
    let destination = match &outcome.destination {
        Some(new) => match insert_async_in(&tx, new, None).await? {
            Inserted::New(id) => Some(id),
            Inserted::Existing(_)
            | Inserted::KeyReused(_)
            | Inserted::Quota(_)
            | Inserted::NamespaceGone => None,
        },
        None => None,
    };
    tx.commit().await?;
    Ok(Recorded::Stored { destination })
}

/// A function's schedule, as the scheduler reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledFunction {
    pub id: i64,
    pub namespace: String,
    pub namespace_uid: Uuid,
    pub name: String,
    pub schedule: String,
    pub timezone: String,
}

/// Every function that has a schedule.
pub async fn list_schedules(pool: &Pool) -> Result<Vec<ScheduledFunction>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT f.id, f.namespace, f.name, f.schedule, f.schedule_timezone, n.uid
             FROM functions f JOIN namespaces n ON n.name = f.namespace
             WHERE f.schedule IS NOT NULL",
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
                namespace_uid: row.try_get(5)?,
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
    // Their result and log bytes are given back to their namespaces in the same statement.
    let statement = client
        .prepare_cached(
            "WITH gone AS (
                 DELETE FROM async_invocations WHERE id = ANY(ARRAY(
                     SELECT id FROM async_invocations
                     WHERE finished_at < $1 AND status IN ('succeeded', 'dead_lettered')
                     ORDER BY finished_at LIMIT $2))
                 RETURNING namespace,
                     (coalesce(octet_length(result), 0)
                      + coalesce(octet_length(logs), 0))::bigint AS bytes),
             freed AS (
                 UPDATE namespaces n
                 SET result_bytes_used = greatest(0, n.result_bytes_used - g.bytes)
                 FROM (SELECT namespace, sum(bytes) AS bytes FROM gone GROUP BY namespace) g
                 WHERE n.name = g.namespace)
             SELECT count(*) FROM gone",
        )
        .await?;
    let gone: i64 = client
        .query_one(&statement, &[&cutoff, &limit])
        .await?
        .try_get(0)?;
    Ok(gone as u64)
}
