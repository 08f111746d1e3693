//! Pure modules: the platform's rules and formats, with no I/O, each unit-tested on its own.
//! `async_status` (the states and modes of invocations),
//! `auth` (keys, scopes and the caller), `build_share` (fair shares of builds between
//! namespaces), `function_tests` (a function's stored test events and their limits), `deps` (dependency lists and their build keys), `package` (deployment
//! packages: checked, unpacked, digested), `quota` (per-namespace quotas: limits in force,
//! patches, refusals), `schedule` (cron in a time
//! zone), `stream` (the invocation stream: its events, filter and dedup), `http_trigger` (route patterns, API Gateway events, CORS), `wire` (how JSON bodies
//! are read and described where serde and utoipa cannot say it alone).

pub mod async_status;
pub mod auth;
pub mod build_share;
pub mod deps;
pub mod function_tests;
pub mod http_trigger;
pub mod package;
pub mod quota;
pub mod schedule;
pub mod stream;
pub mod wire;
