//! The namespaces' shares of the job queues' bytes on the call path.

use super::*;

#[tokio::test]
async fn a_namespace_holding_its_share_of_the_queues_bytes_is_refused_and_publishes_nothing() {
    let h = harness();
    let _metrics = metrics::set_default_local_recorder(&h.metrics);
    // Room for one event of EVENT's size per namespace.
    let invocations = h.invocations.clone().with_queue_share(EVENT.len() as u64);
    let function = Function::example();
    let elsewhere = Function {
        namespace: "other".into(),
        ..Function::example()
    };
    // A call of the namespace waits for its reply.
    let in_flight = invocations.queue_shares.reserve("default", 1).unwrap();

    let refused = invocations.call(call(&function, Trigger::Execute)).await;
    assert!(matches!(
        refused,
        Err(CallError::QueueShare { ref namespace, share }) if namespace == "default" && share == EVENT.len() as u64
    ));
    assert_eq!(shape(&h.backend.log()), "", "nothing leased or published");
    assert_eq!(counted(&h.metrics, Trigger::Execute, "queue_share"), 1);
    // Another namespace's call is not refused for it.
    assert!(
        invocations
            .call(call(&elsewhere, Trigger::Execute))
            .await
            .is_ok()
    );

    // The call in flight is answered: the namespace's calls go again, and give their bytes back.
    drop(in_flight);
    assert!(
        invocations
            .call(call(&function, Trigger::Execute))
            .await
            .is_ok()
    );
    assert_eq!(invocations.queue_shares.in_flight("default"), 0);
    assert_eq!(invocations.queue_shares.in_flight("other"), 0);
}
