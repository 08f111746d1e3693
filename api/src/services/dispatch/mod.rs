//! Asynchronous invocations (DESIGN section 10): accepted into Postgres and a durable queue,
//! run by a dispatcher in every api replica, retried with backoff, dead-lettered, chained to
//! destinations, and fired by schedules.
//!
//! The row in `async_invocations` is the truth; a queue message only says "run attempt N of
//! invocation X". Accepting stores the row (`accepting`), publishes the job (persistent, on the
//! quorum queue `{prefix}faas.async`, publisher confirm) and marks it `queued`; a sweeper
//! publishes again what an api left `accepting` when it died in between. The dispatcher
//! (`consumer`) takes jobs with a bounded prefetch (`ASYNC_CONCURRENCY`), and `runner` claims
//! the attempt on the row, runs it through the same path as a sync call (it waits for a
//! concurrency slot rather than failing), records the outcome (only the claimant of that
//! attempt can) and only then acks: a job whose api or worker dies mid-run is delivered again.
//! `plan` holds the decisions, apart from I/O (the states and modes are
//! `crate::domain::async_status`); `backend` is the runner's port to the store, the broker and
//! the call path (`Dispatch` the real one); `scheduler` turns cron ticks into invocations.

mod backend;
mod consumer;
mod fair;
#[cfg(test)]
mod fake;
mod pending;
mod plan;
mod runner;
mod scheduler;

pub use consumer::spawn_dispatcher;
pub use pending::PendingCounts;
pub use scheduler::spawn_scheduler;

use crate::broker::{BrokerError, Invoker};
use crate::services::Invocations;
use crate::store::{self, Inserted, NewAsync};
use common::broker::Topology;
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A message of the async queues: run attempt `attempt` (1-based) of the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncJob {
    pub invocation_id: Uuid,
    pub attempt: u32,
    /// How often this attempt was set aside because its namespace held its fair share of a
    /// dispatcher's slots ([`fair`]): each time it stays away longer. Absent: never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferred: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl AsyncJob {
    /// Attempt `attempt` of `invocation_id`, never set aside.
    pub fn new(invocation_id: Uuid, attempt: u32) -> Self {
        AsyncJob {
            invocation_id,
            attempt,
            deferred: 0,
        }
    }

    fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an async job always serializes")
    }
}

/// An accepted invocation.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    pub invocation_id: Uuid,
    /// The idempotency key had made it already: nothing new runs.
    pub existing: bool,
}

/// The dispatcher's and the scheduler's settings.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub amqp_url: String,
    /// Names this replica's dispatcher connection for `rabbitmqctl list_connections`.
    pub connection_name: String,
    /// Jobs this replica runs at once (`ASYNC_CONCURRENCY`).
    pub concurrency: u16,
    pub topology: Topology,
    /// `MAX_EVENT_BYTES`: the largest event a destination receives.
    pub max_event_bytes: usize,
}

/// What async dispatch reaches of the platform: the store, the broker, the one call path,
/// and this replica's estimate of each namespace's pending invocations.
#[derive(Clone)]
pub struct Dispatch {
    pub db: Pool,
    pub invoker: Arc<Invoker>,
    pub invocations: Invocations,
    pub pending: Arc<PendingCounts>,
    /// `MAX_PENDING_ASYNC` (per namespace, which may narrow it) and the default
    /// `result_bytes` quota: what a client's accept counts against.
    pub quotas: store::AcceptQuotas,
}

/// Why an async call was not accepted; nothing is kept for any of them.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The `Idempotency-Key` was used within 24 h for invocation `0`, of another function or
    /// with another event.
    #[error("the idempotency key made invocation {0}, of another function or event")]
    KeyReused(Uuid),
    /// A quota of the namespace refuses it: its pending invocations (`pending_async`, at most
    /// `MAX_PENDING_ASYNC`) or its stored results (`result_bytes`) are at their limit.
    #[error(transparent)]
    Quota(crate::domain::quota::QuotaExceeded),
    /// The function's namespace was deleted meanwhile.
    #[error("namespace {0} not found")]
    NamespaceGone(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the database is unavailable")]
    Database(#[from] store::DbError),
}

/// Accepts `new`: stored, then its first attempt published and confirmed. With an
/// idempotency key that made an invocation within 24 h, that one (409 when it was of another
/// function or event). When `limited` (a client's call), refused when a quota of the namespace
/// is full: its pending invocations (`pending_async`) or its stored results (`result_bytes`). A job the broker does not confirm is 503 and
/// nothing is kept.
pub async fn accept(
    state: &Dispatch,
    new: NewAsync,
    limited: bool,
) -> Result<Accepted, AcceptError> {
    let counting = (limited && state.pending.must_count(&new.namespace)).then_some(state.quotas);
    let (inserted, counted) = store::insert_async(&state.db, &new, counting).await?;
    if let Some(counted) = &counted {
        state.pending.counted(&new.namespace, counted);
    }
    match inserted {
        Inserted::Existing(invocation_id) => Ok(Accepted {
            invocation_id,
            existing: true,
        }),
        Inserted::KeyReused(invocation_id) => Err(AcceptError::KeyReused(invocation_id)),
        Inserted::Quota(exceeded) => Err(AcceptError::Quota(exceeded)),
        Inserted::NamespaceGone => Err(AcceptError::NamespaceGone(new.namespace)),
        Inserted::New(invocation_id) => {
            if let Err(error) = publish_attempt(state, invocation_id, 1).await {
                if let Err(db_error) = store::forget_unpublished(&state.db, invocation_id).await {
                    // The sweeper will publish it after all: the caller, told 503, may see it run.
                    tracing::warn!(%db_error, %invocation_id, "refused invocation not deleted");
                }
                return Err(error.into());
            }
            state.pending.accepted(&new.namespace);
            metrics::counter!("faas_async_accepted_total", "namespace" => new.namespace, "function" => new.function_name, "mode" => new.mode.as_str())
                .increment(1);
            Ok(Accepted {
                invocation_id,
                existing: false,
            })
        }
    }
}

/// Publishes attempt `attempt` of `invocation_id` to run now, then marks the row published
/// (best effort: the sweeper's duplicate is dropped by the claim).
pub async fn publish_attempt(
    state: &Dispatch,
    invocation_id: Uuid,
    attempt: u32,
) -> Result<(), BrokerError> {
    let job = AsyncJob::new(invocation_id, attempt);
    state
        .invoker
        .publish_async(Topology::ASYNC_RUN_KEY, &job.body())
        .await?;
    if let Err(error) = store::mark_published(&state.db, invocation_id).await {
        tracing::warn!(%error, %invocation_id, "published invocation not marked; the sweeper will publish it again");
    }
    Ok(())
}

/// Runs dead-lettered invocation `id` of `namespace` again (its next attempt, counted from
/// now): what `POST /invocations/{id}/retry` and the console's redrive do. A publish that fails
/// leaves it `accepting`, and the sweeper publishes it.
pub async fn redrive(
    state: &Dispatch,
    namespace: &str,
    id: Uuid,
) -> Result<store::Redriven, store::DbError> {
    let redriven = store::redrive(&state.db, namespace, id).await?;
    if let &store::Redriven::Requeued { next_attempt, .. } = &redriven {
        if let Err(error) = publish_attempt(state, id, next_attempt).await {
            tracing::warn!(%error, invocation_id = %id, "redriven invocation not published yet; the sweeper will");
        }
        tracing::info!(invocation_id = %id, next_attempt, "invocation redriven");
    }
    Ok(redriven)
}

/// How long an invocation may stay `accepting` before the sweeper publishes it again.
const UNPUBLISHED_AFTER: Duration = Duration::from_secs(30);
/// The least time an invocation stays `queued` unchanged before the sweeper publishes its next
/// attempt again (more when the longest retry delay is longer).
const STALE_QUEUED_AFTER: Duration = Duration::from_secs(15 * 60);
/// How late a job due back from a delay queue may be before the sweeper publishes it again.
const OVERDUE_AFTER: Duration = Duration::from_secs(30);
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Every [`SWEEP_EVERY`], publishes again the jobs that may have been lost: of invocations left
/// `accepting` for [`UNPUBLISHED_AFTER`] (an api died between storing one and publishing it, or
/// a redrive's publish failed), of invocations whose job is [`OVERDUE_AFTER`] late from a
/// delay queue, and of invocations `queued` unchanged for twice the longest retry delay and at
/// least [`STALE_QUEUED_AFTER`]. A job that was not lost after all is a duplicate, which the
/// claim drops. Until `stop`.
pub fn spawn_sweeper(
    state: Dispatch,
    topology: Topology,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let longest_delay = Duration::from_secs(topology.retry_delay_secs(Topology::MAX_RETRIES));
    let stale_after = (longest_delay * 2).max(STALE_QUEUED_AFTER);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            let mut lost = match store::unpublished(&state.db, UNPUBLISHED_AFTER, 100).await {
                Ok(lost) => lost,
                Err(error) => {
                    tracing::debug!(%error, "cannot look for unpublished invocations");
                    continue;
                }
            };
            for (what, found) in [
                (
                    "overdue",
                    store::overdue(&state.db, OVERDUE_AFTER, 100).await,
                ),
                (
                    "stale",
                    store::stale_queued(&state.db, stale_after, 100).await,
                ),
            ] {
                match found {
                    Ok(found) => lost.extend(found),
                    Err(error) => tracing::debug!(%error, "cannot look for {what} invocations"),
                }
            }
            for (invocation_id, attempt) in lost {
                match publish_attempt(&state, invocation_id, attempt).await {
                    Ok(()) => {
                        tracing::info!(%invocation_id, attempt, "possibly lost async job published again")
                    }
                    Err(error) => {
                        tracing::warn!(%error, %invocation_id, "possibly lost async job not published; trying later");
                        break;
                    }
                }
            }
        }
    })
}
