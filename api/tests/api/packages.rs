//! Deployment packages (`code_zip`): Lambda-style multi-file .zip packages, checked by the api,
//! stored as artifacts, fetched and mounted by real workers, and imported as Lambda imports them
//! (the package root first on the import path and the working directory), on both runtimes.
//! Bad packages are refused and leave nothing behind.

use crate::deps::{app_with_token, cache_dir, deps_worker};
use crate::support::TestApp;
use base64::Engine as _;
use common::Runtime;
use serde_json::{Value, json};
use std::io::Write;
use zip::write::SimpleFileOptions;

type ZipWriter = zip::ZipWriter<std::io::Cursor<Vec<u8>>>;

/// A zip of `files`, base64.
fn zip_of(files: &[(&str, &str)]) -> String {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        writer
            .start_file(*name, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    encode(writer.finish().unwrap().into_inner())
}

fn encode(bytes: Vec<u8>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn packaged(name: &str, language: &str, handler: &str, zip: &str) -> Value {
    json!({
        "name": name, "route": format!("/pkg/{name}"), "language": language,
        "handler": handler, "code_zip": zip, "timeout": 10,
    })
}

/// The guide's layout: the handler module, a helper module, a package with a submodule, and a
/// data file read through a relative path (the working directory is the package root).
fn python_package() -> String {
    zip_of(&[
        (
            "lambda_function.py",
            "import json
import logging
import os
import helpers
from shop.prices import total

logger = logging.getLogger()
logger.setLevel(logging.INFO)

def lambda_handler(event, context):
    logger.info('order of %d items', len(event['items']))
    with open('data/tax.json') as f:
        tax = json.load(f)['rate']
    return {
        'statusCode': 200,
        'headers': {'Content-Type': 'application/json'},
        'body': json.dumps({
            'greeting': helpers.greet(event['name']),
            'total': total(event['items'], tax),
            'cwd': os.getcwd(),
            'module': helpers.__file__,
        }),
    }
",
        ),
        (
            "helpers.py",
            "def greet(name):\n    return 'Hello, ' + name\n",
        ),
        ("shop/__init__.py", ""),
        (
            "shop/prices.py",
            "def total(items, tax):\n    return round(sum(items) * (1 + tax), 2)\n",
        ),
        ("data/tax.json", "{\"rate\": 0.5}"),
    ])
}

/// An ES module handler importing a sibling module, and a CommonJS one requiring a nested
/// file, in one package.
fn javascript_package() -> String {
    zip_of(&[
        (
            "index.mjs",
            "import { greet } from './lib/greet.mjs';
const config = await Promise.resolve({ punctuation: '!' });
export const handler = async (event, context) => ({
  statusCode: 200,
  body: JSON.stringify({ greeting: greet(event.name) + config.punctuation, cwd: process.cwd() }),
});
",
        ),
        (
            "lib/greet.mjs",
            "export function greet(name) { return `Hello, ${name}`; }\n",
        ),
        (
            "src/app.js",
            "const util = require('./util/sum.js');
exports.handler = (event, context, callback) => callback(null, { sum: util.sum(event.items) });
",
        ),
        (
            "src/util/sum.js",
            "module.exports.sum = (xs) => xs.reduce((a, b) => a + b, 0);\n",
        ),
        // A .js file is an ES module where its package.json says so, as on Lambda.
        ("esm/package.json", "{\"type\": \"module\"}"),
        (
            "esm/app.js",
            "import { greet } from '../lib/greet.mjs';\nexport const handler = async (event) => greet(event.name);\n",
        ),
    ])
}

async fn app_with_fetchers() -> (TestApp, Vec<std::path::PathBuf>) {
    let mut app = app_with_token().await;
    let docker_cache = cache_dir("pkg-docker");
    let gvisor_cache = cache_dir("pkg-gvisor");
    let docker = deps_worker(&app, Runtime::Docker, &docker_cache, false);
    let gvisor = deps_worker(&app, Runtime::Gvisor, &gvisor_cache, false);
    // Each worker caches under its own id.
    let caches = vec![docker.worker_cache_dir(), gvisor.worker_cache_dir()];
    app.add_worker(docker).await;
    app.add_worker(gvisor).await;
    (app, caches)
}

#[tokio::test]
async fn multi_file_packages_import_as_on_lambda_on_both_runtimes() {
    let (app, caches) = app_with_fetchers().await;
    let body = packaged(
        "shop",
        "python",
        "lambda_function.lambda_handler",
        &python_package(),
    );
    let created = app.create_function(body.clone()).await;
    assert_eq!(created["code"], Value::Null, "{created}");
    let digest = created["package"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64, "{created}");
    assert_eq!(created["package"]["files"], 5, "{created}");
    assert!(created["package"]["zip_bytes"].as_i64().unwrap() > 0);
    // The same files saved again are the same artifact.
    let mut copy = body.clone();
    copy["name"] = json!("shop2");
    copy["route"] = json!("/pkg/shop2");
    let again = app.create_function(copy).await;
    assert_eq!(again["package"]["digest"], digest.as_str());

    let event = json!({"name": "Ada", "items": [1, 2, 3]});
    for endpoint in ["execute", "execute_gvisor"] {
        let (status, answer) = app.invoke(endpoint, "shop", event.clone()).await;
        assert_eq!(status, 200, "{endpoint}: {answer}");
        assert_eq!(answer["result"]["statusCode"], 200, "{endpoint}: {answer}");
        let inner: Value =
            serde_json::from_str(answer["result"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(inner["greeting"], "Hello, Ada", "{endpoint}");
        assert_eq!(inner["total"], 9.0, "{endpoint}");
        assert_eq!(inner["cwd"], "/opt/faas/package", "{endpoint}");
        assert_eq!(
            inner["module"], "/opt/faas/package/helpers.py",
            "{endpoint}"
        );
        let logs = answer["logs"].as_str().unwrap();
        assert!(
            logs.contains("[INFO]") && logs.contains("order of 3 items"),
            "{endpoint}: {logs}"
        );
    }
    // Each worker fetched the package into its own cache.
    for cache in &caches {
        assert!(cache.join(&digest).join("shop/prices.py").is_file());
    }

    let js = javascript_package();
    app.create_function(packaged("greet", "javascript", "index.handler", &js))
        .await;
    app.create_function(packaged("sum", "javascript", "src/app.handler", &js))
        .await;
    app.create_function(packaged("typed", "javascript", "esm/app.handler", &js))
        .await;
    for endpoint in ["execute", "execute_gvisor"] {
        let (status, answer) = app.invoke(endpoint, "greet", json!({"name": "Bo"})).await;
        assert_eq!(status, 200, "{endpoint}: {answer}");
        let inner: Value =
            serde_json::from_str(answer["result"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            inner,
            json!({"greeting": "Hello, Bo!", "cwd": "/opt/faas/package"})
        );
        let (status, answer) = app
            .invoke(endpoint, "sum", json!({"items": [4, 5, 6]}))
            .await;
        assert_eq!(status, 200, "{endpoint}: {answer}");
        assert_eq!(answer["result"], json!({"sum": 15}), "{endpoint}");
        let (status, answer) = app.invoke(endpoint, "typed", json!({"name": "Cy"})).await;
        assert_eq!(status, 200, "{endpoint}: {answer}");
        assert_eq!(answer["result"], "Hello, Cy", "{endpoint}");
    }

    // Updating the package runs the new files; going back to plain code works too.
    let id = created["id"].as_i64().unwrap();
    let changed = zip_of(&[(
        "lambda_function.py",
        "def lambda_handler(event, context):\n    return 'v2'\n",
    )]);
    let (status, updated) = app
        .put(
            &format!("/functions/{id}"),
            &packaged("shop", "python", "lambda_function.lambda_handler", &changed),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_ne!(updated["package"]["digest"], digest.as_str());
    let (_, answer) = app.invoke("execute", "shop", json!({})).await;
    assert_eq!(answer["result"], "v2", "{answer}");
    let (status, plain) = app
        .put(
            &format!("/functions/{id}"),
            &json!({"name": "shop", "route": "/pkg/shop", "language": "python", "timeout": 5,
                    "code": "def handler(event, context):\n    return 'v3'\n"}),
        )
        .await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["package"], Value::Null);
    let (_, answer) = app.invoke("execute", "shop", json!({})).await;
    assert_eq!(answer["result"], "v3", "{answer}");

    // A package whose module fails to import is Lambda's init error, naming the module.
    let broken = zip_of(&[(
        "main.py",
        "import not_installed\ndef h(e, c):\n    return 1\n",
    )]);
    app.create_function(packaged("broken", "python", "main.h", &broken))
        .await;
    let (status, answer) = app.invoke("execute", "broken", json!({})).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(
        answer["error"]["type"], "Runtime.ImportModuleError",
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not_installed"),
        "{answer}"
    );

    app.stop().await;
    for cache in caches {
        let _ = std::fs::remove_dir_all(cache.parent().unwrap_or(&cache));
    }
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

const GOOD_MAIN: (&str, &str) = ("main.py", "def handler(event, context):\n    return 1\n");

/// A zip of `main.py` and whatever `entry` adds.
fn main_and(entry: &dyn Fn(&mut ZipWriter)) -> String {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(GOOD_MAIN.0, SimpleFileOptions::default())
        .unwrap();
    writer.write_all(GOOD_MAIN.1.as_bytes()).unwrap();
    entry(&mut writer);
    encode(writer.finish().unwrap().into_inner())
}

/// Saving `code_zip` with `handler` (create, and update of a good function) is 422 with a
/// detail that says `says`, and leaves no function, version or artifact behind.
async fn assert_refused(code_zip: Value, handler: &str, says: &str) {
    let app = TestApp::start().await;
    let mut body = packaged("bad", "python", handler, "");
    body["code_zip"] = code_zip;
    let (status, answer) = app.post("/functions/", &body).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["code"], "invalid_request");
    let detail = answer["detail"].as_str().unwrap();
    assert!(detail.contains(says), "{detail}");
    assert_eq!(count(&app, "functions").await, 0);
    let good = app
        .create_function(packaged(
            "good",
            "python",
            "main.handler",
            &zip_of(&[GOOD_MAIN]),
        ))
        .await;
    let id = good["id"].as_i64().unwrap();
    body["name"] = json!("good");
    body["route"] = json!("/pkg/good");
    let (status, answer) = app.put(&format!("/functions/{id}"), &body).await;
    assert_eq!(status, 422, "{answer}");
    let (_, after) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(after["version"], 1, "a refused update changed the function");
    assert_eq!(
        count(&app, "artifacts").await,
        1,
        "a refused package left its artifact"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_zip_entry_that_climbs_out_of_the_root_is_refused() {
    let traversal = zip_of(&[GOOD_MAIN, ("../../etc/cron.d/evil", "* * * * * root sh\n")]);
    assert_refused(json!(traversal), "main.handler", "outside the package root").await;
    let absolute = zip_of(&[GOOD_MAIN, ("/etc/cron.d/evil", "* * * * * root sh\n")]);
    assert_refused(json!(absolute), "main.handler", "outside the package root").await;
}

#[tokio::test]
async fn a_symlink_out_of_the_root_is_refused() {
    let symlink_out = main_and(&|writer| {
        writer
            .add_symlink(
                "lib/passwd",
                "../../../etc/passwd",
                SimpleFileOptions::default(),
            )
            .unwrap();
    });
    assert_refused(json!(symlink_out), "main.handler", "symlink").await;
}

#[tokio::test]
async fn a_zip_bomb_is_refused() {
    let bomb = main_and(&|writer| {
        writer
            .start_file("zeros.bin", SimpleFileOptions::default())
            .unwrap();
        writer.write_all(&vec![0u8; 8 * 1024 * 1024]).unwrap();
    });
    assert_refused(json!(bomb), "main.handler", "zip bomb").await;
}

#[tokio::test]
async fn what_is_not_a_zip_is_refused() {
    let not_a_zip = encode(b"this is a tarball, honest".to_vec());
    assert_refused(json!(not_a_zip), "main.handler", "not a zip").await;
    assert_refused(json!("@@@@"), "main.handler", "base64").await;
}

#[tokio::test]
async fn a_handler_whose_file_is_not_in_the_package_is_refused() {
    let other = zip_of(&[("other.py", "def handler(event, context):\n    return 1\n")]);
    assert_refused(json!(other), "main.handler", "main.py").await;
    // A package's handler must name its file.
    assert_refused(json!(zip_of(&[GOOD_MAIN])), "handler", "file.name").await;
}

#[tokio::test]
async fn a_function_takes_code_or_code_zip_not_both_nor_neither() {
    let app = TestApp::start().await;
    let mut both = packaged("bad", "python", "main.handler", &zip_of(&[GOOD_MAIN]));
    both["code"] = json!(GOOD_MAIN.1);
    let (status, answer) = app.post("/functions/", &both).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("not both"));
    let mut neither = both.clone();
    neither.as_object_mut().unwrap().remove("code");
    neither.as_object_mut().unwrap().remove("code_zip");
    let (status, answer) = app.post("/functions/", &neither).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("code_zip"));
    assert_eq!(count(&app, "functions").await, 0);
    assert_eq!(count(&app, "artifacts").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_package_sized_body_is_read_only_for_a_key_that_may_save_functions() {
    let app = TestApp::start().await;
    // Over a single-source function's body limit (2 × MAX_CODE_BYTES and room for JSON).
    let large = vec![b' '; 3 * 1024 * 1024];
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .post(app.url("/functions/"))
        .header("content-type", "application/json")
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let reader = app.key_of("default", &["read"]).await;
    let response = crate::support::client_with_key(&reader)
        .post(app.url("/functions/"))
        .header("content-type", "application/json")
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // A key with `manage` gets its body read: a body of spaces is not JSON.
    let response = app
        .client
        .post(app.url("/functions/"))
        .header("content-type", "application/json")
        .body(large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn artifacts_no_function_names_are_collected() {
    let app = TestApp::start_with(|config| {
        config.artifact_grace_secs = 0;
        config.retention_interval_secs = 1;
    })
    .await;
    let first = zip_of(&[("main.py", "def handler(event, context):\n    return 1\n")]);
    let second = zip_of(&[("main.py", "def handler(event, context):\n    return 2\n")]);
    let created = app
        .create_function(packaged("gc", "python", "main.handler", &first))
        .await;
    let id = created["id"].as_i64().unwrap();
    let old = created["package"]["digest"].as_str().unwrap().to_owned();
    let (status, updated) = app
        .put(
            &format!("/functions/{id}"),
            &packaged("gc", "python", "main.handler", &second),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let new = updated["package"]["digest"].as_str().unwrap().to_owned();
    let stored = |digest: String| {
        let url = app.database_url.clone();
        async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let row = client
                .query_one(
                    "SELECT count(*) FROM artifacts WHERE digest = $1",
                    &[&digest],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) == 1
        }
    };
    let collected = |digest: String| async move {
        for _ in 0..100 {
            if !stored(digest.clone()).await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        collected(old).await,
        "the replaced package was not collected in 10 s"
    );
    assert!(
        stored(new.clone()).await,
        "the package in use was collected"
    );
    assert_eq!(
        count(&app, "artifact_chunks").await,
        1,
        "one package of one chunk is left"
    );
    // Deleted, the function no longer holds its package either.
    let (status, _) = app.delete(&format!("/functions/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        collected(new).await,
        "the deleted function's package was not collected in 10 s"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_same_files_zipped_again_change_nothing_and_store_nothing() {
    let app = TestApp::start().await;
    let files = [GOOD_MAIN, ("lib/util.py", "X = 1\n")];
    let created = app
        .create_function(packaged("same", "python", "main.handler", &zip_of(&files)))
        .await;
    let path = format!("/functions/{}", created["id"]);
    let renewed = || async {
        let row = app
            .db()
            .await
            .query_one("SELECT created_at FROM artifacts", &[])
            .await
            .unwrap();
        row.get::<_, chrono::DateTime<chrono::Utc>>(0)
    };
    let stored_at = renewed().await;

    // Zipped again, in another order with other compression: another zip, the same files.
    let mut writer = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files.iter().rev() {
        let stored =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        writer.start_file(*name, stored).unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    let again = encode(writer.finish().unwrap().into_inner());
    assert_ne!(again, zip_of(&files));
    let (status, answered) = app
        .put(&path, &packaged("same", "python", "main.handler", &again))
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered, created, "the function as stored, at version 1");
    assert_eq!(
        renewed().await,
        stored_at,
        "the artifact was not written again"
    );

    // Other files are a new version.
    let changed = zip_of(&[("main.py", "def handler(event, context):\n    return 2\n")]);
    let (status, updated) = app
        .put(&path, &packaged("same", "python", "main.handler", &changed))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_ne!(updated["package"]["digest"], created["package"]["digest"]);
    app.stop().await;
}
