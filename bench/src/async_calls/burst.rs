//! Part 2 of scenario 10: a burst of calls, from accepted to finished, by the api's own
//! timestamps.

use super::accept::wait_until_ended;
use super::view::{View, end_to_end, read_view};
use super::{BurstResult, PENDING_POLL, RUNTIME, timeout, trivial_function};
use crate::client::{Api, Target};
use crate::scenarios::{Ctx, Stop, drive_keeping};
use crate::stats::summarize;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;

/// Tasks reading a burst's invocations at once.
const READERS: usize = 8;

/// Reads each of `ids` once, [`READERS`] at a time.
async fn read_each(
    api: &Api,
    ids: &[String],
) -> anyhow::Result<Vec<(String, Result<View, String>)>> {
    let mut tasks = JoinSet::new();
    for part in ids.chunks(ids.len().div_ceil(READERS).max(1)) {
        let (api, part) = (api.clone(), part.to_vec());
        tasks.spawn(async move {
            let mut read = Vec::with_capacity(part.len());
            for id in part {
                let view = api
                    .invocation(&id)
                    .await
                    .map(|value| read_view(&value))
                    .map_err(|error| format!("{error:#}"));
                read.push((id, view));
            }
            read
        });
    }
    let mut all = Vec::with_capacity(ids.len());
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined?);
    }
    Ok(all)
}

/// Reads each of `ids`, then again those not ended (or not read), until all have ended or
/// `deadline`: the last read of each.
async fn read_until_ended(
    api: &Api,
    ids: &[String],
    deadline: Instant,
) -> anyhow::Result<Vec<(String, Result<View, String>)>> {
    let mut done = Vec::with_capacity(ids.len());
    let mut left: Vec<String> = ids.to_vec();
    loop {
        let read = read_each(api, &left).await?;
        left.clear();
        let last_round = Instant::now() >= deadline;
        for (id, view) in read {
            match &view {
                Ok(v) if v.ended() => done.push((id, view)),
                _ if last_round => done.push((id, view)),
                _ => left.push(id),
            }
        }
        if left.is_empty() {
            return Ok(done);
        }
        tokio::time::sleep(PENDING_POLL).await;
    }
}

/// Part 2.
/// A burst on `again` (a function a burst ran before), or on a fresh function.
pub(super) async fn burst(ctx: &Ctx<'_>, again: Option<String>) -> anyhow::Result<BurstResult> {
    let config = ctx.config;
    let (function, pool_before) = match again {
        Some(function) => (function, "warm from the burst before".to_owned()),
        None => (
            trivial_function(ctx, "async-burst").await?,
            "one warm container (cold starts: the pool growing to the dispatchers' concurrency)"
                .to_owned(),
        ),
    };
    let targets = Arc::new(vec![Target::Async {
        name: function.clone(),
    }]);
    let deadline = Instant::now() + timeout(ctx);
    let (recorder, ids, accept_seconds) = drive_keeping(
        ctx.api,
        &targets,
        config.concurrency,
        Stop::AfterCalls(config.async_burst),
        |outcome| outcome.invocation_id.clone(),
    )
    .await?;
    let accept = recorder.finish();
    ctx.progress(
        RUNTIME,
        &format!(
            "  burst: {} of {} accepted in {accept_seconds:.1} s; waiting for them to run",
            ids.len(),
            config.async_burst
        ),
    );
    let wait = wait_until_ended(ctx.api, &function, deadline).await;
    let read = read_until_ended(ctx.api, &ids, deadline).await?;
    let mut views = Vec::with_capacity(read.len());
    let mut read_errors = Vec::new();
    for (id, view) in read {
        match view {
            Ok(view) => views.push(view),
            Err(error) => read_errors.push(format!("{id}: {error}")),
        }
    }
    let count = |f: &dyn Fn(&View) -> bool| views.iter().filter(|v| f(v)).count();
    let e2e = end_to_end(&views);
    let result = BurstResult {
        function,
        pool_before,
        calls: config.async_burst,
        concurrency: config.concurrency,
        accept,
        accept_seconds,
        wait,
        succeeded: count(&|v| v.status == "succeeded"),
        dead_lettered: count(&|v| v.status == "dead_lettered"),
        not_finished: count(&|v| !v.ended()),
        unread: read_errors.len(),
        retried: count(&|v| v.status == "succeeded" && v.attempts > 1),
        cold_starts: count(&|v| v.status == "succeeded" && v.cold_start == Some(true)),
        read_errors: read_errors.into_iter().take(5).collect(),
        seconds: e2e.seconds,
        invocations_per_s: e2e.per_s,
        latency_ms: summarize(&e2e.latencies_ms),
        queued_ms: summarize(&e2e.queued_ms),
        running_ms: summarize(&e2e.running_ms),
    };
    ctx.progress(
        RUNTIME,
        &format!(
            "  burst: {} succeeded, {:.0}/s first accepted → last finished, accept → finished \
             p50 {} ms",
            result.succeeded,
            result.invocations_per_s.unwrap_or(0.0),
            result
                .latency_ms
                .as_ref()
                .map_or("-".to_owned(), |s| format!("{:.0}", s.p50_ms))
        ),
    );
    Ok(result)
}
