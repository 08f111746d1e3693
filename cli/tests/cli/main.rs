//! The `faas` binary end to end, against the real api and workers (started once for this test
//! binary by `support`), Postgres, RabbitMQ and Docker with runc and runsc.

mod bad_input;
mod basics;
mod deploy;
mod dev;
mod logs;
mod support;
mod test_events;
