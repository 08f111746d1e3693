//! Every function's route, in memory on each replica: a request finds its function here with
//! no query. The whole table is reloaded from Postgres (one query) when a function changes:
//! at once on the replica that changed it, and on the others when its event arrives over the
//! events exchange. Reloads coalesce: a burst of changes costs one or two of them. While the
//! broker connection is down, events may be missed, so the table is reloaded every second;
//! otherwise every `FUNCTION_CACHE_TTL_SECS`, a safety net for an event lost some other way.

use crate::domain::http_trigger::{RouteEntry, RouteMatcher, RoutePattern};
use crate::store;
use deadpool_postgres::Pool;
use std::collections::HashMap;
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
/// its function is saved with a valid one. So is a route that would take requests another
/// namespace's older route answers (saved before saves refused that): the older function keeps
/// its route, and the newer one's is logged at `warn` with its function id and namespace.
fn build(mut entries: Vec<RouteEntry>) -> Routes {
    entries.sort_by_key(|entry| entry.function_id);
    let mut routes = Routes::default();
    // Served routes that start with a literal, by that literal: only those can be taken from
    // (a catch-all is the admin's, and takes nothing), and only by a route with the same one.
    let mut served: HashMap<String, Vec<(RoutePattern, String)>> = HashMap::new();
    for entry in entries {
        let pattern = match RoutePattern::parse(&entry.route) {
            Ok(pattern) => pattern,
            Err(error) => {
                tracing::debug!(function_id = entry.function_id, %error, "route not served");
                continue;
            }
        };
        let first = pattern.first_literal().map(str::to_owned);
        if let Some(first) = &first
            && served.get(first).is_some_and(|older| {
                older.iter().any(|(theirs, namespace)| {
                    *namespace != entry.namespace && pattern.takes_from(theirs)
                })
            })
        {
            tracing::warn!(
                function_id = entry.function_id,
                namespace = %entry.namespace,
                route = %entry.route,
                "route not served: it would take requests of an older function's route in another namespace; save the function with another route"
            );
            continue;
        }
        let namespace = entry.namespace.clone();
        match routes.insert(pattern.clone(), Arc::new(entry)) {
            Ok(()) => {
                if let Some(first) = first {
                    served.entry(first).or_default().push((pattern, namespace));
                }
            }
            Err(entry) => tracing::debug!(
                function_id = entry.function_id,
                "route shape taken; not served"
            ),
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::http_trigger::HttpAuth;

    fn entry(function_id: i64, namespace: &str, route: &str) -> RouteEntry {
        RouteEntry {
            function_id,
            namespace: namespace.into(),
            name: format!("f{function_id}"),
            route: route.into(),
            methods: None,
            auth: HttpAuth::None,
            cors: None,
        }
    }

    fn served_by(routes: &Routes, path: &str) -> Option<i64> {
        routes.find(path).map(|found| found.value.function_id)
    }

    #[test]
    fn of_two_namespaces_routes_the_older_keeps_what_the_newer_would_take() {
        // Stored before saves refused it: B's /shop/{item} (older), then A's /shop/checkout.
        let routes = build(vec![
            entry(2, "a", "/shop/checkout"),
            entry(1, "b", "/shop/{item}"),
            entry(3, "b", "/shop/cart"),
            entry(4, "a", "/shop/{item}/{rest+}"),
            entry(5, "admin", "/{proxy+}"),
        ]);
        assert_eq!(served_by(&routes, "/shop/checkout"), Some(1));
        // Within a namespace the most specific route still wins.
        assert_eq!(served_by(&routes, "/shop/cart"), Some(3));
        // A less specific route of another namespace gets what the older ones do not answer.
        assert_eq!(served_by(&routes, "/shop/x/y"), Some(4));
        assert_eq!(served_by(&routes, "/other"), Some(5));
        assert_eq!(routes.route_count(), 4, "A's /shop/checkout is not served");
    }
}
