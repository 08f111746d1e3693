//! The functions service over the in-memory backend of `fake`: what a save stores, queues,
//! publishes and answers, in which order, and how each failure comes out. The function cache
//! is the real one.

use super::fake::{Call, FakeBackend, NAMESPACE};
use super::*;
use crate::broker::BrokerError;
use crate::services::cache::Lookup;
use crate::store::{BuildStatus, PackageInfo};
use common::{Language, Runtime};
use serde_json::json;
use tokio::time::Instant;

/// `MAX_CODE_BYTES` of the services under test.
const MAX_CODE_BYTES: usize = 1024;
/// `BUILD_WAIT_SECS` of the services under test.
const BUILD_WAIT: Duration = Duration::from_secs(2);
const REQUIREMENTS: &str = "requests==2.31.0\n";

const NO_WAIT: SaveOptions = SaveOptions {
    may_catch_all: false,
    wait: false,
};
const WAIT: SaveOptions = SaveOptions {
    may_catch_all: false,
    wait: true,
};

struct Setup {
    functions: Functions<FakeBackend>,
    backend: FakeBackend,
    cache: Arc<FunctionCache>,
}

fn setup() -> Setup {
    let backend = FakeBackend::new();
    let cache = Arc::new(FunctionCache::new(Duration::from_secs(60)));
    // Connected: the cache stores what it is given, so that an invalidation shows.
    cache.reconnected();
    let functions =
        Functions::with_backend(backend.clone(), cache.clone(), MAX_CODE_BYTES, BUILD_WAIT);
    Setup {
        functions,
        backend,
        cache,
    }
}

/// A valid input, with `changes` made to it.
fn input(changes: serde_json::Value) -> FunctionInput {
    let mut body = json!({
        "name": "hello",
        "route": "/hello",
        "language": "python",
        "code": "def handler(event, context):\n    return 1",
        "timeout": 5
    });
    for (field, value) in changes.as_object().expect("an object") {
        body[field] = value.clone();
    }
    serde_json::from_value(body).expect("a well-formed input")
}

/// The fields of an input with a package: `app.py`, called as `app.handler`.
fn with_package() -> serde_json::Value {
    json!({"code": null, "code_zip": app_zip(), "handler": "app.handler"})
}

fn app_zip() -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let files: [(&str, &[u8]); 2] = [
        ("app.py", b"def handler(event, context):\n    return 1\n"),
        ("lib/helper.py", b"X = 1\n"),
    ];
    for (name, data) in files {
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(data).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn build_key() -> String {
    crate::domain::deps::build_key(Language::Python, REQUIREMENTS)
}

/// A cached copy of function `id`, to see it dropped.
fn cache_stale(cache: &FunctionCache, id: i64, name: &str) {
    let stale = Function {
        id,
        name: name.into(),
        ..Function::example()
    };
    cache.insert(Arc::new(stale), cache.generation());
    assert!(matches!(cache.get(NAMESPACE, name), Lookup::Found(_)));
}

fn event(id: i64, name: Option<&str>, version: Option<i32>) -> FunctionEvent {
    FunctionEvent {
        function_id: id,
        namespace: Some(NAMESPACE.into()),
        name: name.map(str::to_owned),
        version,
    }
}

#[tokio::test]
async fn a_created_function_is_stored_announced_and_its_cache_entry_dropped() {
    let s = setup();
    // Cached as missing before: the create must make it found at once.
    s.cache
        .insert_miss(NAMESPACE, "hello", s.cache.generation());
    assert!(matches!(s.cache.get(NAMESPACE, "hello"), Lookup::Missing));
    cache_stale(&s.cache, 1, "old-name");

    let function = s
        .functions
        .create(NAMESPACE, input(json!({"memory_mb": 256})), NO_WAIT)
        .await
        .expect("created");

    assert_eq!(
        s.backend.call_names(),
        [
            "get_namespace",
            "insert_function",
            "publish_event",
            "refresh_routes"
        ]
    );
    let saved = s.backend.saved_fields();
    let (namespace, fields) = &saved[0];
    assert_eq!(namespace, NAMESPACE);
    assert_eq!(
        (
            fields.name.as_str(),
            fields.route.as_str(),
            fields.memory_mb
        ),
        ("hello", "/hello", 256)
    );
    assert_eq!(
        (fields.runtime, fields.package.as_ref()),
        (Runtime::Docker, None)
    );
    assert_eq!(fields.build_key, None);
    assert_eq!((function.id, function.version), (1, 1));
    assert_eq!(function.name, "hello");
    assert!(function.build.is_none());
    assert_eq!(s.backend.events(), [event(1, Some("hello"), Some(1))]);
    assert!(matches!(
        s.cache.get(NAMESPACE, "old-name"),
        Lookup::Unknown
    ));
    assert!(matches!(s.cache.get(NAMESPACE, "hello"), Lookup::Unknown));
}

#[tokio::test]
async fn a_package_is_stored_once_and_named_by_the_row() {
    let s = setup();
    let expected =
        package::prepare(&app_zip(), Language::Python, "app.handler").expect("a valid package");

    let function = s
        .functions
        .create(NAMESPACE, input(with_package()), NO_WAIT)
        .await
        .expect("created");

    let stored: Vec<Call> = s
        .backend
        .calls()
        .into_iter()
        .filter(|call| matches!(call, Call::StorePackage { .. }))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let Call::StorePackage {
        digest,
        zip_bytes,
        unpacked_bytes,
        files,
    } = &stored[0]
    else {
        unreachable!()
    };
    assert_eq!(digest, &expected.digest);
    assert_eq!(
        (*zip_bytes, *unpacked_bytes, *files),
        (expected.zip_bytes, expected.unpacked_bytes, 2)
    );
    let info = PackageInfo {
        digest: expected.digest.clone(),
        zip_bytes: expected.zip_bytes as i64,
        unpacked_bytes: expected.unpacked_bytes as i64,
        files: 2,
    };
    let (_, fields) = &s.backend.saved_fields()[0];
    assert_eq!(fields.package.as_ref(), Some(&info));
    assert_eq!(
        (fields.code.as_str(), fields.handler.as_str()),
        ("", "app.handler")
    );
    assert_eq!(function.package, Some(info));
    assert_eq!(function.code, None);
    // The package is stored before the row that names it.
    assert_eq!(
        s.backend.call_names()[..3],
        ["get_namespace", "store_package", "insert_function"]
    );
}

#[tokio::test]
async fn a_package_that_does_not_decode_is_refused_and_nothing_is_stored() {
    let s = setup();
    let refused = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"code": null, "code_zip": "not base64!", "handler": "app.handler"})),
            NO_WAIT,
        )
        .await
        .expect_err("refused");
    let SaveError::Invalid(Invalid::Field(why)) = refused else {
        panic!("{refused:?}")
    };
    assert!(why.starts_with("code_zip is not valid base64"), "{why}");
    assert_eq!(s.backend.call_names(), ["get_namespace"]);
}

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
        }]
    );
    assert_eq!(
        s.backend.call_names(),
        [
            "get_namespace",
            "insert_function",
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

#[tokio::test]
async fn an_update_bumps_the_version_and_announces_the_one_still_serving() {
    let s = setup();
    let id = s.backend.add_function(NAMESPACE, "hello");
    cache_stale(&s.cache, id, "hello");

    let updated = s
        .functions
        .update(
            NAMESPACE,
            id,
            input(json!({"dependencies": REQUIREMENTS})),
            NO_WAIT,
        )
        .await
        .expect("updated");

    assert_eq!(updated.version, 2);
    // Version 2 waits for its build, so version 1 still serves calls: its containers stay.
    assert_eq!(s.backend.events(), [event(id, Some("hello"), Some(1))]);
    assert!(matches!(s.cache.get(NAMESPACE, "hello"), Lookup::Unknown));
    let calls = s.backend.calls();
    assert!(
        matches!(&calls[1], Call::UpdateFunction { namespace, id: saved, .. } if namespace == NAMESPACE && *saved == id),
        "{calls:?}"
    );
    assert_eq!(s.backend.build_jobs().len(), 1);

    // Once nothing waits, the version saved is the one announced.
    let again = s
        .functions
        .update(NAMESPACE, id, input(json!({})), NO_WAIT)
        .await
        .expect("updated");
    assert_eq!(again.version, 3);
    assert_eq!(
        s.backend.events().last(),
        Some(&event(id, Some("hello"), Some(3)))
    );
}

#[tokio::test]
async fn an_update_of_a_missing_function_is_not_found() {
    let s = setup();
    let refused = s
        .functions
        .update(NAMESPACE, 42, input(json!({})), NO_WAIT)
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, SaveError::FunctionNotFound(42)),
        "{refused:?}"
    );
    assert_eq!(s.backend.call_names(), ["get_namespace", "update_function"]);
    assert_eq!(refused.to_string(), "function 42 not found");
}

#[tokio::test]
async fn another_namespaces_function_is_not_found_either() {
    let s = setup();
    s.backend.add_namespace("other", &Runtime::ALL);
    let id = s.backend.add_function("other", "hello");
    let refused = s
        .functions
        .update(NAMESPACE, id, input(json!({})), NO_WAIT)
        .await
        .expect_err("refused");
    assert!(matches!(refused, SaveError::FunctionNotFound(found) if found == id));
    assert_eq!(s.backend.stored(id).map(|f| f.version), Some(1));
}

#[tokio::test]
async fn a_namespace_deleted_meanwhile_is_not_found() {
    let s = setup();
    let refused = s
        .functions
        .create("gone", input(json!({})), NO_WAIT)
        .await
        .expect_err("refused");
    assert!(
        matches!(&refused, SaveError::NamespaceNotFound(name) if name == "gone"),
        "{refused:?}"
    );
    let calls = s.backend.calls();
    assert!(
        matches!(calls.as_slice(), [Call::GetNamespace(name)] if name == "gone"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn the_namespace_and_the_caller_set_the_policy() {
    let s = setup();
    s.backend.add_namespace("sandboxed", &[Runtime::Gvisor]);
    let function = s
        .functions
        .create("sandboxed", input(json!({})), NO_WAIT)
        .await
        .expect("created");
    assert_eq!(function.runtime, Runtime::Gvisor);

    let too_long = "#".repeat(MAX_CODE_BYTES + 1);
    let refused = s
        .functions
        .create(NAMESPACE, input(json!({"code": too_long})), NO_WAIT)
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, SaveError::Invalid(Invalid::TooLarge(_))),
        "{refused:?}"
    );

    let catch_all = || input(json!({"name": "proxy", "route": "/{proxy+}"}));
    let refused = s
        .functions
        .create(NAMESPACE, catch_all(), NO_WAIT)
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, SaveError::Invalid(Invalid::Forbidden(_))),
        "{refused:?}"
    );
    let admin = SaveOptions {
        may_catch_all: true,
        wait: false,
    };
    let created = s.functions.create(NAMESPACE, catch_all(), admin).await;
    assert_eq!(created.expect("an admin's").route, "/{proxy+}");
}

#[tokio::test]
async fn a_destination_naming_no_function_is_refused_with_its_field() {
    let s = setup();
    let refused = s
        .functions
        .create(NAMESPACE, input(json!({"on_success": "nobody"})), NO_WAIT)
        .await
        .expect_err("refused");
    assert_eq!(
        refused.to_string(),
        "on_success names \"nobody\", which is no function of this namespace"
    );
    assert!(matches!(refused, SaveError::Invalid(Invalid::Field(_))));

    s.backend.add_function(NAMESPACE, "notify");
    let refused = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"on_success": "notify", "on_failure": "ghost"})),
            NO_WAIT,
        )
        .await
        .expect_err("refused");
    assert_eq!(
        refused.to_string(),
        "on_failure names \"ghost\", which is no function of this namespace"
    );
    assert!(!s.backend.call_names().contains(&"insert_function"));

    let function = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"on_success": "notify", "on_failure": "notify"})),
            NO_WAIT,
        )
        .await
        .expect("created");
    assert_eq!(function.on_failure.as_deref(), Some("notify"));
    let looked_up: Vec<Call> = s
        .backend
        .calls()
        .into_iter()
        .filter(|call| matches!(call, Call::GetFunctionByName { namespace, name } if namespace == NAMESPACE && name == "notify"))
        .collect();
    // Once for the second save's on_success, twice for the third's.
    assert_eq!(looked_up.len(), 3);
}

#[tokio::test]
async fn a_package_and_its_dependencies_over_the_limit_together_are_too_large() {
    let s = setup();
    let package =
        package::prepare(&app_zip(), Language::Python, "app.handler").expect("a valid package");
    let deps_bytes = (package::MAX_UNPACKED_BYTES - package.unpacked_bytes + 1) as i64;
    s.backend.add_ready_build(&build_key(), deps_bytes);
    let mut changes = with_package();
    changes["dependencies"] = json!(REQUIREMENTS);

    let refused = s
        .functions
        .create(NAMESPACE, input(changes.clone()), NO_WAIT)
        .await
        .expect_err("refused");

    let SaveError::Invalid(Invalid::TooLarge(why)) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        why,
        format!(
            "the package ({} bytes unpacked) and its dependencies ({deps_bytes} bytes) are over the limit of 250 MB together",
            package.unpacked_bytes
        )
    );
    let calls = s.backend.calls();
    assert!(
        matches!(calls.as_slice(), [Call::GetNamespace(_), Call::ReadyBuildSize(key)] if *key == build_key()),
        "{calls:?}"
    );

    // One byte less fits.
    s.backend.add_ready_build(&build_key(), deps_bytes - 1);
    s.functions
        .create(NAMESPACE, input(changes), NO_WAIT)
        .await
        .expect("created");
    assert!(s.backend.call_names().contains(&"store_package"));
}

#[tokio::test]
async fn each_broken_constraint_is_its_conflict() {
    let route_taken = "a function with route \"/hello\" already exists";
    let name_taken = "a function named \"hello\" already exists in this namespace";
    let collected = "the package or dependency build this save names was being deleted as unused; send the save again";
    let cases = [
        (Violation::Unique(Some("functions_route_key")), route_taken),
        (
            Violation::Unique(Some("functions_route_shape_key")),
            "route \"/hello\" is ambiguous: a function's route has the same shape \"/hello\" (the same path with other parameter names)",
        ),
        (
            Violation::Unique(Some("functions_namespace_name_key")),
            name_taken,
        ),
        (Violation::Unique(None), name_taken),
        (
            Violation::ForeignKey(Some("functions_package_digest_fkey")),
            collected,
        ),
        (
            Violation::ForeignKey(Some("functions_build_key_fkey")),
            collected,
        ),
        (
            Violation::ForeignKey(Some("functions_namespace_fkey")),
            "the key's namespace no longer exists",
        ),
        (
            Violation::ForeignKey(None),
            "the key's namespace no longer exists",
        ),
    ];
    for (violation, expected) in cases {
        let s = setup();
        s.backend
            .fail_next_write(DbError::violated(violation).await);
        let refused = s
            .functions
            .create(NAMESPACE, input(json!({})), NO_WAIT)
            .await
            .expect_err("refused");
        assert!(
            matches!(&refused, SaveError::Conflict(why) if why == expected),
            "{violation:?}: {refused:?}"
        );
        // Nothing was saved: nothing is announced.
        assert_eq!(
            s.backend.call_names(),
            ["get_namespace", "insert_function"],
            "{violation:?}"
        );

        let id = s.backend.add_function(NAMESPACE, "hello");
        s.backend
            .fail_next_write(DbError::violated(violation).await);
        let refused = s
            .functions
            .update(NAMESPACE, id, input(json!({})), NO_WAIT)
            .await
            .expect_err("refused");
        assert!(
            matches!(&refused, SaveError::Conflict(why) if why == expected),
            "{violation:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_failure_that_breaks_no_constraint_is_the_databases() {
    let s = setup();
    s.backend.fail_next_write(DbError::Inconsistent("gone"));
    let refused = s
        .functions
        .create(NAMESPACE, input(json!({})), NO_WAIT)
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, SaveError::Database(DbError::Inconsistent("gone"))),
        "{refused:?}"
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

/// `elapsed` is `expected`, give or take the paused clock's rounding of each sleep to the
/// millisecond.
fn assert_about(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed < expected + Duration::from_millis(10),
        "{elapsed:?} is not about {expected:?}"
    );
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

#[tokio::test]
async fn a_deleted_function_is_announced_without_a_version() {
    let s = setup();
    let id = s.backend.add_function(NAMESPACE, "hello");
    cache_stale(&s.cache, id, "hello");

    assert!(s.functions.delete(NAMESPACE, id).await.expect("deleted"));

    assert!(s.backend.stored(id).is_none());
    let calls = s.backend.calls();
    assert!(
        matches!(&calls[0], Call::DeleteFunction { namespace, id: deleted } if namespace == NAMESPACE && *deleted == id),
        "{calls:?}"
    );
    assert_eq!(s.backend.events(), [event(id, None, None)]);
    assert_eq!(
        s.backend.call_names(),
        ["delete_function", "publish_event", "refresh_routes"]
    );
    assert!(matches!(s.cache.get(NAMESPACE, "hello"), Lookup::Unknown));
}

#[tokio::test]
async fn deleting_what_is_not_there_announces_nothing() {
    let s = setup();
    s.backend.add_namespace("other", &Runtime::ALL);
    let theirs = s.backend.add_function("other", "hello");

    assert!(!s.functions.delete(NAMESPACE, 42).await.expect("answered"));
    assert!(
        !s.functions
            .delete(NAMESPACE, theirs)
            .await
            .expect("answered")
    );

    assert!(s.backend.stored(theirs).is_some());
    assert_eq!(
        s.backend.call_names(),
        ["delete_function", "delete_function"]
    );
}

#[tokio::test]
async fn a_delete_the_database_fails_is_its_error() {
    let s = setup();
    let id = s.backend.add_function(NAMESPACE, "hello");
    s.backend.fail_next_write(DbError::Inconsistent("down"));
    let failed = s.functions.delete(NAMESPACE, id).await;
    assert!(
        matches!(failed, Err(DbError::Inconsistent("down"))),
        "{failed:?}"
    );
    assert!(s.backend.events().is_empty());
    assert!(s.backend.stored(id).is_some());
}

#[tokio::test]
async fn announce_tells_the_cache_the_others_and_the_routes_in_that_order() {
    let s = setup();
    cache_stale(&s.cache, 7, "renamed-from");
    s.cache
        .insert_miss(NAMESPACE, "renamed-to", s.cache.generation());

    s.functions
        .announce(7, NAMESPACE, Some(4), Some("renamed-to"))
        .await;

    assert!(matches!(
        s.cache.get(NAMESPACE, "renamed-from"),
        Lookup::Unknown
    ));
    assert!(matches!(
        s.cache.get(NAMESPACE, "renamed-to"),
        Lookup::Unknown
    ));
    assert_eq!(s.backend.events(), [event(7, Some("renamed-to"), Some(4))]);
    assert_eq!(s.backend.call_names(), ["publish_event", "refresh_routes"]);
}
