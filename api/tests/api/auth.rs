//! Namespaces and API keys against the real api and Postgres: every 401, 403 and 404 path,
//! isolation between two namespaces on every endpoint, revocation across two replicas, the
//! gVisor-only namespace, bad input, and keys absent from a dump of the database.

use crate::support::{
    ADMIN_KEY, Caller, TestApp, amqp_url, free_local_addr, python, wait_for_api_process,
    worker_config,
};
use common::Runtime;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn function(name: &str, route: &str) -> Value {
    let mut body = python(
        name,
        "import os\ndef handler(event, context):\n    return os.environ.get('SECRET', 'none')",
    );
    body["route"] = json!(route);
    body["env"] = json!({"SECRET": "s3cr3t"});
    body
}

/// Sends `header` as the raw `Authorization` value (`None`: no header).
async fn with_authorization(app: &TestApp, path: &str, header: Option<&[u8]>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url(path))
        .json(&function("x", "/x"));
    if let Some(value) = header {
        let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_missing_malformed_unknown_or_wrong_key_is_401_and_changes_nothing() {
    let app = TestApp::start().await;
    let long = format!("Bearer {}", "k".repeat(10 * 1024));
    let unknown = format!(
        "Bearer faas_{}_{}",
        uuid::Uuid::new_v4().simple(),
        "x".repeat(43)
    );
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("no header", None),
        ("no scheme", Some(ADMIN_KEY.as_bytes().to_vec())),
        (
            "wrong scheme",
            Some(format!("Basic {ADMIN_KEY}").into_bytes()),
        ),
        ("empty", Some(Vec::new())),
        ("scheme only", Some(b"Bearer ".to_vec())),
        ("10 KB long", Some(long.into_bytes())),
        (
            "non-ASCII",
            Some("Bearer clé-\u{e9}t\u{e9}".as_bytes().to_vec()),
        ),
        ("unknown key", Some(unknown.into_bytes())),
        (
            "the admin key, one character off",
            Some(format!("Bearer {ADMIN_KEY}x").into_bytes()),
        ),
    ];
    for (what, header) in cases {
        let response = with_authorization(&app, "/functions/", header.as_deref()).await;
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(
            response.headers()[reqwest::header::WWW_AUTHENTICATE],
            "Bearer",
            "{what}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized", "{what}: {body}");
    }
    let (status, functions) = app.get("/functions/").await;
    assert_eq!((status, functions), (200, json!([])), "nothing was stored");
    // Probes need no key.
    let (status, _) = app.caller(None).get("/healthz").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn each_scope_opens_only_its_own_endpoints() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let manage = app.namespace_with_key("team", &["manage"]).await;
    let invoke = app.key_of("team", &["invoke"]).await;
    let read = app.key_of("team", &["read"]).await;
    let (status, created) = app
        .caller(Some(&manage))
        .post("/functions/", &function("f", "/team-f"))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["namespace"], "team");
    let id = created["id"].as_i64().unwrap();

    // (key, method, path) -> expected status
    let f = format!("/functions/{id}");
    let expectations: Vec<(&str, &str, &str, u16)> = vec![
        (&invoke, "POST", "/functions/", 403),
        (&read, "POST", "/functions/", 403),
        (&invoke, "GET", "/functions/", 403),
        (&read, "GET", "/functions/", 200),
        (&read, "GET", &f, 200),
        (&read, "PUT", &f, 403),
        (&invoke, "DELETE", &f, 403),
        (&read, "DELETE", &f, 403),
        (&read, "POST", "/execute/f", 403),
        (&manage, "POST", "/execute/f", 403),
        (&invoke, "POST", "/execute/f", 200),
        (&invoke, "GET", "/metrics/", 403),
        (&read, "GET", "/metrics/", 200),
        (&invoke, "GET", "/keys/", 403),
        (&read, "POST", "/keys/", 403),
        (&manage, "GET", "/namespaces/", 403),
        (&manage, "POST", "/namespaces/", 403),
        (&manage, "DELETE", "/namespaces/team", 403),
        (&invoke, "GET", "/whoami", 200),
    ];
    for (key, method, path, expected) in expectations {
        let caller = app.caller(Some(key));
        let body = match path {
            "/namespaces/" => json!({"name": "other"}),
            "/keys/" => json!({"scopes": ["read"]}),
            p if p.starts_with("/execute") => json!({"event": {}}),
            _ => function("f", "/team-f"),
        };
        let (status, answer) = match method {
            "GET" => caller.get(path).await,
            "POST" => caller.post(path, &body).await,
            "PUT" => caller.put(path, &body).await,
            _ => caller.delete(path).await,
        };
        assert_eq!(status, expected, "{method} {path}: {answer}");
        if status == 403 {
            assert_eq!(answer["code"], "forbidden", "{answer}");
        }
    }
    // env values only for manage.
    let (_, seen_by_read) = app.caller(Some(&read)).get(&f).await;
    assert_eq!(
        seen_by_read["env"],
        json!({"SECRET": null}),
        "{seen_by_read}"
    );
    let (_, seen_by_manage) = app.caller(Some(&manage)).get(&f).await;
    assert_eq!(seen_by_manage["env"], json!({"SECRET": "s3cr3t"}));
    let (status, me) = app.caller(Some(&read)).get("/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(me["namespace"], "team");
    assert_eq!(me["scopes"], json!(["read"]));
    assert_eq!(me["key_id"].as_str().unwrap().len(), 32);
    app.stop().await;
}

#[tokio::test]
async fn a_namespace_sees_nothing_of_another_on_any_endpoint() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let a = app
        .namespace_with_key("alpha", &["manage", "invoke", "read"])
        .await;
    let b = app
        .namespace_with_key("beta", &["manage", "invoke", "read"])
        .await;
    let (alpha, beta) = (app.caller(Some(&a)), app.caller(Some(&b)));
    let (status, created) = alpha
        .post("/functions/", &function("shared-name", "/alpha-f"))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, _) = alpha
        .post(
            "/execute/shared-name",
            &json!({"event": {"secret": "alpha's"}}),
        )
        .await;
    assert_eq!(status, 200);

    // Beta: as if alpha's function did not exist, on every endpoint.
    let path = format!("/functions/{id}");
    let answers = [
        ("list", beta.get("/functions/").await),
        ("read", beta.get(&path).await),
        (
            "update",
            beta.put(&path, &function("stolen", "/stolen")).await,
        ),
        ("delete", beta.delete(&path).await),
        (
            "execute",
            beta.post("/execute/shared-name", &json!({"event": {}}))
                .await,
        ),
        (
            "execute_gvisor",
            beta.post("/execute_gvisor/shared-name", &json!({"event": {}}))
                .await,
        ),
        ("records", beta.get("/metrics/").await),
        (
            "records of the name",
            beta.get("/metrics/?function=shared-name").await,
        ),
        ("keys", beta.get("/keys/").await),
    ];
    for (what, (status, body)) in &answers {
        let text = body.to_string();
        assert!(!text.contains("alpha"), "{what} leaks alpha: {text}");
        match *what {
            "list" | "records" | "records of the name" => {
                assert_eq!(
                    (*status, body.as_array().map(Vec::len)),
                    (200, Some(0)),
                    "{what}: {body}"
                )
            }
            "keys" => {
                assert_eq!(*status, 200);
                assert!(
                    body.as_array()
                        .unwrap()
                        .iter()
                        .all(|k| k["namespace"] == "beta"),
                    "{body}"
                );
            }
            _ => assert_eq!(*status, 404, "{what}: {body}"),
        }
    }
    // Alpha's function is untouched; beta may use the same name, not the same route.
    let (_, still) = alpha.get(&path).await;
    assert_eq!(still["version"], 1);
    let (status, body) = beta
        .post("/functions/", &function("shared-name", "/alpha-f"))
        .await;
    assert_eq!(status, 409, "routes are unique across namespaces: {body}");
    assert!(!body.to_string().contains("alpha\""), "{body}");
    let (status, body) = beta
        .post("/functions/", &function("shared-name", "/beta-f"))
        .await;
    assert_eq!(
        status, 201,
        "names are unique within a namespace only: {body}"
    );
    let (status, body) = beta
        .post("/execute/shared-name", &json!({"event": {}}))
        .await;
    assert_eq!((status, body["result"].clone()), (200, json!("s3cr3t")));
    let (_, records) = alpha.get("/metrics/").await;
    assert_eq!(
        records.as_array().unwrap().len(),
        1,
        "alpha sees only its own call"
    );
    assert!(records[0]["namespace"] == "alpha");
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_replica_within_seconds() {
    let mut app = TestApp::start().await;
    let other = app.add_api_replica().await.base_url;
    let key = app.namespace_with_key("revoked", &["read"]).await;
    let on_other = Caller::new(&other, Some(&key));
    let (status, _) = on_other.get("/functions/").await;
    assert_eq!(status, 200, "the replica verified (and cached) the key");
    let (status, listed) = app.get("/keys/?namespace=revoked").await;
    assert_eq!(status, 200);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].get("key").is_none(),
        "no secret in a listing: {listed:?}"
    );
    assert!(!listed[0].to_string().contains(&key[40..]), "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    let (status, body) = app.delete(&format!("/keys/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let revoked_at = Instant::now();
    let mut refused_after = None;
    while revoked_at.elapsed() < Duration::from_secs(5) {
        if on_other.get("/functions/").await.0 == 401 {
            refused_after = Some(revoked_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_after = refused_after.expect("the other replica still took the key after 5 s");
    println!("revoked key refused by the other replica after {refused_after:?}");
    let (status, _) = app.delete(&format!("/keys/{id}")).await;
    assert_eq!(status, 404, "a revoked key is gone");
    app.stop().await;
}

#[tokio::test]
async fn manage_keys_mint_only_invoke_and_read_keys_of_their_own_namespace() {
    let app = TestApp::start().await;
    let manage = app.namespace_with_key("minting", &["manage"]).await;
    let _elsewhere = app.namespace_with_key("elsewhere", &["read"]).await;
    let minter = app.caller(Some(&manage));
    let (status, made) = minter
        .post(
            "/keys/",
            &json!({"scopes": ["invoke", "read"], "description": "ci"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["namespace"], "minting");
    assert!(made["key"].as_str().unwrap().starts_with("faas_"));
    for (body, why) in [
        (json!({"scopes": ["manage"]}), "manage"),
        (json!({"scopes": ["admin"]}), "admin"),
        (
            json!({"scopes": ["read"], "namespace": "elsewhere"}),
            "another namespace",
        ),
    ] {
        let (status, answer) = minter.post("/keys/", &body).await;
        assert_eq!(status, 403, "{why}: {answer}");
    }
    let (_, listed) = minter.get("/keys/").await;
    let listed = listed.as_array().unwrap();
    assert!(
        listed.iter().all(|k| k["namespace"] == "minting"),
        "{listed:?}"
    );
    // It revokes the invoke/read key it made, but not its own manage key.
    let made_id = made["id"].as_str().unwrap();
    let own_id = listed
        .iter()
        .find(|k| k["scopes"] == json!(["manage"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(minter.delete(&format!("/keys/{own_id}")).await.0, 403);
    assert_eq!(minter.delete(&format!("/keys/{made_id}")).await.0, 200);
    // Another namespace's key does not exist for it.
    let (_, all) = app.get("/keys/?namespace=elsewhere").await;
    let elsewhere_id = all[0]["id"].as_str().unwrap();
    assert_eq!(minter.delete(&format!("/keys/{elsewhere_id}")).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn bad_keys_and_namespaces_are_a_clear_4xx_and_store_nothing() {
    let app = TestApp::start().await;
    let cases = [
        (
            "/keys/",
            json!({"scopes": ["invoke", "root"]}),
            422,
            "unknown scope",
        ),
        ("/keys/", json!({"scopes": []}), 422, "no scope"),
        (
            "/keys/",
            json!({"scopes": "read"}),
            422,
            "scopes not a list",
        ),
        (
            "/keys/",
            json!({"scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
            422,
            "expired",
        ),
        (
            "/keys/",
            json!({"scopes": ["read"], "namespace": "nowhere"}),
            404,
            "no such namespace",
        ),
        (
            "/keys/",
            json!({"scopes": ["read"], "extra": 1}),
            422,
            "unknown field",
        ),
        (
            "/namespaces/",
            json!({"name": "Bad_Name"}),
            422,
            "invalid name",
        ),
        ("/namespaces/", json!({"name": ""}), 422, "empty name"),
        ("/namespaces/", json!({"name": "-x"}), 422, "leading hyphen"),
        (
            "/namespaces/",
            json!({"name": "ok", "allowed_runtimes": []}),
            422,
            "no runtime",
        ),
        (
            "/namespaces/",
            json!({"name": "ok", "allowed_runtimes": ["kvm"]}),
            422,
            "unknown runtime",
        ),
        (
            "/namespaces/",
            json!({"name": "ok", "max_concurrency": 0}),
            422,
            "zero limit",
        ),
        ("/namespaces/", json!({"name": "default"}), 409, "taken"),
    ];
    for (path, body, expected, what) in cases {
        let (status, answer) = app.post(path, &body).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(
            answer["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {answer}"
        );
    }
    let (_, namespaces) = app.get("/namespaces/").await;
    assert_eq!(
        namespaces.as_array().unwrap().len(),
        1,
        "only default: {namespaces}"
    );
    let (_, keys) = app.get("/keys/").await;
    assert_eq!(keys, json!([]), "no key was stored");

    // Default never goes; another goes with its functions and keys (namespace_deletion.rs).
    let manage = app.namespace_with_key("doomed", &["manage"]).await;
    let doomed = app.caller(Some(&manage));
    let (status, _) = doomed
        .post("/functions/", &function("f", "/doomed-f"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(app.delete("/namespaces/default").await.0, 409);
    assert_eq!(app.delete("/namespaces/never-was").await.0, 404);
    assert_eq!(app.delete("/namespaces/doomed").await.0, 200);
    assert_eq!(
        doomed.get("/functions/").await.0,
        401,
        "a deleted namespace's key"
    );

    // An expired key is refused.
    let (status, made) = app
        .post("/keys/", &json!({"scopes": ["read"], "expires_at": chrono::Utc::now() + chrono::Duration::seconds(2)}))
        .await;
    assert_eq!(status, 201, "{made}");
    let expiring = app.caller(made["key"].as_str());
    assert_eq!(expiring.get("/functions/").await.0, 200);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(expiring.get("/functions/").await.0, 401, "expired");
    app.stop().await;
}

#[tokio::test]
async fn a_gvisor_only_namespace_never_runs_under_runc() {
    let mut app = TestApp::start().await;
    // Only a gVisor worker: a call that went to runc would find no worker (503).
    app.add_worker(worker_config(Runtime::Gvisor, &app.prefix.clone()))
        .await;
    let (status, body) = app
        .post(
            "/namespaces/",
            &json!({"name": "untrusted", "allowed_runtimes": ["gvisor"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["allowed_runtimes"], json!(["gvisor"]));
    let key = app.key_of("untrusted", &["manage", "invoke", "read"]).await;
    let tenant = app.caller(Some(&key));
    let mut docker = function("f", "/untrusted-f");
    docker["runtime"] = json!("docker");
    let (status, body) = tenant.post("/functions/", &docker).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("gvisor"),
        "{body}"
    );
    let (status, created) = tenant
        .post("/functions/", &function("f", "/untrusted-f"))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["runtime"], "gvisor",
        "the default is what the namespace allows"
    );
    let (status, body) = tenant.post("/execute/f", &json!({"event": {}})).await;
    assert_eq!(status, 200, "/execute runs it under gVisor: {body}");
    let (_, records) = tenant.get("/metrics/").await;
    assert_eq!(records[0]["runtime"], "gvisor");
    app.stop().await;
}

#[tokio::test]
async fn a_namespace_limit_holds_across_its_functions() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let (status, body) = app
        .post(
            "/namespaces/",
            &json!({"name": "capped", "max_concurrency": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = app.key_of("capped", &["manage", "invoke"]).await;
    let tenant = app.caller(Some(&key));
    for name in ["one", "two"] {
        let body = python(
            name,
            "import time\ndef handler(event, context):\n    time.sleep(2)\n    return 1",
        );
        let mut body = body;
        body["route"] = json!(format!("/capped-{name}"));
        assert_eq!(tenant.post("/functions/", &body).await.0, 201);
    }
    let first = {
        let tenant = app.caller(Some(&key));
        tokio::spawn(async move { tenant.post("/execute/one", &json!({"event": {}})).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = tenant.post("/execute/two", &json!({"event": {}})).await;
    assert_eq!(status, 429, "another function of the namespace: {body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("namespace capped"),
        "{body}"
    );
    assert_eq!(first.await.unwrap().0, 200);
    app.stop().await;
}

/// Runs `pg_dump` of `database_url` and returns the dump.
fn pg_dump(database_url: &str) -> String {
    let output = std::process::Command::new("pg_dump")
        .args(["--data-only", database_url])
        .output()
        .expect("pg_dump runs (Debian's postgresql-client)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn no_key_can_be_read_back_from_a_dump_of_the_database() {
    let app = TestApp::start().await;
    let key = app.namespace_with_key("dumped", &["manage"]).await;
    // `faas_<id>_<secret>`: the secret is base64url, which may itself hold `_`.
    let secret = key.splitn(3, '_').nth(2).unwrap().to_owned();
    assert!(secret.len() >= 40, "{key}");
    let dump = pg_dump(&app.database_url);
    assert!(dump.contains("api_keys"), "the dump holds the keys table");
    assert!(!dump.contains(&secret), "a key's secret is in the dump");
    assert!(!dump.contains(ADMIN_KEY), "the ADMIN_KEY is in the dump");
    app.stop().await;
}

#[tokio::test]
async fn without_admin_key_the_first_start_makes_one_and_prints_it_once() {
    // The in-process app provides the database and queues; the binary shares them.
    let app = TestApp::start().await;
    let start = || {
        let api_addr = free_local_addr();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_api"))
            .env("DATABASE_URL", &app.database_url)
            .env("AMQP_URL", amqp_url())
            .env("QUEUE_PREFIX", &app.prefix)
            .env("API_ADDR", api_addr.to_string())
            .env("METRICS_ADDR", free_local_addr().to_string())
            .env("FUNCTIONS_ADDR", free_local_addr().to_string())
            .env("RUST_LOG", "warn")
            .env("LOG_FORMAT", "json")
            .env_remove("ADMIN_KEY")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the api binary starts");
        (child, format!("http://{api_addr}"))
    };
    let stop = |mut child: tokio::process::Child| async move {
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let _ = child.wait().await;
        let mut out = String::new();
        use tokio::io::AsyncReadExt;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        out
    };

    let (mut first, base) = start();
    wait_for_api_process(&mut first, &base).await;
    let log = stop(first).await;
    let line = log
        .lines()
        .find(|line| line.contains("admin_key"))
        .unwrap_or_else(|| panic!("no admin key in the log:\n{log}"));
    let made: Value = serde_json::from_str(line).unwrap();
    let key = made["admin_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("faas_"), "{line}");

    let (mut second, base) = start();
    wait_for_api_process(&mut second, &base).await;
    let (status, me) = Caller::new(&base, Some(&key)).get("/whoami").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["scopes"], json!(["admin"]));
    let log = stop(second).await;
    assert!(
        !log.contains("admin_key"),
        "printed once, not at every start:\n{log}"
    );
    app.stop().await;
}
