//! How a call that finds no idle container waits for one, with the fake launcher held like a
//! slow daemon: a burst shares the first container ready, a call never waits for a start
//! while one of its function's containers is idle, a start not yet launched is abandoned, and
//! another container is started only when waiting its turn would take longer.

use super::fake::{FakeLauncher, settings, settle, spec};
use super::tests::cold;
use super::*;
use common::FunctionSpec;

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

/// Runs `calls` acquisitions of `f` side by side, each giving its container back at once (a
/// call of no time); the containers each got.
async fn burst(pool: &Arc<Pool<FakeLauncher>>, f: &FunctionSpec, calls: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let (pool, f) = (pool.clone(), f.clone());
            tokio::spawn(async move {
                let mut lease = pool.acquire(&f, 128, far()).await.expect("a container");
                let id = lease.container().id().to_owned();
                lease.release(Health::Sound).await;
                id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids
}

#[tokio::test]
async fn a_call_never_waits_for_a_start_while_a_container_of_its_function_is_idle() {
    let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(1024)));
    let f = spec(1, 1, 128);
    let first = cold(&pool, &f).await;
    let first_id = first.container.id.clone();
    // The daemon is slow now: the call's own start is launched, and held there.
    pool.launcher().hold_launches();
    let call = tokio::spawn({
        let (pool, f) = (pool.clone(), f.clone());
        async move {
            let mut lease = pool.acquire(&f, 128, far()).await.unwrap();
            let got = (lease.container().id().to_owned(), lease.acquisition());
            lease.release(Health::Sound).await;
            got
        }
    });
    while pool.starting.available_permits() == pool.settings.max_starting {
        tokio::task::yield_now().await;
    }
    // A container of the function comes back: the call takes it, its start still held.
    pool.put_idle(first);
    let (id, acquisition) = call.await.unwrap();
    assert_eq!(id, first_id);
    assert_eq!(acquisition.cold_start, None, "served warm");
    assert_eq!(
        pool.launcher().launched().len(),
        1,
        "the start is still held"
    );
    // Its start goes on, and its container is kept for the next call.
    pool.launcher().let_launch(1);
    for _ in 0..100 {
        if pool.idle_count() == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.idle_count(), 2);
    assert_eq!(pool.launcher().launched().len(), 2);
    assert!(pool.launcher().removed().is_empty());
}

#[tokio::test]
async fn a_start_not_yet_launched_is_abandoned_when_its_call_is_served() {
    let mut one_at_a_time = settings(1024);
    one_at_a_time.max_starting = 1;
    let pool = Arc::new(Pool::new(FakeLauncher::default(), one_at_a_time));
    let (f, g) = (spec(1, 1, 128), spec(2, 1, 128));
    let first = cold(&pool, &f).await;
    pool.launcher().hold_launches();
    // g's start takes the only start slot and is held by the daemon; f's waits for the slot.
    let g_call = tokio::spawn({
        let (pool, g) = (pool.clone(), g.clone());
        async move {
            let lease = pool.acquire(&g, 128, far()).await.unwrap();
            lease.release(Health::Sound).await;
        }
    });
    while pool.starting.available_permits() == 1 {
        tokio::task::yield_now().await;
    }
    let f_call = tokio::spawn({
        let (pool, f) = (pool.clone(), f.clone());
        async move {
            let mut lease = pool.acquire(&f, 128, far()).await.unwrap();
            let id = lease.container().id().to_owned();
            lease.release(Health::Sound).await;
            id
        }
    });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        pool.memory_used_mb(),
        3 * 128,
        "f's start holds room, waiting for a slot"
    );
    let first_id = first.container.id.clone();
    pool.put_idle(first);
    assert_eq!(f_call.await.unwrap(), first_id);
    pool.launcher().let_launch(10);
    g_call.await.unwrap();
    settle().await;
    let launched = pool.launcher().launched();
    assert_eq!(launched.len(), 2, "f's start never launched: {launched:?}");
    assert_eq!(pool.memory_used_mb(), 2 * 128, "its room is free again");
}

#[tokio::test]
async fn a_burst_of_first_calls_shares_the_first_container_ready() {
    let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(64 * 128)));
    let f = spec(1, 1, 128);
    pool.launcher().hold_launches();
    let calls = tokio::spawn({
        let (pool, f) = (pool.clone(), f.clone());
        async move { burst(&pool, &f, 64).await }
    });
    while pool.starting.available_permits() > 0 {
        tokio::task::yield_now().await;
    }
    // One container gets through: all 64 calls are served by it.
    pool.launcher().let_launch(1);
    let ids = calls.await.unwrap();
    assert_eq!(ids.len(), 64);
    let launched = pool.launcher().launched();
    assert_eq!(launched.len(), 1);
    assert!(ids.iter().all(|id| *id == launched[0]), "{ids:?}");
    // No more starts were in flight than may start at once, not one per call.
    pool.launcher().let_launch(64);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let launched = pool.launcher().launched().len();
    assert!(
        launched <= 1 + pool.settings.max_starting,
        "{launched} containers for one burst"
    );
    assert_eq!(pool.idle_count(), launched, "each kept warm");
}

#[tokio::test]
async fn a_call_of_a_busy_function_waits_the_warm_wait_before_starting_its_own() {
    let mut patient = settings(1024);
    patient.warm_wait = Duration::from_secs(3600);
    let pool = Arc::new(Pool::new(FakeLauncher::default(), patient));
    let f = spec(1, 1, 128);
    let mut running = pool.acquire(&f, 128, far()).await.unwrap();
    let running_id = running.container().id().to_owned();
    let waiting = tokio::spawn({
        let (pool, f) = (pool.clone(), f.clone());
        async move {
            let mut lease = pool.acquire(&f, 128, far()).await.unwrap();
            lease.container().id().to_owned()
        }
    });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        pool.launcher().launched().len(),
        1,
        "no start while one runs"
    );
    running.release(Health::Sound).await;
    assert_eq!(waiting.await.unwrap(), running_id);
    assert_eq!(pool.launcher().launched().len(), 1);
}

#[tokio::test]
async fn an_overlapping_call_starts_its_own_container_only_when_waiting_its_turn_takes_longer() {
    let mut no_floor = settings(1024);
    no_floor.warm_wait = Duration::ZERO;
    let pool = Arc::new(Pool::new(FakeLauncher::default(), no_floor));
    let (fast, slow) = (spec(1, 1, 128), spec(2, 1, 128));
    let mut fast_running = pool.acquire(&fast, 128, far()).await.unwrap();
    let mut slow_running = pool.acquire(&slow, 128, far()).await.unwrap();
    {
        let mut state = pool.state.lock().unwrap();
        state.start_time = Duration::from_secs(3600);
        state.call_time.insert((1, 1), Duration::from_millis(1));
        state.call_time.insert((2, 1), Duration::from_secs(7200));
    }
    let call = |f: &FunctionSpec| {
        let (pool, f) = (pool.clone(), f.clone());
        tokio::spawn(async move {
            let mut lease = pool.acquire(&f, 128, far()).await.unwrap();
            lease.container().id().to_owned()
        })
    };
    // A call of the slow function would wait two hours for its turn: it starts its own.
    let slow_id = slow_running.container().id().to_owned();
    assert_ne!(call(&slow).await.unwrap(), slow_id);
    // One of the fast function waits for its turn (a millisecond), not for an hour's start.
    let fast_call = call(&fast);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        pool.launcher().launched().len(),
        3,
        "no start for the fast one"
    );
    let fast_id = fast_running.container().id().to_owned();
    fast_running.release(Health::Sound).await;
    assert_eq!(fast_call.await.unwrap(), fast_id);
    slow_running.release(Health::Sound).await;
}
