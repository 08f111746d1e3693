//! The api's side of RabbitMQ: publishes jobs and routes the replies, which arrive on one
//! direct reply-to consumer, back to the request that waits for each (by invocation id).
//!
//! The connection is supervised: when it drops, waiting requests fail at once with 503 and the
//! reply consumer's loop (`common::broker::run`) reconnects with backoff; requests in between
//! get 503 without waiting.

use crate::domain::stream::RecordsEvent;
use common::broker::{Acks, CONTENT_TYPE_JSON, DIRECT_REPLY_TO, Decision, Topology};
use common::{
    BuildJob, EVENT_TYPE_FUNCTION, EVENT_TYPE_KEY, EVENT_TYPE_RECORDS, FunctionEvent, Job,
    KeyEvent, Reply, Runtime,
};
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a seen consumer counts as still there; an idle queue is checked on every call.
const CONSUMER_SEEN_TTL: Duration = Duration::from_millis(500);
/// The reply consumer's tag.
const REPLIES_TAG: &str = "faas-api-replies";

struct Session {
    /// Shared with the reply consumer's session.
    connection: Arc<Connection>,
    /// Publishes go on the channel that consumes direct replies: RabbitMQ requires it.
    channel: Channel,
}

/// What hears the events exchange and the connection's state: this replica's caches, which
/// must drop what may be stale whenever events may have been missed.
pub trait EventListener: Send + Sync {
    /// The connection is (back) up: events are heard from now on.
    fn connected(&self);
    /// The connection is lost: events may be missed until it is back.
    fn disconnected(&self);
    /// A function changed (or went) on some replica.
    fn function_changed(&self, event: FunctionEvent);
    /// A key (or a namespace's keys) must not be trusted any more.
    fn key_changed(&self, event: KeyEvent);
    /// Some replica (this one too) stored invocation records.
    fn records_stored(&self, event: RecordsEvent);
}

pub struct Invoker {
    url: String,
    /// Shown by `rabbitmqctl list_connections`; unique per api process.
    connection_name: String,
    topology: Topology,
    /// This replica's caches, told of every event and of the connection's state.
    listener: Arc<dyn EventListener>,
    session: RwLock<Option<Arc<Session>>>,
    pending: Mutex<HashMap<Uuid, oneshot::Sender<Reply>>>,
    consumers_seen: Mutex<HashMap<Runtime, Instant>>,
    /// Cancelled by [`Invoker::close`]: the connection's end is then no loss to reconnect from.
    closed: CancellationToken,
}

/// Why a job was not handed to a worker: the broker is away, or refused it, or nobody consumes
/// its queue. Each says what the caller can do; the http layer maps them to 503s.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the message broker is unavailable")]
    Unavailable(#[source] lapin::Error),
    #[error("the message broker is not connected")]
    Disconnected,
    /// A queue is full, or the broker refused or could not route the message: retry shortly.
    #[error("{0}")]
    Overloaded(String),
    #[error("no {0} worker is running; start one with `worker --runtime {0}`")]
    NoWorker(Runtime),
    /// Workers are up but cannot start this runtime's sandboxes (a gVisor worker whose Docker
    /// host has no `runsc`); they stand by instead of taking jobs.
    #[error(
        "no worker can run {0} functions: the {0} workers that are up found no gVisor runtime (runsc) in their host's Docker; install runsc, register it in /etc/docker/daemon.json and restart those workers"
    )]
    RuntimeUnavailable(Runtime),
}

/// Why no reply came back.
#[derive(Debug)]
pub enum NoReply {
    /// The deadline passed.
    TimedOut,
}

impl Invoker {
    /// Connects, declares the topology and starts the reply consumer. Fails when the broker
    /// cannot be reached now; after that, the connection is kept up in the background.
    pub async fn connect(
        url: &str,
        connection_name: String,
        topology: Topology,
        listener: Arc<dyn EventListener>,
    ) -> Result<Arc<Self>, lapin::Error> {
        let invoker = Arc::new(Invoker {
            url: url.to_owned(),
            connection_name,
            topology,
            listener,
            session: RwLock::new(None),
            pending: Mutex::new(HashMap::new()),
            consumers_seen: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
        });
        let first = invoker.open_session().await?;
        let replies = Arc::new(Replies {
            invoker: Arc::downgrade(&invoker),
        });
        // Replies and events need no draining: nobody waits for them once the invoker closes.
        let options = common::broker::LoopOptions {
            name: "replies",
            drain: Duration::ZERO,
        };
        tokio::spawn(common::broker::run(
            replies,
            options,
            Some(first),
            invoker.closed.clone(),
        ));
        Ok(invoker)
    }

    /// Connects, declares the topology and starts consuming direct replies and events; the
    /// session is then the one requests publish on.
    async fn open_session(&self) -> Result<common::broker::Session, lapin::Error> {
        let connection = common::broker::connect(&self.url, &self.connection_name).await?;
        let channel = connection.create_channel().await?;
        // Only a channel in confirm mode hears that a full job queue refused a publish.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.topology.declare(&channel).await?;
        self.topology.declare_build_route(&channel).await?;
        self.topology
            .declare_async(&channel, &self.topology.async_delays())
            .await?;
        let replies = common::broker::Session::consume(
            connection,
            channel.clone(),
            DIRECT_REPLY_TO,
            REPLIES_TAG,
            Acks::Auto,
        )
        .await?;
        self.topology.declare_records(&channel).await?;
        let events = self
            .topology
            .subscribe_events_and_records(&channel, "faas-api-events")
            .await?;
        // From here on events are heard; whatever was cached or loaded before may be stale.
        self.listener.connected();
        *self.session.write().unwrap() = Some(Arc::new(Session {
            connection: replies.connection().clone(),
            channel,
        }));
        Ok(replies.with_events(events))
    }

    /// Tells every api replica and worker that function `event.function_id` changed. Best
    /// effort: a replica that misses it has lost its broker connection, and clears its cache.
    pub async fn publish_event(&self, event: &FunctionEvent) {
        let body = serde_json::to_vec(event).expect("an event always serializes");
        self.publish_typed_event(&self.topology.events_exchange(), EVENT_TYPE_FUNCTION, &body)
            .await;
    }

    /// Tells every api replica that a key (or a namespace's keys) must not be trusted any more.
    /// Best effort, as [`Invoker::publish_event`]; the key cache's TTL is the safety net.
    pub async fn publish_key_event(&self, event: &KeyEvent) {
        let body = serde_json::to_vec(event).expect("an event always serializes");
        self.publish_typed_event(&self.topology.events_exchange(), EVENT_TYPE_KEY, &body)
            .await;
    }

    /// Tells every api replica (this one too) of invocation records just stored: a
    /// [`RecordsEvent`] as JSON, on the records exchange, which workers never see. Best
    /// effort: the streams re-read the database after a lost connection.
    pub async fn publish_records(&self, body: &[u8]) {
        self.publish_typed_event(&self.topology.records_exchange(), EVENT_TYPE_RECORDS, body)
            .await;
    }

    async fn publish_typed_event(&self, exchange: &str, kind: &str, body: &[u8]) {
        let Ok(session) = self.current_session() else {
            return;
        };
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE_JSON.into())
            .with_type(kind.into());
        let published = session
            .channel
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await;
        let confirmed = match published {
            Ok(confirm) => confirm.await,
            Err(error) => Err(error),
        };
        if let Err(error) = confirmed {
            metrics::counter!("faas_broker_errors_total").increment(1);
            tracing::warn!(%error, kind, "event not published");
        }
    }

    pub fn is_connected(&self) -> bool {
        self.session.read().unwrap().is_some()
    }

    fn current_session(&self) -> Result<Arc<Session>, BrokerError> {
        self.session
            .read()
            .unwrap()
            .clone()
            .ok_or(BrokerError::Disconnected)
    }

    /// Fails with 503 unless some worker consumes `runtime`'s queue; the error says whether no
    /// worker is up or the ones that are up cannot run `runtime`.
    async fn ensure_consumer(
        &self,
        session: &Session,
        runtime: Runtime,
    ) -> Result<(), BrokerError> {
        let seen = self.consumers_seen.lock().unwrap().get(&runtime).copied();
        if seen.is_some_and(|at| at.elapsed() < CONSUMER_SEEN_TTL) {
            return Ok(());
        }
        let consumers = self
            .topology
            .declare_queue(&session.channel, runtime)
            .await
            .map_err(BrokerError::Unavailable)?;
        if consumers == 0 {
            self.consumers_seen.lock().unwrap().remove(&runtime);
            let standing_by = self
                .topology
                .declare_unavailable_queue(&session.channel, runtime)
                .await
                .map_err(BrokerError::Unavailable)?;
            return Err(if standing_by > 0 {
                BrokerError::RuntimeUnavailable(runtime)
            } else {
                BrokerError::NoWorker(runtime)
            });
        }
        self.consumers_seen
            .lock()
            .unwrap()
            .insert(runtime, Instant::now());
        Ok(())
    }

    /// Publishes `job` to `runtime`'s workers and waits for the reply until the job's deadline
    /// (plus `grace`, so that a worker's own timeout reply wins the race against ours).
    pub async fn invoke(
        &self,
        runtime: Runtime,
        job: &Job,
        grace: Duration,
    ) -> Result<Result<Reply, NoReply>, BrokerError> {
        let session = self.current_session()?;
        self.ensure_consumer(&session, runtime).await?;

        let body = serde_json::to_vec(job).expect("a job always serializes");
        let ttl_ms = job
            .deadline_unix_ms
            .saturating_sub(common::now_unix_ms())
            .max(1);
        let properties = BasicProperties::default()
            .with_correlation_id(job.invocation_id.to_string().into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_expiration(ttl_ms.to_string().into())
            .with_content_type(CONTENT_TYPE_JSON.into())
            // Sync calls die with their HTTP request: persisting them would buy nothing.
            .with_delivery_mode(1);

        let (tx, rx) = oneshot::channel();
        let _pending = PendingGuard::register(self, job.invocation_id, tx);
        let full = || {
            BrokerError::Overloaded(format!(
                "the {runtime} job queue is full (QUEUE_MAX_LENGTH / QUEUE_MAX_BYTES); retry shortly"
            ))
        };
        // To the function's home worker, or to any worker when it has none. `mandatory`: the
        // exchange may still route to a home queue the broker has just deleted (its worker
        // gone for `HOME_QUEUE_EXPIRES`), and such a job would be dropped without a word; it
        // comes back instead, and goes to the shared queue.
        let home = self.topology.home_exchange(runtime);
        match publish_mandatory(
            &session,
            &home,
            &Topology::home_routing_key(job.function.id),
            &body,
            &properties,
        )
        .await?
        {
            Confirmation::Nack(_) => return Err(full()),
            Confirmation::Ack(Some(_)) => {
                metrics::counter!("faas_jobs_rerouted_total", "runtime" => runtime.as_str())
                    .increment(1);
                tracing::warn!(%runtime, "the job's home queue was gone; publishing it to the shared queue");
                let spill = self.topology.spill_exchange(runtime);
                match publish_mandatory(&session, &spill, "", &body, &properties).await? {
                    Confirmation::Ack(None) => {}
                    Confirmation::Nack(_) => return Err(full()),
                    Confirmation::Ack(Some(_)) | Confirmation::NotRequested => {
                        return Err(BrokerError::Overloaded(format!(
                            "the broker did not route the {runtime} job; retry shortly"
                        )));
                    }
                }
            }
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
        }

        match tokio::time::timeout(Duration::from_millis(ttl_ms) + grace, rx).await {
            Ok(Ok(reply)) => Ok(Ok(reply)),
            // The sender was dropped: the connection went away under us.
            Ok(Err(_)) => Err(BrokerError::Disconnected),
            Err(_) => Ok(Err(NoReply::TimedOut)),
        }
    }

    /// How many workers consume the build queue now (0 when the broker is away).
    pub async fn build_consumers(&self) -> u32 {
        let Ok(session) = self.current_session() else {
            return 0;
        };
        self.topology
            .declare_build_queue(&session.channel)
            .await
            .unwrap_or(0)
    }

    /// Queues a dependency build, persistently: the broker confirms once it is on disk, so a
    /// broker restart does not lose it.
    pub async fn publish_build(&self, job: &BuildJob) -> Result<(), BrokerError> {
        let body = serde_json::to_vec(job).expect("a build job always serializes");
        let properties = BasicProperties::default().with_message_id(job.attempt.to_string().into());
        let exchange = self.topology.build_exchange();
        match self
            .publish_persistent(&exchange, Topology::BUILD_ROUTING_KEY, &body, properties)
            .await?
        {
            Confirmation::Nack(_) => Err(BrokerError::Overloaded(
                "the broker refused the build job; save the function again shortly".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Publishes a message of the async topology (a job to run, to retry after a delay, or to
    /// keep as dead) persistently under `routing_key`, and waits for the broker's confirm: for
    /// a durable queue it comes once the message is on disk (a quorum queue: on a majority).
    pub async fn publish_async(&self, routing_key: &str, body: &[u8]) -> Result<(), BrokerError> {
        let exchange = self.topology.async_exchange();
        match self
            .publish_persistent(&exchange, routing_key, body, BasicProperties::default())
            .await?
        {
            Confirmation::Ack(None) => Ok(()),
            // Returned: no queue is bound (deleted under a running api).
            Confirmation::Ack(Some(_)) | Confirmation::NotRequested => {
                Err(BrokerError::Overloaded(
                    "the broker did not route the async job; retry shortly".into(),
                ))
            }
            Confirmation::Nack(_) => Err(BrokerError::Overloaded(
                "the broker refused the async job; retry shortly".into(),
            )),
        }
    }

    /// Publishes `body` as a persistent JSON message (`mandatory`, so that an unroutable one
    /// comes back) and waits for the broker's confirm, which the caller reads.
    async fn publish_persistent(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<Confirmation, BrokerError> {
        let session = self.current_session()?;
        let properties = properties
            .with_content_type(CONTENT_TYPE_JSON.into())
            .with_delivery_mode(2);
        publish_mandatory(&session, exchange, routing_key, body, &properties).await
    }

    /// Closes the connection; waiting requests fail with 503. Used on shutdown.
    pub async fn close(&self) {
        self.closed.cancel();
        let session = self.session.write().unwrap().take();
        if let Some(session) = session
            && let Err(error) = session
                .connection
                .close(200, "api shutting down".into())
                .await
        {
            tracing::debug!(%error, "closing the broker connection");
        }
        self.pending.lock().unwrap().clear();
    }

    fn deliver(&self, reply: Reply) {
        let waiter = self.pending.lock().unwrap().remove(&reply.invocation_id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(reply);
            }
            None => {
                tracing::debug!(invocation_id = %reply.invocation_id, "reply with nobody waiting")
            }
        }
    }

    /// Hands a function, key or records event from the events exchange to the listener.
    fn handle_event(&self, delivery: &lapin::message::Delivery) {
        match common::broker::event_type(&delivery.properties) {
            EVENT_TYPE_RECORDS => match serde_json::from_slice::<RecordsEvent>(&delivery.data) {
                Ok(event) => self.listener.records_stored(event),
                Err(error) => tracing::warn!(%error, "malformed records event dropped"),
            },
            EVENT_TYPE_KEY => match serde_json::from_slice::<KeyEvent>(&delivery.data) {
                Ok(event) => self.listener.key_changed(event),
                Err(error) => tracing::warn!(%error, "malformed key event dropped"),
            },
            _ => match serde_json::from_slice::<FunctionEvent>(&delivery.data) {
                Ok(event) => self.listener.function_changed(event),
                Err(error) => tracing::warn!(%error, "malformed function event dropped"),
            },
        }
    }

    fn lose_session(&self) {
        *self.session.write().unwrap() = None;
        self.listener.disconnected();
        // Dropping the senders wakes every waiting request with an error.
        self.pending.lock().unwrap().clear();
        self.consumers_seen.lock().unwrap().clear();
    }
}

/// Removes a request's entry from the pending map however the request ends (even when its HTTP
/// connection is dropped mid-wait), so the map never leaks.
struct PendingGuard<'a> {
    invoker: &'a Invoker,
    id: Uuid,
}

impl<'a> PendingGuard<'a> {
    fn register(invoker: &'a Invoker, id: Uuid, tx: oneshot::Sender<Reply>) -> Self {
        invoker.pending.lock().unwrap().insert(id, tx);
        PendingGuard { invoker, id }
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.invoker.pending.lock().unwrap().remove(&self.id);
    }
}

impl Drop for Invoker {
    /// Ends the reply consumer's loop, which only holds the invoker weakly.
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// Publishes `body` `mandatory` (an unroutable message comes back in the confirm) and waits for
/// the broker's confirm: for a transient message one round trip, as the broker confirms it once
/// it is queued; for a persistent one, once it is on disk.
async fn publish_mandatory(
    session: &Session,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: &BasicProperties,
) -> Result<Confirmation, BrokerError> {
    session
        .channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties.clone(),
        )
        .await
        .map_err(BrokerError::Unavailable)?
        .await
        .map_err(BrokerError::Unavailable)
}

#[cfg(test)]
impl Invoker {
    /// An invoker that never connected, for unit tests of what its callers do with the broker
    /// away: publishing fails with [`BrokerError::Disconnected`] (an event is dropped), no
    /// worker consumes anything, and no event is ever heard.
    pub fn disconnected() -> Arc<Self> {
        /// Hears nothing: a disconnected invoker has no event to tell.
        struct Unheard;
        impl EventListener for Unheard {
            fn connected(&self) {}
            fn disconnected(&self) {}
            fn function_changed(&self, _: FunctionEvent) {}
            fn key_changed(&self, _: KeyEvent) {}
            fn records_stored(&self, _: RecordsEvent) {}
        }
        Arc::new(Invoker {
            url: String::new(),
            connection_name: "unit test".into(),
            topology: Topology::new("unit-test."),
            listener: Arc::new(Unheard),
            session: RwLock::new(None),
            pending: Mutex::new(HashMap::new()),
            consumers_seen: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
        })
    }
}

/// The invoker's consumer: direct replies, each handed to the request that waits for it, and
/// events, applied to the caches. It holds the invoker weakly: the invoker owns the loop's
/// stop token (cancelled by [`Invoker::close`] and when it is dropped).
struct Replies {
    invoker: Weak<Invoker>,
}

impl common::broker::Consume for Replies {
    type Context = ();
    /// A reply is parsed and handed over at once: no task or span of its own on every call.
    const INLINE: bool = true;

    async fn open(&self) -> lapin::Result<common::broker::Session> {
        match self.invoker.upgrade() {
            Some(invoker) => invoker.open_session().await,
            None => {
                Err(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into())
            }
        }
    }

    async fn handle(self: Arc<Self>, delivery: lapin::message::Delivery, _context: ()) -> Decision {
        if let Some(invoker) = self.invoker.upgrade() {
            match serde_json::from_slice::<Reply>(&delivery.data) {
                Ok(reply) => invoker.deliver(reply),
                Err(error) => tracing::warn!(%error, "malformed reply dropped"),
            }
        }
        // Not applied: replies come without acknowledgement.
        Decision::Ack
    }

    fn event(&self, delivery: &lapin::message::Delivery) {
        if let Some(invoker) = self.invoker.upgrade() {
            invoker.handle_event(delivery);
        }
    }

    fn lost(&self) {
        if let Some(invoker) = self.invoker.upgrade() {
            invoker.lose_session();
        }
    }
}
