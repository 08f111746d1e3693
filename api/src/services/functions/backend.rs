//! What the functions service asks of the world: the rows it reads and writes in Postgres,
//! the messages it publishes on RabbitMQ, and the reload of this replica's route table (a
//! query too). [`FunctionBackend`] is that port; [`LiveBackend`] is the real one, delegating
//! one-to-one to `store::`, the [`Invoker`] and the [`RouteTable`], so that the service's
//! decisions are unit-tested against an in-memory fake instead.

use crate::broker::{BrokerError, Invoker};
use crate::domain::build_share::BuildShare;
use crate::domain::package::Package;
use crate::domain::quota::QuotaDefaults;
use crate::services::route_table::RouteTable;
use crate::store::{self, Claim, DbError, Function, FunctionFields, Namespace, Released, Saved};
use common::{BuildJob, FunctionEvent};
use deadpool_postgres::Pool;
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

/// The store, the broker and the route table as the functions service uses them; each method
/// does what the `store::` function or `Invoker` method of the same name does.
pub trait FunctionBackend: Clone + Send + Sync + 'static {
    /// The namespace `name`, with the runtimes it allows.
    fn get_namespace(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Namespace>, DbError>> + Send;

    /// Function `name` of `namespace`.
    fn get_function_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Function>, DbError>> + Send;

    /// The unpacked size of build `key`'s artifact, when that build is ready.
    fn ready_build_size(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<i64>, DbError>> + Send;

    /// Creates a function in `namespace`, with the build its dependencies need, and stores
    /// `package`'s artifact (or renews it) in the same transaction: a refused save keeps none.
    fn insert_function(
        &self,
        namespace: &str,
        fields: &FunctionFields,
        package: Option<&Package>,
    ) -> impl Future<Output = Result<Saved, DbError>> + Send;

    /// Replaces function `id` of `namespace`, storing `package` as
    /// [`FunctionBackend::insert_function`] does; `None` when there is no such function.
    fn update_function(
        &self,
        namespace: &str,
        id: i64,
        fields: &FunctionFields,
        package: Option<&Package>,
    ) -> impl Future<Output = Result<Option<Saved>, DbError>> + Send;

    /// Deletes function `id` of `namespace`; false when there is no such function.
    fn delete_function(
        &self,
        namespace: &str,
        id: i64,
    ) -> impl Future<Output = Result<bool, DbError>> + Send;

    /// Marks `attempt` of build `key`, whose job could not be queued, failed because of `why`.
    fn fail_unpublished(
        &self,
        key: &str,
        attempt: Uuid,
        why: &str,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Claims held build `key` (`attempt`) for `namespace` if its share under `share` has
    /// room: then the caller publishes its job.
    fn claim_build(
        &self,
        namespace: &str,
        key: &str,
        attempt: Uuid,
        share: BuildShare,
    ) -> impl Future<Output = Result<Claim, DbError>> + Send;

    /// Marks published the held builds each namespace's share has room for; their jobs.
    fn release_held_builds(
        &self,
        share: BuildShare,
    ) -> impl Future<Output = Result<Vec<Released>, DbError>> + Send;

    /// Function `id` of `namespace`, as stored now.
    fn get_function(
        &self,
        namespace: &str,
        id: i64,
    ) -> impl Future<Output = Result<Option<Function>, DbError>> + Send;

    /// Queues a dependency build for a worker.
    fn publish_build(&self, job: &BuildJob)
    -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Tells every api replica and worker that a function changed (best effort).
    fn publish_event(&self, event: &FunctionEvent) -> impl Future<Output = ()> + Send;

    /// How many workers consume the build queue now (0 when the broker is away).
    fn build_consumers(&self) -> impl Future<Output = u32> + Send;

    /// Reloads this replica's route table and waits (a little) until it holds the change.
    fn refresh_routes(&self) -> impl Future<Output = ()> + Send;
}

/// The real backend: Postgres, RabbitMQ and this replica's route table.
#[derive(Clone)]
pub struct LiveBackend {
    pub db: Pool,
    pub invoker: Arc<Invoker>,
    pub routes: Arc<RouteTable>,
    /// The platform's quotas, for namespaces that set none.
    pub quotas: QuotaDefaults,
}

impl FunctionBackend for LiveBackend {
    fn get_namespace(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Namespace>, DbError>> + Send {
        store::get_namespace(&self.db, name)
    }

    fn get_function_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Function>, DbError>> + Send {
        store::get_function_by_name(&self.db, namespace, name)
    }

    fn ready_build_size(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<i64>, DbError>> + Send {
        store::ready_build_size(&self.db, key)
    }

    fn insert_function(
        &self,
        namespace: &str,
        fields: &FunctionFields,
        package: Option<&Package>,
    ) -> impl Future<Output = Result<Saved, DbError>> + Send {
        store::insert_function(&self.db, namespace, fields, package, &self.quotas)
    }

    fn update_function(
        &self,
        namespace: &str,
        id: i64,
        fields: &FunctionFields,
        package: Option<&Package>,
    ) -> impl Future<Output = Result<Option<Saved>, DbError>> + Send {
        store::update_function(&self.db, namespace, id, fields, package, &self.quotas)
    }

    fn delete_function(
        &self,
        namespace: &str,
        id: i64,
    ) -> impl Future<Output = Result<bool, DbError>> + Send {
        store::delete_function(&self.db, namespace, id)
    }

    fn fail_unpublished(
        &self,
        key: &str,
        attempt: Uuid,
        why: &str,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        store::fail_unpublished(&self.db, key, attempt, why)
    }

    fn claim_build(
        &self,
        namespace: &str,
        key: &str,
        attempt: Uuid,
        share: BuildShare,
    ) -> impl Future<Output = Result<Claim, DbError>> + Send {
        store::claim_build(&self.db, namespace, key, attempt, share)
    }

    fn release_held_builds(
        &self,
        share: BuildShare,
    ) -> impl Future<Output = Result<Vec<Released>, DbError>> + Send {
        store::release_held_builds(&self.db, share)
    }

    fn get_function(
        &self,
        namespace: &str,
        id: i64,
    ) -> impl Future<Output = Result<Option<Function>, DbError>> + Send {
        store::get_function(&self.db, namespace, id)
    }

    fn publish_build(
        &self,
        job: &BuildJob,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send {
        self.invoker.publish_build(job)
    }

    fn publish_event(&self, event: &FunctionEvent) -> impl Future<Output = ()> + Send {
        self.invoker.publish_event(event)
    }

    fn build_consumers(&self) -> impl Future<Output = u32> + Send {
        self.invoker.build_consumers()
    }

    fn refresh_routes(&self) -> impl Future<Output = ()> + Send {
        self.routes.refresh()
    }
}
