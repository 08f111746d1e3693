//! The dispatcher's own broker connection: consumes the async queue with a prefetch of twice
//! `ASYNC_CONCURRENCY` (the slots, shared fairly between namespaces, and as many jobs looked
//! at beyond them: see `fair`), runs each job on a task of its own and acks (or requeues) it
//! when the runner is done. The loop around it (reconnects with backoff, drain at stop) is
//! `common::broker::run`.

use super::fair::FairSlots;
use super::runner::{Disposition, Runner};
use super::{AsyncJob, Dispatch, DispatchSettings};
use common::broker::{Acks, Consume, Decision, LoopOptions, Session};
use lapin::message::Delivery;
use lapin::options::BasicQosOptions;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a stopping dispatcher lets the jobs it runs finish; the rest are delivered again.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The dispatcher's consumer tag.
const CONSUMER_TAG: &str = "faas-api-dispatcher";

/// Starts the dispatcher; it ends when `stop` is cancelled and its jobs are done (at most
/// [`DRAIN_TIMEOUT`] later).
pub fn spawn_dispatcher(
    state: Dispatch,
    settings: DispatchSettings,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let runner = Arc::new(Runner {
        backend: state,
        topology: settings.topology.clone(),
        stop: stop.clone(),
        slots: FairSlots::new(usize::from(settings.concurrency)),
        max_event_bytes: settings.max_event_bytes,
    });
    let options = LoopOptions {
        name: "async dispatcher",
        drain: DRAIN_TIMEOUT,
    };
    let dispatcher = Arc::new(Dispatcher { runner, settings });
    tokio::spawn(common::broker::run(dispatcher, options, None, stop))
}

/// The async queue's consumer: each job run by the [`Runner`].
struct Dispatcher {
    runner: Arc<Runner>,
    settings: DispatchSettings,
}

impl Consume for Dispatcher {
    type Context = ();

    async fn open(&self) -> lapin::Result<Session> {
        let settings = &self.settings;
        let connection =
            common::broker::connect(&settings.amqp_url, &settings.connection_name).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(look_ahead(settings.concurrency), BasicQosOptions::default())
            .await?;
        settings
            .topology
            .declare_async(&channel, &settings.topology.async_delays())
            .await?;
        let queue = settings.topology.async_queue();
        Session::consume(connection, channel, &queue, CONSUMER_TAG, Acks::Manual).await
    }

    async fn handle(self: Arc<Self>, delivery: Delivery, _context: ()) -> Decision {
        let Ok(job) = serde_json::from_slice::<AsyncJob>(&delivery.data) else {
            tracing::warn!("malformed async job dropped");
            return Decision::Ack;
        };
        let span = tracing::info_span!("async_job", invocation_id = %job.invocation_id, attempt = job.attempt);
        match self.runner.handle(job).instrument(span).await {
            Disposition::Ack => Decision::Ack,
            Disposition::Requeue => Decision::Requeue,
        }
    }
}

/// The prefetch for `slots` slots: as many jobs again are looked at beyond those running, so
/// that jobs of a namespace holding its share are set aside and another namespace's job behind
/// them reaches the next free slot.
fn look_ahead(slots: u16) -> u16 {
    slots.saturating_mul(2)
}
