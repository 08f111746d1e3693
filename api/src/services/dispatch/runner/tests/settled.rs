//! Attempts that end recorded: succeeded, retried, dead-lettered, with their destinations, or
//! already recorded by another copy.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_claimed_attempt_that_succeeds_is_recorded_once_and_acked_with_nothing_published() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    let before = Utc::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);
    let after = Utc::now();

    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), record(1)]
    );
    let outcome = only_outcome(&runner);
    let record = replied_record(ReplyStatus::Success);
    assert_outcome(
        &outcome,
        1,
        AsyncStatus::Succeeded,
        record,
        None,
        (before, after),
    );
    assert!(outcome.destination.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failure_with_retries_left_is_recorded_as_a_retry_published_to_its_delay_queue() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Error));

    let before = Utc::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);
    let after = Utc::now();

    // The first retry waits the base delay; its job is attempt 2.
    let key = Topology::delay_routing_key(BASE_SECS);
    assert_eq!(key, "delay.10");
    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), record(1), publish(&key, 2)]
    );
    let outcome = only_outcome(&runner);
    let record = replied_record(ReplyStatus::Error);
    let retry_in = Some(BASE_SECS);
    assert_outcome(
        &outcome,
        1,
        AsyncStatus::Queued,
        record,
        retry_in,
        (before, after),
    );
    assert!(outcome.destination.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_call_that_no_worker_answered_is_a_failed_attempt_retried_after_a_doubled_delay() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(2))));
    runner.backend.calls.push(CallReply {
        takes: Duration::from_secs(1),
        result: Ok(Called {
            invocation_id: ID,
            duration_ms: 7000.0,
            timeout_s: 5,
            outcome: Err(NoReply::TimedOut),
        }),
    });

    let before = Utc::now();
    assert_eq!(runner.handle(job(2)).await, Disposition::Ack);
    let after = Utc::now();

    assert_eq!(
        runner.backend.ops(),
        [
            claim(2),
            find(NAME),
            call(2),
            record(2),
            publish("delay.20", 3)
        ]
    );
    let record = AttemptRecord {
        outcome: "no_reply".into(),
        duration_ms: Some(7000.0),
        ..not_run("NoReply", "no worker answered before the call's deadline")
    };
    let outcome = only_outcome(&runner);
    assert_outcome(
        &outcome,
        2,
        AsyncStatus::Queued,
        record,
        Some(2 * BASE_SECS),
        (before, after),
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_job_is_not_published_gives_the_delivery_back_once_recorded() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Error));
    runner
        .backend
        .publishes
        .push(Err(BrokerError::Overloaded("full".into())));

    // Redelivered, the job finds the retry due and publishes it again.
    assert_eq!(runner.handle(job(1)).await, Disposition::Requeue);
    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            call(1),
            record(1),
            publish("delay.10", 2)
        ]
    );
    assert_eq!(only_outcome(&runner).next_status, AsyncStatus::Queued);
}

#[tokio::test(start_paused = true)]
async fn the_last_failure_is_dead_lettered_and_its_on_failure_destination_published() {
    let runner = runner(with_function(Function {
        on_failure: Some("alerts".into()),
        ..Function::example()
    }));
    runner.backend.add_function(Function {
        id: 7,
        name: "alerts".into(),
        ..Function::example()
    });
    // `max_retries` 2: attempt 3 is the last.
    runner.backend.claims.push(Ok(Some(claimed(3))));
    runner.backend.calls.push(answered(ReplyStatus::Error));
    runner.backend.records.push(Ok(Recorded::Stored {
        destination: Some(DESTINATION_ID),
    }));
    // The dead queue's copy is a convenience: the row has the outcome, and the job is acked.
    runner
        .backend
        .publishes
        .push(Err(BrokerError::Disconnected));

    let before = Utc::now();
    assert_eq!(runner.handle(job(3)).await, Disposition::Ack);
    let after = Utc::now();

    assert_eq!(
        runner.backend.ops(),
        [
            claim(3),
            find(NAME),
            call(3),
            find("alerts"),
            record(3),
            publish(Topology::ASYNC_DEAD_KEY, 3),
            Op::PublishAttempt {
                job: AsyncJob::new(DESTINATION_ID, 1)
            },
        ]
    );
    let outcome = only_outcome(&runner);
    let record = replied_record(ReplyStatus::Error);
    assert_outcome(
        &outcome,
        3,
        AsyncStatus::DeadLettered,
        record,
        None,
        (before, after),
    );
    let destination = outcome.destination.expect("the destination invocation");
    assert_eq!(destination.id.get_version_num(), 7);
    assert_eq!(destination.namespace, NS);
    assert_eq!(destination.function_id, 7);
    assert_eq!(destination.function_name, "alerts");
    assert_eq!(destination.mode, Mode::Async);
    assert_eq!(
        destination.idempotency_key.as_deref(),
        Some(format!("\ndestination:{ID}:3").as_str())
    );
    assert_eq!(destination.chain_depth, 1);
    let event: Value = serde_json::from_str(&destination.event).unwrap();
    assert_eq!(
        event,
        json!({
            "source": "destination",
            "invocation_id": ID,
            "function": NAME,
            "status": "dead_lettered",
            "event": {"n": 1},
            "error": {"type": "ValueError", "message": "bad input", "stack": ""},
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_goes_to_its_on_success_destination_even_when_publishing_it_fails() {
    let runner = runner(with_function(Function {
        on_success: Some("audit".into()),
        ..Function::example()
    }));
    runner.backend.add_function(Function {
        id: 9,
        name: "audit".into(),
        ..Function::example()
    });
    let row = AsyncState {
        chain_depth: 4,
        ..claimed(1)
    };
    runner.backend.claims.push(Ok(Some(row)));
    runner.backend.calls.push(answered(ReplyStatus::Success));
    runner.backend.records.push(Ok(Recorded::Stored {
        destination: Some(DESTINATION_ID),
    }));
    // The destination's row is stored with the outcome: the sweeper publishes it later.
    runner
        .backend
        .publish_attempts
        .push(Err(BrokerError::Disconnected));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    let published = Op::PublishAttempt {
        job: AsyncJob::new(DESTINATION_ID, 1),
    };
    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            call(1),
            find("audit"),
            record(1),
            published
        ]
    );
    let destination = only_outcome(&runner).destination.expect("a destination");
    assert_eq!(destination.function_id, 9);
    assert_eq!(destination.chain_depth, 5);
    let event: Value = serde_json::from_str(&destination.event).unwrap();
    assert_eq!(event["status"], "succeeded");
    assert_eq!(event["result"], json!({"ok": true}));
}

#[tokio::test(start_paused = true)]
async fn a_destination_that_does_not_exist_is_left_out_of_the_recorded_outcome() {
    let runner = runner(with_function(Function {
        on_success: Some("gone".into()),
        ..Function::example()
    }));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), find("gone"), record(1)]
    );
    let outcome = only_outcome(&runner);
    assert_eq!(outcome.next_status, AsyncStatus::Succeeded);
    assert!(outcome.destination.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_chain_of_destinations_too_long_invokes_none() {
    let runner = runner(with_function(Function {
        on_success: Some("audit".into()),
        ..Function::example()
    }));
    runner.backend.add_function(Function {
        name: "audit".into(),
        ..Function::example()
    });
    let row = AsyncState {
        chain_depth: plan::MAX_CHAIN_DEPTH,
        ..claimed(1)
    };
    runner.backend.claims.push(Ok(Some(row)));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    // The destination is not even looked up.
    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), record(1)]
    );
    assert!(only_outcome(&runner).destination.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_attempt_of_a_deleted_function_is_dead_lettered_without_a_call() {
    let runner = runner(FakeBackend::default());
    runner.backend.claims.push(Ok(Some(claimed(1))));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            record(1),
            publish(Topology::ASYNC_DEAD_KEY, 1)
        ]
    );
    let outcome = only_outcome(&runner);
    assert_eq!(outcome.attempt, 1);
    assert_eq!(outcome.next_status, AsyncStatus::DeadLettered);
    assert_eq!(
        outcome.record,
        not_run("FunctionNotFound", "function hello was deleted")
    );
    assert_eq!(outcome.function_version, None);
    assert_eq!(outcome.runtime, None);
    assert_eq!(outcome.due_back, None);
    assert!(outcome.destination.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_invocation_older_than_its_max_event_age_is_dead_lettered_before_its_call() {
    let runner = runner(with_function(Function {
        max_event_age_secs: 60,
        ..Function::example()
    }));
    let row = AsyncState {
        created_at: Utc::now() - chrono::Duration::seconds(120),
        ..claimed(1)
    };
    runner.backend.claims.push(Ok(Some(row)));

    let before = Utc::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);
    let after = Utc::now();

    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            record(1),
            publish(Topology::ASYNC_DEAD_KEY, 1)
        ]
    );
    let outcome = only_outcome(&runner);
    let record = not_run(
        "EventAgeExceeded",
        "the invocation is 120 s old, over max_event_age_secs 60",
    );
    assert_outcome(
        &outcome,
        1,
        AsyncStatus::DeadLettered,
        record,
        None,
        (before, after),
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_call_is_a_failed_attempt_recorded_unrun_and_retried() {
    let runner = runner(with_function(Function::example()));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    let error = NotRunnable::BuildFailed {
        name: NAME.into(),
        log_tail: "no such package".into(),
    };
    let message = CallError::from(error.clone()).to_string();
    runner.backend.calls.push(refused(error));

    let before = Utc::now();
    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);
    let after = Utc::now();

    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            call(1),
            record(1),
            publish("delay.10", 2)
        ]
    );
    let outcome = only_outcome(&runner);
    let record = not_run("build_failed", &message);
    let retry_in = Some(BASE_SECS);
    assert_outcome(
        &outcome,
        1,
        AsyncStatus::Queued,
        record,
        retry_in,
        (before, after),
    );
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_invocation_is_called_as_such_and_a_broken_event_as_an_empty_one() {
    let runner = runner(with_function(Function::example()));
    let row = AsyncState {
        mode: Mode::Schedule,
        event: "not json".into(),
        ..claimed(1)
    };
    runner.backend.claims.push(Ok(Some(row)));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            find(NAME),
            call_of(1, Trigger::Schedule, "{}"),
            record(1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_recorded_by_another_copy_publishes_nothing() {
    let runner = runner(with_function(Function {
        on_failure: Some("alerts".into()),
        ..Function::example()
    }));
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Error));
    runner.backend.records.push(Ok(Recorded::AlreadyRecorded));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);

    assert_eq!(
        runner.backend.ops(),
        [claim(1), find(NAME), call(1), record(1)]
    );
    assert_eq!(only_outcome(&runner).next_status, AsyncStatus::Queued);
}
