//! One delivered async job, from the row's state to the ack: claim the attempt, run it through
//! the sync call path (waiting for a slot, a worker or a build instead of failing), record the
//! outcome once, then publish what follows (the retry, the dead letter, the destination).

use super::plan::{self, DeadReason, Next, OnDelivery, Policy};
use super::{AsyncJob, AsyncStatus, Mode, publish_attempt};
use crate::db::{self, AsyncState, AttemptOutcome, NewAsync, Recorded};
use crate::error::ApiError;
use crate::invoker::NoReply;
use crate::records;
use crate::routes::invoke::{Called, Trigger, call_function, find_function, runtime_for};
use crate::state::AppState;
use chrono::Utc;
use common::broker::Topology;
use common::{RawValue, ReplyStatus};
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What becomes of the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Back to the queue: this api is stopping or lost the broker before the outcome was
    /// recorded (the attempt may run again: at least once).
    Requeue,
}

/// Longest pause between two tries of something that waits (a slot, a worker, the database).
const MAX_WAIT_STEP: Duration = Duration::from_secs(2);
/// How long a claim holds without renewal: how long a job redelivered after its api died waits
/// before it takes the attempt over.
const CLAIM_TTL: Duration = Duration::from_secs(15);
/// Destinations invoked one after another at most (A's on_success B, B's A, ...): as Lambda's
/// recursive loop detection, a chain stops there.
const MAX_CHAIN_DEPTH: i32 = 16;
/// How often a running attempt renews its claim.
const CLAIM_RENEW: Duration = Duration::from_secs(5);
/// Tries an attempt that cannot start (no slot, no worker, no build) makes in place, 100 and
/// 200 ms apart, before it is set aside: a job that waits in place holds one of the
/// dispatcher's `ASYNC_CONCURRENCY` deliveries, and jobs of one throttled function would
/// otherwise hold them all while every other function's jobs queue behind them.
const TRIES_IN_PLACE: u32 = 3;

/// What a runner needs.
pub struct Runner {
    pub state: AppState,
    pub topology: Topology,
    pub stop: CancellationToken,
}

impl Runner {
    /// Handles one job: claims its attempt (in the common case, one statement that also reads
    /// the invocation), or decides from the invocation's state what else to do.
    pub async fn handle(&self, job: AsyncJob) -> Disposition {
        let attempt = job.attempt as i32;
        let id = job.invocation_id;
        loop {
            let until = Utc::now() + CLAIM_TTL;
            let Some(claimed) = self
                .retry_db(|| db::claim_attempt(&self.state.db, id, attempt, until))
                .await
            else {
                return Disposition::Requeue;
            };
            if let Some(row) = claimed {
                return self.run(row, attempt).await;
            }
            let Some(row) = self
                .retry_db(|| db::get_async_state(&self.state.db, id))
                .await
            else {
                return Disposition::Requeue;
            };
            match plan::on_delivery(row.as_ref(), attempt, Utc::now()) {
                OnDelivery::Drop => {
                    tracing::debug!("duplicate or stale async job dropped");
                    return Disposition::Ack;
                }
                OnDelivery::RepublishRetry => {
                    return match publish_attempt(&self.state, id, job.attempt + 1).await {
                        Ok(()) => Disposition::Ack,
                        Err(_) => Disposition::Requeue,
                    };
                }
                OnDelivery::WaitUntil(until) => {
                    let wait = (until - Utc::now()).to_std().unwrap_or_default();
                    if !self.pause(wait.min(Duration::from_secs(5))).await {
                        return Disposition::Requeue;
                    }
                }
                // The row moved between the claim and the read: claim again.
                OnDelivery::Run => {}
            }
        }
    }

    /// Runs the claimed attempt, waiting for what it lacks; ends with its outcome recorded
    /// (acked), or the job given back.
    async fn run(&self, row: AsyncState, attempt: i32) -> Disposition {
        let id = row.id;
        let started_at = Utc::now();
        let mut wait = Duration::from_millis(100);
        let mut renewed = Instant::now();
        let mut blocked_tries = 0;
        loop {
            let found = find_function(&self.state, &row.namespace, row.function_name.clone()).await;
            let function = match found {
                Ok(function) => Some(function),
                Err(ApiError::FunctionNotFound(_)) => None,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the function; waiting");
                    if !self.pause(wait).await {
                        return self.give_back(id, attempt).await;
                    }
                    wait = (wait * 2).min(MAX_WAIT_STEP);
                    continue;
                }
            };
            if renewed.elapsed() >= CLAIM_RENEW {
                let until = Utc::now() + CLAIM_TTL;
                let Some(held) = self
                    .retry_db(|| db::extend_claim(&self.state.db, id, attempt, until))
                    .await
                else {
                    return self.give_back(id, attempt).await;
                };
                if !held {
                    tracing::debug!("another copy of the job took the attempt over");
                    return Disposition::Ack;
                }
                renewed = Instant::now();
            }
            let Some(function) = function else {
                let error = json!({"kind": "FunctionNotFound", "message": format!("function {} was deleted", row.function_name)});
                let next = Next::DeadLetter(DeadReason::FunctionNotFound);
                return self
                    .finish(&row, attempt, None, Failed::NotRun(error), next, started_at)
                    .await;
            };
            let policy = Policy {
                max_retries: function.max_retries.max(0) as u32,
                max_event_age: Duration::from_secs(function.max_event_age_secs.max(0) as u64),
                age: plan::age(&row, Utc::now()),
            };
            let next_after = |succeeded: bool| {
                let since_redrive = (attempt - row.retry_floor).max(1) as u32;
                plan::after_attempt(succeeded, since_redrive, policy, |retry| {
                    Duration::from_secs(self.topology.retry_delay_secs(retry))
                })
            };
            let too_old = |why: String| {
                let error = json!({"kind": "EventAgeExceeded", "message": why});
                (
                    Failed::NotRun(error),
                    Next::DeadLetter(DeadReason::EventAgeExceeded),
                )
            };
            let (failed, next) = if policy.age > policy.max_event_age {
                too_old(format!(
                    "the invocation is {} s old, over max_event_age_secs {}",
                    policy.age.as_secs(),
                    function.max_event_age_secs
                ))
            } else {
                match self.attempt(&row, &function, attempt, policy).await {
                    Attempted::Ran(called) => {
                        let succeeded = matches!(&called.outcome, Ok(reply) if reply.status == ReplyStatus::Success);
                        (Failed::Ran(called), next_after(succeeded))
                    }
                    Attempted::Refused(error) => {
                        // It cannot run as it is (its build failed): a failed attempt.
                        let error = json!({"kind": error.code(), "message": error.to_string()});
                        (Failed::NotRun(error), next_after(false))
                    }
                    Attempted::Blocked(error)
                        if plan::age(&row, Utc::now()) > policy.max_event_age =>
                    {
                        too_old(format!(
                            "it could not start before max_event_age_secs: {error}"
                        ))
                    }
                    Attempted::Blocked(error) => {
                        blocked_tries += 1;
                        if blocked_tries >= TRIES_IN_PLACE
                            && !matches!(error, ApiError::Database(_))
                        {
                            return self.set_aside(id, attempt, &error).await;
                        }
                        tracing::debug!(%error, "async attempt waits");
                        if !self.pause(wait).await {
                            return self.give_back(id, attempt).await;
                        }
                        wait = (wait * 2).min(MAX_WAIT_STEP);
                        continue;
                    }
                    Attempted::BrokerLost => return self.give_back(id, attempt).await,
                }
            };
            return self
                .finish(&row, attempt, Some(&function), failed, next, started_at)
                .await;
        }
    }

    /// Calls the function once for the attempt.
    async fn attempt(
        &self,
        row: &AsyncState,
        function: &db::Function,
        attempt: i32,
        policy: Policy,
    ) -> Attempted {
        let runtime = runtime_for(function, None);
        // Stored by accept from a checked event: always JSON.
        let event = RawValue::from_string(row.event.clone())
            .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("{} is JSON"));
        let trigger = if row.mode == Mode::Schedule {
            Trigger::Schedule
        } else {
            Trigger::Async
        };
        let call = call_function(
            &self.state,
            function,
            runtime,
            event,
            row.id,
            trigger,
            attempt as u32,
            Instant::now(),
        );
        tokio::pin!(call);
        let mut renew = tokio::time::interval(CLAIM_RENEW);
        renew.reset();
        let called = loop {
            tokio::select! {
                called = &mut call => break called,
                _ = renew.tick() => {
                    // The claim lapses only if this api dies (or loses Postgres for CLAIM_TTL).
                    let until = Utc::now() + CLAIM_TTL;
                    if let Err(error) = db::extend_claim(&self.state.db, row.id, attempt, until).await {
                        tracing::debug!(%error, "claim not renewed");
                    }
                }
            }
        };
        match called {
            Ok(called) => {
                if attempt - row.retry_floor == 1 {
                    metrics::histogram!("faas_async_age_at_start_seconds", "namespace" => row.namespace.clone())
                        .record(policy.age.as_secs_f64());
                }
                Attempted::Ran(called)
            }
            Err(
                error @ (ApiError::NoWorker(_)
                | ApiError::RuntimeUnavailable(_)
                | ApiError::Overloaded(_)
                | ApiError::ConcurrencyLimit { .. }
                | ApiError::FunctionNotReady(_)
                | ApiError::Database(_)),
            ) => Attempted::Blocked(error),
            Err(ApiError::BrokerUnavailable(_) | ApiError::BrokerDisconnected) => {
                Attempted::BrokerLost
            }
            Err(error) => Attempted::Refused(error),
        }
    }

    /// Records the attempt's outcome and publishes what follows; acks once recorded.
    async fn finish(
        &self,
        row: &AsyncState,
        attempt: i32,
        function: Option<&db::Function>,
        failed: Failed,
        next: Next,
        started_at: chrono::DateTime<Utc>,
    ) -> Disposition {
        let id = row.id;
        let outcome = self
            .outcome(row, attempt, function, failed, &next, started_at)
            .await;
        let Some(recorded) = self
            .retry_db(|| db::record_attempt(&self.state.db, id, &outcome))
            .await
        else {
            // Stopping with the outcome unrecorded: the job runs again elsewhere.
            return self.give_back(id, attempt).await;
        };
        let Recorded::Stored { destination } = recorded else {
            tracing::info!("attempt recorded by another copy of the job");
            return Disposition::Ack;
        };
        let (namespace, function) = (&row.namespace, &row.function_name);
        match next {
            Next::Succeeded => tracing::debug!("async invocation succeeded"),
            Next::Retry(delay) => {
                metrics::counter!("faas_async_retries_total", "namespace" => namespace.clone(), "function" => function.clone())
                    .increment(1);
                let job = AsyncJob {
                    invocation_id: id,
                    attempt: attempt as u32 + 1,
                };
                let key = Topology::delay_routing_key(delay.as_secs());
                if let Err(error) = self.state.invoker.publish_async(&key, &job.body()).await {
                    // Redelivered, the job finds the retry due and publishes it again.
                    tracing::warn!(%error, "retry not published; the job goes back to the queue");
                    return Disposition::Requeue;
                }
                tracing::info!(retry_in = ?delay, "async attempt failed; retry scheduled");
            }
            Next::DeadLetter(reason) => {
                metrics::counter!("faas_async_dead_lettered_total", "namespace" => namespace.clone(), "function" => function.clone(), "reason" => reason.as_str())
                    .increment(1);
                let job = AsyncJob {
                    invocation_id: id,
                    attempt: attempt as u32,
                };
                if let Err(error) = self
                    .state
                    .invoker
                    .publish_async(Topology::ASYNC_DEAD_KEY, &job.body())
                    .await
                {
                    tracing::warn!(%error, "dead-lettered job not kept in the dead queue (the database has it)");
                }
                tracing::info!(reason = reason.as_str(), "async invocation dead-lettered");
            }
        }
        if let Some(destination) = destination
            && let Err(error) = publish_attempt(&self.state, destination, 1).await
        {
            tracing::warn!(%error, %destination, "destination invocation not published; the sweeper will");
        }
        Disposition::Ack
    }

    /// The outcome to record, with the destination invocation it makes.
    async fn outcome(
        &self,
        row: &AsyncState,
        attempt: i32,
        function: Option<&db::Function>,
        failed: Failed,
        next: &Next,
        started_at: chrono::DateTime<Utc>,
    ) -> AttemptOutcome {
        let next_status = match next {
            Next::Succeeded => AsyncStatus::Succeeded,
            Next::Retry(_) => AsyncStatus::Queued,
            Next::DeadLetter(_) => AsyncStatus::DeadLettered,
        };
        let mut outcome = AttemptOutcome {
            attempt,
            next_status,
            outcome: "not_run".to_owned(),
            result: None,
            error: None,
            logs: None,
            logs_truncated: false,
            timing: None,
            duration_ms: None,
            cold_start: false,
            worker_id: None,
            function_version: function.map(|f| f.version),
            runtime: function.map(|f| runtime_for(f, None).as_str().to_owned()),
            started_at,
            due_back: match next {
                Next::Retry(delay) => chrono::Duration::from_std(*delay)
                    .ok()
                    .map(|delay| Utc::now() + delay),
                _ => None,
            },
            destination: None,
        };
        match failed {
            Failed::NotRun(error) => outcome.error = Some(error),
            Failed::Ran(called) => {
                outcome.duration_ms = Some(called.duration_ms);
                match called.outcome {
                    Ok(reply) => {
                        outcome.outcome = reply.status.as_str().to_owned();
                        if reply.status == ReplyStatus::Success {
                            outcome.result = Some(reply.result.get().to_owned());
                        }
                        outcome.error = reply.error.map(|mut error| {
                            records::clean_error(&mut error);
                            serde_json::to_value(error).expect("an error always serializes")
                        });
                        // Not capped as record text is: logs are bounded by the worker.
                        outcome.logs = Some(reply.logs.replace('\0', "\u{FFFD}"));
                        outcome.logs_truncated = reply.logs_truncated;
                        outcome.timing = serde_json::to_value(reply.timing).ok();
                        outcome.cold_start = reply.cold_start;
                        let mut worker_id = reply.worker_id;
                        records::clean_text(&mut worker_id);
                        outcome.worker_id = Some(worker_id);
                    }
                    Err(NoReply::TimedOut) => {
                        outcome.outcome = "no_reply".to_owned();
                        outcome.error = Some(
                            json!({"kind": "NoReply", "message": "no worker answered before the call's deadline"}),
                        );
                    }
                }
            }
        }
        let destination = match (next, function) {
            (Next::Succeeded, Some(f)) => f.on_success.clone(),
            (Next::DeadLetter(_), Some(f)) => f.on_failure.clone(),
            _ => None,
        };
        if let Some(name) = &destination
            && row.chain_depth >= MAX_CHAIN_DEPTH
        {
            metrics::counter!("faas_async_destination_errors_total", "namespace" => row.namespace.clone(), "function" => row.function_name.clone())
                .increment(1);
            tracing::warn!(destination = %name, depth = row.chain_depth, "destination not invoked: the chain of destinations is too long (a loop?)");
        } else if let Some(name) = destination {
            match find_function(&self.state, &row.namespace, name.clone()).await {
                Ok(target) => {
                    outcome.destination = Some(NewAsync {
                        id: Uuid::now_v7(),
                        namespace: row.namespace.clone(),
                        function_id: target.id,
                        function_name: target.name.clone(),
                        mode: Mode::Async,
                        event: destination_event(row, next_status, &outcome),
                        // One destination call per outcome, however often it is recorded
                        // (no header value can hold a newline: no caller's key collides).
                        idempotency_key: Some(format!("\ndestination:{}:{attempt}", row.id)),
                        chain_depth: row.chain_depth + 1,
                    });
                }
                Err(error) => {
                    metrics::counter!("faas_async_destination_errors_total", "namespace" => row.namespace.clone(), "function" => row.function_name.clone())
                        .increment(1);
                    tracing::warn!(%error, destination = %name, "destination not invoked");
                }
            }
        }
        outcome
    }

    /// Tries `query` until it answers, pausing between tries; `None` once stopping.
    async fn retry_db<T, F, Fut>(&self, mut query: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, crate::error::DbError>>,
    {
        let mut wait = Duration::from_millis(100);
        loop {
            match query().await {
                Ok(value) => return Some(value),
                Err(error) => {
                    metrics::counter!("faas_database_errors_total").increment(1);
                    tracing::warn!(%error, "async dispatcher cannot reach the database; retrying");
                }
            }
            if !self.pause(wait).await {
                return None;
            }
            wait = (wait * 2).min(MAX_WAIT_STEP);
        }
    }

    /// Sleeps `wait`; false when stopping instead.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// Sets aside an attempt that cannot start yet: its job goes to a delay queue and the
    /// invocation back to `queued`, uncounted, so that the delivery's slot serves other jobs
    /// meanwhile. It uses no retry; the event's age still ends it (`max_event_age_secs`).
    /// A slot frees up soon: the shortest delay (`RETRY_BASE_SECS`). A worker or a build
    /// takes longer: the third (4 × that), so that a backlog with no worker to run it cycles
    /// through the broker and Postgres four times less often.
    async fn set_aside(&self, id: Uuid, attempt: i32, why: &ApiError) -> Disposition {
        let job = AsyncJob {
            invocation_id: id,
            attempt: attempt as u32,
        };
        let delay = match why {
            ApiError::ConcurrencyLimit { .. } | ApiError::Overloaded(_) => {
                self.topology.retry_delay_secs(1)
            }
            _ => self.topology.retry_delay_secs(3),
        };
        let key = Topology::delay_routing_key(delay);
        if let Err(error) = self.state.invoker.publish_async(&key, &job.body()).await {
            tracing::warn!(%error, "blocked attempt not set aside; the job goes back to the queue");
            return self.give_back(id, attempt).await;
        }
        // Stopping, or another copy took the attempt over: the set-aside job finds the row
        // running and waits for the claim, or finds the attempt done and is dropped.
        let due_back = Utc::now() + chrono::Duration::seconds(delay as i64);
        if let Some(true) = self
            .retry_db(|| db::unclaim(&self.state.db, id, attempt, due_back))
            .await
        {
            tracing::debug!(%why, retry_in_secs = delay, "async attempt cannot start yet; set aside");
        }
        Disposition::Ack
    }

    /// Lets the job go back to the queue, its claim released so that its next delivery runs
    /// at once.
    async fn give_back(&self, id: Uuid, attempt: i32) -> Disposition {
        if let Err(error) = db::release_claim(&self.state.db, id, attempt).await {
            tracing::debug!(%error, "claim not released; it lapses by itself");
        }
        Disposition::Requeue
    }
}

/// How one call of an attempt went.
enum Attempted {
    /// It ran (or no worker answered in time).
    Ran(Called),
    /// It could not start for something that passes (a slot, a worker, a build, the
    /// database): wait and call again, as long as the event's age allows.
    Blocked(ApiError),
    /// It cannot run as it is (its build failed).
    Refused(ApiError),
    /// The broker connection went away: the job comes back to some dispatcher.
    BrokerLost,
}

/// An attempt that ran (and how), or did not (and why).
enum Failed {
    Ran(Called),
    NotRun(Value),
}

/// The event a destination receives: where it comes from, how it ended, and the original event.
fn destination_event(row: &AsyncState, status: AsyncStatus, outcome: &AttemptOutcome) -> String {
    let original: Value = serde_json::from_str(&row.event).unwrap_or(Value::Null);
    let mut event = json!({
        "source": "destination",
        "invocation_id": row.id,
        "function": row.function_name,
        "status": status,
        "event": original,
    });
    match &outcome.result {
        Some(result) => {
            event["result"] = serde_json::from_str(result).unwrap_or(Value::Null);
        }
        None => event["error"] = outcome.error.clone().unwrap_or(Value::Null),
    }
    event.to_string()
}
