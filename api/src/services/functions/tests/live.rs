//! The real backend, with Postgres and RabbitMQ away: each call reaches the store, the broker
//! or the route table and fails (or gives up) as they do, and the service that
//! [`Functions::new`] builds over it reports the database's error.

use super::*;
use crate::services::route_table::RouteTable;
use crate::store::{DbError, pool_of_nothing};

fn live() -> LiveBackend {
    LiveBackend {
        db: pool_of_nothing(),
        invoker: Invoker::disconnected(),
        routes: RouteTable::new(),
        quotas: QUOTAS,
    }
}

const QUOTAS: crate::domain::quota::QuotaDefaults = crate::domain::quota::QuotaDefaults {
    functions: 10,
    keys: 10,
    pending_async: 10,
    artifact_bytes: 10,
    result_bytes: 10,
};

fn is_pool_error<T: std::fmt::Debug>(answer: Result<T, DbError>) -> bool {
    matches!(answer, Err(DbError::Pool(_)))
}

#[tokio::test]
async fn every_store_call_reaches_the_pool() {
    let live = live();
    let fields = ValidFunction::parse(
        input(json!({})),
        &NamespacePolicy {
            allowed_runtimes: &Runtime::ALL,
            may_catch_all: false,
            max_code_bytes: MAX_CODE_BYTES,
        },
    )
    .expect("valid")
    .fields;
    let package = package::prepare(&app_zip(), Language::Python, "app.handler").expect("valid");
    assert!(is_pool_error(live.get_namespace(NAMESPACE).await));
    assert!(is_pool_error(
        live.get_function_by_name(NAMESPACE, "hello").await
    ));
    assert!(is_pool_error(live.ready_build_size("key").await));
    assert!(is_pool_error(
        live.insert_function(NAMESPACE, &fields, Some(&package))
            .await
    ));
    assert!(is_pool_error(
        live.update_function(NAMESPACE, 1, &fields, Some(&package))
            .await
    ));
    assert!(is_pool_error(live.delete_function(NAMESPACE, 1).await));
    let attempt = uuid::Uuid::from_u128(1);
    assert!(is_pool_error(
        live.fail_unpublished("key", attempt, "why").await
    ));
    assert!(is_pool_error(live.get_function(NAMESPACE, 1).await));
}

#[tokio::test(start_paused = true)]
async fn the_broker_calls_fail_as_a_disconnected_invokers_and_the_routes_wait_for_a_reload() {
    let live = live();
    let job = BuildJob {
        key: build_key(),
        attempt: uuid::Uuid::from_u128(1),
        language: Language::Python,
        dependencies: REQUIREMENTS.into(),
        namespace: NAMESPACE.into(),
    };
    assert!(matches!(
        live.publish_build(&job).await,
        Err(BrokerError::Disconnected)
    ));
    assert_eq!(live.build_consumers().await, 0);
    live.publish_event(&event(1, Some("hello"), Some(1))).await;
    // No reloader runs: the refresh waits its 3 s for one, then gives up.
    let started = Instant::now();
    live.refresh_routes().await;
    assert_about(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test]
async fn the_service_new_builds_reports_the_database_away() {
    let cache = Arc::new(FunctionCache::new(Duration::from_secs(60)));
    let functions = Functions::new(
        pool_of_nothing(),
        Invoker::disconnected(),
        cache,
        RouteTable::new(),
        SaveLimits {
            max_code_bytes: MAX_CODE_BYTES,
            build_wait: BUILD_WAIT,
            quotas: QUOTAS,
        },
    );
    let refused = functions
        .create(NAMESPACE, input(json!({})), NO_WAIT)
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, SaveError::Database(DbError::Pool(_))),
        "{refused:?}"
    );
    assert!(is_pool_error(functions.delete(NAMESPACE, 1).await));
}
