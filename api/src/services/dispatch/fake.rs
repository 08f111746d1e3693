//! An in-memory [`AttemptBackend`] for unit tests: it answers each operation from the replies a
//! test scripts (or a harmless default), finds functions in a map, and records every operation
//! in order, with the outcomes recorded and the jobs published, for the test to assert on.

use super::AsyncJob;
use super::backend::AttemptBackend;
use crate::broker::BrokerError;
use crate::services::{Call, CallError, Called, Trigger};
use crate::store::{AsyncState, AttemptOutcome, DbError, Function, Recorded};
use chrono::{DateTime, Utc};
use common::Runtime;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// One operation the runner asked of the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Claim {
        id: Uuid,
        attempt: i32,
    },
    GetState {
        id: Uuid,
    },
    ExtendClaim {
        id: Uuid,
        attempt: i32,
    },
    /// The outcome itself is in [`FakeBackend::outcomes`].
    Record {
        id: Uuid,
        attempt: i32,
    },
    Unclaim {
        id: Uuid,
        attempt: i32,
        due_back: DateTime<Utc>,
    },
    ReleaseClaim {
        id: Uuid,
        attempt: i32,
    },
    /// `publish_async`, its body read back as a job.
    Publish {
        key: String,
        job: AsyncJob,
    },
    PublishAttempt {
        job: AsyncJob,
    },
    Find {
        namespace: String,
        name: String,
    },
    Call {
        function: String,
        invocation_id: Uuid,
        runtime: Runtime,
        trigger: Trigger,
        attempt: u32,
        event: String,
    },
}

/// Scripted replies to one operation, answered in order; once they run out, the operation's
/// default.
pub struct Replies<T>(Mutex<VecDeque<T>>);

impl<T> Default for Replies<T> {
    fn default() -> Self {
        Replies(Mutex::new(VecDeque::new()))
    }
}

impl<T> Replies<T> {
    /// Answers the next call with `reply`, after those pushed before it.
    pub fn push(&self, reply: T) {
        self.0.lock().unwrap().push_back(reply);
    }

    fn next(&self) -> Option<T> {
        self.0.lock().unwrap().pop_front()
    }

    fn next_or(&self, default: impl FnOnce() -> T) -> T {
        self.next().unwrap_or_else(default)
    }
}

/// A call's scripted end: how long it takes (on tokio's clock) and what it returns.
pub struct CallReply {
    pub takes: Duration,
    pub result: Result<Called, CallError>,
}

/// The fake. Defaults once a script runs out: no claim (`None`), no invocation (`None`), claims
/// renewed (`true`), outcomes stored without destination, unclaimed (`true`), released, every
/// publish confirmed. Calls have no default: an unscripted call fails the test.
#[derive(Default)]
pub struct FakeBackend {
    pub claims: Replies<Result<Option<AsyncState>, DbError>>,
    pub states: Replies<Result<Option<AsyncState>, DbError>>,
    pub extends: Replies<Result<bool, DbError>>,
    pub records: Replies<Result<Recorded, DbError>>,
    pub unclaims: Replies<Result<bool, DbError>>,
    pub releases: Replies<Result<(), DbError>>,
    /// Replies of `publish_async`.
    pub publishes: Replies<Result<(), BrokerError>>,
    pub publish_attempts: Replies<Result<(), BrokerError>>,
    /// Errors the next finds answer before the functions are looked at.
    pub find_errors: Replies<CallError>,
    pub calls: Replies<CallReply>,
    functions: Mutex<HashMap<(String, String), Arc<Function>>>,
    ops: Mutex<Vec<Op>>,
    outcomes: Mutex<Vec<AttemptOutcome>>,
}

impl FakeBackend {
    /// Makes `function` findable in its namespace.
    pub fn add_function(&self, function: Function) {
        let key = (function.namespace.clone(), function.name.clone());
        self.functions
            .lock()
            .unwrap()
            .insert(key, Arc::new(function));
    }

    /// Every operation so far, in order.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    /// The outcomes recorded (or refused as already recorded), in order.
    pub fn outcomes(&self) -> Vec<AttemptOutcome> {
        self.outcomes.lock().unwrap().clone()
    }

    fn log(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }
}

/// The job a published body holds.
fn job_of(body: &[u8]) -> AsyncJob {
    serde_json::from_slice(body).expect("the runner publishes async jobs")
}

impl AttemptBackend for FakeBackend {
    async fn claim_attempt(
        &self,
        id: Uuid,
        attempt: i32,
        _until: DateTime<Utc>,
    ) -> Result<Option<AsyncState>, DbError> {
        self.log(Op::Claim { id, attempt });
        self.claims.next_or(|| Ok(None))
    }

    async fn get_async_state(&self, id: Uuid) -> Result<Option<AsyncState>, DbError> {
        self.log(Op::GetState { id });
        self.states.next_or(|| Ok(None))
    }

    async fn extend_claim(
        &self,
        id: Uuid,
        attempt: i32,
        _until: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        self.log(Op::ExtendClaim { id, attempt });
        self.extends.next_or(|| Ok(true))
    }

    async fn record_attempt(
        &self,
        id: Uuid,
        outcome: &AttemptOutcome,
    ) -> Result<Recorded, DbError> {
        self.log(Op::Record {
            id,
            attempt: outcome.attempt,
        });
        self.outcomes.lock().unwrap().push(outcome.clone());
        self.records
            .next_or(|| Ok(Recorded::Stored { destination: None }))
    }

    async fn unclaim(
        &self,
        id: Uuid,
        attempt: i32,
        due_back: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        self.log(Op::Unclaim {
            id,
            attempt,
            due_back,
        });
        self.unclaims.next_or(|| Ok(true))
    }

    async fn release_claim(&self, id: Uuid, attempt: i32) -> Result<(), DbError> {
        self.log(Op::ReleaseClaim { id, attempt });
        self.releases.next_or(|| Ok(()))
    }

    async fn publish_async(&self, routing_key: &str, body: &[u8]) -> Result<(), BrokerError> {
        self.log(Op::Publish {
            key: routing_key.to_owned(),
            job: job_of(body),
        });
        self.publishes.next_or(|| Ok(()))
    }

    async fn publish_attempt(&self, invocation_id: Uuid, attempt: u32) -> Result<(), BrokerError> {
        self.log(Op::PublishAttempt {
            job: AsyncJob::new(invocation_id, attempt),
        });
        self.publish_attempts.next_or(|| Ok(()))
    }

    async fn find_function(
        &self,
        namespace: &str,
        name: String,
    ) -> Result<Arc<Function>, CallError> {
        self.log(Op::Find {
            namespace: namespace.to_owned(),
            name: name.clone(),
        });
        if let Some(error) = self.find_errors.next() {
            return Err(error);
        }
        let key = (namespace.to_owned(), name);
        let found = self.functions.lock().unwrap().get(&key).cloned();
        found.ok_or(CallError::FunctionNotFound(key.1))
    }

    async fn call(&self, call: Call<'_>) -> Result<Called, CallError> {
        self.log(Op::Call {
            function: call.function.name.clone(),
            invocation_id: call.invocation_id,
            runtime: call.runtime,
            trigger: call.trigger,
            attempt: call.attempt,
            event: call.event.get().to_owned(),
        });
        let reply = self
            .calls
            .next_or(|| panic!("a call the test did not script"));
        tokio::time::sleep(reply.takes).await;
        reply.result
    }
}
