//! The functions service over the in-memory backend of `fake`: what a save stores, queues,
//! publishes and answers, in which order, and how each failure comes out (`saves`), the builds
//! it queues and `?wait=true` (`builds`), deletes and announcements (`deletes`), updates that
//! change nothing (`unchanged`); and the real
//! backend with Postgres and RabbitMQ away (`live`). The function cache is the real one. This
//! file holds what they share.

mod builds;
mod deletes;
mod live;
mod saves;
mod shares;
mod unchanged;

use super::fake::{Call, FakeBackend, NAMESPACE};
use super::*;
use crate::broker::BrokerError;
use crate::services::cache::Lookup;
use crate::store::{BuildStatus, PackageInfo};
use common::{Language, Runtime};
use serde_json::json;
use tokio::time::Instant;

/// `MAX_CODE_BYTES` of the services under test.
const MAX_CODE_BYTES: usize = 1024;
/// `BUILD_WAIT_SECS` of the services under test.
const BUILD_WAIT: Duration = Duration::from_secs(2);
const REQUIREMENTS: &str = "requests==2.31.0\n";

const NO_WAIT: SaveOptions = SaveOptions {
    may_catch_all: false,
    wait: false,
};
const WAIT: SaveOptions = SaveOptions {
    may_catch_all: false,
    wait: true,
};

struct Setup {
    functions: Functions<FakeBackend>,
    backend: FakeBackend,
    cache: Arc<FunctionCache>,
}

fn setup() -> Setup {
    let backend = FakeBackend::new();
    let cache = Arc::new(FunctionCache::new(Duration::from_secs(60)));
    // Connected: the cache stores what it is given, so that an invalidation shows.
    cache.reconnected();
    let functions =
        Functions::with_backend(backend.clone(), cache.clone(), MAX_CODE_BYTES, BUILD_WAIT);
    Setup {
        functions,
        backend,
        cache,
    }
}

/// A valid input, with `changes` made to it.
fn input(changes: serde_json::Value) -> FunctionInput {
    let mut body = json!({
        "name": "hello",
        "route": "/hello",
        "language": "python",
        "code": "def handler(event, context):\n    return 1",
        "timeout": 5
    });
    for (field, value) in changes.as_object().expect("an object") {
        body[field] = value.clone();
    }
    serde_json::from_value(body).expect("a well-formed input")
}

/// The fields of an input with a package: `app.py`, called as `app.handler`.
fn with_package() -> serde_json::Value {
    json!({"code": null, "code_zip": app_zip(), "handler": "app.handler"})
}

fn app_zip() -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let files: [(&str, &[u8]); 2] = [
        ("app.py", b"def handler(event, context):\n    return 1\n"),
        ("lib/helper.py", b"X = 1\n"),
    ];
    for (name, data) in files {
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(data).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn build_key() -> String {
    deps::build_key(Language::Python, REQUIREMENTS)
}

/// A cached copy of function `id`, to see it dropped.
fn cache_stale(cache: &FunctionCache, id: i64, name: &str) {
    let stale = Function {
        id,
        name: name.into(),
        ..Function::example()
    };
    cache.insert(Arc::new(stale), cache.generation());
    assert!(matches!(cache.get(NAMESPACE, name), Lookup::Found(_)));
}

fn event(id: i64, name: Option<&str>, version: Option<i32>) -> FunctionEvent {
    FunctionEvent {
        function_id: id,
        namespace: Some(NAMESPACE.into()),
        name: name.map(str::to_owned),
        version,
    }
}

/// `elapsed` is `expected`, give or take the paused clock's rounding of each sleep to the
/// millisecond.
fn assert_about(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed < expected + Duration::from_millis(10),
        "{elapsed:?} is not about {expected:?}"
    );
}
