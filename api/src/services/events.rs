//! This replica's caches as the broker's event listener: a function event drops the function
//! from the cache and reloads the route table, a key event forgets the key, a records event
//! goes to the open invocation streams, and while the connection is down (events may be
//! missed) each cache falls back to its short safety net; once it is back, the streams re-read
//! what they missed from the database.

use crate::broker::EventListener;
use crate::domain::stream::RecordsEvent;
use crate::services::cache::FunctionCache;
use crate::services::keys::cache::KeyStore;
use crate::services::route_table::RouteTable;
use crate::services::stream_hub::StreamHub;
use common::{FunctionEvent, KeyEvent};
use std::sync::Arc;

/// The caches the events keep fresh.
pub struct Caches {
    pub functions: Arc<FunctionCache>,
    /// `None` with auth disabled.
    pub keys: Option<Arc<KeyStore>>,
    pub routes: Arc<RouteTable>,
    /// The open invocation streams.
    pub streams: Arc<StreamHub>,
}

impl EventListener for Caches {
    fn connected(&self) {
        self.functions.reconnected();
        if let Some(keys) = &self.keys {
            keys.reconnected();
        }
        self.routes.set_connected(true);
        self.streams.resync();
    }

    fn disconnected(&self) {
        self.functions.disconnected();
        if let Some(keys) = &self.keys {
            keys.disconnected();
        }
        self.routes.set_connected(false);
    }

    fn function_changed(&self, event: FunctionEvent) {
        self.functions.invalidate(
            event.function_id,
            event.namespace.as_deref(),
            event.name.as_deref(),
        );
        self.routes.changed();
    }

    fn key_changed(&self, event: KeyEvent) {
        if let Some(keys) = &self.keys {
            keys.invalidate(event.key_id, event.namespace.as_deref());
        }
    }

    fn records_stored(&self, event: RecordsEvent) {
        self.streams.publish(&event.namespace, event.records);
    }
}
