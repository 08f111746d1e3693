//! The shares' decisions, step by step, and the slots' wake-ups on tokio's paused clock.

use super::*;

const SEC: Duration = Duration::from_secs(1);

/// `shares` with `n` jobs of `namespace` admitted to run.
fn running(shares: &mut Shares, namespace: &str, n: usize) {
    for _ in 0..n {
        assert_eq!(shares.admit(namespace), Admission::Run);
    }
}

#[test]
fn a_namespace_alone_uses_every_slot_keeps_a_few_jobs_ready_and_sets_the_rest_aside() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    assert_eq!(shares.share("a"), 4);
    // Half the look-ahead (as many as the slots) waits ready for the next slot.
    let Admission::Wait(ready) = shares.admit("a") else {
        panic!("a keeps a job ready");
    };
    assert!(matches!(shares.admit("a"), Admission::Wait(_)));
    assert_eq!(shares.admit("a"), Admission::SetAside);
    // A slot frees up: a ready job takes it at once.
    assert_eq!(shares.release("a", SEC), Some(ready));
    assert_eq!(shares.standing(ready, "a"), Standing::Granted);
    assert_eq!(shares.running_of("a"), 4);
}

#[test]
fn another_namespace_waits_for_the_next_slot_and_gets_it_before_the_backlog() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    let Admission::Wait(b) = shares.admit("b") else {
        panic!("b waits for a slot");
    };
    // Two namespaces want slots: a's share is two, and it holds four; it keeps one job ready
    // (a quarter of the look-ahead), the rest is set aside.
    assert_eq!(shares.share("a"), 2);
    let Admission::Wait(a_ready) = shares.admit("a") else {
        panic!("a keeps one job ready");
    };
    assert_eq!(shares.admit("a"), Admission::SetAside);
    assert_eq!(shares.standing(b, "b"), Standing::Waiting);
    // a's first call to end gives its slot to b (none running), not to a's ready job.
    assert_eq!(shares.release("a", SEC), Some(b));
    assert_eq!(shares.standing(b, "b"), Standing::Granted);
    assert_eq!(shares.standing(a_ready, "a"), Standing::Waiting);
    // a, over its share of two, has its ready job and no more.
    assert_eq!(shares.admit("a"), Admission::SetAside);
    // With nobody else waiting, a's next freed slot goes to its ready job.
    assert_eq!(shares.release("a", SEC), Some(a_ready));
    assert_eq!(shares.release("a", SEC), None);
    // A slot is free: a job runs, whichever namespace it is of (nobody waits).
    assert_eq!(shares.admit("a"), Admission::Run);
}

#[test]
fn a_namespace_waits_for_at_most_its_share_and_the_rest_is_set_aside() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    let Admission::Wait(b1) = shares.admit("b") else {
        panic!("b waits");
    };
    let Admission::Wait(b2) = shares.admit("b") else {
        panic!("b waits");
    };
    // b's share is two: two waiting is all it may.
    assert_eq!(shares.admit("b"), Admission::SetAside);
    assert_eq!(shares.release("a", SEC), Some(b1));
    assert_eq!(shares.release("a", SEC), Some(b2));
    assert_eq!(shares.running_of("a"), 2);
    assert_eq!(shares.running_of("b"), 2);
}

#[test]
fn a_freed_slot_goes_to_the_waiting_namespace_that_runs_the_fewest() {
    let mut shares = Shares::new(6);
    running(&mut shares, "a", 4);
    running(&mut shares, "b", 1);
    running(&mut shares, "c", 1);
    // Three namespaces: a share of two each.
    let Admission::Wait(b) = shares.admit("b") else {
        panic!("b waits");
    };
    let Admission::Wait(d) = shares.admit("d") else {
        panic!("d waits");
    };
    // d (none running) before b (one running), although b came first.
    assert_eq!(shares.release("a", SEC), Some(d));
    assert_eq!(shares.release("a", SEC), Some(b));
    assert_eq!(shares.release("c", SEC), None);
}

#[test]
fn a_waiting_job_whose_share_shrank_below_what_its_namespace_holds_stops_waiting() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    let Admission::Wait(b1) = shares.admit("b") else {
        panic!("b waits");
    };
    let Admission::Wait(b2) = shares.admit("b") else {
        panic!("b waits");
    };
    // c and d come: four namespaces, a share of one each; b waits with two.
    assert!(matches!(shares.admit("c"), Admission::Wait(_)));
    assert!(matches!(shares.admit("d"), Admission::Wait(_)));
    assert_eq!(shares.share("b"), 1);
    assert_eq!(shares.standing(b1, "b"), Standing::OverShare);
    // b holds one now (b2, waiting): within its share.
    assert_eq!(shares.standing(b2, "b"), Standing::Waiting);
}

#[test]
fn a_withdrawn_job_frees_the_slot_it_was_given_to_the_next_waiting() {
    let mut shares = Shares::new(2);
    running(&mut shares, "a", 2);
    let Admission::Wait(b) = shares.admit("b") else {
        panic!("b waits");
    };
    let Admission::Wait(c) = shares.admit("c") else {
        panic!("c waits");
    };
    assert_eq!(shares.release("a", SEC), Some(b));
    // b stops before it saw its slot: c gets it.
    assert_eq!(shares.withdraw(b, "b"), Some(c));
    assert_eq!(shares.standing(c, "c"), Standing::Granted);
    // A job that withdraws while still waiting frees nothing.
    let Admission::Wait(d) = shares.admit("d") else {
        panic!("d waits");
    };
    assert_eq!(shares.withdraw(d, "d"), None);
    assert_eq!(shares.running_total(), 2);
    assert!(shares.waiting.is_empty());
}

#[test]
fn one_slot_is_shared_by_turns() {
    let mut shares = Shares::new(1);
    running(&mut shares, "a", 1);
    assert_eq!(shares.share("b"), 1);
    let Admission::Wait(b) = shares.admit("b") else {
        panic!("b waits for the one slot");
    };
    // One job of each may wait, no more.
    assert!(matches!(shares.admit("a"), Admission::Wait(_)));
    assert_eq!(shares.admit("a"), Admission::SetAside);
    assert_eq!(shares.admit("b"), Admission::SetAside);
    // b came first, and both run none.
    assert_eq!(shares.release("a", SEC), Some(b));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_job_is_woken_when_a_slot_frees_up_and_slots_are_released_when_dropped() {
    let slots = FairSlots::new(1);
    let Admit::Run(a) = slots.admit("a") else {
        panic!("a runs");
    };
    let Admit::Wait(b) = slots.admit("b") else {
        panic!("b waits");
    };
    let b = match b.look() {
        Looked::Waiting(b) => b,
        _ => panic!("no slot yet"),
    };
    let waiter = tokio::spawn(async move {
        b.woken().await;
        match b.look() {
            Looked::Granted(slot) => slot,
            _ => panic!("woken with a slot"),
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiter.is_finished());
    drop(a);
    let b_slot = waiter.await.unwrap();
    assert!(matches!(slots.admit("c"), Admit::Wait(_)));
    // c's waiting place was dropped (withdrawn): with b's slot gone, the slot is free.
    drop(b_slot);
    assert!(matches!(slots.admit("c"), Admit::Run(_)));
    let inner = slots.lock();
    assert_eq!(inner.shares.running_total(), 0);
    assert!(inner.wakers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_waiting_job_dropped_after_it_was_given_a_slot_passes_the_slot_on() {
    let slots = FairSlots::new(1);
    let Admit::Run(a) = slots.admit("a") else {
        panic!("a runs");
    };
    let Admit::Wait(b) = slots.admit("b") else {
        panic!("b waits");
    };
    let Admit::Wait(c) = slots.admit("c") else {
        panic!("c waits");
    };
    drop(a);
    // b was given the slot but stops before it looks.
    drop(b);
    tokio::time::timeout(Duration::from_secs(1), c.woken())
        .await
        .expect("c is woken");
    assert!(matches!(c.look(), Looked::Granted(_)));
    assert_eq!(slots.lock().shares.running_total(), 0);
}

#[test]
fn a_set_aside_job_whose_namespaces_pace_is_unknown_backs_off_doubling() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    let now = Instant::now();
    let delays: Vec<u64> = [0, 1, 2, 3, 8, 20]
        .into_iter()
        .map(|deferred| shares.defer_secs("a", deferred, now))
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 256, 256]);
}

#[test]
fn a_set_aside_job_comes_back_when_its_turn_may_have_come() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    // a's calls take 3 s; it still runs four.
    assert_eq!(shares.release("a", 3 * SEC), None);
    running(&mut shares, "a", 1);
    let now = Instant::now();
    // Long set aside before: its back-off allows 256 s. Each four jobs due back before it take
    // a turn of 3 s on a's four slots; rounded down to a delay queue's.
    let delays: Vec<u64> = (0..13).map(|_| shares.defer_secs("a", 10, now)).collect();
    assert_eq!(delays, [2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8, 8]);
    // Never more than twice its last delay.
    assert_eq!(shares.defer_secs("a", 1, now), 2);
    // Once those jobs are due back, they no longer count ahead of the next.
    assert_eq!(shares.defer_secs("a", 10, now + 9 * SEC), 2);
    // Another namespace's pace and jobs are its own.
    assert_eq!(shares.defer_secs("b", 10, now), 256);
}

#[test]
fn a_namespaces_pace_follows_its_recent_calls() {
    let mut shares = Shares::new(1);
    running(&mut shares, "a", 1);
    let now = Instant::now();
    assert_eq!(shares.release("a", 100 * SEC), None);
    running(&mut shares, "a", 1);
    assert_eq!(shares.defer_secs("a", 10, now), 64);
    // Its calls became short: after a few, its jobs come back sooner.
    for _ in 0..30 {
        assert_eq!(shares.release("a", SEC), None);
        running(&mut shares, "a", 1);
    }
    assert_eq!(shares.defer_secs("a", 10, now + 200 * SEC), 1);
}
