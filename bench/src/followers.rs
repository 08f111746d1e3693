//! Scenario 11, stream followers: whether `--followers` clients following
//! `GET /invocations/stream` (what `faas logs -f` does) slow the calls they watch. The same warm
//! function is called with nobody following and with the followers connected, interleaved as
//! `interleave` does it: before each of the "followed" variant's blocks and phases every
//! follower opens its stream (and gets its answer's headers), after it they all close, so the
//! rounds of both variants fall on the same machine noise. Each follower counts the events it
//! read, so that the report shows the stream kept up (or how far it fell behind) while the calls
//! ran.
//!
//! The scenario's section of the report and its target are here too.

use crate::client::{Api, Target};
use crate::config::{Config, Runtime, Scenario};
use crate::cpu::CpuUsage;
use crate::interleave::{self, Interleaved, Plan, Ratios, VARIANT_ALIGN, VARIANT_HEAD, Variant};
use crate::scenarios::Ctx;
use crate::section::{Section, Status, TargetCheck, cell, ratio_cell};
use anyhow::Context;
use serde::Serialize;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a follower waits for its stream's answer before it counts as not connected.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a variant's calls are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Following {
    /// Nobody follows the stream.
    Alone,
    /// `--followers` clients follow it.
    Followed,
}

impl Following {
    /// How the variant reads in the report.
    pub fn label(self) -> &'static str {
        match self {
            Following::Alone => "no followers",
            Following::Followed => "followed",
        }
    }
}

/// What the followers saw, over all the followed variant's blocks and phases.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowerCounts {
    /// Streams opened (one per follower per block or phase).
    pub streams_opened: u64,
    /// Streams that did not answer 200 within [`CONNECT_TIMEOUT`], with why.
    pub connect_errors: Vec<String>,
    /// Streams the api ended before the follower let go (a slow client dropped, say).
    pub ended_early: u64,
    /// Events each follower read, by follower.
    pub events_per_follower: Vec<u64>,
}

/// A set of clients following the stream, opened and closed around each turn.
pub struct Followers {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
    events: Vec<Arc<AtomicU64>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    counts: Mutex<FollowerCounts>,
    ended_early: Arc<AtomicU64>,
}

impl Followers {
    /// `count` followers of the stream of the api at `base`, sending `key`.
    pub fn new(base: &str, key: Option<&str>, count: usize) -> anyhow::Result<Self> {
        // No request timeout: a stream is meant to stay open.
        let http = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("cannot build the followers' HTTP client")?;
        Ok(Self {
            http,
            url: format!("{}/invocations/stream", base.trim_end_matches('/')),
            key: key.filter(|key| !key.is_empty()).map(str::to_owned),
            events: (0..count).map(|_| Arc::new(AtomicU64::new(0))).collect(),
            tasks: Mutex::new(Vec::new()),
            counts: Mutex::new(FollowerCounts::default()),
            ended_early: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Opens every follower's stream and waits until each has its answer (or failed to).
    pub async fn open(&self) {
        let mut waits = Vec::new();
        let mut tasks = Vec::new();
        for events in &self.events {
            let mut request = self
                .http
                .get(&self.url)
                .header("accept", "text/event-stream");
            if let Some(key) = &self.key {
                request = request.bearer_auth(key);
            }
            let (answered, wait) = tokio::sync::oneshot::channel();
            let events = events.clone();
            let ended_early = self.ended_early.clone();
            tasks.push(tokio::spawn(follow(request, answered, events, ended_early)));
            waits.push(wait);
        }
        let mut errors = Vec::new();
        for wait in waits {
            match tokio::time::timeout(CONNECT_TIMEOUT, wait).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => errors.push(error),
                Ok(Err(_)) => errors.push("the follower ended before an answer".to_owned()),
                Err(_) => errors.push(format!("no answer within {CONNECT_TIMEOUT:?}")),
            }
        }
        let mut counts = self.counts.lock().expect("never poisoned");
        counts.streams_opened += self.events.len() as u64;
        counts.connect_errors.extend(errors);
        self.tasks.lock().expect("never poisoned").extend(tasks);
    }

    /// Closes every stream.
    pub async fn close(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("never poisoned"));
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// What the followers saw so far.
    pub fn counts(&self) -> FollowerCounts {
        let mut counts = self.counts.lock().expect("never poisoned").clone();
        counts.ended_early = self.ended_early.load(Ordering::Relaxed);
        counts.events_per_follower = self
            .events
            .iter()
            .map(|events| events.load(Ordering::Relaxed))
            .collect();
        counts
    }
}

/// One follower: sends the request, says whether it was answered 200, then counts the events
/// (`id:` lines) it reads until it is aborted or the stream ends.
async fn follow(
    request: reqwest::RequestBuilder,
    answered: tokio::sync::oneshot::Sender<Result<(), String>>,
    events: Arc<AtomicU64>,
    ended_early: Arc<AtomicU64>,
) {
    let mut response = match request.send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            let _ = answered.send(Err(format!("answered {}", response.status())));
            return;
        }
        Err(error) => {
            let _ = answered.send(Err(format!("{error}")));
            return;
        }
    };
    let _ = answered.send(Ok(()));
    let mut lines = EventCounter::default();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                events.fetch_add(lines.feed(&chunk), Ordering::Relaxed);
            }
            Ok(None) | Err(_) => {
                ended_early.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Counts the events of a server-sent event stream as its bytes arrive in any pieces: an
/// event is a line starting `id:` (every event of the api's stream carries its id).
#[derive(Debug, Default)]
pub struct EventCounter {
    /// Whether the next byte starts a line.
    at_line_start: bool,
    /// Bytes of `id:` matched so far at the start of the current line.
    matched: usize,
    started: bool,
}

impl EventCounter {
    /// The events whose `id:` line starts in `bytes`.
    pub fn feed(&mut self, bytes: &[u8]) -> u64 {
        const PREFIX: &[u8] = b"id:";
        if !self.started {
            self.started = true;
            self.at_line_start = true;
        }
        let mut found = 0;
        for &byte in bytes {
            if byte == b'\n' {
                self.at_line_start = true;
                self.matched = 0;
                continue;
            }
            if self.at_line_start {
                if byte == PREFIX[self.matched] {
                    self.matched += 1;
                    if self.matched == PREFIX.len() {
                        found += 1;
                        self.at_line_start = false;
                        self.matched = 0;
                    }
                } else {
                    self.at_line_start = false;
                    self.matched = 0;
                }
            }
        }
        found
    }
}

/// Scenario 11.
#[derive(Debug, Clone, Serialize)]
pub struct FollowersResult {
    pub function: String,
    pub followers: usize,
    /// The calls: alone first (the warm-up at `--concurrency` goes through it), then followed.
    #[serde(flatten)]
    pub measured: Interleaved<Following>,
    /// Followed over alone.
    pub ratios: Ratios<Following>,
    /// Calls made while the followers were connected (sequential and under load, failed
    /// ones included): what each follower should have read, give or take the last few.
    pub followed_calls: u64,
    pub counts: FollowerCounts,
}

/// Scenario 11 on `runtime`, with `function` (scenario 1's).
pub async fn run(
    ctx: &Ctx<'_>,
    runtime: Runtime,
    function: &str,
) -> anyhow::Result<FollowersResult> {
    let config = ctx.config;
    let plan = Plan::new(
        config.followers_calls,
        config.followers_block_calls,
        config.followers_phases,
        config.followers_phase_secs,
    );
    ctx.progress(
        runtime,
        &format!(
            "11. stream followers: {} followers of GET /invocations/stream, {} sequential calls \
             each way in {} interleaved blocks, then {} interleaved phases of {} s each at \
             concurrency {}",
            config.followers,
            plan.calls,
            interleave::blocks(plan.calls, plan.block_calls).len(),
            plan.phases,
            plan.phase_secs,
            config.concurrency
        ),
    );
    let pool = config.concurrency * 2 + 8;
    let client = || {
        Api::new(
            &config.api_url,
            pool,
            config.request_timeout(),
            config.api_key(),
        )
    };
    let followers = Arc::new(Followers::new(
        &config.api_url,
        config.api_key(),
        config.followers,
    )?);
    let target = Target::execute(function, runtime);
    let variants = [
        Variant {
            key: Following::Alone,
            api: client()?,
            target: target.clone(),
            followers: None,
        },
        Variant {
            key: Following::Followed,
            api: client()?,
            target,
            followers: Some(followers.clone()),
        },
    ];
    let measured = interleave::measure(ctx, runtime, &variants, plan).await?;
    let (alone, followed) = (&measured.variants[0], &measured.variants[1]);
    let ratios = interleave::ratios(followed, alone);
    let followed_calls = followed.warm.calls + followed.load.calls;
    let counts = followers.counts();
    ctx.progress(
        runtime,
        &format!(
            "  followed over alone: p50 {}, throughput {}; events per follower {} of {} calls \
             followed",
            ratios.p50.map_or("-".to_owned(), |r| format!("{r:.3}")),
            ratios
                .throughput
                .map_or("-".to_owned(), |r| format!("{r:.3}")),
            events_range(&counts.events_per_follower),
            followed_calls
        ),
    );
    Ok(FollowersResult {
        function: function.to_owned(),
        followers: config.followers,
        measured,
        ratios,
        followed_calls,
        counts,
    })
}

/// `min–max` of the followers' event counts.
fn events_range(events: &[u64]) -> String {
    match (events.iter().min(), events.iter().max()) {
        (Some(min), Some(max)) if min == max => min.to_string(),
        (Some(min), Some(max)) => format!("{min}–{max}"),
        _ => "-".to_owned(),
    }
}

/// The most a followed p50 may exceed the alone one, and the least share of the alone
/// throughput a followed run must keep: "within noise" of the machine's rounds.
pub const FOLLOWED_P50_RATIO_MAX: f64 = 1.10;
pub const FOLLOWED_THROUGHPUT_RATIO_MIN: f64 = 0.90;

/// Scenario 11's part of the report.
pub struct FollowersSection;

impl Section for FollowersSection {
    type Result = FollowersResult;
    const ONCE_PER_RUN: bool = true;

    fn settings(&self, settings: &Config) -> Option<String> {
        settings.wants(Scenario::Followers).then(|| {
            format!(
                "Stream followers: {} followers; {} calls in blocks of {} and {} phases of {} s \
                 each way",
                settings.followers,
                settings.followers_calls,
                settings.followers_block_calls,
                settings.followers_phases,
                settings.followers_phase_secs
            )
        })
    }

    fn markdown(&self, runs: &[(Runtime, &FollowersResult)], _settings: &Config) -> String {
        let mut out = String::new();
        for (runtime, result) in runs {
            write_followers(&mut out, *runtime, result);
        }
        out
    }

    fn cpu<'r>(&self, result: &'r FollowersResult) -> Vec<(&'static str, &'r CpuUsage)> {
        interleave::cpu_rows_of(&result.measured, |following| match following {
            Following::Alone => "11. no followers, load",
            Following::Followed => "11. followed, load",
        })
    }

    fn errors(&self, runtime: Runtime, result: &FollowersResult) -> Vec<String> {
        let mut lines = interleave::error_rows_of("11", runtime, &result.measured, |following| {
            following.label().to_owned()
        });
        for error in &result.counts.connect_errors {
            lines.push(format!(
                "| 11. follower's stream | {} | - | stream | 1 | {} |",
                runtime.as_str(),
                cell(error)
            ));
        }
        lines
    }

    fn targets(
        &self,
        runtime: Runtime,
        result: Option<&FollowersResult>,
        _concurrency: usize,
    ) -> Vec<TargetCheck> {
        let Some(result) = result else {
            return Vec::new();
        };
        vec![
            TargetCheck {
                subject: runtime.as_str().to_owned(),
                what: format!("11. warm p50, {} followers over none", result.followers),
                target: format!("≤ {FOLLOWED_P50_RATIO_MAX:.2} ×"),
                measured: result
                    .ratios
                    .p50
                    .map_or("-".to_owned(), |r| format!("{r:.2} ×")),
                status: verdict(result.ratios.p50, |r| r <= FOLLOWED_P50_RATIO_MAX),
            },
            TargetCheck {
                subject: runtime.as_str().to_owned(),
                what: format!("11. throughput, {} followers over none", result.followers),
                target: format!("≥ {FOLLOWED_THROUGHPUT_RATIO_MIN:.2} ×"),
                measured: result
                    .ratios
                    .throughput
                    .map_or("-".to_owned(), |r| format!("{r:.2} ×")),
                status: verdict(result.ratios.throughput, |r| {
                    r >= FOLLOWED_THROUGHPUT_RATIO_MIN
                }),
            },
        ]
    }
}

/// Met when the ratio was measured and passes, missed otherwise.
fn verdict(ratio: Option<f64>, passes: impl Fn(f64) -> bool) -> Status {
    match ratio {
        Some(r) if passes(r) => Status::Met,
        _ => Status::Missed,
    }
}

/// Scenario 11 on one runtime.
fn write_followers(w: &mut String, runtime: Runtime, result: &FollowersResult) {
    let rt = runtime.as_str();
    let m = &result.measured;
    let _ = writeln!(
        w,
        "## 11. Stream followers: one warm function, followed and not

\
         Function `{}` on {rt}, called through `POST /execute/{}`; {} followers of `GET \
         /invocations/stream` are connected during the followed variant's turns only. \
         Interleaved: {} rounds of one block of {} sequential calls per variant, then {} rounds \
         of one {} s phase per variant at concurrency {}; the order rotates each round.
",
        result.function,
        result.function,
        result.followers,
        m.blocks,
        m.block_calls,
        m.phases,
        m.phase_secs,
        m.concurrency,
    );
    let _ = writeln!(w, "| variant | {VARIANT_HEAD}");
    let _ = writeln!(w, "| --- | {VARIANT_ALIGN}");
    for v in &m.variants {
        let _ = writeln!(
            w,
            "| {} | {} |",
            v.key.label(),
            interleave::variant_cells(v)
        );
    }
    let c = &result.counts;
    let _ = writeln!(
        w,
        "
Followed over alone: p50 {}, p99 {}, throughput {}. Each follower read {} events of the {} \
         calls made while it followed; {} streams opened, {} failed to connect, {} ended by the api.
",
        ratio_cell(result.ratios.p50),
        ratio_cell(result.ratios.p99),
        ratio_cell(result.ratios.throughput),
        events_range(&c.events_per_follower),
        result.followed_calls,
        c.streams_opened,
        c.connect_errors.len(),
        c.ended_early,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_their_id_lines_however_the_bytes_are_cut() {
        let stream = b": keep-alive\n\nid: 1\nevent: invocation\ndata: {\"id:\": 1}\n\nid: 2\nevent: invocation\ndata: {}\n\n";
        let mut whole = EventCounter::default();
        assert_eq!(whole.feed(stream), 2);
        for cut in 0..stream.len() {
            let mut pieces = EventCounter::default();
            let found = pieces.feed(&stream[..cut]) + pieces.feed(&stream[cut..]);
            assert_eq!(found, 2, "cut at {cut}");
        }
        let mut bytes = EventCounter::default();
        let found: u64 = stream.iter().map(|b| bytes.feed(&[*b])).sum();
        assert_eq!(found, 2);
    }

    #[test]
    fn a_data_line_holding_id_is_not_an_event() {
        let mut counter = EventCounter::default();
        assert_eq!(counter.feed(b"data: id: 3\n: id:\nxid: 4\n"), 0);
    }

    #[test]
    fn the_events_range_reads_as_one_number_when_all_followers_agree() {
        assert_eq!(events_range(&[5, 5, 5]), "5");
        assert_eq!(events_range(&[3, 5, 4]), "3–5");
        assert_eq!(events_range(&[]), "-");
    }

    #[test]
    fn a_ratio_not_measured_misses_its_target() {
        assert_eq!(verdict(None, |_| true), Status::Missed);
        assert_eq!(verdict(Some(1.05), |r| r <= 1.1), Status::Met);
        assert_eq!(verdict(Some(1.2), |r| r <= 1.1), Status::Missed);
    }
}
