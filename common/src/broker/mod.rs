//! Everything both binaries do on RabbitMQ: the topology they declare (`topology`: exchanges,
//! queues, their names and bounds) and the one loop every consumer runs (`consumer`: reconnect
//! with backoff, a span per delivery, the handler's decision applied, drain on stop).
//!
//! To add a consumer: implement [`Consume`] (open a [`Session`], handle a delivery, return a
//! [`Decision`]) and hand it to [`run`].

mod consumer;
mod homes;
mod topology;

pub use consumer::{
    Acks, Backoff, CLOSE_TIMEOUT, Consume, Decision, LoopOptions, RECONNECT_BACKOFF_MAX, Session,
    run,
};
pub use topology::{
    BrokerSettings, CONTENT_TYPE_JSON, DIRECT_REPLY_TO, QueueLimits, Topology, event_type,
    explain_declare_error,
};

use lapin::{Connection, ConnectionProperties};

/// Opens a connection named after the process, so `rabbitmqctl list_connections` tells them apart.
pub async fn connect(url: &str, connection_name: &str) -> lapin::Result<Connection> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(connection_name.into()),
    )
    .await
}
