//! How stored invocation records reach this replica's open streams (`GET
//! /invocations/stream`): the record writer hands what it stored to the [`RecordFanout`],
//! which gathers it for [`GATHER_WINDOW`] and publishes it on the records exchange (api
//! replicas only) off the writer's path; every api replica (this
//! one too) hears those events and hands the records to its [`StreamHub`], one broadcast
//! channel per namespace, which each open stream of that namespace reads.
//!
//! Nothing here waits for a stream: a full fanout queue drops the records it was offered (a
//! stream of another replica then misses them, counted), a stream that falls behind its
//! channel is ended (its client resumes from the database), and with the broker away nothing
//! is published; when the events connection comes back, [`StreamHub::resync`] makes every
//! open stream read what it missed from the database.

use crate::broker::Invoker;
use crate::domain::stream::{StreamedRecord, event_bodies, sse_event};
use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Batches of records one stream may fall behind by before it is ended.
const LIVE_BACKLOG: usize = 256;
/// Batches the fanout holds while it publishes; beyond, new ones are dropped (and counted).
const FANOUT_QUEUE: usize = 64;
/// How long the fanout gathers what the writer stores before it publishes it: the records of
/// calls that end within it travel in one event and reach each stream as one write, instead
/// of one of each per call (a stream is this much later at most).
pub const GATHER_WINDOW: Duration = Duration::from_millis(100);
/// Records gathered past which the fanout publishes without waiting for the window's end.
const GATHER_MAX: usize = 2_000;
/// The largest records event published (several for a batch over it): well under RabbitMQ's
/// message size limit, and small enough that one event does not hold a replica's memory.
const MAX_EVENT_BYTES: usize = 512 * 1024;

/// A record as the hub hands it to the streams: the record, for their filters, and the text
/// of its event, rendered once for every stream that sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRecord {
    pub record: StreamedRecord,
    pub event: Bytes,
}

/// A batch of one namespace's records, shared by every stream that reads it.
pub type Batch = Arc<[LiveRecord]>;

/// This replica's open streams, by namespace.
pub struct StreamHub {
    topics: Mutex<HashMap<String, Topic>>,
    /// `STREAM_CLIENTS`: streams per namespace on this replica.
    max_per_namespace: usize,
    /// Bumped when the events connection is back: every stream re-reads the database.
    resync: watch::Sender<u64>,
    /// Cancelled when the api shuts down: every stream ends.
    closed: CancellationToken,
}

struct Topic {
    sender: broadcast::Sender<Batch>,
    clients: usize,
}

/// `STREAM_CLIENTS` streams of the namespace are open on this replica.
#[derive(Debug, thiserror::Error)]
#[error(
    "{limit} streams of this namespace are open on this api replica (STREAM_CLIENTS); close one or retry later"
)]
pub struct TooManyStreams {
    pub limit: usize,
}

/// One open stream's place in the hub; its slot is given back when it is dropped.
pub struct Subscription {
    /// The namespace's records as this replica hears them.
    pub live: broadcast::Receiver<Batch>,
    /// Changes when the stream must re-read the database (events may have been missed).
    pub resync: watch::Receiver<u64>,
    /// Cancelled when the api shuts down.
    pub closed: CancellationToken,
    hub: Arc<StreamHub>,
    namespace: String,
}

impl StreamHub {
    pub fn new(max_per_namespace: usize) -> Arc<Self> {
        Arc::new(StreamHub {
            topics: Mutex::new(HashMap::new()),
            max_per_namespace,
            resync: watch::Sender::new(0),
            closed: CancellationToken::new(),
        })
    }

    /// A slot for one more stream of `namespace`, or [`TooManyStreams`].
    pub fn subscribe(self: &Arc<Self>, namespace: &str) -> Result<Subscription, TooManyStreams> {
        let mut topics = self.topics.lock().unwrap();
        let topic = topics.entry(namespace.to_owned()).or_insert_with(|| Topic {
            sender: broadcast::Sender::new(LIVE_BACKLOG),
            clients: 0,
        });
        if topic.clients >= self.max_per_namespace {
            return Err(TooManyStreams {
                limit: self.max_per_namespace,
            });
        }
        topic.clients += 1;
        Ok(Subscription {
            live: topic.sender.subscribe(),
            resync: self.resync.subscribe(),
            closed: self.closed.clone(),
            hub: self.clone(),
            namespace: namespace.to_owned(),
        })
    }

    /// Hands `records`, stored for `namespace` by some replica, to its open streams here.
    pub fn publish(&self, namespace: &str, records: Vec<StreamedRecord>) {
        // Rendered outside the lock, which streams opening and closing take.
        let sender = self
            .topics
            .lock()
            .unwrap()
            .get(namespace)
            .map(|topic| topic.sender.clone());
        if let Some(sender) = sender {
            let batch: Batch = records
                .into_iter()
                .map(|record| LiveRecord {
                    event: Bytes::from(sse_event(&record)),
                    record,
                })
                .collect();
            // No receiver is no error: the last stream just went.
            let _ = sender.send(batch);
        }
    }

    /// Every open stream re-reads the database from where it is: events may have been missed.
    pub fn resync(&self) {
        self.resync.send_modify(|generation| *generation += 1);
    }

    /// Ends every stream, now and from now on: the api is shutting down.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Streams open on this replica for `namespace`.
    #[cfg(test)]
    pub fn clients(&self, namespace: &str) -> usize {
        self.topics
            .lock()
            .unwrap()
            .get(namespace)
            .map_or(0, |topic| topic.clients)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.hub.topics.lock().unwrap();
        if let Some(topic) = topics.get_mut(&self.namespace) {
            topic.clients -= 1;
            if topic.clients == 0 {
                topics.remove(&self.namespace);
            }
        }
    }
}

/// Publishes the records the writer stored, each with its namespace, from a task of its own.
#[derive(Clone)]
pub struct RecordFanout {
    tx: mpsc::Sender<Stored>,
}

impl RecordFanout {
    /// Starts the publishing task; it ends once every `RecordFanout` is dropped and what was
    /// queued is published.
    pub fn spawn(invoker: Arc<Invoker>) -> (RecordFanout, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Stored>(FANOUT_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let records = gather(first, &mut rx).await;
                // With the broker away nothing can be published; the streams re-read the
                // database when the connection is back.
                if !invoker.is_connected() {
                    continue;
                }
                for body in event_bodies(records, MAX_EVENT_BYTES) {
                    invoker.publish_records(&body).await;
                }
            }
        });
        (RecordFanout { tx }, task)
    }

    /// Queues `records` for publishing; never waits. A full queue drops them, counted.
    pub fn offer(&self, records: Stored) {
        if records.is_empty() {
            return;
        }
        let count = records.len();
        if self.tx.try_send(records).is_err() {
            metrics::counter!("faas_record_events_dropped_total").increment(count as u64);
            tracing::warn!(
                records = count,
                "stored records not published to the streams: the fanout is behind"
            );
        }
    }
}

/// Records queued for publishing, with their namespaces.
type Stored = Vec<(String, StreamedRecord)>;

/// `first` and what else comes on `rx` within [`GATHER_WINDOW`] of it, until [`GATHER_MAX`]
/// records or the writer's end.
async fn gather(mut records: Stored, rx: &mut mpsc::Receiver<Stored>) -> Stored {
    let window_ends = Instant::now() + GATHER_WINDOW;
    while records.len() < GATHER_MAX {
        match tokio::time::timeout_at(window_ends, rx.recv()).await {
            Ok(Some(more)) => records.extend(more),
            Ok(None) | Err(_) => break,
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_are_bounded_per_namespace_and_give_their_slot_back() {
        let hub = StreamHub::new(2);
        let first = hub.subscribe("a").unwrap();
        let _second = hub.subscribe("a").unwrap();
        assert!(matches!(
            hub.subscribe("a"),
            Err(TooManyStreams { limit: 2 })
        ));
        let _other = hub
            .subscribe("b")
            .expect("another namespace has its own bound");
        drop(first);
        assert_eq!(hub.clients("a"), 1);
        let _again = hub.subscribe("a").expect("a slot was given back");
    }

    #[tokio::test]
    async fn records_reach_only_their_namespace_streams() {
        let hub = StreamHub::new(4);
        let mut a = hub.subscribe("a").unwrap();
        let mut b = hub.subscribe("b").unwrap();
        let record = crate::domain::stream::tests_support::record(7);
        hub.publish("a", vec![record.clone()]);
        hub.publish("nobody", vec![record.clone()]);
        let live = &a.live.recv().await.unwrap()[0];
        assert_eq!(live.record, record);
        assert_eq!(live.event, sse_event(&record).as_bytes());
        assert!(b.live.try_recv().is_err());
    }

    #[tokio::test]
    async fn resync_and_close_reach_every_stream() {
        let hub = StreamHub::new(4);
        let mut a = hub.subscribe("a").unwrap();
        hub.resync();
        a.resync.changed().await.unwrap();
        hub.close();
        assert!(a.closed.is_cancelled());
        assert!(hub.subscribe("b").unwrap().closed.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn the_fanout_gathers_what_is_stored_within_its_window() {
        let (tx, mut rx) = mpsc::channel(FANOUT_QUEUE);
        let stored = |seq: i64| {
            vec![(
                "a".to_owned(),
                crate::domain::stream::tests_support::record(seq),
            )]
        };
        let writer = tokio::spawn(async move {
            tx.send(stored(2)).await.unwrap();
            tokio::time::sleep(GATHER_WINDOW / 2).await;
            tx.send(stored(3)).await.unwrap();
            tokio::time::sleep(GATHER_WINDOW).await;
            tx.send(stored(4)).await.unwrap();
        });
        let seqs = |records: Stored| records.into_iter().map(|(_, r)| r.seq).collect::<Vec<_>>();
        let started = Instant::now();
        assert_eq!(seqs(gather(stored(1), &mut rx).await), [1, 2, 3]);
        assert_eq!(started.elapsed(), GATHER_WINDOW);
        let next = rx.recv().await.unwrap();
        assert_eq!(
            seqs(gather(next, &mut rx).await),
            [4],
            "the writer is gone: no wait"
        );
        writer.await.unwrap();

        let (tx, mut rx) = mpsc::channel(FANOUT_QUEUE);
        for _ in 0..3 {
            tx.send(vec![
                (
                    "a".to_owned(),
                    crate::domain::stream::tests_support::record(1)
                );
                GATHER_MAX / 2
            ])
            .await
            .unwrap();
        }
        let started = Instant::now();
        let first = rx.recv().await.unwrap();
        assert_eq!(
            gather(first, &mut rx).await.len(),
            GATHER_MAX,
            "a full gathering goes at once"
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
