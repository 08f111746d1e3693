//! Request ids: every request carries one in `X-Request-Id` (the client's own, or one made
//! here), its `request` span logs it and the response sends it back.
//!
//! Ids made here are this process's random 64 bits followed by a counter, written as a UUID:
//! unique across replicas and restarts like `Uuid::new_v4`, without asking the kernel for
//! randomness on every request (it is on the path of every call).

use axum::http::{HeaderValue, Request};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tower_http::request_id::{MakeRequestId, RequestId};
use uuid::Uuid;

/// Makes the ids of requests that come without one.
#[derive(Clone)]
pub struct ProcessRequestIds {
    /// Random per process: two replicas, or one api restarted, never make the same id.
    prefix: u64,
    next: Arc<AtomicU64>,
}

impl ProcessRequestIds {
    pub fn new() -> Self {
        ProcessRequestIds {
            prefix: Uuid::new_v4().as_u64_pair().0,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    fn next_id(&self) -> Uuid {
        Uuid::from_u64_pair(self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for ProcessRequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for ProcessRequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut buffer = Uuid::encode_buffer();
        let id = self.next_id().hyphenated().encode_lower(&mut buffer);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn make(ids: &mut ProcessRequestIds) -> String {
        let request = Request::new(());
        let id = ids.make_request_id(&request).expect("an id");
        id.header_value().to_str().expect("ASCII").to_owned()
    }

    #[test]
    fn ids_are_uuids_unique_within_a_process_and_between_processes() {
        let mut first = ProcessRequestIds::new();
        let mut second = ProcessRequestIds::new();
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            for ids in [&mut first, &mut second] {
                let id = make(ids);
                assert!(Uuid::parse_str(&id).is_ok(), "{id}");
                assert_eq!(id.len(), 36, "{id}");
                assert!(seen.insert(id.clone()), "{id} made twice");
            }
        }
    }

    #[test]
    fn clones_share_the_counter() {
        let mut original = ProcessRequestIds::new();
        let mut clone = original.clone();
        assert_ne!(make(&mut original), make(&mut clone));
    }
}
