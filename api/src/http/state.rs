//! What every handler can reach.

use crate::broker::Invoker;
use crate::cache::FunctionCache;
use crate::keys::KeyStore;
use crate::records::RecordWriter;
use crate::route_table::RouteTable;
use crate::services::{Functions, Invocations};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState {
    pub db: Pool,
    pub invoker: Arc<Invoker>,
    pub function_cache: Arc<FunctionCache>,
    /// Verifies API keys; `None` with `AUTH=disabled` (every caller is namespace `default`).
    pub keys: Option<Arc<KeyStore>>,
    pub records: RecordWriter,
    /// The one call path: `/execute`, the routes and the async runner call through it.
    pub invocations: Invocations,
    /// Saving and deleting functions.
    pub functions: Functions,
    /// Every function's route, for the HTTP triggers.
    pub routes: Arc<RouteTable>,
    /// `ROUTE_PREFIX`: where the routes start.
    pub route_prefix: Arc<str>,
    pub limits: Limits,
    /// This replica's estimates of each namespace's pending async invocations.
    pub pending: Arc<crate::dispatch::PendingCounts>,
    /// SHA-256 of `WORKER_TOKEN`, compared in constant time; `None`: no worker may call.
    pub worker_token: Option<[u8; 32]>,
}

/// Size and time limits taken from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_code_bytes: usize,
    pub max_event_bytes: usize,
    /// `MAX_ASYNC_EVENT_BYTES`.
    pub max_async_event_bytes: usize,
    /// `MAX_PENDING_ASYNC`, per namespace.
    pub max_pending_async: i64,
    pub max_inflight: usize,
    pub body_read_timeout: Duration,
    /// `ARTIFACT_MAX_MB` in bytes.
    pub max_artifact_bytes: u64,
}
