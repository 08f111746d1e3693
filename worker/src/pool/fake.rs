//! A launcher for unit tests: its containers start at once and answer as a test scripts them,
//! so that the pool's scheduling and the executor's decisions are tested without Docker.

use super::{Launcher, Mounts, PoolSettings, Pooled};
use crate::death::Death;
use crate::error::{ContainerError, DepsError};
use crate::protocol::{CallOutcome, InitOutcome, InvokeContext};
use common::{ArtifactRef, ErrorInfo, FunctionSpec, Language, RawValue, raw_null};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the next containers answer, in order; once a queue is empty they load their code and
/// return `null`.
#[derive(Default)]
pub struct Script {
    inits: Mutex<VecDeque<InitOutcome>>,
    calls: Mutex<VecDeque<CallOutcome>>,
    /// How the next containers that stopped answering died.
    deaths: Mutex<VecDeque<Death>>,
    /// Init frames and calls the containers answered.
    init_count: AtomicUsize,
    call_count: AtomicUsize,
}

pub struct Fake {
    pub id: String,
    alive: Arc<AtomicBool>,
    script: Arc<Script>,
}

impl Pooled for Fake {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    async fn init(&mut self, _spec: &FunctionSpec, _deadline: tokio::time::Instant) -> InitOutcome {
        self.script.init_count.fetch_add(1, Ordering::SeqCst);
        let outcome = self.script.inits.lock().unwrap().pop_front();
        let outcome = outcome.unwrap_or(InitOutcome::Ready);
        if matches!(outcome, InitOutcome::Died | InitOutcome::Broken(_)) {
            self.alive.store(false, Ordering::SeqCst);
        }
        outcome
    }

    async fn invoke(
        &mut self,
        _id: &str,
        _event: &RawValue,
        _context: &InvokeContext<'_>,
        _deadline: tokio::time::Instant,
    ) -> CallOutcome {
        self.script.call_count.fetch_add(1, Ordering::SeqCst);
        let outcome = self.script.calls.lock().unwrap().pop_front();
        let outcome = outcome.unwrap_or_else(|| CallOutcome::Returned {
            result: raw_null(),
            logs: String::new(),
            logs_truncated: false,
        });
        if matches!(outcome, CallOutcome::Died | CallOutcome::Broken(_)) {
            self.alive.store(false, Ordering::SeqCst);
        }
        outcome
    }
}

/// Starts containers instantly; remembers what it started, fetched and removed.
#[derive(Default)]
pub struct FakeLauncher {
    next: AtomicUsize,
    alive: Mutex<HashMap<String, Arc<AtomicBool>>>,
    removed: Mutex<Vec<String>>,
    fetched: Mutex<Vec<String>>,
    /// Digests whose fetch fails.
    unavailable: Mutex<HashSet<String>>,
    /// Starts fail while set.
    broken: AtomicBool,
    /// While set, each launch waits for one of its permits: see [`FakeLauncher::hold_launches`].
    gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    pub script: Arc<Script>,
}

impl Launcher for FakeLauncher {
    type Container = Fake;

    async fn launch(
        &self,
        language: Language,
        memory_mb: u32,
        function: Option<&FunctionSpec>,
        mounts: &Mounts,
    ) -> Result<Fake, ContainerError> {
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.acquire().await.expect("never closed").forget();
        }
        if self.broken.load(Ordering::SeqCst) {
            return Err(ContainerError::Io(std::io::Error::other("no daemon")));
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let what = function.map_or(format!("stem-{language}"), |f| {
            format!("f{}v{}", f.id, f.version)
        });
        let what = match &mounts.deps {
            Some(digest) => format!("{what}-deps-{digest}"),
            None => what,
        };
        let id = format!("{what}-{memory_mb}-{n}");
        let alive = Arc::new(AtomicBool::new(true));
        self.alive.lock().unwrap().insert(id.clone(), alive.clone());
        Ok(Fake {
            id,
            alive,
            script: self.script.clone(),
        })
    }

    async fn remove(&self, id: String) {
        if let Some(alive) = self.alive.lock().unwrap().get(&id) {
            alive.store(false, Ordering::SeqCst);
        }
        self.removed.lock().unwrap().push(id);
    }

    async fn fetch(&self, artifact: &ArtifactRef) -> Result<(), DepsError> {
        if self.unavailable.lock().unwrap().contains(&artifact.digest) {
            return Err(DepsError::Invalid("scripted to fail".into()));
        }
        self.fetched.lock().unwrap().push(artifact.digest.clone());
        Ok(())
    }

    async fn autopsy(&self, _container: &mut Fake, memory_mb: u32) -> Death {
        let death = self.script.deaths.lock().unwrap().pop_front();
        death.unwrap_or_else(|| {
            Death::OutOfMemory(ErrorInfo::new(
                "Runtime.OutOfMemory",
                format!("over {memory_mb} MB"),
            ))
        })
    }
}

impl FakeLauncher {
    /// Kills container `id` from outside.
    pub fn kill(&self, id: &str) {
        self.alive.lock().unwrap()[id].store(false, Ordering::SeqCst);
    }

    /// Makes every launch from now on wait until [`FakeLauncher::let_launch`] lets it through,
    /// as a slow daemon would.
    pub fn hold_launches(&self) {
        *self.gate.lock().unwrap() = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets `count` held launches through.
    pub fn let_launch(&self, count: usize) {
        if let Some(gate) = &*self.gate.lock().unwrap() {
            gate.add_permits(count);
        }
    }

    /// Ids of every container launched so far.
    pub fn launched(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.alive.lock().unwrap().keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn removed(&self) -> Vec<String> {
        self.removed.lock().unwrap().clone()
    }

    pub fn fetched(&self) -> Vec<String> {
        self.fetched.lock().unwrap().clone()
    }

    pub fn make_unavailable(&self, digest: &str) {
        self.unavailable.lock().unwrap().insert(digest.to_owned());
    }

    /// Makes every start fail from now on.
    pub fn break_starts(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    /// The next container to load code answers this.
    pub fn next_init(&self, outcome: InitOutcome) {
        self.script.inits.lock().unwrap().push_back(outcome);
    }

    /// The next call answered gets this.
    pub fn next_call(&self, outcome: CallOutcome) {
        self.script.calls.lock().unwrap().push_back(outcome);
    }

    /// The next container that stopped answering died so.
    pub fn next_death(&self, death: Death) {
        self.script.deaths.lock().unwrap().push_back(death);
    }

    pub fn init_count(&self) -> usize {
        self.script.init_count.load(Ordering::SeqCst)
    }

    pub fn call_count(&self) -> usize {
        self.script.call_count.load(Ordering::SeqCst)
    }
}

/// A pool's settings for a test: `budget_mb` of memory, no stem cells, short waits.
pub fn settings(budget_mb: u64) -> PoolSettings {
    PoolSettings {
        idle_ttl: Duration::from_secs(300),
        memory_budget_mb: budget_mb,
        max_containers: 100,
        stem_cells: 0,
        stem_memory_mb: 128,
        deps_stem_cells: 0,
        deps_stem_sets: 4,
        warm_wait: Duration::from_millis(25),
        max_starting: 4,
        room_wait: Duration::from_millis(100),
        init_timeout: Duration::from_secs(1),
        runtime_label: "test",
    }
}

/// Version `version` of a Python function `id` of `memory_mb`, with no artifacts.
pub fn spec(id: i64, version: i32, memory_mb: u32) -> FunctionSpec {
    FunctionSpec {
        id,
        namespace: "default".into(),
        name: format!("f{id}"),
        version,
        handler: "handler".into(),
        language: Language::Python,
        code: String::new(),
        timeout_ms: 1000,
        memory_mb,
        env: Default::default(),
        dependencies: None,
        package: None,
    }
}

/// Lets spawned removals run.
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
