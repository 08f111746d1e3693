//! The build a save queues for its dependencies, a build that cannot be queued, and how
//! `?wait=true` waits for it (on a paused clock).

use super::*;

#[tokio::test]
async fn a_function_without_dependencies_queues_no_build() {
    let s = setup();
    s.functions
        .create(NAMESPACE, input(json!({"dependencies": "  \n"})), WAIT)
        .await
        .expect("created");
    let names = s.backend.call_names();
    assert!(!names.contains(&"publish_build"), "{names:?}");
    // Nothing to wait for: neither the workers nor the function are asked again.
    assert!(!names.contains(&"build_consumers"), "{names:?}");
    assert!(!names.contains(&"get_function"), "{names:?}");
}

#[tokio::test]
async fn dependencies_queue_their_build_once_the_row_is_saved() {
    let s = setup();
    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            NO_WAIT,
        )
        .await
        .expect("created");

    assert_eq!(
        s.backend.build_jobs(),
        [BuildJob {
            key: build_key(),
            attempt: uuid::Uuid::from_u128(1),
            language: Language::Python,
            dependencies: REQUIREMENTS.into(),
            namespace: NAMESPACE.into(),
        }]
    );
    assert_eq!(
        s.backend.call_names(),
        [
            "get_namespace",
            "insert_function",
            "claim_build",
            "publish_build",
            "publish_event",
            "refresh_routes"
        ]
    );
    let (_, fields) = &s.backend.saved_fields()[0];
    assert_eq!(fields.build_key, Some(build_key()));
    assert_eq!(
        function.build.as_ref().map(|b| b.status),
        Some(BuildStatus::Pending)
    );
    // Nothing runs yet and nothing ran before: the new version is the one announced.
    assert_eq!(s.backend.events(), [event(1, Some("hello"), Some(1))]);
}

#[tokio::test]
async fn a_build_ready_already_is_not_queued_again() {
    let s = setup();
    s.backend.add_ready_build(&build_key(), 4096);
    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            WAIT,
        )
        .await
        .expect("created");
    assert!(s.backend.build_jobs().is_empty());
    assert_eq!(
        function.build.as_ref().map(|b| b.status),
        Some(BuildStatus::Ready)
    );
    assert!(!s.backend.call_names().contains(&"get_function"));
}

#[tokio::test]
async fn a_build_that_cannot_be_queued_is_failed_with_why_and_the_function_reloaded() {
    let s = setup();
    s.backend.fail_next_publish(BrokerError::Disconnected);

    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            NO_WAIT,
        )
        .await
        .expect("created all the same");

    let why = "the build could not be queued (the message broker is not connected); save the function again to retry";
    let failed: Vec<Call> = s
        .backend
        .calls()
        .into_iter()
        .filter(|call| matches!(call, Call::FailUnpublished { .. }))
        .collect();
    let [
        Call::FailUnpublished {
            key,
            attempt,
            why: said,
        },
    ] = failed.as_slice()
    else {
        panic!("{failed:?}")
    };
    assert_eq!(
        (key, *attempt, said.as_str()),
        (&build_key(), uuid::Uuid::from_u128(1), why)
    );
    assert_eq!(
        s.backend.call_names(),
        [
            "get_namespace",
            "insert_function",
            "claim_build",
            "publish_build",
            "fail_unpublished",
            "get_function",
            "publish_event",
            "refresh_routes"
        ]
    );
    let reloaded = s.backend.calls().into_iter().find_map(|call| match call {
        Call::GetFunction { namespace, id } => Some((namespace, id)),
        _ => None,
    });
    assert_eq!(reloaded, Some((NAMESPACE.to_owned(), function.id)));
    // The answer is the function as reloaded: its build failed, saying why.
    let build = function.build.expect("a build");
    assert_eq!(
        (build.status, build.log.as_str()),
        (BuildStatus::Failed, why)
    );
}

/// The number of times the service reloaded the function.
fn reloads(backend: &FakeBackend) -> usize {
    backend
        .call_names()
        .into_iter()
        .filter(|name| *name == "get_function")
        .count()
}

#[tokio::test(start_paused = true)]
async fn wait_polls_until_the_build_has_ended() {
    let s = setup();
    s.backend.builds_go_through(&[
        BuildStatus::Building,
        BuildStatus::Building,
        BuildStatus::Ready,
    ]);
    let started = Instant::now();

    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            WAIT,
        )
        .await
        .expect("created");

    assert_eq!(
        function.build.as_ref().map(|b| b.status),
        Some(BuildStatus::Ready)
    );
    assert_eq!(reloads(&s.backend), 3);
    assert_about(started.elapsed(), 3 * BUILD_POLL);
    // The workers are asked first: someone takes builds.
    let names = s.backend.call_names();
    assert_eq!(
        names[names.len() - 4..],
        [
            "build_consumers",
            "get_function",
            "get_function",
            "get_function"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn wait_ends_with_a_failed_build_too() {
    let s = setup();
    s.backend.builds_go_through(&[BuildStatus::Failed]);
    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            WAIT,
        )
        .await
        .expect("created");
    assert_eq!(
        function.build.as_ref().map(|b| b.status),
        Some(BuildStatus::Failed)
    );
    assert_eq!(reloads(&s.backend), 1);
}

#[tokio::test(start_paused = true)]
async fn wait_gives_up_once_build_wait_has_passed() {
    let s = setup();
    let started = Instant::now();

    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            WAIT,
        )
        .await
        .expect("created");

    assert_eq!(
        function.build.as_ref().map(|b| b.status),
        Some(BuildStatus::Pending)
    );
    let polls = (BUILD_WAIT.as_millis() / BUILD_POLL.as_millis()) as usize;
    assert_eq!(reloads(&s.backend), polls);
    assert_about(started.elapsed(), BUILD_WAIT);
}

#[tokio::test(start_paused = true)]
async fn wait_answers_at_once_when_no_worker_takes_builds() {
    let s = setup();
    s.backend.set_build_consumers(0);
    let started = Instant::now();

    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            WAIT,
        )
        .await
        .expect("created");

    assert_eq!(
        function.build.as_ref().map(|b| b.status),
        Some(BuildStatus::Pending)
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(reloads(&s.backend), 0);
    assert!(s.backend.call_names().contains(&"build_consumers"));
}

#[tokio::test(start_paused = true)]
async fn without_wait_a_pending_build_is_answered_at_once() {
    let s = setup();
    let started = Instant::now();
    s.functions
        .create(
            NAMESPACE,
            input(json!({"dependencies": REQUIREMENTS})),
            NO_WAIT,
        )
        .await
        .expect("created");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(!s.backend.call_names().contains(&"build_consumers"));
    assert_eq!(reloads(&s.backend), 0);
}
