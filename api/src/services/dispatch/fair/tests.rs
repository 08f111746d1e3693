//! The shares' decisions, step by step, and the slots' wake-ups on tokio's paused clock.

use super::*;
use std::time::Duration;

/// `shares` with `n` jobs of `namespace` admitted to run.
fn running(shares: &mut Shares, namespace: &str, n: usize) {
    for _ in 0..n {
        assert_eq!(shares.admit(namespace), Admission::Run);
    }
}

#[test]
fn a_namespace_alone_uses_every_slot_then_its_jobs_are_set_aside() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    assert_eq!(shares.share("a"), 4);
    assert_eq!(shares.admit("a"), Admission::SetAside);
    // Its slots free up: its next jobs run again.
    assert_eq!(shares.release("a"), None);
    assert_eq!(shares.admit("a"), Admission::Run);
}

#[test]
fn another_namespace_waits_for_the_next_slot_and_gets_it_before_the_backlog() {
    let mut shares = Shares::new(4);
    running(&mut shares, "a", 4);
    let Admission::Wait(b) = shares.admit("b") else {
        panic!("b waits for a slot");
    };
    // Two namespaces want slots: a's share is two, and it holds four.
    assert_eq!(shares.share("a"), 2);
    assert_eq!(shares.admit("a"), Admission::SetAside);
    assert_eq!(shares.standing(b, "b"), Standing::Waiting);
    // a's first call to end gives its slot to b.
    assert_eq!(shares.release("a"), Some(b));
    assert_eq!(shares.standing(b, "b"), Standing::Granted);
    // a still holds three, over its share of two: its next jobs are set aside while b has some.
    assert_eq!(shares.admit("a"), Admission::SetAside);
    assert_eq!(shares.release("a"), None);
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
    assert_eq!(shares.release("a"), Some(b1));
    assert_eq!(shares.release("a"), Some(b2));
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
    assert_eq!(shares.release("a"), Some(d));
    assert_eq!(shares.release("a"), Some(b));
    assert_eq!(shares.release("c"), None);
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
    assert_eq!(shares.release("a"), Some(b));
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
    assert_eq!(shares.admit("a"), Admission::SetAside);
    assert_eq!(shares.admit("b"), Admission::SetAside);
    assert_eq!(shares.release("a"), Some(b));
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
