//! What one namespace may store (issue 21): a refused save keeps no artifact, and each quota
//! (functions, keys, pending async calls, artifact bytes, result bytes), set small by an admin
//! with `PATCH /namespaces/{name}`, refuses with its own code.

use crate::support::{Caller, TestApp};
use base64::Engine as _;
use common::Runtime;
use serde_json::{Value, json};
use std::io::Write;

/// A Python package of `main.py` with `text` and `padding` bytes of incompressible data, base64.
fn package(text: &str, padding: usize) -> String {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer.start_file("main.py", stored).unwrap();
    writer.write_all(text.as_bytes()).unwrap();
    if padding > 0 {
        writer.start_file("padding.bin", stored).unwrap();
        let noise: Vec<u8> = (0..padding).map(|_| rand_byte()).collect();
        writer.write_all(&noise).unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(writer.finish().unwrap().into_inner())
}

/// A byte from a random UUID: incompressible padding, so that a package's stored size is
/// about its padding.
fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

fn packaged(name: &str, zip: &str) -> Value {
    json!({
        "name": name, "route": format!("/quota/{name}"), "language": "python",
        "handler": "main.handler", "code_zip": zip, "timeout": 5,
    })
}

/// Artifacts stored, and their bytes.
async fn artifacts(app: &TestApp) -> (i64, i64) {
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM artifacts),
                    (SELECT coalesce(sum(octet_length(data)), 0)::bigint FROM artifact_chunks)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_refused_save_stores_no_artifact() {
    let app = TestApp::start().await;
    let first = package("def handler(event, context):\n    return 1\n", 0);
    let created = app.create_function(packaged("taken", &first)).await;
    let before = artifacts(&app).await;
    assert_eq!(before.0, 1, "the package is stored");

    // A fresh 2 MB package with a taken name, then with a taken route: 409, nothing kept.
    let fresh = package("def handler(event, context):\n    return 2\n", 2_000_000);
    let (status, body) = app.post("/functions/", &packaged("taken", &fresh)).await;
    assert_eq!((status, &body["code"]), (409, &json!("conflict")), "{body}");
    let mut route_taken = packaged("other", &fresh);
    route_taken["route"] = created["route"].clone();
    let (status, body) = app.post("/functions/", &route_taken).await;
    assert_eq!((status, &body["code"]), (409, &json!("conflict")), "{body}");
    // An update of a function that is not there: 404, nothing kept.
    let (status, body) = app.put("/functions/999999", &packaged("x", &fresh)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(artifacts(&app).await, before, "no artifact was kept");

    // The same package saved properly is stored then.
    let (status, body) = app.post("/functions/", &packaged("fresh", &fresh)).await;
    assert_eq!(status, 201, "{body}");
    let after = artifacts(&app).await;
    assert_eq!(after.0, 2);
    assert!(after.1 > before.1 + 2_000_000, "{after:?}");
    app.stop().await;
}

/// Polls invocation `id` as `caller` until its status is `status`; panics after 30 s.
async fn wait_for_status(caller: &Caller, id: &str, status: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (code, body) = caller.get(&format!("/invocations/{id}")).await;
        if code == 200 && body["status"] == status {
            return body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "invocation {id} not {status}: {code} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Asserts that `answer` is a refusal with status `status` and code `code`, whose detail names
/// the limit.
fn refused(answer: (u16, Value), status: u16, code: &str, limit: i64) {
    let (got, body) = answer;
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("limit {limit}")) && detail.contains("in use"),
        "{detail}"
    );
}

#[tokio::test]
async fn each_quota_set_by_an_admin_refuses_with_its_code() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let key = app
        .namespace_with_key("tight", &["manage", "invoke", "read"])
        .await;
    let tenant = app.caller(Some(&key));

    // Bad patches change nothing; only an admin may patch.
    for bad in [
        json!({"quotas": {"keys": -1}}),
        json!({"quotas": {"keys": 1.5}}),
        json!({"quotas": {"key": 1}}),
        json!({"name": "other"}),
    ] {
        let (status, body) = app.patch("/namespaces/tight", &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, _) = tenant
        .patch("/namespaces/tight", &json!({"quotas": {"keys": 5}}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .patch("/namespaces/never-was", &json!({"quotas": {"keys": 5}}))
        .await;
    assert_eq!(status, 404);

    let quotas = json!({"functions": 2, "keys": 2, "pending_async": 1,
                        "artifact_bytes": 1_000_000, "result_bytes": 100});
    let (status, body) = app
        .patch("/namespaces/tight", &json!({ "quotas": quotas }))
        .await;
    assert_eq!((status, &body["quotas"]), (200, &quotas), "{body}");
    assert_eq!(body["quotas_in_force"], quotas, "{body}");
    let (_, listed) = app.get("/namespaces/").await;
    let tight = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "tight")
        .unwrap();
    assert_eq!(tight["quotas"], quotas);
    let default = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "default")
        .unwrap();
    assert_eq!(default["quotas"]["functions"], Value::Null);
    assert_eq!(default["quotas_in_force"]["functions"], 1000);
    assert_eq!(default["quotas_in_force"]["pending_async"], 10_000);

    // keys: one made with the namespace, a second, then the third is refused.
    let minted = json!({"namespace": "tight", "scopes": ["read"]});
    assert_eq!(app.post("/keys/", &minted).await.0, 201);
    refused(app.post("/keys/", &minted).await, 429, "quota_keys", 2);

    // artifact_bytes: a 2 MB package is over 1 MB; functions: the third is refused.
    let mut slow = crate::support::python(
        "slow",
        "import time\ndef handler(event, context):\n    time.sleep(2)\n    return 'x' * 1000",
    );
    slow["route"] = json!("/tight-slow");
    slow["max_retries"] = json!(0);
    assert_eq!(tenant.post("/functions/", &slow).await.0, 201);
    let before = artifacts(&app).await;
    let big = package("def handler(event, context):\n    return 1\n", 2_000_000);
    refused(
        tenant.post("/functions/", &packaged("big", &big)).await,
        413,
        "quota_artifact_bytes",
        1_000_000,
    );
    assert_eq!(
        artifacts(&app).await,
        before,
        "the refused package is not kept"
    );
    let small = package("def handler(event, context):\n    return 1\n", 0);
    assert_eq!(
        tenant
            .post("/functions/", &packaged("small", &small))
            .await
            .0,
        201
    );
    let mut third = crate::support::python("third", "def handler(event, context):\n    return 3");
    third["route"] = json!("/tight-third");
    refused(
        tenant.post("/functions/", &third).await,
        429,
        "quota_functions",
        2,
    );

    // pending_async: one running, the next refused (with Retry-After).
    let (status, first) = tenant
        .post("/execute_async/slow", &json!({"event": {}}))
        .await;
    assert_eq!(status, 202, "{first}");
    let response = tenant
        .client
        .post(format!("{}/execute_async/slow", app.base_url))
        .json(&json!({"event": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("10".to_owned())
    );
    refused(
        crate::support::read(response).await,
        429,
        "quota_pending_async",
        1,
    );

    // result_bytes: the running call's 1000-byte result is over 100: stored as a marker, and
    // then new calls are refused until the quota is raised.
    let id = first["invocation_id"].as_str().unwrap();
    let done = wait_for_status(&tenant, id, "succeeded").await;
    assert_eq!(done["result"], Value::Null, "{done}");
    assert_eq!(done["error"]["kind"], "ResultDropped", "{done}");
    assert!(
        done["logs"]
            .as_str()
            .is_some_and(|logs| logs.contains("quota result_bytes")),
        "{done}"
    );
    refused(
        tenant
            .post("/execute_async/slow", &json!({"event": {}}))
            .await,
        413,
        "quota_result_bytes",
        100,
    );
    // Back to the platform's default (null): accepted again.
    let (status, body) = app
        .patch(
            "/namespaces/tight",
            &json!({"quotas": {"result_bytes": null}}),
        )
        .await;
    assert_eq!(
        (status, &body["quotas"]["result_bytes"]),
        (200, &Value::Null)
    );
    assert_eq!(body["quotas"]["keys"], 2, "absent fields are unchanged");
    assert_eq!(
        tenant
            .post("/execute_async/slow", &json!({"event": {}}))
            .await
            .0,
        202
    );
    app.stop().await;
}
