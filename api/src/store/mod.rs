//! Postgres: the connection pool, the schema migrations, and every query the api makes, one
//! module per table (functions, dependency builds and artifacts, invocation records, leases,
//! namespaces, keys, the quotas the async tables count against, functions' stored tests and
//! their calls' stats and saved versions, the web console's sessions).

mod async_invocations;
mod async_sweeps;
mod build_share;
mod builds;
mod console_overview;
mod console_sessions;
mod error;
mod function_saves;
mod function_stats;
mod function_tests;
mod function_versions;
mod functions;
mod invocation_views;
mod invocations;
mod keys;
mod leases;
mod namespaces;
mod quotas;

pub use async_invocations::*;
pub use async_sweeps::*;
pub use build_share::*;
pub use builds::*;
pub use console_overview::*;
pub use console_sessions::*;
pub use error::{DbError, Violation};
pub use function_saves::*;
pub use function_stats::*;
pub use function_tests::*;
pub use function_versions::*;
pub use functions::*;
pub use invocation_views::*;
pub use invocations::*;
pub use keys::*;
pub use leases::*;
pub use namespaces::*;
pub use quotas::{AcceptQuotas, Counted};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::time::Duration;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Opens a pool on `url` and brings the schema up to date.
pub async fn connect(url: &str, pool_size: usize) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = url.parse()?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()?;
    let mut client = pool.get().await?;
    embedded::migrations::runner()
        .run_async(&mut **client)
        .await?;
    Ok(pool)
}

/// True when a trivial query answers.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}

/// A pool whose every connection fails at once, for unit tests of code that holds a pool but
/// must not (or does not) reach a server: a Unix socket in a directory that does not exist.
#[cfg(test)]
pub fn pool_of_nothing() -> Pool {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path("/nonexistent/faas-unit-test")
        .user("test")
        .dbname("test");
    let manager = Manager::new(config, NoTls);
    Pool::builder(manager).max_size(1).build().expect("a pool")
}
