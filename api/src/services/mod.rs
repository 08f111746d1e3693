//! The platform's services: what the api does, apart from how HTTP asks for it. Handlers,
//! the async runner and the HTTP triggers call these; they reach Postgres through `db` and
//! RabbitMQ through `invoker`, and return domain errors that the http layer maps to statuses.

pub mod builds;
pub mod cache;
pub mod console;
pub mod dispatch;
mod events;
mod functions;
mod invocations;
pub mod keys;
pub mod namespaces;
pub mod records;
pub mod retention;
pub mod route_table;
pub mod stream_hub;
pub mod streams;
pub mod triggers;

pub use events::Caches;
pub use functions::{
    FunctionInput, Functions, Invalid, SaveError, SaveLimits, SaveOptions, spawn_build_releaser,
    valid_name,
};
pub use invocations::{
    Call, CallError, Called, Invocations, PlatformBackend, Trigger, runtime_for,
};
