//! Attempts against the replica's fair shares: set aside when their namespace holds its share,
//! for longer each time; waiting for a slot another namespace frees, renewing the claim; and
//! giving the wait up when stopping or taken over.

use super::*;

/// The slots of `runner`, `n` of them held by jobs of `namespace`.
fn hold(runner: &Runner<FakeBackend>, namespace: &str, n: usize) -> Vec<Slot> {
    (0..n)
        .map(|_| match runner.slots.admit(namespace) {
            Admit::Run(slot) => slot,
            _ => panic!("a free slot"),
        })
        .collect()
}

fn deferred(attempt: u32, times: u32) -> AsyncJob {
    AsyncJob {
        deferred: times,
        ..job(attempt)
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_of_a_namespace_holding_every_slot_is_set_aside_for_longer_each_time() {
    for (times, delay_secs) in [(0, 1), (1, 2), (3, 8), (8, 256), (40, 256)] {
        let runner = runner(with_function(Function::example()));
        // The replica's four slots run jobs of the same namespace, two more wait ready.
        let _held = hold(&runner, NS, 4);
        let _ready: Vec<_> = (0..2)
            .map(|_| match runner.slots.admit(NS) {
                Admit::Wait(waiting) => waiting,
                _ => panic!("a job waits ready"),
            })
            .collect();
        runner.backend.claims.push(Ok(Some(claimed(1))));

        let before = Utc::now();
        assert_eq!(runner.handle(deferred(1, times)).await, Disposition::Ack);
        let after = Utc::now();

        let ops = runner.backend.ops();
        assert_eq!(ops.len(), 3, "{ops:?}");
        // Not called: the same attempt, once more set aside, to the delay queue.
        let key = Topology::delay_routing_key(delay_secs);
        assert_eq!(
            ops[..2],
            [
                claim(1),
                Op::Publish {
                    key,
                    job: deferred(1, times + 1)
                }
            ]
        );
        let Op::Unclaim { due_back, .. } = ops[2] else {
            panic!("the attempt is unclaimed: {ops:?}");
        };
        let delay = chrono::Duration::seconds(delay_secs as i64);
        assert!(before + delay <= due_back && due_back <= after + delay);
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_of_another_namespace_waits_for_the_next_slot_renewing_its_claim() {
    let runner = Arc::new(runner(with_function(Function::example())));
    let mut held = hold(&runner, "backlog", 4);
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.calls.push(answered(ReplyStatus::Success));

    let handled = tokio::spawn({
        let runner = runner.clone();
        async move { runner.handle(job(1)).await }
    });
    // The backlog's calls run on for 12 s: the waiting job renews its claim twice.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(!handled.is_finished());
    // Meanwhile the backlog's next jobs are set aside (two namespaces want slots), but for
    // one ready.
    let Admit::Wait(ready) = runner.slots.admit("backlog") else {
        panic!("the backlog keeps one job ready");
    };
    assert!(matches!(runner.slots.admit("backlog"), Admit::SetAside));
    let waited = tokio::time::Instant::now();
    // The slot goes to the job of the namespace running none, not to the backlog's.
    held.pop();
    assert_eq!(handled.await.unwrap(), Disposition::Ack);

    // It ran as soon as the slot was free (its call took 10 ms).
    assert_eq!(waited.elapsed(), Duration::from_millis(10));
    let extend = Op::ExtendClaim { id: ID, attempt: 1 };
    assert_eq!(
        runner.backend.ops(),
        [
            claim(1),
            extend.clone(),
            extend,
            find(NAME),
            call(1),
            record(1)
        ]
    );
    assert_eq!(only_outcome(&runner).next_status, AsyncStatus::Succeeded);
    // Its slot is back, to the backlog's ready job.
    assert!(matches!(ready.look(), Looked::Granted(_)));
}

#[tokio::test(start_paused = true)]
async fn a_job_waiting_for_a_slot_gives_it_back_when_the_runner_stops() {
    let runner = Arc::new(runner(with_function(Function::example())));
    let held = hold(&runner, "backlog", 4);
    runner.backend.claims.push(Ok(Some(claimed(1))));

    let handled = tokio::spawn({
        let runner = runner.clone();
        async move { runner.handle(job(1)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    runner.stop.cancel();
    assert_eq!(handled.await.unwrap(), Disposition::Requeue);
    assert_eq!(runner.backend.ops(), [claim(1), release(1)]);

    // It waits no more: the four slots, freed, are all free.
    drop(held);
    assert_eq!(hold(&runner, "backlog", 4).len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_job_waiting_for_a_slot_whose_attempt_was_taken_over_is_dropped() {
    let runner = Arc::new(runner(with_function(Function::example())));
    let _held = hold(&runner, "backlog", 4);
    runner.backend.claims.push(Ok(Some(claimed(1))));
    runner.backend.extends.push(Ok(false));

    assert_eq!(runner.handle(job(1)).await, Disposition::Ack);
    assert_eq!(
        runner.backend.ops(),
        [claim(1), Op::ExtendClaim { id: ID, attempt: 1 }]
    );
    assert!(runner.backend.outcomes().is_empty());
}
