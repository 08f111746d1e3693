//! The report's tables that are no one scenario's: the memory of the platform's processes, the
//! CPU of the measured phases, the worker pool, the errors, the server-side breakdown and the
//! targets. The scenarios give the rows' contents (`Section`); the frame writes them here.

use super::{Results, RuntimeResults, Status, TargetCheck};
use crate::config::Runtime;
use crate::cpu::CpuUsage;
use crate::section::{cell, p50_p99};
use crate::stats::CallStats;
use std::fmt::Write;

fn mb(kb: Option<u64>) -> String {
    kb.map_or("-".to_owned(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

/// Each process's memory at the end, and its resident set at the start.
pub(super) fn memory(w: &mut String, results: &Results) {
    let _ = writeln!(
        w,
        "## Memory of the platform's processes (MB)\n\n| process | pid | peak (VmHWM) | now \
         (VmRSS) | at start (VmRSS) |\n| --- | --: | --: | --: | --: |"
    );
    for m in &results.memory_at_end {
        let start = results
            .memory_at_start
            .iter()
            .find(|s| s.process.pid == m.process.pid)
            .and_then(|s| s.vm_rss_kb);
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            m.process.label(),
            m.process.pid,
            mb(m.vm_hwm_kb),
            mb(m.vm_rss_kb),
            mb(start)
        );
    }
    if results.memory_at_end.is_empty() {
        let _ = writeln!(w, "| (no api or worker process found) | | | | |");
    }
    let _ = writeln!(w);
}

/// Cores in use during the measured phases, per process; nothing when no phase was measured.
pub(super) fn cpu(w: &mut String, nproc: usize, phases: &[(&str, Runtime, &CpuUsage)]) {
    if phases.is_empty() {
        return;
    }
    let mut names: Vec<String> = Vec::new();
    for (_, _, cpu) in phases {
        for p in &cpu.processes {
            if !names.contains(&p.name) {
                names.push(p.name.clone());
            }
        }
    }
    let services: Vec<String> = phases
        .first()
        .map(|(_, _, cpu)| cpu.services.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let cores = |value: Option<f64>| value.map_or("-".to_owned(), |c| format!("{c:.2}"));
    let _ = writeln!(
        w,
        "## CPU during the measured calls (cores busy; the machine has {nproc})\n"
    );
    let columns: Vec<String> = names
        .iter()
        .cloned()
        .chain(["bench client".to_owned(), "containers".to_owned()])
        .chain(services.iter().cloned())
        .chain(["rest".to_owned()])
        .collect();
    let _ = writeln!(
        w,
        "| scenario | runtime | machine | {} |\n| --- | --- | --: |{}",
        columns.join(" | "),
        " --: |".repeat(columns.len())
    );
    for (scenario, runtime, cpu) in phases {
        let mut cells: Vec<String> = names
            .iter()
            .map(|name| {
                cores(
                    cpu.processes
                        .iter()
                        .filter(|p| &p.name == name)
                        .map(|p| p.cores)
                        .reduce(|a, b| a + b),
                )
            })
            .collect();
        cells.push(cores(cpu.bench_cores));
        cells.push(cores(cpu.containers_cores));
        for service in &services {
            cells.push(cores(
                cpu.services
                    .iter()
                    .find(|s| &s.name == service)
                    .map(|s| s.cores),
            ));
        }
        cells.push(cores(cpu.rest_cores));
        let _ = writeln!(
            w,
            "| {scenario} | {} | {} | {} |",
            runtime.as_str(),
            cores(cpu.machine_cores),
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        w,
        "\n`containers` is every Docker container on the machine; `rest` is the machine minus \
         the columns before it (other work on the machine, the kernel's own threads).\n"
    );
}

/// The workers' containers after each scenario, and the evictions, affinity hits (jobs their
/// function's home worker took) and pool hits (calls that found a container of their function)
/// during it.
pub(super) fn pool(w: &mut String, runtimes: &[RuntimeResults]) {
    if runtimes.iter().all(|r| r.pool.is_empty()) {
        return;
    }
    let n = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.0}"));
    let percent =
        |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    let _ = writeln!(
        w,
        "## Worker pool (from the workers' metrics)\n\n| scenario | runtime | warm after | \
         prewarmed after | busy after | evictions during | affinity hits | pool hits |\n\
         | --- | --- | --: | --: | --: | --: | --: | --: |"
    );
    for r in runtimes {
        for change in &r.pool {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                change.scenario,
                r.runtime.as_str(),
                n(change.after.warm),
                n(change.after.prewarmed),
                n(change.after.busy),
                n(change.evictions()),
                percent(change.home_share()),
                percent(change.pool_hit_rate())
            );
        }
    }
    let _ = writeln!(
        w,
        "\nAffinity hits: the jobs taken from their function's home worker's queue, of all \
         taken; pool hits: the calls that found a container of their function (idle, or freed \
         while they waited), of all that asked for one.\n"
    );
}

/// The error table's line of a scenario that could not run.
pub(super) fn failure_row(runtime: Runtime, failure: &str) -> String {
    format!(
        "| scenario failed | {} | | | | {} |",
        runtime.as_str(),
        cell(failure)
    )
}

/// The error table's line of something the clean-up could not delete or revoke.
pub(super) fn cleanup_row(failure: &str) -> String {
    format!("| clean-up | | | | | {failure} |")
}

/// Every failed call and scenario, grouped (`lines` are the table's rows).
pub(super) fn errors(w: &mut String, lines: &[String]) {
    let _ = writeln!(w, "## Errors\n");
    if lines.is_empty() {
        let _ = writeln!(w, "None.\n");
        return;
    }
    let _ = writeln!(
        w,
        "| scenario | runtime | status | code | count | first detail |\n| --- | --- | --: | --- | \
         --: | --- |"
    );
    for line in lines {
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w);
}

/// The api's `duration_ms` and, when the answers carry it, its `timing` breakdown.
pub(super) fn server_side(w: &mut String, calls: &[(&str, Runtime, &CallStats)]) {
    let _ = writeln!(
        w,
        "## Server-side breakdown of successful calls (p50 / p99 ms)\n\n| scenario | runtime | \
         client | api `duration_ms` | `queue_ms` | `init_ms` | `run_ms` |\n| --- | --- | --: | \
         --: | --: | --: | --: |"
    );
    for (name, runtime, st) in calls {
        let timing = st.timing.as_ref();
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            runtime.as_str(),
            p50_p99(st.latency_ms.as_ref()),
            p50_p99(st.server_duration_ms.as_ref()),
            p50_p99(timing.and_then(|t| t.queue_ms.as_ref())),
            p50_p99(timing.and_then(|t| t.init_ms.as_ref())),
            p50_p99(timing.and_then(|t| t.run_ms.as_ref())),
        );
    }
    let _ = writeln!(w);
}

/// The targets that were measured.
pub(super) fn targets(w: &mut String, targets: &[TargetCheck]) {
    let _ = writeln!(
        w,
        "## Targets\n\n| subject | what | target | measured | |\n| --- | --- | --- | --: | --- |"
    );
    for t in targets.iter().filter(|t| t.status != Status::NotMeasured) {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            t.subject,
            t.what,
            t.target,
            t.measured,
            t.status.word()
        );
    }
}
