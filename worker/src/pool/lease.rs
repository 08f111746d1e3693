//! How a call gets a container and gives it back. [`Pool::acquire`] finds one: a warm one of
//! the function's version, one that comes back within a short wait, or on a cold start a stem
//! cell or a new container, with the function's artifacts fetched first and its code loaded.
//! [`Lease::release`] keeps it warm or removes it by its [`Health`] after the call.
//!
//! What becomes of a container after an exchange is decided here and nowhere else:
//! [`Health::after_call`] for a call, the init match in `cold_start` for loading the code.

use super::{
    Demand, DemandGuard, FunctionKey, Launcher, Mounts, Namespace, Pool, Pooled, Slot, StemKind,
};
use crate::death::Death;
use crate::error::ContainerError;
use crate::protocol::{CallOutcome, InitOutcome, Violation};
use common::{ErrorInfo, FunctionSpec, MAX_UNPACKED_BYTES};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long finding a container took, for the call's timing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Acquisition {
    /// Spent taking a warm container, or waiting for a busy one to come back.
    pub warm_wait: Duration,
    /// Set on a cold start: what it took (artifacts, room, a start or a stem cell, loading
    /// the code), whether it ended in a container or not.
    pub cold_start: Option<Duration>,
}

impl Acquisition {
    fn warm(waited: Duration) -> Self {
        Acquisition {
            warm_wait: waited,
            cold_start: None,
        }
    }
}

/// One of a function's artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    Dependencies,
    Package,
}

impl Artifact {
    /// How a message names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Artifact::Dependencies => "dependencies",
            Artifact::Package => "package",
        }
    }
}

/// Why a call got no container.
#[derive(Debug)]
pub enum NoContainer {
    /// No room freed up within the room wait, and the call's deadline is still ahead: a worker
    /// with room (or this one, later) can take it.
    NoRoom,
    /// No room freed up before the call's deadline.
    NoRoomInTime,
    /// The container had not started by the call's deadline.
    StartTooSlow,
    /// The launcher could not start a container.
    StartFailed(ContainerError),
    /// The package and dependencies unpack to more than `MAX_UNPACKED_BYTES` together.
    CodeTooLarge { unpacked_bytes: u64 },
    /// An artifact could not be had on this host.
    Unavailable { artifact: Artifact, why: String },
    /// The function's code failed to load.
    InitFailed { error: ErrorInfo, logs: String },
    /// The code did not load within the init timeout (or the call's deadline).
    InitTimedOut,
    /// The container broke the protocol while loading the code, and was killed.
    InitBroken(Violation),
    /// The container died while loading the code.
    InitDied(Death),
}

/// A call that got no container: why, and how long finding none took.
#[derive(Debug)]
pub struct Refused {
    pub why: NoContainer,
    pub acquisition: Acquisition,
}

/// What a container is fit for after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered as the protocol says: it can serve its function's next call.
    Sound,
    /// It must not serve again: it is removed.
    Unsound,
    /// It stopped answering: it is removed once the launcher has said how it died.
    Died,
}

impl Health {
    /// A container's health after `call`.
    pub fn after_call(call: &CallOutcome) -> Health {
        match call {
            // The handler's own error leaves the process sound: the container stays warm.
            CallOutcome::Returned { .. } | CallOutcome::Raised { .. } => Health::Sound,
            // Sound when the bootstrap itself refused the result; a container that wrote it
            // anyway no longer runs the bootstrap's code.
            CallOutcome::TooLarge { sound: true, .. } => Health::Sound,
            CallOutcome::TooLarge { sound: false, .. } => Health::Unsound,
            // A timed-out handler may still be running; a protocol breaker was killed.
            CallOutcome::TimedOut | CallOutcome::Broken(_) => Health::Unsound,
            CallOutcome::Died => Health::Died,
        }
    }
}

/// A container held for one call. Give it back with [`Lease::release`]; dropped instead (only
/// a panic does that), its room is freed and the container left for [`Pool::remove_all`].
pub struct Lease<'a, L: Launcher> {
    pool: &'a Pool<L>,
    slot: Slot<L::Container>,
    /// Counts the call as running, for calls of the same version waiting for a container.
    busy: DemandGuard<'a, L>,
    acquisition: Acquisition,
    /// When the call got the container, for its function's call time.
    since: Instant,
}

impl<L: Launcher> Lease<'_, L> {
    /// How long finding this container took; `cold_start` is set when it was started (or a
    /// stem cell bound) for this call.
    pub fn acquisition(&self) -> Acquisition {
        self.acquisition
    }

    /// The container, to run the call in.
    pub fn container(&mut self) -> &mut L::Container {
        &mut self.slot.container
    }

    /// Gives the container back after the call: a sound one waits for its function's next
    /// call (unless its version was retired meanwhile, or it died since), any other is
    /// removed. For one that died, says how.
    pub async fn release(self, health: Health) -> Option<Death> {
        let Lease {
            pool,
            slot,
            busy,
            since,
            ..
        } = self;
        pool.record_call(slot.key(), since.elapsed());
        drop(busy);
        match health {
            Health::Sound => {
                pool.put_idle(slot);
                None
            }
            Health::Unsound => {
                pool.discard(slot);
                None
            }
            Health::Died => Some(pool.bury(slot).await),
        }
    }
}

/// How a call that found no idle container got one, or none.
enum Found<C> {
    /// One of its function's containers came back idle (or was started for another call).
    Warm(Slot<C>),
    /// The call's own start ended, after `waited` for a container first and `took` starting.
    Started {
        ended: Result<Slot<C>, NoContainer>,
        waited: Duration,
        took: Duration,
    },
    /// The deadline passed with no container and no start of the call's own.
    TooLate,
}

/// What a call whose start's task ended without an outcome (it panicked) is told.
fn lost_start() -> NoContainer {
    NoContainer::StartFailed(ContainerError::Io(std::io::Error::other(
        "the container's start ended without an outcome",
    )))
}

/// Why a start spawned for a call gave no container.
enum Unstarted {
    Refused(NoContainer),
    /// The call got another container before this one was launched: nothing was started.
    Abandoned,
}

impl From<NoContainer> for Unstarted {
    fn from(why: NoContainer) -> Self {
        Unstarted::Refused(why)
    }
}

/// A start spawned for a waiting call: its outcome, sent to the call while it waits, and the
/// token that abandons it if the call is served first (dropped with the call, it abandons it
/// too).
struct OwnStart<C> {
    outcome: oneshot::Receiver<Result<Slot<C>, NoContainer>>,
    since: Instant,
    _abandon: DropGuard,
}

/// Whether a waiting call starts a container of its own now.
enum Claim {
    Start,
    /// Not before this instant (the function's containers turn over within the warm wait).
    NotBefore(tokio::time::Instant),
    /// Not while as many are starting as may (or as calls wait).
    No,
}

/// When a container of the version last came back, as a waiting call saw it.
struct Turnover {
    returned: u64,
    since: tokio::time::Instant,
}

impl<L: Launcher> Pool<L> {
    /// A container for a call of `spec` with `memory_mb` (the job's, held to what this worker
    /// allows) by `deadline`: a warm one of its version, else whichever comes first of one of
    /// them coming back idle and a cold start of the call's own ([`Pool::wait_or_start`]). A
    /// cold start fetches the function's artifacts, then binds a stem cell or starts a
    /// container (waiting for room up to the room wait), and loads the code within the init
    /// timeout; on failure the container is already removed.
    pub async fn acquire(
        self: &Arc<Self>,
        spec: &FunctionSpec,
        memory_mb: u32,
        deadline: tokio::time::Instant,
    ) -> Result<Lease<'_, L>, Refused> {
        let key = (spec.id, spec.version);
        let looked = Instant::now();
        let (found, how) = match self.take_idle(key) {
            Some(slot) => (Found::Warm(slot), "idle"),
            None => {
                let found = self.wait_or_start(spec, memory_mb, deadline).await;
                let how = match &found {
                    Found::Warm(_) => "waited",
                    Found::Started { ended: Ok(_), .. } => "started",
                    Found::Started { ended: Err(_), .. } | Found::TooLate => "refused",
                };
                (found, how)
            }
        };
        // The pool's hit rate: calls served by a container of their function, idle or freed
        // while they waited, over all.

        metrics::counter!("faas_pool_acquisitions_total", "runtime" => self.settings.runtime_label, "how" => how)
            .increment(1);
        let (slot, acquisition) = match found {
            Found::Warm(slot) => (slot, Acquisition::warm(looked.elapsed())),
            Found::Started {
                ended,
                waited,
                took,
            } => {
                let acquisition = Acquisition {
                    warm_wait: waited,
                    cold_start: Some(took),
                };
                match ended {
                    Ok(slot) => (slot, acquisition),
                    Err(why) => return Err(Refused { why, acquisition }),
                }
            }
            Found::TooLate => {
                return Err(Refused {
                    why: NoContainer::StartTooSlow,
                    acquisition: Acquisition::warm(looked.elapsed()),
                });
            }
        };
        Ok(Lease {
            pool: self,
            busy: self.busy(key),
            slot,
            acquisition,
            since: Instant::now(),
        })
    }

    /// After no container of `spec`'s version was idle: waits for whichever comes first, one
    /// of them given back idle or a container the call starts itself. It starts one only while
    /// fewer are starting for the version than may start at once and than calls wait, and,
    /// while calls of the version run, once none of their containers came back for the warm
    /// wait. So a burst of first calls shares the first containers to be ready instead of each
    /// waiting for its own, and a call never waits for a start while a container of its
    /// function is idle. A start the call no longer needs is abandoned if it has not launched
    /// yet, else its container is kept idle for the next call.
    async fn wait_or_start(
        self: &Arc<Self>,
        spec: &FunctionSpec,
        memory_mb: u32,
        deadline: tokio::time::Instant,
    ) -> Found<L::Container> {
        let key = (spec.id, spec.version);
        let waiting_since = Instant::now();
        let _waiting = self.count(key, |demand| &mut demand.waiting);
        let mut turnover = Turnover {
            returned: 0,
            since: tokio::time::Instant::now(),
        };
        let mut own: Option<OwnStart<L::Container>> = None;
        loop {
            let changed = self.ledger.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(slot) = self.take_idle(key) {
                if let Some(own) = own {
                    self.give_up(own);
                }
                return Found::Warm(slot);
            }
            let mut look_again = deadline;
            if own.is_none() {
                match self.claim_start(key, &mut turnover) {
                    Claim::Start => own = Some(self.spawn_start(spec, memory_mb, deadline)),
                    Claim::NotBefore(when) => look_again = when.min(deadline),
                    Claim::No => {}
                }
            }
            match own.as_mut() {
                Some(start) => {
                    tokio::select! {
                        biased;
                        outcome = &mut start.outcome => {
                            return Found::Started {
                                ended: outcome.unwrap_or_else(|_| Err(lost_start())),
                                waited: start.since.duration_since(waiting_since),
                                took: start.since.elapsed(),
                            };
                        }
                        () = &mut changed => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = &mut changed => {}
                        () = tokio::time::sleep_until(look_again) => {
                            if tokio::time::Instant::now() >= deadline {
                                return Found::TooLate;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Whether a call waiting for `key` starts a container now (counted as starting if so);
    /// see [`Pool::wait_or_start`]. At most `max_starting` start for a version at once, and no
    /// more than calls wait. A call starts one at once when nothing else will serve it (none
    /// running or starting), or when the calls in line would wait longer for the version's
    /// containers (its recent call time for each turn in line) than a start takes; else once
    /// no container of the version came back for as long as a start takes (the calls running
    /// may be slow or stuck), and never before the warm wait.
    fn claim_start(&self, key: FunctionKey, turnover: &mut Turnover) -> Claim {
        let now = tokio::time::Instant::now();
        let mut guard = self.state.lock().unwrap();
        let state = &mut *guard;
        let start_takes = state.start_time.max(self.settings.warm_wait);
        let call_takes = state.call_time.get(&key).copied().unwrap_or_default();
        let demand: &mut Demand = state.demand.entry(key).or_default();
        if demand.returned != turnover.returned {
            turnover.returned = demand.returned;
            turnover.since = now;
        }
        if demand.starting >= self.settings.max_starting.max(1).min(demand.waiting) {
            return Claim::No;
        }
        let serving = demand.running + demand.starting;
        let turns = demand.waiting.div_ceil(serving.max(1)) as u32;
        let line_is_long = serving > 0 && call_takes.saturating_mul(turns) > start_takes;
        let warm_until = turnover.since + self.settings.warm_wait;
        let patience_ends = turnover.since + start_takes;
        if serving == 0 || (line_is_long && now >= warm_until) || now >= patience_ends {
            demand.starting += 1;
            Claim::Start
        } else if line_is_long {
            Claim::NotBefore(warm_until)
        } else {
            Claim::NotBefore(patience_ends)
        }
    }

    /// Starts a container for a waiting call, in a task of its own so that it goes on when the
    /// call is served by another container (or gone): then it is kept idle.
    fn spawn_start(
        self: &Arc<Self>,
        spec: &FunctionSpec,
        memory_mb: u32,
        deadline: tokio::time::Instant,
    ) -> OwnStart<L::Container> {
        let (send, outcome) = oneshot::channel();
        let abandon = CancellationToken::new();
        let pool = self.clone();
        let spec = spec.clone();
        let abandoned = abandon.clone();
        let start = async move {
            let key = (spec.id, spec.version);
            let began = Instant::now();
            let ended = pool
                .cold_start(&spec, memory_mb, deadline, &abandoned)
                .await;
            if ended.is_ok() {
                pool.record_start(began.elapsed());
            }
            pool.uncount(key, |demand| &mut demand.starting);
            let sent = match ended {
                Ok(slot) => send.send(Ok(slot)),
                Err(Unstarted::Refused(why)) => send.send(Err(why)),
                Err(Unstarted::Abandoned) => Ok(()),
            };
            if let Err(Ok(slot)) = sent {
                pool.put_idle(slot);
            }
            // Calls waiting for the version may start one of their own now.
            pool.ledger.changed.notify_waiters();
        };
        tokio::spawn(tracing::Instrument::in_current_span(start));
        OwnStart {
            outcome,
            since: Instant::now(),
            _abandon: abandon.drop_guard(),
        }
    }

    /// A call served by another container gives up its own start: abandoned if it has not
    /// launched; if it has already ended in a container, that one is kept idle.
    fn give_up(&self, mut own: OwnStart<L::Container>) {
        own.outcome.close();
        if let Ok(Ok(slot)) = own.outcome.try_recv() {
            self.put_idle(slot);
        }
    }

    async fn cold_start(
        &self,
        spec: &FunctionSpec,
        memory_mb: u32,
        deadline: tokio::time::Instant,
        abandoned: &CancellationToken,
    ) -> Result<Slot<L::Container>, Unstarted> {
        // A stem cell cannot take a mount chosen later: a function with dependencies or a
        // package binds one that mounts its artifacts (kept for popular sets), else gets a
        // container of its own, once the artifacts are on this host.
        self.fetch_artifacts(spec, deadline).await?;
        if abandoned.is_cancelled() {
            return Err(Unstarted::Abandoned);
        }
        let mut slot = match self.take_stem(&StemKind::of(spec), memory_mb) {
            Some(stem) => stem,
            None => self.start_for(spec, memory_mb, deadline, abandoned).await?,
        };
        let init_deadline = deadline.min(tokio::time::Instant::now() + self.settings.init_timeout);
        slot.bind(
            (spec.id, spec.version),
            &Namespace::from(spec.namespace.as_str()),
        );
        let why = match slot.container.init(spec, init_deadline).await {
            InitOutcome::Ready => return Ok(slot),
            InitOutcome::Failed { error, logs } => NoContainer::InitFailed { error, logs },
            InitOutcome::TimedOut => NoContainer::InitTimedOut,
            InitOutcome::Broken(violation) => NoContainer::InitBroken(violation),
            InitOutcome::Died => return Err(NoContainer::InitDied(self.bury(slot).await).into()),
        };
        self.discard(slot);
        Err(why.into())
    }

    /// Makes the function's artifacts (dependencies, package) present on this host, unless
    /// they are over Lambda's 250 MB together.
    async fn fetch_artifacts(
        &self,
        spec: &FunctionSpec,
        deadline: tokio::time::Instant,
    ) -> Result<(), NoContainer> {
        let unpacked_bytes: u64 = [&spec.dependencies, &spec.package]
            .into_iter()
            .flatten()
            .map(|artifact| artifact.unpacked_bytes)
            .sum();
        if unpacked_bytes > MAX_UNPACKED_BYTES {
            return Err(NoContainer::CodeTooLarge { unpacked_bytes });
        }
        for (artifact, which) in [
            (&spec.dependencies, Artifact::Dependencies),
            (&spec.package, Artifact::Package),
        ] {
            let Some(artifact) = artifact else { continue };
            let fetched = tokio::time::timeout_at(deadline, self.launcher.fetch(artifact)).await;
            let what = which.as_str();
            let why = match fetched {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("the call's deadline passed while fetching its {what}"),
            };
            tracing::warn!(digest = %artifact.digest, %why, "{what} unavailable");
            return Err(NoContainer::Unavailable {
                artifact: which,
                why,
            });
        }
        Ok(())
    }

    /// Starts a container of its own for `spec`, once there is room and a start slot, unless
    /// the call is served by another container first. Waiting for room is bounded by the room
    /// wait (then the call can go back to the queue) and by `deadline`.
    async fn start_for(
        &self,
        spec: &FunctionSpec,
        memory_mb: u32,
        deadline: tokio::time::Instant,
        abandoned: &CancellationToken,
    ) -> Result<Slot<L::Container>, Unstarted> {
        let until = deadline.min(tokio::time::Instant::now() + self.settings.room_wait);
        let namespace = Namespace::from(spec.namespace.as_str());
        let reserved = tokio::select! {
            biased;
            () = abandoned.cancelled() => return Err(Unstarted::Abandoned),
            room = self.reserve(memory_mb, &namespace, until) => room,
        };
        let Some(room) = reserved else {
            if tokio::time::Instant::now() < deadline {
                tracing::debug!(
                    memory_mb,
                    "no room for the job; giving it back to the queue"
                );
                return Err(NoContainer::NoRoom.into());
            }
            return Err(NoContainer::NoRoomInTime.into());
        };
        let permit = tokio::select! {
            biased;
            () = abandoned.cancelled() => return Err(Unstarted::Abandoned),
            () = tokio::time::sleep_until(deadline) => return Err(NoContainer::StartTooSlow.into()),
            permit = self.starting.acquire() => permit.expect("the semaphore is never closed"),
        };
        let mounts = Mounts::of(spec);
        let start = self.launch_in(permit, spec.language, memory_mb, Some(spec), &mounts, room);
        let started = tokio::time::timeout_at(deadline, start)
            .await
            .map_err(|_| NoContainer::StartTooSlow)?;
        started.map_err(|error| {
            metrics::counter!("faas_docker_errors_total").increment(1);
            tracing::error!(%error, "cannot start a container");
            NoContainer::StartFailed(error).into()
        })
    }

    /// Removes a container that stopped answering, once the launcher has said how it died.
    async fn bury(&self, mut slot: Slot<L::Container>) -> Death {
        let death = self
            .launcher
            .autopsy(&mut slot.container, slot.memory_mb)
            .await;
        self.discard(slot);
        death
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::fake::{FakeLauncher, settings, settle, spec};
    use crate::pool::{Pooled, STEM_KEY};
    use common::{Language, raw_null};
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;

    fn later() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn a_containers_health_after_each_way_a_call_ends() {
        let error = || ErrorInfo::new("E", "m");
        let table = [
            (
                CallOutcome::Returned {
                    result: raw_null(),
                    logs: String::new(),
                    logs_truncated: false,
                },
                Health::Sound,
            ),
            (
                CallOutcome::Raised {
                    error: error(),
                    logs: String::new(),
                    logs_truncated: false,
                },
                Health::Sound,
            ),
            (
                CallOutcome::TooLarge {
                    error: error(),
                    sound: true,
                },
                Health::Sound,
            ),
            (
                CallOutcome::TooLarge {
                    error: error(),
                    sound: false,
                },
                Health::Unsound,
            ),
            (CallOutcome::TimedOut, Health::Unsound),
            (CallOutcome::Broken(Violation::Unrequested), Health::Unsound),
            (CallOutcome::Died, Health::Died),
        ];
        for (call, health) in table {
            assert_eq!(Health::after_call(&call), health, "{call:?}");
        }
    }

    #[tokio::test]
    async fn a_release_keeps_a_sound_container_warm_and_removes_any_other() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(1024)));
        let f = spec(1, 1, 128);
        let oom = Death::OutOfMemory(ErrorInfo::new("Runtime.OutOfMemory", "over"));
        pool.launcher().next_death(oom.clone());
        for (health, kept, death) in [
            (Health::Sound, true, None),
            (Health::Unsound, false, None),
            (Health::Died, false, Some(oom)),
        ] {
            let mut lease = pool.acquire(&f, 128, later()).await.expect("a container");
            let id = lease.container().id().to_owned();
            assert_eq!(lease.release(health).await, death, "{health:?}");
            settle().await;
            assert_eq!(pool.idle_count(), usize::from(kept), "{health:?}");
            assert_eq!(pool.launcher().removed().contains(&id), !kept, "{health:?}");
            assert_eq!(pool.live_ids().contains(&id), kept, "{health:?}");
            assert_eq!(pool.memory_used_mb(), if kept { 128 } else { 0 });
        }
    }

    #[tokio::test]
    async fn a_sound_container_of_a_retired_version_is_removed_all_the_same() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(1024)));
        let lease = pool.acquire(&spec(1, 1, 128), 128, later()).await.unwrap();
        pool.retire(1, Some(2));
        assert_eq!(lease.release(Health::Sound).await, None);
        settle().await;
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(pool.launcher().removed().len(), 1);
    }

    #[tokio::test]
    async fn acquire_takes_a_warm_container_before_starting_one() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(1024)));
        let f = spec(1, 1, 128);
        let mut cold = pool.acquire(&f, 128, later()).await.unwrap();
        let id = cold.container().id().to_owned();
        assert!(cold.acquisition().cold_start.is_some());
        assert_eq!(pool.launcher().init_count(), 1, "its code was loaded");
        cold.release(Health::Sound).await;

        let mut warm = pool.acquire(&f, 128, later()).await.unwrap();
        assert_eq!(warm.container().id(), id);
        assert_eq!(warm.acquisition().cold_start, None);
        assert_eq!(pool.launcher().init_count(), 1, "no second init");
        // Another version, or another function, starts its own.
        let mut other = pool.acquire(&spec(2, 1, 128), 128, later()).await.unwrap();
        assert_ne!(other.container().id(), id);
        drop((warm, other));
    }

    #[tokio::test]
    async fn a_cold_start_binds_a_ready_stem_cell() {
        let mut with_stems = settings(1024);
        with_stems.stem_cells = 1;
        let pool = Arc::new(Pool::new(FakeLauncher::default(), with_stems));
        let stop = CancellationToken::new();
        let filler = tokio::spawn(pool.clone().keep_stem_cells(stop.clone()));
        for _ in 0..200 {
            if pool.stem_count(Language::Python) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stem = pool.stem_ids(&StemKind::plain(Language::Python));
        assert_eq!(stem.len(), 1);
        let mut lease = pool.acquire(&spec(7, 1, 128), 128, later()).await.unwrap();
        assert_eq!(lease.container().id(), stem[0]);
        assert!(lease.acquisition().cold_start.is_some());
        assert_ne!(lease.slot.key(), STEM_KEY, "bound to its function");
        lease.release(Health::Sound).await;
        let mut again = pool.acquire(&spec(7, 1, 128), 128, later()).await.unwrap();
        assert_eq!(again.container().id(), stem[0], "warm for its function now");
        stop.cancel();
        filler.await.unwrap();
        drop(again);
    }

    #[tokio::test]
    async fn a_cold_start_fetches_the_artifacts_first_and_refuses_what_it_cannot_have() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(1024)));
        let artifact = |digest: &str, unpacked_bytes| common::ArtifactRef {
            digest: digest.to_owned(),
            unpacked_bytes,
        };
        let mut with_deps = spec(1, 1, 128);
        with_deps.dependencies = Some(artifact("aa", 10));
        let mut lease = pool.acquire(&with_deps, 128, later()).await.unwrap();
        assert_eq!(pool.launcher().fetched(), vec!["aa".to_owned()]);
        assert!(lease.container().id().contains("deps-aa"), "it mounts them");
        lease.release(Health::Sound).await;

        let mut missing = spec(2, 1, 128);
        missing.package = Some(artifact("bb", 10));
        pool.launcher().make_unavailable("bb");
        let refused = pool.acquire(&missing, 128, later()).await.err().unwrap();
        assert!(
            matches!(
                &refused.why,
                NoContainer::Unavailable { artifact: Artifact::Package, why } if why.contains("scripted")
            ),
            "{refused:?}"
        );
        assert!(refused.acquisition.cold_start.is_some());

        let mut huge = spec(3, 1, 128);
        huge.package = Some(artifact("cc", MAX_UNPACKED_BYTES));
        huge.dependencies = Some(artifact("dd", 1));
        let refused = pool.acquire(&huge, 128, later()).await.err().unwrap();
        assert!(matches!(
            refused.why,
            NoContainer::CodeTooLarge { unpacked_bytes } if unpacked_bytes == MAX_UNPACKED_BYTES + 1
        ));
        assert_eq!(pool.live_ids().len(), 1, "nothing was started for them");
    }

    #[tokio::test]
    async fn without_room_a_call_is_refused_for_later_or_for_good_by_its_deadline() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(128)));
        let busy = pool.acquire(&spec(1, 1, 128), 128, later()).await.unwrap();
        let refused = pool
            .acquire(&spec(2, 1, 128), 128, later())
            .await
            .err()
            .unwrap();
        assert!(matches!(refused.why, NoContainer::NoRoom), "{refused:?}");
        let soon = tokio::time::Instant::now() + Duration::from_millis(30);
        let refused = pool
            .acquire(&spec(2, 1, 128), 128, soon)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(refused.why, NoContainer::NoRoomInTime),
            "{refused:?}"
        );
        drop(busy);

        pool.launcher().break_starts();
        let refused = pool
            .acquire(&spec(2, 1, 128), 128, later())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(refused.why, NoContainer::StartFailed(_)),
            "{refused:?}"
        );
        assert_eq!(pool.memory_used_mb(), 0, "a failed start holds no room");
    }

    #[tokio::test]
    async fn a_container_whose_code_did_not_load_is_removed() {
        let pool = Arc::new(Pool::new(FakeLauncher::default(), settings(1024)));
        let launcher = pool.launcher();
        launcher.next_init(InitOutcome::Failed {
            error: ErrorInfo::new("SyntaxError", "bad"),
            logs: "trace".into(),
        });
        launcher.next_init(InitOutcome::TimedOut);
        launcher.next_init(InitOutcome::Broken(Violation::Unrequested));
        launcher.next_init(InitOutcome::Died);
        let oom = Death::OutOfMemory(ErrorInfo::new("Runtime.OutOfMemory", "over"));
        launcher.next_death(oom.clone());
        let mut refusals = Vec::new();
        for _ in 0..4 {
            refusals.push(
                pool.acquire(&spec(1, 1, 128), 128, later())
                    .await
                    .err()
                    .unwrap()
                    .why,
            );
        }
        assert!(matches!(&refusals[0], NoContainer::InitFailed { logs, .. } if logs == "trace"));
        assert!(matches!(refusals[1], NoContainer::InitTimedOut));
        assert!(matches!(
            refusals[2],
            NoContainer::InitBroken(Violation::Unrequested)
        ));
        assert!(matches!(&refusals[3], NoContainer::InitDied(death) if *death == oom));
        settle().await;
        assert_eq!(launcher.removed().len(), 4);
        assert!(pool.live_ids().is_empty());
        assert_eq!(pool.memory_used_mb(), 0);
    }
}
