//! Contracts that the `api` and the `worker` must agree on: queue topology, the job and reply
//! messages, the runtime and language enums, and what both binaries run alike (telemetry,
//! shutdown signal, secret settings read from files, the broker connection and consumer loop, the metrics listener).
//!
//! Nothing here knows about HTTP or Docker, so either side can change its internals freely.

pub mod broker;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use messages::{
    ARTIFACT_SHA256_HEADER, ARTIFACT_UNPACKED_HEADER, ArtifactRef, BuildJob, EVENT_TYPE_FUNCTION,
    EVENT_TYPE_KEY, EVENT_TYPE_RECORDS, ErrorInfo, FunctionEvent, FunctionSpec, Job, KeyEvent,
    MAX_RESULT_BYTES, MAX_UNPACKED_BYTES, RawJson, RawValue, Reply, ReplyStatus, Timing, raw_null,
};
pub use model::{Language, Runtime};

/// Lowercase hex of `bytes`: how digests are written everywhere.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// True when `path` is relative and never climbs above its root, read without touching a file
/// system: how both sides check the paths of packages and artifacts.
pub fn path_stays_inside(path: &std::path::Path) -> bool {
    use std::path::Component;
    let mut depth: i64 = 0;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Milliseconds since the Unix epoch, the clock every deadline in a message is written in.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
