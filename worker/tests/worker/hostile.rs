//! Containers that misbehave, or are killed from outside, against the real Docker daemon: what
//! the next caller gets, and what becomes of the container.

use crate::support::{Harness, container_exists, harness, job, value};
use bollard::query_parameters::KillContainerOptionsBuilder;
use common::{Language, ReplyStatus, Runtime};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ECHO: &str = "import uuid\nME = str(uuid.uuid4())\ndef handler(event, context):\n    return {'container': ME, 'event': event}";

async fn kill(h: &Harness, id: &str) {
    let options = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    h.pool
        .launcher()
        .docker
        .kill_container(id, Some(options))
        .await
        .expect("Docker kills the container");
}

async fn running(h: &Harness, id: &str) -> bool {
    let inspected = h.pool.launcher().docker.inspect_container(id, None).await;
    inspected
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// Waits up to 5 s for container `id` to stop running.
async fn stopped_within(h: &Harness, id: &str) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if !running(h, id).await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_warm_container_killed_while_idle_is_replaced_without_the_caller_noticing() {
    for runtime in [Runtime::Docker, Runtime::Gvisor] {
        let h = harness(runtime).await;
        let first = h.call(&job(81, ECHO, 5_000, BTreeMap::new())).await;
        assert_eq!(first.status, ReplyStatus::Success, "{runtime}: {first:?}");
        let ids = h.pool.live_ids();
        assert_eq!(ids.len(), 1);
        // As an operator's `docker kill`, or the host's OOM killer, would.
        kill(&h, &ids[0]).await;
        assert!(stopped_within(&h, &ids[0]).await.is_some());

        let next = h.call(&job(81, ECHO, 5_000, BTreeMap::new())).await;
        assert_eq!(
            next.status,
            ReplyStatus::Success,
            "{runtime}: not out_of_memory for a fault that is not the caller's: {next:?}"
        );
        assert!(next.cold_start, "{runtime}: a new container took the call");
        assert_ne!(value(&next)["container"], value(&first)["container"]);
        assert!(!h.pool.live_ids().contains(&ids[0]), "the dead one is gone");
        h.finish().await;
    }
}

#[tokio::test]
async fn a_result_over_6_mib_is_refused_at_once_and_the_container_stays_warm() {
    let python = "import uuid\nME = str(uuid.uuid4())\ndef handler(event, context):\n    if event.get('big'):\n        return 'x' * (20 * 1024 * 1024)\n    return ME";
    let javascript = "const ME = Math.random().toString();\nexports.handler = async (event) => event.big ? 'x'.repeat(20 * 1024 * 1024) : ME;";
    let h = harness(Runtime::Docker).await;
    for (id, language, code) in [
        (91, Language::Python, python),
        (92, Language::Javascript, javascript),
    ] {
        let mut small = job(id, code, 10_000, BTreeMap::new());
        small.function.language = language;
        let first = h.call(&small).await;
        assert_eq!(first.status, ReplyStatus::Success, "{language}: {first:?}");

        let mut big = small.clone();
        big.invocation_id = uuid::Uuid::now_v7();
        big.event = crate::support::raw(serde_json::json!({"big": true}));
        let started = Instant::now();
        let reply = h.call(&big).await;
        let took = started.elapsed();
        assert_eq!(
            reply.status,
            ReplyStatus::ResultTooLarge,
            "{language}: {reply:?}"
        );
        let message = reply.error.unwrap().message;
        assert!(
            message.contains("20971522 bytes") && message.contains("6291456"),
            "{language}: names the size and the limit: {message}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{language}: answered promptly, not at a timeout ({took:?})"
        );

        small.invocation_id = uuid::Uuid::now_v7();
        let after = h.call(&small).await;
        assert!(
            !after.cold_start,
            "{language}: the bootstrap refused it itself, so its container serves on"
        );
        assert_eq!(value(&after), value(&first));
    }
    h.finish().await;
}

#[tokio::test]
async fn a_container_that_floods_the_protocol_is_killed_and_the_call_fails_clearly() {
    // User code can reach the bootstrap's protocol descriptor; here it writes 64 MiB without a
    // newline, far past any frame.
    let flood = "import __main__, os\ndef handler(event, context):\n    chunk = b'[' * (1 << 20)\n    for _ in range(64):\n        os.write(__main__.proto_out, chunk)\n    return 1";
    let h = harness(Runtime::Docker).await;
    let reply = h.call(&job(93, flood, 20_000, BTreeMap::new())).await;
    assert_eq!(reply.status, ReplyStatus::ResultTooLarge, "{reply:?}");
    let message = reply.error.unwrap().message;
    assert!(message.contains("over 10485760 bytes"), "{message}");
    let ids = h.pool.live_ids();
    assert!(
        ids.is_empty(),
        "the flooding container is not kept: {ids:?}"
    );

    let next = h.call(&job(93, flood, 20_000, BTreeMap::new())).await;
    assert!(next.cold_start, "a new container for the next call");
    h.finish().await;
}

#[tokio::test]
async fn a_container_that_writes_to_the_protocol_while_idle_is_killed_at_once() {
    let rogue = "import __main__, os, threading, time, uuid\nME = str(uuid.uuid4())\ndef later():\n    time.sleep(0.5)\n    os.write(__main__.proto_out, b'{\"op\":\"result\",\"id\":\"forged\",\"ok\":true}\\n')\ndef handler(event, context):\n    threading.Thread(target=later, daemon=True).start()\n    return ME";
    let h = harness(Runtime::Docker).await;
    let first = h.call(&job(94, rogue, 5_000, BTreeMap::new())).await;
    assert_eq!(first.status, ReplyStatus::Success, "{first:?}");
    let ids = h.pool.live_ids();
    assert_eq!(ids.len(), 1);
    let stopped = stopped_within(&h, &ids[0]).await;
    assert!(
        stopped.is_some(),
        "the container that wrote while idle was killed (it would have waited for its next call)"
    );

    // Nobody called it, yet it is not handed out again.
    let next = h.call(&job(94, rogue, 5_000, BTreeMap::new())).await;
    assert_eq!(next.status, ReplyStatus::Success, "{next:?}");
    assert!(next.cold_start);
    assert_ne!(value(&next), value(&first));
    h.pool.reap_idle();
    assert!(!container_exists(&h, &ids[0]).await, "and it is removed");
    h.finish().await;
}
