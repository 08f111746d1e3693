//! What the async runner reaches of the platform, as one port: the invocation's row in
//! Postgres (claim, read, renew, record, set aside, release), the async exchange, and the one
//! call path. [`Dispatch`] is the real one; unit tests give the runner an in-memory fake.

use super::{Dispatch, publish_attempt};
use crate::broker::BrokerError;
use crate::services::{Call, CallError, Called};
use crate::store::{self, AsyncState, AttemptOutcome, DbError, Function, Recorded};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

/// The I/O of one async attempt, each method one operation of the store, the broker or the
/// call path.
pub trait AttemptBackend: Send + Sync + 'static {
    /// Takes attempt `attempt` of invocation `id` until `until` ([`store::claim_attempt`]):
    /// the invocation as claimed, or `None` when another job copy holds it or moved it on.
    fn claim_attempt(
        &self,
        id: Uuid,
        attempt: i32,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<AsyncState>, DbError>> + Send;

    /// The invocation's state, `None` when there is no such invocation.
    fn get_async_state(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<AsyncState>, DbError>> + Send;

    /// Renews the claim on running attempt `attempt` until `until`; false when the row no
    /// longer runs that attempt (another copy took it over, or it was recorded).
    fn extend_claim(
        &self,
        id: Uuid,
        attempt: i32,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, DbError>> + Send;

    /// Stores the outcome of the running attempt, once, with its destination invocation.
    fn record_attempt(
        &self,
        id: Uuid,
        outcome: &AttemptOutcome,
    ) -> impl Future<Output = Result<Recorded, DbError>> + Send;

    /// Puts running attempt `attempt` back to `queued`, uncounted, due back at `due_back`;
    /// false when the row no longer runs that attempt.
    fn unclaim(
        &self,
        id: Uuid,
        attempt: i32,
        due_back: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, DbError>> + Send;

    /// Lets the claim on running attempt `attempt` lapse now, so that its next delivery runs.
    fn release_claim(
        &self,
        id: Uuid,
        attempt: i32,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Publishes `body` to the async exchange with `routing_key` (a delay queue's, the dead
    /// queue's), confirmed.
    fn publish_async(
        &self,
        routing_key: &str,
        body: &[u8],
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Publishes attempt `attempt` of `invocation_id` to run now and marks the row published
    /// ([`publish_attempt`]).
    fn publish_attempt(
        &self,
        invocation_id: Uuid,
        attempt: u32,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The function called `name` in `namespace` (`Invocations::find`).
    fn find_function(
        &self,
        namespace: &str,
        name: String,
    ) -> impl Future<Output = Result<Arc<Function>, CallError>> + Send;

    /// Runs one call through the sync call path (`Invocations::call`).
    fn call(&self, call: Call<'_>) -> impl Future<Output = Result<Called, CallError>> + Send;
}

impl AttemptBackend for Dispatch {
    async fn claim_attempt(
        &self,
        id: Uuid,
        attempt: i32,
        until: DateTime<Utc>,
    ) -> Result<Option<AsyncState>, DbError> {
        store::claim_attempt(&self.db, id, attempt, until).await
    }

    async fn get_async_state(&self, id: Uuid) -> Result<Option<AsyncState>, DbError> {
        store::get_async_state(&self.db, id).await
    }

    async fn extend_claim(
        &self,
        id: Uuid,
        attempt: i32,
        until: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        store::extend_claim(&self.db, id, attempt, until).await
    }

    async fn record_attempt(
        &self,
        id: Uuid,
        outcome: &AttemptOutcome,
    ) -> Result<Recorded, DbError> {
        store::record_attempt(&self.db, id, outcome, self.quotas.default_result_bytes).await
    }

    async fn unclaim(
        &self,
        id: Uuid,
        attempt: i32,
        due_back: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        store::unclaim(&self.db, id, attempt, due_back).await
    }

    async fn release_claim(&self, id: Uuid, attempt: i32) -> Result<(), DbError> {
        store::release_claim(&self.db, id, attempt).await
    }

    async fn publish_async(&self, routing_key: &str, body: &[u8]) -> Result<(), BrokerError> {
        self.invoker.publish_async(routing_key, body).await
    }

    async fn publish_attempt(&self, invocation_id: Uuid, attempt: u32) -> Result<(), BrokerError> {
        publish_attempt(self, invocation_id, attempt).await
    }

    async fn find_function(
        &self,
        namespace: &str,
        name: String,
    ) -> Result<Arc<Function>, CallError> {
        self.invocations.find(namespace, name).await
    }

    async fn call(&self, call: Call<'_>) -> Result<Called, CallError> {
        self.invocations.call(call).await
    }
}
