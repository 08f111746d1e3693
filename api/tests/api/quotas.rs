//! What one namespace may store (issue 21): a refused save keeps no artifact, and each quota
//! (functions, keys, pending async calls, artifact bytes, result bytes), set small by an admin
//! with `PATCH /namespaces/{name}`, refuses with its own code.

use crate::support::TestApp;
use base64::Engine as _;
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
