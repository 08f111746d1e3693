//! The worker against the real Docker daemon, without a broker: start-up checks, the sandbox
//! every function container gets, and what happens to containers that time out or die. (How
//! the pool schedules and what the executor decides are unit-tested in src/pool/ and
//! src/executor.rs without a daemon.)

use crate::support::{config, container_exists, harness, harness_with, job, raw, value};
use bollard::query_parameters::InspectContainerOptions;
use common::{Job, Language, ReplyStatus, Runtime};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use worker::{Config, DockerPool, StemKind, WorkerError};

async fn start_error(config: Config) -> WorkerError {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // `run` checks Docker before it touches the broker, so these fail fast with no broker call.
    worker::run(config, listener, std::future::pending())
        .await
        .expect_err("the worker must refuse to start")
}

#[tokio::test]
async fn worker_refuses_to_start_without_docker_or_images_and_finds_a_missing_runsc() {
    let mut no_docker = config(Runtime::Docker);
    no_docker.docker_host = "unix:///nonexistent/docker.sock".into();
    let error = start_error(no_docker).await;
    assert!(
        matches!(error, WorkerError::DockerUnreachable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("/nonexistent/docker.sock"),
        "{error}"
    );

    let mut no_image = config(Runtime::Docker);
    no_image.python_image = "faas-no-such-image".into();
    let error = start_error(no_image).await;
    assert!(matches!(error, WorkerError::ImageMissing { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("docker build -t faas-no-such-image docker/python"),
        "the message names the command that builds it: {error}"
    );

    // Without runsc a gVisor worker does not exit (api/tests/lifecycle.rs shows it standing
    // by); the check it makes names the runtime it looked for.
    let mut no_runsc = config(Runtime::Gvisor);
    no_runsc.gvisor_runtime = "runsc-missing".into();
    let docker = worker::preflight(&no_runsc).await.expect("Docker answers");
    let error = worker::check_runtime(&docker, &no_runsc)
        .await
        .expect_err("the daemon has no runsc-missing runtime");
    assert!(
        matches!(error, WorkerError::RuntimeMissing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("runsc-missing"), "{error}");
}

const PROBE: &str = r#"
import os
def handler(event, context):
    def fails(action):
        try:
            action()
            return False
        except OSError:
            return True
    def write_root():
        with open('/probe', 'w') as f:
            f.write('x')
    def write_tmp():
        with open('/tmp/probe', 'w') as f:
            f.write('x')
    status = open('/proc/self/status').read()
    cap_eff = [line.split()[1] for line in status.splitlines() if line.startswith('CapEff')][0]
    no_new_privs = [line.split()[1] for line in status.splitlines() if line.startswith('NoNewPrivs')]
    interfaces = [line.split(':')[0].strip() for line in open('/proc/net/dev').read().splitlines()[2:]]
    return {
        'uid': os.getuid(), 'gid': os.getgid(),
        'root_read_only': fails(write_root), 'tmp_writable': not fails(write_tmp),
        'cap_eff': cap_eff, 'no_new_privs': no_new_privs,
        'interfaces': sorted(interfaces),
        'env': sorted(k for k in os.environ if k not in ('PATH', 'HOME', 'HOSTNAME', 'PWD', 'LANG', 'PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED', 'NODE_VERSION', 'PYTHON_VERSION', 'GPG_KEY', 'SHLVL', '_', 'LC_CTYPE')),
    }
"#;

async fn check_sandbox(runtime: Runtime) {
    let h = harness(runtime).await;
    let env = BTreeMap::from([("SECRET_SETTING".to_owned(), "42".to_owned())]);
    let reply = h.call(&job(1, PROBE, 10_000, env)).await;
    assert_eq!(reply.status, ReplyStatus::Success, "{runtime}: {reply:?}");
    let probe = value(&reply);
    assert_eq!(probe["uid"], 65534, "{runtime}: {probe}");
    assert_eq!(probe["gid"], 65534, "{runtime}: {probe}");
    assert_eq!(probe["root_read_only"], true, "{runtime}: {probe}");
    assert_eq!(probe["tmp_writable"], true, "{runtime}: {probe}");
    assert_eq!(probe["cap_eff"], "0000000000000000", "{runtime}: {probe}");
    if runtime == Runtime::Docker {
        // gVisor's /proc does not show the flag; Docker's HostConfig is checked below for both.
        assert_eq!(probe["no_new_privs"], json!(["1"]), "{probe}");
    }
    assert_eq!(
        probe["interfaces"],
        json!(["lo"]),
        "{runtime}: no network but loopback: {probe}"
    );
    assert_eq!(
        probe["env"],
        json!([
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "SECRET_SETTING"
        ]),
        "{runtime}: only the function's env and Lambda's description of it: {probe}"
    );

    let ids = h.pool.live_ids();
    assert_eq!(ids.len(), 1);
    let inspect = h
        .pool
        .launcher()
        .docker
        .inspect_container(&ids[0], None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_owned()])
    );
    assert_eq!(host.pids_limit, Some(128));
    assert_eq!(host.memory, Some(128 * 1024 * 1024));
    assert_eq!(host.memory_swap, Some(128 * 1024 * 1024), "no swap");
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(
        host.oom_score_adj,
        Some(1000),
        "the host's OOM killer takes function containers first"
    );
    assert!(host.binds.unwrap_or_default().is_empty(), "no host mounts");
    let expected_runtime = match runtime {
        Runtime::Docker => "runc",
        Runtime::Gvisor => "runsc",
    };
    assert_eq!(host.runtime.as_deref(), Some(expected_runtime));
    assert_eq!(inspect.config.unwrap().user.as_deref(), Some("65534:65534"));
    h.finish().await;
}

#[tokio::test]
async fn docker_containers_are_sandboxed() {
    check_sandbox(Runtime::Docker).await;
}

#[tokio::test]
async fn gvisor_containers_are_sandboxed() {
    check_sandbox(Runtime::Gvisor).await;
}

#[tokio::test]
async fn a_container_that_timed_out_or_died_is_removed_and_never_reused() {
    let h = harness(Runtime::Docker).await;
    let sleeper = "import time\nSTATE = {'calls': 0}\ndef handler(event, context):\n    STATE['calls'] += 1\n    if event.get('sleep'):\n        time.sleep(30)\n    return STATE['calls']";
    let mut first = job(7, sleeper, 1_000, BTreeMap::new());
    let reply = h.call(&first).await;
    assert_eq!(reply.status, ReplyStatus::Success);
    assert_eq!(value(&reply), json!(1));
    let warm = h.pool.live_ids();

    first.invocation_id = uuid::Uuid::now_v7();
    first.event = raw(json!({"sleep": true}));
    let reply = h.call(&first).await;
    assert_eq!(reply.status, ReplyStatus::Timeout);
    assert!(!reply.cold_start, "the warm container took the call");
    assert!(
        !container_exists(&h, &warm[0]).await,
        "the timed-out container is removed"
    );

    first.invocation_id = uuid::Uuid::now_v7();
    first.event = raw(json!({}));
    let reply = h.call(&first).await;
    assert_eq!(reply.status, ReplyStatus::Success);
    assert!(reply.cold_start, "a fresh container, not the killed one");
    assert_eq!(value(&reply), json!(1), "fresh process state");

    let dies = job(
        8,
        "import os\ndef handler(event, context):\n    os._exit(1)",
        5_000,
        BTreeMap::new(),
    );
    let reply = h.call(&dies).await;
    assert_eq!(reply.status, ReplyStatus::Crashed);
    assert_eq!(
        h.pool.live_ids().len(),
        1,
        "only the healthy container of function 7 is left"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_job_past_its_deadline_is_not_run() {
    let h = harness(Runtime::Docker).await;
    let mut late = job(
        9,
        "def handler(event, context):\n    return 1",
        1_000,
        BTreeMap::new(),
    );
    late.deadline_unix_ms = common::now_unix_ms() - 1;
    let reply = h.call(&late).await;
    assert_eq!(reply.status, ReplyStatus::Expired);
    assert_eq!(value(&reply), Value::Null);
    assert!(h.pool.live_ids().is_empty(), "no container was started");
}

async fn wait_for_stems(pool: &DockerPool, language: Language, count: usize) {
    for _ in 0..200 {
        if pool.stem_count(language) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} {language} stem cells were not ready in 10 s");
}

#[tokio::test]
async fn first_call_binds_a_prewarmed_stem_cell_which_is_then_replaced() {
    let h = harness_with(Runtime::Docker, |c| c.stem_cells = 1).await;
    let stop = CancellationToken::new();
    let filler = tokio::spawn(h.pool.clone().keep_stem_cells(stop.clone()));
    wait_for_stems(&h.pool, Language::Python, 1).await;
    let stem = h.pool.stem_ids(&StemKind::plain(Language::Python));
    assert_eq!(stem.len(), 1);

    let env = BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]);
    // Docker names a container's host after the first 12 characters of its id.
    let code = "import os, socket\ndef handler(event, context):\n    return [os.environ['GREETING'], socket.gethostname()]";
    let reply = h.call(&job(21, code, 5_000, env.clone())).await;
    assert_eq!(reply.status, ReplyStatus::Success, "{reply:?}");
    assert_eq!(
        value(&reply)[0],
        "hello",
        "the function's env reaches a stem cell"
    );
    let host = value(&reply)[1].as_str().unwrap().to_owned();
    assert!(
        stem[0].starts_with(&host),
        "the prewarmed container {} served the call, not {host}",
        stem[0]
    );
    assert!(
        reply.cold_start,
        "the first call of a version is a cold start"
    );

    let again = h.call(&job(21, code, 5_000, env)).await;
    assert!(
        !again.cold_start,
        "the bound stem cell is now the function's warm container: {again:?}"
    );
    assert_eq!(value(&again)[1], host.as_str());

    wait_for_stems(&h.pool, Language::Python, 1).await;
    assert_ne!(
        h.pool.stem_ids(&StemKind::plain(Language::Python)),
        stem,
        "a new stem cell replaced it"
    );
    stop.cancel();
    filler.await.unwrap();
    h.finish().await;
}

const ECHO: &str = "import uuid\nME = str(uuid.uuid4())\ndef handler(event, context):\n    return {'container': ME, 'event': event}";

#[tokio::test]
async fn over_the_cap_the_least_recently_used_idle_container_is_evicted() {
    let h = harness_with(Runtime::Docker, |c| c.max_containers = 2).await;
    let first = h.call(&job(31, ECHO, 5_000, BTreeMap::new())).await;
    let second = h.call(&job(32, ECHO, 5_000, BTreeMap::new())).await;
    let again = h.call(&job(31, ECHO, 5_000, BTreeMap::new())).await;
    assert!(
        !again.cold_start,
        "function 31 is warm, and now the most recently used"
    );
    assert_eq!(value(&again)["container"], value(&first)["container"]);
    assert_eq!(h.pool.live_ids().len(), 2);

    // A third function: no room, so the least recently used idle container (32's) goes.
    let third = h.call(&job(33, ECHO, 5_000, BTreeMap::new())).await;
    assert_eq!(third.status, ReplyStatus::Success, "{third:?}");
    assert!(third.cold_start);
    assert_eq!(h.pool.live_ids().len(), 2, "still at the cap");
    let warm_31 = h.call(&job(31, ECHO, 5_000, BTreeMap::new())).await;
    assert!(!warm_31.cold_start, "31 was kept");
    let back_32 = h.call(&job(32, ECHO, 5_000, BTreeMap::new())).await;
    assert!(back_32.cold_start, "32 was evicted");
    assert_ne!(value(&back_32)["container"], value(&second)["container"]);
    h.finish().await;
}

/// `job` of function `id` in `namespace`.
fn job_in(namespace: &str, id: i64) -> Job {
    let mut job = job(id, ECHO, 5_000, BTreeMap::new());
    job.function.namespace = namespace.into();
    job
}

#[tokio::test]
async fn a_namespace_over_its_share_evicts_its_own_idle_containers_not_anothers() {
    // Room for four 128 MB containers: b's two, then a's two, all idle.
    let h = harness_with(Runtime::Docker, |c| c.memory_mb = Some(512)).await;
    for (namespace, id) in [("b", 71), ("b", 72), ("a", 73), ("a", 74)] {
        let reply = h.call(&job_in(namespace, id)).await;
        assert_eq!(reply.status, ReplyStatus::Success, "{reply:?}");
    }
    assert_eq!(h.pool.memory_used_mb(), 512);

    // A third function of a would put it over its share (512 / 2): its own least recently
    // used idle container goes (73's), not b's, though b's are older.
    let third = h.call(&job_in("a", 75)).await;
    assert_eq!(third.status, ReplyStatus::Success, "{third:?}");
    assert!(third.cold_start);
    for id in [71, 72] {
        let back = h.call(&job_in("b", id)).await;
        assert!(!back.cold_start, "b's {id} was evicted: {back:?}");
    }
    let back_73 = h.call(&job_in("a", 73)).await;
    assert!(
        back_73.cold_start,
        "a's 73 was kept, so someone else's went"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_call_that_finds_no_room_waits_for_some_then_goes_back_to_the_queue() {
    let h = Arc::new(
        harness_with(Runtime::Docker, |c| {
            c.max_containers = 1;
            c.room_wait_ms = 10_000;
        })
        .await,
    );
    let slow = "import time\ndef handler(event, context):\n    time.sleep(1)\n    return 'slow'";
    let busy = {
        let h = h.clone();
        tokio::spawn(async move { h.call(&job(41, slow, 5_000, BTreeMap::new())).await })
    };
    // Let the slow call take the only place.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let waiting = h.call(&job(42, ECHO, 10_000, BTreeMap::new())).await;
    assert_eq!(waiting.status, ReplyStatus::Success, "{waiting:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the busy container"
    );
    assert_eq!(value(&busy.await.unwrap()), json!("slow"));
    assert_eq!(h.pool.live_ids().len(), 1, "never over the cap");

    // With no room before its deadline, a call gives up without running.
    let hog = {
        let h = h.clone();
        tokio::spawn(async move { h.call(&job(43, slow, 5_000, BTreeMap::new())).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut hurried = job(44, ECHO, 5_000, BTreeMap::new());
    hurried.deadline_unix_ms = common::now_unix_ms() + 200;
    let reply = h.call(&hurried).await;
    assert_eq!(reply.status, ReplyStatus::Expired, "{reply:?}");
    assert_eq!(hog.await.unwrap().status, ReplyStatus::Success);
    h.finish().await;

    // A worker that waits only briefly gives a call with time left back to the queue, for a
    // worker with room: it never sits on a job it has no room for.
    let brief = Arc::new(
        harness_with(Runtime::Docker, |c| {
            c.max_containers = 1;
            c.room_wait_ms = 100;
        })
        .await,
    );
    let hog = {
        let h = brief.clone();
        tokio::spawn(async move { h.call(&job(45, slow, 5_000, BTreeMap::new())).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let verdict = brief
        .executor
        .run(&job(46, ECHO, 5_000, BTreeMap::new()))
        .await;
    assert!(matches!(verdict, worker::Verdict::Requeue), "{verdict:?}");
    assert_eq!(hog.await.unwrap().status, ReplyStatus::Success);
    brief.finish().await;
}
