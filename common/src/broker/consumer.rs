//! The one consumer loop of the platform, run by the worker's job and build consumers, the
//! api's async dispatcher and the api's reply consumer (the invoker).
//!
//! A consumer says how to open its [`Session`] (connect, open a channel, declare, consume) and
//! how to handle one delivery; [`run`] does the rest the same way for all of them:
//! - each delivery runs in a task of its own, inside a `delivery` span carrying the consumer,
//!   the queue and the delivery tag (a handler opens its own span inside for its ids); at most
//!   the prefetch its session set are unacknowledged, hence running, at once. A consumer whose
//!   handler never waits ([`Consume::INLINE`], the api's replies) is handled in the loop itself,
//!   without a task or a span: on the path of every call, they would cost more than the work;
//! - the handler's [`Decision`] is applied to the delivery (ack, requeue or reject);
//! - when the connection or a consumer is lost, the session is opened again with capped
//!   exponential [`Backoff`], tasks in flight running on (their deliveries, unacknowledged on the
//!   lost channel, are delivered again by the broker);
//! - on stop it takes no more deliveries, cancels its consumer, lets those in flight finish (up
//!   to [`LoopOptions::drain`]; the rest are abandoned, to be delivered again) and closes.

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Connection, Consumer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The longest wait between two attempts to reach the broker again.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The wait before the first attempt to reach the broker again; each failed one doubles it.
const RECONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// How long each step of closing a session may take at stop: a connection the broker blocks
/// (its memory alarm) would otherwise never answer.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The waits between attempts to reach the broker: 200 ms, doubled after each failed attempt,
/// at most [`RECONNECT_BACKOFF_MAX`]. A fresh one for each loss.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: RECONNECT_BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// The wait before the next attempt; the one after it is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(RECONNECT_BACKOFF_MAX);
        delay
    }
}

/// What becomes of a delivery once its handler is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Handled (or dropped on purpose): the broker forgets it.
    Ack,
    /// Not handled here: back to the queue, for this consumer or another to take again.
    Requeue,
    /// It can never be handled (too large, malformed): dropped without requeueing (to the
    /// queue's dead-letter exchange, where it has one).
    Reject,
}

/// The AMQP method that applies a [`Decision`] to one delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Settlement {
    Ack(BasicAckOptions),
    Nack(BasicNackOptions),
    Reject(BasicRejectOptions),
}

impl Decision {
    fn settlement(self) -> Settlement {
        match self {
            Decision::Ack => Settlement::Ack(BasicAckOptions { multiple: false }),
            Decision::Requeue => Settlement::Nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            }),
            Decision::Reject => Settlement::Reject(BasicRejectOptions { requeue: false }),
        }
    }
}

/// Whether a session's deliveries are to be acknowledged: what its consumer was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Each delivery is settled by its handler's [`Decision`] (`no_ack: false`).
    Manual,
    /// The broker forgets each delivery as it sends it (`no_ack: true`, as direct reply-to
    /// requires); the handler's decision is not applied.
    Auto,
}

/// One connection's worth of consuming: the consumer whose deliveries go to the handler, an
/// optional events consumer read alongside, and what the handler needs of the session.
pub struct Session<C = ()> {
    /// Shared with whoever publishes on it too (the api's invoker); closed at stop.
    connection: Arc<Connection>,
    /// The channel `deliveries` consumes on: its consumer is cancelled there at stop.
    channel: Channel,
    deliveries: Consumer,
    acks: Acks,
    /// Messages without acknowledgement (function and key events) handed to
    /// [`Consume::event`] in the loop itself.
    events: Option<Consumer>,
    context: C,
}

impl Session<()> {
    /// Starts consuming `queue` on `channel` as `tag` (after whatever declares and the prefetch
    /// the caller set on it).
    pub async fn consume(
        connection: Connection,
        channel: Channel,
        queue: &str,
        tag: &str,
        acks: Acks,
    ) -> lapin::Result<Self> {
        let deliveries = channel
            .basic_consume(
                queue.into(),
                tag.into(),
                BasicConsumeOptions {
                    no_ack: acks == Acks::Auto,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(Session {
            connection: Arc::new(connection),
            channel,
            deliveries,
            acks,
            events: None,
            context: (),
        })
    }
}

impl<C> Session<C> {
    /// Reads `events` (a consumer without acknowledgement, on this session's connection) too;
    /// its end, like the deliveries', is a lost session.
    pub fn with_events(mut self, events: Consumer) -> Self {
        self.events = Some(events);
        self
    }

    /// Gives each handler `context` (cloned), e.g. the channel its replies go out on.
    pub fn with_context<D>(self, context: D) -> Session<D> {
        Session {
            connection: self.connection,
            channel: self.channel,
            deliveries: self.deliveries,
            acks: self.acks,
            events: self.events,
            context,
        }
    }

    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// A consumer: how to open its session and what to do with each delivery.
pub trait Consume: Send + Sync + 'static {
    /// What a handler gets of the session besides the delivery (`()` when nothing).
    type Context: Clone + Send + Sync + 'static;

    /// Whether each delivery is handled in the loop itself, awaited before the next is taken,
    /// rather than on a task of its own inside a `delivery` span. Only for a handler that
    /// never waits (it would hold every other delivery back) and runs so often that a task and
    /// a span per delivery would cost more than the handling: the api's replies, each handed
    /// to the request that waits for it.
    const INLINE: bool = false;

    /// Connects, opens a channel, declares, sets the prefetch and starts consuming
    /// ([`Session::consume`]); called for the first session (unless the caller opened it) and
    /// again after each loss.
    fn open(&self) -> impl Future<Output = lapin::Result<Session<Self::Context>>> + Send;

    /// Handles one delivery, in a task of its own inside the delivery's span, and says what
    /// becomes of it.
    fn handle(
        self: Arc<Self>,
        delivery: Delivery,
        context: Self::Context,
    ) -> impl Future<Output = Decision> + Send + 'static;

    /// A message of the session's events consumer, handled in the loop itself: keep it short.
    fn event(&self, _delivery: &Delivery) {}

    /// The session was lost; called once, before reaching for the broker again.
    fn lost(&self) {}
}

/// How a consumer loop names itself and stops.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Names the consumer in the loop's log lines and spans (`jobs`, `builds`, ...).
    pub name: &'static str,
    /// How long deliveries in flight at stop may run on before they are abandoned (and
    /// delivered again, unacknowledged, once the connection closes).
    pub drain: Duration,
}

/// Why a session ended.
enum Loss {
    /// The connection or channel failed.
    Failed(lapin::Error),
    /// The broker cancelled a consumer (its queue was deleted, say).
    Cancelled,
}

impl Loss {
    fn of(next: Option<lapin::Result<Delivery>>) -> Self {
        match next {
            Some(Err(error)) => Loss::Failed(error),
            _ => Loss::Cancelled,
        }
    }
}

/// Consumes until `stop`: opens the session (unless `first` is one already opened), hands each
/// delivery to `consumer` and applies its decision, opens the session again with backoff when
/// it is lost; on stop, drains what is in flight (up to `options.drain`) and closes.
pub async fn run<T: Consume>(
    consumer: Arc<T>,
    options: LoopOptions,
    first: Option<Session<T::Context>>,
    stop: CancellationToken,
) {
    let name = options.name;
    let mut tasks = JoinSet::new();
    let first = match first {
        Some(session) => Some(session),
        None => reopen(&*consumer, name, &stop, false).await,
    };
    let Some(mut session) = first else {
        return;
    };
    let mut queue = session.deliveries.queue().to_string();
    tracing::info!(consumer = name, %queue, "consuming");
    loop {
        let loss = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            // Finished tasks are reaped as they end, so the set holds only running ones.
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if joined.is_err_and(|error| error.is_panic()) {
                    tracing::error!(consumer = name, "a delivery's handler panicked; it is settled by nobody (the broker takes an unacknowledged one back when its channel closes)");
                }
                continue;
            }
            event = next_event(&mut session.events) => match event {
                Some(Ok(event)) => {
                    consumer.event(&event);
                    continue;
                }
                other => Loss::of(other),
            },
            delivery = session.deliveries.next() => match delivery {
                Some(Ok(delivery)) => {
                    let tag = delivery.delivery_tag;
                    let acker = (session.acks == Acks::Manual).then(|| delivery.acker.clone());
                    let handling = consumer.clone().handle(delivery, session.context.clone());
                    let settled = async move {
                        let decision = handling.await;
                        if let Some(acker) = acker {
                            settle(&acker, decision).await;
                        }
                    };
                    if T::INLINE {
                        settled.await;
                    } else {
                        let span = tracing::info_span!(
                            "delivery",
                            consumer = name,
                            queue = %queue,
                            delivery_tag = tag,
                        );
                        tasks.spawn(settled.instrument(span));
                    }
                    continue;
                }
                other => Loss::of(other),
            },
        };
        if stop.is_cancelled() {
            // Lost because it is being closed (the api's invoker closes its own connection).
            break;
        }
        match loss {
            Loss::Failed(error) => {
                metrics::counter!("faas_broker_errors_total").increment(1);
                tracing::warn!(consumer = name, %error, "lost the broker connection");
            }
            Loss::Cancelled => tracing::warn!(consumer = name, "the broker cancelled the consumer"),
        }
        consumer.lost();
        match reopen(&*consumer, name, &stop, true).await {
            Some(reopened) => {
                session = reopened;
                queue = session.deliveries.queue().to_string();
                tracing::info!(consumer = name, %queue, "broker connection restored");
            }
            None => {
                drain(name, &mut tasks, options.drain).await;
                return;
            }
        }
    }

    tracing::info!(
        consumer = name,
        in_flight = tasks.len(),
        "no longer taking deliveries"
    );
    let cancel = session
        .channel
        .basic_cancel(session.deliveries.tag(), BasicCancelOptions::default());
    if tokio::time::timeout(CLOSE_TIMEOUT, cancel).await.is_err() {
        tracing::warn!(
            consumer = name,
            "the broker did not confirm the consumer's cancel in time"
        );
    }
    // Those in flight settle their deliveries on this connection, still open.
    drain(name, &mut tasks, options.drain).await;
    close(name, &session.connection).await;
}

/// The next message of the events consumer; never, without one.
async fn next_event(events: &mut Option<Consumer>) -> Option<lapin::Result<Delivery>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// Opens the session, at once unless `after_loss`, then with [`Backoff`] until it opens; `None`
/// when `stop` came first.
async fn reopen<T: Consume>(
    consumer: &T,
    name: &str,
    stop: &CancellationToken,
    after_loss: bool,
) -> Option<Session<T::Context>> {
    let mut backoff = Backoff::new();
    let mut wait = if after_loss {
        backoff.next_delay()
    } else {
        Duration::ZERO
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        let opened = tokio::select! {
            () = stop.cancelled() => return None,
            opened = consumer.open() => opened,
        };
        match opened {
            Ok(session) => return Some(session),
            Err(error) => {
                wait = backoff.next_delay();
                metrics::counter!("faas_broker_errors_total").increment(1);
                tracing::warn!(consumer = name, %error, "broker unreachable; retrying in {wait:?}");
            }
        }
    }
}

/// Applies `decision` to the delivery `acker` settles.
async fn settle(acker: &Acker, decision: Decision) {
    let settled = match decision.settlement() {
        Settlement::Ack(options) => acker.ack(options).await,
        Settlement::Nack(options) => acker.nack(options).await,
        Settlement::Reject(options) => acker.reject(options).await,
    };
    match settled {
        Ok(true) => {}
        // The channel is gone: the broker delivers it again, and the copy finds whatever this
        // one left behind.
        Ok(false) => tracing::debug!(?decision, "delivery not settled: its channel is gone"),
        Err(error) => {
            metrics::counter!("faas_broker_errors_total").increment(1);
            tracing::warn!(%error, ?decision, "delivery not settled; the broker delivers it again once its channel closes");
        }
    }
}

/// Waits for the tasks in flight, at most `bound`; the others are aborted (their deliveries,
/// unacknowledged, are delivered again).
async fn drain(name: &str, tasks: &mut JoinSet<()>, bound: Duration) {
    let drained =
        tokio::time::timeout(bound, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            consumer = name,
            abandoned = tasks.len(),
            "drain period over; abandoning deliveries in flight (they will be delivered again)"
        );
        tasks.abort_all();
    }
}

/// Closes the connection, or gives up on it after [`CLOSE_TIMEOUT`].
async fn close(name: &str, connection: &Connection) {
    let closing = connection.close(200, "consumer stopping".into());
    match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
        Ok(Ok(())) => {}
        // Closed already (the api's invoker closes its own at shutdown), or lost meanwhile.
        Ok(Err(error)) => tracing::debug!(consumer = name, %error, "closing the broker connection"),
        Err(_) => tracing::warn!(
            consumer = name,
            "the broker did not confirm the close in time; leaving the connection"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_200_ms_up_to_its_cap() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(RECONNECT_BACKOFF_MAX, Duration::from_secs(5));
    }

    #[test]
    fn a_fresh_backoff_starts_over() {
        let mut used = Backoff::new();
        for _ in 0..10 {
            used.next_delay();
        }
        assert_eq!(used.next_delay(), RECONNECT_BACKOFF_MAX);
        assert_eq!(Backoff::new().next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn each_decision_settles_one_delivery_with_its_method() {
        assert_eq!(
            Decision::Ack.settlement(),
            Settlement::Ack(BasicAckOptions { multiple: false })
        );
        assert_eq!(
            Decision::Requeue.settlement(),
            Settlement::Nack(BasicNackOptions {
                multiple: false,
                requeue: true
            })
        );
        assert_eq!(
            Decision::Reject.settlement(),
            Settlement::Reject(BasicRejectOptions { requeue: false })
        );
    }

    #[test]
    fn a_failed_stream_is_a_failure_and_its_end_a_cancel() {
        let failed = Loss::of(Some(Err(lapin::Error::from(
            lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
        ))));
        assert!(matches!(failed, Loss::Failed(_)));
        assert!(matches!(Loss::of(None), Loss::Cancelled));
    }
}
