//! An update that changes nothing: no write, no build, no announcement, no wait; and the
//! updates that look alike but must still be saved.

use super::*;

/// What the service did after the first `skip` calls.
fn calls_after(s: &Setup, skip: usize) -> Vec<&'static str> {
    s.backend.call_names()[skip..].to_vec()
}

#[tokio::test(start_paused = true)]
async fn an_update_that_changes_nothing_is_answered_as_stored_at_once() {
    let s = setup();
    let body =
        json!({"dependencies": REQUIREMENTS, "env": {"A": "1"}, "cors": {"allow_origins": ["*"]}});
    let created = s
        .functions
        .create(NAMESPACE, input(body.clone()), NO_WAIT)
        .await
        .expect("created");
    // Its build is still pending: `?wait=true` would wait for it were anything saved.
    s.backend.set_build_consumers(1);
    cache_stale(&s.cache, created.id, "hello");
    let before = s.backend.calls().len();
    let started = Instant::now();

    let answered = s
        .functions
        .update(NAMESPACE, created.id, input(body), WAIT)
        .await
        .expect("answered");

    assert_eq!(started.elapsed(), Duration::ZERO, "it waited for the build");
    assert_eq!(answered.version, 1);
    assert_eq!(answered.updated_at, created.updated_at);
    assert_eq!(
        calls_after(&s, before),
        ["get_namespace", "get_function"],
        "only read"
    );
    // Nothing was announced: the cached copy stays.
    assert!(matches!(s.cache.get(NAMESPACE, "hello"), Lookup::Found(_)));
}

#[tokio::test]
async fn the_same_package_is_not_stored_again() {
    let s = setup();
    let created = s
        .functions
        .create(NAMESPACE, input(with_package()), NO_WAIT)
        .await
        .expect("created");
    let before = s.backend.calls().len();
    let answered = s
        .functions
        .update(NAMESPACE, created.id, input(with_package()), NO_WAIT)
        .await
        .expect("answered");
    assert_eq!(answered.version, 1);
    assert_eq!(answered.package, created.package);
    assert_eq!(calls_after(&s, before), ["get_namespace", "get_function"]);
}

#[tokio::test]
async fn dependencies_written_otherwise_but_the_same_once_normalised_change_nothing() {
    let s = setup();
    let created = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            NO_WAIT,
        )
        .await
        .expect("created");
    let commented = format!("# pinned\n\n{REQUIREMENTS}");
    let answered = s
        .functions
        .update(
            NAMESPACE,
            created.id,
            input(json!({"dependencies": commented})),
            NO_WAIT,
        )
        .await
        .expect("answered");
    assert_eq!(answered.version, 1);
    assert_eq!(answered.dependencies.as_deref(), Some(REQUIREMENTS));
    assert_eq!(s.backend.build_jobs().len(), 1, "built once");
}

#[tokio::test]
async fn any_change_is_saved_as_the_next_version() {
    let s = setup();
    let created = s
        .functions
        .create(NAMESPACE, input(json!({})), NO_WAIT)
        .await
        .expect("created");
    for (version, change) in [
        (2, json!({"timeout": 6})),
        (3, json!({"timeout": 6, "env": {"A": "1"}})),
        (4, json!({"timeout": 6, "env": {"A": "2"}})),
        (5, json!({"timeout": 6})),
    ] {
        let saved = s
            .functions
            .update(NAMESPACE, created.id, input(change.clone()), NO_WAIT)
            .await
            .expect("saved");
        assert_eq!(saved.version, version, "{change}");
        assert_eq!(
            s.backend.events().last(),
            Some(&event(created.id, Some("hello"), Some(version))),
            "{change}"
        );
    }
    let stored = s.backend.stored(created.id).expect("stored");
    assert_eq!((stored.version, stored.timeout), (5, 6));
}

#[tokio::test]
async fn the_same_save_of_a_function_whose_build_failed_retries_the_build() {
    let s = setup();
    let body = json!({"dependencies": REQUIREMENTS});
    let created = s
        .functions
        .create(NAMESPACE, input(body.clone()), NO_WAIT)
        .await
        .expect("created");
    s.backend.end_build(&build_key(), BuildStatus::Failed);

    let saved = s
        .functions
        .update(NAMESPACE, created.id, input(body), NO_WAIT)
        .await
        .expect("saved");

    assert_eq!(saved.version, 2);
    assert_eq!(s.backend.build_jobs().len(), 2, "the build is queued again");
    assert_eq!(
        saved.build.as_ref().map(|b| b.status),
        Some(BuildStatus::Pending)
    );
}
