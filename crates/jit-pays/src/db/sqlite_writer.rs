//! The SQLite hot paths: payments reported by notifies and new orders are committed by one
//! writer thread, and the orders a notify must read (when this process has not seen them)
//! are read by one reader thread, each driving a `rusqlite` connection of its own with
//! its statements prepared once.
//!
//! Why not sqlx: sqlx hands every statement of a SQLite connection to that connection's
//! worker thread over a channel and waits for its answer, so each statement costs a
//! hand-off, a wake-up and a context switch each way; under load those waits took a fifth
//! to a third of the server's CPU (docs/benchmarks.md). Here a caller hands over one job and
//! waits once; the thread runs every statement of a batch back to back on its own
//! connection.
//!
//! Group commit, as [`super::writer`] does it for PostgreSQL: the writer takes every job
//! queued while its previous commit ran (at most [`MAX_BATCH`]), runs them in one
//! `BEGIN IMMEDIATE` transaction — a payment's conditional UPDATE, its record row, its
//! event and its notify-log row; a new order's INSERT (and its `order.created` event while
//! row hooks listen); the notify log's queued rows — commits once (`synchronous = FULL`)
//! and only then answers each caller with its own outcome. There is no waiting for
//! company: alone, a job still costs one commit.
//!
//! Exactly-once is untouched: an order moves only through the conditional UPDATEs of
//! [`super::rows::mark_paid_on`] (`… WHERE order_id = ? AND status = 'wait'`, or the
//! late-paid variant), whose returned row makes its caller the single winner; the write
//! lock `BEGIN IMMEDIATE` takes serialises this writer with every other connection and
//! process on the file.
//!
//! All or nothing: if a statement or the commit fails, the transaction is rolled back and
//! nothing of the batch is written; each job of a failed batch of several is then tried
//! alone, so one poisoned payment fails only its own caller. An order id already taken
//! ([`StoreError::DuplicateOrder`]) and an unknown order ([`StoreError::UnknownOrder`])
//! fail only their own job inside a batch that commits.
//!
//! sea-orm keeps the schema, the migrations and every other query. The times written here
//! are the text sqlx writes ([`sqlite_time`]), so rows from either read and compare alike.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, SubsecRound, Utc};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use sea_orm::DbErr;
use tokio::sync::{mpsc, oneshot};

use super::entity::{PayStatus, pay_log};
use super::error::StoreError;
use super::notify_log::{NotifyLogEntry, insert_sqlite as insert_notify_log_sqlite};
use super::outbox::{NewEvent, Outbox, write_events_sqlite};
use super::rows::{
    GUARDED_TRADE_STATE, GUARDED_TRANSACTION_ID, PaidOutcome, PaymentRecorded, ThirdPartyState,
    conflict_recorded, conflicting_payment, now,
};
use super::writer::{Counters, Job, MAX_BATCH, NotifiedPayment, WAL_RESTART_INTERVAL, event_of};
use crate::events::PayEventKind;

/// How long the writer's periodic WAL reset may wait for readers before it gives up until
/// the next one: it holds up every write meanwhile.
const WAL_RESTART_WAIT: Duration = Duration::from_millis(250);

/// How many jobs may wait for a thread before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// The columns of `pays_pay_log`, in [`pay_log::Model`]'s order: every SELECT and
/// RETURNING here reads them by position ([`order_of_row`]).
const ORDER_COLUMNS: &str = "id, order_id, subject, amount_fen, status, element, pay_type, \
     transaction_id, paid_after_close, created_at, updated_at, paid_at, closed_at, expires_at, \
     check_attempts, next_check_at, event_seq, refunded_fen, refund_reserved_fen";

/// A time as sqlx writes it into SQLite (RFC 3339, the sub-second digits it has, `+00:00`),
/// so the rows of both writers compare and sort alike as text.
pub(crate) fn sqlite_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Reads a time back: RFC 3339 as written here and by sqlx, or SQLite's own
/// `YYYY-MM-DD HH:MM:SS[.fff]` (`CURRENT_TIMESTAMP`).
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%F %T%.f")
                .ok()
                .map(|at| at.and_utc())
        })
}

/// The [`StoreError`] of a failed SQLite call while `doing` something.
pub(crate) fn sqlite_error(doing: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |error| StoreError::Db {
        doing,
        source: DbErr::Custom(error.to_string()),
    }
}

fn time_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(index)?;
    parse_time(&text).ok_or_else(|| unreadable(index, &text))
}

fn optional_time_column(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| parse_time(&text).ok_or_else(|| unreadable(index, &text)))
        .transpose()
}

fn unreadable(index: usize, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("unreadable value {text:?}").into(),
    )
}

/// An order read with [`ORDER_COLUMNS`].
fn order_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<pay_log::Model> {
    let status: String = row.get(4)?;
    Ok(pay_log::Model {
        id: row.get(0)?,
        order_id: row.get(1)?,
        subject: row.get(2)?,
        amount_fen: row.get(3)?,
        status: PayStatus::parse(&status).ok_or_else(|| unreadable(4, &status))?,
        element: row.get(5)?,
        pay_type: row.get(6)?,
        transaction_id: row.get(7)?,
        paid_after_close: row.get(8)?,
        created_at: time_column(row, 9)?,
        updated_at: time_column(row, 10)?,
        paid_at: optional_time_column(row, 11)?,
        closed_at: optional_time_column(row, 12)?,
        expires_at: time_column(row, 13)?,
        check_attempts: row.get(14)?,
        next_check_at: time_column(row, 15)?,
        event_seq: row.get(16)?,
        refunded_fen: row.get(17)?,
        refund_reserved_fen: row.get(18)?,
    })
}

/// Opens the file of the store's SQLite database for one of the threads, with the pragmas
/// the store's own connections have: `synchronous = FULL` (a commit is on disk before its
/// callers hear of it), the busy timeout, foreign keys.
fn open(path: &PathBuf, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(busy_timeout)?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "journal_size_limit", super::WAL_SIZE_LIMIT as i64)?;
    let journal: String = connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    let synchronous: i64 = connection.pragma_query_value(None, "synchronous", |row| row.get(0))?;
    // The file was opened (and set to WAL) by the store; anything else is refused.
    if !journal.eq_ignore_ascii_case("wal") || synchronous != 2 {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "{}: journal_mode {journal}, synchronous {synchronous}; expected wal and 2 (FULL)",
            path.display()
        )));
    }
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// A job for the writer thread.
// Each job moves once, through the queue: boxing the larger variant would cost every
// payment an allocation to save the log's rare jobs a few hundred bytes.
#[allow(clippy::large_enum_variant)]
enum WriteJob {
    /// A payment or a new order, as the sea-orm writer takes them.
    Shared(Job),
    /// Notify-log rows of notifies that wrote nothing else (repeats, refusals), from the
    /// log's own queue ([`super::notify_log::NotifyLog`]).
    Log {
        entries: Vec<NotifyLogEntry>,
        answer: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// What a job asks, without its answer channel (kept to try a job again alone).
enum Work {
    Payment(NotifiedPayment),
    Order(pay_log::Model),
    Log(Vec<NotifyLogEntry>),
}

/// What a job got.
enum Done {
    Payment(Result<PaymentRecorded, StoreError>),
    Order(Result<pay_log::Model, StoreError>),
    Log,
}

enum Answer {
    Payment(oneshot::Sender<Result<PaymentRecorded, StoreError>>),
    Order(oneshot::Sender<Result<pay_log::Model, StoreError>>),
    Log(oneshot::Sender<Result<(), StoreError>>),
}

impl Answer {
    fn send(self, done: Done) {
        // A caller that stopped waiting (its request was cancelled) changes nothing: what
        // committed stays committed, and WeChat's retry of a payment is a repeat.
        match (self, done) {
            (Answer::Payment(answer), Done::Payment(result)) => {
                let _ = answer.send(result);
            }
            (Answer::Order(answer), Done::Order(result)) => {
                let _ = answer.send(result);
            }
            (Answer::Log(answer), Done::Log) => {
                let _ = answer.send(Ok(()));
            }
            (answer, _) => answer.fail(&lost_answer()),
        }
    }

    fn fail(self, error: &StoreError) {
        let error = || StoreError::Db {
            doing: "committing a batch",
            source: DbErr::Custom(error.to_string()),
        };
        match self {
            Answer::Payment(answer) => {
                let _ = answer.send(Err(error()));
            }
            Answer::Order(answer) => {
                let _ = answer.send(Err(error()));
            }
            Answer::Log(answer) => {
                let _ = answer.send(Err(error()));
            }
        }
    }
}

fn lost_answer() -> StoreError {
    StoreError::Db {
        doing: "committing a batch",
        source: DbErr::Custom("the writer mixed up two answers".into()),
    }
}

fn thread_gone(doing: &'static str) -> StoreError {
    StoreError::Db {
        doing,
        source: DbErr::Custom("the SQLite writer thread stopped before answering".into()),
    }
}

/// A read for the reader thread: one order by id.
struct ReadJob {
    order_id: String,
    answer: oneshot::Sender<Result<Option<pay_log::Model>, StoreError>>,
}

/// The queues to a store's SQLite writer and reader threads. Each thread is started on
/// first use with a connection of its own to the store's file, and ends when the store (and
/// every clone) is dropped; if one is gone, the next job starts another.
#[derive(Debug)]
pub(crate) struct SqliteHotPath {
    path: PathBuf,
    busy_timeout: Duration,
    outbox: Arc<Outbox>,
    counters: Arc<Counters>,
    writer: Mutex<Option<mpsc::Sender<WriteJob>>>,
    reader: Mutex<Option<mpsc::Sender<ReadJob>>>,
}

impl std::fmt::Debug for WriteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteJob::Shared(job) => job.fmt(f),
            WriteJob::Log { entries, .. } => f
                .debug_struct("Log")
                .field("entries", &entries.len())
                .finish_non_exhaustive(),
        }
    }
}

impl std::fmt::Debug for ReadJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadJob")
            .field("order_id", &self.order_id)
            .finish_non_exhaustive()
    }
}

impl SqliteHotPath {
    /// The hot paths of the SQLite file at `path`; `None` for an in-memory database (the
    /// threads could not share it: the store's sea-orm paths serve it).
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        outbox: Arc<Outbox>,
        counters: Arc<Counters>,
    ) -> Option<Self> {
        let name = path.to_string_lossy();
        if name.is_empty() || name == ":memory:" || name.starts_with("file::memory:") {
            return None;
        }
        Some(SqliteHotPath {
            path,
            busy_timeout,
            outbox,
            counters,
            writer: Mutex::new(None),
            reader: Mutex::new(None),
        })
    }

    fn writer(&self) -> Result<mpsc::Sender<WriteJob>, StoreError> {
        let mut writer = self.writer.lock();
        if let Some(sender) = writer.as_ref().filter(|sender| !sender.is_closed()) {
            return Ok(sender.clone());
        }
        let connection = open(&self.path, self.busy_timeout)
            .map_err(sqlite_error("opening the SQLite writer's connection"))?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let outbox = Arc::clone(&self.outbox);
        let counters = Arc::clone(&self.counters);
        let busy_timeout = self.busy_timeout;
        std::thread::Builder::new()
            .name("jit-pays-sqlite-writer".into())
            .spawn(move || run_writer(connection, receiver, &outbox, &counters, busy_timeout))
            .map_err(|error| StoreError::Db {
                doing: "starting the SQLite writer",
                source: DbErr::Custom(error.to_string()),
            })?;
        *writer = Some(sender.clone());
        Ok(sender)
    }

    fn reader(&self) -> Result<mpsc::Sender<ReadJob>, StoreError> {
        let mut reader = self.reader.lock();
        if let Some(sender) = reader.as_ref().filter(|sender| !sender.is_closed()) {
            return Ok(sender.clone());
        }
        let connection = open(&self.path, self.busy_timeout)
            .and_then(|connection| {
                connection.pragma_update(None, "query_only", true)?;
                Ok(connection)
            })
            .map_err(sqlite_error("opening the SQLite reader's connection"))?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("jit-pays-sqlite-reader".into())
            .spawn(move || run_reader(connection, receiver))
            .map_err(|error| StoreError::Db {
                doing: "starting the SQLite reader",
                source: DbErr::Custom(error.to_string()),
            })?;
        *reader = Some(sender.clone());
        Ok(sender)
    }

    async fn write(&self, job: WriteJob, doing: &'static str) -> Result<(), StoreError> {
        if let Err(mpsc::error::SendError(job)) = self.writer()?.send(job).await {
            // The thread is gone (it panicked): this call starts another.
            self.writer()?
                .send(job)
                .await
                .map_err(|_| thread_gone(doing))?;
        }
        Ok(())
    }

    /// Records `payment` in the writer's next batch; answers once that batch committed.
    pub(crate) async fn record(
        &self,
        payment: NotifiedPayment,
    ) -> Result<PaymentRecorded, StoreError> {
        const DOING: &str = "committing a payment";
        let (answer, answered) = oneshot::channel();
        self.write(WriteJob::Shared(Job::Payment { payment, answer }), DOING)
            .await?;
        answered.await.map_err(|_| thread_gone(DOING))?
    }

    /// Inserts `order` (its `id` is assigned) in the writer's next batch; answers once that
    /// batch committed.
    pub(crate) async fn insert(&self, order: pay_log::Model) -> Result<pay_log::Model, StoreError> {
        const DOING: &str = "inserting an order";
        let (answer, answered) = oneshot::channel();
        self.write(WriteJob::Shared(Job::Order { order, answer }), DOING)
            .await?;
        answered.await.map_err(|_| thread_gone(DOING))?
    }

    /// Writes notify-log `entries` in the writer's next batch; answers once committed.
    pub(crate) async fn log(&self, entries: Vec<NotifyLogEntry>) -> Result<(), StoreError> {
        const DOING: &str = "logging notifies";
        let (answer, answered) = oneshot::channel();
        self.write(WriteJob::Log { entries, answer }, DOING).await?;
        answered.await.map_err(|_| thread_gone(DOING))?
    }

    /// One order by id, read with whatever other reads are queued in one `IN (…)` query.
    pub(crate) async fn read(&self, order_id: &str) -> Result<Option<pay_log::Model>, StoreError> {
        const DOING: &str = "reading an order";
        let (answer, answered) = oneshot::channel();
        let job = ReadJob {
            order_id: order_id.to_owned(),
            answer,
        };
        if let Err(mpsc::error::SendError(job)) = self.reader()?.send(job).await {
            self.reader()?
                .send(job)
                .await
                .map_err(|_| thread_gone(DOING))?;
        }
        answered.await.map_err(|_| thread_gone(DOING))?
    }
}

/// Takes the first job waiting (blocking) and whatever else is queued, up to `MAX_BATCH`.
fn next_batch<J>(queue: &mut mpsc::Receiver<J>, batch: &mut Vec<J>) -> bool {
    let Some(first) = queue.blocking_recv() else {
        return false;
    };
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    true
}

fn run_writer(
    mut connection: Connection,
    mut queue: mpsc::Receiver<WriteJob>,
    outbox: &Outbox,
    counters: &Counters,
    busy_timeout: Duration,
) {
    let mut wal_restarted = Instant::now();
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while next_batch(&mut queue, &mut jobs) {
        let (work, answers): (Vec<Work>, Vec<Answer>) = jobs
            .drain(..)
            .map(|job| match job {
                WriteJob::Shared(Job::Payment { payment, answer }) => {
                    (Work::Payment(payment), Answer::Payment(answer))
                }
                WriteJob::Shared(Job::Order { order, answer }) => {
                    (Work::Order(order), Answer::Order(answer))
                }
                WriteJob::Log { entries, answer } => (Work::Log(entries), Answer::Log(answer)),
            })
            .unzip();
        commit_and_answer(&mut connection, outbox, counters, work, answers);
        // After the answers, so no caller waits for it.
        if wal_restarted.elapsed() >= WAL_RESTART_INTERVAL {
            restart_wal(&connection, busy_timeout);
            wal_restarted = Instant::now();
        }
    }
}

fn commit_and_answer(
    connection: &mut Connection,
    outbox: &Outbox,
    counters: &Counters,
    work: Vec<Work>,
    answers: Vec<Answer>,
) {
    let payments = work
        .iter()
        .filter(|work| matches!(work, Work::Payment(_)))
        .count();
    let started = Instant::now();
    let committed = commit_batch(connection, outbox, &work);
    if payments > 0 {
        crate::metrics::writer_commit(payments, started.elapsed(), committed.is_ok());
    }
    match committed {
        Ok(done) => {
            if payments > 0 {
                // Counted before anyone is answered, so a caller sees its own commit.
                counters.commits.fetch_add(1, Ordering::SeqCst);
                counters
                    .payments
                    .fetch_add(payments as u64, Ordering::SeqCst);
            }
            for (answer, done) in answers.into_iter().zip(done) {
                answer.send(done);
            }
        }
        Err(error) if work.len() > 1 => {
            tracing::error!(%error, jobs = work.len(),
                "a batch of payments and orders could not be committed; each is tried alone");
            for (work, answer) in work.into_iter().zip(answers) {
                commit_and_answer(connection, outbox, counters, vec![work], vec![answer]);
            }
        }
        Err(error) => {
            tracing::error!(%error, "a payment or order could not be committed");
            for answer in answers {
                answer.fail(&error);
            }
        }
    }
}

/// `PRAGMA wal_checkpoint(RESTART)`: copies the WAL into the database and makes the next
/// commit start the WAL over ([`super::writer`] says why). Best effort, waiting at most
/// [`WAL_RESTART_WAIT`] for readers.
fn restart_wal(connection: &Connection, busy_timeout: Duration) {
    let result = connection.busy_timeout(WAL_RESTART_WAIT).and_then(|()| {
        connection.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
            row.get::<_, i64>(0)
        })
    });
    match result {
        // (busy, WAL frames, frames checkpointed); busy = 1 means it could not finish.
        Ok(0) => {}
        Ok(_) => tracing::debug!("WAL restart deferred: readers still busy"),
        Err(error) => tracing::warn!(%error, "WAL checkpoint failed; retried later"),
    }
    // The store's own busy timeout again, for the writes.
    if let Err(error) = connection.busy_timeout(busy_timeout) {
        tracing::warn!(%error, "the SQLite writer's busy timeout could not be set back");
    }
}

/// Runs `work` in one transaction with the event of every transition it makes, commits,
/// and raises `outbox`'s signal. `Err`: nothing of it was written.
fn commit_batch(
    connection: &mut Connection,
    outbox: &Outbox,
    work: &[Work],
) -> Result<Vec<Done>, StoreError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error("starting a transaction"))?;
    let mut done = Vec::with_capacity(work.len());
    let mut transitions = Vec::new();
    let mut logged = Vec::new();
    for work in work {
        match work {
            Work::Log(entries) => {
                insert_notify_log_sqlite(&transaction, entries)?;
                done.push(Done::Log);
            }
            Work::Order(order) => {
                let inserted = insert_order(&transaction, order)?;
                if let Ok(row) = &inserted
                    && outbox.has_row_hooks()
                {
                    transitions.push(NewEvent::transition(
                        PayEventKind::OrderCreated,
                        row.clone(),
                    ));
                }
                done.push(Done::Order(inserted));
            }
            Work::Payment(payment) => {
                let state = &payment.state;
                let recorded = match mark_paid(
                    &transaction,
                    &state.order_id,
                    state.transaction_id.as_deref(),
                    payment.paid_at,
                )? {
                    Ok(recorded) => recorded,
                    Err(unknown) => {
                        done.push(Done::Payment(Err(unknown)));
                        continue;
                    }
                };
                let recorded = match conflicting_payment(&recorded, state) {
                    // A second transaction for a paid order: kept apart; the record keeps
                    // the first payment's notify.
                    Some(kept) => record_conflict(&transaction, state, kept, recorded.order)?,
                    None => {
                        save_record(&transaction, state)?;
                        recorded
                    }
                };
                transitions.extend(event_of(payment, &recorded));
                logged.push(NotifyLogEntry::of_payment(state, &recorded.outcome));
                done.push(Done::Payment(Ok(recorded)));
            }
        }
    }
    let events = write_events_sqlite(&transaction, outbox, transitions)?;
    insert_notify_log_sqlite(&transaction, &logged)?;
    transaction
        .commit()
        .map_err(sqlite_error("committing a batch"))?;
    outbox.announce_written(&events);
    Ok(done)
}

/// Inserts a new `wait` order; a taken order id is `Ok(Err(DuplicateOrder))` (only that
/// statement is undone; the batch goes on).
fn insert_order(
    transaction: &rusqlite::Transaction<'_>,
    order: &pay_log::Model,
) -> Result<Result<pay_log::Model, StoreError>, StoreError> {
    let mut insert = transaction
        .prepare_cached(
            "INSERT INTO pays_pay_log (order_id, subject, amount_fen, status, element, \
             pay_type, transaction_id, paid_after_close, created_at, updated_at, paid_at, \
             closed_at, expires_at, check_attempts, next_check_at, event_seq, refunded_fen, \
             refund_reserved_fen) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(sqlite_error("inserting an order"))?;
    let inserted = insert.execute(params![
        order.order_id,
        order.subject,
        order.amount_fen,
        order.status.as_str(),
        order.element,
        order.pay_type,
        order.transaction_id,
        order.paid_after_close,
        sqlite_time(&order.created_at),
        sqlite_time(&order.updated_at),
        order.paid_at.as_ref().map(sqlite_time),
        order.closed_at.as_ref().map(sqlite_time),
        sqlite_time(&order.expires_at),
        order.check_attempts,
        sqlite_time(&order.next_check_at),
        order.event_seq,
        order.refunded_fen,
        order.refund_reserved_fen,
    ]);
    match inserted {
        Ok(_) => Ok(Ok(pay_log::Model {
            id: transaction.last_insert_rowid(),
            ..order.clone()
        })),
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Ok(Err(StoreError::DuplicateOrder {
                order_id: order.order_id.clone(),
            }))
        }
        Err(error) => Err(sqlite_error("inserting an order")(error)),
    }
}

fn find_order(
    transaction: &rusqlite::Transaction<'_>,
    order_id: &str,
) -> Result<Option<pay_log::Model>, StoreError> {
    transaction
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM pays_pay_log WHERE order_id = ?"
        ))
        .and_then(|mut select| select.query_row([order_id], order_of_row).optional())
        .map_err(sqlite_error("reading an order"))
}

/// `from → success` with this payment's transaction and time, if the order is still in
/// `from` (flagged `paid_after_close` unless `from` is `wait`): the row it changed.
fn paid_from(
    transaction: &rusqlite::Transaction<'_>,
    order_id: &str,
    from: PayStatus,
    transaction_id: Option<&str>,
    paid_at: &str,
) -> Result<Option<pay_log::Model>, StoreError> {
    let late = from != PayStatus::Wait;
    transaction
        .prepare_cached(&format!(
            "UPDATE pays_pay_log SET status = 'success', transaction_id = ?, paid_at = ?, \
             updated_at = ?, event_seq = event_seq + 1{} \
             WHERE order_id = ? AND status = ? RETURNING {ORDER_COLUMNS}",
            if late { ", paid_after_close = 1" } else { "" }
        ))
        .and_then(|mut update| {
            update
                .query_row(
                    params![
                        transaction_id,
                        paid_at,
                        sqlite_time(&now()),
                        order_id,
                        from.as_str()
                    ],
                    order_of_row,
                )
                .optional()
        })
        .map_err(sqlite_error(if late {
            "marking a closed order paid"
        } else {
            "marking an order paid"
        }))
}

/// [`super::rows::mark_paid_on`] on this connection: the same conditional UPDATEs, so the
/// same single winner. `Ok(Err(UnknownOrder))` fails only this payment.
fn mark_paid(
    transaction: &rusqlite::Transaction<'_>,
    order_id: &str,
    transaction_id: Option<&str>,
    paid_at: DateTime<Utc>,
) -> Result<Result<PaymentRecorded, StoreError>, StoreError> {
    let paid_at = sqlite_time(&paid_at.trunc_subsecs(6));
    let unknown = || StoreError::UnknownOrder {
        order_id: order_id.to_owned(),
    };
    // Statuses only move forward, so two rounds always settle it.
    for _ in 0..2 {
        if let Some(order) = paid_from(
            transaction,
            order_id,
            PayStatus::Wait,
            transaction_id,
            &paid_at,
        )? {
            return Ok(Ok(PaymentRecorded {
                outcome: PaidOutcome::Paid,
                order: Some(order),
            }));
        }
        let Some(current) = find_order(transaction, order_id)? else {
            return Ok(Err(unknown()));
        };
        match current.status {
            PayStatus::Success => {
                return Ok(Ok(PaymentRecorded {
                    outcome: PaidOutcome::AlreadyPaid,
                    order: Some(current),
                }));
            }
            PayStatus::Wait => continue,
            previous @ (PayStatus::Close | PayStatus::Timeout) => {
                if let Some(order) =
                    paid_from(transaction, order_id, previous, transaction_id, &paid_at)?
                {
                    return Ok(Ok(PaymentRecorded {
                        outcome: PaidOutcome::PaidAfterClose { previous },
                        order: Some(order),
                    }));
                }
            }
        }
    }
    match find_order(transaction, order_id)? {
        None => Ok(Err(unknown())),
        Some(current) if current.status == PayStatus::Success => Ok(Ok(PaymentRecorded {
            outcome: PaidOutcome::AlreadyPaid,
            order: Some(current),
        })),
        Some(_) => Err(StoreError::Db {
            doing: "marking an order paid",
            source: DbErr::Custom(format!(
                "order {order_id} neither moved to success nor is in success"
            )),
        }),
    }
}

/// [`super::rows::record_conflict_on`] on this connection.
fn record_conflict(
    transaction: &rusqlite::Transaction<'_>,
    state: &ThirdPartyState,
    kept: String,
    order: Option<pay_log::Model>,
) -> Result<PaymentRecorded, StoreError> {
    let written = transaction
        .prepare_cached(
            "INSERT INTO pays_payment_conflict (order_id, transaction_id, \
             order_transaction_id, total_fee, raw_notify, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (order_id, transaction_id) DO NOTHING",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                state.order_id,
                state.transaction_id.as_deref().unwrap_or_default(),
                kept,
                state.total_fee,
                state.raw,
                sqlite_time(&now()),
            ])
        })
        .map_err(sqlite_error("recording a payment conflict"))?;
    let first_seen = written == 1;
    let counted = if first_seen {
        transaction
            .prepare_cached(&format!(
                "UPDATE pays_pay_log SET event_seq = event_seq + 1 WHERE order_id = ? \
                 RETURNING {ORDER_COLUMNS}"
            ))
            .and_then(|mut update| {
                update
                    .query_row([state.order_id.as_str()], order_of_row)
                    .optional()
            })
            .map_err(sqlite_error("counting a payment conflict's event"))?
    } else {
        None
    };
    Ok(conflict_recorded(first_seen, counted, order))
}

/// The record row of a verified notify, upserted as [`super::rows::save_third_party_on`]
/// does it (a paid record keeps its state and transaction).
fn save_record(
    transaction: &rusqlite::Transaction<'_>,
    state: &ThirdPartyState,
) -> Result<(), StoreError> {
    let at = sqlite_time(&now());
    transaction
        .prepare_cached(&format!(
            "INSERT INTO pays_wechat_record (order_id, appid, mch_id, trade_state, \
             transaction_id, total_fee, last_notify, created_at, updated_at, notified_at, \
             api_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (order_id) DO UPDATE SET \
             last_notify = excluded.last_notify, notified_at = excluded.notified_at, \
             updated_at = excluded.updated_at, trade_state = {GUARDED_TRADE_STATE}, \
             transaction_id = {GUARDED_TRANSACTION_ID}"
        ))
        .and_then(|mut upsert| {
            upsert.execute(params![
                state.order_id,
                state.appid,
                state.mch_id,
                state.trade_state,
                state.transaction_id,
                state.total_fee,
                state.raw,
                at,
                at,
                at,
                state.api_version.as_str(),
            ])
        })
        .map_err(sqlite_error("saving WeChat's order state"))?;
    Ok(())
}

fn run_reader(connection: Connection, mut queue: mpsc::Receiver<ReadJob>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while next_batch(&mut queue, &mut jobs) {
        let order_ids: Vec<&str> = jobs.iter().map(|job| job.order_id.as_str()).collect();
        match read_orders(&connection, &order_ids) {
            Ok(found) => {
                for job in jobs.drain(..) {
                    let _ = job.answer.send(Ok(found.get(&job.order_id).cloned()));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for job in jobs.drain(..) {
                    let _ = job.answer.send(Err(StoreError::Db {
                        doing: "reading an order",
                        source: DbErr::Custom(message.clone()),
                    }));
                }
            }
        }
    }
}

/// The orders of `order_ids` that exist, by id, in one `SELECT … WHERE order_id IN (…)`,
/// its list padded to a power of two (by naming the last id again) so a handful of
/// statements, prepared once, cover every batch.
fn read_orders(
    connection: &Connection,
    order_ids: &[&str],
) -> rusqlite::Result<HashMap<String, pay_log::Model>> {
    let mut distinct: Vec<&str> = Vec::with_capacity(order_ids.len());
    let mut seen = HashSet::with_capacity(order_ids.len());
    for id in order_ids {
        if seen.insert(*id) {
            distinct.push(id);
        }
    }
    let Some(&last) = distinct.last() else {
        return Ok(HashMap::new());
    };
    let padded = distinct.len().next_power_of_two();
    distinct.resize(padded, last);
    let placeholders = vec!["?"; padded].join(", ");
    let mut select = connection.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM pays_pay_log WHERE order_id IN ({placeholders})"
    ))?;
    let rows = select.query_map(rusqlite::params_from_iter(distinct.iter()), order_of_row)?;
    rows.map(|row| row.map(|order| (order.order_id.clone(), order)))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sea_orm::ConnectionTrait;

    use super::*;
    use crate::db::store::PayStore;
    use crate::db::writer::tests::new_order;
    use crate::db::{DbConfig, connect};

    fn payment(order_id: &str) -> ThirdPartyState {
        crate::db::writer::tests::payment(order_id).state
    }

    async fn store(dir: &tempfile::TempDir) -> PayStore {
        connect(&DbConfig::sqlite_beside(dir.path(), "hot"))
            .await
            .unwrap()
    }

    /// A payment whose statement fails takes down its batch; the others of the batch are
    /// then committed alone, and only the poisoned one is answered with the error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_payment_fails_only_its_own_caller() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let ids: Vec<String> = (0..40)
            .map(|i| format!("P{i}"))
            .chain(["POISON".into()])
            .collect();
        for id in &ids {
            store.insert_order(new_order(id)).await.unwrap();
        }
        store
            .connection()
            .execute_unprepared(
                "CREATE TRIGGER poison BEFORE UPDATE ON pays_pay_log \
                 WHEN NEW.order_id = 'POISON' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            )
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids {
            let store = store.clone();
            tasks.spawn(async move {
                let recorded = store
                    .record_notified_payment(payment(&id), Utc::now())
                    .await;
                (id, recorded)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (id, recorded) = joined.unwrap();
            if id == "POISON" {
                let error = recorded.unwrap_err();
                assert!(error.to_string().contains("poisoned"), "{error}");
                assert_eq!(store.get_order(&id).await.unwrap().status, PayStatus::Wait);
            } else {
                assert_eq!(recorded.unwrap().outcome, PaidOutcome::Paid, "{id}");
                assert_eq!(
                    store.get_order(&id).await.unwrap().status,
                    PayStatus::Success
                );
            }
        }
    }

    /// A process that did not create the orders reads their facts, many at once, from the
    /// reader thread; an unknown order is none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_store_reads_many_orders_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(&dir).await;
        for i in 0..300 {
            first
                .insert_order(new_order(&format!("C{i}")))
                .await
                .unwrap();
        }
        let second = store(&dir).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..301 {
            let store = second.clone();
            // Each order twice, and one that does not exist.
            let id = format!("C{}", i % 300);
            let id = if i == 300 { "MISSING".to_owned() } else { id };
            tasks.spawn(async move { (id.clone(), store.order_facts(&id).await.unwrap()) });
            let second = second.clone();
            tasks.spawn(async move {
                let id = format!("C{}", (i + 7) % 300);
                (id.clone(), second.order_facts(&id).await.unwrap())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (id, facts) = joined.unwrap();
            match facts {
                Some(facts) => {
                    assert_eq!(facts.order_id, id);
                    assert_eq!(facts.amount_fen, 100);
                    assert_eq!(facts.element, "pays.myWechatPay");
                }
                None => assert_eq!(id, "MISSING"),
            }
        }
    }

    /// The record row a payment writes says which API the notify came through.
    #[tokio::test]
    async fn a_payment_record_keeps_its_api_version() {
        use crate::db::entity::ApiVersion;
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        for (id, api_version) in [("V2ORDER", ApiVersion::V2), ("V3ORDER", ApiVersion::V3)] {
            store.insert_order(new_order(id)).await.unwrap();
            let state = ThirdPartyState {
                api_version,
                ..payment(id)
            };
            let recorded = store
                .record_notified_payment(state, Utc::now())
                .await
                .unwrap();
            assert_eq!(recorded.outcome, PaidOutcome::Paid);
            let record = store.find_record(id).await.unwrap().unwrap();
            assert_eq!(record.api_version, api_version, "{id}");
            assert_eq!(record.trade_state.as_deref(), Some("SUCCESS"), "{id}");
            assert_eq!(record.transaction_id, Some(format!("T{id}")), "{id}");
        }
    }

    #[test]
    fn times_read_back_as_written_by_either_writer() {
        let at = now();
        assert_eq!(parse_time(&sqlite_time(&at)), Some(at));
        assert_eq!(
            parse_time("2026-11-27 11:34:53.5"),
            Some(
                DateTime::parse_from_rfc3339("2026-11-27T11:34:53.5+00:00")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
