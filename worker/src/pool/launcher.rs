//! What the pool asks of the world: a [`Launcher`] that starts, removes and explains
//! containers and fetches the artifacts they mount, and the [`Pooled`] containers it starts;
//! and the keys the pool files containers under.

use crate::death::Death;
use crate::error::{ContainerError, DepsError};
use crate::protocol::{CallOutcome, InitOutcome, InvokeContext};
use common::{ArtifactRef, FunctionSpec, Language, RawValue};
use std::future::Future;

/// Warm containers are keyed by function id and version: a container never serves another.
pub type FunctionKey = (i64, i32);
/// The key of a stem cell, bound to no function yet.
pub const STEM_KEY: FunctionKey = (-1, -1);

/// The artifacts a container mounts read-only, by digest: a function's dependencies and its
/// deployment package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Mounts {
    pub deps: Option<String>,
    pub package: Option<String>,
}

impl Mounts {
    /// What `spec` mounts.
    pub fn of(spec: &FunctionSpec) -> Self {
        Mounts {
            deps: spec.dependencies.as_ref().map(|a| a.digest.clone()),
            package: spec.package.as_ref().map(|a| a.digest.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deps.is_none() && self.package.is_none()
    }

    /// The digests, dependencies first.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        self.deps
            .iter()
            .chain(self.package.iter())
            .map(String::as_str)
    }
}

/// What a stem cell is ready for: a language, and for functions with dependencies or a
/// package the artifacts it mounts (a mount cannot be added to a running container).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StemKind {
    pub language: Language,
    /// Empty: a plain stem cell, for single-source functions without dependencies.
    pub mounts: Mounts,
}

impl StemKind {
    pub fn plain(language: Language) -> Self {
        StemKind {
            language,
            mounts: Mounts::default(),
        }
    }

    /// The stem cell a cold start of `spec` can bind.
    pub fn of(spec: &FunctionSpec) -> Self {
        StemKind {
            language: spec.language,
            mounts: Mounts::of(spec),
        }
    }
}

/// What the pool needs of a container: who it is, whether it can still answer, and the two
/// exchanges of the protocol.
pub trait Pooled: Send + 'static {
    fn id(&self) -> &str;

    /// False once it can never answer again; a dead container is discarded, not handed out.
    fn is_alive(&self) -> bool;

    /// Loads `spec`'s code (binding a stem cell to it); waits for the answer until `deadline`.
    fn init(
        &mut self,
        spec: &FunctionSpec,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = InitOutcome> + Send;

    /// Runs one call; waits for its result until `deadline`.
    fn invoke(
        &mut self,
        id: &str,
        event: &RawValue,
        context: &InvokeContext<'_>,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = CallOutcome> + Send;
}

/// Starts and removes containers for the pool, and does the I/O around them.
pub trait Launcher: Send + Sync + 'static {
    type Container: Pooled;

    /// Starts a container for `function`, or a stem cell of `language` (`function` = `None`),
    /// mounting the artifacts `mounts` names.
    fn launch(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
    ) -> impl Future<Output = Result<Self::Container, ContainerError>> + Send;

    /// Kills and removes the container `id`; failures are the launcher's to report.
    fn remove(&self, id: String) -> impl Future<Output = ()> + Send;

    /// Makes `artifact` present on this host, so that a container can mount it.
    fn fetch(&self, artifact: &ArtifactRef) -> impl Future<Output = Result<(), DepsError>> + Send;

    /// How `container`, which stopped answering, died; its limit was `memory_mb`. (Borrowed
    /// mutably only because a container is `Send` but not `Sync`, and the borrow is held
    /// while Docker settles the death.)
    fn autopsy(
        &self,
        container: &mut Self::Container,
        memory_mb: u32,
    ) -> impl Future<Output = Death> + Send;
}
