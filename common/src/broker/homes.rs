//! Function affinity's part of the topology (DESIGN §21): per runtime, a consistent-hash
//! exchange the jobs are published to by function id, a home queue per worker bound to it, and
//! a spill exchange into the runtime's shared queue for the jobs no home takes.

use super::topology::Topology;
use crate::model::Runtime;
use lapin::Channel;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

impl Topology {
    /// The exchange `runtime`'s jobs are published to, with their function's id as routing key
    /// ([`Self::home_routing_key`]): RabbitMQ's consistent-hash exchange (plugin
    /// `rabbitmq_consistent_hash_exchange`), to which every worker of the runtime binds its
    /// [home queue](Self::home_queue). So each function has a home worker among the live ones,
    /// where its warm containers are, and keeps it while workers come and go, but for the
    /// functions of a worker that joined or left. With no home queue bound, its alternate
    /// exchange, [`Self::spill_exchange`], takes the job.
    pub fn home_exchange(&self, runtime: Runtime) -> String {
        format!("{}faas.home.{}", self.prefix, runtime)
    }

    /// The routing key of a job of function `function_id` on [`Self::home_exchange`].
    pub fn home_routing_key(function_id: i64) -> String {
        function_id.to_string()
    }

    /// A worker's home queue of `runtime`'s jobs: bound to [`Self::home_exchange`] with
    /// [`Self::HOME_WEIGHT`], consumed by that worker only.
    pub fn home_queue(&self, runtime: Runtime, worker_id: &str) -> String {
        format!("{}faas.home.{}.{}", self.prefix, runtime, worker_id)
    }

    /// Fanout exchange into `runtime`'s [shared queue](Self::queue), which every worker of the
    /// runtime consumes: where a job spills when it has no home (no worker bound), when its
    /// home did not take it within the home wait (gone, or busy), or refused it for want of room.
    pub fn spill_exchange(&self, runtime: Runtime) -> String {
        format!("{}faas.spill.{}", self.prefix, runtime)
    }

    /// The binding weight of a home queue: its share of the hash ring (equal for every worker).
    pub const HOME_WEIGHT: &'static str = "10";

    /// How long a home queue outlives its worker: unused (no consumer) for this long, the
    /// broker deletes it and its binding, and the worker's functions get other homes. With no
    /// home wait it is empty then; with one, the jobs routed to it in its last home wait are
    /// lost with it (the broker dead-letters nothing it deletes).
    pub const HOME_QUEUE_EXPIRES_MS: i64 = 15_000;

    /// Declares `worker_id`'s home queue of `runtime` and binds it to the runtime's home
    /// exchange: durable, a job in it spilling (dead-lettered to [`Self::spill_exchange`])
    /// when no delivery slot of the worker takes it at once (`home_wait` zero) or within
    /// `home_wait`, or when the worker rejects it; gone
    /// [`Self::HOME_QUEUE_EXPIRES_MS`] after its worker. Needs [`Self::declare`] first.
    pub async fn declare_home_queue(
        &self,
        channel: &Channel,
        runtime: Runtime,
        worker_id: &str,
        home_wait: std::time::Duration,
    ) -> lapin::Result<String> {
        let queue = self.home_queue(runtime, worker_id);
        let mut arguments = FieldTable::default();
        let wait_ms = i64::try_from(home_wait.as_millis()).unwrap_or(i64::MAX);
        // Over the bound, the oldest job spills (drop-head dead-letters it), rather than the
        // publish being refused while other workers have room.
        let max_length = if wait_ms == 0 {
            // Taken at once by a free delivery slot of the worker's, or spilled at once: a
            // queue that never holds a job loses none when the broker deletes it, whereas one
            // deleted (its worker killed) while jobs wait out their home wait drops them.
            0
        } else {
            arguments.insert(
                ShortString::from("x-message-ttl"),
                AMQPValue::LongLongInt(wait_ms),
            );
            i64::from(self.limits.max_length)
        };
        arguments.insert(
            ShortString::from("x-max-length"),
            AMQPValue::LongLongInt(max_length),
        );
        arguments.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from(self.spill_exchange(runtime))),
        );
        arguments.insert(
            ShortString::from("x-expires"),
            AMQPValue::LongLongInt(Self::HOME_QUEUE_EXPIRES_MS.max(wait_ms.saturating_mul(10))),
        );
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
                self.home_exchange(runtime).as_str().into(),
                Self::HOME_WEIGHT.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(queue)
    }

    /// Takes `worker_id`'s home queue of `runtime` off the hash ring, so that no job is routed
    /// to it any more: what a worker does first when it stops. A bound queue the broker
    /// deletes later (`x-expires`) can lose a job routed to it while it is being deleted; an
    /// unbound one cannot.
    pub async fn unbind_home_queue(
        &self,
        channel: &Channel,
        runtime: Runtime,
        worker_id: &str,
    ) -> lapin::Result<()> {
        channel
            .queue_unbind(
                self.home_queue(runtime, worker_id).as_str().into(),
                self.home_exchange(runtime).as_str().into(),
                Self::HOME_WEIGHT.into(),
                FieldTable::default(),
            )
            .await
    }
}
