//! The worker's side of RabbitMQ: consumes its runtime's queue with a prefetch sized by its
//! memory budget, runs each job in a task of its own (in a tracing span with its ids),
//! publishes the reply to the job's `reply_to` and only then acks, so a job whose worker dies is
//! redelivered to another. Whatever happens to a job, its delivery is settled: acked after its
//! reply, or given back (nacked with requeue) when there is no room for it, when its reply
//! cannot be published, or when its task panicked.

use crate::error::WorkerError;
use crate::executor::{Executor, Verdict};
use common::broker::{CONTENT_TYPE_JSON, Topology};
use common::{EVENT_TYPE_FUNCTION, FunctionEvent, Job, Reply, Runtime};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::Instrument;

const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long each step of closing the broker session may take at shutdown: a connection the
/// broker blocks (its memory alarm) would otherwise never answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Settings {
    pub amqp_url: String,
    pub topology: Topology,
    pub runtime: Runtime,
    /// Jobs taken at once (the AMQP prefetch).
    pub prefetch: u16,
    pub consumer_tag: String,
    pub shutdown_grace: Duration,
    /// A larger job message is dropped unread.
    pub max_job_bytes: usize,
    /// Names the worker in the jobs' tracing spans.
    pub worker_id: String,
}

struct Session {
    connection: Connection,
    /// Consumes jobs (and acks them).
    channel: Channel,
    /// Publishes replies: a failed publish must not take the channel the jobs are acked on.
    replies: Channel,
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
    if let Err(error) = settings.topology.declare(&channel).await {
        if let Some(why) = common::broker::explain_declare_error(&error) {
            tracing::error!("{why}");
        }
        return Err(error);
    }
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let replies = connection.create_channel().await?;
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
        replies,
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
                // Only function events concern workers (key events are the api replicas').
                if common::broker::event_type(&event.properties) == EVENT_TYPE_FUNCTION {
                    match serde_json::from_slice::<FunctionEvent>(&event.data) {
                        Ok(event) => executor.pool.retire(event.function_id, event.version),
                        Err(error) => tracing::warn!(%error, "malformed function event dropped"),
                    }
                }
            }
            delivery = session.consumer.next() => {
                match delivery {
                    Some(Ok(delivery)) => {
                        let executor = executor.clone();
                        let replies = session.replies.clone();
                        let max_job_bytes = settings.max_job_bytes;
                        let worker_id = settings.worker_id.clone();
                        tasks.spawn(async move {
                            handle(delivery, &replies, &executor, max_job_bytes, &worker_id).await
                        });
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
    let cancel = session.channel.basic_cancel(
        settings.consumer_tag.as_str().into(),
        BasicCancelOptions::default(),
    );
    if tokio::time::timeout(CLOSE_TIMEOUT, cancel).await.is_err() {
        tracing::warn!("the broker did not confirm the consumer's cancel in time");
    }
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
    close(&session.connection).await;
    Ok(())
}

/// Closes the connection, or gives up on it after [`CLOSE_TIMEOUT`].
async fn close(connection: &Connection) {
    let closing = connection.close(200, "worker shutting down".into());
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::warn!("the broker did not confirm the close in time; leaving the connection");
    }
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
    close(&session.connection).await;
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

/// Runs one delivered job and settles its delivery, whatever happens.
async fn handle(
    delivery: Delivery,
    replies: &Channel,
    executor: &Executor,
    max_job_bytes: usize,
    worker_id: &str,
) {
    if delivery.data.len() > max_job_bytes {
        tracing::error!(
            bytes = delivery.data.len(),
            limit = max_job_bytes,
            "job message over MAX_JOB_BYTES dropped"
        );
        let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
        return;
    }
    let job: Job = match serde_json::from_slice(&delivery.data) {
        Ok(job) => job,
        Err(error) => {
            let error = crate::protocol::where_wrong(&error);
            tracing::error!(%error, bytes = delivery.data.len(), "malformed job rejected");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    let span = tracing::info_span!(
        "job",
        invocation_id = %job.invocation_id,
        function = %job.function.name,
        version = job.function.version,
        worker = %worker_id,
    );
    settle(delivery, replies, executor, &job)
        .instrument(span)
        .await
}

async fn settle(delivery: Delivery, replies: &Channel, executor: &Executor, job: &Job) {
    let runtime = executor.pool.launcher().runtime.as_str();
    let inflight = metrics::gauge!("faas_worker_inflight_jobs", "runtime" => runtime);
    inflight.increment(1.0);
    let ran = AssertUnwindSafe(executor.run(job)).catch_unwind().await;
    inflight.decrement(1.0);
    let reply = match ran {
        Ok(Verdict::Reply(reply)) => reply,
        Ok(Verdict::Requeue) => {
            requeue(&delivery, "no room on this worker").await;
            return;
        }
        Err(_) => match after_panic(delivery.redelivered) {
            AfterPanic::Requeue => {
                tracing::error!("the job's task panicked; giving the job back to the queue");
                requeue(&delivery, "panicked").await;
                return;
            }
            AfterPanic::Answer => {
                tracing::error!("the job's task panicked again; answering with an error");
                executor.worker_failure(job)
            }
        },
    };
    tracing::info!(
        status = %reply.status,
        cold_start = reply.cold_start,
        run_ms = reply.timing.run_ms,
        "job done"
    );
    if let Some(reply_to) = delivery.properties.reply_to()
        && let Err(error) = publish_reply(replies, reply_to.as_str(), &reply).await
    {
        metrics::counter!("faas_broker_errors_total").increment(1);
        tracing::warn!(%error, "reply not published; giving the job back to the queue");
        requeue(&delivery, "reply not published").await;
        return;
    }
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        metrics::counter!("faas_broker_errors_total").increment(1);
        tracing::warn!(%error, "ack failed");
    }
}

/// What a delivery whose task panicked gets.
#[derive(Debug, PartialEq, Eq)]
enum AfterPanic {
    /// The first time: back to the queue, for this worker or another to try again.
    Requeue,
    /// It was delivered before (and may be what makes workers panic): an error reply, so it
    /// does not go round for ever.
    Answer,
}

fn after_panic(redelivered: bool) -> AfterPanic {
    if redelivered {
        AfterPanic::Answer
    } else {
        AfterPanic::Requeue
    }
}

async fn publish_reply(channel: &Channel, reply_to: &str, reply: &Reply) -> lapin::Result<()> {
    let body = serde_json::to_vec(reply).expect("a reply always serializes");
    let properties = BasicProperties::default()
        .with_correlation_id(reply.invocation_id.to_string().into())
        .with_content_type(CONTENT_TYPE_JSON.into());
    channel
        .basic_publish(
            "".into(),
            reply_to.into(),
            BasicPublishOptions::default(),
            &body,
            properties,
        )
        .await?;
    Ok(())
}

/// Gives a delivery back to the queue. If even that fails the channel is gone, and the broker
/// requeues the delivery itself.
async fn requeue(delivery: &Delivery, why: &str) {
    let options = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    if let Err(error) = delivery.nack(options).await {
        tracing::warn!(%error, why, "nack failed; the broker requeues the job when the channel closes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_requeues_once_then_answers() {
        assert_eq!(after_panic(false), AfterPanic::Requeue);
        assert_eq!(after_panic(true), AfterPanic::Answer);
    }
}
