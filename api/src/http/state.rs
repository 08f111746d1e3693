//! What every handler can reach.

use crate::broker::Invoker;
use crate::services::builds::Builds;
use crate::services::builds::artifacts::Artifacts;
use crate::services::console::ConsoleSessions;
use crate::services::dispatch::Dispatch;
use crate::services::keys::Keys;
use crate::services::keys::cache::KeyStore;
use crate::services::namespaces::Namespaces;
use crate::services::records::RecordWriter;
use crate::services::route_table::RouteTable;
use crate::services::stream_hub::StreamHub;
use crate::services::{Functions, Invocations};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;

/// What every handler can reach, shared: axum clones the state for every layer and extractor
/// that takes it, several times a request, so a clone is one reference count, not one per
/// service, pool and cache.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of the [`AppState`].
pub struct AppParts {
    pub db: Pool,
    pub invoker: Arc<Invoker>,
    /// Verifies API keys; `None` with `AUTH=disabled` (every caller is namespace `default`).
    pub key_cache: Option<Arc<KeyStore>>,
    /// Making, listing and revoking keys.
    pub keys: Keys,
    /// Creating, listing and deleting namespaces.
    pub namespaces: Namespaces,
    pub records: RecordWriter,
    /// The one call path: `/execute`, the routes and the async runner call through it.
    pub invocations: Invocations,
    /// Saving and deleting functions.
    pub functions: Functions,
    /// What workers report of builds.
    pub builds: Builds,
    /// Dependency artifacts, up from and down to workers.
    pub artifacts: Artifacts,
    /// Every function's route, for the HTTP triggers.
    pub routes: Arc<RouteTable>,
    /// The open invocation streams (`STREAM_CLIENTS` per namespace).
    pub streams: Arc<StreamHub>,
    pub limits: Limits,
    /// Async invocations: accepting, redriving.
    pub dispatch: Dispatch,
    /// SHA-256 of `WORKER_TOKEN`, compared in constant time; `None`: no worker may call.
    pub worker_token: Option<[u8; 32]>,
    /// `MAX_INFLIGHT` permits of the management api: one per request admitted
    /// (`http::admission`), for as long as it is served.
    pub inflight: tokio::sync::Semaphore,
    /// The functions' origin's own `MAX_INFLIGHT` permits: a flood of calls to public routes
    /// (which need no key) leaves the management api its permits.
    pub functions_inflight: tokio::sync::Semaphore,
    /// The web console's sessions.
    pub console: ConsoleSessions,
    /// Whether the console's cookie is `Secure` (and `__Host-` prefixed): behind TLS.
    pub console_secure_cookie: bool,
}

/// Size and time limits taken from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_code_bytes: usize,
    pub max_event_bytes: usize,
    /// `MAX_ASYNC_EVENT_BYTES`.
    pub max_async_event_bytes: usize,
    pub body_read_timeout: Duration,
    /// `REQUEST_TIMEOUT_SECS`: the most a whole body may take to arrive.
    pub request_timeout: Duration,
}
