//! The call path's pure rules: what each error means for a retry and a metric, which runtime
//! a call gets (and the call `/execute` makes), and which concurrency limits it must fit under.

use super::super::*;

#[test]
fn each_call_error_says_whether_it_may_start_later_and_how_it_is_counted() {
    let lapin_error = || lapin::Error::from(lapin::ErrorKind::ChannelsLimitReached);
    let cases: Vec<(CallError, bool, bool, bool, &str)> = vec![
        // error, transient, broker lost, waits for a slot, label
        (
            CallError::FunctionNotFound("f".into()),
            false,
            false,
            false,
            "function_not_found",
        ),
        (
            NotRunnable::Building("f".into()).into(),
            true,
            false,
            false,
            "function_not_ready",
        ),
        (
            NotRunnable::BuildFailed {
                name: "f".into(),
                log_tail: String::new(),
            }
            .into(),
            false,
            false,
            false,
            "build_failed",
        ),
        (
            CallError::ConcurrencyLimit {
                subject: "function f".into(),
                limit: 1,
            },
            true,
            false,
            true,
            "concurrency_limit",
        ),
        (
            CallError::QueueShare {
                namespace: "n".into(),
                share: 1,
            },
            true,
            false,
            true,
            "queue_share",
        ),
        (
            BrokerError::NoWorker(Runtime::Docker).into(),
            true,
            false,
            false,
            "no_worker",
        ),
        (
            BrokerError::RuntimeUnavailable(Runtime::Gvisor).into(),
            true,
            false,
            false,
            "runtime_unavailable",
        ),
        (
            BrokerError::Overloaded("full".into()).into(),
            true,
            false,
            true,
            "overloaded",
        ),
        (
            BrokerError::Unavailable(lapin_error()).into(),
            false,
            true,
            false,
            "unavailable",
        ),
        (
            BrokerError::Disconnected.into(),
            false,
            true,
            false,
            "unavailable",
        ),
        (
            CallError::Database(DbError::Inconsistent("gone")),
            true,
            false,
            false,
            "unavailable",
        ),
    ];
    for (error, transient, lost, slot, label) in cases {
        assert_eq!(error.is_transient(), transient, "{error:?}");
        assert_eq!(error.is_broker_lost(), lost, "{error:?}");
        assert_eq!(error.waits_for_a_slot(), slot, "{error:?}");
        assert_eq!(error.outcome_label(), label, "{error:?}");
    }
}

#[test]
fn a_function_gets_gvisor_when_its_namespace_allows_only_that() {
    let mut function = Function::example();
    function.runtime = Runtime::Docker;
    assert_eq!(runtime_for(&function, None), Runtime::Docker);
    assert_eq!(
        runtime_for(&function, Some(Runtime::Gvisor)),
        Runtime::Gvisor
    );
    function.allowed_runtimes = vec![Runtime::Gvisor];
    assert_eq!(runtime_for(&function, None), Runtime::Gvisor);
    function.allowed_runtimes = vec![Runtime::Docker, Runtime::Gvisor];
    assert_eq!(runtime_for(&function, None), Runtime::Docker);
}

#[test]
fn limits_are_the_functions_then_its_namespaces_when_set() {
    let mut function = Function::example();
    assert_eq!(concurrency_limits(&function).count(), 0);
    function.max_concurrency = Some(2);
    function.namespace_max_concurrency = Some(5);
    let limits: Vec<_> = concurrency_limits(&function).collect();
    assert_eq!(
        limits,
        vec![
            ConcurrencyLimit {
                scope: format!("function:{}", function.id),
                limit: 2,
                subject: format!("function {}", function.name),
            },
            ConcurrencyLimit {
                scope: format!("namespace:{}", function.namespace),
                limit: 5,
                subject: format!("namespace {}", function.namespace),
            },
        ]
    );
}

#[test]
fn an_execute_call_is_a_new_invocation_run_once_on_the_runtime_its_namespace_allows() {
    let mut function = Function::example();
    let started = Instant::now();
    let first = Call::execute(
        &function,
        None,
        RawValue::from_string("{}".into()).unwrap(),
        started,
    );
    assert_eq!(first.runtime, Runtime::Docker);
    assert_eq!((first.trigger, first.attempt), (Trigger::Execute, 1));
    assert_eq!(first.event.get(), "{}");
    assert_eq!(first.started, started);
    assert_eq!(first.invocation_id.get_version_num(), 7);
    let forced = Call::execute(
        &function,
        Some(Runtime::Gvisor),
        RawValue::from_string("{}".into()).unwrap(),
        started,
    );
    assert_eq!(forced.runtime, Runtime::Gvisor);
    assert_ne!(forced.invocation_id, first.invocation_id, "one id per call");

    function.allowed_runtimes = vec![Runtime::Gvisor];
    let confined = Call::execute(
        &function,
        None,
        RawValue::from_string("{}".into()).unwrap(),
        started,
    );
    assert_eq!(confined.runtime, Runtime::Gvisor);
}
