//! One delivered async job, from the row's state to the ack: claim the attempt, then loop
//! load → decide → apply: load the function (renewing the claim), call it through the sync
//! call path once, let [`plan::settle`] decide what that try comes to, and apply it: record
//! the outcome once and publish what follows (the retry, the dead letter, the destination),
//! or wait in place, set the attempt aside, or give the job back.
//!
//! Every row operation, publish and call goes through an [`AttemptBackend`]: [`Dispatch`] in
//! the api, an in-memory fake in the unit tests (`runner/tests.rs`).

use super::backend::AttemptBackend;
use super::fair::{Admit, FairSlots, Looked, Slot};
use super::plan::{
    self, Attempt, Destination, Next, OnDelivery, Policy, Settled, Settlement, StartFailure,
    StartFailureKind, Tried,
};
use super::{AsyncJob, Dispatch};
use crate::broker::NoReply;
use crate::domain::async_status::Mode;
use crate::services::{Call, CallError, Trigger, runtime_for};
use crate::store::{self, AsyncState, AttemptOutcome, NewAsync, Recorded};
use chrono::Utc;
use common::RawValue;
use common::broker::Topology;
use std::future::Future;
use std::sync::Arc;
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
/// How often a running attempt renews its claim.
const CLAIM_RENEW: Duration = Duration::from_secs(5);

/// What a runner needs: the platform it runs attempts on ([`Dispatch`], or a fake in unit
/// tests), the broker's topology (its delay queues) and the token that says it is stopping.
pub struct Runner<B = Dispatch> {
    pub backend: B,
    pub topology: Topology,
    pub stop: CancellationToken,
    /// This replica's slots, shared fairly between namespaces.
    pub slots: Arc<FairSlots>,
    /// `MAX_EVENT_BYTES`: a destination's event is cut to it (`plan::destination_event`).
    pub max_event_bytes: usize,
}

impl<B: AttemptBackend> Runner<B> {
    /// Handles one job: claims its attempt (in the common case, one statement that also reads
    /// the invocation), or decides from the invocation's state what else to do.
    pub async fn handle(&self, job: AsyncJob) -> Disposition {
        let attempt = job.attempt as i32;
        let id = job.invocation_id;
        loop {
            let until = Utc::now() + CLAIM_TTL;
            let Some(claimed) = self
                .retry_db(|| self.backend.claim_attempt(id, attempt, until))
                .await
            else {
                return Disposition::Requeue;
            };
            if let Some(row) = claimed {
                let _slot = match self.take_slot(&row, job).await {
                    Ok(slot) => slot,
                    Err(disposition) => return disposition,
                };
                return self.run(row, attempt).await;
            }
            let Some(row) = self.retry_db(|| self.backend.get_async_state(id)).await else {
                return Disposition::Requeue;
            };
            match plan::on_delivery(row.as_ref(), attempt, Utc::now()) {
                OnDelivery::Drop => {
                    tracing::debug!("duplicate or stale async job dropped");
                    return Disposition::Ack;
                }
                OnDelivery::RepublishRetry => {
                    return match self.backend.publish_attempt(id, job.attempt + 1).await {
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

    /// Takes one of this replica's slots for the claimed attempt, within its namespace's fair
    /// share ([`fair`](super::fair)): at once, or after waiting for one (renewing the claim),
    /// or `Err` with the job set aside (its namespace holds its share) or given back.
    async fn take_slot(&self, row: &AsyncState, job: AsyncJob) -> Result<Slot, Disposition> {
        let (id, attempt) = (row.id, job.attempt as i32);
        let mut waiting = match self.slots.admit(&row.namespace) {
            Admit::Run(slot) => return Ok(slot),
            Admit::Wait(waiting) => waiting,
            Admit::SetAside => return Err(self.defer(row, job).await),
        };
        let waited = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = self.stop.cancelled() => {
                    drop(waiting);
                    return Err(self.give_back(id, attempt).await);
                }
                () = waiting.woken() => {}
                () = tokio::time::sleep(CLAIM_RENEW) => {
                    let until = Utc::now() + CLAIM_TTL;
                    match self.backend.extend_claim(id, attempt, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::debug!("another copy of the job took the attempt over");
                            return Err(Disposition::Ack);
                        }
                        Err(error) => tracing::debug!(%error, "claim not renewed"),
                    }
                }
            }
            waiting = match waiting.look() {
                Looked::Granted(slot) => {
                    tracing::debug!(waited = ?waited.elapsed(), "async attempt got a fair slot");
                    return Ok(slot);
                }
                Looked::Waiting(waiting) => waiting,
                Looked::OverShare => return Err(self.defer(row, job).await),
            };
        }
    }

    /// Sets aside a job whose namespace holds its fair share of the slots while no slot is
    /// free, until its turn may have come ([`FairSlots::defer_secs`]).
    async fn defer(&self, row: &AsyncState, job: AsyncJob) -> Disposition {
        metrics::counter!("faas_async_deferred_total", "namespace" => row.namespace.clone())
            .increment(1);
        let delay = self.slots.defer_secs(&row.namespace, job.deferred);
        let next = AsyncJob {
            deferred: job.deferred.saturating_add(1),
            ..job
        };
        self.set_aside(
            next,
            delay,
            "its namespace holds its fair share of the async slots",
        )
        .await
    }

    /// Runs the claimed attempt, waiting for what it lacks; ends with its outcome recorded
    /// (acked), or the job given back. Each try loads the function (renewing the claim),
    /// decides what the try comes to ([`Self::decide`]) and applies that.
    async fn run(&self, row: AsyncState, attempt: i32) -> Disposition {
        let id = row.id;
        let started_at = Utc::now();
        let mut wait = Duration::from_millis(100);
        // Tokio's clock (the same as std's unless a test pauses it).
        let mut renewed = tokio::time::Instant::now();
        let mut blocked_tries = 0;
        loop {
            let found = self
                .backend
                .find_function(&row.namespace, row.function_name.clone())
                .await;
            let function = match found {
                Ok(function) => Some(function),
                Err(CallError::FunctionNotFound(_)) => None,
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
                    .retry_db(|| self.backend.extend_claim(id, attempt, until))
                    .await
                else {
                    return self.give_back(id, attempt).await;
                };
                if !held {
                    tracing::debug!("another copy of the job took the attempt over");
                    return Disposition::Ack;
                }
                renewed = tokio::time::Instant::now();
            }
            let this_try = Attempt {
                number: attempt,
                retry_floor: row.retry_floor,
                age: plan::age(&row, Utc::now()),
                blocked_tries,
                chain_depth: row.chain_depth,
            };
            let settlement = self.decide(&row, function.as_deref(), &this_try).await;
            match settlement {
                Settlement::Settled(settled) => {
                    return self
                        .finish(&row, attempt, function.as_deref(), settled, started_at)
                        .await;
                }
                Settlement::WaitHere { why } => {
                    blocked_tries += 1;
                    tracing::debug!(error = %why, "async attempt waits");
                    if !self.pause(wait).await {
                        return self.give_back(id, attempt).await;
                    }
                    wait = (wait * 2).min(MAX_WAIT_STEP);
                }
                Settlement::SetAside { delay_secs, why } => {
                    let job = AsyncJob::new(id, attempt as u32);
                    return self.set_aside(job, delay_secs, &why).await;
                }
                Settlement::GiveBack => return self.give_back(id, attempt).await,
            }
        }
    }

    /// What this try of the attempt comes to: settled without a call when the function is
    /// gone or the invocation too old, else as its one call went.
    async fn decide(
        &self,
        row: &AsyncState,
        function: Option<&store::Function>,
        this_try: &Attempt,
    ) -> Settlement {
        let Some(function) = function else {
            return Settlement::Settled(plan::function_deleted(&row.function_name));
        };
        let policy = policy_of(function, &self.topology);
        if let Some(settled) = plan::before_call(&policy, this_try) {
            return Settlement::Settled(settled);
        }
        let tried = self.attempt(row, function, this_try).await;
        plan::settle(tried, &policy, this_try)
    }

    /// Calls the function once for the attempt, renewing the claim while the call lasts.
    async fn attempt(&self, row: &AsyncState, function: &store::Function, at: &Attempt) -> Tried {
        let runtime = runtime_for(function, None);
        // Stored by accept from a checked event: always JSON.
        let event = RawValue::from_string(row.event.clone())
            .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("{} is JSON"));
        let trigger = match row.mode {
            Mode::Schedule => Trigger::Schedule,
            Mode::Async | Mode::Sync => Trigger::Async,
        };
        let call = self.backend.call(Call {
            function,
            runtime,
            event,
            invocation_id: row.id,
            trigger,
            attempt: at.number as u32,
            started: Instant::now(),
        });
        tokio::pin!(call);
        let mut renew = tokio::time::interval(CLAIM_RENEW);
        renew.reset();
        let called = loop {
            tokio::select! {
                called = &mut call => break called,
                _ = renew.tick() => {
                    // The claim lapses only if this api dies (or loses Postgres for CLAIM_TTL).
                    let until = Utc::now() + CLAIM_TTL;
                    if let Err(error) = self.backend.extend_claim(row.id, at.number, until).await {
                        tracing::debug!(%error, "claim not renewed");
                    }
                }
            }
        };
        match called {
            Ok(called) => {
                if at.is_first() {
                    metrics::histogram!("faas_async_age_at_start_seconds", "namespace" => row.namespace.clone())
                        .record(at.age.as_secs_f64());
                }
                let duration_ms = called.duration_ms;
                match called.outcome {
                    Ok(reply) => Tried::Replied { reply, duration_ms },
                    Err(NoReply::TimedOut) => Tried::NoReply { duration_ms },
                }
            }
            Err(error) => Tried::NotStarted {
                failure: classify(&error),
                age: plan::age(row, Utc::now()),
            },
        }
    }

    /// Records the settled attempt and publishes what follows; acks once recorded.
    async fn finish(
        &self,
        row: &AsyncState,
        attempt: i32,
        function: Option<&store::Function>,
        settled: Settled,
        started_at: chrono::DateTime<Utc>,
    ) -> Disposition {
        let id = row.id;
        let next = settled.next.clone();
        let outcome = self
            .outcome(row, attempt, function, settled, started_at)
            .await;
        let Some(recorded) = self
            .retry_db(|| self.backend.record_attempt(id, &outcome))
            .await
        else {
            // Stopping with the outcome unrecorded: the job runs again elsewhere.
            return self.give_back(id, attempt).await;
        };
        let Recorded::Stored { destination } = recorded else {
            tracing::info!("attempt recorded by another copy of the job");
            return Disposition::Ack;
        };
        if let Err(disposition) = self.publish_next(row, attempt, &next).await {
            return disposition;
        }
        if let Some(destination) = destination
            && let Err(error) = self.backend.publish_attempt(destination, 1).await
        {
            tracing::warn!(%error, %destination, "destination invocation not published; the sweeper will");
        }
        Disposition::Ack
    }

    /// Publishes what follows a recorded attempt: its retry's job to a delay queue, or the
    /// dead letter's to the dead queue. `Err` with the job to give back when the retry's job
    /// was not published.
    async fn publish_next(
        &self,
        row: &AsyncState,
        attempt: i32,
        next: &Next,
    ) -> Result<(), Disposition> {
        let (namespace, function) = (&row.namespace, &row.function_name);
        match next {
            Next::Succeeded => tracing::debug!("async invocation succeeded"),
            Next::Retry(delay) => {
                metrics::counter!("faas_async_retries_total", "namespace" => namespace.clone(), "function" => function.clone())
                    .increment(1);
                let job = AsyncJob::new(row.id, attempt as u32 + 1);
                let key = Topology::delay_routing_key(delay.as_secs());
                if let Err(error) = self.backend.publish_async(&key, &job.body()).await {
                    // Redelivered, the job finds the retry due and publishes it again.
                    tracing::warn!(%error, "retry not published; the job goes back to the queue");
                    return Err(Disposition::Requeue);
                }
                tracing::info!(retry_in = ?delay, "async attempt failed; retry scheduled");
            }
            Next::DeadLetter(reason) => {
                metrics::counter!("faas_async_dead_lettered_total", "namespace" => namespace.clone(), "function" => function.clone(), "reason" => reason.as_str())
                    .increment(1);
                let job = AsyncJob::new(row.id, attempt as u32);
                if let Err(error) = self
                    .backend
                    .publish_async(Topology::ASYNC_DEAD_KEY, &job.body())
                    .await
                {
                    tracing::warn!(%error, "dead-lettered job not kept in the dead queue (the database has it)");
                }
                tracing::info!(reason = reason.as_str(), "async invocation dead-lettered");
            }
        }
        Ok(())
    }

    /// The outcome to record, with the destination invocation it makes.
    async fn outcome(
        &self,
        row: &AsyncState,
        attempt: i32,
        function: Option<&store::Function>,
        settled: Settled,
        started_at: chrono::DateTime<Utc>,
    ) -> AttemptOutcome {
        let Settled {
            record,
            next,
            destination,
        } = settled;
        let next_status = next.status();
        let destination = match destination {
            Destination::None => None,
            Destination::ChainTooLong(name) => {
                metrics::counter!("faas_async_destination_errors_total", "namespace" => row.namespace.clone(), "function" => row.function_name.clone())
                    .increment(1);
                tracing::warn!(destination = %name, depth = row.chain_depth, "destination not invoked: the chain of destinations is too long (a loop?)");
                None
            }
            Destination::Invoke(name) => {
                match self
                    .backend
                    .find_function(&row.namespace, name.clone())
                    .await
                {
                    Ok(target) => Some(NewAsync {
                        id: Uuid::now_v7(),
                        namespace: row.namespace.clone(),
                        namespace_uid: target.namespace_uid,
                        function_id: target.id,
                        function_name: target.name.clone(),
                        mode: Mode::Async,
                        event: plan::destination_event(
                            row,
                            next_status,
                            &record,
                            self.max_event_bytes,
                        ),
                        // One destination call per outcome, however often it is recorded
                        // (no header value can hold a newline: no caller's key collides).
                        idempotency_key: Some(format!("\ndestination:{}:{attempt}", row.id)),
                        chain_depth: row.chain_depth + 1,
                    }),
                    Err(error) => {
                        metrics::counter!("faas_async_destination_errors_total", "namespace" => row.namespace.clone(), "function" => row.function_name.clone())
                            .increment(1);
                        tracing::warn!(%error, destination = %name, "destination not invoked");
                        None
                    }
                }
            }
        };
        AttemptOutcome {
            attempt,
            next_status,
            record,
            function_version: function.map(|f| f.version),
            runtime: function.map(|f| runtime_for(f, None).as_str().to_owned()),
            started_at,
            due_back: match next {
                Next::Retry(delay) => chrono::Duration::from_std(delay)
                    .ok()
                    .map(|delay| Utc::now() + delay),
                _ => None,
            },
            destination,
        }
    }

    /// Tries `query` until it answers, pausing between tries; `None` once stopping.
    async fn retry_db<T, F, Fut>(&self, mut query: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, store::DbError>>,
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

    /// Sets aside an attempt that cannot start yet (`why`): its job goes to the delay queue of
    /// `delay` seconds and the invocation back to `queued`, uncounted, so that the delivery's
    /// slot serves other jobs meanwhile. It uses no retry; the event's age still ends it
    /// (`max_event_age_secs`).
    async fn set_aside(&self, job: AsyncJob, delay: u64, why: &str) -> Disposition {
        let (id, attempt) = (job.invocation_id, job.attempt as i32);
        let key = Topology::delay_routing_key(delay);
        if let Err(error) = self.backend.publish_async(&key, &job.body()).await {
            tracing::warn!(%error, "blocked attempt not set aside; the job goes back to the queue");
            return self.give_back(id, attempt).await;
        }
        // Stopping, or another copy took the attempt over: the set-aside job finds the row
        // running and waits for the claim, or finds the attempt done and is dropped.
        let due_back = Utc::now() + chrono::Duration::seconds(delay as i64);
        if let Some(true) = self
            .retry_db(|| self.backend.unclaim(id, attempt, due_back))
            .await
        {
            tracing::debug!(%why, retry_in_secs = delay, "async attempt cannot start yet; set aside");
        }
        Disposition::Ack
    }

    /// Lets the job go back to the queue, its claim released so that its next delivery runs
    /// at once.
    async fn give_back(&self, id: Uuid, attempt: i32) -> Disposition {
        if let Err(error) = self.backend.release_claim(id, attempt).await {
            tracing::debug!(%error, "claim not released; it lapses by itself");
        }
        Disposition::Requeue
    }
}

/// The retry policy and destinations of `function`, its delays from `topology`.
fn policy_of<'a>(function: &'a store::Function, topology: &'a Topology) -> Policy<'a> {
    Policy {
        max_retries: function.max_retries,
        max_event_age_secs: function.max_event_age_secs,
        on_success: function.on_success.as_deref(),
        on_failure: function.on_failure.as_deref(),
        delays: topology,
    }
}

/// Why a call of the sync path did not start, by what an attempt does about it. The one place
/// the runner reads the call path's errors.
fn classify(error: &CallError) -> StartFailure {
    let kind = if error.is_broker_lost() {
        StartFailureKind::BrokerLost
    } else if !error.is_transient() {
        StartFailureKind::Refused
    } else if error.waits_for_a_slot() {
        StartFailureKind::NoSlot
    } else if matches!(error, CallError::Database(_)) {
        StartFailureKind::DatabaseDown
    } else {
        StartFailureKind::NotReady
    };
    StartFailure {
        kind,
        code: error.code(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests;
