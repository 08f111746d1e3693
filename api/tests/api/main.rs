//! The api's integration tests, one binary (so `support` is compiled once): each module starts
//! the real api, and where it needs them real workers, against the real Postgres, RabbitMQ and
//! Docker daemon.

mod affinity;
mod async_invoke;
mod auth;
mod browser;
mod build_share;
mod cache;
mod concurrency;
mod console;
mod console_edit;
mod console_overview;
mod dashboards;
mod deps;
mod docs;
mod dos;
mod fairness;
mod function_tests;
mod functions;
mod hostile;
mod hot_path;
mod invoke;
mod lambda_compat;
mod lifecycle;
mod limits;
mod metrics;
mod namespace_deletion;
mod packages;
mod queues;
mod quotas;
mod records;
mod restarts;
mod stream;
mod support;
mod triggers;
