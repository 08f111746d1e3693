//! The decisions of the async dispatcher, apart from any I/O: what a job copy does with the
//! row it finds, and how an attempt settles ([`settle`]): what its row records, what the
//! invocation becomes (done, retried, set aside, dead-lettered) and which destination hears
//! of it.

use crate::domain::async_status::AsyncStatus;
use crate::services::records;
use crate::store::{AsyncState, AttemptRecord};
use chrono::{DateTime, Utc};
use common::broker::Topology;
use common::{Reply, ReplyStatus};
use serde_json::{Value, json};
use std::time::Duration;

/// Destinations invoked one after another at most (A's on_success B, B's A, ...): as Lambda's
/// recursive loop detection, a chain stops there.
pub const MAX_CHAIN_DEPTH: i32 = 16;
/// Tries an attempt that cannot start (no slot, no worker, no build) makes in place, 100 and
/// 200 ms apart, before it is set aside: a job that waits in place holds one of the
/// dispatcher's `ASYNC_CONCURRENCY` deliveries, and jobs of one throttled function would
/// otherwise hold them all while every other function's jobs queue behind them.
const TRIES_IN_PLACE: u32 = 3;

/// What to do with a delivered job of attempt `attempt`, given the invocation's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDelivery {
    /// Claim and run the attempt.
    Run,
    /// Another copy holds the attempt until then (its api may have died): look again then.
    WaitUntil(DateTime<Utc>),
    /// The attempt ran and a retry was due, but its job may have been lost (the api died
    /// between recording and publishing it): publish attempt `attempt + 1` again.
    RepublishRetry,
    /// A duplicate or stale copy, or an invocation that was never accepted: ack and forget.
    Drop,
}

/// Decides what a job of `attempt` does with `row` (`None`: no such invocation) at `now`.
pub fn on_delivery(row: Option<&AsyncState>, attempt: i32, now: DateTime<Utc>) -> OnDelivery {
    let Some(row) = row else {
        // Its accept failed (the caller got 503) and the row was deleted.
        return OnDelivery::Drop;
    };
    match row.status {
        AsyncStatus::Accepting | AsyncStatus::Queued if row.attempts == attempt - 1 => {
            OnDelivery::Run
        }
        AsyncStatus::Queued if row.attempts == attempt => OnDelivery::RepublishRetry,
        AsyncStatus::Running if row.attempts == attempt => match row.claimed_until {
            Some(until) if until > now => OnDelivery::WaitUntil(until),
            _ => OnDelivery::Run,
        },
        _ => OnDelivery::Drop,
    }
}

/// Where an invocation goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Succeeded,
    /// Run again after the delay.
    Retry(Duration),
    /// No more attempts: the reason, for the error and the metric's label.
    DeadLetter(DeadReason),
}

impl Next {
    /// The status the invocation takes.
    pub fn status(&self) -> AsyncStatus {
        match self {
            Next::Succeeded => AsyncStatus::Succeeded,
            Next::Retry(_) => AsyncStatus::Queued,
            Next::DeadLetter(_) => AsyncStatus::DeadLettered,
        }
    }
}

/// Why an invocation was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Every attempt it had failed.
    RetriesExhausted,
    /// It was older than `max_event_age_secs` before its next attempt could start.
    EventAgeExceeded,
    /// Its function was deleted.
    FunctionNotFound,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::RetriesExhausted => "retries_exhausted",
            DeadReason::EventAgeExceeded => "event_age_exceeded",
            DeadReason::FunctionNotFound => "function_not_found",
        }
    }
}

/// What a function allows its invocations' attempts, and whom it tells how they ended.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// `max_retries` as the function has it.
    pub max_retries: i32,
    /// `max_event_age_secs` as the function has it.
    pub max_event_age_secs: i32,
    /// The function invoked with the outcome of an invocation that succeeded.
    pub on_success: Option<&'a str>,
    /// The function invoked with the outcome of an invocation dead-lettered.
    pub on_failure: Option<&'a str>,
    /// Where the delays of retries and of set-aside attempts come from (`RETRY_BASE_SECS`).
    pub delays: &'a Topology,
}

impl Policy<'_> {
    fn max_event_age(&self) -> Duration {
        Duration::from_secs(self.max_event_age_secs.max(0) as u64)
    }
}

/// The attempt being settled, as its dispatcher sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1-based, as its job carries it.
    pub number: i32,
    /// Attempts made before the last redrive: retries are counted from there.
    pub retry_floor: i32,
    /// How old the invocation was when this try began (see [`age`]).
    pub age: Duration,
    /// Earlier tries of this attempt that could not start.
    pub blocked_tries: u32,
    /// How many destinations led to this invocation (0 for a client's or a schedule's).
    pub chain_depth: i32,
}

impl Attempt {
    /// Whether it is the first attempt since acceptance or the last redrive.
    pub fn is_first(&self) -> bool {
        self.number - self.retry_floor == 1
    }

    /// 1-based, counted since the last redrive.
    fn since_redrive(&self) -> u32 {
        (self.number - self.retry_floor).max(1) as u32
    }
}

/// What one try of an attempt came to.
#[derive(Debug)]
pub enum Tried {
    /// A worker replied (`duration_ms` from publish to reply).
    Replied { reply: Reply, duration_ms: f64 },
    /// No worker answered before the call's deadline.
    NoReply { duration_ms: f64 },
    /// The call did not start; `age` is the invocation's when it gave up.
    NotStarted {
        failure: StartFailure,
        age: Duration,
    },
}

/// Why a call did not start, as the call path told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    pub kind: StartFailureKind,
    /// The error's code (`function_not_ready`, ...).
    pub code: &'static str,
    /// The error's message.
    pub message: String,
}

/// The kinds of [`StartFailure`], by what the attempt does about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFailureKind {
    /// No slot: the function's or namespace's concurrency limit, or a full queue. One frees
    /// up soon.
    NoSlot,
    /// No worker, no runtime, or no build yet: that takes longer.
    NotReady,
    /// The database did not answer: wait in place, never set aside.
    DatabaseDown,
    /// The broker connection went away: the job comes back to some dispatcher.
    BrokerLost,
    /// It cannot run as it is (its build failed): a failed attempt.
    Refused,
}

/// How an attempt's try settles.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// The attempt is over: record it, then go on as it says.
    Settled(Settled),
    /// It could not start for something that passes (`why`): pause and try again here.
    WaitHere { why: String },
    /// It could not start (`why`) and has waited here enough: its job goes to the delay queue
    /// of `delay_secs` and the invocation back to `queued`, uncounted.
    SetAside { delay_secs: u64, why: String },
    /// Give the job back to the queue, unrecorded.
    GiveBack,
}

/// An attempt that is over.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub record: AttemptRecord,
    pub next: Next,
    pub destination: Destination,
}

/// The destination an outcome goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    None,
    /// Invoke this function of the namespace with the outcome.
    Invoke(String),
    /// This function would be invoked, but the chain of destinations reached
    /// [`MAX_CHAIN_DEPTH`] (a loop?): it is not.
    ChainTooLong(String),
}

impl AttemptRecord {
    /// An attempt that did not run, `error` saying why.
    fn not_run(error: Value) -> Self {
        AttemptRecord {
            outcome: "not_run".to_owned(),
            result: None,
            error: Some(error),
            logs: None,
            logs_truncated: false,
            timing: None,
            duration_ms: None,
            cold_start: false,
            worker_id: None,
        }
    }

    /// An attempt a worker answered, its texts made storable.
    fn replied(reply: Reply, duration_ms: f64) -> Self {
        let mut worker_id = reply.worker_id;
        records::clean_text(&mut worker_id);
        AttemptRecord {
            outcome: reply.status.as_str().to_owned(),
            result: (reply.status == ReplyStatus::Success).then(|| reply.result.get().to_owned()),
            error: reply.error.map(|mut error| {
                records::clean_error(&mut error);
                serde_json::to_value(error).expect("an error always serializes")
            }),
            // Not capped as record text is: logs are bounded by the worker.
            logs: Some(reply.logs.replace('\0', "\u{FFFD}")),
            logs_truncated: reply.logs_truncated,
            timing: serde_json::to_value(reply.timing).ok(),
            duration_ms: Some(duration_ms),
            cold_start: reply.cold_start,
            worker_id: Some(worker_id),
        }
    }

    /// An attempt no worker answered in time.
    fn no_reply(duration_ms: f64) -> Self {
        AttemptRecord {
            outcome: "no_reply".to_owned(),
            duration_ms: Some(duration_ms),
            ..Self::not_run(
                json!({"kind": "NoReply", "message": "no worker answered before the call's deadline"}),
            )
        }
    }
}

/// Settles an attempt whose function was deleted (`function_name`): dead-lettered unrun.
pub fn function_deleted(function_name: &str) -> Settled {
    let error = json!({"kind": "FunctionNotFound", "message": format!("function {function_name} was deleted")});
    Settled {
        record: AttemptRecord::not_run(error),
        next: Next::DeadLetter(DeadReason::FunctionNotFound),
        destination: Destination::None,
    }
}

/// Settles an attempt before its call when the invocation is already older than the policy
/// allows: dead-lettered unrun. `None`: call it.
pub fn before_call(policy: &Policy<'_>, attempt: &Attempt) -> Option<Settled> {
    (attempt.age > policy.max_event_age()).then(|| {
        too_old(
            format!(
                "the invocation is {} s old, over max_event_age_secs {}",
                attempt.age.as_secs(),
                policy.max_event_age_secs
            ),
            policy,
            attempt,
        )
    })
}

/// Settles a try of `attempt` under `policy`: the outcome to record and what follows, or
/// how the attempt waits when it could not start.
pub fn settle(tried: Tried, policy: &Policy<'_>, attempt: &Attempt) -> Settlement {
    let (record, succeeded) = match tried {
        Tried::Replied { reply, duration_ms } => {
            let succeeded = reply.status == ReplyStatus::Success;
            (AttemptRecord::replied(reply, duration_ms), succeeded)
        }
        Tried::NoReply { duration_ms } => (AttemptRecord::no_reply(duration_ms), false),
        Tried::NotStarted { failure, age } => return not_started(failure, age, policy, attempt),
    };
    let next = after_attempt(succeeded, policy, attempt);
    Settlement::Settled(settled(record, next, policy, attempt))
}

/// Settles a try that did not start: failed when refused, dead-lettered once too old,
/// otherwise it waits here a few times, then is set aside.
fn not_started(
    failure: StartFailure,
    age: Duration,
    policy: &Policy<'_>,
    attempt: &Attempt,
) -> Settlement {
    let set_aside_for = match failure.kind {
        StartFailureKind::BrokerLost => return Settlement::GiveBack,
        StartFailureKind::Refused => {
            let error = json!({"kind": failure.code, "message": failure.message});
            let next = after_attempt(false, policy, attempt);
            return Settlement::Settled(settled(
                AttemptRecord::not_run(error),
                next,
                policy,
                attempt,
            ));
        }
        _ if age > policy.max_event_age() => {
            let why = format!(
                "it could not start before max_event_age_secs: {}",
                failure.message
            );
            return Settlement::Settled(too_old(why, policy, attempt));
        }
        StartFailureKind::DatabaseDown => None,
        // A slot frees up soon: the shortest delay (`RETRY_BASE_SECS`). A worker or a build
        // takes longer: the third (4 × that), so that a backlog with no worker to run it
        // cycles through the broker and Postgres four times less often.
        StartFailureKind::NoSlot => Some(policy.delays.retry_delay_secs(1)),
        StartFailureKind::NotReady => Some(policy.delays.retry_delay_secs(3)),
    };
    match set_aside_for {
        Some(delay_secs) if attempt.blocked_tries + 1 >= TRIES_IN_PLACE => Settlement::SetAside {
            delay_secs,
            why: failure.message,
        },
        _ => Settlement::WaitHere {
            why: failure.message,
        },
    }
}

/// Dead-lettered unrun for its age, `why` saying how old.
fn too_old(why: String, policy: &Policy<'_>, attempt: &Attempt) -> Settled {
    let error = json!({"kind": "EventAgeExceeded", "message": why});
    let next = Next::DeadLetter(DeadReason::EventAgeExceeded);
    settled(AttemptRecord::not_run(error), next, policy, attempt)
}

/// `record` and `next`, with the destination the policy names for that ending.
fn settled(record: AttemptRecord, next: Next, policy: &Policy<'_>, attempt: &Attempt) -> Settled {
    let name = match next {
        Next::Succeeded => policy.on_success,
        Next::DeadLetter(_) => policy.on_failure,
        Next::Retry(_) => None,
    };
    let destination = match name {
        None => Destination::None,
        Some(name) if attempt.chain_depth >= MAX_CHAIN_DEPTH => {
            Destination::ChainTooLong(name.to_owned())
        }
        Some(name) => Destination::Invoke(name.to_owned()),
    };
    Settled {
        record,
        next,
        destination,
    }
}

/// After the attempt ended, succeeded or not: a retry while retries are left and its start
/// (after the retry's delay) is within the age.
fn after_attempt(succeeded: bool, policy: &Policy<'_>, attempt: &Attempt) -> Next {
    let limits = Limits {
        max_retries: policy.max_retries.max(0) as u32,
        max_event_age: policy.max_event_age(),
        age: attempt.age,
    };
    next_after(succeeded, attempt.since_redrive(), limits, |retry| {
        Duration::from_secs(policy.delays.retry_delay_secs(retry))
    })
}

/// The retry limits of one function, and the invocation's age.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_retries: u32,
    max_event_age: Duration,
    /// Since acceptance, or since the last redrive.
    age: Duration,
}

/// After attempt `attempt` (1-based, counted since the last redrive) ended, succeeded or not:
/// a retry while retries are left and its start (after `delay(retry)`) is within the age.
fn next_after(
    succeeded: bool,
    attempt: u32,
    limits: Limits,
    delay: impl Fn(u32) -> Duration,
) -> Next {
    if succeeded {
        return Next::Succeeded;
    }
    if attempt > limits.max_retries {
        return Next::DeadLetter(DeadReason::RetriesExhausted);
    }
    let wait = delay(attempt);
    if limits.age + wait > limits.max_event_age {
        return Next::DeadLetter(DeadReason::EventAgeExceeded);
    }
    Next::Retry(wait)
}

/// How old an invocation is at `now`: since it was accepted, or redriven.
pub fn age(row: &AsyncState, now: DateTime<Utc>) -> Duration {
    let since = row.redriven_at.unwrap_or(row.created_at);
    (now - since).to_std().unwrap_or_default()
}

/// The event a destination receives: where it comes from, how it ended (`status`), and the
/// original event. Over `max_bytes` (`MAX_EVENT_BYTES`), the embedded parts are left out, the
/// outcome first, then the original event, each replaced by null and named in `truncated`
/// (as Lambda leaves out a payload too large): both stay readable at `GET
/// /invocations/{invocation_id}`. Without this a chain of 16 destinations would embed its
/// events in one another, growing by a result each link.
pub fn destination_event(
    row: &AsyncState,
    status: AsyncStatus,
    record: &AttemptRecord,
    max_bytes: usize,
) -> String {
    let original: Value = serde_json::from_str(&row.event).unwrap_or(Value::Null);
    let mut event = json!({
        "source": "destination",
        "invocation_id": row.id,
        "function": row.function_name,
        "status": status,
        "event": original,
    });
    match &record.result {
        Some(result) => {
            event["result"] = serde_json::from_str(result).unwrap_or(Value::Null);
        }
        None => event["error"] = record.error.clone().unwrap_or(Value::Null),
    }
    let mut text = event.to_string();
    let mut truncated = Vec::new();
    for part in ["result", "error", "event"] {
        if text.len() <= max_bytes {
            break;
        }
        if event.get(part).is_some_and(|value| !value.is_null()) {
            event[part] = Value::Null;
            truncated.push(part);
            event["truncated"] = json!(truncated);
            text = event.to_string();
        }
    }
    text
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::async_status::Mode;
    use uuid::Uuid;

    fn row(status: &str, attempts: i32, claimed_until: Option<DateTime<Utc>>) -> AsyncState {
        AsyncState {
            id: Uuid::nil(),
            namespace: "default".into(),
            function_name: "f".into(),
            mode: Mode::Async,
            status: AsyncStatus::parse(status).expect("a status"),
            event: "{}".into(),
            attempts,
            retry_floor: 0,
            claimed_until,
            created_at: Utc::now(),
            redriven_at: None,
            chain_depth: 0,
        }
    }

    #[test]
    fn the_next_attempt_of_a_waiting_invocation_runs_and_others_are_dropped() {
        let now = Utc::now();
        assert_eq!(
            on_delivery(Some(&row("accepting", 0, None)), 1, now),
            OnDelivery::Run
        );
        assert_eq!(
            on_delivery(Some(&row("queued", 2, None)), 3, now),
            OnDelivery::Run
        );
        // A duplicate of an attempt already started, of a finished invocation, or of nothing.
        assert_eq!(
            on_delivery(Some(&row("queued", 2, None)), 2, now),
            OnDelivery::RepublishRetry
        );
        assert_eq!(
            on_delivery(Some(&row("queued", 2, None)), 1, now),
            OnDelivery::Drop
        );
        assert_eq!(
            on_delivery(Some(&row("succeeded", 1, None)), 1, now),
            OnDelivery::Drop
        );
        assert_eq!(
            on_delivery(Some(&row("dead_lettered", 3, None)), 3, now),
            OnDelivery::Drop
        );
        assert_eq!(
            on_delivery(Some(&row("dead_lettered", 3, None)), 4, now),
            OnDelivery::Drop
        );
        assert_eq!(on_delivery(None, 1, now), OnDelivery::Drop);
    }

    #[test]
    fn a_running_attempt_is_taken_over_only_once_its_claim_lapsed() {
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(30);
        assert_eq!(
            on_delivery(Some(&row("running", 1, Some(later))), 1, now),
            OnDelivery::WaitUntil(later)
        );
        let earlier = now - chrono::Duration::seconds(1);
        assert_eq!(
            on_delivery(Some(&row("running", 1, Some(earlier))), 1, now),
            OnDelivery::Run
        );
        // Another attempt's copy never takes a running one.
        assert_eq!(
            on_delivery(Some(&row("running", 2, Some(earlier))), 1, now),
            OnDelivery::Drop
        );
        assert_eq!(
            on_delivery(Some(&row("running", 1, Some(earlier))), 2, now),
            OnDelivery::Drop
        );
    }

    fn limits(max_retries: u32, age_s: u64) -> Limits {
        Limits {
            max_retries,
            max_event_age: Duration::from_secs(3600),
            age: Duration::from_secs(age_s),
        }
    }

    fn doubling(retry: u32) -> Duration {
        Duration::from_secs(1 << (retry - 1))
    }

    #[test]
    fn failures_are_retried_with_doubling_delays_until_the_retries_run_out() {
        assert_eq!(next_after(true, 1, limits(2, 0), doubling), Next::Succeeded);
        assert_eq!(
            next_after(false, 1, limits(2, 0), doubling),
            Next::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            next_after(false, 2, limits(2, 0), doubling),
            Next::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            next_after(false, 3, limits(2, 0), doubling),
            Next::DeadLetter(DeadReason::RetriesExhausted)
        );
        assert_eq!(
            next_after(false, 1, limits(0, 0), doubling),
            Next::DeadLetter(DeadReason::RetriesExhausted)
        );
    }

    #[test]
    fn a_retry_that_would_start_past_the_event_age_is_not_scheduled() {
        assert_eq!(
            next_after(false, 1, limits(5, 3600), doubling),
            Next::DeadLetter(DeadReason::EventAgeExceeded)
        );
        assert_eq!(
            next_after(false, 1, limits(5, 3599), doubling),
            Next::Retry(Duration::from_secs(1))
        );
    }

    // settle, as a table: every way a try ends, and what follows.

    const HOUR: u64 = 3600;

    fn topology() -> Topology {
        Topology::new("test").with_retry_base_secs(2)
    }

    /// max_retries 2, max_event_age 1 h, on_success `ok`, on_failure `ko`.
    fn rules(topology: &Topology) -> Policy<'_> {
        Policy {
            max_retries: 2,
            max_event_age_secs: HOUR as i32,
            on_success: Some("ok"),
            on_failure: Some("ko"),
            delays: topology,
        }
    }

    fn attempt(number: i32) -> Attempt {
        Attempt {
            number,
            retry_floor: 0,
            age: Duration::ZERO,
            blocked_tries: 0,
            chain_depth: 0,
        }
    }

    fn reply(status: ReplyStatus) -> Reply {
        Reply {
            invocation_id: Uuid::nil(),
            worker_id: "worker-1".into(),
            status,
            result: common::RawValue::from_string(r#"{"ok":true}"#.into()).unwrap(),
            error: (status != ReplyStatus::Success).then(|| common::ErrorInfo {
                kind: "ValueError".into(),
                message: "bad".into(),
                stack: String::new(),
            }),
            logs: "printed\n".into(),
            logs_truncated: false,
            cold_start: true,
            timing: common::Timing::default(),
        }
    }

    fn replied(status: ReplyStatus) -> Tried {
        Tried::Replied {
            reply: reply(status),
            duration_ms: 12.5,
        }
    }

    fn not_started(kind: StartFailureKind, age_s: u64) -> Tried {
        Tried::NotStarted {
            failure: StartFailure {
                kind,
                code: "some_code",
                message: "it cannot start".into(),
            },
            age: Duration::from_secs(age_s),
        }
    }

    /// A settlement in a few words: the outcome recorded, the next step, the destination.
    fn summary(settlement: &Settlement) -> String {
        match settlement {
            Settlement::Settled(Settled {
                record,
                next,
                destination,
            }) => {
                let next = match next {
                    Next::Succeeded => "succeeded".to_owned(),
                    Next::Retry(delay) => format!("retry in {}s", delay.as_secs()),
                    Next::DeadLetter(reason) => format!("dead: {}", reason.as_str()),
                };
                let destination = match destination {
                    Destination::None => String::new(),
                    Destination::Invoke(name) => format!(", invoke {name}"),
                    Destination::ChainTooLong(name) => format!(", chain too long for {name}"),
                };
                format!("{} -> {next}{destination}", record.outcome)
            }
            Settlement::WaitHere { why } => format!("wait here ({why})"),
            Settlement::SetAside { delay_secs, why } => format!("set aside {delay_secs}s ({why})"),
            Settlement::GiveBack => "give back".to_owned(),
        }
    }

    #[test]
    fn every_way_a_try_ends_settles_as_the_table_says() {
        use StartFailureKind::*;
        let topology = topology();
        let policy = rules(&topology);
        let old = |mut at: Attempt, secs: u64| {
            at.age = Duration::from_secs(secs);
            at
        };
        let blocked = |mut at: Attempt, tries: u32| {
            at.blocked_tries = tries;
            at
        };
        let redriven = |mut at: Attempt, floor: i32| {
            at.retry_floor = floor;
            at
        };
        let deep = |mut at: Attempt, depth: i32| {
            at.chain_depth = depth;
            at
        };
        let table: Vec<(&str, Tried, Attempt, &str)> = vec![
            (
                "a success",
                replied(ReplyStatus::Success),
                attempt(1),
                "success -> succeeded, invoke ok",
            ),
            (
                "a success at the end of retries",
                replied(ReplyStatus::Success),
                attempt(3),
                "success -> succeeded, invoke ok",
            ),
            (
                "an error, retries left",
                replied(ReplyStatus::Error),
                attempt(1),
                "error -> retry in 2s",
            ),
            (
                "the second retry doubles",
                replied(ReplyStatus::Timeout),
                attempt(2),
                "timeout -> retry in 4s",
            ),
            (
                "an error, no retries left",
                replied(ReplyStatus::Crashed),
                attempt(3),
                "crashed -> dead: retries_exhausted, invoke ko",
            ),
            (
                "a retry that would start too old",
                replied(ReplyStatus::Oom),
                old(attempt(1), HOUR - 1),
                "oom -> dead: event_age_exceeded, invoke ko",
            ),
            (
                "a retry that starts just in time",
                replied(ReplyStatus::Error),
                old(attempt(1), HOUR - 2),
                "error -> retry in 2s",
            ),
            (
                "retries afresh after a redrive",
                replied(ReplyStatus::Error),
                redriven(attempt(4), 3),
                "error -> retry in 2s",
            ),
            (
                "no reply",
                Tried::NoReply {
                    duration_ms: 30_000.0,
                },
                attempt(1),
                "no_reply -> retry in 2s",
            ),
            (
                "no reply, no retries left",
                Tried::NoReply { duration_ms: 1.0 },
                attempt(3),
                "no_reply -> dead: retries_exhausted, invoke ko",
            ),
            (
                "refused: a failed attempt",
                not_started(Refused, 0),
                attempt(1),
                "not_run -> retry in 2s",
            ),
            (
                "refused, however old",
                not_started(Refused, 2 * HOUR),
                attempt(3),
                "not_run -> dead: retries_exhausted, invoke ko",
            ),
            (
                "the broker lost",
                not_started(BrokerLost, 0),
                attempt(1),
                "give back",
            ),
            (
                "the broker lost, however old",
                not_started(BrokerLost, 2 * HOUR),
                attempt(1),
                "give back",
            ),
            (
                "no slot, first try",
                not_started(NoSlot, 0),
                attempt(1),
                "wait here (it cannot start)",
            ),
            (
                "no slot, second try",
                not_started(NoSlot, 0),
                blocked(attempt(1), 1),
                "wait here (it cannot start)",
            ),
            (
                "no slot, third try",
                not_started(NoSlot, 0),
                blocked(attempt(1), 2),
                "set aside 2s (it cannot start)",
            ),
            (
                "not ready, third try",
                not_started(NotReady, 0),
                blocked(attempt(1), 2),
                "set aside 8s (it cannot start)",
            ),
            (
                "not ready, later tries",
                not_started(NotReady, 0),
                blocked(attempt(2), 7),
                "set aside 8s (it cannot start)",
            ),
            (
                "no database, however often",
                not_started(DatabaseDown, 0),
                blocked(attempt(1), 50),
                "wait here (it cannot start)",
            ),
            (
                "no slot until too old",
                not_started(NoSlot, HOUR + 1),
                blocked(attempt(1), 1),
                "not_run -> dead: event_age_exceeded, invoke ko",
            ),
            (
                "no database until too old",
                not_started(DatabaseDown, HOUR + 1),
                attempt(1),
                "not_run -> dead: event_age_exceeded, invoke ko",
            ),
            (
                "a success at the chain's end",
                replied(ReplyStatus::Success),
                deep(attempt(1), MAX_CHAIN_DEPTH),
                "success -> succeeded, chain too long for ok",
            ),
            (
                "a dead letter at the chain's end",
                replied(ReplyStatus::Error),
                deep(attempt(3), MAX_CHAIN_DEPTH),
                "error -> dead: retries_exhausted, chain too long for ko",
            ),
            (
                "a success just inside the chain",
                replied(ReplyStatus::Success),
                deep(attempt(1), MAX_CHAIN_DEPTH - 1),
                "success -> succeeded, invoke ok",
            ),
        ];
        for (case, tried, attempt, expected) in table {
            assert_eq!(
                summary(&settle(tried, &policy, &attempt)),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn without_destinations_or_retries_an_ending_notifies_no_one() {
        let topology = topology();
        let policy = Policy {
            max_retries: 0,
            on_success: None,
            on_failure: None,
            ..rules(&topology)
        };
        let settled = |tried| summary(&settle(tried, &policy, &attempt(1)));
        assert_eq!(
            settled(replied(ReplyStatus::Success)),
            "success -> succeeded"
        );
        assert_eq!(
            settled(replied(ReplyStatus::Error)),
            "error -> dead: retries_exhausted"
        );
    }

    #[test]
    fn an_attempt_too_old_or_of_a_deleted_function_is_not_called() {
        let topology = topology();
        let policy = rules(&topology);
        let at = |age_s| Attempt {
            age: Duration::from_secs(age_s),
            ..attempt(2)
        };
        assert_eq!(before_call(&policy, &at(HOUR)), None, "at the age: called");
        let settled = before_call(&policy, &at(HOUR + 1)).expect("too old");
        assert_eq!(
            summary(&Settlement::Settled(settled.clone())),
            "not_run -> dead: event_age_exceeded, invoke ko"
        );
        assert_eq!(
            settled.record.error,
            Some(
                json!({"kind": "EventAgeExceeded", "message": "the invocation is 3601 s old, over max_event_age_secs 3600"})
            )
        );
        let deleted = function_deleted("gone");
        assert_eq!(
            summary(&Settlement::Settled(deleted.clone())),
            "not_run -> dead: function_not_found"
        );
        assert_eq!(
            deleted.record.error,
            Some(json!({"kind": "FunctionNotFound", "message": "function gone was deleted"}))
        );
    }

    #[test]
    fn the_record_keeps_what_the_worker_said_made_storable() {
        let topology = topology();
        let policy = rules(&topology);
        let mut answer = reply(ReplyStatus::Success);
        answer.logs = "a\0b".into();
        answer.worker_id = "w\0".into();
        let Settlement::Settled(settled) = settle(
            Tried::Replied {
                reply: answer,
                duration_ms: 12.5,
            },
            &policy,
            &attempt(1),
        ) else {
            panic!("a reply settles");
        };
        let record = settled.record;
        assert_eq!(record.result.as_deref(), Some(r#"{"ok":true}"#));
        assert_eq!(record.error, None);
        assert_eq!(record.logs.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(record.worker_id.as_deref(), Some("w\u{FFFD}"));
        assert_eq!(record.duration_ms, Some(12.5));
        assert!(record.cold_start);
        assert_eq!(
            record.timing,
            Some(json!({"queue_ms": 0.0, "init_ms": 0.0, "run_ms": 0.0}))
        );

        let Settlement::Settled(failed) = settle(replied(ReplyStatus::Error), &policy, &attempt(1))
        else {
            panic!("a reply settles");
        };
        assert_eq!(
            failed.record.result, None,
            "only a success keeps its result"
        );
        assert_eq!(
            failed.record.error,
            Some(json!({"type": "ValueError", "message": "bad", "stack": ""}))
        );

        let Settlement::Settled(refused) = settle(
            not_started(StartFailureKind::Refused, 0),
            &policy,
            &attempt(1),
        ) else {
            panic!("a refusal settles");
        };
        assert_eq!(
            refused.record.error,
            Some(json!({"kind": "some_code", "message": "it cannot start"}))
        );
        assert_eq!(refused.record.duration_ms, None);

        let Settlement::Settled(silent) =
            settle(Tried::NoReply { duration_ms: 9.0 }, &policy, &attempt(1))
        else {
            panic!("no reply settles");
        };
        assert_eq!(silent.record.duration_ms, Some(9.0));
        assert_eq!(silent.record.logs, None);
        assert_eq!(
            silent.record.error,
            Some(
                json!({"kind": "NoReply", "message": "no worker answered before the call's deadline"})
            )
        );
    }

    #[test]
    fn an_ending_takes_its_status_and_a_destination_hears_of_it() {
        assert_eq!(Next::Succeeded.status(), AsyncStatus::Succeeded);
        assert_eq!(Next::Retry(Duration::ZERO).status(), AsyncStatus::Queued);
        assert_eq!(
            Next::DeadLetter(DeadReason::RetriesExhausted).status(),
            AsyncStatus::DeadLettered
        );
        let source = AsyncState {
            event: r#"{"n":1}"#.into(),
            ..row("running", 1, None)
        };
        let mut record = AttemptRecord::not_run(json!({"kind": "K"}));
        let event: Value = serde_json::from_str(&destination_event(
            &source,
            AsyncStatus::DeadLettered,
            &record,
            MAX,
        ))
        .unwrap();
        assert_eq!(
            event,
            json!({"source": "destination", "invocation_id": Uuid::nil(), "function": "f",
                "status": "dead_lettered", "event": {"n": 1}, "error": {"kind": "K"}})
        );
        record.result = Some("[1]".into());
        let event: Value = serde_json::from_str(&destination_event(
            &source,
            AsyncStatus::Succeeded,
            &record,
            MAX,
        ))
        .unwrap();
        assert_eq!(event["status"], "succeeded");
        assert_eq!(event["result"], json!([1]));
        assert!(event.get("error").is_none());
        assert!(event.get("truncated").is_none());
    }

    const MAX: usize = 6 * 1024 * 1024;

    #[test]
    fn a_destination_event_over_the_limit_leaves_out_the_outcome_then_the_event() {
        let big = |n: usize| format!("\"{}\"", "x".repeat(n));
        let source = AsyncState {
            event: big(1000),
            ..row("running", 1, None)
        };
        let mut record = AttemptRecord::not_run(json!({"kind": "K"}));
        record.result = Some(big(3000));
        let cut = |record: &AttemptRecord, max| -> (Value, usize) {
            let text = destination_event(&source, AsyncStatus::Succeeded, record, max);
            (serde_json::from_str(&text).unwrap(), text.len())
        };
        let (whole, whole_len) = cut(&record, MAX);
        assert!(whole.get("truncated").is_none() && whole_len > 4000);
        // Room for the event but not the result: the result goes.
        let (event, len) = cut(&record, 2000);
        assert!(len <= 2000, "{len}");
        assert_eq!(event["result"], Value::Null);
        assert_eq!(event["event"], json!("x".repeat(1000)));
        assert_eq!(event["truncated"], json!(["result"]));
        // Room for neither: both go, and the rest still says where it comes from.
        let (event, len) = cut(&record, 500);
        assert!(len <= 500, "{len}");
        assert_eq!(event["truncated"], json!(["result", "event"]));
        assert_eq!(event["source"], "destination");
        assert_eq!(event["status"], "succeeded");
        // A failure's error goes the same way.
        record.result = None;
        record.error = Some(json!({"kind": "K", "message": "y".repeat(3000)}));
        let (event, len) = cut(&record, 2000);
        assert!(len <= 2000, "{len}");
        assert_eq!(event["error"], Value::Null);
        assert_eq!(event["truncated"], json!(["error"]));
    }
}
