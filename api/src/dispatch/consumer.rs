//! The dispatcher's own broker connection: consumes the async queue with a prefetch of
//! `ASYNC_CONCURRENCY`, runs each job on a task of its own and acks (or requeues) it when the
//! runner is done; reconnects with backoff when the connection drops.

use super::runner::{Disposition, Runner};
use super::{AsyncJob, DispatchSettings};
use crate::http::state::AppState;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a stopping dispatcher lets the jobs it runs finish; the rest are delivered again.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the dispatcher; it ends when `stop` is cancelled and its jobs are done (at most
/// [`DRAIN_TIMEOUT`] later).
pub fn spawn_dispatcher(
    state: AppState,
    settings: DispatchSettings,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let runner = Arc::new(Runner {
            state,
            topology: settings.topology.clone(),
            stop: stop.clone(),
        });
        let mut backoff = Duration::from_millis(200);
        let mut tasks = JoinSet::new();
        loop {
            match consume(&runner, &settings, &stop, &mut tasks).await {
                Ok(()) => break,
                Err(error) => {
                    metrics::counter!("faas_broker_errors_total").increment(1);
                    tracing::warn!(%error, "async dispatcher lost the broker; reconnecting in {backoff:?}");
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
        drain(&mut tasks).await;
    })
}

/// Waits for the running jobs, at most [`DRAIN_TIMEOUT`]; the others are aborted (their jobs,
/// unacked, are delivered again).
async fn drain(tasks: &mut JoinSet<()>) {
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "async jobs still running at shutdown; they will be delivered again"
        );
        tasks.abort_all();
    }
}

/// Consumes until `stop` (Ok) or until the connection fails (Err).
async fn consume(
    runner: &Arc<Runner>,
    settings: &DispatchSettings,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(), lapin::Error> {
    let connection = common::broker::connect(&settings.amqp_url, &settings.connection_name).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(settings.concurrency, BasicQosOptions::default())
        .await?;
    settings
        .topology
        .declare_async(&channel, &settings.topology.retry_delays())
        .await?;
    let mut consumer = channel
        .basic_consume(
            settings.topology.async_queue().as_str().into(),
            "faas-api-dispatcher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(
        concurrency = settings.concurrency,
        "async dispatcher consuming"
    );
    loop {
        // Finished tasks are reaped as they end, so the set holds only running ones.
        while tasks.try_join_next().is_some() {}
        let delivery = tokio::select! {
            () = stop.cancelled() => {
                // No new jobs; the running ones finish (and ack) on this connection.
                drain(tasks).await;
                let _ = connection.close(200, "api shutting down".into()).await;
                return Ok(());
            }
            delivery = consumer.next() => delivery,
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return Err(error),
            None => {
                return Err(lapin::Error::from(
                    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
                ));
            }
        };
        let Ok(job) = serde_json::from_slice::<AsyncJob>(&delivery.data) else {
            tracing::warn!("malformed async job dropped");
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            continue;
        };
        let runner = runner.clone();
        let span = tracing::info_span!("async_job", invocation_id = %job.invocation_id, attempt = job.attempt);
        tasks.spawn(
            async move {
                let disposition = runner.handle(job).await;
                let acked = match disposition {
                    Disposition::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
                    Disposition::Requeue => {
                        delivery
                            .acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            })
                            .await
                    }
                };
                if let Err(error) = acked {
                    // The channel is gone: the broker delivers the job again, and its copy
                    // finds the outcome recorded.
                    tracing::debug!(%error, "async job not acked");
                }
            }
            .instrument(span),
        );
    }
}
