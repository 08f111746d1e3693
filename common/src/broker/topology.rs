//! RabbitMQ topology, declared identically by the api and the workers so that either can start
//! first: one durable direct exchange, one durable queue per runtime bound by the runtime's name.
//! Job queues are bounded (`x-max-length`, `x-max-length-bytes`) and refuse publishes over the
//! bound (`reject-publish`), so a flood of calls cannot push the broker into its memory alarm,
//! which would block every publisher, the workers' replies included.

use crate::model::Runtime;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

/// The exchange type of RabbitMQ's plugin `rabbitmq_consistent_hash_exchange`.
pub const CONSISTENT_HASH: &str = "x-consistent-hash";

/// Routing key a reply to a sync invocation goes to (RabbitMQ direct reply-to).
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Content type of every job and reply body.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Where the broker is and which names this deployment uses on it; flattened into both
/// binaries' settings, so `AMQP_URL` and `QUEUE_PREFIX` mean the same to each.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerSettings {
    /// RabbitMQ that carries the invocation jobs and their replies (or AMQP_URL_FILE: the URL holds
    /// a password).
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Prefix of the exchange and queue names, so that deployments can share one broker; the
    /// api's and its workers' must match.
    #[arg(long, env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Jobs a runtime's queue holds at most; a call over it is refused with 503 `overloaded`.
    /// The api's and its workers' must match (both declare the queues).
    #[arg(long, env = "QUEUE_MAX_LENGTH", default_value_t = QueueLimits::default().max_length)]
    pub queue_max_length: u32,

    /// Bytes of jobs a runtime's queue holds at most (events are up to 6 MiB each); over it a
    /// call is refused with 503 `overloaded`. Must match between the api and its workers.
    #[arg(long, env = "QUEUE_MAX_BYTES", default_value_t = QueueLimits::default().max_bytes)]
    pub queue_max_bytes: u64,
}

impl BrokerSettings {
    pub fn topology(&self) -> Topology {
        Topology::new(&self.queue_prefix).with_limits(QueueLimits {
            max_length: self.queue_max_length,
            max_bytes: self.queue_max_bytes,
        })
    }
}

/// How much a job queue may hold before the broker refuses publishes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_length: u32,
    pub max_bytes: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_length: 10_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Names of the exchange and queues, with the deployment's prefix (`QUEUE_PREFIX`), so that
/// several deployments or test runs can share one broker, and the job queues' bounds.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub(super) prefix: String,
    pub(super) limits: QueueLimits,
    /// `RETRY_BASE_SECS` (the api's): the first retry's delay; each next one doubles it.
    retry_base_secs: u64,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Topology {
            prefix: prefix.into(),
            limits: QueueLimits::default(),
            retry_base_secs: 1,
        }
    }

    /// Sets the delay of the first retry of an async invocation (at least 1 s).
    pub fn with_retry_base_secs(mut self, secs: u64) -> Self {
        self.retry_base_secs = secs.max(1);
        self
    }

    /// The most retries an async invocation has (`max_retries` goes up to it).
    pub const MAX_RETRIES: u32 = 5;

    /// The delay before retry number `retry` (1-based): the base, doubled at each retry.
    pub fn retry_delay_secs(&self, retry: u32) -> u64 {
        self.retry_base_secs.max(1) << retry.clamp(1, Self::MAX_RETRIES).saturating_sub(1)
    }

    /// Every retry delay, one delay queue each.
    pub fn retry_delays(&self) -> Vec<u64> {
        (1..=Self::MAX_RETRIES)
            .map(|retry| self.retry_delay_secs(retry))
            .collect()
    }

    /// How long an async job set aside because its namespace holds its fair share of a
    /// dispatcher's slots stays away, by how often it was set aside before: doubling from
    /// 1 s to about 4 min, so that a backlog of thousands passes through the broker a few
    /// times per call it waits for rather than continuously.
    pub const DEFER_DELAYS_SECS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    /// The delay of a job set aside `times` times before ([`Self::DEFER_DELAYS_SECS`]).
    pub fn defer_delay_secs(times: u32) -> u64 {
        let last = Self::DEFER_DELAYS_SECS.len() - 1;
        Self::DEFER_DELAYS_SECS[(times as usize).min(last)]
    }

    /// Every delay queue of the async exchange: the retries' and the set-aside jobs'.
    pub fn async_delays(&self) -> Vec<u64> {
        let mut delays = self.retry_delays();
        delays.extend(Self::DEFER_DELAYS_SECS);
        delays.sort_unstable();
        delays.dedup();
        delays
    }

    pub fn with_limits(mut self, limits: QueueLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The arguments every job queue is declared with. A queue that exists with other ones
    /// (declared by an older version) makes the declare fail with PRECONDITION_FAILED; see
    /// [`explain_declare_error`].
    fn job_queue_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from("x-max-length"),
            AMQPValue::LongLongInt(i64::from(self.limits.max_length)),
        );
        arguments.insert(
            ShortString::from("x-max-length-bytes"),
            AMQPValue::LongLongInt(i64::try_from(self.limits.max_bytes).unwrap_or(i64::MAX)),
        );
        arguments.insert(
            ShortString::from("x-overflow"),
            AMQPValue::LongString(LongString::from("reject-publish")),
        );
        arguments
    }

    pub fn exchange(&self) -> String {
        format!("{}faas.invoke", self.prefix)
    }

    /// Fanout exchange of [`crate::FunctionEvent`]s: every api replica and worker binds a
    /// private queue to it, to drop cached definitions and warm containers of old versions.
    pub fn events_exchange(&self) -> String {
        format!("{}faas.events", self.prefix)
    }

    /// Fanout exchange of the invocation records an api replica stored
    /// ([`crate::EVENT_TYPE_RECORDS`]), for every replica's invocation streams. Only api
    /// replicas declare it and bind to it: the records carry every namespace's logs, which no
    /// worker needs to see (the cluster's broker does not let workers near it).
    pub fn records_exchange(&self) -> String {
        format!("{}faas.records", self.prefix)
    }

    /// Declares [`Self::records_exchange`]; idempotent. The api's part only.
    pub async fn declare_records(&self, channel: &Channel) -> lapin::Result<()> {
        declare_durable_exchange(channel, &self.records_exchange(), ExchangeKind::Fanout).await
    }

    /// The durable queue of dependency builds ([`crate::BuildJob`]), taken by any worker.
    pub fn build_queue(&self) -> String {
        format!("{}faas.build", self.prefix)
    }

    /// The durable direct exchange build jobs are published to (same name as its queue): the
    /// api publishes there rather than through the default exchange, which would let it put
    /// a message into any queue by name (the broker's permissions cannot narrow that).
    pub fn build_exchange(&self) -> String {
        format!("{}faas.build", self.prefix)
    }

    /// The routing key of build jobs on [`Self::build_exchange`].
    pub const BUILD_ROUTING_KEY: &'static str = "build";

    /// Declares the build exchange and queue and binds them: the api's part (it publishes);
    /// workers only declare the queue and consume it.
    pub async fn declare_build_route(&self, channel: &Channel) -> lapin::Result<()> {
        declare_durable_exchange(channel, &self.build_exchange(), ExchangeKind::Direct).await?;
        self.declare_build_queue(channel).await?;
        channel
            .queue_bind(
                self.build_queue().as_str().into(),
                self.build_exchange().as_str().into(),
                Self::BUILD_ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    /// Declares the build queue (durable, with persistent messages: a build request survives
    /// a broker restart) and returns its consumer count.
    pub async fn declare_build_queue(&self, channel: &Channel) -> lapin::Result<u32> {
        let queue = channel
            .queue_declare(
                self.build_queue().as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(queue.consumer_count())
    }

    pub fn queue(&self, runtime: Runtime) -> String {
        format!("{}faas.invoke.{}", self.prefix, runtime)
    }

    /// A queue nobody publishes to: a worker that is up but cannot run `runtime` (a gVisor
    /// worker on a host without `runsc`) consumes it, so the api can tell "no worker" from
    /// "workers that cannot run this runtime" by its consumer count.
    pub fn unavailable_queue(&self, runtime: Runtime) -> String {
        format!("{}faas.unavailable.{}", self.prefix, runtime)
    }

    /// The routing key of jobs for `runtime`.
    pub fn routing_key(runtime: Runtime) -> &'static str {
        runtime.as_str()
    }

    /// Declares the exchanges, both job queues (bound to the invoke exchange and to their
    /// spill exchange), both home exchanges and the build queue; idempotent.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        declare_durable_exchange(channel, &self.exchange(), ExchangeKind::Direct).await?;
        declare_durable_exchange(channel, &self.events_exchange(), ExchangeKind::Fanout).await?;
        for runtime in Runtime::ALL {
            self.declare_queue(channel, runtime).await?;
            let spill = self.spill_exchange(runtime);
            declare_durable_exchange(channel, &spill, ExchangeKind::Fanout).await?;
            channel
                .queue_bind(
                    self.queue(runtime).as_str().into(),
                    spill.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let mut spills_to = FieldTable::default();
            spills_to.insert(
                ShortString::from("alternate-exchange"),
                AMQPValue::LongString(LongString::from(spill)),
            );
            channel
                .exchange_declare(
                    self.home_exchange(runtime).as_str().into(),
                    ExchangeKind::Custom(CONSISTENT_HASH.into()),
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    spills_to,
                )
                .await?;
            channel
                .queue_bind(
                    self.queue(runtime).as_str().into(),
                    self.exchange().as_str().into(),
                    Self::routing_key(runtime).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        self.declare_build_queue(channel).await?;
        Ok(())
    }

    /// Declares one runtime's queue and returns how many consumers it has right now. Declaring
    /// (rather than a passive declare) cannot fail on a missing queue, so the channel survives.
    pub async fn declare_queue(&self, channel: &Channel, runtime: Runtime) -> lapin::Result<u32> {
        let queue = channel
            .queue_declare(
                self.queue(runtime).as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                self.job_queue_arguments(),
            )
            .await?;
        Ok(queue.consumer_count())
    }

    /// Declares `runtime`'s [unavailable queue](Self::unavailable_queue) and returns how many
    /// workers stand by on it. Not durable: after a broker restart the workers redeclare it.
    pub async fn declare_unavailable_queue(
        &self,
        channel: &Channel,
        runtime: Runtime,
    ) -> lapin::Result<u32> {
        let queue = channel
            .queue_declare(
                self.unavailable_queue(runtime).as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(queue.consumer_count())
    }
}

/// The async invocations' part of the topology (DESIGN section 10), declared by the api only:
/// it publishes and consumes these queues, workers never see them.
impl Topology {
    /// Durable direct exchange of async jobs: `run` routes to [`Self::async_queue`], `dead`
    /// to [`Self::dead_queue`], `delay.{secs}` to that delay's queue.
    pub fn async_exchange(&self) -> String {
        format!("{}faas.async", self.prefix)
    }

    /// The quorum queue of async jobs waiting to be run (replicated on a cluster, and its
    /// messages survive a broker restart).
    pub fn async_queue(&self) -> String {
        format!("{}faas.async", self.prefix)
    }

    /// Where the jobs of dead-lettered invocations are kept (nobody consumes it; the database
    /// says which invocations are dead and `POST /invocations/{id}/retry` redrives one).
    pub fn dead_queue(&self) -> String {
        format!("{}faas.dead", self.prefix)
    }

    /// The queue a retry waits in for `secs` before it dead-letters back to the async queue.
    pub fn delay_queue(&self, secs: u64) -> String {
        format!("{}faas.async.delay.{secs}", self.prefix)
    }

    pub const ASYNC_RUN_KEY: &'static str = "run";
    pub const ASYNC_DEAD_KEY: &'static str = "dead";

    /// The routing key of the delay queue of `secs`.
    pub fn delay_routing_key(secs: u64) -> String {
        format!("delay.{secs}")
    }

    /// Declares the async exchange, the async queue (quorum), the dead queue and one delay
    /// queue per entry of `delays_secs`, and binds them; idempotent.
    pub async fn declare_async(&self, channel: &Channel, delays_secs: &[u64]) -> lapin::Result<()> {
        let exchange = self.async_exchange();
        declare_durable_exchange(channel, &exchange, ExchangeKind::Direct).await?;
        let mut quorum = FieldTable::default();
        quorum.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        let mut dead = FieldTable::default();
        // Kept for operators and tools, bounded: the database holds every dead invocation.
        dead.insert(
            ShortString::from("x-max-length"),
            AMQPValue::LongLongInt(100_000),
        );
        let mut queues = vec![
            (self.async_queue(), Self::ASYNC_RUN_KEY.to_owned(), quorum),
            (self.dead_queue(), Self::ASYNC_DEAD_KEY.to_owned(), dead),
        ];
        for &secs in delays_secs {
            let mut arguments = FieldTable::default();
            arguments.insert(
                ShortString::from("x-message-ttl"),
                AMQPValue::LongLongInt((secs * 1000) as i64),
            );
            arguments.insert(
                ShortString::from("x-dead-letter-exchange"),
                AMQPValue::LongString(LongString::from(exchange.as_str())),
            );
            arguments.insert(
                ShortString::from("x-dead-letter-routing-key"),
                AMQPValue::LongString(LongString::from(Self::ASYNC_RUN_KEY)),
            );
            queues.push((
                self.delay_queue(secs),
                Self::delay_routing_key(secs),
                arguments,
            ));
        }
        for (queue, key, arguments) in queues {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    arguments,
                )
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

impl Topology {
    /// Declares a private, server-named queue bound to the events exchange and starts
    /// consuming it; the queue goes away with the connection.
    pub async fn subscribe_events(
        &self,
        channel: &Channel,
        tag: &str,
    ) -> lapin::Result<lapin::Consumer> {
        self.subscribe(channel, tag, &[self.events_exchange()])
            .await
    }

    /// As [`Self::subscribe_events`], with the same queue bound to the records exchange too
    /// (declared with [`Self::declare_records`] first): an api replica's events.
    pub async fn subscribe_events_and_records(
        &self,
        channel: &Channel,
        tag: &str,
    ) -> lapin::Result<lapin::Consumer> {
        self.subscribe(
            channel,
            tag,
            &[self.events_exchange(), self.records_exchange()],
        )
        .await
    }

    /// A private, server-named queue bound to each of `exchanges` (fanouts), consumed.
    async fn subscribe(
        &self,
        channel: &Channel,
        tag: &str,
        exchanges: &[String],
    ) -> lapin::Result<lapin::Consumer> {
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        for exchange in exchanges {
            channel
                .queue_bind(
                    queue.name().clone(),
                    exchange.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .basic_consume(
                queue.name().clone(),
                tag.into(),
                lapin::options::BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
    }
}

/// Declares the durable exchange `name` of `kind`; idempotent.
pub(super) async fn declare_durable_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> lapin::Result<()> {
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// The AMQP `type` of a message on the events exchange: [`crate::EVENT_TYPE_KEY`], or
/// [`crate::EVENT_TYPE_FUNCTION`] (also for an event without a type, as the first versions
/// sent them).
pub fn event_type(properties: &lapin::BasicProperties) -> &str {
    properties
        .kind()
        .as_ref()
        .map_or(crate::EVENT_TYPE_FUNCTION, |kind| kind.as_str())
}

/// A sentence for an operator when declaring the topology failed: a job queue declared by an
/// older version, without the bounds, is refused with PRECONDITION_FAILED until it is deleted.
pub fn explain_declare_error(error: &lapin::Error) -> Option<String> {
    let text = error.to_string();
    if text.contains(CONSISTENT_HASH) {
        return Some(format!(
            "the broker has no {CONSISTENT_HASH} exchange type ({text}), which the job routing \
             needs: enable its plugin with `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` \
             (scripts/setup.sh does on this host; the cluster's docker/rabbitmq/enabled_plugins lists it)"
        ));
    }
    (text.contains("PRECONDITION_FAILED") || text.contains("inequivalent arg")).then(|| {
        format!(
            "a job queue exists on the broker with other arguments than this version declares ({text}); \
             delete the old queues (`rabbitmqctl delete_queue faas.invoke.docker` and `faas.invoke.gvisor`, \
             with your QUEUE_PREFIX) or set QUEUE_MAX_LENGTH / QUEUE_MAX_BYTES to what they were declared with"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_aside_jobs_wait_twice_as_long_each_time_up_to_the_last_delay() {
        let delays: Vec<u64> = (0..12).map(Topology::defer_delay_secs).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256, 256]);
    }

    #[test]
    fn the_async_delay_queues_are_the_retries_and_the_set_aside_delays_once_each() {
        let topology = Topology::new("p.").with_retry_base_secs(10);
        assert_eq!(
            topology.async_delays(),
            [1, 2, 4, 8, 10, 16, 20, 32, 40, 64, 80, 128, 160, 256]
        );
        // Every delay a job can be published with has its queue.
        let delays = topology.async_delays();
        for times in 0..20 {
            assert!(delays.contains(&Topology::defer_delay_secs(times)));
        }
        for retry in 1..=Topology::MAX_RETRIES {
            assert!(delays.contains(&topology.retry_delay_secs(retry)));
        }
    }
}
