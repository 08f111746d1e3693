//! A function's stored test events (`function_tests`, V14), read and replaced whole.

use super::DbError;
use crate::domain::function_tests::TestEvent;
use deadpool_postgres::Pool;
use serde_json::Value;

/// The tests of function `id` of `namespace`, in their order; `None` when it has no such
/// function.
pub async fn get_function_tests(
    pool: &Pool,
    namespace: &str,
    id: i64,
) -> Result<Option<Vec<TestEvent>>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT t.name, t.event, t.expect FROM functions f
             LEFT JOIN function_tests t ON t.function_id = f.id
             WHERE f.id = $1 AND f.namespace = $2
             ORDER BY t.position",
            &[&id, &namespace],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut tests = Vec::with_capacity(rows.len());
    for row in &rows {
        // The function without tests: one row, from the left join alone.
        let Some(name) = row.try_get::<_, Option<String>>("name")? else {
            continue;
        };
        tests.push(TestEvent {
            name,
            event: row.try_get("event")?,
            expect: row.try_get("expect")?,
        });
    }
    Ok(Some(tests))
}

/// Replaces the tests of function `id` of `namespace` with `tests` (checked already), in one
/// transaction; false when it has no such function. Two replacements of one function's tests
/// take its row's lock in turn, so that one ends whole before the other starts.
pub async fn replace_function_tests(
    pool: &Pool,
    namespace: &str,
    id: i64,
    tests: &[TestEvent],
) -> Result<bool, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Not FOR UPDATE: the key-share locks of inserts naming the function need not wait.
    let found = tx
        .query_opt(
            "SELECT 1 FROM functions WHERE id = $1 AND namespace = $2 FOR NO KEY UPDATE",
            &[&id, &namespace],
        )
        .await?;
    if found.is_none() {
        return Ok(false);
    }
    tx.execute("DELETE FROM function_tests WHERE function_id = $1", &[&id])
        .await?;
    let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    let events: Vec<&Value> = tests.iter().map(|t| &t.event).collect();
    let expects: Vec<Option<&Value>> = tests.iter().map(|t| t.expect.as_ref()).collect();
    tx.execute(
        "INSERT INTO function_tests (function_id, position, name, event, expect)
         SELECT $1, t.ord - 1, t.name, t.event, t.expect
         FROM unnest($2::text[], $3::json[], $4::json[]) WITH ORDINALITY
              AS t(name, event, expect, ord)",
        &[&id, &names, &events, &expects],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
