//! HTTP triggers end to end: functions called on their route, on the functions' own origin,
//! by plain HTTP clients, with real workers (Docker and gVisor) and real containers.

use crate::support::{TestApp, read, worker_config};
use common::Runtime;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use std::time::Duration;

/// A Python handler that answers with the event it got, as JSON.
const ECHO_PY: &str = "import json\ndef handler(event, context):\n    return {'statusCode': 200, 'headers': {'content-type': 'application/json', 'x-route-key': event['routeKey']}, 'body': json.dumps(event)}";

fn function(name: &str, route: &str, language: &str, code: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": name, "route": route, "language": language, "code": code, "timeout": 5,
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// What a browser or a webhook sender would use: no key unless given one.
fn plain_client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn a_route_runs_its_function_with_the_payload_2_0_event_on_docker_and_gvisor() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    app.create_function(function(
        "echo",
        "/users/{id}/files/{path+}",
        "python",
        ECHO_PY,
        json!({"http_auth": "none"}),
    ))
    .await;
    app.create_function(function(
        "binary",
        "/bin",
        "javascript",
        "exports.handler = async (event) => ({ statusCode: 201, headers: { 'content-type': 'application/octet-stream', 'x-method': event.requestContext.http.method }, cookies: ['a=1; Path=/', 'b=2'], isBase64Encoded: true, body: Buffer.from([0, 255, 1]).toString('base64') });",
        json!({"http_auth": "none", "runtime": "gvisor", "http_methods": ["POST", "PUT", "POST"]}),
    ))
    .await;
    app.create_function(function(
        "plain",
        "/plain",
        "javascript",
        "exports.handler = async (event) => ({ got: event.body, b64: event.isBase64Encoded, q: event.queryStringParameters });",
        json!({"http_auth": "none"}),
    ))
    .await;

    let client = plain_client();
    let response = client
        .put(app.fn_url("/users/J%C3%BCrgen/files/a/b.txt?x=1&y=two%20words&x=2"))
        .header("cookie", "session=abc; theme=dark")
        .header("x-multi", "one")
        .header("user-agent", "trigger-test")
        .body(r#"{"hello": "world"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-route-key"],
        "ANY /users/{id}/files/{path+}"
    );
    assert!(response.headers().contains_key("x-faas-invocation-id"));
    let invocation_id = response.headers()["x-faas-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/users/J%C3%BCrgen/files/a/b.txt");
    assert_eq!(event["rawQueryString"], "x=1&y=two%20words&x=2");
    assert_eq!(
        event["queryStringParameters"],
        json!({"x": "1,2", "y": "two words"})
    );
    assert_eq!(
        event["pathParameters"],
        json!({"id": "Jürgen", "path": "a/b.txt"})
    );
    assert_eq!(event["cookies"], json!(["session=abc", "theme=dark"]));
    assert_eq!(event["headers"]["x-multi"], "one");
    assert!(event["headers"].get("cookie").is_none());
    assert_eq!(event["body"], r#"{"hello": "world"}"#);
    assert_eq!(event["isBase64Encoded"], false);
    let context = &event["requestContext"];
    assert_eq!(context["http"]["method"], "PUT");
    assert_eq!(context["http"]["path"], "/users/J%C3%BCrgen/files/a/b.txt");
    assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(context["http"]["userAgent"], "trigger-test");
    assert_eq!(context["requestId"], invocation_id.as_str());
    assert!(context["timeEpoch"].as_u64().unwrap() > 1_700_000_000_000);

    // A body that is not UTF-8 travels in base64; the answer's base64 body is decoded, its
    // status, headers and cookies kept. On gVisor, as the function says.
    let response = client
        .post(app.fn_url("/bin"))
        .body(vec![0xffu8, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.headers()["x-method"], "POST");
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &[0u8, 255, 1]);

    // Other methods: 405 with what the route allows.
    let response = client.get(app.fn_url("/bin")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST, PUT");
    let (_, body) = read(response).await;
    assert_eq!(body["code"], "method_not_allowed");

    // A result without statusCode is 200 JSON; a binary body arrives base64-encoded.
    let response = client
        .post(app.fn_url("/plain?q=1"))
        .body(vec![0xffu8, 0x01])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let (_, body) = read(response).await;
    assert_eq!(body, json!({"got": "/wE=", "b64": true, "q": {"q": "1"}}));

    // Unknown routes: 404 in the platform's JSON.
    let (status, body) = read(client.get(app.fn_url("/nowhere")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "route_not_found");
    assert!(
        body["detail"].as_str().unwrap().contains("/nowhere"),
        "{body}"
    );

    // Calls are recorded and counted as the http trigger.
    let mut triggers = Vec::new();
    for _ in 0..40 {
        let (_, records) = app.get("/metrics/?function=echo").await;
        triggers = records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["trigger"].clone())
            .collect();
        if !triggers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(triggers, vec![json!("http")]);
    let metrics = crate::support::scrape(&app.metrics_url).await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("faas_invocations_total")
                && line.contains("function=\"binary\"")
                && line.contains("runtime=\"gvisor\"")
                && line.contains("trigger=\"http\"")
                && line.contains("status=\"success\"")),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_keyed_route_wants_an_invoke_key_of_its_namespace_and_never_passes_keys_on() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let manager = app.namespace_with_key("shop", &["manage"]).await;
    let invoker = app.key_of("shop", &["invoke"]).await;
    let reader = app.key_of("shop", &["read"]).await;
    let stranger = app.namespace_with_key("other", &["invoke"]).await;
    let shop = app.caller(Some(&manager));
    let (status, body) = shop
        .post(
            "/functions/",
            &function("orders", "/shop/orders", "python", ECHO_PY, json!({})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["http_auth"], "key", "the default");
    let (status, body) = shop
        .post(
            "/functions/",
            &function(
                "hook",
                "/shop/hook",
                "python",
                ECHO_PY,
                json!({"http_auth": "none"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let client = plain_client();
    let call = |key: Option<&str>, path: &str| {
        let mut request = client.post(app.fn_url(path)).body("{}");
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let (status, body) = read(call(None, "/shop/orders").await.unwrap()).await;
    expect_error(status, &body, 401, "unauthorized");
    let (status, body) = read(call(Some("faas_nonsense"), "/shop/orders").await.unwrap()).await;
    expect_error(status, &body, 401, "unauthorized");
    let (status, body) = read(call(Some(&stranger), "/shop/orders").await.unwrap()).await;
    expect_error(status, &body, 403, "forbidden");
    let (status, body) = read(call(Some(&reader), "/shop/orders").await.unwrap()).await;
    expect_error(status, &body, 403, "forbidden");
    let (status, event) = read(call(Some(&invoker), "/shop/orders").await.unwrap()).await;
    assert_eq!(status, 200, "{event}");
    assert!(
        event["headers"].get("authorization").is_none(),
        "the platform's key is not the function's business: {event}"
    );

    // A public route takes anyone, passes its own credentials on, but not a key of the
    // platform sent there by mistake.
    let response = client
        .post(app.fn_url("/shop/hook"))
        .header("authorization", "Bearer webhook-secret")
        .send()
        .await
        .unwrap();
    let (status, event) = read(response).await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["headers"]["authorization"], "Bearer webhook-secret");
    for key in [invoker.as_str(), crate::support::ADMIN_KEY] {
        let (status, event) = read(call(Some(key), "/shop/hook").await.unwrap()).await;
        assert_eq!(status, 200, "{event}");
        assert!(event["headers"].get("authorization").is_none(), "{event}");
    }
    app.stop().await;
}

#[tokio::test]
async fn failures_get_the_execute_statuses_and_a_public_route_keeps_the_details_in() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let raising = "def handler(event, context):\n    raise ValueError('secret detail')";
    for (name, auth) in [("raise_keyed", "key"), ("raise_public", "none")] {
        app.create_function(function(
            name,
            &format!("/{name}"),
            "python",
            raising,
            json!({"http_auth": auth}),
        ))
        .await;
    }
    app.create_function(function(
        "bad_answer",
        "/bad_answer",
        "python",
        "def handler(event, context):\n    return {'statusCode': 99}",
        json!({"http_auth": "none"}),
    ))
    .await;
    app.create_function(function(
        "slow",
        "/slow",
        "python",
        "import time\ndef handler(event, context):\n    time.sleep(5)",
        json!({"http_auth": "none", "timeout": 1}),
    ))
    .await;

    let (status, body) = read(
        app.client
            .get(app.fn_url("/raise_keyed"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_error(status, &body, 502, "function_error");
    assert!(
        body["detail"].as_str().unwrap().contains("secret detail"),
        "{body}"
    );
    assert!(body["invocation_id"].is_string());

    let client = plain_client();
    let (status, body) = read(
        client
            .get(app.fn_url("/raise_public"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_error(status, &body, 502, "function_error");
    assert!(body["invocation_id"].is_string());
    assert!(!body.to_string().contains("secret detail"), "{body}");
    assert!(
        body.get("logs").is_none() && body.get("error").is_none(),
        "{body}"
    );

    let (status, body) = read(client.get(app.fn_url("/bad_answer")).send().await.unwrap()).await;
    expect_error(status, &body, 502, "invalid_response");

    let (status, body) = read(client.get(app.fn_url("/slow")).send().await.unwrap()).await;
    expect_error(status, &body, 504, "function_timeout");

    // Over the event limit: 413, and nothing runs.
    let big = vec![b'x'; 6 * 1024 * 1024 + 1];
    let (status, body) = read(
        client
            .post(app.fn_url("/raise_public"))
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_error(status, &body, 413, "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn ambiguous_malformed_and_catch_all_routes_are_refused_and_nothing_changes() {
    let app = TestApp::start().await;
    let manager = app.namespace_with_key("tenant", &["manage"]).await;
    let tenant = app.caller(Some(&manager));
    let code = "def handler(event, context):\n    return 1";
    let (status, body) = tenant
        .post(
            "/functions/",
            &function("item", "/items/{id}", "python", code, json!({})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = tenant
        .post(
            "/functions/",
            &function("item2", "/items/{name}", "python", code, json!({})),
        )
        .await;
    expect_error(status, &body, 409, "conflict");
    assert!(
        body["detail"].as_str().unwrap().contains("/items/{}"),
        "{body}"
    );

    for (route, extra, why) in [
        ("/items/{id", json!({}), "whole {parameter}"),
        ("/a//b", json!({}), "must not be empty"),
        ("/{rest+}/x", json!({}), "last segment"),
        ("/ok", json!({"http_methods": ["FETCH"]}), "http_methods"),
        ("/ok", json!({"http_methods": []}), "http_methods"),
        ("/ok", json!({"http_auth": "maybe"}), "http_auth"),
        (
            "/ok",
            json!({"cors": {"allow_origins": ["nope"]}}),
            "allow_origins",
        ),
        ("/ok", json!({"http_methods": ["get"]}), "upper case"),
    ] {
        let (status, body) = tenant
            .post(
                "/functions/",
                &function("bad", route, "python", code, extra),
            )
            .await;
        assert_eq!(status, 422, "{route}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{route}: {body}"
        );
    }
    // A route that would answer every unclaimed path, other namespaces' too, is the admin's.
    let (status, body) = tenant
        .post(
            "/functions/",
            &function("squat", "/{proxy+}", "python", code, json!({})),
        )
        .await;
    expect_error(status, &body, 403, "forbidden");
    let (status, body) = tenant.get("/functions/").await;
    assert_eq!(status, 200);
    assert_eq!(
        body.as_array().unwrap().len(),
        1,
        "nothing was made: {body}"
    );
    let (status, _) = app
        .post(
            "/functions/",
            &function("fallback", "/{proxy+}", "python", code, json!({})),
        )
        .await;
    assert_eq!(status, 201);
    app.stop().await;
}

#[tokio::test]
async fn a_route_that_would_take_another_namespaces_requests_is_409_and_the_victim_still_answers() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let victim = app.caller(Some(&app.namespace_with_key("shop-b", &["manage"]).await));
    let attacker = app.caller(Some(&app.namespace_with_key("shop-a", &["manage"]).await));
    let owner =
        "def handler(event, context):\n    return {'owner': 'b', 'item': event['pathParameters']}";
    let thief = "def handler(event, context):\n    return {'owner': 'a'}";
    for (name, route) in [("item", "/shop-x/{item}"), ("files", "/files/{rest+}")] {
        let (status, body) = victim
            .post(
                "/functions/",
                &function(name, route, "python", owner, json!({"http_auth": "none"})),
            )
            .await;
        assert_eq!(status, 201, "{route}: {body}");
    }
    // A literal under B's parameter, a parameter or catch-all under B's catch-all's prefix.
    for route in [
        "/shop-x/checkout",
        "/files/{name}",
        "/files/a/{rest+}",
        "/files/report",
    ] {
        let (status, body) = attacker
            .post(
                "/functions/",
                &function(
                    "thief",
                    route,
                    "python",
                    thief,
                    json!({"http_auth": "none"}),
                ),
            )
            .await;
        assert_eq!(status, 409, "{route}: {body}");
        assert_eq!(body["code"], "conflict", "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("another namespace"), "{detail}");
        assert!(
            !detail.contains("shop-b"),
            "the other namespace is not named: {detail}"
        );
    }
    // Nor by an update of a function it has, to such a route.
    let (status, made) = attacker
        .post(
            "/functions/",
            &function(
                "thief",
                "/elsewhere",
                "python",
                thief,
                json!({"http_auth": "none"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let (status, body) = attacker
        .put(
            &format!("/functions/{}", made["id"]),
            &function(
                "thief",
                "/shop-x/checkout",
                "python",
                thief,
                json!({"http_auth": "none"}),
            ),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // A less specific route gets only what B's routes do not answer: it is allowed.
    let (status, body) = attacker
        .post(
            "/functions/",
            &function(
                "wide",
                "/shop-x/{rest+}",
                "python",
                thief,
                json!({"http_auth": "none"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let response = plain_client()
        .get(app.fn_url("/shop-x/a/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["owner"], "a",
        "a path only A's route matches: {answer}"
    );

    let client = plain_client();
    for path in ["/shop-x/checkout", "/files/report", "/files/a/b"] {
        let response = client.get(app.fn_url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["owner"], "b", "{path}: {answer}");
    }
    let (_, listed) = attacker.get("/functions/").await;
    let routes: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["route"].as_str().unwrap())
        .collect();
    assert_eq!(
        routes.len(),
        2,
        "only the allowed routes were made: {routes:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn cors_preflights_are_answered_without_the_function_or_a_key() {
    // No worker: a preflight that reached the function would fail.
    let app = TestApp::start().await;
    let cors = json!({
        "allow_origins": ["https://app.example.com"],
        "allow_headers": ["content-type", "authorization"],
        "expose_headers": ["x-faas-invocation-id"],
        "max_age": 600,
    });
    let (status, body) = app
        .post(
            "/functions/",
            &function(
                "api",
                "/api/{proxy+}",
                "python",
                ECHO_PY,
                json!({"cors": cors, "http_methods": ["GET", "POST"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["cors"]["max_age"], 600);
    let client = plain_client();
    let mut headers = HeaderMap::new();
    headers.insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    headers.insert(
        "access-control-request-method",
        HeaderValue::from_static("POST"),
    );
    let response = client
        .request(reqwest::Method::OPTIONS, app.fn_url("/api/orders"))
        .headers(headers.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let answer = response.headers();
    assert_eq!(
        answer["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(answer["access-control-allow-methods"], "GET, POST");
    assert_eq!(
        answer["access-control-allow-headers"],
        "content-type, authorization"
    );
    assert_eq!(answer["access-control-max-age"], "600");

    headers.insert("origin", HeaderValue::from_static("https://evil.example"));
    let response = client
        .request(reqwest::Method::OPTIONS, app.fn_url("/api/orders"))
        .headers(headers)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // A real request from the allowed origin: its answer (here 401, no key) is readable.
    let response = client
        .get(app.fn_url("/api/orders"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        response.headers()["access-control-expose-headers"],
        "x-faas-invocation-id"
    );
    app.stop().await;
}

#[tokio::test]
async fn route_changes_reach_every_replica() {
    let mut app = TestApp::start().await;
    app.add_worker(worker_config(Runtime::Docker, &app.prefix.clone()))
        .await;
    let replica = app.add_api_replica().await;
    let code = "def handler(event, context):\n    return {'v': 1, 'path': event['rawPath']}";
    let created = app
        .create_function(function(
            "moving",
            "/before",
            "python",
            code,
            json!({"http_auth": "none"}),
        ))
        .await;
    let id = created["id"].as_i64().unwrap();
    let client = plain_client();
    let get = |base: String, path: &'static str| {
        let client = client.clone();
        async move { read(client.get(format!("{base}{path}")).send().await.unwrap()).await }
    };
    // Its own replica answers at once; the other once the event arrives.
    assert_eq!(get(app.functions_url.clone(), "/before").await.0, 200);
    let answered = wait_for_status(|| get(replica.functions_url.clone(), "/before"), 200).await;
    assert_eq!(answered["v"], 1);

    let mut moved = function(
        "moving",
        "/after/{x}",
        "python",
        &code.replace("'v': 1", "'v': 2"),
        json!({"http_auth": "none"}),
    );
    moved["timeout"] = json!(5);
    let (status, body) = app.put(&format!("/functions/{id}"), &moved).await;
    assert_eq!(status, 200, "{body}");
    let answered = wait_for_status(|| get(replica.functions_url.clone(), "/after/1"), 200).await;
    assert_eq!(answered["v"], 2);
    wait_for_status(|| get(replica.functions_url.clone(), "/before"), 404).await;

    let (status, _) = app.delete(&format!("/functions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(get(app.functions_url.clone(), "/after/1").await.0, 404);
    wait_for_status(|| get(replica.functions_url.clone(), "/after/1"), 404).await;
    app.stop().await;
}

/// Fails unless the answer is the platform's JSON error with `status` and `code`.
fn expect_error(status: u16, body: &Value, expected: u16, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
}

/// Calls `call` until it answers `status` (within 5 s); returns that answer's body.
async fn wait_for_status<F, Fut>(call: F, status: u16) -> Value
where
    F: Fn() -> Fut,
    Fut: Future<Output = (u16, Value)>,
{
    let mut last = (0, Value::Null);
    for _ in 0..50 {
        last = call().await;
        if last.0 == status {
            return last.1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {status}, last got {} {}", last.0, last.1);
}

/// A function's page (HTML with a cookie) answers only on the functions' origin; the api's
/// origin, `/docs` included, serves no route of a function and may not be framed.
#[tokio::test]
async fn a_functions_page_answers_only_on_its_own_origin_and_the_api_cannot_be_framed() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let page = "def handler(event, context):\n    return {'statusCode': 200, \
        'headers': {'content-type': 'text/html'}, 'cookies': ['session=tenant; Path=/'], \
        'body': '<h1>a tenant page</h1>'}";
    let (status, body) = app
        .post(
            "/functions/",
            &function(
                "page",
                "/page",
                "python",
                page,
                json!({"http_auth": "none"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let client = plain_client();
    let response = client.get(app.fn_url("/page")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert!(
        response.headers().get("content-security-policy").is_none(),
        "the function's answer is its own"
    );
    assert_eq!(response.text().await.unwrap(), "<h1>a tenant page</h1>");

    // Not on the api's origin, under the old prefix or at the root.
    for path in ["/page", "/fn/page"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path} on the api's origin");
        assert!(response.headers().get("set-cookie").is_none(), "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("a tenant page"), "{path}: {body}");
    }
    // Nor does the functions' origin serve the api: its paths are routes like any other.
    for path in ["/docs", "/functions/", "/openapi.json"] {
        let (status, body) = read(client.get(app.fn_url(path)).send().await.unwrap()).await;
        expect_error(status, &body, 404, "route_not_found");
    }
    // Every answer of the api's origin forbids framing and sniffing, the page and the
    // document as much as an error.
    for path in ["/docs", "/openapi.json", "/functions/", "/nowhere"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(
            headers["content-security-policy"], "frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
    app.stop().await;
}
