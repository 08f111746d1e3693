//! Invocation records are written off the request path: handlers hand them to one task that
//! writes whatever has queued up in a single multi-row insert. While the database is down the
//! task keeps retrying and holds a bounded backlog; `GET /metrics/` first flushes, so a client
//! reads its own calls.
//!
//! A record never stalls the others: its text is cleaned before it is stored (no NUL, bounded
//! length), and a batch that Postgres refuses for its data is split in halves until the rows it
//! refuses are found; those are dropped and counted, the rest written.
//!
//! What is stored is then offered to the invocation streams ([`RecordFanout`]), never
//! waited for.

use crate::domain::stream::StreamedRecord;
use crate::services::stream_hub::RecordFanout;
use crate::store::DbError;
use crate::store::{self, InvocationRecord, StoredSeq};
use common::ErrorInfo;
use deadpool_postgres::Pool;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Records waiting in the channel before new ones are dropped (and counted).
const CHANNEL_CAPACITY: usize = 16_384;
/// Records held while the database is unreachable; the oldest go first beyond this.
const BACKLOG_LIMIT: usize = 100_000;
const BATCH_MAX: usize = 1_000;
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Longest text kept of an error's type, message or stack, and of a worker id.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest logs a record keeps of a call (the async invocation keeps what the worker sent).
pub const MAX_LOG_BYTES: usize = 16 * 1024;

/// Why a record was dropped: the label of `faas_records_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The writer's channel was full: it is behind.
    WriterBehind,
    /// The backlog held while Postgres is away was full; the oldest record went.
    BacklogFull,
    /// Postgres refused the row itself (a data error).
    Rejected,
    /// The api stopped while Postgres was away.
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::WriterBehind,
        DropReason::BacklogFull,
        DropReason::Rejected,
        DropReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::WriterBehind => "writer_behind",
            DropReason::BacklogFull => "backlog_full",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
        }
    }
}

fn count_dropped(reason: DropReason, records: usize) {
    metrics::counter!("faas_records_dropped_total", "reason" => reason.as_str())
        .increment(records as u64);
}

enum Command {
    Record(Box<InvocationRecord>),
    Flush(oneshot::Sender<()>),
}

/// How long a listing waits for the records writer to store the calls made just before.
pub const FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<Command>,
}

impl RecordWriter {
    /// Starts the writer task; it ends once every `RecordWriter` is dropped and the backlog is
    /// written (or the database stayed away).
    /// What it stores goes to `fanout`.
    pub fn spawn(pool: Pool, fanout: RecordFanout) -> (RecordWriter, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (
            RecordWriter { tx },
            tokio::spawn(write_records(pool, rx, fanout)),
        )
    }

    /// Queues a record; never waits. A full queue drops it and counts the loss.
    pub fn submit(&self, record: InvocationRecord) {
        if self.tx.try_send(Command::Record(Box::new(record))).is_err() {
            count_dropped(DropReason::WriterBehind, 1);
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

async fn write_records(pool: Pool, mut rx: mpsc::Receiver<Command>, fanout: RecordFanout) {
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
        if backlog.len() > BACKLOG_LIMIT {
            let excess = backlog.len() - BACKLOG_LIMIT;
            backlog.drain(..excess);
            count_dropped(DropReason::BacklogFull, excess);
        }
        let batch: Vec<InvocationRecord> = backlog.iter().take(BATCH_MAX).cloned().collect();
        if !batch.is_empty() {
            let Written {
                settled,
                error: failure,
                stored,
            } = store(&pool, &batch).await;
            fanout.offer(streamed(&batch, &stored));
            backlog.drain(..settled);
            match failure {
                None => retry = Duration::from_millis(100),
                Some(error) => {
                    metrics::counter!("faas_database_errors_total").increment(1);
                    tracing::warn!(%error, pending = backlog.len(), "cannot write invocation records; retrying in {retry:?}");
                    if !open {
                        // Shutting down with the database away: nothing more to wait for.
                        count_dropped(DropReason::Shutdown, backlog.len());
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
        Command::Record(mut record) => {
            sanitise(&mut record);
            backlog.push_back(*record);
        }
        Command::Flush(done) => waiting.push(done),
    }
}

/// The records of `batch` that were stored, as the streams send them, with their namespace.
fn streamed(batch: &[InvocationRecord], stored: &[StoredSeq]) -> Vec<(String, StreamedRecord)> {
    let by_id: HashMap<(uuid::Uuid, i32), &InvocationRecord> = batch
        .iter()
        .map(|record| ((record.invocation_id, record.attempt), record))
        .collect();
    stored
        .iter()
        .filter_map(|row| {
            let record = by_id.get(&(row.invocation_id, row.attempt))?;
            Some((record.namespace.clone(), record.streamed(row.seq)))
        })
        .collect()
}

/// Makes the text a worker (or the function it ran) chose storable: Postgres text holds no
/// U+0000, and a record is no place for megabytes of stack or logs.
pub fn sanitise(record: &mut InvocationRecord) {
    if let Some(error) = &mut record.error {
        clean_error(error);
    }
    if let Some(worker_id) = &mut record.worker_id {
        clean_text(worker_id);
    }
    if let Some(logs) = &mut record.logs {
        let (kept, cut) = bounded_logs(logs);
        *logs = kept;
        record.logs_truncated |= cut;
    }
}

/// At most [`MAX_LOG_BYTES`] of `logs` (cut on a character boundary), without U+0000, and
/// whether it was cut.
pub fn bounded_logs(logs: &str) -> (String, bool) {
    let mut kept = logs.replace('\0', "\u{FFFD}");
    let whole = kept.len();
    common::messages::truncate_at_char(&mut kept, MAX_LOG_BYTES);
    let cut = kept.len() < whole;
    (kept, cut)
}

/// An error as a worker described it, made storable (see [`sanitise`]); async attempts store
/// theirs through it too.
pub fn clean_error(error: &mut ErrorInfo) {
    clean_text(&mut error.kind);
    clean_text(&mut error.message);
    clean_text(&mut error.stack);
}

/// Text without U+0000 and within [`MAX_TEXT_BYTES`], cut on a character boundary.
pub fn clean_text(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// What [`store`] did with a batch.
#[derive(Debug)]
pub struct Written {
    /// Records from the front that are settled (written or dropped).
    pub settled: usize,
    /// When it had to stop before the end: the connection error to retry after.
    pub error: Option<DbError>,
    /// The rows written, with their `seq`.
    pub stored: Vec<StoredSeq>,
}

/// Writes `batch`, splitting it around rows Postgres refuses.
pub async fn store(pool: &Pool, batch: &[InvocationRecord]) -> Written {
    let stored = Mutex::new(Vec::new());
    let outcome = write_splitting(batch, |rows| {
        let stored = &stored;
        async move {
            match store::insert_invocations(pool, rows).await {
                Ok(seqs) => {
                    stored.lock().unwrap().extend(seqs);
                    Ok(())
                }
                Err(error) => Err(match refused_state(&error) {
                    Some(state) => Refusal::Rejected(state),
                    None => Refusal::Unavailable(error),
                }),
            }
        }
    })
    .await;
    for (index, state) in &outcome.dropped {
        count_dropped(DropReason::Rejected, 1);
        // The contents stay out of the log: they are what Postgres could not take.
        tracing::error!(
            invocation_id = %batch[*index].invocation_id,
            sqlstate = %state,
            "invocation record refused by the database; dropped"
        );
    }
    Written {
        settled: outcome.settled,
        error: outcome.error,
        stored: stored.into_inner().unwrap(),
    }
}

/// The SQLSTATE when Postgres refused the data itself (class 22 data exception, 23 integrity
/// constraint violation, 54 program limit exceeded): sending the same rows again cannot work.
fn refused_state(error: &DbError) -> Option<String> {
    let DbError::Query(error) = error else {
        return None;
    };
    let code = error.as_db_error()?.code().code();
    ["22", "23", "54"]
        .iter()
        .any(|class| code.starts_with(class))
        .then(|| code.to_owned())
}

/// How an insert of some rows failed.
#[derive(Debug)]
pub enum Refusal<E> {
    /// Postgres refused the data; the SQLSTATE.
    Rejected(String),
    /// Postgres could not be asked: retry later.
    Unavailable(E),
}

/// What [`write_splitting`] did.
#[derive(Debug)]
pub struct Split<E> {
    /// Rows from the front that are written or dropped.
    pub settled: usize,
    /// Indexes of the rows refused on their own, with the SQLSTATE.
    pub dropped: Vec<(usize, String)>,
    /// Why it stopped before the end.
    pub error: Option<E>,
}

/// Inserts `rows` with `insert`; a refused batch is split in halves, left first, down to
/// single rows, which are dropped. Stops at the first `Unavailable`, with every row before the
/// failing batch settled, so the caller retries from there.
pub async fn write_splitting<'a, R, E, F, Fut>(rows: &'a [R], mut insert: F) -> Split<E>
where
    F: FnMut(&'a [R]) -> Fut,
    Fut: Future<Output = Result<(), Refusal<E>>>,
{
    let mut split = Split {
        settled: 0,
        dropped: Vec::new(),
        error: None,
    };
    // Ranges still to write, the next one on top.
    let mut pending = vec![(0, rows.len())];
    while let Some((start, end)) = pending.pop() {
        if start == end {
            continue;
        }
        match insert(&rows[start..end]).await {
            Ok(()) => split.settled = end,
            Err(Refusal::Rejected(state)) if end - start == 1 => {
                split.dropped.push((start, state));
                split.settled = end;
            }
            Err(Refusal::Rejected(_)) => {
                let middle = start + (end - start) / 2;
                pending.push((middle, end));
                pending.push((start, middle));
            }
            Err(Refusal::Unavailable(error)) => {
                split.error = Some(error);
                break;
            }
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Inserts into `table` unless a row is negative (refused) or the call is number
    /// `unavailable_at` (the connection failed).
    async fn run(
        rows: &[i32],
        unavailable_at: Option<usize>,
    ) -> (Split<&'static str>, Vec<i32>, usize) {
        let table = RefCell::new(Vec::new());
        let calls = RefCell::new(0);
        let split = write_splitting(rows, |batch| {
            let (table, calls) = (&table, &calls);
            async move {
                *calls.borrow_mut() += 1;
                if Some(*calls.borrow()) == unavailable_at {
                    return Err(Refusal::Unavailable("connection lost"));
                }
                if batch.iter().any(|row| *row < 0) {
                    return Err(Refusal::Rejected("22021".to_owned()));
                }
                table.borrow_mut().extend_from_slice(batch);
                Ok(())
            }
        })
        .await;
        let calls = *calls.borrow();
        (split, table.into_inner(), calls)
    }

    #[tokio::test]
    async fn a_clean_batch_is_one_insert() {
        let (split, table, calls) = run(&[1, 2, 3, 4], None).await;
        assert_eq!(table, [1, 2, 3, 4]);
        assert_eq!((split.settled, calls), (4, 1));
        assert!(split.dropped.is_empty() && split.error.is_none());
    }

    #[tokio::test]
    async fn refused_rows_are_dropped_and_every_other_row_is_written_in_order() {
        let rows = [1, 2, -3, 4, 5, 6, -7, 8, 9];
        let (split, table, _) = run(&rows, None).await;
        assert_eq!(table, [1, 2, 4, 5, 6, 8, 9]);
        assert_eq!(split.settled, rows.len());
        let dropped: Vec<usize> = split.dropped.iter().map(|(i, _)| *i).collect();
        assert_eq!(dropped, [2, 6]);
        assert_eq!(split.dropped[0].1, "22021");
        assert!(split.error.is_none());
    }

    #[tokio::test]
    async fn a_batch_of_only_refused_rows_drops_them_all() {
        let (split, table, _) = run(&[-1, -2, -3], None).await;
        assert!(table.is_empty());
        assert_eq!(split.settled, 3);
        assert_eq!(split.dropped.len(), 3);
    }

    #[tokio::test]
    async fn a_connection_error_stops_with_the_rows_before_it_settled() {
        // Everything before the failing range stays settled; nothing after it is tried.
        let rows = [1, -2, 3, 4];
        let (split, table, calls) = run(&rows, Some(3)).await;
        // 1: [1,-2,3,4] refused; 2: [1,-2] refused; 3: [1] unavailable.
        assert_eq!(calls, 3);
        assert!(table.is_empty());
        assert_eq!(split.settled, 0);
        assert_eq!(split.error, Some("connection lost"));

        let (split, table, _) = run(&rows, Some(5)).await;
        // 3: [1] written; 4: [-2] dropped; 5: [3,4] unavailable.
        assert_eq!(table, [1]);
        assert_eq!(split.settled, 2);
        assert_eq!(split.dropped.len(), 1);
        assert!(split.error.is_some());
    }

    #[test]
    fn text_loses_nul_and_is_capped_on_a_character_boundary() {
        let mut text = "a\0b".to_owned();
        clean_text(&mut text);
        assert_eq!(text, "a\u{FFFD}b");
        let mut long = "é".repeat(MAX_TEXT_BYTES);
        clean_text(&mut long);
        assert!(long.len() <= MAX_TEXT_BYTES && long.len() > MAX_TEXT_BYTES - 2);
        assert!(long.chars().all(|c| c == 'é'));
    }

    #[test]
    fn logs_are_capped_on_a_character_boundary_and_say_so() {
        assert_eq!(bounded_logs("a\0b\n"), ("a\u{FFFD}b\n".to_owned(), false));
        let exact = "x".repeat(MAX_LOG_BYTES);
        assert_eq!(bounded_logs(&exact), (exact.clone(), false));
        let (kept, cut) = bounded_logs(&"é".repeat(MAX_LOG_BYTES));
        assert!(cut);
        assert_eq!(kept.len(), MAX_LOG_BYTES);
        assert!(kept.chars().all(|c| c == 'é'));
        let (kept, cut) = bounded_logs(&format!("a{}", "é".repeat(MAX_LOG_BYTES)));
        assert!(cut && kept.len() == MAX_LOG_BYTES - 1);
    }
}
