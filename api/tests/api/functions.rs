//! Function CRUD and input validation against the real api, Postgres and RabbitMQ.

use crate::support::{TestApp, seed_function};
use serde_json::{Value, json};

#[tokio::test]
async fn create_get_list_update_delete_round_trip() {
    let app = TestApp::start().await;

    let created = app.create_function(seed_function("hello")).await;
    let id = created["id"].as_i64().expect("id is an integer");
    assert_eq!(created["name"], "hello");
    assert_eq!(created["route"], "/hello");
    assert_eq!(created["language"], "python");
    assert_eq!(created["timeout"], 5);
    assert_eq!(created["runtime"], "docker");
    assert_eq!(created["memory_mb"], 128);
    assert_eq!(created["env"], json!({}));
    assert_eq!(created["version"], 1);

    let (status, fetched) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);

    app.create_function(seed_function("second")).await;
    let (status, list) = app.get("/functions/").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "second"]);
    let (_, page) = app.get("/functions/?skip=1&limit=1").await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["name"], "second");

    let mut update = seed_function("updated_function");
    update["route"] = json!("/updated-function");
    update["timeout"] = json!(10);
    update["runtime"] = json!("gvisor");
    update["env"] = json!({"GREETING": "hi"});
    let (status, updated) = app.put(&format!("/functions/{id}"), &update).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], id);
    assert_eq!(updated["name"], "updated_function");
    assert_eq!(updated["timeout"], 10);
    assert_eq!(updated["runtime"], "gvisor");
    assert_eq!(updated["env"]["GREETING"], "hi");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["created_at"], created["created_at"]);

    let (status, body) = app.delete(&format!("/functions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"message": "Function deleted"}));
    let (status, body) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "function_not_found");
    let (status, _) = app.delete(&format!("/functions/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .put(&format!("/functions/{id}"), &seed_function("gone"))
        .await;
    assert_eq!(status, 404);

    app.stop().await;
}

#[tokio::test]
async fn duplicate_name_or_route_is_409_and_changes_nothing() {
    let app = TestApp::start().await;
    let first = app.create_function(seed_function("taken")).await;
    let other = app.create_function(seed_function("other")).await;

    let (status, body) = app.post("/functions/", &seed_function("taken")).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "conflict");
    assert!(body["detail"].as_str().unwrap().contains("taken"), "{body}");

    let mut same_route = seed_function("fresh");
    same_route["route"] = json!("/taken");
    let (status, body) = app.post("/functions/", &same_route).await;
    assert_eq!(status, 409);
    assert!(body["detail"].as_str().unwrap().contains("route"), "{body}");

    // Renaming onto another function's name is refused too, and leaves both as they were.
    let (status, _) = app
        .put(
            &format!("/functions/{}", other["id"]),
            &seed_function("taken"),
        )
        .await;
    assert_eq!(status, 409);
    let (_, list) = app.get("/functions/").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, unchanged) = app.get(&format!("/functions/{}", other["id"])).await;
    assert_eq!(unchanged, other);
    let (_, unchanged) = app.get(&format!("/functions/{}", first["id"])).await;
    assert_eq!(unchanged, first);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_stores_nothing() {
    let app = TestApp::start_with(|config| config.max_code_bytes = 1000).await;
    let valid = seed_function("valid");
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases: Vec<(&str, Value, u16)> = vec![
        ("missing name", without("name"), 422),
        ("missing code", without("code"), 422),
        ("missing timeout", without("timeout"), 422),
        ("empty name", with("name", json!("")), 422),
        ("name with a space", with("name", json!("my func")), 422),
        ("name with a slash", with("name", json!("a/b")), 422),
        (
            "name of 65 characters",
            with("name", json!("a".repeat(65))),
            422,
        ),
        ("name as a number", with("name", json!(5)), 422),
        ("route without a slash", with("route", json!("hello")), 422),
        ("unknown language", with("language", json!("ruby")), 422),
        (
            "unknown runtime",
            with("runtime", json!("firecracker")),
            422,
        ),
        ("timeout 0", with("timeout", json!(0)), 422),
        ("timeout 901", with("timeout", json!(901)), 422),
        ("timeout as a string", with("timeout", json!("5")), 422),
        ("fractional timeout", with("timeout", json!(1.5)), 422),
        ("memory too small", with("memory_mb", json!(8)), 422),
        ("env value not a string", with("env", json!({"A": 1})), 422),
        ("env key with a dash", with("env", json!({"A-B": "1"})), 422),
        ("empty code", with("code", json!("  ")), 422),
        (
            "code over the limit",
            with("code", json!("#".repeat(1001))),
            413,
        ),
        ("not an object", json!([1, 2]), 422),
    ];
    for (what, body, expected) in cases {
        let (status, response) = app.post("/functions/", &body).await;
        assert_eq!(status, expected, "{what}: {response}");
        assert!(response["detail"].is_string(), "{what}: {response}");
        assert!(response["code"].is_string(), "{what}: {response}");
    }

    let malformed = app
        .client
        .post(app.url("/functions/"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 422);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], "invalid_request");

    let not_json = app
        .client
        .post(app.url("/functions/"))
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);

    for path in [
        "/functions/abc",
        "/functions/1.5",
        "/functions/99999999999999999999",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 422, "{path}: {body}");
    }
    for query in ["?skip=-1", "?limit=0", "?limit=abc", "?limit=100000"] {
        let (status, _) = app.get(&format!("/functions/{query}")).await;
        assert_eq!(status, 422, "{query}");
    }

    let (_, list) = app.get("/functions/").await;
    assert_eq!(list, json!([]), "nothing was stored");

    // An update with bad input leaves the function as it was.
    let created = app.create_function(valid.clone()).await;
    let (status, _) = app
        .put(
            &format!("/functions/{}", created["id"]),
            &with("timeout", json!(0)),
        )
        .await;
    assert_eq!(status, 422);
    let (_, unchanged) = app.get(&format!("/functions/{}", created["id"])).await;
    assert_eq!(unchanged, created);
    app.stop().await;
}

#[tokio::test]
async fn health_probes_answer() {
    let app = TestApp::start().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], true);
    assert_eq!(body["broker"], true);
    app.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_callers_own_or_a_fresh_one() {
    let app = TestApp::start().await;
    let request_id = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-request-id")
            .expect("an X-Request-Id")
            .to_str()
            .expect("ASCII")
            .to_owned()
    };
    let mut made = std::collections::HashSet::new();
    for path in [
        "/healthz",
        "/functions/",
        "/functions/999999",
        "/no-such-route",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let id = request_id(&response);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        assert!(made.insert(id.clone()), "{path}: {id} given twice");
    }
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "trace-from-the-caller-42")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&response), "trace-from-the-caller-42");
    app.stop().await;
}

#[tokio::test]
async fn nul_characters_in_code_or_env_are_422_naming_the_field_and_store_nothing() {
    let app = TestApp::start().await;
    let valid = seed_function("nul");
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let cases = [
        (
            "code",
            with(
                "code",
                json!("def handler(event, context):\n    return 'a\u{0}b'"),
            ),
        ),
        ("env", with("env", json!({"GREETING": "a\u{0}b"}))),
        ("env", with("env", json!({"A\u{0}B": "1"}))),
    ];
    for (field, body) in &cases {
        let (status, response) = app.post("/functions/", body).await;
        assert_eq!(status, 422, "{field}: {response}");
        assert_eq!(response["code"], "invalid_request", "{response}");
        let detail = response["detail"].as_str().unwrap();
        assert!(detail.starts_with(field), "names {field}: {detail}");
    }
    let (_, list) = app.get("/functions/").await;
    assert_eq!(list, json!([]), "nothing was stored");

    // An update with a NUL is refused the same way and changes nothing.
    let created = app.create_function(valid.clone()).await;
    for (field, body) in &cases {
        let (status, response) = app
            .put(&format!("/functions/{}", created["id"]), body)
            .await;
        assert_eq!(status, 422, "{field}: {response}");
    }
    let (_, unchanged) = app.get(&format!("/functions/{}", created["id"])).await;
    assert_eq!(unchanged, created);
    app.stop().await;
}

#[tokio::test]
async fn the_list_filtered_by_name_holds_that_function_alone_or_nothing() {
    let app = TestApp::start().await;
    app.create_function(seed_function("alpha")).await;
    let beta = app.create_function(seed_function("beta")).await;
    // Another namespace's function of the same name is never found from this one.
    let other = app.caller(Some(&app.namespace_with_key("other", &["manage"]).await));
    let mut theirs = seed_function("beta");
    theirs["route"] = json!("/their-beta");
    let (status, theirs) = other.post("/functions/", &theirs).await;
    assert_eq!(status, 201, "{theirs}");

    let (status, list) = app.get("/functions/?name=beta").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, json!([beta]));
    let (_, list) = other.get("/functions/?name=beta").await;
    assert_eq!(list, json!([theirs]));
    let (_, list) = app.get("/functions/?name=gamma").await;
    assert_eq!(list, json!([]));
    // The page is taken after the filter.
    let (_, list) = app.get("/functions/?name=beta&skip=1").await;
    assert_eq!(list, json!([]));

    for query in [
        "name=",
        "name=has%20space",
        &format!("name={}", "a".repeat(65)),
    ] {
        let (status, body) = app.get(&format!("/functions/?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["code"], "invalid_request");
        assert!(
            body["detail"].as_str().unwrap().starts_with("name must be"),
            "{body}"
        );
    }
    app.stop().await;
}

/// `(attempt, created_at)` of the one dependency build, as stored.
async fn build_row(app: &TestApp) -> (uuid::Uuid, chrono::DateTime<chrono::Utc>) {
    let row = app
        .db()
        .await
        .query_one("SELECT attempt, created_at FROM builds", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_version_and_build_and_any_change_is_saved() {
    let app = TestApp::start().await;
    let mut body = seed_function("steady");
    body["dependencies"] = json!("six==1.16.0\n");
    body["env"] = json!({"GREETING": "hi"});
    body["http_methods"] = json!(["GET", "POST"]);
    body["cors"] = json!({"allow_origins": ["https://app.example.com"], "max_age": 60});
    body["schedule"] = json!("0 0 1 1 *");
    body["max_retries"] = json!(1);
    let created = app.create_function(body.clone()).await;
    let path = format!("/functions/{}", created["id"]);
    let build = build_row(&app).await;
    let (_, before) = app.get(&path).await;

    // The same body, and the same dependencies written otherwise (a comment, blank lines):
    // answered at once as stored, even with `?wait=true` and the build still pending.
    let mut commented = body.clone();
    commented["dependencies"] = json!("# the one we need\n\nsix==1.16.0   # pinned\n");
    for same in [&body, &commented] {
        let started = std::time::Instant::now();
        let (status, answered) = app.put(&format!("{path}?wait=true"), same).await;
        assert_eq!(status, 200, "{answered}");
        assert_eq!(answered, before, "the function as stored");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
    let (_, after) = app.get(&path).await;
    assert_eq!(after, before, "nothing was written");
    assert_eq!(after["version"], 1);
    assert_eq!(after["dependencies"], "six==1.16.0\n");
    assert_eq!(build_row(&app).await, build, "no build was started");

    // Any change is a new version (the same dependencies share the build under way).
    let mut changed = body.clone();
    changed["env"] = json!({"GREETING": "hello"});
    let (status, saved) = app.put(&path, &changed).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 2);
    assert_ne!(saved["updated_at"], before["updated_at"]);
    assert_eq!(build_row(&app).await, build);

    // A build that failed is retried by saving the same function again: that is a save.
    app.db()
        .await
        .execute(
            "UPDATE builds SET status = 'failed', finished_at = now()",
            &[],
        )
        .await
        .unwrap();
    let (status, retried) = app.put(&path, &changed).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["version"], 3);
    assert_eq!(retried["build"]["status"], "pending");
    assert_ne!(build_row(&app).await.0, build.0, "a new attempt");
    app.stop().await;
}
