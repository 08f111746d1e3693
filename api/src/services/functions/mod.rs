//! Saving functions: check the input ([`ValidFunction::parse`], pure), store its package,
//! insert or update the row with the build its dependencies need, queue that build, tell the
//! caches and the workers, and with `?wait=true` wait for the build to end.
//!
//! Every query and publish goes through [`FunctionBackend`] (`backend`), so that what the
//! service decides is unit-tested (`tests`, over the in-memory backend of `fake`) without
//! Postgres or RabbitMQ; the function cache is in memory and stays real.

mod backend;
mod held;
mod unchanged;
mod validate;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use backend::{FunctionBackend, LiveBackend};
pub use held::spawn_build_releaser;
pub use unchanged::unchanged;
pub use validate::{FunctionInput, Invalid, NamespacePolicy, ValidFunction, valid_name};

use crate::broker::Invoker;
use crate::domain::build_share::BuildShare;
use crate::domain::deps;
use crate::domain::package::{self, Package};
use crate::services::cache::FunctionCache;
use crate::services::route_table::RouteTable;
use crate::store::{self, DbError, Function, FunctionFields, Saved, Violation};
use common::{BuildJob, FunctionEvent};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;

/// How often `?wait=true` looks at the build.
const BUILD_POLL: Duration = Duration::from_millis(250);

/// Why a save did not happen. Nothing is stored for any of them but a package that another
/// save may use (its artifact, collected once unused).
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A name or route is taken, or a row the save named went away under it.
    #[error("{0}")]
    Conflict(String),
    #[error("function {0} not found")]
    FunctionNotFound(i64),
    /// The key's namespace was deleted meanwhile.
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    /// A namespace quota (functions, artifact bytes) refuses it.
    #[error(transparent)]
    Quota(crate::domain::quota::QuotaExceeded),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
}

/// A save's options as the caller gives them.
#[derive(Debug, Clone, Copy)]
pub struct SaveOptions {
    /// Whether the caller may take a route that starts with a parameter (an admin).
    pub may_catch_all: bool,
    /// Answer once the build has ended (at most `BUILD_WAIT_SECS`).
    pub wait: bool,
}

/// What the real service's saves are bounded by (settings).
#[derive(Debug, Clone, Copy)]
pub struct SaveLimits {
    /// `MAX_CODE_BYTES`.
    pub max_code_bytes: usize,
    /// `BUILD_WAIT_SECS`.
    pub build_wait: Duration,
    /// The platform's quotas, for namespaces that set none.
    pub quotas: crate::domain::quota::QuotaDefaults,
}

/// A save's input checked by [`Functions::validate`], to save with
/// [`Functions::update_checked`].
#[derive(Debug)]
pub struct Checked {
    fields: FunctionFields,
    package: Option<Package>,
    /// `SaveOptions::wait`.
    wait: bool,
}

impl Checked {
    /// The fields the save will store.
    pub fn fields(&self) -> &FunctionFields {
        &self.fields
    }
}

/// The functions service, over the real [`LiveBackend`] unless a test gives it another.
#[derive(Clone)]
pub struct Functions<B = LiveBackend> {
    backend: B,
    cache: Arc<FunctionCache>,
    /// `MAX_CODE_BYTES`.
    max_code_bytes: usize,
    /// `BUILD_WAIT_SECS`: the longest `?wait=true` waits for a build.
    build_wait: Duration,
    /// `BUILD_NAMESPACE_CONCURRENCY` and `BUILD_NAMESPACE_SECONDS_PER_HOUR`.
    build_share: BuildShare,
}

impl Functions {
    /// The service over Postgres (`db`), RabbitMQ (`invoker`) and this replica's caches.
    pub fn new(
        db: Pool,
        invoker: Arc<Invoker>,
        cache: Arc<FunctionCache>,
        routes: Arc<RouteTable>,
        limits: SaveLimits,
    ) -> Self {
        let SaveLimits {
            max_code_bytes,
            build_wait,
            quotas,
        } = limits;
        let backend = LiveBackend {
            db,
            invoker,
            routes,
            quotas,
        };
        Functions::with_backend(backend, cache, max_code_bytes, build_wait)
    }
}

impl<B: FunctionBackend> Functions<B> {
    /// The service over `backend`; `cache` is this replica's function cache.
    pub fn with_backend(
        backend: B,
        cache: Arc<FunctionCache>,
        max_code_bytes: usize,
        build_wait: Duration,
    ) -> Self {
        Functions {
            backend,
            cache,
            max_code_bytes,
            build_wait,
            build_share: BuildShare::default(),
        }
    }

    /// The service with each namespace's share of builds set to `share`.
    pub fn with_build_share(mut self, share: BuildShare) -> Self {
        self.build_share = share;
        self
    }

    /// Creates a function in `namespace`, at version 1.
    pub async fn create(
        &self,
        namespace: &str,
        input: FunctionInput,
        options: SaveOptions,
    ) -> Result<Function, SaveError> {
        let (fields, package) = self.prepare(namespace, input, options).await?;
        let saved = self
            .backend
            .insert_function(namespace, &fields, package.as_ref())
            .await
            .map_err(|error| on_save_error(error, &fields))?;
        tracing::info!(id = saved.function.id, namespace = %saved.function.namespace, name = %saved.function.name, "function created");
        self.after_save(saved, &fields, options.wait).await
    }

    /// Replaces every field of function `id` of `namespace`; its version goes up by one. An
    /// update that changes nothing ([`unchanged`]) is no save: the function is answered as
    /// stored (same version and `updated_at`), at once even with `wait`, and nothing is
    /// written, built or announced.
    pub async fn update(
        &self,
        namespace: &str,
        id: i64,
        input: FunctionInput,
        options: SaveOptions,
    ) -> Result<Function, SaveError> {
        let checked = self.validate(namespace, input, options).await?;
        self.update_checked(namespace, id, checked).await
    }

    /// Checks `input` as a save in `namespace` would, and stores nothing but its package (if
    /// it has one, as any save does): what [`Self::update_checked`] saves. The console has a
    /// worker load the code in between.
    pub async fn validate(
        &self,
        namespace: &str,
        input: FunctionInput,
        options: SaveOptions,
    ) -> Result<Checked, SaveError> {
        let (fields, package) = self.prepare(namespace, input, options).await?;
        Ok(Checked {
            fields,
            package,
            wait: options.wait,
        })
    }

    /// [`Self::update`] of input already checked.
    pub async fn update_checked(
        &self,
        namespace: &str,
        id: i64,
        checked: Checked,
    ) -> Result<Function, SaveError> {
        let Checked {
            fields,
            package,
            wait,
        } = checked;
        // Read, not locked: a save that changes it meanwhile comes after this one, which then
        // changed nothing.
        let stored = self
            .backend
            .get_function(namespace, id)
            .await?
            .ok_or(SaveError::FunctionNotFound(id))?;
        if unchanged(&stored, &fields, chrono::Utc::now()) {
            tracing::info!(
                id,
                version = stored.version,
                "function unchanged: not saved"
            );
            return Ok(stored);
        }
        let saved = self
            .backend
            .update_function(namespace, id, &fields, package.as_ref())
            .await
            .map_err(|error| on_save_error(error, &fields))?
            .ok_or(SaveError::FunctionNotFound(id))?;
        tracing::info!(id, version = saved.function.version, "function updated");
        self.after_save(saved, &fields, wait).await
    }

    /// Deletes function `id` of `namespace` and tells the caches and workers; false when it
    /// has none.
    pub async fn delete(&self, namespace: &str, id: i64) -> Result<bool, DbError> {
        if !self.backend.delete_function(namespace, id).await? {
            return Ok(false);
        }
        tracing::info!(id, "function deleted");
        self.announce(id, namespace, None, None).await;
        Ok(true)
    }

    /// The fields to store: the input checked against the namespace's policy, its
    /// destinations found, its package checked (stored with the row, in its transaction).
    async fn prepare(
        &self,
        namespace: &str,
        input: FunctionInput,
        options: SaveOptions,
    ) -> Result<(FunctionFields, Option<Package>), SaveError> {
        // The key's namespace; its keys go with it, so only a race with its deletion finds none.
        let stored = self
            .backend
            .get_namespace(namespace)
            .await?
            .ok_or_else(|| SaveError::NamespaceNotFound(namespace.to_owned()))?;
        let policy = NamespacePolicy {
            allowed_runtimes: &stored.allowed_runtimes,
            may_catch_all: options.may_catch_all,
            max_code_bytes: self.max_code_bytes,
        };
        let valid = ValidFunction::parse(input, &policy)?;
        self.check_destinations(namespace, &valid.fields).await?;
        self.check_package(valid).await
    }

    /// 422 unless `on_success` and `on_failure` name functions of `namespace`. A destination
    /// deleted later makes its invocations fail (logged and counted), as Lambda's do.
    async fn check_destinations(
        &self,
        namespace: &str,
        fields: &FunctionFields,
    ) -> Result<(), SaveError> {
        for (field, destination) in [
            ("on_success", &fields.on_success),
            ("on_failure", &fields.on_failure),
        ] {
            if let Some(name) = destination
                && self
                    .backend
                    .get_function_by_name(namespace, name)
                    .await?
                    .is_none()
            {
                return Err(SaveError::Invalid(Invalid::Field(format!(
                    "{field} names {name:?}, which is no function of this namespace"
                ))));
            }
        }
        Ok(())
    }

    /// Checks `code_zip` (off the async threads: inflating it is CPU work) and returns the
    /// fields that name it, with the package for the save to store. A package is stored only
    /// with the row that names it, in one transaction, so that a save refused for any reason
    /// (a taken name, a quota) keeps none.
    async fn check_package(
        &self,
        valid: ValidFunction,
    ) -> Result<(FunctionFields, Option<Package>), SaveError> {
        let ValidFunction {
            mut fields,
            code_zip,
        } = valid;
        let Some(code_zip) = code_zip else {
            return Ok((fields, None));
        };
        let (language, handler) = (fields.language, fields.handler.clone());
        let prepared =
            tokio::task::spawn_blocking(move || package::prepare(&code_zip, language, &handler))
                .await
                .map_err(|error| {
                    Invalid::Field(format!("the package could not be read: {error}"))
                })?;
        let package = prepared.map_err(|error| match error {
            package::PackageError::TooLarge(why) => Invalid::TooLarge(why),
            other => Invalid::Field(other.to_string()),
        })?;
        if let Some(key) = &fields.build_key
            && let Some(deps_bytes) = self.backend.ready_build_size(key).await?
            && package.unpacked_bytes + deps_bytes.max(0) as u64 > package::MAX_UNPACKED_BYTES
        {
            return Err(Invalid::TooLarge(format!(
                "the package ({} bytes unpacked) and its dependencies ({deps_bytes} bytes) are over the limit of {} MB together",
                package.unpacked_bytes,
                package::MAX_UNPACKED_BYTES / (1024 * 1024)
            ))
            .into());
        }
        tracing::info!(digest = %package.digest, zip_bytes = package.zip_bytes, files = package.files, "package checked");
        fields.package = Some(store::PackageInfo {
            digest: package.digest.clone(),
            zip_bytes: package.zip_bytes as i64,
            unpacked_bytes: package.unpacked_bytes as i64,
            files: package.files as i32,
        });
        Ok((fields, Some(package)))
    }

    /// What a create or update does once committed: queues the build it started, tells the
    /// caches, and with `wait` polls until the build has ended.
    async fn after_save(
        &self,
        saved: Saved,
        fields: &FunctionFields,
        wait: bool,
    ) -> Result<Function, SaveError> {
        let Saved {
            mut function,
            publish_build,
        } = saved;
        if let (Some(attempt), Some(key), Some(dependencies)) =
            (publish_build, &fields.build_key, &fields.dependencies)
            && self.claim(&mut function, key, attempt).await?
        {
            let job = BuildJob {
                key: key.clone(),
                attempt,
                language: fields.language,
                // What the key names: comments and blank lines are not built.
                dependencies: deps::normalise(fields.language, dependencies),
                namespace: function.namespace.clone(),
            };
            match self.backend.publish_build(&job).await {
                Ok(()) => tracing::info!(build_key = %key, %attempt, "build queued"),
                Err(error) => {
                    tracing::error!(build_key = %key, %error, "build not queued");
                    let why = format!(
                        "the build could not be queued ({error}); save the function again to retry"
                    );
                    self.backend.fail_unpublished(key, attempt, &why).await?;
                    function = self.reload(&function).await?;
                }
            }
        }
        // Workers retire containers of versions below the one announced: while this version
        // waits for its build, the one that serves calls is announced.
        let serving_version = function
            .runnable()
            .map_or(function.version, |spec| spec.version);
        self.announce(
            function.id,
            &function.namespace,
            Some(serving_version),
            Some(&function.name),
        )
        .await;
        // Waiting for a build no worker will take would only hold the request for BUILD_WAIT_SECS.
        if wait
            && function
                .build
                .as_ref()
                .is_some_and(|b| !b.status.is_final())
            && self.backend.build_consumers().await == 0
        {
            tracing::warn!(
                id = function.id,
                "?wait=true answered at once: no worker takes builds"
            );
        } else if wait {
            let until = tokio::time::Instant::now() + self.build_wait;
            while function
                .build
                .as_ref()
                .is_some_and(|b| !b.status.is_final())
                && tokio::time::Instant::now() < until
            {
                tokio::time::sleep(BUILD_POLL).await;
                function = self.reload(&function).await?;
            }
        }
        Ok(function)
    }

    /// Whether the save of `function` may queue `attempt` of its build `key` now: true when its
    /// namespace's share has room (the build is then charged to it). A build held instead says
    /// why in the answer, as its stored log does; it is queued when one of the namespace's
    /// builds ends. The save succeeds either way.
    async fn claim(
        &self,
        function: &mut Function,
        key: &str,
        attempt: uuid::Uuid,
    ) -> Result<bool, SaveError> {
        let claim = self
            .backend
            .claim_build(&function.namespace, key, attempt, self.build_share)
            .await?;
        match claim {
            store::Claim::Publish => Ok(true),
            store::Claim::Held(held) => {
                tracing::info!(build_key = %key, namespace = %function.namespace, %held, "build held");
                if let Some(build) = function.build.as_mut() {
                    build.log = held.to_string();
                }
                Ok(false)
            }
            store::Claim::Gone => Ok(false),
        }
    }

    async fn reload(&self, function: &Function) -> Result<Function, SaveError> {
        self.backend
            .get_function(&function.namespace, function.id)
            .await?
            .ok_or(SaveError::FunctionNotFound(function.id))
    }

    /// Drops the function from this replica's cache and reloads its route table before answering
    /// (so the caller's next call runs what it just saved, a name cached as missing is found, and
    /// its route answers), and tells the other replicas and the workers.
    pub async fn announce(
        &self,
        function_id: i64,
        namespace: &str,
        version: Option<i32>,
        name: Option<&str>,
    ) {
        self.cache.invalidate(function_id, Some(namespace), name);
        self.backend
            .publish_event(&FunctionEvent {
                function_id,
                namespace: Some(namespace.to_owned()),
                name: name.map(str::to_owned),
                version,
            })
            .await;
        self.backend.refresh_routes().await;
    }
}

/// A save's failure: a taken name or route, or a row the save named deleted under it, is 409
/// naming what is taken (never which namespace holds a route); anything else is the database's.
fn on_save_error(error: DbError, fields: &FunctionFields) -> SaveError {
    let error = match error {
        DbError::Quota(exceeded) => return SaveError::Quota(exceeded),
        other => other,
    };
    if let DbError::RouteOverlap(route) = &error {
        // Which namespace holds the other route is not said.
        return SaveError::Conflict(format!(
            "route {route:?} would take requests that a route of another namespace answers (it is more specific on some path both match); choose another route"
        ));
    }
    match error.violation() {
        // Routes are unique across namespaces; which one holds it is not said.
        Some(Violation::Unique(Some("functions_route_key"))) => SaveError::Conflict(format!(
            "a function with route {:?} already exists",
            fields.route
        )),
        Some(Violation::Unique(Some("functions_route_shape_key"))) => SaveError::Conflict(format!(
            "route {:?} is ambiguous: a function's route has the same shape {:?} (the same path with other parameter names)",
            fields.route, fields.route_shape
        )),
        Some(Violation::Unique(_)) => SaveError::Conflict(format!(
            "a function named {:?} already exists in this namespace",
            fields.name
        )),
        // Its package or build, unused for ARTIFACT_GRACE_SECS until this save named it, was
        // deleted by the retention task in between.
        Some(Violation::ForeignKey(Some(
            "functions_package_digest_fkey" | "functions_build_key_fkey",
        ))) => SaveError::Conflict(
            "the package or dependency build this save names was being deleted as unused; send the save again".into(),
        ),
        // The namespace was deleted between the key's check and the insert.
        Some(Violation::ForeignKey(_)) => {
            SaveError::Conflict("the key's namespace no longer exists".into())
        }
        None => SaveError::Database(error),
    }
}
