//! The results of a run, the targets checked against them, and the markdown report
//! printed on stdout (the JSON is the same structure, serialized). Each scenario renders its
//! own section through [`Section`], beside its own results; this is the frame: the header, the
//! order of the sections, and the tables every scenario adds to (`tables`: memory, CPU, the
//! worker pool, errors, the server-side breakdown, targets).

mod tables;

pub use crate::section::{Status, TargetCheck};

use crate::async_calls::{AsyncResult, AsyncSection};
use crate::auth::{AuthResult, AuthSection};
use crate::burst::{BurstResult, BurstSection};
use crate::config::{Config, Runtime};
use crate::cpu::CpuUsage;
use crate::deps::{DepsResult, DepsSection};
use crate::followers::{FollowersResult, FollowersSection};
use crate::http::{HttpResult, HttpSection};
use crate::machine::Machine;
use crate::naive::{NaiveResult, NaiveSection};
use crate::noisy::{NoisyResult, NoisySection};
use crate::pool::PoolChange;
use crate::procs::Memory;
use crate::scenarios::{
    ColdResult, ColdSection, LoadResult, RoundRobinSection, ThroughputSection, WarmResult,
    WarmSection,
};
use crate::section::{Section, not_measured};
use crate::stats::CallStats;
use serde::Serialize;
use std::fmt::Write;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub settings: Config,
    /// Part of every function name the run created.
    pub run_id: String,
    /// Ctrl-C stopped the run early.
    pub interrupted: bool,
    pub runtimes: Vec<RuntimeResults>,
    pub memory_at_start: Vec<Memory>,
    pub memory_at_end: Vec<Memory>,
    pub targets: Vec<TargetCheck>,
    pub cleanup: Cleanup,
}

/// The scenarios of one runtime; `None` when not run.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeResults {
    pub runtime: Runtime,
    pub warm: Option<WarmResult>,
    pub throughput: Option<LoadResult>,
    pub cold: Option<ColdResult>,
    pub round_robin: Option<LoadResult>,
    pub naive: Option<NaiveResult>,
    pub noisy_neighbour: Option<NoisyResult>,
    /// Scenario 7: only on the first runtime of `--runtimes`.
    pub auth_overhead: Option<AuthResult>,
    /// Scenario 8: only on the first runtime of `--runtimes`.
    pub http_trigger: Option<HttpResult>,
    /// Scenario 9: only on docker.
    pub dependencies: Option<DepsResult>,
    /// Scenario 10: only on docker.
    pub async_invocations: Option<AsyncResult>,
    /// Scenario 11: only on the first runtime of `--runtimes`.
    pub followers: Option<FollowersResult>,
    /// Scenario 12.
    pub burst: Option<BurstResult>,
    /// The worker pool around each scenario (with `--worker-metrics-url`).
    pub pool: Vec<PoolChange>,
    /// Scenarios that could not run, and why.
    pub failures: Vec<String>,
}

impl RuntimeResults {
    /// Nothing measured yet.
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            warm: None,
            throughput: None,
            cold: None,
            round_robin: None,
            naive: None,
            noisy_neighbour: None,
            auth_overhead: None,
            http_trigger: None,
            dependencies: None,
            async_invocations: None,
            followers: None,
            burst: None,
            pool: Vec::new(),
            failures: Vec::new(),
        }
    }
}

/// What the clean-up deleted and revoked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    pub kept: bool,
    pub deleted: usize,
    /// Keys the run made (scenario 7), revoked even with `--keep`.
    pub keys_revoked: usize,
    pub failures: Vec<String>,
}

/// A scenario's section, and where a runtime's results keep what it renders.
struct Placed<S: Section> {
    section: S,
    result: for<'r> fn(&'r RuntimeResults) -> Option<&'r S::Result>,
}

/// What the frame asks of a scenario's section, whatever its results are.
trait Part: Sync {
    fn settings(&self, settings: &Config) -> Option<String>;
    fn once_per_run(&self) -> bool;
    /// `None` when no runtime ran the scenario.
    fn markdown(&self, results: &Results) -> Option<String>;
    fn cpu<'r>(&self, runtime: &'r RuntimeResults) -> Vec<(&'static str, &'r CpuUsage)>;
    fn errors(&self, runtime: &RuntimeResults) -> Vec<String>;
    fn server_side<'r>(&self, runtime: &'r RuntimeResults) -> Vec<(&'static str, &'r CallStats)>;
    fn targets(&self, runtime: &RuntimeResults, concurrency: usize) -> Vec<TargetCheck>;
}

impl<S: Section + Sync> Part for Placed<S> {
    fn settings(&self, settings: &Config) -> Option<String> {
        self.section.settings(settings)
    }

    fn once_per_run(&self) -> bool {
        S::ONCE_PER_RUN
    }

    fn markdown(&self, results: &Results) -> Option<String> {
        let runs: Vec<(Runtime, &S::Result)> = results
            .runtimes
            .iter()
            .filter_map(|r| Some((r.runtime, (self.result)(r)?)))
            .collect();
        (!runs.is_empty()).then(|| self.section.markdown(&runs, &results.settings))
    }

    fn cpu<'r>(&self, runtime: &'r RuntimeResults) -> Vec<(&'static str, &'r CpuUsage)> {
        (self.result)(runtime).map_or_else(Vec::new, |result| self.section.cpu(result))
    }

    fn errors(&self, runtime: &RuntimeResults) -> Vec<String> {
        (self.result)(runtime).map_or_else(Vec::new, |result| {
            self.section.errors(runtime.runtime, result)
        })
    }

    fn server_side<'r>(&self, runtime: &'r RuntimeResults) -> Vec<(&'static str, &'r CallStats)> {
        (self.result)(runtime).map_or_else(Vec::new, |result| self.section.server_side(result))
    }

    fn targets(&self, runtime: &RuntimeResults, concurrency: usize) -> Vec<TargetCheck> {
        self.section
            .targets(runtime.runtime, (self.result)(runtime), concurrency)
    }
}

/// The scenarios' sections, in the report's order.
static SECTIONS: [&dyn Part; 12] = [
    &Placed {
        section: WarmSection,
        result: |r| r.warm.as_ref(),
    },
    &Placed {
        section: ThroughputSection,
        result: |r| r.throughput.as_ref(),
    },
    &Placed {
        section: ColdSection,
        result: |r| r.cold.as_ref(),
    },
    &Placed {
        section: RoundRobinSection,
        result: |r| r.round_robin.as_ref(),
    },
    &Placed {
        section: NaiveSection,
        result: |r| r.naive.as_ref(),
    },
    &Placed {
        section: NoisySection,
        result: |r| r.noisy_neighbour.as_ref(),
    },
    &Placed {
        section: AuthSection,
        result: |r| r.auth_overhead.as_ref(),
    },
    &Placed {
        section: HttpSection,
        result: |r| r.http_trigger.as_ref(),
    },
    &Placed {
        section: DepsSection,
        result: |r| r.dependencies.as_ref(),
    },
    &Placed {
        section: AsyncSection,
        result: |r| r.async_invocations.as_ref(),
    },
    &Placed {
        section: FollowersSection,
        result: |r| r.followers.as_ref(),
    },
    &Placed {
        section: BurstSection,
        result: |r| r.burst.as_ref(),
    },
];

/// Checks the targets: every runtime's, listed even when not measured, then those of
/// the scenarios that run once per run, where they ran; then the memory of each process.
pub fn check_targets(
    runtimes: &[RuntimeResults],
    memory: &[Memory],
    concurrency: usize,
) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    for once in [false, true] {
        for r in runtimes {
            for part in SECTIONS.iter().filter(|p| p.once_per_run() == once) {
                checks.extend(part.targets(r, concurrency));
            }
        }
    }
    for m in memory {
        let subject = m.process.label();
        checks.push(match m.vm_hwm_kb {
            Some(kb) => TargetCheck {
                subject,
                what: "peak RSS (VmHWM)".to_owned(),
                target: "≤ 64 MB".to_owned(),
                measured: format!("{:.1} MB", kb as f64 / 1024.0),
                status: Status::of(kb <= 64 * 1024),
            },
            None => not_measured(&subject, "peak RSS (VmHWM)", "≤ 64 MB"),
        });
    }
    checks
}

/// The report printed on stdout.
pub fn markdown(results: &Results) -> String {
    let s = &results.settings;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmark\n");
    let _ = writeln!(w, "Machine: {}\n", results.machine.line());
    let settings: Vec<String> = SECTIONS.iter().filter_map(|p| p.settings(s)).collect();
    let _ = writeln!(
        w,
        "api {}, run {}; {}.{}\n",
        s.api_url,
        results.run_id,
        settings.join("; "),
        if results.interrupted {
            " **Interrupted (Ctrl-C): partial results.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "Latencies are client-measured over successful calls (200 with the handler's result), \
         in ms; errors are calls that answered anything else.\n"
    );
    for part in SECTIONS {
        if let Some(section) = part.markdown(results) {
            w.push_str(&section);
        }
    }

    tables::memory(w, results);
    let phases: Vec<(&str, Runtime, &CpuUsage)> = results
        .runtimes
        .iter()
        .flat_map(|r| {
            SECTIONS
                .iter()
                .flat_map(|p| p.cpu(r))
                .map(|(phase, cpu)| (phase, r.runtime, cpu))
        })
        .collect();
    tables::cpu(w, results.machine.nproc, &phases);
    tables::pool(w, &results.runtimes);
    let mut errors = Vec::new();
    for r in &results.runtimes {
        errors.extend(SECTIONS.iter().flat_map(|p| p.errors(r)));
        errors.extend(r.failures.iter().map(|f| tables::failure_row(r.runtime, f)));
    }
    errors.extend(
        results
            .cleanup
            .failures
            .iter()
            .map(|f| tables::cleanup_row(f)),
    );
    tables::errors(w, &errors);
    if s.verbose {
        let calls: Vec<(&str, Runtime, &CallStats)> = results
            .runtimes
            .iter()
            .flat_map(|r| {
                SECTIONS
                    .iter()
                    .flat_map(|p| p.server_side(r))
                    .map(|(name, stats)| (name, r.runtime, stats))
            })
            .collect();
        tables::server_side(w, &calls);
    }
    tables::targets(w, &results.targets);
    out
}

#[cfg(test)]
mod snapshot;
#[cfg(test)]
mod snapshot_async;

#[cfg(test)]
mod tests;
