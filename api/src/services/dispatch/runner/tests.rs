//! The runner driven through [`FakeBackend`]: for each way a delivered job can go, what it
//! recorded, what it published, which claims it took, renewed or released, and what becomes of
//! the delivery. Time is tokio's paused clock wherever the runner waits. The scenarios are in
//! `settled` (attempts that end recorded), `waiting` (attempts that cannot start or lose the
//! database, and stopping), `claims` (duplicate deliveries, claims held, renewed and taken
//! over) and `shares` (the replica's slots shared fairly between namespaces); the scripts and expectations they share are here.

mod claims;
mod settled;
mod shares;
mod waiting;

use super::*;
use crate::broker::BrokerError;
use crate::domain::async_status::AsyncStatus;
use crate::services::Called;
use crate::services::dispatch::fake::{CallReply, FakeBackend, Op};
use crate::store::{AttemptRecord, DbError, Function, NotRunnable};
use chrono::DateTime;
use common::{ErrorInfo, Reply, ReplyStatus, Runtime, Timing};
use serde_json::{Value, json};

const ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
const DESTINATION_ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
const NS: &str = "default";
/// `Function::example()`'s name.
const NAME: &str = "hello";
/// The first retry's delay in these tests; retries double it, a set-aside attempt waits it (no
/// slot) or four times it (no worker).
const BASE_SECS: u64 = 10;
const EVENT: &str = r#"{"n":1}"#;

fn runner(backend: FakeBackend) -> Runner<FakeBackend> {
    Runner {
        backend,
        topology: Topology::new("test.").with_retry_base_secs(BASE_SECS),
        stop: CancellationToken::new(),
        slots: FairSlots::new(4),
        max_event_bytes: 6 * 1024 * 1024,
    }
}

/// A fake that finds `function`.
fn with_function(function: Function) -> FakeBackend {
    let backend = FakeBackend::default();
    backend.add_function(function);
    backend
}

fn job(attempt: u32) -> AsyncJob {
    AsyncJob::new(ID, attempt)
}

/// The invocation as its row is, `status` at `attempts`.
fn state(status: AsyncStatus, attempts: i32) -> AsyncState {
    AsyncState {
        id: ID,
        namespace: NS.into(),
        function_name: NAME.into(),
        mode: Mode::Async,
        status,
        event: EVENT.into(),
        attempts,
        retry_floor: 0,
        claimed_until: None,
        created_at: Utc::now(),
        redriven_at: None,
        chain_depth: 0,
    }
}

/// The row as claiming attempt `attempt` leaves it.
fn claimed(attempt: i32) -> AsyncState {
    AsyncState {
        claimed_until: Some(Utc::now() + CLAIM_TTL),
        ..state(AsyncStatus::Running, attempt)
    }
}

fn reply(status: ReplyStatus) -> Reply {
    let success = status == ReplyStatus::Success;
    Reply {
        invocation_id: ID,
        worker_id: "worker-1".into(),
        status,
        result: RawValue::from_string(if success { r#"{"ok":true}"# } else { "null" }.into())
            .unwrap(),
        error: (!success).then(|| ErrorInfo {
            kind: "ValueError".into(),
            message: "bad input".into(),
            stack: String::new(),
        }),
        logs: "hi\n".into(),
        logs_truncated: false,
        cold_start: true,
        timing: Timing {
            queue_ms: 1.0,
            init_ms: 2.0,
            run_ms: 3.0,
        },
    }
}

/// A call that took 10 ms and was answered with `status`.
fn answered(status: ReplyStatus) -> CallReply {
    CallReply {
        takes: Duration::from_millis(10),
        result: Ok(Called {
            invocation_id: ID,
            duration_ms: 12.5,
            timeout_s: 5,
            outcome: Ok(reply(status)),
        }),
    }
}

/// A call that did not start, with `error`.
fn refused(error: impl Into<CallError>) -> CallReply {
    CallReply {
        takes: Duration::ZERO,
        result: Err(error.into()),
    }
}

fn no_slot() -> CallError {
    CallError::ConcurrencyLimit {
        subject: "function hello".into(),
        limit: 1,
    }
}

fn db_down() -> DbError {
    DbError::Inconsistent("the database went away")
}

/// What `reply(status)` is recorded as.
fn replied_record(status: ReplyStatus) -> AttemptRecord {
    let success = status == ReplyStatus::Success;
    AttemptRecord {
        outcome: status.as_str().into(),
        result: success.then(|| r#"{"ok":true}"#.into()),
        error: (!success)
            .then(|| json!({"type": "ValueError", "message": "bad input", "stack": ""})),
        logs: Some("hi\n".into()),
        logs_truncated: false,
        timing: Some(json!({"queue_ms": 1.0, "init_ms": 2.0, "run_ms": 3.0})),
        duration_ms: Some(12.5),
        cold_start: true,
        worker_id: Some("worker-1".into()),
    }
}

/// The record of an attempt that did not run, `kind` and `message` saying why.
fn not_run(kind: &str, message: &str) -> AttemptRecord {
    AttemptRecord {
        outcome: "not_run".into(),
        result: None,
        error: Some(json!({"kind": kind, "message": message})),
        logs: None,
        logs_truncated: false,
        timing: None,
        duration_ms: None,
        cold_start: false,
        worker_id: None,
    }
}

fn claim(attempt: i32) -> Op {
    Op::Claim { id: ID, attempt }
}

fn find(name: &str) -> Op {
    Op::Find {
        namespace: NS.into(),
        name: name.into(),
    }
}

/// The call of attempt `attempt` of `Function::example()` with [`EVENT`].
fn call(attempt: u32) -> Op {
    call_of(attempt, Trigger::Async, EVENT)
}

fn call_of(attempt: u32, trigger: Trigger, event: &str) -> Op {
    Op::Call {
        function: NAME.into(),
        invocation_id: ID,
        runtime: Runtime::Docker,
        trigger,
        attempt,
        event: event.into(),
    }
}

fn record(attempt: i32) -> Op {
    Op::Record { id: ID, attempt }
}

fn publish(key: &str, attempt: u32) -> Op {
    Op::Publish {
        key: key.into(),
        job: job(attempt),
    }
}

fn release(attempt: i32) -> Op {
    Op::ReleaseClaim { id: ID, attempt }
}

/// The one outcome `runner` recorded.
fn only_outcome(runner: &Runner<FakeBackend>) -> AttemptOutcome {
    let outcomes = runner.backend.outcomes();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.into_iter().next().unwrap()
}

/// Checks what every outcome of `Function::example()`'s attempt `attempt` has, recorded
/// between `before` and `after`, with `due_back` after `retry_in` when a retry follows.
fn assert_outcome(
    outcome: &AttemptOutcome,
    attempt: i32,
    next_status: AsyncStatus,
    record: AttemptRecord,
    retry_in: Option<u64>,
    (before, after): (DateTime<Utc>, DateTime<Utc>),
) {
    assert_eq!(outcome.attempt, attempt);
    assert_eq!(outcome.next_status, next_status);
    assert_eq!(outcome.record, record);
    assert_eq!(outcome.function_version, Some(1));
    assert_eq!(outcome.runtime.as_deref(), Some("docker"));
    assert!(before <= outcome.started_at && outcome.started_at <= after);
    match retry_in {
        Some(secs) => {
            let delay = chrono::Duration::seconds(secs as i64);
            let due_back = outcome.due_back.expect("a retry is due back");
            assert!(before + delay <= due_back && due_back <= after + delay);
        }
        None => assert_eq!(outcome.due_back, None),
    }
}

#[test]
fn the_call_paths_errors_classify_by_what_an_attempt_does_about_them() {
    use StartFailureKind::*;
    let table: [(CallError, StartFailureKind); 10] = [
        (
            CallError::ConcurrencyLimit {
                subject: "function f".into(),
                limit: 1,
            },
            NoSlot,
        ),
        (
            CallError::QueueShare {
                namespace: "n".into(),
                share: 1,
            },
            NoSlot,
        ),
        (BrokerError::Overloaded("full".into()).into(), NoSlot),
        (BrokerError::NoWorker(Runtime::Docker).into(), NotReady),
        (
            BrokerError::RuntimeUnavailable(Runtime::Gvisor).into(),
            NotReady,
        ),
        (NotRunnable::Building("f".into()).into(), NotReady),
        (
            CallError::Database(DbError::Inconsistent("gone")),
            DatabaseDown,
        ),
        (BrokerError::Disconnected.into(), BrokerLost),
        (
            NotRunnable::BuildFailed {
                name: "f".into(),
                log_tail: "no such package".into(),
            }
            .into(),
            Refused,
        ),
        (CallError::FunctionNotFound("f".into()), Refused),
    ];
    for (error, kind) in table {
        let failure = classify(&error);
        assert_eq!(failure.kind, kind, "{error}");
        assert_eq!(failure.code, error.code());
        assert_eq!(failure.message, error.to_string());
    }
}
