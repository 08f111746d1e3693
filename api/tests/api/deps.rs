//! Function dependencies end to end: real builds (`six` from PyPI, `is-number` from npm) in the
//! real build images, artifacts through the api and Postgres, host caches of real workers, and
//! the functions importing them on both runtimes with no network at run time.

use crate::support::{TestApp, WorkerProcess, javascript, python, worker_config};
use common::Runtime;
use serde_json::{Value, json};

pub(crate) const WORKER_TOKEN: &str = "test-worker-token-0123456789abcdef-0123";
/// The host's CA bundle: the package registries are reachable from a container on Docker's
/// bridge only through this machine's TLS interception, which it trusts.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A scratch directory for one worker's artifact cache.
pub(crate) fn cache_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "faas-deps-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A worker of `runtime` that can fetch artifacts (and, with `builds`, build them).
pub(crate) fn deps_worker(
    app: &TestApp,
    runtime: Runtime,
    cache: &std::path::Path,
    builds: bool,
) -> worker::Config {
    let mut config = worker_config(runtime, &app.prefix);
    config.deps.worker_token = Some(WORKER_TOKEN.to_owned());
    config.deps.api_url = app.base_url.clone();
    config.deps.cache_dir = cache.to_owned();
    config.deps.ca_bundle = Some(CA_BUNDLE.into());
    config.deps.builds = builds;
    config.deps.build_timeout_secs = 120;
    config
}

/// Waits until a worker consumes the build queue: a worker consumes its job queue first, and
/// `?wait=true` answers at once while no worker takes builds.
pub(crate) async fn wait_for_builder(app: &TestApp) {
    let connection = common::broker::connect(&crate::support::amqp_url(), "faas-test")
        .await
        .expect("RabbitMQ is not reachable (AMQP_URL)");
    let channel = connection.create_channel().await.unwrap();
    let topology = common::broker::Topology::new(&app.prefix);
    for _ in 0..300 {
        if topology.declare_build_queue(&channel).await.unwrap() > 0 {
            let _ = connection.close(200, "".into()).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no worker consumed the build queue in 30 s");
}

pub(crate) async fn app_with_token() -> TestApp {
    TestApp::start_with(|config| config.worker_token = Some(api::Secret(WORKER_TOKEN.into()))).await
}

/// Containers started as stem cells that mount artifact `digest`.
fn deps_stem_cells(digest: &str) -> Vec<String> {
    crate::support::containers_labelled(&["faas.stem_cell=true", &format!("faas.deps={digest}")])
}

/// The stem cells mounting `digest` once there are `count` of them, or after 60 s: a cold
/// start took 14 s when test binaries ran side by side on CI's two cores.
async fn wait_for_deps_stem_cells(digest: &str, count: usize) -> Vec<String> {
    let mut stems = Vec::new();
    for _ in 0..600 {
        stems = deps_stem_cells(digest);
        if stems.len() == count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stems
}

async fn count_builds(app: &TestApp) -> i64 {
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM builds", &[])
        .await
        .unwrap()
        .get(0)
}

const SIX: &str = "# pinned\nsix==1.16.0\n";

const PY_SIX: &str = r#"
import socket
import six

def handler(event, context):
    try:
        socket.create_connection(("pypi.org", 443), timeout=2)
        network = True
    except OSError:
        network = False
    return {"six": six.__version__, "file": six.__file__, "network": network}
"#;

#[tokio::test]
async fn python_dependencies_are_built_once_and_import_on_both_runtimes_without_network() {
    let mut app = app_with_token().await;
    let builder_cache = cache_dir("builder");
    let fetcher_cache = cache_dir("fetcher");
    // The docker worker builds; the gVisor one has an empty cache of its own, as on another host.
    app.add_worker(deps_worker(&app, Runtime::Docker, &builder_cache, true))
        .await;
    let fetcher = deps_worker(&app, Runtime::Gvisor, &fetcher_cache, false);
    let fetcher_own = fetcher.worker_cache_dir();
    app.add_worker(fetcher).await;

    let mut body = python("six-a", PY_SIX);
    body["dependencies"] = json!(SIX);
    wait_for_builder(&app).await;
    let (status, created) = app.post("/functions/?wait=true", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["build"]["status"], "ready", "{created}");
    let digest = created["build"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64);
    assert!(
        created["build"]["size_bytes"].as_i64().unwrap() > 10_000,
        "{created}"
    );
    let id = created["id"].as_i64().unwrap();
    let (status, build) = app.get(&format!("/functions/{id}/build")).await;
    assert_eq!(status, 200, "{build}");
    assert!(build["log"].as_str().unwrap().contains("six"), "{build}");

    for endpoint in ["execute", "execute_gvisor"] {
        let (status, answer) = app.invoke(endpoint, "six-a", json!({})).await;
        assert_eq!(status, 200, "{endpoint}: {answer}");
        assert_eq!(answer["result"]["six"], "1.16.0", "{endpoint}: {answer}");
        assert_eq!(
            answer["result"]["file"], "/opt/faas/deps/six.py",
            "{endpoint}"
        );
        assert_eq!(
            answer["result"]["network"], false,
            "{endpoint}: no network at run time"
        );
    }
    // The gVisor worker fetched the artifact from the api into its own cache.
    assert!(fetcher_own.join(&digest).join("six.py").is_file());
    // The mount is read-only.
    let mut writer = python(
        "six-w",
        "import six, os\ndef handler(event, context):\n    try:\n        open('/opt/faas/deps/x', 'w')\n        return 'wrote'\n    except OSError as e:\n        return type(e).__name__\n",
    );
    writer["dependencies"] = json!(SIX);
    let (status, second) = app.post("/functions/", &writer).await;
    assert_eq!(status, 201, "{second}");
    // Same inputs: the same build, ready at once, no second build.
    assert_eq!(second["build"]["status"], "ready", "{second}");
    assert_eq!(second["build"]["digest"], digest.as_str());
    assert_eq!(count_builds(&app).await, 1);
    let (status, answer) = app.invoke("execute", "six-w", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "OSError", "{answer}");
    // A warm call of a function with dependencies is an ordinary warm call.
    let (_, warm) = app.invoke("execute", "six-a", json!({})).await;
    assert_eq!(warm["cold_start"], false, "{warm}");

    // Two cold starts with the same set made it popular on the docker worker: a stem cell that
    // mounts it comes up, and a new function with the set binds it on its first call.
    let stems = wait_for_deps_stem_cells(&digest, 1).await;
    assert_eq!(stems.len(), 1, "no stem cell for the popular set");
    let mut third = python("six-c", PY_SIX);
    third["dependencies"] = json!(SIX);
    app.create_function(third).await;
    let (status, answer) = app.invoke("execute", "six-c", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cold_start"], true);
    assert_eq!(answer["result"]["six"], "1.16.0", "{answer}");
    let after = wait_for_deps_stem_cells(&digest, 2).await;
    // The one six-c bound (it keeps its label) and its replacement.
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.contains(&stems[0]),
        "six-c did not bind the stem cell"
    );

    app.stop().await;
    let _ = std::fs::remove_dir_all(builder_cache);
    let _ = std::fs::remove_dir_all(fetcher_cache);
}

#[tokio::test]
async fn javascript_dependencies_import_from_commonjs_and_es_modules() {
    let mut app = app_with_token().await;
    let cache = cache_dir("js");
    let fetcher_cache = cache_dir("js-fetcher");
    app.add_worker(deps_worker(&app, Runtime::Docker, &cache, true))
        .await;
    app.add_worker(deps_worker(&app, Runtime::Gvisor, &fetcher_cache, false))
        .await;
    let package = r#"{"name": "f", "dependencies": {"is-number": "7.0.0"}}"#;
    let mut cjs = javascript(
        "isnum-cjs",
        "const isNumber = require('is-number');\nexports.handler = async (event) => ({ five: isNumber(5), text: isNumber('x') });",
    );
    cjs["dependencies"] = json!(package);
    wait_for_builder(&app).await;
    let (status, created) = app.post("/functions/?wait=true", &cjs).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["build"]["status"], "ready", "{created}");
    let mut esm = javascript(
        "isnum-esm",
        "import isNumber from 'is-number';\nexport const handler = async () => ({ five: isNumber(5) });",
    );
    esm["dependencies"] = json!(package);
    let (status, created) = app.post("/functions/", &esm).await;
    assert_eq!(status, 201, "{created}");
    for endpoint in ["execute", "execute_gvisor"] {
        for name in ["isnum-cjs", "isnum-esm"] {
            let (status, answer) = app.invoke(endpoint, name, json!({})).await;
            assert_eq!(status, 200, "{endpoint} {name}: {answer}");
            assert_eq!(
                answer["result"]["five"], true,
                "{endpoint} {name}: {answer}"
            );
        }
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(cache);
    let _ = std::fs::remove_dir_all(fetcher_cache);
}

#[tokio::test]
async fn a_failed_build_says_why_and_never_replaces_the_running_version() {
    let mut app = app_with_token().await;
    let cache = cache_dir("fail");
    app.add_worker(deps_worker(&app, Runtime::Docker, &cache, true))
        .await;

    // Bad input: 422 naming the line or the field, and nothing stored.
    for (language, text, expected) in [
        (
            "python",
            "six\n-e git+https://example.com/x.git\n",
            "line 2",
        ),
        (
            "python",
            "--index-url https://evil.example/simple",
            "line 1",
        ),
        ("python", "git+https://github.com/benjaminp/six", "line 1"),
        ("javascript", "not json", "not JSON"),
        ("javascript", r#"{"name": "f"}"#, "dependencies"),
    ] {
        let mut body = python("bad-deps", "def handler(e, c):\n    return 1");
        body["language"] = json!(language);
        body["dependencies"] = json!(text);
        let (status, answer) = app.post("/functions/", &body).await;
        assert_eq!(status, 422, "{text}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(expected),
            "{text}: {answer}"
        );
    }
    let (_, listed) = app.get("/functions/").await;
    assert_eq!(listed, json!([]));

    // A version without dependencies runs; its update to a package that does not exist fails
    // to build, and calls keep running the version before it.
    let (status, created) = app
        .post(
            "/functions/",
            &python("keeps", "def handler(e, c):\n    return 'v1'"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let mut update = python(
        "keeps",
        "import nothing_here\ndef handler(e, c):\n    return 'v2'",
    );
    update["dependencies"] = json!("this-package-does-not-exist-faas-xyz==1.0\n");
    wait_for_builder(&app).await;
    let (status, updated) = app
        .put(&format!("/functions/{id}?wait=true"), &update)
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["build"]["status"], "failed", "{updated}");
    let (_, build) = app.get(&format!("/functions/{id}/build")).await;
    let log = build["log"].as_str().unwrap();
    assert!(
        log.contains("this-package-does-not-exist-faas-xyz"),
        "{log}"
    );
    assert!(log.contains("build failed"), "{log}");
    let (status, answer) = app.invoke("execute", "keeps", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "v1");

    // Without a runnable version before it: 409 while building, 424 once failed.
    let mut fresh = python("never", "def handler(e, c):\n    return 1");
    fresh["dependencies"] = json!("this-package-does-not-exist-faas-xyz==2.0\n");
    let (status, created) = app.post("/functions/", &fresh).await;
    assert_eq!(status, 201, "{created}");
    let (status, answer) = app.invoke("execute", "never", json!({})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "function_not_ready");
    let id = created["id"].as_i64().unwrap();
    let mut failed = false;
    for _ in 0..240 {
        let (_, function) = app.get(&format!("/functions/{id}")).await;
        if function["build"]["status"] == "failed" {
            failed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(failed, "the build did not fail within 2 minutes");
    let (status, answer) = app.invoke("execute", "never", json!({})).await;
    assert_eq!(status, 424, "{answer}");
    assert_eq!(answer["code"], "build_failed");
    assert!(
        answer["detail"].as_str().unwrap().contains("build failed"),
        "{answer}"
    );

    // The platform carries on: a function without dependencies still runs.
    let (status, answer) = app.invoke("execute", "keeps", json!({})).await;
    assert_eq!((status, answer["result"].clone()), (200, Value::from("v1")));
    app.stop().await;
    let _ = std::fs::remove_dir_all(cache);
}

/// A build status, polled until `done` says so (two minutes at most).
async fn wait_for_build(app: &TestApp, id: i64, done: impl Fn(&str) -> bool) -> Value {
    for _ in 0..1200 {
        let (_, build) = app.get(&format!("/functions/{id}/build")).await;
        if build["status"].as_str().is_some_and(&done) {
            return build;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the build did not reach the awaited status in 2 minutes");
}

#[tokio::test]
async fn a_build_whose_worker_is_killed_is_finished_by_another() {
    let app = app_with_token().await;
    let cache = cache_dir("killed");
    let env = |dir: &std::path::Path| -> Vec<(String, String)> {
        vec![
            ("WORKER_TOKEN".into(), WORKER_TOKEN.into()),
            ("API_URL".into(), app.base_url.clone()),
            ("DEPS_CACHE_DIR".into(), dir.display().to_string()),
            ("BUILD_CA_BUNDLE".into(), CA_BUNDLE.into()),
        ]
    };
    let pairs = env(&cache.join("a"));
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let first_id = format!("{}killed-a", app.prefix);
    let mut first = WorkerProcess::start_with(&app, &first_id, Runtime::Docker, &pairs).await;

    let mut body = python("survivor", PY_SIX);
    body["dependencies"] = json!(format!("six==1.16.0\n# {}\n", app.prefix));
    let (status, created) = app.post("/functions/", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    wait_for_build(&app, id, |status| status != "pending").await;
    first.signal("KILL");
    let _ = first.child.wait().await;

    // The broker gives the unacked build job to the next worker, which builds it again.
    let pairs = env(&cache.join("b"));
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let second_id = format!("{}killed-b", app.prefix);
    let _second = WorkerProcess::spawn(&app, &second_id, Runtime::Docker, &pairs);
    let build = wait_for_build(&app, id, |status| status == "ready" || status == "failed").await;
    assert_eq!(build["status"], "ready", "{build}");
    assert!(
        build["log"].as_str().unwrap().contains(&second_id),
        "{build}"
    );
    let (status, answer) = app.invoke("execute", "survivor", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["six"], "1.16.0");

    // The killed worker's build container is its to remove at its next start; here, ours.
    for container in crate::support::containers_of(&first_id) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &container])
            .output();
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(cache);
}

#[tokio::test]
async fn builds_past_their_time_or_size_fail_and_say_so() {
    let app = app_with_token().await;
    let cache = cache_dir("limits");
    let dir = cache.display().to_string();
    let common = [
        ("WORKER_TOKEN", WORKER_TOKEN),
        ("API_URL", app.base_url.as_str()),
        ("DEPS_CACHE_DIR", dir.as_str()),
        ("BUILD_CA_BUNDLE", CA_BUNDLE),
    ];
    // termcolor 1.1.0 is published only as a source archive: pip fetches setuptools into an
    // isolated environment and builds a wheel (6 s here), where six alone took 0.9 s from a
    // warm index. The build is killed at one second and failed.
    let mut env = common.to_vec();
    env.push(("BUILD_TIMEOUT_SECS", "1"));
    let slow_id = format!("{}limits-time", app.prefix);
    let mut slow = WorkerProcess::start_with(&app, &slow_id, Runtime::Docker, &env).await;
    let mut body = python("too-slow", PY_SIX);
    body["dependencies"] = json!(format!(
        "termcolor==1.1.0\nrequests==2.32.3\n# {} time\n",
        app.prefix
    ));
    wait_for_builder(&app).await;
    let (status, created) = app.post("/functions/?wait=true", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["build"]["status"], "failed", "{created}");
    let id = created["id"].as_i64().unwrap();
    let (_, build) = app.get(&format!("/functions/{id}/build")).await;
    assert!(
        build["log"]
            .as_str()
            .unwrap()
            .contains("BUILD_TIMEOUT_SECS"),
        "{build}"
    );
    slow.signal("TERM");
    // Gone before the next build is queued, so that the next worker takes it.
    let _ = slow.child.wait().await;

    // requests and its dependencies are about 3 MB: over a 1 MB cap.
    let mut env = common.to_vec();
    env.push(("BUILD_MAX_MB", "1"));
    let small_id = format!("{}limits-size", app.prefix);
    let _small = WorkerProcess::spawn(&app, &small_id, Runtime::Docker, &env);
    let mut body = python("too-big", PY_SIX);
    body["dependencies"] = json!(format!("requests==2.32.3\n# {} size\n", app.prefix));
    let (status, created) = app.post("/functions/", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let build = wait_for_build(&app, id, |status| status == "ready" || status == "failed").await;
    assert_eq!(build["status"], "failed", "{build}");
    assert!(
        build["log"].as_str().unwrap().contains("BUILD_MAX_MB"),
        "{build}"
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(cache);
}

#[tokio::test]
async fn worker_routes_need_the_worker_token() {
    let app = app_with_token().await;
    let digest = "a".repeat(64);
    for key in [
        None,
        Some("wrong-token-wrong-token-wrong-token-x"),
        Some(crate::support::ADMIN_KEY),
    ] {
        let mut request =
            reqwest::Client::new().get(app.url(&format!("/internal/artifacts/{digest}")));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{key:?}");
    }
    let response = reqwest::Client::new()
        .get(app.url(&format!("/internal/artifacts/{digest}")))
        .bearer_auth(WORKER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    app.stop().await;
}
