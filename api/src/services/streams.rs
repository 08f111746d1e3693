//! One client's invocation stream (`GET /invocations/stream`): the stored records after its
//! resume point, oldest first, then the namespace's records as they are stored on any
//! replica, each `seq` once (DESIGN §16a).
//!
//! A stream is a task of its own that feeds a small bounded channel the response reads, with
//! the text of its events (a live record's is rendered once by the hub for every stream; the
//! events of one batch or replay page go as one chunk, one write). It
//! takes its slot in the [`crate::services::stream_hub::StreamHub`] (and so hears the live records) *before* it reads the
//! database, so that no record falls between the two: `seq`s are committed in their order,
//! so whatever the replay's query does not see is stored after it and heard live. The task
//! ends when the client goes, when it cannot keep up (it falls [`SLOW_CLIENT_WAIT`] behind, or
//! the hub's backlog passes it), when the database fails it, or when the api shuts down.

use crate::domain::stream::{KEEP_ALIVE_EVENT, Sent, StreamFilter, StreamedRecord, sse_event};
use crate::services::stream_hub::{LiveRecord, Subscription};
use crate::store::{self, DbError};
use axum::body::Bytes;
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Records a replay reads at a time.
const REPLAY_PAGE: i64 = 500;
/// Chunks of events waiting for the client to take them.
const CLIENT_BUFFER: usize = 64;
/// A replay's events go to the client in chunks of about this size.
const REPLAY_CHUNK_BYTES: usize = 64 * 1024;
/// How long a stream stays silent before it sends a comment, so that proxies and clients see
/// it is alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a stream waits for its client to take a record before it gives up on it.
pub const SLOW_CLIENT_WAIT: Duration = Duration::from_secs(10);

/// What a client asked to follow.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    pub namespace: String,
    pub filter: StreamFilter,
    /// `Last-Event-ID` (or `after`): replay the stored records after it first. `None`: only
    /// the records stored from now on.
    pub after: Option<i64>,
}

/// An open stream: the text to send (server-sent events), in the order to send it, and the
/// token that is cancelled when the api shuts down (the response ends then, whatever is still
/// buffered).
pub struct OpenStream {
    pub events: mpsc::Receiver<Bytes>,
    pub closed: CancellationToken,
}

/// Opens a stream for `request` in the slot `subscription` holds (taken from the hub with
/// [`crate::services::stream_hub::StreamHub::subscribe`], which refuses one over `STREAM_CLIENTS`, before anything is
/// read); without a resume point, fails when the database cannot say where it starts.
pub async fn open(
    subscription: Subscription,
    db: &Pool,
    request: StreamRequest,
) -> Result<OpenStream, DbError> {
    let (start, replay) = match request.after {
        Some(after) => (after, true),
        None => (store::last_seq(db, &request.namespace).await?, false),
    };
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    let closed = subscription.closed.clone();
    let follower = Follower {
        db: db.clone(),
        namespace: request.namespace,
        filter: request.filter,
        sent: Sent::after(start),
        tx,
        silent_since: Instant::now(),
    };
    tokio::spawn(follower.run(subscription, replay));
    Ok(OpenStream { events: rx, closed })
}

/// Why a stream stops.
#[derive(Debug)]
enum Stop {
    /// The client went, fell behind, or the api is shutting down.
    Client,
    Database(DbError),
}

struct Follower {
    db: Pool,
    namespace: String,
    filter: StreamFilter,
    sent: Sent,
    tx: mpsc::Sender<Bytes>,
    /// When the stream last sent something: [`KEEP_ALIVE`] after, it sends a comment.
    silent_since: Instant,
}

impl Follower {
    async fn run(mut self, mut subscription: Subscription, replay: bool) {
        let closed = subscription.closed.clone();
        // A resync before this point is covered by the first read.
        subscription.resync.mark_unchanged();
        let outcome: Result<(), Stop> = async {
            if replay {
                self.replay(&closed).await?;
            }
            loop {
                tokio::select! {
                    () = closed.cancelled() => return Err(Stop::Client),
                    () = self.tx.closed() => return Err(Stop::Client),
                    changed = subscription.resync.changed() => {
                        changed.map_err(|_| Stop::Client)?;
                        self.replay(&closed).await?;
                    }
                    () = tokio::time::sleep_until(self.silent_since + KEEP_ALIVE) => {
                        self.send(Bytes::from_static(KEEP_ALIVE_EVENT.as_bytes()), &closed).await?;
                    }
                    batch = subscription.live.recv() => match batch {
                        Ok(batch) => {
                            let wanted: Vec<&LiveRecord> =
                                batch.iter().filter(|live| self.wants(&live.record)).collect();
                            if let Some(chunk) = one_chunk(&wanted) {
                                self.send(chunk, &closed).await?;
                            }
                        }
                        Err(RecvError::Lagged(missed)) => {
                            tracing::info!(namespace = %self.namespace, missed, "invocation stream ended: its client fell behind");
                            return Err(Stop::Client);
                        }
                        Err(RecvError::Closed) => return Err(Stop::Client),
                    },
                }
            }
        }
        .await;
        if let Err(Stop::Database(error)) = outcome {
            tracing::warn!(%error, namespace = %self.namespace, "invocation stream ended: the database failed it");
        }
    }

    /// Sends every stored record after the floor that the stream has not sent, a page at a
    /// time, oldest first.
    async fn replay(&mut self, closed: &CancellationToken) -> Result<(), Stop> {
        let mut after = self.sent.floor();
        loop {
            let page =
                store::records_after(&self.db, &self.namespace, after, &self.filter, REPLAY_PAGE)
                    .await
                    .map_err(Stop::Database)?;
            let mut chunk = String::new();
            for record in &page {
                after = record.seq;
                if self.wants(record) {
                    chunk.push_str(&sse_event(record));
                }
                if chunk.len() >= REPLAY_CHUNK_BYTES {
                    self.send(std::mem::take(&mut chunk).into(), closed).await?;
                }
            }
            if !chunk.is_empty() {
                self.send(chunk.into(), closed).await?;
            }
            if (page.len() as i64) < REPLAY_PAGE {
                return Ok(());
            }
        }
    }

    /// Whether the client asked for `record` and has not had it; if so, it counts as sent.
    fn wants(&mut self, record: &StreamedRecord) -> bool {
        self.filter.matches(record) && self.sent.admit(record.seq)
    }

    /// Hands `events` to the client; waits for it at most [`SLOW_CLIENT_WAIT`].
    async fn send(&mut self, events: Bytes, closed: &CancellationToken) -> Result<(), Stop> {
        tokio::select! {
            sent = self.tx.send(events) => {
                self.silent_since = Instant::now();
                sent.map_err(|_| Stop::Client)
            }
            () = closed.cancelled() => Err(Stop::Client),
            () = tokio::time::sleep(SLOW_CLIENT_WAIT) => {
                tracing::info!(namespace = %self.namespace, "invocation stream ended: its client stopped reading");
                Err(Stop::Client)
            }
        }
    }
}

/// The events of `records` as one chunk to write; the hub's own text, not a copy, for the usual
/// batch of one; `None` for none.
fn one_chunk(records: &[&LiveRecord]) -> Option<Bytes> {
    match records {
        [] => None,
        [only] => Some(only.event.clone()),
        many => Some(Bytes::from(
            many.iter()
                .map(|live| &live.event[..])
                .collect::<Vec<_>>()
                .concat(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stream::tests_support::{record, record_of};
    use crate::services::stream_hub::StreamHub;
    use crate::store::pool_of_nothing;
    use std::sync::Arc;

    /// A stream of namespace `a` that follows `filter` live (no replay: it never reads the
    /// database).
    fn follow(hub: &Arc<StreamHub>, filter: StreamFilter) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let follower = Follower {
            db: pool_of_nothing(),
            namespace: "a".into(),
            filter,
            sent: Sent::after(0),
            tx,
            silent_since: Instant::now(),
        };
        tokio::spawn(follower.run(hub.subscribe("a").unwrap(), false));
        rx
    }

    fn text(chunk: &Bytes) -> &str {
        std::str::from_utf8(chunk).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_one_chunk_of_the_wanted_events_and_silence_sends_a_comment() {
        let hub = StreamHub::new(4);
        let mut all = follow(&hub, StreamFilter::default());
        let mut hello = follow(
            &hub,
            StreamFilter {
                function: Some("hello".into()),
                status: None,
            },
        );
        tokio::task::yield_now().await;
        let (one, other, three) = (record(1), record_of(2, "other", "error"), record(3));

        hub.publish("a", vec![one.clone(), other.clone(), three.clone()]);
        let expected = [sse_event(&one), sse_event(&other), sse_event(&three)].concat();
        assert_eq!(text(&all.recv().await.unwrap()), expected);
        let expected = [sse_event(&one), sse_event(&three)].concat();
        assert_eq!(text(&hello.recv().await.unwrap()), expected);

        // Seen already, or not asked for: nothing is sent until the stream has been silent
        // for KEEP_ALIVE.
        let published = Instant::now();
        hub.publish("a", vec![one.clone(), other.clone()]);
        assert_eq!(text(&hello.recv().await.unwrap()), KEEP_ALIVE_EVENT);
        let silent_for = published.elapsed();
        assert!(
            (KEEP_ALIVE..KEEP_ALIVE + Duration::from_millis(5)).contains(&silent_for),
            "{silent_for:?}"
        );
        assert_eq!(text(&all.recv().await.unwrap()), KEEP_ALIVE_EVENT);

        hub.publish("a", vec![record(4)]);
        assert_eq!(text(&all.recv().await.unwrap()), sse_event(&record(4)));
        assert_eq!(text(&hello.recv().await.unwrap()), sse_event(&record(4)));
    }
}
