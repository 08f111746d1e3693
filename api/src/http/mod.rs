//! The HTTP layer: the router and its handlers (`routes`, one module per resource), the
//! extractors (`extract`: the caller's key, JSON, path and query), how an error becomes a
//! response (`error`), who may take a request slot (`admission`: the key checked from the
//! headers before any body is read), the bounds on bodies (`limits`), the server that reads
//! them with timeouts and bounds connections per client (`server`), the ids of requests
//! (`request_id`), server-sent events of finished calls (`event_stream`), the OpenAPI document with its Swagger UI (`openapi`, with the responses
//! many operations share in `responses`), and the web console (`console`).
//!
//! Handlers are thin: they check the key's scope, call a service (`crate::services`) or the
//! store, and turn the outcome into a status and a body. Nothing below this layer knows HTTP.

pub mod admission;
pub mod bodies;
pub mod console;
pub mod error;
pub mod event_stream;
pub mod extract;
pub mod limits;
pub mod openapi;
pub mod request_id;
pub mod responses;
pub mod routes;
pub mod server;
pub mod state;
