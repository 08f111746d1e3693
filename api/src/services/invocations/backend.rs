//! What the call path needs of the rest of the platform, as one port: the function's row and
//! the concurrency leases in Postgres, the job and its reply through RabbitMQ, and the record
//! of a sync call for the records writer. [`PlatformBackend`] is the real one; the unit tests
//! run the same [`Invocations`](super::Invocations) over an in-memory fake.

use crate::broker::{BrokerError, Invoker, NoReply};
use crate::services::records::RecordWriter;
use crate::store::{self, DbError, Function, InvocationRecord};
use chrono::{DateTime, Utc};
use common::{Job, Reply, Runtime};
use deadpool_postgres::Pool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The I/O of a call. Cloned into the task that gives a call's leases back, so `'static`.
pub trait CallBackend: Clone + Send + Sync + 'static {
    /// The function called `name` in `namespace`, with its namespace's settings and its build.
    fn get_function_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Function>, DbError>> + Send;

    /// Takes one of the `max` slots of `scope` for `invocation` until `expires`; `false` when
    /// all are taken.
    fn acquire_lease(
        &self,
        scope: &str,
        invocation: Uuid,
        expires: DateTime<Utc>,
        max: i32,
    ) -> impl Future<Output = Result<bool, DbError>> + Send;

    /// Gives back every slot `invocation` holds.
    fn release_lease(&self, invocation: Uuid) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Publishes `job` to `runtime`'s workers and waits for the reply until the job's deadline
    /// plus `grace`.
    fn invoke(
        &self,
        runtime: Runtime,
        job: &Job,
        grace: Duration,
    ) -> impl Future<Output = Result<Result<Reply, NoReply>, BrokerError>> + Send;

    /// Hands a sync call's record to the records writer; never waits.
    fn submit_record(&self, record: InvocationRecord);
}

/// The platform itself: Postgres through `store`, RabbitMQ through the [`Invoker`], records
/// through the [`RecordWriter`]. Each method hands back the callee's own future: no box, no
/// extra await.
#[derive(Clone)]
pub struct PlatformBackend {
    db: Pool,
    invoker: Arc<Invoker>,
    records: RecordWriter,
}

impl PlatformBackend {
    pub fn new(db: Pool, invoker: Arc<Invoker>, records: RecordWriter) -> Self {
        PlatformBackend {
            db,
            invoker,
            records,
        }
    }
}

impl CallBackend for PlatformBackend {
    fn get_function_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Function>, DbError>> + Send {
        store::get_function_by_name(&self.db, namespace, name)
    }

    fn acquire_lease(
        &self,
        scope: &str,
        invocation: Uuid,
        expires: DateTime<Utc>,
        max: i32,
    ) -> impl Future<Output = Result<bool, DbError>> + Send {
        store::acquire_lease(&self.db, scope, invocation, expires, max)
    }

    fn release_lease(&self, invocation: Uuid) -> impl Future<Output = Result<(), DbError>> + Send {
        store::release_lease(&self.db, invocation)
    }

    fn invoke(
        &self,
        runtime: Runtime,
        job: &Job,
        grace: Duration,
    ) -> impl Future<Output = Result<Result<Reply, NoReply>, BrokerError>> + Send {
        self.invoker.invoke(runtime, job, grace)
    }

    fn submit_record(&self, record: InvocationRecord) {
        self.records.submit(record);
    }
}
