//! The worker's side of RabbitMQ: consumes its home queue (the jobs of the functions whose home
//! it is, by consistent hashing over the runtime's workers) and its runtime's shared queue
//! (what spilled from the homes), each with a prefetch sized by its memory budget, runs each job
//! in a task of its own (in a tracing span with its ids),
//! publishes the reply to the job's `reply_to` and only then acks, so a job whose worker dies is
//! redelivered to another. Whatever happens to a job, its handler decides what becomes of its
//! delivery: acked after its reply, or given back (nacked with requeue) when there is no room
//! for it, when its reply cannot be published, or when its task panicked. The loop around it
//! (reconnects, spans, drain at shutdown) is `common::broker::run`.

use crate::error::WorkerError;
use crate::executor::{Executor, Verdict};
use common::broker::{Acks, CONTENT_TYPE_JSON, Consume, Decision, LoopOptions, Session, Topology};
use common::{EVENT_TYPE_FUNCTION, FunctionEvent, Job, Reply, Runtime};
use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, BasicQosOptions};
use lapin::{BasicProperties, Channel};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

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
    /// Names the worker in the jobs' tracing spans, and its home queue.
    pub worker_id: String,
    /// How long a job waits in the home queue before it spills to the shared one.
    pub home_wait: Duration,
}

/// What a worker consumes: its home queue and its runtime's shared queue, or (when it cannot
/// run that runtime) the runtime's unavailable queue, only to be counted there by the api.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Home,
    Shared,
    StandBy,
}

impl Role {
    /// The `source` label of the jobs taken from the queue.
    fn source(self) -> &'static str {
        match self {
            Role::Home => "home",
            Role::Shared => "shared",
            Role::StandBy => "stand-by",
        }
    }

    /// What a job this worker has no room for gets: from the home queue it spills (rejected,
    /// the broker dead-letters it to the shared queue, where a worker with room takes it);
    /// from the shared queue it goes back there.
    fn no_room(self) -> Decision {
        match self {
            Role::Home => Decision::Reject,
            Role::Shared | Role::StandBy => Decision::Requeue,
        }
    }
}

/// Opens a session: jobs (or the unavailable queue) consumed on one channel, whose handlers
/// publish their replies on another (a failed publish must not take the channel the jobs are
/// acked on), and function events, to retire warm containers of old versions at once.
async fn open(settings: &Settings, role: Role) -> Result<Session<Channel>, lapin::Error> {
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
        Role::Home => {
            settings
                .topology
                .declare_home_queue(
                    &channel,
                    settings.runtime,
                    &settings.worker_id,
                    settings.home_wait,
                )
                .await?
        }
        Role::Shared => settings.topology.queue(settings.runtime),
        Role::StandBy => {
            settings
                .topology
                .declare_unavailable_queue(&channel, settings.runtime)
                .await?;
            settings.topology.unavailable_queue(settings.runtime)
        }
    };
    let tag = match role {
        Role::Home => format!("{}-home", settings.consumer_tag),
        Role::Shared | Role::StandBy => settings.consumer_tag.clone(),
    };
    let session = Session::consume(connection, channel, &queue, &tag, Acks::Manual).await?;
    let events = settings
        .topology
        .subscribe_events(session.channel(), &format!("{tag}-events"))
        .await?;
    Ok(session.with_events(events).with_context(replies))
}

/// The runtime's jobs from one queue (home or shared), each run by the executor.
struct Jobs {
    settings: Arc<Settings>,
    executor: Arc<Executor>,
    role: Role,
}

impl Consume for Jobs {
    /// The channel replies are published on.
    type Context = Channel;

    async fn open(&self) -> lapin::Result<Session<Channel>> {
        open(&self.settings, self.role).await
    }

    async fn handle(self: Arc<Self>, delivery: Delivery, replies: Channel) -> Decision {
        let runtime = self.settings.runtime.as_str();
        metrics::counter!("faas_worker_jobs_taken_total", "runtime" => runtime, "source" => self.role.source())
            .increment(1);
        let decision = handle(
            &delivery,
            &replies,
            &self.executor,
            self.settings.max_job_bytes,
            &self.settings.worker_id,
        )
        .await;
        match decision {
            NoRoom => self.role.no_room(),
            Decided(decision) => decision,
        }
    }

    fn event(&self, event: &Delivery) {
        // Only function events concern workers (key events are the api replicas'); both
        // sessions hear them, and retiring twice is retiring once.
        if self.role == Role::Home
            && common::broker::event_type(&event.properties) == EVENT_TYPE_FUNCTION
        {
            match serde_json::from_slice::<FunctionEvent>(&event.data) {
                Ok(event) => self.executor.pool.retire(event.function_id, event.version),
                Err(error) => tracing::warn!(%error, "malformed function event dropped"),
            }
        }
    }
}

/// Consumes jobs from the home queue and the shared queue until `shutdown` resolves,
/// reconnecting when the broker goes away; then stops taking jobs and gives those in flight up
/// to the grace period to finish.
pub async fn consume(
    settings: Settings,
    executor: Arc<Executor>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let settings = Arc::new(settings);
    let first_home = open(&settings, Role::Home).await?;
    let first_shared = open(&settings, Role::Shared).await?;
    let jobs = |role| {
        Arc::new(Jobs {
            settings: settings.clone(),
            executor: executor.clone(),
            role,
        })
    };
    let options = |name| LoopOptions {
        name,
        drain: settings.shutdown_grace,
    };
    let stop = CancellationToken::new();
    let home = common::broker::run(
        jobs(Role::Home),
        options("home jobs"),
        Some(first_home),
        stop.clone(),
    );
    let shared = run_until(
        async {
            shutdown.await;
            // Off the ring before anything else, so that no job is routed to the home queue
            // from now on; the other workers take this one's functions.
            unbind_home(&settings).await;
            stop.cancel();
        },
        jobs(Role::Shared),
        options("jobs"),
        first_shared,
    );
    tokio::join!(home, shared);
    Ok(())
}

/// Unbinds this worker's home queue from the home exchange, on a connection of its own (the
/// consumers' are busy draining); a failure is only logged: the queue still goes with its
/// `x-expires`.
async fn unbind_home(settings: &Settings) {
    let unbind = async {
        let connection = common::broker::connect(
            &settings.amqp_url,
            &format!("{}-stop", settings.consumer_tag),
        )
        .await?;
        let channel = connection.create_channel().await?;
        settings
            .topology
            .unbind_home_queue(&channel, settings.runtime, &settings.worker_id)
            .await?;
        connection.close(200, "home queue unbound".into()).await
    };
    match tokio::time::timeout(Duration::from_secs(5), unbind).await {
        Ok(Ok(())) => tracing::info!("home queue unbound: no job is routed here any more"),
        Ok(Err(error)) => tracing::warn!(%error, "cannot unbind the home queue at stop"),
        Err(_) => tracing::warn!("the broker did not unbind the home queue in time"),
    }
}

/// The unavailable queue, where no job is ever published.
struct StandBy {
    settings: Settings,
}

/// What running a delivered job came to: the delivery's decision, or no room on this worker
/// (which the queue it came from decides, [`Role::no_room`]).
enum Handled {
    Decided(Decision),
    NoRoom,
}
use Handled::{Decided, NoRoom};

impl Consume for StandBy {
    type Context = Channel;

    async fn open(&self) -> lapin::Result<Session<Channel>> {
        open(&self.settings, Role::StandBy).await
    }

    /// Nobody should publish there; whatever arrives is dropped.
    async fn handle(self: Arc<Self>, _delivery: Delivery, _replies: Channel) -> Decision {
        Decision::Reject
    }
}

/// Keeps a worker that cannot run its runtime visible to the api until `shutdown` resolves:
/// it consumes the runtime's unavailable queue (where no job is ever published), so the api
/// answers 503 naming the cause instead of "no worker", and reconnects when the broker goes away.
pub async fn stand_by(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let first = open(&settings, Role::StandBy).await?;
    let options = LoopOptions {
        name: "stand-by",
        drain: settings.shutdown_grace,
    };
    run_until(shutdown, Arc::new(StandBy { settings }), options, first).await;
    Ok(())
}

/// Runs the consumer loop from its `first` session until `shutdown` resolves, then until it
/// has drained.
async fn run_until<T: Consume>(
    shutdown: impl Future<Output = ()>,
    consumer: Arc<T>,
    options: LoopOptions,
    first: Session<T::Context>,
) {
    let stop = CancellationToken::new();
    let consuming = common::broker::run(consumer, options, Some(first), stop.clone());
    tokio::pin!(consuming);
    tokio::select! {
        () = &mut consuming => return,
        () = shutdown => stop.cancel(),
    }
    consuming.await;
}

/// Runs one delivered job and says what becomes of its delivery, whatever happens.
async fn handle(
    delivery: &Delivery,
    replies: &Channel,
    executor: &Executor,
    max_job_bytes: usize,
    worker_id: &str,
) -> Handled {
    if delivery.data.len() > max_job_bytes {
        tracing::error!(
            bytes = delivery.data.len(),
            limit = max_job_bytes,
            "job message over MAX_JOB_BYTES dropped"
        );
        return Decided(Decision::Reject);
    }
    let job: Job = match serde_json::from_slice(&delivery.data) {
        Ok(job) => job,
        Err(error) => {
            let error = crate::protocol::where_wrong(&error);
            tracing::error!(%error, bytes = delivery.data.len(), "malformed job rejected");
            return Decided(Decision::Reject);
        }
    };
    let span = tracing::info_span!(
        "job",
        invocation_id = %job.invocation_id,
        namespace = %job.function.namespace,
        function = %job.function.name,
        version = job.function.version,
        attempt = job.attempt,
        worker = %worker_id,
    );
    settle(delivery, replies, executor, &job)
        .instrument(span)
        .await
}

/// Runs `job` and publishes its reply: acked once the reply is out, given back to the queue
/// when there is no room for it, when its reply cannot be published, or when its run panicked
/// (the first time).
async fn settle(delivery: &Delivery, replies: &Channel, executor: &Executor, job: &Job) -> Handled {
    let runtime = executor.pool.launcher().runtime.as_str();
    let inflight = metrics::gauge!("faas_worker_inflight_jobs", "runtime" => runtime);
    inflight.increment(1.0);
    let ran = AssertUnwindSafe(executor.run(job)).catch_unwind().await;
    inflight.decrement(1.0);
    let reply = match ran {
        Ok(Verdict::Reply(reply)) => reply,
        // No room on this worker.
        Ok(Verdict::Requeue) => return NoRoom,
        Err(_) => match after_panic(delivery.redelivered) {
            AfterPanic::Requeue => {
                tracing::error!("the job's task panicked; giving the job back to the queue");
                return Decided(Decision::Requeue);
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
        return Decided(Decision::Requeue);
    }
    Decided(Decision::Ack)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_requeues_once_then_answers() {
        assert_eq!(after_panic(false), AfterPanic::Requeue);
        assert_eq!(after_panic(true), AfterPanic::Answer);
    }
}
