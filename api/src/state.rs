//! The composition root: every part of the api built from its settings, bottom up (the
//! store, the caches, the broker, the services, then the http layer's state), and the
//! background tasks that keep them (retention, route reloads, async dispatch, the sweeper and
//! the scheduler). `run` in lib.rs serves what this builds.

use crate::broker::Invoker;
use crate::config::{self, AuthMode, Config};
use crate::domain;
use crate::http::state::{AppParts, AppState, Limits};
use crate::services::console::ConsoleSessions;
use crate::services::{self, cache, dispatch, keys, records, retention, route_table};
use crate::store;
use anyhow::Context;
use common::broker::Topology;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The api, built.
pub struct Composed {
    pub state: AppState,
    pub invoker: Arc<Invoker>,
    /// Ends once every `RecordWriter` is dropped and what they sent is stored.
    pub record_writer: JoinHandle<()>,
    /// Ends after the record writer, once what it stored is published to the streams.
    pub record_fanout: JoinHandle<()>,
    dispatch: dispatch::Dispatch,
    topology: Topology,
    connection_name: String,
}

impl Composed {
    /// What serving needs: the state, the invoker and the record writer's tasks. The rest is
    /// dropped here: the dispatch context holds a `RecordWriter`, and the writer ends only
    /// once every one is gone, so one kept until `run` returns would make each shutdown wait
    /// out the writer's timeout.
    pub fn into_serving(self) -> (AppState, Arc<Invoker>, RecordTasks) {
        let tasks = RecordTasks {
            writer: self.record_writer,
            fanout: self.record_fanout,
        };
        (self.state, self.invoker, tasks)
    }
}

/// The record writer's task and, after it, the one that publishes what it stored.
pub struct RecordTasks {
    pub writer: JoinHandle<()>,
    pub fanout: JoinHandle<()>,
}

/// Connects to Postgres (migrating it) and RabbitMQ and builds every part; fails when either
/// cannot be reached now, or a setting is unusable.
pub async fn compose(config: &Config, connection_name: String) -> anyhow::Result<Composed> {
    let db = store::connect(&config.database_url, config.database_pool_size)
        .await
        .context("cannot open the database (DATABASE_URL)")?;
    let functions = Arc::new(cache::FunctionCache::new(Duration::from_secs(
        config.function_cache_ttl_secs,
    )));
    let key_cache = key_store(config, &db).await?;
    match config.worker_token() {
        Some(token) if token.len() < config::MIN_WORKER_TOKEN_LEN => anyhow::bail!(
            "WORKER_TOKEN must be at least {} characters",
            config::MIN_WORKER_TOKEN_LEN
        ),
        Some(_) => {}
        None => tracing::warn!(
            "WORKER_TOKEN is not set: workers cannot report builds or fetch artifacts, so functions with dependencies never become ready"
        ),
    }
    let routes = route_table::RouteTable::new();
    let route_count = routes
        .load(&db)
        .await
        .context("cannot load the functions' routes")?;
    tracing::info!(routes = route_count, "HTTP routes loaded");
    let topology = config
        .broker
        .topology()
        .with_retry_base_secs(config.retry_base_secs);
    let streams = services::stream_hub::StreamHub::new(config.stream_clients);
    let invoker = Invoker::connect(
        &config.broker.amqp_url,
        connection_name.clone(),
        topology.clone(),
        Arc::new(services::Caches {
            functions: functions.clone(),
            keys: key_cache.clone(),
            routes: routes.clone(),
            streams: streams.clone(),
        }),
    )
    .await
    .map_err(
        |error| match common::broker::explain_declare_error(&error) {
            Some(explained) => anyhow::anyhow!(explained),
            None => anyhow::Error::new(error).context("cannot reach the message broker (AMQP_URL)"),
        },
    )?;
    let (fanout, record_fanout) = services::stream_hub::RecordFanout::spawn(invoker.clone());
    let (records, record_writer) = records::RecordWriter::spawn(db.clone(), fanout);
    let invoke_overhead = Duration::from_millis(config.invoke_overhead_ms);
    let invocations = services::Invocations::new(
        services::PlatformBackend::new(db.clone(), invoker.clone(), records.clone()),
        functions.clone(),
        invoke_overhead,
    )
    .with_queue_share(
        config
            .queue_share_bytes
            .unwrap_or(config.broker.queue_max_bytes / 4),
    );
    let function_service = services::Functions::new(
        db.clone(),
        invoker.clone(),
        functions.clone(),
        routes.clone(),
        services::SaveLimits {
            max_code_bytes: config.max_code_bytes,
            build_wait: Duration::from_secs(config.build_wait_secs),
            quotas: config.quota_defaults(),
        },
    )
    .with_build_share(config.build_share());
    let key_service = keys::Keys::new(
        db.clone(),
        invoker.clone(),
        key_cache.clone(),
        config.quota_keys,
    );
    let namespaces = services::namespaces::Namespaces::new(
        db.clone(),
        key_service.clone(),
        function_service.clone(),
        config.quota_defaults(),
    );
    let builds = services::builds::Builds::new(db.clone(), function_service.clone());
    let artifacts = services::builds::artifacts::Artifacts::new(
        db.clone(),
        config.artifact_max_mb * 1024 * 1024,
    );
    let async_dispatch = dispatch::Dispatch {
        db: db.clone(),
        invoker: invoker.clone(),
        invocations: invocations.clone(),
        pending: Default::default(),
        quotas: store::AcceptQuotas {
            max_pending: config.max_pending_async,
            default_result_bytes: config.quota_result_bytes,
        },
    };
    let state = AppState::new(AppParts {
        db: db.clone(),
        invoker: invoker.clone(),
        functions: function_service,
        key_cache: key_cache.clone(),
        keys: key_service,
        namespaces,
        builds,
        artifacts,
        records,
        invocations,
        routes,
        streams,
        limits: Limits {
            max_code_bytes: config.max_code_bytes,
            max_event_bytes: config.max_event_bytes,
            max_async_event_bytes: config.max_async_event_bytes,
            // 0 would refuse every body and every request: a second is the least that works.
            body_read_timeout: Duration::from_secs(config.body_read_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
        },
        dispatch: async_dispatch.clone(),
        worker_token: config
            .worker_token()
            .map(|token| domain::auth::sha256(token.as_bytes())),
        inflight: tokio::sync::Semaphore::new(config.max_inflight),
        functions_inflight: tokio::sync::Semaphore::new(config.max_inflight),
        console: ConsoleSessions::new(
            db.clone(),
            key_cache.clone(),
            Duration::from_secs(config.console_session_ttl_secs.max(60)),
        ),
        console_secure_cookie: config.console_secure_cookie,
    });

    Ok(Composed {
        state,
        invoker,
        record_writer,
        record_fanout,
        dispatch: async_dispatch,
        topology,
        connection_name,
    })
}

/// How often held builds are looked at besides each build's end: it bounds the wait after a
/// lost finish report, or once a namespace's build-time hour has gone by.
const BUILD_RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// The tasks that run beside the server until they are stopped.
pub struct Background {
    retention: JoinHandle<()>,
    route_reloader: JoinHandle<()>,
    dispatcher: Option<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    build_releaser: JoinHandle<()>,
}

impl Background {
    /// Starts them; each ends when `stop` is cancelled.
    pub fn spawn(config: &Config, composed: &Composed, stop: CancellationToken) -> Self {
        let db = &composed.state.db;
        let stop_background = stop;
        let async_dispatch = composed.dispatch.clone();
        let topology = composed.topology.clone();
        let connection_name = &composed.connection_name;
        let retention = retention::spawn(
            db.clone(),
            retention::Retention {
                record_days: config.record_retention_days,
                artifact_grace: Duration::from_secs(config.artifact_grace_secs),
                interval: Duration::from_secs(config.retention_interval_secs.max(1)),
            },
            stop_background.clone(),
        );
        let route_reloader = composed.state.routes.spawn_reloader(
            db.clone(),
            Duration::from_secs(config.function_cache_ttl_secs.max(1)),
            stop_background.clone(),
        );
        let dispatcher = (config.async_concurrency > 0).then(|| {
            dispatch::spawn_dispatcher(
                async_dispatch.clone(),
                dispatch::DispatchSettings {
                    amqp_url: config.broker.amqp_url.clone(),
                    connection_name: format!("{connection_name} dispatcher"),
                    concurrency: config.async_concurrency,
                    topology: topology.clone(),
                    max_event_bytes: config.max_event_bytes,
                },
                stop_background.clone(),
            )
        });
        let sweeper =
            dispatch::spawn_sweeper(async_dispatch.clone(), topology, stop_background.clone());
        let scheduler = dispatch::spawn_scheduler(async_dispatch, stop_background.clone());
        let build_releaser = services::spawn_build_releaser(
            composed.state.functions.clone(),
            BUILD_RELEASE_INTERVAL,
            stop_background.clone(),
        );

        Background {
            retention,
            route_reloader,
            dispatcher,
            sweeper,
            scheduler,
            build_releaser,
        }
    }

    /// Waits for every task to end (after `stop`).
    pub async fn join(self) {
        let _ = self.retention.await;
        // Its running jobs finish (or go back to the queue) while the broker connection is open.
        if let Some(dispatcher) = self.dispatcher {
            let _ = dispatcher.await;
        }
        let _ = self.sweeper.await;
        let _ = self.scheduler.await;
        let _ = self.build_releaser.await;
        let _ = self.route_reloader.await;
    }
}

/// The key store, with the first admin key made if there is none and `ADMIN_KEY` is unset;
/// `None` with `AUTH=disabled`, which is said loudly at every start.
async fn key_store(
    config: &Config,
    db: &deadpool_postgres::Pool,
) -> anyhow::Result<Option<Arc<keys::cache::KeyStore>>> {
    if config.auth == AuthMode::Disabled {
        tracing::warn!(
            "AUTH=disabled: every request is served without a key, as namespace `default` with every scope; never expose this api"
        );
        return Ok(None);
    }
    match config.admin_key() {
        Some(key) if key.len() < domain::auth::MIN_ADMIN_KEY_LEN => anyhow::bail!(
            "ADMIN_KEY is {} characters; it must have at least {} (e.g. `openssl rand -hex 32`)",
            key.len(),
            domain::auth::MIN_ADMIN_KEY_LEN
        ),
        Some(_) => {}
        None => keys::make_first_admin_key(db)
            .await
            .context("cannot make the first admin key")?,
    }
    let ttl = Duration::from_secs(config.key_cache_ttl_secs);
    Ok(Some(Arc::new(keys::cache::KeyStore::new(
        config.admin_key(),
        ttl,
    ))))
}
