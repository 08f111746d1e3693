//! Deliveries that find no attempt to claim (duplicates, a claim held elsewhere), and claims
//! renewed or taken over while an attempt runs.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_duplicate_of_a_finished_or_unknown_invocation_is_dropped() {
    for found in [None, Some(state(AsyncStatus::Succeeded, 1))] {
        let runner = runner(FakeBackend::default());
        runner.backend.states.push(Ok(found));

        assert_eq!(runner.handle(job(1)).await, Disposition::Ack);
        assert_eq!(runner.backend.ops(), [claim(1), Op::GetState { id: ID }]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_of_an_attempt_whose_retry_may_be_lost_publishes_the_retry_again() {
    for (published, disposition) in [
        (Ok(()), Disposition::Ack),
        (Err(BrokerError::Disconnected), Disposition::Requeue),
    ] {
        let runner = runner(FakeBackend::default());
        runner
            .backend
            .states
            .push(Ok(Some(state(AsyncStatus::Queued, 2))));
        runner.backend.publish_attempts.push(published);

        assert_eq!(runner.handle(job(2)).await, disposition);
        assert_eq!(
            runner.backend.ops(),
            [
                claim(2),
                Op::GetState { id: ID },
                Op::PublishAttempt { job: job(3) }
            ]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_copy_of_an_attempt_held_elsewhere_waits_for_the_claim_then_takes_it_over() {
    let runner = runner(with_function(Function::example()));
    let held = AsyncState {
        claimed_until: Some(Utc::now() + chrono::Duration::seconds(3)),
        ..state(AsyncStatus::Running, 1)
    };
    // Held for 3 s more: the copy waits that long. Then the row has just moved back to
    // queued (the claim failed before that, the read came after): it claims again at once.
    runner.backend.claims.push(Ok(None));
    runner.backend.states.push(Ok(Some(held)));
    runner.backend.claims.push(Ok(None));
    runner
        .backend
        .states
        .push(Ok(Some(state(AsyncStatus::Queued, 0))));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    let started = tokio::time::Instant::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    // The wait, then the call's 10 ms.
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(2900) && waited <= Duration::from_millis(3011),
        "{waited:?}"
    );
    let get = Op::GetState { id: ID };
    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            get.clone(),
            claim(1),
            get,
            claim(1),
            find(NAME),
            call(1),
            record(1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_while_a_copy_waits_for_the_claim_requeues_it() {
    let runner = runner(FakeBackend::default());
    let held = AsyncState {
        claimed_until: Some(Utc::now() + chrono::Duration::seconds(60)),
        ..state(AsyncStatus::Running, 1)
    };
    runner.backend.states.push(Ok(Some(held)));
    runner.stop.cancel();

    assert_eq!(runner.handle(job(1)).await, Disposition::Requeue);
    assert_eq!(runner.backend.ops(), [claim(1), Op::GetState { id: ID }]);
}

#[tokio::test(start_paused = true)]
async fn a_long_call_renews_its_claim_while_it_runs() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    let mut long = answered(ReplyStatus::Success);
    long.takes = Duration::from_secs(12);
    runner.backend.calls.push(long);
    // A renewal that fails is let be: the next one may pass.
    runner.backend.extends.push(Err(db_down()));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    let extend = Op::ExtendClaim { id: ID, attempt: 1 };
    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            call(1),
            extend.clone(),
            extend,
            record(1)
        ]
    );
}

/// Six waits for the function (100 ms doubling to 2 s: 5.1 s) pass [`CLAIM_RENEW`].
fn unreadable_for_six_tries(runner: &Runner<FakeBackend>) {
    for _ in 0..6 {
        runner
            .backend
            .find_errors
            .push(CallError::Database(db_down()));
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_waited_past_its_renewal_renews_its_claim_before_the_call() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    unreadable_for_six_tries(&runner);
    runner.backend.calls.push(answered(ReplyStatus::Success));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    let mut expected = vec![claim(1)];
    expected.extend(std::iter::repeat_n(find(NAME), 7));
    expected.extend([Op::ExtendClaim { id: ID, attempt: 1 }, call(1), record(1)]);
    assert_eq!(runner.backend.ops(), expected);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_taken_over_by_another_copy_is_acked_without_a_call() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    unreadable_for_six_tries(&runner);
    runner.backend.extends.push(Ok(false));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    let mut expected = vec![claim(1)];
    expected.extend(std::iter::repeat_n(find(NAME), 7));
    expected.push(Op::ExtendClaim { id: ID, attempt: 1 });
    assert_eq!(runner.backend.ops(), expected);
    assert!(runner.backend.outcomes().is_empty());
}
