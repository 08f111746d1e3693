//! An in-memory [`FunctionBackend`](super::FunctionBackend) for the service's unit tests. Namespaces, functions and
//! builds live in maps and are joined as the store joins them (a function is read with its
//! build); a save starts a build as `store::request_build` does (unless one is ready or under
//! way, held until it is claimed for its namespace's share) and an update keeps the version
//! that serves calls while the new one waits for its build. Failures are scripted, and every
//! call is recorded in order, so that tests assert on what the service stored, published and
//! returned, and when.

mod port;

use crate::broker::BrokerError;
use crate::domain::build_share::BuildUsage;
use crate::domain::package::Package;
use crate::store::{Build, BuildStatus, DbError, Function, FunctionFields, Namespace};
use common::{BuildJob, FunctionEvent, Language, Runtime};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The namespace every fake starts with, allowing every runtime.
pub const NAMESPACE: &str = "default";

/// One call the service made, with what it passed.
#[derive(Debug, Clone)]
pub enum Call {
    GetNamespace(String),
    GetFunctionByName {
        namespace: String,
        name: String,
    },
    ReadyBuildSize(String),
    /// Part of an insert or update: the package it stores in the same transaction.
    StorePackage {
        digest: String,
        zip_bytes: u64,
        unpacked_bytes: u64,
        files: u32,
    },
    InsertFunction {
        namespace: String,
        fields: Box<FunctionFields>,
    },
    UpdateFunction {
        namespace: String,
        id: i64,
        fields: Box<FunctionFields>,
    },
    DeleteFunction {
        namespace: String,
        id: i64,
    },
    FailUnpublished {
        key: String,
        attempt: Uuid,
        why: String,
    },
    ClaimBuild {
        namespace: String,
        key: String,
        attempt: Uuid,
    },
    ReleaseHeldBuilds,
    GetFunction {
        namespace: String,
        id: i64,
    },
    PublishBuild(BuildJob),
    PublishEvent(FunctionEvent),
    BuildConsumers,
    RefreshRoutes,
}

impl Call {
    /// The method's name, for asserting on the order of calls.
    pub fn name(&self) -> &'static str {
        match self {
            Call::GetNamespace(_) => "get_namespace",
            Call::GetFunctionByName { .. } => "get_function_by_name",
            Call::ReadyBuildSize(_) => "ready_build_size",
            Call::StorePackage { .. } => "store_package",
            Call::InsertFunction { .. } => "insert_function",
            Call::UpdateFunction { .. } => "update_function",
            Call::DeleteFunction { .. } => "delete_function",
            Call::FailUnpublished { .. } => "fail_unpublished",
            Call::ClaimBuild { .. } => "claim_build",
            Call::ReleaseHeldBuilds => "release_held_builds",
            Call::GetFunction { .. } => "get_function",
            Call::PublishBuild(_) => "publish_build",
            Call::PublishEvent(_) => "publish_event",
            Call::BuildConsumers => "build_consumers",
            Call::RefreshRoutes => "refresh_routes",
        }
    }
}

/// A stored function: its row (without its build) and the build it names.
struct Row {
    function: Function,
    build_key: Option<String>,
}

/// What the store keeps of a build besides what the API shows: as `builds`' columns.
#[derive(Debug, Clone)]
struct Charge {
    namespace: String,
    attempt: Uuid,
    /// Published (queued or building); false while held.
    published: bool,
    language: Language,
    dependencies: String,
    /// The order builds were (re)started in: held ones are released oldest first.
    seq: u64,
}

struct State {
    namespaces: HashMap<String, Namespace>,
    functions: BTreeMap<i64, Row>,
    builds: HashMap<String, Build>,
    charges: HashMap<String, Charge>,
    /// The build time each namespace used in the last hour, as scripted.
    build_seconds: HashMap<String, u64>,
    last_id: i64,
    last_attempt: u128,
    /// What the next insert, update or delete fails with instead of writing.
    write_error: Option<DbError>,
    /// What the next `publish_build` fails with.
    publish_error: Option<BrokerError>,
    build_consumers: u32,
    /// The statuses builds go through: each `get_function` of a function whose build is not
    /// final moves it to the next one (the status a worker would have reported meanwhile).
    build_progress: VecDeque<BuildStatus>,
    calls: Vec<Call>,
}

/// The fake backend; clones share their state.
#[derive(Clone)]
pub struct FakeBackend {
    state: Arc<Mutex<State>>,
}

impl FakeBackend {
    /// A backend with namespace [`NAMESPACE`] (every runtime allowed), no function, and one
    /// worker that takes builds.
    pub fn new() -> Self {
        let backend = FakeBackend {
            state: Arc::new(Mutex::new(State {
                namespaces: HashMap::new(),
                functions: BTreeMap::new(),
                builds: HashMap::new(),
                charges: HashMap::new(),
                build_seconds: HashMap::new(),
                last_id: 0,
                last_attempt: 0,
                write_error: None,
                publish_error: None,
                build_consumers: 1,
                build_progress: VecDeque::new(),
                calls: Vec::new(),
            })),
        };
        backend.add_namespace(NAMESPACE, &Runtime::ALL);
        backend
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Adds (or replaces) namespace `name`, which allows `allowed_runtimes`.
    pub fn add_namespace(&self, name: &str, allowed_runtimes: &[Runtime]) {
        let namespace = Namespace {
            name: name.to_owned(),
            allowed_runtimes: allowed_runtimes.to_vec(),
            max_concurrency: None,
            created_at: chrono::Utc::now(),
            quotas: Default::default(),
            uid: Uuid::nil(),
        };
        self.state().namespaces.insert(name.to_owned(), namespace);
    }

    /// Stores function `name` of `namespace` (no build), as if it had been created before.
    pub fn add_function(&self, namespace: &str, name: &str) -> i64 {
        let mut state = self.state();
        state.last_id += 1;
        let function = Function {
            id: state.last_id,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            route: format!("/{name}"),
            ..Function::example()
        };
        let id = function.id;
        state.functions.insert(
            id,
            Row {
                function,
                build_key: None,
            },
        );
        id
    }

    /// A ready build of `key` whose dependencies take `size_bytes` unpacked.
    pub fn add_ready_build(&self, key: &str, size_bytes: i64) {
        let build = Build {
            status: BuildStatus::Ready,
            digest: Some(format!("deps-of-{key}")),
            size_bytes: Some(size_bytes),
            log: String::new(),
            started_at: None,
            finished_at: None,
            published_at: None,
        };
        self.state().builds.insert(key.to_owned(), build);
    }

    /// Build `key` ends (`Ready` or `Failed`), as a worker's report would end it.
    pub fn end_build(&self, key: &str, status: BuildStatus) {
        let mut state = self.state();
        let build = state.builds.get_mut(key).expect("a build");
        build.status = status;
        if let Some(charge) = state.charges.get_mut(key) {
            charge.published = true;
        }
    }

    /// Namespace `namespace`'s builds ran `seconds` in the last hour.
    pub fn set_build_seconds(&self, namespace: &str, seconds: u64) {
        self.state()
            .build_seconds
            .insert(namespace.to_owned(), seconds);
    }

    /// The namespace build `key` is charged to, and whether it was published (false: held).
    pub fn charge(&self, key: &str) -> Option<(String, bool)> {
        self.state()
            .charges
            .get(key)
            .map(|charge| (charge.namespace.clone(), charge.published))
    }

    /// Build `key` as stored.
    pub fn build(&self, key: &str) -> Option<Build> {
        self.state().builds.get(key).cloned()
    }

    /// The next insert, update or delete fails with `error`.
    pub fn fail_next_write(&self, error: DbError) {
        self.state().write_error = Some(error);
    }

    /// The next build job is not queued: `publish_build` fails with `error`.
    pub fn fail_next_publish(&self, error: BrokerError) {
        self.state().publish_error = Some(error);
    }

    /// How many workers take builds from now on.
    pub fn set_build_consumers(&self, consumers: u32) {
        self.state().build_consumers = consumers;
    }

    /// Builds not final go through `statuses`, one step per `get_function`.
    pub fn builds_go_through(&self, statuses: &[BuildStatus]) {
        self.state().build_progress = statuses.iter().copied().collect();
    }

    /// Function `id` as stored, with its build.
    pub fn stored(&self, id: i64) -> Option<Function> {
        let state = self.state();
        state.functions.get(&id).map(|row| state.joined(row))
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The names of the calls so far, in order.
    pub fn call_names(&self) -> Vec<&'static str> {
        self.state().calls.iter().map(Call::name).collect()
    }

    /// The function events published so far.
    pub fn events(&self) -> Vec<FunctionEvent> {
        self.calls()
            .into_iter()
            .filter_map(|call| match call {
                Call::PublishEvent(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    /// The build jobs published so far (a failed publish included).
    pub fn build_jobs(&self) -> Vec<BuildJob> {
        self.calls()
            .into_iter()
            .filter_map(|call| match call {
                Call::PublishBuild(job) => Some(job),
                _ => None,
            })
            .collect()
    }

    /// The namespaces and fields of the inserts and updates so far.
    pub fn saved_fields(&self) -> Vec<(String, FunctionFields)> {
        self.calls()
            .into_iter()
            .filter_map(|call| match call {
                Call::InsertFunction { namespace, fields }
                | Call::UpdateFunction {
                    namespace, fields, ..
                } => Some((namespace, *fields)),
                _ => None,
            })
            .collect()
    }
}

impl State {
    /// `row`'s function read with its build, as the store's join reads it.
    /// Records the package a save stores in its transaction, before its row (the store
    /// writes both or neither: a save the fake then refuses has its call recorded all the same).
    fn store_package(&mut self, package: Option<&Package>) {
        if let Some(package) = package {
            self.calls.push(Call::StorePackage {
                digest: package.digest.clone(),
                zip_bytes: package.zip_bytes,
                unpacked_bytes: package.unpacked_bytes,
                files: package.files,
            });
        }
    }

    fn joined(&self, row: &Row) -> Function {
        Function {
            build: row
                .build_key
                .as_ref()
                .and_then(|key| self.builds.get(key).cloned()),
            ..row.function.clone()
        }
    }

    /// The build `fields` name for a function of `namespace`, started (held, charged to
    /// `namespace`) when none is ready or under way, as `store::request_build` does: the
    /// attempt to claim, if it was started or is held.
    fn request_build(&mut self, namespace: &str, fields: &FunctionFields) -> Option<Uuid> {
        let key = fields.build_key.as_ref()?;
        if let Some(build) = self.builds.get(key)
            && build.status != BuildStatus::Failed
        {
            let charge = self.charges.get(key);
            let held = build.status == BuildStatus::Pending && charge.is_some_and(|c| !c.published);
            return held.then(|| charge.map(|c| c.attempt)).flatten();
        }
        self.last_attempt += 1;
        let charge = Charge {
            namespace: namespace.to_owned(),
            attempt: Uuid::from_u128(self.last_attempt),
            published: false,
            language: fields.language,
            dependencies: fields.dependencies.clone().unwrap_or_default(),
            seq: self.last_attempt as u64,
        };
        self.charges.insert(key.clone(), charge);
        let build = Build {
            status: BuildStatus::Pending,
            digest: None,
            size_bytes: None,
            log: String::new(),
            started_at: None,
            finished_at: None,
            published_at: None,
        };
        self.builds.insert(key.clone(), build);
        Some(Uuid::from_u128(self.last_attempt))
    }

    /// What `namespace`'s builds use now: its published builds not ended, and its scripted
    /// build time.
    fn usage(&self, namespace: &str) -> BuildUsage {
        let in_flight = self
            .charges
            .iter()
            .filter(|(key, charge)| {
                charge.namespace == namespace
                    && charge.published
                    && self.builds.get(*key).is_some_and(|b| !b.status.is_final())
            })
            .count();
        BuildUsage {
            in_flight: in_flight as u64,
            seconds_last_hour: self.build_seconds.get(namespace).copied().unwrap_or(0),
        }
    }

    /// Moves function `id`'s build to the next scripted status, if it has not ended.
    fn progress(&mut self, id: i64) {
        let Some(key) = self
            .functions
            .get(&id)
            .and_then(|row| row.build_key.clone())
        else {
            return;
        };
        let Some(build) = self.builds.get_mut(&key) else {
            return;
        };
        if build.status.is_final() {
            return;
        }
        if let Some(status) = self.build_progress.pop_front() {
            build.status = status;
            if status == BuildStatus::Ready {
                build.digest = Some(format!("deps-of-{key}"));
                build.size_bytes = Some(1024);
            }
        }
    }
}

/// The row `fields` make, at `version`, for function `id` of `namespace`.
fn row_of(namespace: &str, id: i64, version: i32, fields: &FunctionFields) -> Row {
    let fields = fields.clone();
    let function = Function {
        id,
        namespace: namespace.to_owned(),
        name: fields.name,
        route: fields.route,
        language: fields.language,
        code: fields.package.is_none().then_some(fields.code),
        handler: fields.handler,
        timeout: fields.timeout,
        runtime: fields.runtime,
        memory_mb: fields.memory_mb,
        env: fields.env,
        max_concurrency: fields.max_concurrency,
        http_methods: fields.http_methods,
        http_auth: fields.http_auth,
        cors: fields.cors,
        dependencies: fields.dependencies,
        build: None,
        package: fields.package,
        max_retries: fields.max_retries,
        max_event_age_secs: fields.max_event_age_secs,
        on_success: fields.on_success,
        on_failure: fields.on_failure,
        schedule: fields.schedule,
        schedule_timezone: fields.schedule_timezone,
        version,
        ..Function::example()
    };
    Row {
        function,
        build_key: fields.build_key,
    }
}
