//! Invocation records are written off the request path: handlers hand them to one task that
//! writes whatever has queued up in a single multi-row insert. While the database is down the
//! task keeps retrying and holds a bounded backlog; `GET /metrics/` first flushes, so a client
//! reads its own calls.

use crate::db::{self, InvocationRecord};
use deadpool_postgres::Pool;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Records waiting in the channel before new ones are dropped (and counted).
const CHANNEL_CAPACITY: usize = 16_384;
/// Records held while the database is unreachable; the oldest go first beyond this.
const BACKLOG_LIMIT: usize = 100_000;
const BATCH_MAX: usize = 1_000;
const RETRY_MAX: Duration = Duration::from_secs(5);

enum Command {
    Record(Box<InvocationRecord>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<Command>,
}

impl RecordWriter {
    /// Starts the writer task; it ends once every `RecordWriter` is dropped and the backlog is
    /// written (or the database stayed away).
    pub fn spawn(pool: Pool) -> (RecordWriter, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (RecordWriter { tx }, tokio::spawn(write_records(pool, rx)))
    }

    /// Queues a record; never waits. A full queue drops it and counts the loss.
    pub fn submit(&self, record: InvocationRecord) {
        if self.tx.try_send(Command::Record(Box::new(record))).is_err() {
            metrics::counter!("faas_records_dropped_total").increment(1);
            tracing::warn!("invocation record dropped: the writer is behind");
        }
    }

    /// Waits (up to `limit`) until every record submitted before this call is written.
    pub async fn flush(&self, limit: Duration) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(limit, written).await;
        }
    }
}

async fn write_records(pool: Pool, mut rx: mpsc::Receiver<Command>) {
    let mut backlog: VecDeque<InvocationRecord> = VecDeque::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut retry = Duration::from_millis(100);
    let mut open = true;
    while open || !backlog.is_empty() {
        if backlog.is_empty() && waiting.is_empty() {
            match rx.recv().await {
                Some(command) => take(command, &mut backlog, &mut waiting),
                None => open = false,
            }
        }
        // Whatever else is already queued goes into the same batch.
        while backlog.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(command) => take(command, &mut backlog, &mut waiting),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        while backlog.len() > BACKLOG_LIMIT {
            backlog.pop_front();
            metrics::counter!("faas_records_dropped_total").increment(1);
        }
        let batch: Vec<InvocationRecord> = backlog.iter().take(BATCH_MAX).cloned().collect();
        if !batch.is_empty() {
            match db::insert_invocations(&pool, &batch).await {
                Ok(()) => {
                    backlog.drain(..batch.len());
                    retry = Duration::from_millis(100);
                }
                Err(error) => {
                    metrics::counter!("faas_database_errors_total").increment(1);
                    tracing::warn!(%error, pending = backlog.len(), "cannot write invocation records; retrying in {retry:?}");
                    if !open {
                        // Shutting down with the database away: nothing more to wait for.
                        tracing::error!(
                            lost = backlog.len(),
                            "invocation records lost at shutdown"
                        );
                        return;
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            }
        }
        if backlog.is_empty() {
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }
    for done in waiting.drain(..) {
        let _ = done.send(());
    }
}

fn take(
    command: Command,
    backlog: &mut VecDeque<InvocationRecord>,
    waiting: &mut Vec<oneshot::Sender<()>>,
) {
    match command {
        Command::Record(record) => backlog.push_back(*record),
        Command::Flush(done) => waiting.push(done),
    }
}
