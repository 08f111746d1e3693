//! One client's invocation stream (`GET /invocations/stream`): the stored records after its
//! resume point, oldest first, then the namespace's records as they are stored on any
//! replica, each `seq` once (DESIGN §16a).
//!
//! A stream is a task of its own that feeds a small bounded channel the response reads. It
//! takes its slot in the [`crate::services::stream_hub::StreamHub`] (and so hears the live records) *before* it reads the
//! database, so that no record falls between the two: `seq`s are committed in their order,
//! so whatever the replay's query does not see is stored after it and heard live. The task
//! ends when the client goes, when it cannot keep up (it falls [`SLOW_CLIENT_WAIT`] behind, or
//! the hub's backlog passes it), when the database fails it, or when the api shuts down.

use crate::domain::stream::{Sent, StreamFilter, StreamedRecord};
use crate::services::stream_hub::Subscription;
use crate::store::{self, DbError};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Records a replay reads at a time.
const REPLAY_PAGE: i64 = 500;
/// Records waiting for the client to take them.
const CLIENT_BUFFER: usize = 64;
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

/// An open stream: the records to send, in the order to send them, and the token that is
/// cancelled when the api shuts down (the response ends then, whatever is still buffered).
pub struct OpenStream {
    pub records: mpsc::Receiver<StreamedRecord>,
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
    };
    tokio::spawn(follower.run(subscription, replay));
    Ok(OpenStream {
        records: rx,
        closed,
    })
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
    tx: mpsc::Sender<StreamedRecord>,
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
                    batch = subscription.live.recv() => match batch {
                        Ok(records) => {
                            for record in records.iter() {
                                self.offer(record, &closed).await?;
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
            for record in &page {
                after = record.seq;
                self.offer(record, closed).await?;
            }
            if (page.len() as i64) < REPLAY_PAGE {
                return Ok(());
            }
        }
    }

    /// Sends `record` if the client asked for it and has not had it; waits for the client at
    /// most [`SLOW_CLIENT_WAIT`].
    async fn offer(
        &mut self,
        record: &StreamedRecord,
        closed: &CancellationToken,
    ) -> Result<(), Stop> {
        if !self.filter.matches(record) || !self.sent.admit(record.seq) {
            return Ok(());
        }
        tokio::select! {
            sent = self.tx.send(record.clone()) => sent.map_err(|_| Stop::Client),
            () = closed.cancelled() => Err(Stop::Client),
            () = tokio::time::sleep(SLOW_CLIENT_WAIT) => {
                tracing::info!(namespace = %self.namespace, "invocation stream ended: its client stopped reading");
                Err(Stop::Client)
            }
        }
    }
}
