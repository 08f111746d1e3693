//! What a call's record keeps of its reply's logs.

use super::*;

#[tokio::test]
async fn a_record_keeps_16_kib_of_the_logs_and_says_they_were_cut() {
    let h = harness();
    let function = Function::example();
    for (logs, worker_cut, kept, cut) in [
        ("é".repeat(10_000), false, 16 * 1024, true),
        ("short\n".to_owned(), true, 6, true),
        ("short\n".to_owned(), false, 6, false),
    ] {
        let call = call(&function, Trigger::Execute);
        let mut reply = reply_to(call.invocation_id, ReplyStatus::Success);
        reply.logs = logs;
        reply.logs_truncated = worker_cut;
        h.backend.answer(Answer::Reply(reply));
        h.invocations.call(call).await.unwrap();
        let record = h.backend.records().pop().unwrap();
        let stored = record.logs.expect("a reply's logs are kept");
        assert_eq!((stored.len(), record.logs_truncated), (kept, cut));
    }
}
