//! Attempts that cannot start yet (waiting in place, set aside), that lose the broker or the
//! database, and a runner that stops meanwhile.

use super::*;

#[tokio::test(start_paused = true)]
async fn an_attempt_without_a_slot_waits_in_place_then_runs() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(refused(no_slot()));
    runner.backend.calls.push(refused(no_slot()));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    let started = tokio::time::Instant::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    // 100 ms, then 200 ms, in place; then the call (10 ms).
    assert_eq!(started.elapsed(), Duration::from_millis(310));
    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            call(1),
            find(NAME),
            call(1),
            find(NAME),
            call(1),
            record(1)
        ]
    );
    assert_eq!(only_outcome(&runner).next_status, AsyncStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_cannot_start_is_set_aside_after_its_tries_in_place() {
    for (error, delay_secs) in [
        (no_slot(), BASE_SECS),
        (BrokerError::NoWorker(Runtime::Docker).into(), 4 * BASE_SECS),
    ] {
        let runner = runner(with_function(Function::example()));
        runner.backend.claims.push(Ok(Some(claimed(1))));
        for _ in 0..2 {
            runner.backend.calls.push(refused(no_slot()));
        }
        runner.backend.calls.push(refused(error));

        let before = Utc::now();
        assert_eq!(runner.handle(job(1)).await, Disposition::Ack);
        let after = Utc::now();

        let ops = runner.backend.ops();
        // The same attempt, published to wait out the delay; then the row back to queued.
        let key = Topology::delay_routing_key(delay_secs);
        assert_eq!(ops.len(), 9, "{ops:?}");
        assert_eq!(
            ops[..8],
            [
                claim(1),
                find(NAME),
                call(1),
                find(NAME),
                call(1),
                find(NAME),
                call(1),
                publish(&key, 1)
            ]
        );
        let Op::Unclaim {
            id,
            attempt,
            due_back,
        } = ops[8]
        else {
            panic!("the attempt is unclaimed: {ops:?}");
        };
        assert_eq!((id, attempt), (ID, 1));
        let delay = chrono::Duration::seconds(delay_secs as i64);
        assert!(before + delay <= due_back && due_back <= after + delay);
        assert!(runner.backend.outcomes().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_not_set_aside_for_want_of_the_broker_is_given_back() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    for _ in 0..3 {
        runner.backend.calls.push(refused(no_slot()));
    }
    runner
        .backend
        .publishes
        .push(Err(BrokerError::Disconnected));

    assert_eq!(runner.handle(job(1)).await, Disposition::Requeue);

    let ops = runner.backend.ops();
    assert_eq!(
        ops[ops.len() - 2..],
        [publish("delay.10", 1), release(1)],
        "{ops:?}"
    );
    assert!(runner.backend.outcomes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_set_aside_attempt_taken_over_meanwhile_is_still_acked() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    for _ in 0..3 {
        runner.backend.calls.push(refused(no_slot()));
    }
    runner.backend.unclaims.push(Err(db_down()));
    runner.backend.unclaims.push(Ok(false));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    let ops = runner.backend.ops();
    let unclaims = ops
        .iter()
        .filter(|op| matches!(op, Op::Unclaim { .. }))
        .count();
    assert_eq!(unclaims, 2, "{ops:?}");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_waiting_for_the_database_never_is_set_aside() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    for _ in 0..4 {
        runner
            .backend
            .calls
            .push(refused(CallError::Database(db_down())));
    }
    runner.backend.calls.push(answered(ReplyStatus::Success));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    let ops = runner.backend.ops();
    let calls = ops
        .iter()
        .filter(|op| matches!(op, Op::Call { .. }))
        .count();
    assert_eq!(calls, 5, "{ops:?}");
    assert!(!ops.iter().any(|op| matches!(op, Op::Publish { .. })));
    assert_eq!(ops.last(), Some(&record(1)));
}

#[tokio::test(start_paused = true)]
async fn a_call_that_lost_the_broker_gives_the_job_back_unrecorded() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner
        .backend
        .calls
        .push(refused(BrokerError::Disconnected));

    assert_eq!(runner.handle(job(1)).await, Disposition::Requeue);

    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), release(1)]
    );
    assert!(runner.backend.outcomes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_database_is_tried_again_until_it_answers() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Err(db_down()));
    runner.backend.claims.push(Err(db_down()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Success));
    runner.backend.records.push(Err(db_down()));

    let started = tokio::time::Instant::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    // Claims 100 ms, then 200 ms apart; the call 10 ms; the record again after 100 ms.
    assert_eq!(started.elapsed(), Duration::from_millis(410));
    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            claim(1),
            claim(1),
            find(NAME),
            call(1),
            record(1),
            record(1)
        ]
    );
    let outcomes = runner.backend.outcomes();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].record, outcomes[1].record);
    assert_eq!(outcomes[1].next_status, AsyncStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_function_that_cannot_be_read_is_waited_for() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner
        .backend
        .find_errors
        .push(CallError::Database(db_down()));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), find(NAME), call(1), record(1)]
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_while_an_attempt_waits_gives_it_back_with_its_claim_released() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(refused(no_slot()));
    let stop = runner.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
    });

    let started = tokio::time::Instant::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Requeue);

    // Given back when stopped, not once the 100 ms pause was over.
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), release(1)]
    );
    assert!(runner.backend.outcomes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stopping_with_the_outcome_unrecorded_gives_the_job_back() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Success));
    runner.backend.records.push(Err(db_down()));
    runner.stop.cancel();

    assert_eq!(runner.handle(job(1)).await, Disposition::Requeue);

    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), record(1), release(1)]
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_while_the_database_is_down_requeues_without_a_claim() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Err(db_down()));
    runner.stop.cancel();

    assert_eq!(runner.handle(job(1)).await, Disposition::Requeue);
    assert_eq!(runner.backend.ops(), [claim(1)]);
}
