//! Each namespace's share of the builds: a save past it succeeds with its build held and
//! unpublished, another namespace's build is queued at once, a build shared by key is not
//! counted again, and a held build is queued when its namespace has room again.

use super::*;
use crate::domain::build_share::{BuildShare, Held};

const ONE_AT_A_TIME: BuildShare = BuildShare {
    concurrency: 1,
    seconds_per_hour: 0,
};

fn shared(share: BuildShare) -> Setup {
    let mut s = setup();
    s.functions = s.functions.with_build_share(share);
    s.backend.add_namespace("other", &Runtime::ALL);
    s
}

/// A function `name` of `namespace` whose dependencies are `requirement`; its build key.
async fn save(s: &Setup, namespace: &str, name: &str, requirement: &str) -> (Function, String) {
    let body = json!({"name": name, "route": format!("/{name}"), "dependencies": requirement});
    let function = s
        .functions
        .create(namespace, input(body), NO_WAIT)
        .await
        .expect("a save past the share succeeds all the same");
    (function, deps::build_key(Language::Python, requirement))
}

fn published_keys(backend: &FakeBackend) -> Vec<(String, String)> {
    backend
        .build_jobs()
        .into_iter()
        .map(|job| (job.namespace, job.key))
        .collect()
}

#[tokio::test]
async fn a_namespace_past_its_share_has_its_next_build_held_while_another_namespace_queues() {
    let s = shared(ONE_AT_A_TIME);
    let (_, first) = save(&s, NAMESPACE, "a1", "six==1.16.0").await;
    let (second_fn, second) = save(&s, NAMESPACE, "a2", "six==1.15.0").await;
    let (_, theirs) = save(&s, "other", "b1", "six==1.14.0").await;

    assert_eq!(
        published_keys(&s.backend),
        [
            (NAMESPACE.to_owned(), first.clone()),
            ("other".to_owned(), theirs.clone())
        ]
    );
    assert_eq!(s.backend.charge(&second), Some((NAMESPACE.into(), false)));
    // The answer says the build waits, and why.
    let build = second_fn.build.expect("a build");
    assert_eq!(build.status, BuildStatus::Pending);
    assert_eq!(build.log, Held::Concurrency { limit: 1 }.to_string());
    assert_eq!(s.backend.build(&second).unwrap().log, build.log);

    // Nothing has ended: a release pass queues nothing.
    assert_eq!(s.functions.release_held_builds().await.unwrap(), 0);
    // The first one ends: the held one goes out, charged to its namespace, its log cleared.
    s.backend.end_build(&first, BuildStatus::Failed);
    assert_eq!(s.functions.release_held_builds().await.unwrap(), 1);
    let jobs = s.backend.build_jobs();
    let last = jobs.last().expect("a job");
    assert_eq!(
        (last.namespace.as_str(), &last.key, last.attempt),
        (NAMESPACE, &second, uuid::Uuid::from_u128(2))
    );
    assert_eq!(last.dependencies, "six==1.15.0\n");
    assert_eq!(s.backend.charge(&second), Some((NAMESPACE.into(), true)));
    assert_eq!(s.backend.build(&second).unwrap().log, "");
    // Released once only.
    assert_eq!(s.functions.release_held_builds().await.unwrap(), 0);
}

#[tokio::test]
async fn a_build_shared_by_key_is_not_queued_or_counted_again() {
    let s = shared(ONE_AT_A_TIME);
    let (_, key) = save(&s, NAMESPACE, "a1", "six==1.16.0").await;
    // The same dependencies elsewhere, in this namespace and another: the queued build serves.
    save(&s, NAMESPACE, "a2", "six==1.16.0").await;
    save(&s, "other", "b1", "six==1.16.0").await;
    assert_eq!(
        published_keys(&s.backend),
        [(NAMESPACE.to_owned(), key.clone())]
    );
    // Only the save that started it claimed it, with the attempt it started.
    let claims: Vec<(String, String, uuid::Uuid)> = s
        .backend
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::ClaimBuild {
                namespace,
                key,
                attempt,
            } => Some((namespace, key, attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(
        claims,
        [(NAMESPACE.to_owned(), key, uuid::Uuid::from_u128(1))]
    );
    // `other` has no build of its own under way: its next one is queued at once.
    let (_, theirs) = save(&s, "other", "b2", "six==1.14.0").await;
    assert_eq!(published_keys(&s.backend).last().unwrap().1, theirs);
}

#[tokio::test]
async fn a_held_build_needed_by_a_namespace_with_room_is_queued_and_charged_to_it() {
    let s = shared(ONE_AT_A_TIME);
    save(&s, NAMESPACE, "a1", "six==1.16.0").await;
    let (_, held) = save(&s, NAMESPACE, "a2", "six==1.15.0").await;
    assert_eq!(s.backend.charge(&held), Some((NAMESPACE.into(), false)));
    // `other` needs the same build and has room: it need not wait for `default`'s backlog.
    save(&s, "other", "b1", "six==1.15.0").await;
    assert_eq!(
        published_keys(&s.backend).last().unwrap(),
        &("other".to_owned(), held.clone())
    );
    assert_eq!(s.backend.charge(&held), Some(("other".into(), true)));
}

#[tokio::test]
async fn a_namespace_over_its_hours_build_time_has_its_builds_held_until_it_falls_under() {
    let s = shared(BuildShare {
        concurrency: 4,
        seconds_per_hour: 600,
    });
    s.backend.set_build_seconds(NAMESPACE, 650);
    let (function, key) = save(&s, NAMESPACE, "a1", "six==1.16.0").await;
    assert!(published_keys(&s.backend).is_empty());
    let held = Held::Quota {
        used: 650,
        limit: 600,
    };
    assert_eq!(function.build.unwrap().log, held.to_string());
    // Another namespace's quota is its own.
    save(&s, "other", "b1", "six==1.14.0").await;
    assert_eq!(published_keys(&s.backend).len(), 1);

    assert_eq!(s.functions.release_held_builds().await.unwrap(), 0);
    s.backend.set_build_seconds(NAMESPACE, 100);
    assert_eq!(s.functions.release_held_builds().await.unwrap(), 1);
    assert_eq!(published_keys(&s.backend).last().unwrap().1, key);
}

#[tokio::test]
async fn a_held_build_that_cannot_be_queued_is_failed_saying_why() {
    let s = shared(ONE_AT_A_TIME);
    let (_, first) = save(&s, NAMESPACE, "a1", "six==1.16.0").await;
    let (_, held) = save(&s, NAMESPACE, "a2", "six==1.15.0").await;
    s.backend.end_build(&first, BuildStatus::Ready);
    s.backend.fail_next_publish(BrokerError::Disconnected);
    assert_eq!(s.functions.release_held_builds().await.unwrap(), 0);
    let build = s.backend.build(&held).unwrap();
    assert_eq!(build.status, BuildStatus::Failed);
    assert!(
        build.log.starts_with("the build could not be queued"),
        "{}",
        build.log
    );
}
