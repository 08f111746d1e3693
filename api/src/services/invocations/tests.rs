//! The call path's unit tests: `find` and `call` over the in-memory backend (`fake.rs`), the
//! function cache real, asserting on what was looked up, leased, published, recorded, counted
//! and given back; and the pure rules (errors, runtimes, limits).

use super::fake::{Answer, FakeBackend, Io, Metrics, success};
use super::*;
use crate::store::{Build, BuildStatus};
use common::{ErrorInfo, RawValue, ReplyStatus, Timing};

/// `INVOKE_OVERHEAD_MS` of the service under test.
const OVERHEAD: Duration = Duration::from_millis(1_500);
const EVENT: &str = r#"{"n":21}"#;

mod queue_bytes;
mod records;
mod rules;

struct Harness {
    invocations: Invocations<FakeBackend>,
    backend: FakeBackend,
    cache: Arc<FunctionCache>,
    metrics: Metrics,
}

fn harness() -> Harness {
    let backend = FakeBackend::default();
    let cache = Arc::new(FunctionCache::new(Duration::from_secs(60)));
    // The cache stores nothing before the broker's first connection.
    cache.reconnected();
    Harness {
        invocations: Invocations::new(backend.clone(), cache.clone(), OVERHEAD),
        backend,
        cache,
        metrics: Metrics::default(),
    }
}

fn call(function: &Function, trigger: Trigger) -> Call<'_> {
    Call {
        function,
        runtime: function.runtime,
        event: RawValue::from_string(EVENT.to_owned()).unwrap(),
        invocation_id: Uuid::now_v7(),
        trigger,
        attempt: 1,
        started: Instant::now(),
    }
}

/// `faas_invocations_total` of `Function::example` called by `/execute` on Docker.
fn counted(metrics: &Metrics, trigger: Trigger, status: &str) -> u64 {
    metrics.counter(&format!(
        "faas_invocations_total{{namespace=default,function=hello,runtime=docker,trigger={},status={status}}}",
        trigger.as_str()
    ))
}

/// A reply of a cold container that printed, took time and (unless a success) raised.
fn reply_to(invocation_id: Uuid, status: ReplyStatus) -> Reply {
    Reply {
        status,
        worker_id: "worker-7".into(),
        error: Some(ErrorInfo::new("ValueError", "bad input")),
        logs: "before\n".into(),
        cold_start: true,
        timing: Timing {
            queue_ms: 0.5,
            init_ms: 120.0,
            run_ms: 3.25,
        },
        ..success(invocation_id)
    }
}

/// What the log says, without the details: L(ookup), A(cquire)+/- (granted or not),
/// I(nvoke), R(ecord), F(ree).
fn shape(log: &[Io]) -> String {
    log.iter()
        .map(|io| match io {
            Io::Lookup { .. } => "L",
            Io::Acquire { granted: true, .. } => "A+",
            Io::Acquire { granted: false, .. } => "A-",
            Io::Invoke { .. } => "I",
            Io::Record(_) => "R",
            Io::Release(_) => "F",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn acquired_scopes(log: &[Io]) -> Vec<(String, i32)> {
    log.iter()
        .filter_map(|io| match io {
            Io::Acquire { scope, max, .. } => Some((scope.clone(), *max)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn find_loads_a_function_from_the_store_once_then_serves_it_from_the_cache() {
    let h = harness();
    h.backend.add_function(Function::example());

    let first = h.invocations.find("default", "hello".into()).await.unwrap();
    let again = h.invocations.find("default", "hello".into()).await.unwrap();

    assert_eq!(
        (first.namespace.as_str(), first.name.as_str()),
        ("default", "hello")
    );
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second comes from the cache"
    );
    assert!(matches!(
        h.backend.log().as_slice(),
        [Io::Lookup { namespace, name }] if namespace == "default" && name == "hello"
    ));
}

#[tokio::test]
async fn find_serves_a_cached_function_without_a_query() {
    let h = harness();
    let cached = Arc::new(Function::example());
    h.cache.insert(cached.clone(), h.cache.generation());

    let found = h.invocations.find("default", "hello".into()).await.unwrap();

    assert!(Arc::ptr_eq(&found, &cached));
    assert!(h.backend.log().is_empty(), "{:?}", h.backend.log());
}

#[tokio::test]
async fn a_missing_function_is_cached_as_a_miss() {
    let h = harness();
    let missing = h.invocations.find("default", "nope".into()).await;
    assert!(matches!(missing, Err(CallError::FunctionNotFound(name)) if name == "nope"));

    // Created since on another replica whose event did not come: still a miss until the
    // miss expires, and no second query.
    h.backend.add_function(Function {
        name: "nope".into(),
        ..Function::example()
    });
    let again = h.invocations.find("default", "nope".into()).await;
    assert!(matches!(again, Err(CallError::FunctionNotFound(name)) if name == "nope"));
    assert_eq!(shape(&h.backend.log()), "L");
}

#[tokio::test]
async fn a_function_of_another_namespace_is_not_found() {
    let h = harness();
    h.backend.add_function(Function::example());
    let found = h.invocations.find("tenant", "hello".into()).await;
    assert!(matches!(found, Err(CallError::FunctionNotFound(_))));
    assert!(matches!(
        h.backend.log().as_slice(),
        [Io::Lookup { namespace, .. }] if namespace == "tenant"
    ));
}

#[tokio::test]
async fn a_store_failure_is_a_database_error_and_nothing_is_cached() {
    let h = harness();
    h.backend.add_function(Function::example());
    h.backend.set_database_down(true);
    let failed = h.invocations.find("default", "hello".into()).await;
    assert!(matches!(failed, Err(CallError::Database(_))));

    h.backend.set_database_down(false);
    let found = h.invocations.find("default", "hello".into()).await.unwrap();
    assert_eq!(found.name, "hello");
    assert_eq!(
        shape(&h.backend.log()),
        "L L",
        "asked again, not a cached miss"
    );
}

#[tokio::test]
async fn a_call_without_limits_publishes_its_job_and_records_the_reply() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    let function = Function::example();
    let call = call(&function, Trigger::Execute);
    let invocation_id = call.invocation_id;
    let before = common::now_unix_ms();

    let called = h.invocations.call(call).await.unwrap();
    let after = common::now_unix_ms();

    let log = h.backend.log();
    assert_eq!(
        shape(&log),
        "I R",
        "no lease query for an unlimited function"
    );
    let Io::Invoke {
        runtime,
        job,
        grace,
    } = &log[0]
    else {
        unreachable!()
    };
    assert_eq!(*runtime, Runtime::Docker);
    assert_eq!(*grace, REPLY_GRACE);
    assert_eq!(job.invocation_id, invocation_id);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.event.get(), EVENT);
    assert_eq!(job.function, function.runnable().unwrap());
    assert!((before..=after).contains(&job.published_unix_ms));
    assert_eq!(
        job.deadline_unix_ms,
        job.published_unix_ms + 5_000 + OVERHEAD.as_millis() as u64,
        "now + the function's timeout + INVOKE_OVERHEAD_MS"
    );

    assert_eq!(called.invocation_id, invocation_id);
    assert_eq!(called.timeout_s, 5);
    assert!(called.duration_ms >= 0.0);
    let reply = called.outcome.as_ref().unwrap();
    assert_eq!(reply.status, ReplyStatus::Success);
    assert_eq!(reply.result.get(), r#"{"ok":true}"#);

    let records = h.backend.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.invocation_id, invocation_id);
    assert_eq!(
        (record.namespace.as_str(), record.function_name.as_str()),
        ("default", "hello")
    );
    assert_eq!((record.function_id, record.function_version), (1, 1));
    assert_eq!(
        (record.runtime.as_str(), record.trigger.as_str()),
        ("docker", "execute")
    );
    assert_eq!(record.status, "success");
    assert_eq!(record.duration_ms, called.duration_ms);
    assert_eq!(record.worker_id.as_deref(), Some("worker-1"));
    assert!(!record.cold_start && record.error.is_none());

    assert_eq!(counted(&h.metrics, Trigger::Execute, "success"), 1);
    assert_eq!(
        h.metrics.gauge("faas_inflight_invocations{runtime=docker}"),
        Some(0.0),
        "counted in flight, then out"
    );
    let durations = h
        .metrics
        .samples("faas_invocation_duration_seconds{namespace=default,runtime=docker}");
    assert_eq!(durations, [called.duration_ms / 1000.0]);
    assert_eq!(
        h.metrics
            .counter("faas_cold_starts_total{namespace=default,function=hello,runtime=docker}"),
        0
    );
}

#[tokio::test]
async fn a_sync_record_carries_the_replys_status_timing_worker_and_error() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    let function = Function::example();
    let mut call = call(&function, Trigger::Http);
    call.runtime = Runtime::Gvisor;
    h.backend.answer(Answer::Reply(reply_to(
        call.invocation_id,
        ReplyStatus::Error,
    )));

    let called = h.invocations.call(call).await.unwrap();

    let reply = called.outcome.as_ref().unwrap();
    assert_eq!(reply.status, ReplyStatus::Error);
    assert_eq!(reply.logs, "before\n");
    let records = h.backend.records();
    let [record] = records.as_slice() else {
        panic!("one record: {records:?}")
    };
    assert_eq!(record.status, "error");
    assert_eq!(
        (record.runtime.as_str(), record.trigger.as_str()),
        ("gvisor", "http")
    );
    assert!(record.cold_start);
    assert_eq!(
        (record.queue_ms, record.init_ms, record.run_ms),
        (Some(0.5), Some(120.0), Some(3.25))
    );
    assert_eq!(record.worker_id.as_deref(), Some("worker-7"));
    assert_eq!(record.logs.as_deref(), Some("before\n"));
    assert!(!record.logs_truncated);
    assert_eq!(
        record.error,
        Some(ErrorInfo::new("ValueError", "bad input"))
    );
    assert_eq!(
        h.metrics
            .counter("faas_cold_starts_total{namespace=default,function=hello,runtime=gvisor}"),
        1
    );
    assert_eq!(
        h.metrics.counter(
            "faas_invocations_total{namespace=default,function=hello,runtime=gvisor,trigger=http,status=error}"
        ),
        1
    );
}

#[tokio::test]
async fn an_async_or_scheduled_attempt_is_published_and_recorded_with_its_attempt() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    let function = Function::example();
    for (trigger, attempt) in [(Trigger::Async, 3), (Trigger::Schedule, 1)] {
        let mut call = call(&function, trigger);
        call.attempt = attempt;
        let invocation_id = call.invocation_id;
        let called = h.invocations.call(call).await.unwrap();
        assert_eq!(called.invocation_id, invocation_id);
        let job = h.backend.jobs().pop().unwrap();
        assert_eq!((job.invocation_id, job.attempt), (invocation_id, attempt));
        assert_eq!(counted(&h.metrics, trigger, "success"), 1);
    }
    assert_eq!(shape(&h.backend.log()), "I R I R");
    let records = h.backend.records();
    let recorded: Vec<(&str, i32)> = records
        .iter()
        .map(|r| (r.trigger.as_str(), r.attempt))
        .collect();
    assert_eq!(recorded, [("async", 3), ("schedule", 1)]);
}

#[tokio::test]
async fn a_function_limit_is_leased_for_the_call_and_given_back_after_it() {
    let h = harness();
    let function = Function {
        max_concurrency: Some(2),
        ..Function::example()
    };
    h.backend.hold("function:1", 1);
    let call = call(&function, Trigger::Execute);
    let invocation_id = call.invocation_id;

    h.invocations.call(call).await.unwrap();
    h.backend.released(invocation_id).await;

    let log = h.backend.log();
    assert_eq!(shape(&log), "A+ I R F");
    let (
        Io::Acquire {
            invocation,
            expires,
            ..
        },
        Io::Invoke { job, .. },
    ) = (&log[0], &log[1])
    else {
        unreachable!()
    };
    assert_eq!(*invocation, invocation_id);
    assert_eq!(
        expires.timestamp_millis() as u64,
        job.deadline_unix_ms + (REPLY_GRACE + LEASE_GRACE).as_millis() as u64,
        "held until the reply's wait ends, and a grace beyond"
    );
    assert_eq!(acquired_scopes(&log), [("function:1".to_owned(), 2)]);
    assert!(matches!(log[3], Io::Release(id) if id == invocation_id));
    assert_eq!(
        h.backend.holders("function:1"),
        1,
        "only the other call's slot"
    );
}

#[tokio::test]
async fn the_functions_lease_then_its_namespaces_are_taken_and_both_given_back() {
    let h = harness();
    let function = Function {
        max_concurrency: Some(2),
        namespace_max_concurrency: Some(10),
        ..Function::example()
    };
    let call = call(&function, Trigger::Execute);
    let invocation_id = call.invocation_id;

    h.invocations.call(call).await.unwrap();
    h.backend.released(invocation_id).await;

    let log = h.backend.log();
    assert_eq!(shape(&log), "A+ A+ I R F");
    assert_eq!(
        acquired_scopes(&log),
        [
            ("function:1".to_owned(), 2),
            ("namespace:default".to_owned(), 10)
        ]
    );
    assert_eq!(h.backend.holders("function:1"), 0);
    assert_eq!(h.backend.holders("namespace:default"), 0);
}

#[tokio::test]
async fn a_full_function_refuses_the_call_naming_the_function_and_publishes_nothing() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    let function = Function {
        max_concurrency: Some(2),
        namespace_max_concurrency: Some(10),
        ..Function::example()
    };
    h.backend.hold("function:1", 2);
    let call = call(&function, Trigger::Execute);
    let invocation_id = call.invocation_id;

    let refused = h.invocations.call(call).await;
    h.backend.released(invocation_id).await;

    assert!(matches!(
        refused,
        Err(CallError::ConcurrencyLimit { ref subject, limit: 2 }) if subject == "function hello"
    ));
    assert_eq!(
        shape(&h.backend.log()),
        "A- F",
        "the namespace is not asked once the function refused"
    );
    assert_eq!(h.backend.holders("function:1"), 2, "the others' slots stay");
    assert_eq!(
        counted(&h.metrics, Trigger::Execute, "concurrency_limit"),
        1
    );
}

#[tokio::test]
async fn a_full_namespace_refuses_the_call_and_the_functions_slot_is_given_back() {
    let h = harness();
    let function = Function {
        max_concurrency: Some(3),
        namespace_max_concurrency: Some(1),
        ..Function::example()
    };
    h.backend.hold("namespace:default", 1);
    let call = call(&function, Trigger::Execute);
    let invocation_id = call.invocation_id;

    let refused = h.invocations.call(call).await;
    h.backend.released(invocation_id).await;

    assert!(matches!(
        refused,
        Err(CallError::ConcurrencyLimit { ref subject, limit: 1 }) if subject == "namespace default"
    ));
    assert_eq!(shape(&h.backend.log()), "A+ A- F");
    assert_eq!(h.backend.holders("function:1"), 0, "given back");
    assert_eq!(h.backend.holders("namespace:default"), 1);
}

#[tokio::test]
async fn broker_errors_pass_through_and_the_leases_are_given_back() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    let function = Function {
        max_concurrency: Some(1),
        ..Function::example()
    };
    let cases = [
        (BrokerError::NoWorker(Runtime::Docker), "no_worker"),
        (
            BrokerError::Overloaded("the queue is full".into()),
            "overloaded",
        ),
        (BrokerError::Disconnected, "unavailable"),
    ];
    for (error, label) in cases {
        h.backend.answer(Answer::Fails(error));
        let call = call(&function, Trigger::Execute);
        let invocation_id = call.invocation_id;

        let failed = h.invocations.call(call).await;
        h.backend.released(invocation_id).await;

        match (failed, label) {
            (Err(CallError::Broker(BrokerError::NoWorker(Runtime::Docker))), "no_worker") => {}
            (Err(CallError::Broker(BrokerError::Overloaded(why))), "overloaded") => {
                assert_eq!(why, "the queue is full")
            }
            (Err(CallError::Broker(BrokerError::Disconnected)), "unavailable") => {}
            (other, _) => panic!("{label}: {:?}", other.map(|called| called.invocation_id)),
        }
        assert_eq!(counted(&h.metrics, Trigger::Execute, label), 1, "{label}");
        assert_eq!(h.backend.holders("function:1"), 0, "{label}");
    }
    assert_eq!(
        shape(&h.backend.log()),
        "A+ I F A+ I F A+ I F",
        "a call that did not run is not recorded"
    );
    assert_eq!(
        h.metrics.gauge("faas_inflight_invocations{runtime=docker}"),
        Some(0.0)
    );
}

#[tokio::test]
async fn no_reply_before_the_deadline_is_recorded_as_no_reply() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    h.backend.answer(Answer::NoReply);
    let function = Function::example();

    let called = h
        .invocations
        .call(call(&function, Trigger::Execute))
        .await
        .unwrap();

    assert!(matches!(called.outcome, Err(NoReply::TimedOut)));
    assert_eq!(called.timeout_s, 5);
    let records = h.backend.records();
    let [record] = records.as_slice() else {
        panic!("one record: {records:?}")
    };
    assert_eq!(record.invocation_id, called.invocation_id);
    assert_eq!(record.status, "no_reply");
    assert!(!record.cold_start);
    assert_eq!(
        (record.queue_ms, record.init_ms, record.run_ms),
        (None, None, None)
    );
    assert!(record.worker_id.is_none() && record.error.is_none());
    assert!(
        record.logs.is_none() && !record.logs_truncated,
        "no logs were kept"
    );
    assert_eq!(counted(&h.metrics, Trigger::Execute, "no_reply"), 1);
}

#[tokio::test]
async fn a_version_still_building_is_not_runnable_and_takes_no_lease_nor_publishes() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    let function = Function {
        max_concurrency: Some(1),
        namespace_max_concurrency: Some(1),
        build: Some(Build {
            status: BuildStatus::Building,
            digest: None,
            size_bytes: None,
            log: String::new(),
            started_at: None,
            finished_at: None,
            published_at: None,
        }),
        serving: None,
        ..Function::example()
    };

    let refused = h.invocations.call(call(&function, Trigger::Execute)).await;

    assert!(matches!(
        refused,
        Err(CallError::NotRunnable(NotRunnable::Building(name))) if name == "hello"
    ));
    assert!(h.backend.log().is_empty(), "{:?}", h.backend.log());
    assert_eq!(
        counted(&h.metrics, Trigger::Execute, "function_not_ready"),
        1
    );
}

#[tokio::test]
async fn a_lease_query_that_fails_refuses_the_call_as_a_database_error() {
    let h = harness();
    let function = Function {
        max_concurrency: Some(1),
        ..Function::example()
    };
    h.backend.set_database_down(true);

    let failed = h.invocations.call(call(&function, Trigger::Execute)).await;

    assert!(matches!(failed, Err(CallError::Database(_))));
    // Nothing was taken, so nothing is given back, and nothing ran.
    tokio::task::yield_now().await;
    assert_eq!(shape(&h.backend.log()), "");
}
