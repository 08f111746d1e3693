//! Creates and updates: what is stored and announced, and every way a save is refused.

use super::*;

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
async fn a_package_over_the_zip_limit_is_too_large_rather_than_invalid() {
    let s = setup();
    // Refused by its length alone, before anything is decoded.
    let zip = "A".repeat((package::MAX_ZIP_BYTES + 4) / 3 * 4 + 4);
    let refused = s
        .functions
        .create(
            NAMESPACE,
            input(json!({"code": null, "code_zip": zip, "handler": "app.handler"})),
            NO_WAIT,
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(&refused, SaveError::Invalid(Invalid::TooLarge(why)) if why == "code_zip is over the limit of 50 MB zipped"),
        "{refused:?}"
    );
    assert_eq!(s.backend.call_names(), ["get_namespace"]);
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
    // After the namespace, and the function read to compare with.
    assert!(
        matches!(&calls[2], Call::UpdateFunction { namespace, id: saved, .. } if namespace == NAMESPACE && *saved == id),
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
    assert_eq!(s.backend.call_names(), ["get_namespace", "get_function"]);
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
        // A change, so that the update is written (the same fields would be no save at all).
        let refused = s
            .functions
            .update(NAMESPACE, id, input(json!({"timeout": 6})), NO_WAIT)
            .await
            .expect_err("refused");
        assert!(
            matches!(&refused, SaveError::Conflict(why) if why == expected),
            "{violation:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_route_that_would_take_another_namespaces_requests_is_a_conflict_naming_no_namespace() {
    let s = setup();
    s.backend
        .fail_next_write(DbError::RouteOverlap("/hello".into()));
    let refused = s
        .functions
        .create(NAMESPACE, input(json!({})), NO_WAIT)
        .await
        .expect_err("refused");
    let SaveError::Conflict(why) = &refused else {
        panic!("{refused:?}");
    };
    assert!(
        why.starts_with(
            "route \"/hello\" would take requests that a route of another namespace answers"
        ),
        "{why}"
    );
    assert_eq!(s.backend.call_names(), ["get_namespace", "insert_function"]);
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
