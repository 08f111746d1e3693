//! The platform's RabbitMQ as scenario 10 asks it: how many consumers a queue has.

use anyhow::Context;

/// The platform's RabbitMQ, asked how many consumers a queue has.
pub(super) struct Broker {
    connection: lapin::Connection,
    channel: lapin::Channel,
    pub(super) topology: common::broker::Topology,
}

impl Broker {
    pub(super) async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        // The URL may hold a password: it is in no message.
        let connection = common::broker::connect(url, "faas-bench")
            .await
            .context("cannot connect to RabbitMQ (--amqp-url, AMQP_URL)")?;
        let channel = connection
            .create_channel()
            .await
            .context("cannot open an AMQP channel")?;
        Ok(Self {
            connection,
            channel,
            topology: common::broker::Topology::new(prefix),
        })
    }

    /// Consumers of `queue` now (a passive declare: the queue must exist).
    pub(super) async fn consumers(&self, queue: &str) -> anyhow::Result<u32> {
        let declared = self
            .channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .with_context(|| format!("passive declare of queue {queue}"))?;
        Ok(declared.consumer_count())
    }

    pub(super) fn docker_queue(&self) -> String {
        self.topology.queue(common::Runtime::Docker)
    }

    pub(super) async fn close(self) {
        let _ = self.connection.close(200, "".into()).await;
    }
}
