//! The invocation stream's rules (`GET /invocations/stream`, DESIGN §16a), pure: what one
//! event carries ([`StreamedRecord`]), which records a client asked for ([`StreamFilter`]),
//! which it has already been sent ([`Sent`]), and how stored records travel between api
//! replicas ([`RecordsEvent`], cut into messages of bounded size by [`event_bodies`]).
//!
//! Records reach a stream from two places: the database (the replay after `Last-Event-ID`,
//! and a re-read after the broker connection came back) and the broker (every replica's
//! records as they are stored). Both overlap, and records of different replicas may arrive
//! out of `seq` order, so a stream sends a record only when [`Sent::admit`] has not seen its
//! `seq`, never dropping one for being lower than the last.

use chrono::{DateTime, Utc};
use common::ErrorInfo;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeSet;
use uuid::Uuid;

/// One finished call as a stream sends it (the `data` of an `invocation` event): the stored
/// record's fields, with `seq`, its place in storage order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "seq": 42, "invocation_id": "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "function": "hello",
    "function_version": 1, "runtime": "docker", "trigger": "execute", "attempt": 1,
    "status": "success", "cold_start": false, "duration_ms": 1.21,
    "created_at": "2026-11-27T16:00:00Z", "error": null, "logs": "hello\n",
    "logs_truncated": false, "worker_id": "worker-1"
})))]
pub struct StreamedRecord {
    /// Increasing in storage order; the event's `id`, which `Last-Event-ID` resumes after.
    pub seq: i64,
    pub invocation_id: Uuid,
    pub function: String,
    pub function_version: i32,
    pub runtime: String,
    /// `execute`, `http`, `async` or `schedule`.
    pub trigger: String,
    /// 1 for a sync call; the attempt's number for an async invocation.
    pub attempt: i32,
    /// A reply status (`success`, `error`, `init_error`, `timeout`, `oom`, `crashed`,
    /// `result_too_large`, `expired`) or `no_reply`.
    pub status: String,
    pub cold_start: bool,
    pub duration_ms: f64,
    pub created_at: DateTime<Utc>,
    pub error: Option<ErrorInfo>,
    /// What the call printed (at most 16 KiB); null when no worker answered.
    pub logs: Option<String>,
    pub logs_truncated: bool,
    pub worker_id: Option<String>,
}

/// The text of `record`'s server-sent event: `id` its `seq`, `event: invocation`, and `data`
/// the record as one line of JSON (JSON escapes every newline a log holds).
pub fn sse_event(record: &StreamedRecord) -> String {
    let json = serde_json::to_string(record).expect("a record's fields always serialize");
    format!("id: {}\nevent: invocation\ndata: {json}\n\n", record.seq)
}

/// What an idle stream sends now and then: an SSE comment, which clients ignore, so that
/// proxies and clients see the connection is alive.
pub const KEEP_ALIVE_EVENT: &str = ": keep-alive\n\n";

/// The `status` a stream may be filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Calls whose status is `success`.
    Succeeded,
    /// Calls whose status is anything but `success`.
    Failed,
}

impl StreamStatus {
    /// `succeeded` or `failed`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "succeeded" => Some(StreamStatus::Succeeded),
            "failed" => Some(StreamStatus::Failed),
            _ => None,
        }
    }
}

/// Which records a client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFilter {
    /// Only this function's records.
    pub function: Option<String>,
    pub status: Option<StreamStatus>,
}

impl StreamFilter {
    pub fn matches(&self, record: &StreamedRecord) -> bool {
        let function_ok = self
            .function
            .as_deref()
            .is_none_or(|name| name == record.function);
        let status_ok = match self.status {
            None => true,
            Some(StreamStatus::Succeeded) => record.status == "success",
            Some(StreamStatus::Failed) => record.status != "success",
        };
        function_ok && status_ok
    }
}

/// How many sent `seq`s above the floor a stream remembers; older ones count as sent. Records
/// of two replicas cross within milliseconds, so this window is generous.
pub const SENT_WINDOW: usize = 4096;

/// The records a stream has sent (or must never send): every `seq` up to `floor`, and the
/// ones above it in `above`, at most [`SENT_WINDOW`] of them.
#[derive(Debug, Clone)]
pub struct Sent {
    floor: i64,
    above: BTreeSet<i64>,
}

impl Sent {
    /// A stream that starts after `floor`: the `Last-Event-ID` it resumes from, or the last
    /// `seq` stored when it opened.
    pub fn after(floor: i64) -> Self {
        Sent {
            floor,
            above: BTreeSet::new(),
        }
    }

    /// Every `seq` at or below this counts as sent: a re-read of the database starts above it.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    /// Whether `seq` is new to the stream; if so, it is counted as sent from now on.
    pub fn admit(&mut self, seq: i64) -> bool {
        if seq <= self.floor || !self.above.insert(seq) {
            return false;
        }
        while self.above.len() > SENT_WINDOW {
            if let Some(lowest) = self.above.pop_first() {
                self.floor = lowest;
            }
        }
        true
    }
}

/// The records one api replica stored for one namespace, as published on the records exchange
/// (AMQP type [`common::EVENT_TYPE_RECORDS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordsEvent {
    pub namespace: String,
    pub records: Vec<StreamedRecord>,
}

/// The bodies to publish for `records` (each with its namespace), one event per namespace and
/// none over `max_bytes` unless a single record is (records keep their order within a
/// namespace).
pub fn event_bodies(records: Vec<(String, StreamedRecord)>, max_bytes: usize) -> Vec<Vec<u8>> {
    // Each record is serialized once: its size decides the cut, and the same text goes into
    // the body.
    let mut by_namespace: Vec<(String, Vec<Box<RawValue>>)> = Vec::new();
    for (namespace, record) in records {
        let json = serde_json::value::to_raw_value(&record).expect("a record always serializes");
        match by_namespace.iter_mut().find(|(name, _)| *name == namespace) {
            Some((_, list)) => list.push(json),
            None => by_namespace.push((namespace, vec![json])),
        }
    }
    let mut bodies = Vec::new();
    for (namespace, records) in &by_namespace {
        let mut chunk_start = 0;
        let mut chunk_bytes = 0;
        for (i, json) in records.iter().enumerate() {
            let size = json.get().len() + 1;
            if i > chunk_start && chunk_bytes + size > max_bytes {
                bodies.push(body(namespace, &records[chunk_start..i]));
                chunk_start = i;
                chunk_bytes = 0;
            }
            chunk_bytes += size;
        }
        if chunk_start < records.len() {
            bodies.push(body(namespace, &records[chunk_start..]));
        }
    }
    bodies
}

/// A [`RecordsEvent`] as it is sent, its records already serialized.
#[derive(Serialize)]
struct OutgoingRecords<'a> {
    namespace: &'a str,
    records: &'a [Box<RawValue>],
}

fn body(namespace: &str, records: &[Box<RawValue>]) -> Vec<u8> {
    serde_json::to_vec(&OutgoingRecords { namespace, records }).expect("records always serialize")
}

/// Records for the unit tests of the stream's parts.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A record of `function` that ended `status`, stored as `seq`.
    pub fn record_of(seq: i64, function: &str, status: &str) -> StreamedRecord {
        StreamedRecord {
            seq,
            invocation_id: Uuid::nil(),
            function: function.to_owned(),
            function_version: 1,
            runtime: "docker".into(),
            trigger: "execute".into(),
            attempt: 1,
            status: status.to_owned(),
            cold_start: false,
            duration_ms: 1.0,
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
            error: None,
            logs: Some("hi\n".into()),
            logs_truncated: false,
            worker_id: Some("w".into()),
        }
    }

    /// A successful call of `hello`, stored as `seq`.
    pub fn record(seq: i64) -> StreamedRecord {
        record_of(seq, "hello", "success")
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::record_of as record;
    use super::*;

    #[test]
    fn a_filter_takes_a_function_and_succeeded_or_any_failure() {
        let any = StreamFilter::default();
        let hello = StreamFilter {
            function: Some("hello".into()),
            status: None,
        };
        let failed = StreamFilter {
            function: None,
            status: Some(StreamStatus::Failed),
        };
        let succeeded = StreamFilter {
            function: Some("hello".into()),
            status: StreamStatus::parse("succeeded"),
        };
        let ok = record(1, "hello", "success");
        let timeout = record(2, "hello", "timeout");
        let other = record(3, "other", "error");
        assert!(any.matches(&ok) && any.matches(&timeout) && any.matches(&other));
        assert!(hello.matches(&ok) && hello.matches(&timeout) && !hello.matches(&other));
        assert!(!failed.matches(&ok) && failed.matches(&timeout) && failed.matches(&other));
        assert!(succeeded.matches(&ok) && !succeeded.matches(&timeout));
        assert!(!succeeded.matches(&record(4, "other", "success")));
        assert_eq!(StreamStatus::parse("dead_lettered"), None);
    }

    #[test]
    fn each_seq_is_sent_once_and_lower_ones_arriving_late_are_not_dropped() {
        let mut sent = Sent::after(10);
        assert!(!sent.admit(10), "at the resume point: the client has it");
        assert!(!sent.admit(3));
        assert!(sent.admit(14));
        assert!(sent.admit(12), "another replica's record, later but lower");
        assert!(!sent.admit(14) && !sent.admit(12));
        assert!(sent.admit(11));
        assert_eq!(sent.floor(), 10);
    }

    #[test]
    fn the_window_moves_its_floor_up_and_stays_bounded() {
        let mut sent = Sent::after(0);
        for seq in 1..=(SENT_WINDOW as i64 + 10) {
            assert!(sent.admit(seq));
        }
        assert_eq!(sent.floor(), 10);
        assert_eq!(sent.above.len(), SENT_WINDOW);
        assert!(!sent.admit(5) && !sent.admit(10) && !sent.admit(11));
        assert!(sent.admit(SENT_WINDOW as i64 + 11));
    }

    #[test]
    fn a_replay_then_the_same_records_live_sends_each_once() {
        // The replay reads 11..=13 from the database while 12..=14 arrive over the broker.
        let mut sent = Sent::after(10);
        let replayed: Vec<i64> = (11..=13).filter(|seq| sent.admit(*seq)).collect();
        let live: Vec<i64> = (12..=14).filter(|seq| sent.admit(*seq)).collect();
        assert_eq!(replayed, [11, 12, 13]);
        assert_eq!(live, [14]);
    }

    #[test]
    fn an_event_is_one_line_of_json_with_the_seq_as_its_id() {
        let mut with_lines = record(42, "hello", "success");
        with_lines.logs = Some("line one\nline two\n".into());
        let text = sse_event(&with_lines);
        let (head, data) = text.split_once("data: ").unwrap();
        assert_eq!(head, "id: 42\nevent: invocation\n");
        let json = data
            .strip_suffix("\n\n")
            .expect("an event ends with a blank line");
        assert!(!json.contains('\n'), "{json}");
        assert_eq!(
            serde_json::from_str::<StreamedRecord>(json).unwrap(),
            with_lines
        );
    }

    #[test]
    fn events_are_one_per_namespace_and_bounded_in_size() {
        let records = vec![
            ("a".to_owned(), record(1, "f", "success")),
            ("b".to_owned(), record(2, "g", "success")),
            ("a".to_owned(), record(3, "f", "error")),
        ];
        let bodies = event_bodies(records.clone(), 1 << 20);
        let events: Vec<RecordsEvent> = bodies
            .iter()
            .map(|body| serde_json::from_slice(body).unwrap())
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].namespace, "a");
        let seqs: Vec<i64> = events[0].records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(events[1].records, [record(2, "g", "success")]);

        // Room for one record per body: each goes alone, in order.
        let one = serde_json::to_vec(&record(1, "f", "success"))
            .unwrap()
            .len()
            + 1;
        let bodies = event_bodies(records, one);
        let seqs: Vec<i64> = bodies
            .iter()
            .flat_map(|body| {
                serde_json::from_slice::<RecordsEvent>(body)
                    .unwrap()
                    .records
            })
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 3, 2]);
        assert_eq!(bodies.len(), 3);
    }
}
