//! The worker's side of RabbitMQ: consumes its runtime's queue with a prefetch equal to its
//! concurrency, runs each job in a task of its own, publishes the reply to the job's `reply_to`
//! and only then acks, so a job whose worker dies is redelivered to another.

use crate::error::WorkerError;
use crate::executor::Executor;
use common::broker::{CONTENT_TYPE_JSON, Topology};
use common::{FunctionEvent, Job, Runtime};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Settings {
    pub amqp_url: String,
    pub topology: Topology,
    pub runtime: Runtime,
    pub concurrency: u16,
    pub consumer_tag: String,
    pub shutdown_grace: Duration,
}

struct Session {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    /// Function changes, to retire warm containers of old versions at once.
    events: Consumer,
}

/// What a worker consumes: its runtime's jobs, or (when it cannot run that runtime) the
/// runtime's unavailable queue, only to be counted there by the api.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Jobs,
    StandBy,
}

async fn open(settings: &Settings, role: Role) -> Result<Session, lapin::Error> {
    let connection = common::broker::connect(&settings.amqp_url, &settings.consumer_tag).await?;
    let channel = connection.create_channel().await?;
    settings.topology.declare(&channel).await?;
    channel
        .basic_qos(settings.concurrency, BasicQosOptions::default())
        .await?;
    let queue = match role {
        Role::Jobs => settings.topology.queue(settings.runtime),
        Role::StandBy => {
            settings
                .topology
                .declare_unavailable_queue(&channel, settings.runtime)
                .await?;
            settings.topology.unavailable_queue(settings.runtime)
        }
    };
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            settings.consumer_tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let events = settings
        .topology
        .subscribe_events(&channel, &format!("{}-events", settings.consumer_tag))
        .await?;
    Ok(Session {
        connection,
        channel,
        consumer,
        events,
    })
}

/// Consumes jobs until `shutdown` resolves, reconnecting when the broker goes away; then stops
/// taking jobs and gives those in flight up to the grace period to finish.
pub async fn consume(
    settings: Settings,
    executor: Arc<Executor>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let mut session = open(&settings, Role::Jobs).await?;
    tracing::info!(queue = %settings.topology.queue(settings.runtime), "consuming jobs");
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            Some(Ok(event)) = session.events.next() => {
                match serde_json::from_slice::<FunctionEvent>(&event.data) {
                    Ok(event) => executor.pool.retire(event.function_id, event.version),
                    Err(error) => tracing::warn!(%error, "malformed function event dropped"),
                }
            }
            delivery = session.consumer.next() => {
                match delivery {
                    Some(Ok(delivery)) => {
                        let executor = executor.clone();
                        let channel = session.channel.clone();
                        tasks.spawn(async move { handle(delivery, &channel, &executor).await });
                        continue;
                    }
                    Some(Err(error)) => log_lost_consumer(Some(error)),
                    None => log_lost_consumer(None),
                }
                match reconnect(&settings, Role::Jobs, &mut shutdown).await {
                    Some(new_session) => session = new_session,
                    None => break,
                }
            }
        }
    }

    tracing::info!(in_flight = tasks.len(), "no longer taking jobs");
    let _ = session
        .channel
        .basic_cancel(
            settings.consumer_tag.as_str().into(),
            BasicCancelOptions::default(),
        )
        .await;
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = tasks.len(),
            "grace period over; abandoning jobs (they will be redelivered)"
        );
        tasks.abort_all();
    }
    let _ = session
        .connection
        .close(200, "worker shutting down".into())
        .await;
    Ok(())
}

/// Keeps a worker that cannot run its runtime visible to the api until `shutdown` resolves:
/// it consumes the runtime's unavailable queue (where no job is ever published), so the api
/// answers 503 naming the cause instead of "no worker", and reconnects when the broker goes away.
pub async fn stand_by(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let mut session = open(&settings, Role::StandBy).await?;
    tracing::info!(queue = %settings.topology.unavailable_queue(settings.runtime), "standing by");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = session.events.next() => {}
            delivery = session.consumer.next() => {
                match delivery {
                    // Nobody should publish there; drop whatever arrives.
                    Some(Ok(delivery)) => {
                        let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
                        continue;
                    }
                    Some(Err(error)) => log_lost_consumer(Some(error)),
                    None => log_lost_consumer(None),
                }
                match reconnect(&settings, Role::StandBy, &mut shutdown).await {
                    Some(new_session) => session = new_session,
                    None => break,
                }
            }
        }
    }
    let _ = session
        .connection
        .close(200, "worker shutting down".into())
        .await;
    Ok(())
}

/// Says why a consumer's stream ended: the connection failed (`error`), or the broker cancelled
/// the consumer.
fn log_lost_consumer(error: Option<lapin::Error>) {
    match error {
        Some(error) => {
            tracing::warn!(%error, "lost the broker connection");
            metrics::counter!("faas_broker_errors_total").increment(1);
        }
        None => tracing::warn!("the broker cancelled the consumer"),
    }
}

/// Reopens the session with backoff; `None` when shutdown came first.
async fn reconnect(
    settings: &Settings,
    role: Role,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<Session> {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            _ = &mut *shutdown => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        match open(settings, role).await {
            Ok(session) => {
                tracing::info!("broker connection restored");
                return Some(session);
            }
            Err(error) => {
                metrics::counter!("faas_broker_errors_total").increment(1);
                tracing::warn!(%error, "broker still unreachable; retrying in {backoff:?}");
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
            }
        }
    }
}

async fn handle(delivery: Delivery, channel: &Channel, executor: &Executor) {
    let job: Job = match serde_json::from_slice(&delivery.data) {
        Ok(job) => job,
        Err(error) => {
            tracing::error!(%error, "malformed job rejected");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    let runtime = executor.pool.sandbox.runtime.as_str();
    let inflight = metrics::gauge!("faas_worker_inflight_jobs", "runtime" => runtime);
    inflight.increment(1.0);
    let reply = executor.run(&job).await;
    inflight.decrement(1.0);
    tracing::info!(
        invocation_id = %job.invocation_id,
        function = %job.function.name,
        status = %reply.status,
        cold_start = reply.cold_start,
        run_ms = reply.timing.run_ms,
        "job done"
    );

    if let Some(reply_to) = delivery.properties.reply_to() {
        let body = serde_json::to_vec(&reply).expect("a reply always serializes");
        let properties = BasicProperties::default()
            .with_correlation_id(job.invocation_id.to_string().into())
            .with_content_type(CONTENT_TYPE_JSON.into());
        let published = channel
            .basic_publish(
                "".into(),
                reply_to.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await;
        if let Err(error) = published {
            // Not acked: the broker redelivers the job, and the caller still gets an answer.
            metrics::counter!("faas_broker_errors_total").increment(1);
            tracing::warn!(invocation_id = %job.invocation_id, %error, "reply not published");
            return;
        }
    }
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        metrics::counter!("faas_broker_errors_total").increment(1);
        tracing::warn!(invocation_id = %job.invocation_id, %error, "ack failed");
    }
}
