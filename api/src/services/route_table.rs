//! Every function's route, in memory on each replica: a request finds its function here with
//! no query. The whole table is reloaded from Postgres (one query) when a function changes:
//! at once on the replica that changed it, and on the others when its event arrives over the
//! events exchange. Reloads coalesce: a burst of changes costs one or two of them. While the
//! broker connection is down, events may be missed, so the table is reloaded every second;
//! otherwise every `FUNCTION_CACHE_TTL_SECS`, a safety net for an event lost some other way.

use crate::domain::http_trigger::{RouteEntry, RouteMatcher, RoutePattern};
use crate::store;
use deadpool_postgres::Pool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the table is reloaded while events may be missed.
const DISCONNECTED_PERIOD: Duration = Duration::from_secs(1);
/// Pause after a failed reload.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The longest a change waits for its own replica's reload.
const REFRESH_WAIT: Duration = Duration::from_secs(3);

pub type Routes = RouteMatcher<Arc<RouteEntry>>;

pub struct RouteTable {
    current: RwLock<Arc<Routes>>,
    /// Bumped by every change; the reloader loads for the newest value.
    wanted: watch::Sender<u64>,
    /// The `wanted` value the table now in place was loaded for.
    loaded: watch::Sender<u64>,
    /// Whether function events are heard (the broker connection is up).
    connected: AtomicBool,
}

impl RouteTable {
    pub fn new() -> Arc<RouteTable> {
        Arc::new(RouteTable {
            current: RwLock::new(Arc::new(Routes::default())),
            wanted: watch::Sender::new(0),
            loaded: watch::Sender::new(0),
            connected: AtomicBool::new(false),
        })
    }

    /// The table in place.
    pub fn routes(&self) -> Arc<Routes> {
        self.current.read().unwrap().clone()
    }

    /// A function changed somewhere: reload soon.
    pub fn changed(&self) {
        self.wanted.send_modify(|wanted| *wanted += 1);
    }

    /// A function changed on this replica: reload, and wait (a little) until the table holds
    /// the change, so that its author's next request finds the route.
    pub async fn refresh(&self) {
        let mut wanted = 0;
        self.wanted.send_modify(|w| {
            *w += 1;
            wanted = *w;
        });
        let mut loaded = self.loaded.subscribe();
        let reached = tokio::time::timeout(REFRESH_WAIT, loaded.wait_for(|l| *l >= wanted)).await;
        if reached.is_err() {
            tracing::warn!("the route table was not reloaded in time; the change shows shortly");
        }
    }

    /// The broker connection is up (events are heard: one may have been missed just before)
    /// or down (reload every second until it is back).
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
        self.changed();
    }

    /// Loads the table once; `changed` and the periods trigger the following loads in
    /// [`RouteTable::spawn_reloader`].
    pub async fn load(&self, db: &Pool) -> Result<usize, store::DbError> {
        let wanted = *self.wanted.borrow();
        let entries = store::list_routes(db).await?;
        let routes = build(entries);
        let count = routes.route_count();
        *self.current.write().unwrap() = Arc::new(routes);
        self.loaded
            .send_modify(|loaded| *loaded = (*loaded).max(wanted));
        Ok(count)
    }

    /// Reloads the table whenever it is asked to, and every `period` (every second while the
    /// broker is disconnected), until `stop`.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        db: Pool,
        period: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let table = self.clone();
        let mut wanted = self.wanted.subscribe();
        tokio::spawn(async move {
            loop {
                let wait = if table.connected.load(Ordering::Acquire) {
                    period
                } else {
                    DISCONNECTED_PERIOD
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = wanted.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(wait) => {}
                }
                wanted.mark_unchanged();
                if let Err(error) = table.load(&db).await {
                    tracing::warn!(%error, "cannot reload the route table; retrying");
                    metrics::counter!("faas_database_errors_total").increment(1);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                    table.changed();
                }
            }
        })
    }
}

/// The matcher for the stored routes. A route that does not parse (stored before routes were
/// checked as patterns) or whose shape another holds is left out: it answers nothing until
/// its function is saved with a valid one.
fn build(entries: Vec<RouteEntry>) -> Routes {
    let mut routes = Routes::default();
    for entry in entries {
        let pattern = match RoutePattern::parse(&entry.route) {
            Ok(pattern) => pattern,
            Err(error) => {
                tracing::debug!(function_id = entry.function_id, %error, "route not served");
                continue;
            }
        };
        if let Err(entry) = routes.insert(pattern, Arc::new(entry)) {
            tracing::debug!(
                function_id = entry.function_id,
                "route shape taken; not served"
            );
        }
    }
    routes
}
