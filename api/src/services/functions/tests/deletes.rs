//! Deletes, and what [`Functions::announce`] tells the cache, the other replicas and the
//! route table.

use super::*;

#[tokio::test]
async fn a_deleted_function_is_announced_without_a_version() {
    let s = setup();
    let id = s.backend.add_function(NAMESPACE, "hello");
    cache_stale(&s.cache, id, "hello");

    assert!(s.functions.delete(NAMESPACE, id).await.expect("deleted"));

    assert!(s.backend.stored(id).is_none());
    let calls = s.backend.calls();
    assert!(
        matches!(&calls[0], Call::DeleteFunction { namespace, id: deleted } if namespace == NAMESPACE && *deleted == id),
        "{calls:?}"
    );
    assert_eq!(s.backend.events(), [event(id, None, None)]);
    assert_eq!(
        s.backend.call_names(),
        ["delete_function", "publish_event", "refresh_routes"]
    );
    assert!(matches!(s.cache.get(NAMESPACE, "hello"), Lookup::Unknown));
}

#[tokio::test]
async fn deleting_what_is_not_there_announces_nothing() {
    let s = setup();
    s.backend.add_namespace("other", &Runtime::ALL);
    let theirs = s.backend.add_function("other", "hello");

    assert!(!s.functions.delete(NAMESPACE, 42).await.expect("answered"));
    assert!(
        !s.functions
            .delete(NAMESPACE, theirs)
            .await
            .expect("answered")
    );

    assert!(s.backend.stored(theirs).is_some());
    assert_eq!(
        s.backend.call_names(),
        ["delete_function", "delete_function"]
    );
}

#[tokio::test]
async fn a_delete_the_database_fails_is_its_error() {
    let s = setup();
    let id = s.backend.add_function(NAMESPACE, "hello");
    s.backend.fail_next_write(DbError::Inconsistent("down"));
    let failed = s.functions.delete(NAMESPACE, id).await;
    assert!(
        matches!(failed, Err(DbError::Inconsistent("down"))),
        "{failed:?}"
    );
    assert!(s.backend.events().is_empty());
    assert!(s.backend.stored(id).is_some());
}

#[tokio::test]
async fn announce_tells_the_cache_the_others_and_the_routes_in_that_order() {
    let s = setup();
    cache_stale(&s.cache, 7, "renamed-from");
    s.cache
        .insert_miss(NAMESPACE, "renamed-to", s.cache.generation());

    s.functions
        .announce(7, NAMESPACE, Some(4), Some("renamed-to"))
        .await;

    assert!(matches!(
        s.cache.get(NAMESPACE, "renamed-from"),
        Lookup::Unknown
    ));
    assert!(matches!(
        s.cache.get(NAMESPACE, "renamed-to"),
        Lookup::Unknown
    ));
    assert_eq!(s.backend.events(), [event(7, Some("renamed-to"), Some(4))]);
    assert_eq!(s.backend.call_names(), ["publish_event", "refresh_routes"]);
}
