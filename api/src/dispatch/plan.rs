//! The decisions of the async dispatcher, apart from any I/O: what a job copy does with the
//! row it finds, and what an invocation becomes after an attempt.

use super::status::AsyncStatus;
use crate::db::AsyncState;
use chrono::{DateTime, Utc};
use std::time::Duration;

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

/// The retry policy of one function, and the invocation's age.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_retries: u32,
    pub max_event_age: Duration,
    /// Since acceptance, or since the last redrive.
    pub age: Duration,
}

/// After attempt `attempt` (1-based, counted since the last redrive) ended, succeeded or not:
/// a retry while retries are left and its start (after `delay(retry)`) is within the age.
pub fn after_attempt(
    succeeded: bool,
    attempt: u32,
    policy: Policy,
    delay: impl Fn(u32) -> Duration,
) -> Next {
    if succeeded {
        return Next::Succeeded;
    }
    if attempt > policy.max_retries {
        return Next::DeadLetter(DeadReason::RetriesExhausted);
    }
    let wait = delay(attempt);
    if policy.age + wait > policy.max_event_age {
        return Next::DeadLetter(DeadReason::EventAgeExceeded);
    }
    Next::Retry(wait)
}

/// How old an invocation is at `now`: since it was accepted, or redriven.
pub fn age(row: &AsyncState, now: DateTime<Utc>) -> Duration {
    let since = row.redriven_at.unwrap_or(row.created_at);
    (now - since).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::status::Mode;
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

    fn policy(max_retries: u32, age_s: u64) -> Policy {
        Policy {
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
        assert_eq!(
            after_attempt(true, 1, policy(2, 0), doubling),
            Next::Succeeded
        );
        assert_eq!(
            after_attempt(false, 1, policy(2, 0), doubling),
            Next::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            after_attempt(false, 2, policy(2, 0), doubling),
            Next::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            after_attempt(false, 3, policy(2, 0), doubling),
            Next::DeadLetter(DeadReason::RetriesExhausted)
        );
        assert_eq!(
            after_attempt(false, 1, policy(0, 0), doubling),
            Next::DeadLetter(DeadReason::RetriesExhausted)
        );
    }

    #[test]
    fn a_retry_that_would_start_past_the_event_age_is_not_scheduled() {
        assert_eq!(
            after_attempt(false, 1, policy(5, 3600), doubling),
            Next::DeadLetter(DeadReason::EventAgeExceeded)
        );
        assert_eq!(
            after_attempt(false, 1, policy(5, 3599), doubling),
            Next::Retry(Duration::from_secs(1))
        );
    }
}
