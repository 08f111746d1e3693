//! An in-memory [`CallBackend`] for the call path's unit tests: functions in a map, leases
//! counted per scope as `faas_acquire_lease` counts them, replies scripted in order, and every
//! request written to a log, so a test asserts on what the service looked up, leased,
//! published, recorded and gave back, and in which order. Also a metrics recorder that keeps
//! what the call counted.

use super::CallBackend;
use crate::broker::{BrokerError, NoReply};
use crate::store::{DbError, Function, InvocationRecord};
use chrono::{DateTime, Utc};
use common::{Job, Reply, ReplyStatus, Runtime, Timing};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// One request the service made of its backend.
#[derive(Debug, Clone)]
pub enum Io {
    Lookup {
        namespace: String,
        name: String,
    },
    /// `granted` is what the call was told; a failed query is not logged.
    Acquire {
        scope: String,
        invocation: Uuid,
        expires: DateTime<Utc>,
        max: i32,
        granted: bool,
    },
    Release(Uuid),
    Invoke {
        runtime: Runtime,
        job: Box<Job>,
        grace: Duration,
    },
    Record(Box<InvocationRecord>),
}

/// How the broker answers the next published job.
pub enum Answer {
    Reply(Reply),
    NoReply,
    Fails(BrokerError),
}

#[derive(Clone, Default)]
pub struct FakeBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    functions: HashMap<(String, String), Function>,
    /// Every query fails, as with Postgres away.
    database_down: bool,
    /// The invocations holding a slot, per lease scope.
    leases: HashMap<String, Vec<Uuid>>,
    /// Answers to the next jobs, in order; past them, every job succeeds.
    answers: VecDeque<Answer>,
    log: Vec<Io>,
}

impl FakeBackend {
    /// Stores `function` under its namespace and name.
    pub fn add_function(&self, function: Function) {
        let key = (function.namespace.clone(), function.name.clone());
        self.state().functions.insert(key, function);
    }

    pub fn set_database_down(&self, down: bool) {
        self.state().database_down = down;
    }

    /// Fills `slots` of `scope` with calls of others.
    pub fn hold(&self, scope: &str, slots: usize) {
        let mut state = self.state();
        let holders = state.leases.entry(scope.to_owned()).or_default();
        holders.extend((0..slots).map(|_| Uuid::now_v7()));
    }

    /// How many slots of `scope` are taken.
    pub fn holders(&self, scope: &str) -> usize {
        self.state().leases.get(scope).map_or(0, Vec::len)
    }

    /// How the broker answers the next job not yet answered.
    pub fn answer(&self, answer: Answer) {
        self.state().answers.push_back(answer);
    }

    /// Everything asked so far, in order.
    pub fn log(&self) -> Vec<Io> {
        self.state().log.clone()
    }

    pub fn jobs(&self) -> Vec<Job> {
        self.log()
            .into_iter()
            .filter_map(|io| match io {
                Io::Invoke { job, .. } => Some(*job),
                _ => None,
            })
            .collect()
    }

    pub fn records(&self) -> Vec<InvocationRecord> {
        self.log()
            .into_iter()
            .filter_map(|io| match io {
                Io::Record(record) => Some(*record),
                _ => None,
            })
            .collect()
    }

    /// Waits until `invocation`'s leases were given back (by the guard's task), or panics.
    pub async fn released(&self, invocation: Uuid) {
        for _ in 0..1_000 {
            let done = self
                .state()
                .log
                .iter()
                .any(|io| matches!(io, Io::Release(id) if *id == invocation));
            if done {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the leases of {invocation} were never released");
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

impl State {
    fn query(&self) -> Result<(), DbError> {
        match self.database_down {
            true => Err(DbError::Inconsistent("the fake database is down")),
            false => Ok(()),
        }
    }
}

/// A successful reply to `invocation_id`, as a warm worker sends it.
pub fn success(invocation_id: Uuid) -> Reply {
    Reply {
        invocation_id,
        worker_id: "worker-1".into(),
        status: ReplyStatus::Success,
        result: common::RawValue::from_string("{\"ok\":true}".into()).unwrap(),
        error: None,
        logs: String::new(),
        logs_truncated: false,
        cold_start: false,
        timing: Timing::default(),
    }
}

impl CallBackend for FakeBackend {
    async fn get_function_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Function>, DbError> {
        let mut state = self.state();
        state.log.push(Io::Lookup {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
        state.query()?;
        let key = (namespace.to_owned(), name.to_owned());
        Ok(state.functions.get(&key).cloned())
    }

    async fn acquire_lease(
        &self,
        scope: &str,
        invocation: Uuid,
        expires: DateTime<Utc>,
        max: i32,
    ) -> Result<bool, DbError> {
        let mut state = self.state();
        state.query()?;
        let holders = state.leases.entry(scope.to_owned()).or_default();
        let granted = holders.len() < max as usize;
        if granted {
            holders.push(invocation);
        }
        state.log.push(Io::Acquire {
            scope: scope.to_owned(),
            invocation,
            expires,
            max,
            granted,
        });
        Ok(granted)
    }

    async fn release_lease(&self, invocation: Uuid) -> Result<(), DbError> {
        let mut state = self.state();
        state.log.push(Io::Release(invocation));
        state.query()?;
        for holders in state.leases.values_mut() {
            holders.retain(|holder| *holder != invocation);
        }
        Ok(())
    }

    async fn invoke(
        &self,
        runtime: Runtime,
        job: &Job,
        grace: Duration,
    ) -> Result<Result<Reply, NoReply>, BrokerError> {
        let mut state = self.state();
        state.log.push(Io::Invoke {
            runtime,
            job: Box::new(job.clone()),
            grace,
        });
        match state.answers.pop_front() {
            None => Ok(Ok(success(job.invocation_id))),
            Some(Answer::Reply(reply)) => Ok(Ok(reply)),
            Some(Answer::NoReply) => Ok(Err(NoReply::TimedOut)),
            Some(Answer::Fails(error)) => Err(error),
        }
    }

    fn submit_record(&self, record: InvocationRecord) {
        self.state().log.push(Io::Record(Box::new(record)));
    }
}

/// A metrics recorder that keeps every counter's total, gauge's value and histogram's
/// samples, by name and labels (`name{label=value,...}`, labels in the order given). Set it
/// for the test's thread with [`metrics::set_default_local_recorder`].
#[derive(Clone, Default)]
pub struct Metrics {
    values: Arc<Mutex<Values>>,
}

#[derive(Default)]
struct Values {
    counters: BTreeMap<String, u64>,
    gauges: BTreeMap<String, f64>,
    histograms: BTreeMap<String, Vec<f64>>,
}

impl Metrics {
    /// The total of counter `key` (`name{label=value,...}`); 0 when never counted.
    pub fn counter(&self, key: &str) -> u64 {
        let values = self.values.lock().unwrap();
        values.counters.get(key).copied().unwrap_or(0)
    }

    /// The value of gauge `key`, if it was ever touched.
    pub fn gauge(&self, key: &str) -> Option<f64> {
        self.values.lock().unwrap().gauges.get(key).copied()
    }

    /// The samples of histogram `key`.
    pub fn samples(&self, key: &str) -> Vec<f64> {
        let values = self.values.lock().unwrap();
        values.histograms.get(key).cloned().unwrap_or_default()
    }

    fn handle(&self, key: &Key) -> Arc<Handle> {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        Arc::new(Handle {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            values: self.values.clone(),
        })
    }
}

struct Handle {
    key: String,
    values: Arc<Mutex<Values>>,
}

impl Handle {
    fn change_gauge(&self, change: impl FnOnce(&mut f64)) {
        let mut values = self.values.lock().unwrap();
        change(values.gauges.entry(self.key.clone()).or_default());
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        let mut values = self.values.lock().unwrap();
        *values.counters.entry(self.key.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        let mut values = self.values.lock().unwrap();
        values.counters.insert(self.key.clone(), value);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.change_gauge(|gauge| *gauge += value);
    }

    fn decrement(&self, value: f64) {
        self.change_gauge(|gauge| *gauge -= value);
    }

    fn set(&self, value: f64) {
        self.change_gauge(|gauge| *gauge = value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        let mut values = self.values.lock().unwrap();
        let samples = values.histograms.entry(self.key.clone()).or_default();
        samples.push(value);
    }
}

impl Recorder for Metrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}
