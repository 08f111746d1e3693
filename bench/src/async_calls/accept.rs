//! Part 1 of scenario 10: accepting calls at `--concurrency`, then waiting for them to end.

use super::{
    AcceptResult, DEAD_LETTERED_COUNTED, Drain, PENDING_POLL, RUNTIME, timeout, trivial_function,
};
use crate::client::{Api, Target};
use crate::scenarios::{Ctx, Stop, drive};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Part 1.
pub(super) async fn accept(ctx: &Ctx<'_>) -> anyhow::Result<AcceptResult> {
    let config = ctx.config;
    let function = trivial_function(ctx, "async-accept").await?;
    let targets = Arc::new(vec![Target::Async {
        name: function.clone(),
    }]);
    let until = Instant::now() + Duration::from_secs_f64(config.async_warmup_secs.max(0.0));
    let (warmup, warmup_seconds) =
        drive(ctx.api, &targets, config.concurrency, Stop::At(until)).await?;
    let mark = ctx.cpu.mark();
    let end = Instant::now() + Duration::from_secs_f64(config.async_duration_secs.max(0.0));
    let (recorder, seconds) = drive(ctx.api, &targets, config.concurrency, Stop::At(end)).await?;
    let cpu = ctx.cpu.since(&mark);
    let stats = recorder.finish();
    let accepted_per_s = if seconds > 0.0 {
        stats.ok as f64 / seconds
    } else {
        0.0
    };
    ctx.progress(
        RUNTIME,
        &format!(
            "  accept: {} accepted in {seconds:.1} s ({accepted_per_s:.0}/s), {} errors; waiting \
             for them to run",
            stats.ok, stats.errors
        ),
    );
    let drain = wait_until_ended(ctx.api, &function, Instant::now() + timeout(ctx)).await;
    ctx.progress(
        RUNTIME,
        &format!(
            "  accept: the accepted invocations {} after {:.1} s",
            if drain.ended {
                "ended"
            } else {
                "had not all ended"
            },
            drain.seconds
        ),
    );
    let dead_lettered = ctx
        .api
        .list_invocations(&function, "dead_lettered", DEAD_LETTERED_COUNTED)
        .await
        .map(|listed| listed.len())
        .ok();
    Ok(AcceptResult {
        dead_lettered,
        function,
        concurrency: config.concurrency,
        warmup: warmup.finish(),
        warmup_seconds,
        seconds,
        accepted_per_s,
        stats,
        cpu,
        drain,
    })
}

/// Whether any invocation of `function` is `queued` or `running`.
async fn pending(api: &Api, function: &str) -> anyhow::Result<bool> {
    for status in ["queued", "running"] {
        if !api.list_invocations(function, status, 1).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits until no invocation of `function` is `queued` or `running`, or `deadline`.
pub(super) async fn wait_until_ended(api: &Api, function: &str, deadline: Instant) -> Drain {
    let started = Instant::now();
    loop {
        let error = match pending(api, function).await {
            Ok(false) => {
                return Drain {
                    seconds: started.elapsed().as_secs_f64(),
                    ended: true,
                    error: None,
                };
            }
            Ok(true) => None,
            Err(error) => Some(format!("{error:#}")),
        };
        if Instant::now() >= deadline {
            return Drain {
                seconds: started.elapsed().as_secs_f64(),
                ended: false,
                error,
            };
        }
        tokio::time::sleep(PENDING_POLL).await;
    }
}
