//! The pool's scheduling, with the fake launcher: reuse, room, eviction, retirement, waits
//! and stem cells.

use super::fake::{Fake, FakeLauncher, settings, settle, spec};
use super::*;
use common::FunctionSpec;
use tokio_util::sync::CancellationToken;

fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_millis(50)
}

fn ns(name: &str) -> Namespace {
    Namespace::from(name)
}

/// A container of `spec`, started in room reserved for it.
pub(super) async fn cold(pool: &Pool<FakeLauncher>, spec: &FunctionSpec) -> Slot<Fake> {
    let namespace = Namespace::from(spec.namespace.as_str());
    let room = pool
        .reserve(spec.memory_mb, &namespace, soon())
        .await
        .expect("room");
    pool.start(
        spec.language,
        spec.memory_mb,
        Some(spec),
        &Mounts::default(),
        room,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn warm_containers_are_reused_most_recently_used_first() {
    let pool = Pool::new(FakeLauncher::default(), settings(1024));
    let f = spec(1, 1, 128);
    let a = cold(&pool, &f).await;
    let b = cold(&pool, &f).await;
    let (a_id, b_id) = (a.container.id.clone(), b.container.id.clone());
    pool.put_idle(a);
    pool.put_idle(b);
    assert_eq!(pool.take_idle((1, 1)).unwrap().container.id, b_id);
    assert_eq!(pool.take_idle((1, 1)).unwrap().container.id, a_id);
    assert!(pool.take_idle((1, 1)).is_none());
    assert!(pool.take_idle((2, 1)).is_none(), "never another function's");
}

#[tokio::test]
async fn room_is_the_memory_budget_not_a_count() {
    let pool = Pool::new(FakeLauncher::default(), settings(512));
    let big = spec(1, 1, 384);
    let busy_big = cold(&pool, &big).await;
    assert_eq!(pool.memory_used_mb(), 384);
    // 128 more fits; 256 does not, and nothing idle can be evicted.
    let small = cold(&pool, &spec(2, 1, 128)).await;
    assert!(pool.reserve(256, &ns("default"), soon()).await.is_none());
    assert_eq!(pool.memory_used_mb(), 512);
    drop(small);
    drop(busy_big);
    assert_eq!(
        pool.memory_used_mb(),
        0,
        "dropped slots give their room back"
    );
}

#[tokio::test]
async fn a_cold_start_evicts_the_least_recently_used_idle_containers_only_when_enough() {
    let pool = Pool::new(FakeLauncher::default(), settings(512));
    let older = cold(&pool, &spec(1, 1, 128)).await;
    let newer = cold(&pool, &spec(2, 1, 128)).await;
    let busy = cold(&pool, &spec(3, 1, 256)).await;
    let (older_id, newer_id) = (older.container.id.clone(), newer.container.id.clone());
    pool.put_idle(older);
    tokio::time::sleep(Duration::from_millis(2)).await;
    pool.put_idle(newer);

    // 512 MB would need the busy one too: nothing is evicted for nothing.
    assert!(pool.reserve(512, &ns("default"), soon()).await.is_none());
    assert_eq!(pool.idle_count(), 2);

    // 128 MB: the least recently used idle container goes, the other stays warm.
    let room = pool
        .reserve(128, &ns("default"), soon())
        .await
        .expect("room after eviction");
    settle().await;
    assert_eq!(pool.launcher().removed(), vec![older_id]);
    assert_eq!(pool.take_idle((2, 1)).unwrap().container.id, newer_id);
    drop((room, busy));
}

#[tokio::test]
async fn a_new_functions_call_evicts_a_spare_container_before_another_functions_last_one() {
    let pool = Pool::new(FakeLauncher::default(), settings(384));
    let (steady, busier) = (spec(1, 1, 128), spec(2, 1, 128));
    let last = cold(&pool, &steady).await;
    let last_id = last.container.id.clone();
    pool.put_idle(last);
    // The busier function had two calls at once; both containers came back after the other.
    let (first, second) = (cold(&pool, &busier).await, cold(&pool, &busier).await);
    let spare_id = first.container.id.clone();
    pool.put_idle(first);
    pool.put_idle(second);

    let room = pool
        .reserve(128, &ns("default"), soon())
        .await
        .expect("room after eviction");
    settle().await;
    assert_eq!(
        pool.launcher().removed(),
        vec![spare_id],
        "not the least recently used"
    );
    assert_eq!(pool.take_idle((1, 1)).unwrap().container.id, last_id);
    assert!(pool.take_idle((2, 1)).is_some(), "the busier one keeps one");
    drop(room);
}

#[tokio::test]
async fn a_call_waits_for_room_until_a_container_goes_and_gives_up_at_its_time() {
    let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(256)));
    let busy = cold(&pool, &spec(1, 1, 256)).await;
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move {
            let until = tokio::time::Instant::now() + Duration::from_secs(5);
            pool.reserve(128, &ns("default"), until).await.is_some()
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "no room while the busy one runs");
    pool.discard(busy);
    assert!(
        waiting.await.unwrap(),
        "the freed room went to the waiting call"
    );

    let _full = cold(&pool, &spec(2, 1, 256)).await;
    let started = tokio::time::Instant::now();
    assert!(pool.reserve(128, &ns("default"), soon()).await.is_none());
    assert!(started.elapsed() >= Duration::from_millis(45));
}

#[tokio::test]
async fn the_container_cap_holds_besides_the_budget() {
    let mut capped = settings(10_000);
    capped.max_containers = 2;
    let pool = Pool::new(FakeLauncher::default(), capped);
    let _a = cold(&pool, &spec(1, 1, 64)).await;
    let b = cold(&pool, &spec(2, 1, 64)).await;
    assert!(pool.reserve(64, &ns("default"), soon()).await.is_none());
    pool.put_idle(b);
    assert!(
        pool.reserve(64, &ns("default"), soon()).await.is_some(),
        "the idle one was evicted"
    );
}

#[tokio::test]
async fn containers_that_died_while_idle_are_never_handed_out() {
    let pool = Pool::new(FakeLauncher::default(), settings(1024));
    let f = spec(1, 1, 128);
    let a = cold(&pool, &f).await;
    let b = cold(&pool, &f).await;
    let (a_id, b_id) = (a.container.id.clone(), b.container.id.clone());
    pool.put_idle(a);
    pool.put_idle(b);
    pool.launcher().kill(&b_id);
    let taken = pool.take_idle((1, 1)).unwrap();
    assert_eq!(taken.container.id, a_id);
    settle().await;
    assert_eq!(pool.launcher().removed(), vec![b_id]);
    assert_eq!(pool.memory_used_mb(), 128, "the dead one's room is free");
    drop(taken);

    // The reaper finds a dead idle one without a call asking.
    let c = cold(&pool, &f).await;
    let c_id = c.container.id.clone();
    pool.put_idle(c);
    pool.launcher().kill(&c_id);
    pool.reap_idle();
    settle().await;
    assert!(pool.launcher().removed().contains(&c_id));
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn a_new_version_retires_the_old_ones_now_and_when_they_come_back() {
    let pool = Pool::new(FakeLauncher::default(), settings(1024));
    let idle_v1 = cold(&pool, &spec(1, 1, 128)).await;
    let busy_v1 = cold(&pool, &spec(1, 1, 128)).await;
    let idle_id = idle_v1.container.id.clone();
    pool.put_idle(idle_v1);
    pool.retire(1, Some(2));
    settle().await;
    assert_eq!(pool.launcher().removed(), vec![idle_id]);
    let busy_id = busy_v1.container.id.clone();
    pool.put_idle(busy_v1);
    settle().await;
    assert!(pool.launcher().removed().contains(&busy_id));
    assert_eq!(pool.idle_count(), 0);

    // A job for version 3 retires version 2 on its own, before any event.
    let v2 = cold(&pool, &spec(1, 2, 128)).await;
    pool.put_idle(v2);
    assert!(pool.take_idle((1, 3)).is_none());
    assert_eq!(pool.idle_count(), 0);
    // Deleted: every version goes.
    let v3 = cold(&pool, &spec(1, 3, 128)).await;
    pool.retire(1, None);
    pool.put_idle(v3);
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn stem_cells_fill_up_are_bound_and_replaced_and_go_last() {
    let mut with_stems = settings(128 * 5);
    with_stems.stem_cells = 2;
    let pool = Arc::new(Pool::new(FakeLauncher::default(), with_stems));
    let stop = CancellationToken::new();
    let filler = tokio::spawn(pool.clone().keep_stem_cells(stop.clone()));
    let wait_for = |language, count| {
        let pool = pool.clone();
        async move {
            for _ in 0..200 {
                if pool.stem_count(language) == count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("{language} stem cells did not reach {count}");
        }
    };
    wait_for(Language::Python, 2).await;
    wait_for(Language::Javascript, 2).await;
    assert_eq!(pool.memory_used_mb(), 512);

    // Only functions of the stem cells' memory can use them.
    assert!(
        pool.take_stem(&StemKind::plain(Language::Python), 256)
            .is_none()
    );
    let mut stem = pool
        .take_stem(&StemKind::plain(Language::Python), 128)
        .expect("a stem cell");
    stem.bind((7, 1), &ns("default"));
    assert_eq!(stem.key(), (7, 1));
    wait_for(Language::Python, 2).await;
    assert_eq!(pool.memory_used_mb(), 640);

    // A warm container is evicted before any stem cell.
    pool.put_idle(stem);
    let room = pool
        .reserve(128, &ns("default"), soon())
        .await
        .expect("room");
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(pool.stem_count(Language::Python), 2);
    // Then stem cells, when nothing else is idle.
    let room2 = pool
        .reserve(128, &ns("default"), soon())
        .await
        .expect("room");
    assert_eq!(
        pool.stem_count(Language::Python) + pool.stem_count(Language::Javascript),
        3
    );
    stop.cancel();
    filler.await.unwrap();
    drop((room, room2));
}

#[tokio::test]
async fn a_dependency_set_gets_stem_cells_once_popular_and_they_mount_it() {
    let mut with_deps = settings(128 * 8);
    with_deps.deps_stem_cells = 1;
    with_deps.deps_stem_sets = 1;
    let pool = Arc::new(Pool::new(FakeLauncher::default(), with_deps));
    let stop = CancellationToken::new();
    let filler = tokio::spawn(pool.clone().keep_stem_cells(stop.clone()));
    let kind = |digest: &str| StemKind {
        language: Language::Python,
        mounts: Mounts {
            deps: Some(digest.to_owned()),
            package: None,
        },
    };
    let ready = |kind: StemKind| {
        let pool = pool.clone();
        async move {
            for _ in 0..200 {
                if !pool.stem_ids(&kind).is_empty() {
                    return pool.stem_ids(&kind);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Vec::new()
        }
    };
    // One cold start is not popularity: no stem cell.
    assert!(pool.take_stem(&kind("aa"), 128).is_none());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(pool.stem_ids(&kind("aa")).is_empty());
    // The second is: a stem cell that mounts the set comes up, and the next cold start
    // binds it.
    assert!(pool.take_stem(&kind("aa"), 128).is_none());
    let ids = ready(kind("aa")).await;
    assert_eq!(ids.len(), 1, "no stem cell for a popular set");
    assert!(ids[0].contains("deps-aa"), "{ids:?}");
    let stem = pool
        .take_stem(&kind("aa"), 128)
        .expect("the set's stem cell");
    assert!(stem.container.id.contains("deps-aa"));
    // Plain stem cells are off here; a set never gets another's stem cell.
    assert!(
        pool.take_stem(&StemKind::plain(Language::Python), 128)
            .is_none()
    );
    // A more demanded set takes the only place; the other's stem cell goes.
    for _ in 0..4 {
        assert!(pool.take_stem(&kind("bb"), 128).is_none());
    }
    assert_eq!(ready(kind("bb")).await.len(), 1);
    for _ in 0..200 {
        if pool.stem_ids(&kind("aa")).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        pool.stem_ids(&kind("aa")).is_empty(),
        "the less demanded set kept its stem cell"
    );
    stop.cancel();
    filler.await.unwrap();
    drop(stem);
}

#[tokio::test]
async fn idle_containers_go_after_their_ttl_and_stem_cells_stay() {
    let mut short = settings(1024);
    short.idle_ttl = Duration::from_millis(30);
    let pool = Pool::new(FakeLauncher::default(), short);
    let slot = cold(&pool, &spec(1, 1, 128)).await;
    let id = slot.container.id.clone();
    pool.put_idle(slot);
    pool.reap_idle();
    assert_eq!(pool.idle_count(), 1, "not idle for its TTL yet");
    tokio::time::sleep(Duration::from_millis(40)).await;
    pool.reap_idle();
    settle().await;
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(pool.launcher().removed(), vec![id]);
    assert_eq!(pool.memory_used_mb(), 0);
}

#[tokio::test]
async fn remove_all_removes_busy_and_idle_ones() {
    let pool = Pool::new(FakeLauncher::default(), settings(1024));
    let idle = cold(&pool, &spec(1, 1, 128)).await;
    let busy = cold(&pool, &spec(2, 1, 128)).await;
    pool.put_idle(idle);
    pool.remove_all().await;
    let mut removed = pool.launcher().removed();
    removed.sort();
    assert_eq!(removed.len(), 2);
    assert!(removed.contains(&busy.container.id));
    assert!(pool.live_ids().is_empty());
}

/// Function `id` of namespace `namespace`, of `memory_mb`.
fn spec_in(namespace: &str, id: i64, memory_mb: u32) -> FunctionSpec {
    FunctionSpec {
        namespace: namespace.into(),
        ..spec(id, 1, memory_mb)
    }
}

/// Containers of `namespace`'s functions `ids`, `memory_mb` each, put idle in that order (the
/// first least recently used); their ids.
async fn idle_ones(
    pool: &Pool<FakeLauncher>,
    namespace: &str,
    ids: std::ops::Range<i64>,
    memory_mb: u32,
) -> Vec<String> {
    let mut started = Vec::new();
    for id in ids {
        let slot = cold(pool, &spec_in(namespace, id, memory_mb)).await;
        started.push(slot.container.id.clone());
        pool.put_idle(slot);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_large_function_over_its_share_cannot_evict_another_namespaces_idle_containers() {
    let pool = Pool::new(FakeLauncher::default(), settings(8192));
    let b_ids = idle_ones(&pool, "b", 1..5, 1024).await;
    // a's first 4,096 MB container takes the free half; a and b have 4,096 MB each now.
    let big = spec_in("a", 10, 4096);
    let busy = cold(&pool, &big).await;
    assert_eq!(pool.ledger.used_by("a"), 4096);
    assert_eq!(pool.ledger.used_by("b"), 4096);

    // A second one would put a at 8,192 MB, over its share of 4,096: b's idle containers are
    // not a's to evict, so a waits and gets nothing, as on a full worker.
    let a = ns("a");
    assert!(pool.reserve(4096, &a, soon()).await.is_none());
    settle().await;
    assert!(pool.launcher().removed().is_empty());
    assert_eq!(pool.idle_count(), 4);

    // Its own idle container it may evict.
    let own = busy.container.id.clone();
    pool.put_idle(busy);
    let room = pool.reserve(4096, &a, soon()).await.expect("a's own room");
    settle().await;
    assert_eq!(pool.launcher().removed(), vec![own]);
    for id in &b_ids {
        assert!(pool.live_ids().contains(id), "b's {id} was evicted");
    }
    drop(room);
}

#[tokio::test]
async fn eviction_takes_first_from_the_namespace_most_over_its_share() {
    let pool = Pool::new(FakeLauncher::default(), settings(8192));
    // c's are the least recently used, but b holds far more than c.
    let c_ids = idle_ones(&pool, "c", 1..3, 1024).await;
    let b_ids = idle_ones(&pool, "b", 10..15, 1024).await;
    // d's share is 8,192 / 3; b is 2,390 MB over it, c under. 3,072 MB for d needs 2,048 MB
    // freed: b's two least recently used go, though c's are older.
    let room = pool.reserve(3072, &ns("d"), soon()).await.expect("room");
    settle().await;
    assert_eq!(
        sorted(pool.launcher().removed()),
        sorted(b_ids[..2].to_vec())
    );
    assert_eq!(pool.ledger.used_by("b"), 3072);
    assert_eq!(pool.ledger.used_by("c"), 2048);
    assert_eq!(pool.ledger.used_by("d"), 3072);
    for id in &c_ids {
        assert!(pool.live_ids().contains(id), "c's {id} was evicted");
    }
    drop(room);
}

#[tokio::test]
async fn a_namespace_alone_uses_the_whole_budget_and_evicts_its_own_as_before() {
    let pool = Pool::new(FakeLauncher::default(), settings(4096));
    // One that held memory and let it go no longer counts.
    let gone = cold(&pool, &spec_in("b", 1, 1024)).await;
    pool.discard(gone);
    let whole = cold(&pool, &spec_in("a", 2, 4096)).await;
    assert_eq!(pool.ledger.used_by("a"), 4096);
    drop(whole);

    let _busy = cold(&pool, &spec_in("a", 3, 2048)).await;
    let idle = idle_ones(&pool, "a", 4..6, 1024).await;
    let room = pool
        .reserve(2048, &ns("a"), soon())
        .await
        .expect("its own idle containers make room");
    settle().await;
    assert!(pool.launcher().removed().ends_with(&idle));
    assert_eq!(pool.ledger.used_by("a"), 4096);
    assert_eq!(pool.memory_used_mb(), 4096);
    drop(room);
}

#[tokio::test]
async fn a_stem_cell_counts_to_no_one_until_bound_and_takes_room_from_the_most_over() {
    let pool = Pool::new(FakeLauncher::default(), settings(4096));
    let room = pool.ledger.try_take(128, None).expect("room");
    let mut stem = pool
        .start(Language::Python, 128, None, &Mounts::default(), room)
        .await
        .unwrap();
    assert_eq!(pool.memory_used_mb(), 128);
    assert!(pool.ledger.used().by_namespace.is_empty());
    stem.bind((7, 1), &ns("a"));
    assert_eq!(pool.ledger.used_by("a"), 128, "bound: a's now");
    drop(stem);
    assert!(pool.ledger.used().by_namespace.is_empty());

    // Room for a stem cell comes from the namespace most over its share first.
    let c_ids = idle_ones(&pool, "c", 1..2, 1024).await;
    let b_ids = idle_ones(&pool, "b", 2..5, 1024).await;
    assert!(pool.evict_for(1024, None, false));
    settle().await;
    assert_eq!(pool.launcher().removed(), vec![b_ids[0].clone()]);
    assert!(pool.live_ids().contains(&c_ids[0]));
}
