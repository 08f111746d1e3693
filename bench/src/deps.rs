//! Scenario 9: functions with dependencies, once per run, on docker. It expects the docker
//! worker to build nothing (`BUILDS=false`) and another worker (`bench/run.sh`: the gvisor one)
//! to build, so that every fresh artifact is missing from the docker worker's cache until its
//! first call fetches it from the api.
//!
//! 1. Builds: four dependency sets (Python and JavaScript, small and medium), each made unique
//!    to the run (builds are shared by exact text), created with `?wait=true`: the wall clock
//!    of that request and the build's own `started_at` → `finished_at`.
//! 2. First calls: for each of `--deps-cold-samples` fresh texts (`six`), the first call of a
//!    function using it (not cached: fetched), of a second function with the same text (the
//!    artifact cached), of a third one (the set is popular by then: a stem cell mounts it), and
//!    of one without dependencies (stem cells as the worker has them).
//!    All three run the benchmark handler, which imports nothing.
//!    Then, per sample, the first call of a function deployed as a fresh `.zip` package
//!    (`code_zip`: the benchmark handler in `main.py` beside a helper module), the package not
//!    in the worker's cache (fetched), and of a second function with the same package (cached).
//! 3. Warm calls: one function with dependencies and the same without, alternating.
//!
//! The scenario's section of the report is here too.

use crate::client::{HANDLER, Target};
use crate::config::{Config, Runtime};
use crate::scenarios::Ctx;
use crate::section::{Section, ms};
use crate::stats::{Summary, summarize};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The runtime scenario 9 runs on.
pub const RUNTIME: Runtime = Runtime::Docker;

const JS_HANDLER: &str = "exports.handler = async () => ({ ok: true });";

/// One dependency set of the build measurement.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSample {
    /// `python small`, `javascript medium`, …
    pub set: String,
    /// The packages, as asked for.
    pub packages: String,
    /// `ready` or `failed`.
    pub status: String,
    /// `POST /functions/?wait=true`, sent to answered.
    pub wall_s: f64,
    /// The build's `finished_at` - `started_at`.
    pub build_s: Option<f64>,
    pub size_bytes: Option<i64>,
}

/// First calls of fresh functions.
#[derive(Debug, Clone, Serialize)]
pub struct FirstCalls {
    /// With dependencies, the artifact not in the worker's cache.
    pub uncached_ms: Vec<f64>,
    /// With dependencies, the artifact in the worker's cache.
    pub cached_ms: Vec<f64>,
    /// With dependencies, a third function of the set: the two before made it popular, so the
    /// worker keeps a stem cell with it mounted (`DEPS_STEM_CELLS`).
    pub stem_ms: Vec<f64>,
    /// Without dependencies.
    pub plain_ms: Vec<f64>,
    /// A deployment package (`code_zip`), not in the worker's cache (fetched).
    pub package_uncached_ms: Vec<f64>,
    /// A deployment package, in the worker's cache.
    pub package_cached_ms: Vec<f64>,
    /// How many of the first calls without dependencies the api reported as cold starts.
    pub plain_cold_starts: usize,
    /// Calls that did not answer `{"ok": true}`, with why.
    pub errors: Vec<String>,
    pub uncached: Option<Summary>,
    pub cached: Option<Summary>,
    pub stem: Option<Summary>,
    pub plain: Option<Summary>,
    pub package_uncached: Option<Summary>,
    pub package_cached: Option<Summary>,
}

/// Scenario 9.
#[derive(Debug, Clone, Serialize)]
pub struct DepsResult {
    pub builds: Vec<BuildSample>,
    pub first_calls: FirstCalls,
    /// Warm calls of the function with dependencies.
    pub warm_with: Option<Summary>,
    /// Warm calls of the same function without.
    pub warm_without: Option<Summary>,
    pub warm_errors: usize,
}

/// The requirements.txt of a small Python set (`medium`: requests), unique to `tag`.
pub fn python_requirements(tag: &str, medium: bool) -> String {
    let package = if medium {
        "requests==2.32.3"
    } else {
        "six==1.16.0"
    };
    format!("# run {tag}\n{package}\n")
}

/// The package.json of a small JavaScript set (`medium`: axios, lodash, uuid), unique to
/// `tag` through its name.
pub fn package_json(tag: &str, medium: bool) -> String {
    let dependencies = if medium {
        json!({"axios": "1.7.7", "lodash": "4.17.21", "uuid": "10.0.0"})
    } else {
        json!({"is-number": "7.0.0"})
    };
    json!({"name": format!("bench-{tag}"), "dependencies": dependencies}).to_string()
}

/// A base64 `.zip` package unique to `tag`: the benchmark handler in `main.py`, which imports a
/// helper module beside it.
pub fn package_zip(tag: &str) -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let files = [
        ("main.py", format!("import helper\n{HANDLER}\n")),
        ("helper.py", format!("TAG = {tag:?}\n")),
    ];
    for (name, text) in files {
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .expect("a zip in memory takes a file");
        writer
            .write_all(text.as_bytes())
            .expect("a zip in memory takes bytes");
    }
    let bytes = writer
        .finish()
        .expect("a zip in memory finishes")
        .into_inner();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn body(name: &str, language: &str, code: &str, dependencies: Option<&str>, timeout: u32) -> Value {
    let mut body = json!({
        "name": name,
        "route": format!("/{name}"),
        "language": language,
        "code": code,
        "timeout": timeout,
        "runtime": RUNTIME.as_str(),
    });
    if let Some(dependencies) = dependencies {
        body["dependencies"] = json!(dependencies);
    }
    body
}

/// Seconds from `started_at` to `finished_at` of a build.
fn build_seconds(build: &Value) -> Option<f64> {
    let time = |key: &str| {
        build[key]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let (start, end) = (time("started_at")?, time("finished_at")?);
    Some((end - start).num_milliseconds() as f64 / 1000.0)
}

impl Ctx<'_> {
    /// Creates (and records) a function from `body`, waiting for its build; its build object.
    async fn create_built(&self, body: &Value) -> anyhow::Result<(Value, f64)> {
        let started = Instant::now();
        let (function, answer) = self.api.create_function_json(body, true).await?;
        let wall_s = started.elapsed().as_secs_f64();
        self.record_created(&function);
        Ok((answer["build"].clone(), wall_s))
    }

    fn tag(&self, what: &str) -> String {
        format!("{}{what}", self.name_stem)
    }
}

/// Runs scenario 9.
pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<DepsResult> {
    let config = ctx.config;
    let timeout = config.function_timeout_secs;
    ctx.progress(
        RUNTIME,
        &format!(
            "9. dependencies: 4 builds, {} x 3 first calls, 2 x {} warm calls",
            config.deps_cold_samples, config.deps_warm_calls
        ),
    );

    // 1. Builds.
    let mut builds = Vec::new();
    for (set, language, medium) in [
        ("python small", "python", false),
        ("python medium", "python", true),
        ("javascript small", "javascript", false),
        ("javascript medium", "javascript", true),
    ] {
        let what = format!("build-{}", set.replace(' ', "-"));
        let (dependencies, code, packages) = if language == "python" {
            let text = python_requirements(&ctx.tag(&what), medium);
            let packages = text.lines().skip(1).collect::<Vec<_>>().join(" ");
            (text, HANDLER, packages)
        } else {
            let text = package_json(&ctx.tag(&what), medium);
            let value: Value = serde_json::from_str(&text)?;
            let packages = value["dependencies"]
                .as_object()
                .map(|d| {
                    d.iter()
                        .map(|(k, v)| format!("{k}@{}", v.as_str().unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            (text, JS_HANDLER, packages)
        };
        let name = ctx.name(RUNTIME, &what);
        let (build, wall_s) = ctx
            .create_built(&body(&name, language, code, Some(&dependencies), timeout))
            .await
            .with_context(|| format!("build of {set}"))?;
        let sample = BuildSample {
            set: set.to_owned(),
            packages,
            status: build["status"].as_str().unwrap_or("?").to_owned(),
            wall_s,
            build_s: build_seconds(&build),
            size_bytes: build["size_bytes"].as_i64(),
        };
        ctx.progress(
            RUNTIME,
            &format!(
                "  build {set}: {} in {wall_s:.1} s (build {})",
                sample.status,
                sample
                    .build_s
                    .map_or("-".to_owned(), |s| format!("{s:.1} s"))
            ),
        );
        builds.push(sample);
    }
    if builds[0].status != "ready" {
        bail!("the small Python build did not succeed: {:?}", builds[0]);
    }

    // 2. First calls: not cached, cached, without dependencies, per fresh text.
    let settle = Duration::from_secs_f64(config.warm_settle_secs);
    let mut first = FirstCalls {
        uncached_ms: Vec::new(),
        cached_ms: Vec::new(),
        stem_ms: Vec::new(),
        plain_ms: Vec::new(),
        plain_cold_starts: 0,
        errors: Vec::new(),
        uncached: None,
        cached: None,
        stem: None,
        plain: None,
        package_uncached_ms: Vec::new(),
        package_cached_ms: Vec::new(),
        package_uncached: None,
        package_cached: None,
    };
    for i in 0..config.deps_cold_samples {
        let text = python_requirements(&ctx.tag(&format!("cold-{i}")), false);
        let fetch = ctx.name(RUNTIME, &format!("deps-fetch-{i:02}"));
        let (build, _) = ctx
            .create_built(&body(&fetch, "python", HANDLER, Some(&text), timeout))
            .await?;
        if build["status"] != "ready" {
            first.errors.push(format!("build {i}: {build}"));
            continue;
        }
        let cached = ctx.name(RUNTIME, &format!("deps-cached-{i:02}"));
        ctx.create_built(&body(&cached, "python", HANDLER, Some(&text), timeout))
            .await?;
        let stem = ctx.name(RUNTIME, &format!("deps-stem-{i:02}"));
        ctx.create_built(&body(&stem, "python", HANDLER, Some(&text), timeout))
            .await?;
        let plain = ctx.name(RUNTIME, &format!("deps-plain-{i:02}"));
        ctx.create(&plain, RUNTIME).await?;
        for (name, out) in [
            (&fetch, &mut first.uncached_ms),
            (&cached, &mut first.cached_ms),
            (&stem, &mut first.stem_ms),
            (&plain, &mut first.plain_ms),
        ] {
            tokio::time::sleep(settle).await;
            if *name == stem {
                // Time for the set's stem cell, asked for by the second cold start, to start.
                tokio::time::sleep(STEM_CELL_START).await;
            }
            let outcome = ctx.api.invoke(name, RUNTIME).await;
            if outcome.is_ok() {
                out.push(outcome.latency_ms);
                if *name == plain && outcome.cold_start == Some(true) {
                    first.plain_cold_starts += 1;
                }
            } else {
                first.errors.push(format!("{name}: {}", outcome.describe()));
            }
        }
        ctx.progress(
            RUNTIME,
            &format!(
                "  first calls {i}: not cached {}, cached {}, popular set's stem cell {}, without dependencies {} ms",
                last(&first.uncached_ms),
                last(&first.cached_ms),
                last(&first.stem_ms),
                last(&first.plain_ms)
            ),
        );
    }
    for i in 0..config.deps_cold_samples {
        let zip = package_zip(&ctx.tag(&format!("package-{i}")));
        let mut names = Vec::new();
        for what in ["fetch", "cached"] {
            let name = ctx.name(RUNTIME, &format!("pkg-{what}-{i:02}"));
            let mut packaged = body(&name, "python", HANDLER, None, timeout);
            packaged["code"] = Value::Null;
            packaged["code_zip"] = json!(zip);
            packaged["handler"] = json!("main.handler");
            let (function, _) = ctx.api.create_function_json(&packaged, false).await?;
            ctx.record_created(&function);
            names.push(name);
        }
        for (name, out) in names
            .iter()
            .zip([&mut first.package_uncached_ms, &mut first.package_cached_ms])
        {
            tokio::time::sleep(settle).await;
            let outcome = ctx.api.invoke(name, RUNTIME).await;
            if outcome.is_ok() {
                out.push(outcome.latency_ms);
            } else {
                first.errors.push(format!("{name}: {}", outcome.describe()));
            }
        }
        ctx.progress(
            RUNTIME,
            &format!(
                "  package first calls {i}: not cached {}, cached {} ms",
                last(&first.package_uncached_ms),
                last(&first.package_cached_ms),
            ),
        );
    }
    first.package_uncached = summarize(&first.package_uncached_ms);
    first.package_cached = summarize(&first.package_cached_ms);
    first.uncached = summarize(&first.uncached_ms);
    first.cached = summarize(&first.cached_ms);
    first.stem = summarize(&first.stem_ms);
    first.plain = summarize(&first.plain_ms);

    // 3. Warm calls, alternating (the order swaps every pair).
    let with = ctx.name(RUNTIME, "deps-warm-with");
    let text = python_requirements(&ctx.tag("build-python-small"), false);
    ctx.create_built(&body(&with, "python", HANDLER, Some(&text), timeout))
        .await?;
    let without = ctx.name(RUNTIME, "deps-warm-without");
    ctx.create(&without, RUNTIME).await?;
    let targets = [
        Target::execute(&with, RUNTIME),
        Target::execute(&without, RUNTIME),
    ];
    for target in &targets {
        ctx.api.call(target).await;
    }
    tokio::time::sleep(settle).await;
    let (mut with_ms, mut without_ms, mut warm_errors) = (Vec::new(), Vec::new(), 0);
    for i in 0..config.deps_warm_calls {
        for k in [i % 2, 1 - i % 2] {
            let outcome = ctx.api.call(&targets[k]).await;
            if outcome.is_ok() {
                [&mut with_ms, &mut without_ms][k].push(outcome.latency_ms);
            } else {
                warm_errors += 1;
            }
        }
    }
    Ok(DepsResult {
        builds,
        first_calls: first,
        warm_with: summarize(&with_ms),
        warm_without: summarize(&without_ms),
        warm_errors,
    })
}

/// Long enough for a stem cell to be created, started and ready on a busy two-core machine.
const STEM_CELL_START: Duration = Duration::from_secs(3);

fn last(values: &[f64]) -> String {
    values.last().map_or("-".to_owned(), |v| format!("{v:.0}"))
}

/// Scenario 9's part of the report.
pub struct DepsSection;

impl Section for DepsSection {
    type Result = DepsResult;
    const ONCE_PER_RUN: bool = true;

    fn markdown(&self, runs: &[(Runtime, &DepsResult)], _settings: &Config) -> String {
        let mut out = String::new();
        for (runtime, deps) in runs {
            write_deps(&mut out, *runtime, deps);
        }
        out
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |s| format!("{s:.1} s"))
}

fn p50_p90(summary: Option<&Summary>) -> String {
    summary.map_or("-".to_owned(), |s| {
        format!("{} / {} ({})", ms(s.p50_ms), ms(s.p90_ms), s.count)
    })
}

/// `a / b`, of two summaries' p50s.
fn p50_ratio(a: Option<&Summary>, b: Option<&Summary>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.p50_ms > 0.0 => format!("{:.2}×", a.p50_ms / b.p50_ms),
        _ => "-".to_owned(),
    }
}

/// Scenario 9 on one runtime: the builds, the first calls, the warm calls.
fn write_deps(w: &mut String, runtime: Runtime, deps: &DepsResult) {
    let _ = writeln!(
        w,
        "#### 9. Dependencies ({}): builds, first calls, warm calls\n\n| set | packages | \
         status | `?wait=true` wall clock | build (started → finished) | size |\n\
         | --- | --- | --- | --: | --: | --: |",
        runtime.as_str()
    );
    for b in &deps.builds {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.1} s | {} | {} |",
            b.set,
            b.packages,
            b.status,
            b.wall_s,
            seconds(b.build_s),
            b.size_bytes
                .map_or("-".to_owned(), |n| format!("{:.1} MB", n as f64 / 1e6))
        );
    }
    let f = &deps.first_calls;
    let _ = writeln!(
        w,
        "\n| first call of a new function | p50 / p90 (samples) |\n| --- | --: |\n\
         | with dependencies, artifact not cached (fetched) | {} |\n\
         | with dependencies, artifact cached | {} |\n\
         | with dependencies, the popular set's stem cell | {} |\n\
         | without dependencies ({} of {} cold starts) | {} |\n\
         | fetch cost: not cached − cached, p50 | {} |\n\
         | cached with dependencies / without, p50 | {} |\n\
         | `.zip` package, not cached (fetched) | {} |\n\
         | `.zip` package, cached | {} |\n\
         | cached package / single source without dependencies, p50 | {} |",
        p50_p90(f.uncached.as_ref()),
        p50_p90(f.cached.as_ref()),
        p50_p90(f.stem.as_ref()),
        f.plain_cold_starts,
        f.plain_ms.len(),
        p50_p90(f.plain.as_ref()),
        match (&f.uncached, &f.cached) {
            (Some(u), Some(c)) => ms(u.p50_ms - c.p50_ms),
            _ => "-".to_owned(),
        },
        p50_ratio(f.cached.as_ref(), f.plain.as_ref()),
        p50_p90(f.package_uncached.as_ref()),
        p50_p90(f.package_cached.as_ref()),
        p50_ratio(f.package_cached.as_ref(), f.plain.as_ref()),
    );
    let _ = writeln!(
        w,
        "\n| warm calls, alternating | p50 / p90 (calls) |\n| --- | --: |\n\
         | with dependencies | {} |\n| without | {} |\n| with / without, p50 | {} |\n",
        p50_p90(deps.warm_with.as_ref()),
        p50_p90(deps.warm_without.as_ref()),
        p50_ratio(deps.warm_with.as_ref(), deps.warm_without.as_ref()),
    );
    for error in f.errors.iter().take(5) {
        let _ = writeln!(w, "- first-call error: {error}");
    }
    if deps.warm_errors > 0 {
        let _ = writeln!(w, "- {} warm calls failed\n", deps.warm_errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_texts_are_unique_to_the_tag_and_pinned() {
        let a = python_requirements("bench-1-a", false);
        assert_eq!(a, "# run bench-1-a\nsix==1.16.0\n");
        assert_ne!(a, python_requirements("bench-1-b", false));
        assert!(python_requirements("t", true).ends_with("requests==2.32.3\n"));
        let js: Value = serde_json::from_str(&package_json("t", true)).unwrap();
        assert_eq!(js["name"], "bench-t");
        assert_eq!(js["dependencies"]["lodash"], "4.17.21");
        let small: Value = serde_json::from_str(&package_json("t", false)).unwrap();
        assert_eq!(small["dependencies"], json!({"is-number": "7.0.0"}));
    }

    #[test]
    fn packages_are_unique_to_the_tag() {
        assert_ne!(package_zip("a"), package_zip("b"));
        assert_eq!(package_zip("a"), package_zip("a"));
    }

    #[test]
    fn build_seconds_run_from_start_to_finish() {
        let build = json!({"started_at": "2026-11-27T16:00:01Z",
                           "finished_at": "2026-11-27T16:00:04.5Z"});
        assert_eq!(build_seconds(&build), Some(3.5));
        assert_eq!(build_seconds(&json!({"started_at": null})), None);
    }
}
