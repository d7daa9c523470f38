//! Group commit for the payments notifies report and the orders `create` makes.
//!
//! A durable commit (the fsync of SQLite's WAL, or PostgreSQL's WAL flush) costs far more
//! than the statements before it, and writes to one SQLite file are serialised anyway. So
//! one writer task per store takes every payment queued while its previous commit ran (up
//! to [`MAX_BATCH`]), runs their conditional UPDATE and record-table upsert in one
//! transaction, commits once and only then answers each caller with its own outcome.
//!
//! Exactly-once is untouched: an order moves only through a conditional `UPDATE … WHERE
//! status = 'wait'` (or the late-paid variant), and only the rows it reports changed count
//! as transitions — each given to one payment: the first of the batch naming the order.
//! A second notify for the order in the same batch sees the first's write inside the
//! transaction; writers outside the batch (check, cancel, the reconciler, other
//! processes) race on the same row as before.
//!
//! All or nothing: if a statement or the commit fails, the transaction is rolled back and
//! every caller of the batch gets the error — none is told the payment is recorded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use parking_lot::Mutex;
use sea_orm::sea_query::{CaseStatement, Expr, OnConflict, UpdateStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryTrait, Statement, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use super::entity::{PayStatus, pay_log, wechat_record};
use super::error::{StoreError, db};
use super::notify_log::{NotifyLogEntry, insert_on as insert_notify_log_on};
use super::outbox::{NewEvent, Outbox, write_events_on};
use super::rows::{
    PaidOutcome, PaymentRecorded, ThirdPartyState, conflicting_payment, guarded_trade_state,
    guarded_transaction_id, mark_paid_on, next_event_seq, now, record_conflict_on, third_party_row,
};
use crate::events::PayEventKind;

/// At most this many payments share a commit. Bounds the time a transaction holds the
/// write lock (and the latency of its last caller); at a few tens of µs of statements per
/// payment, a full batch costs about as much as a few fsyncs.
pub(crate) const MAX_BATCH: usize = 256;

/// On SQLite, at most this often the writer asks for the WAL to be reset (a `RESTART`
/// checkpoint). SQLite's automatic checkpoints copy the WAL back into the database, but the
/// WAL starts over only when a commit finds no reader using it; under a steady stream of
/// notifies such a moment is left to chance, and a WAL that keeps growing makes every read
/// slower. A RESTART checkpoint makes that moment: it waits until the readers of the moment
/// are done (each reads one row), so the next commit writes the WAL from its start.
pub(crate) const WAL_RESTART_INTERVAL: Duration = Duration::from_secs(1);

/// How many payments may wait for the writer before callers wait to enqueue (back
/// pressure instead of an unbounded queue).
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// A verified payment to record.
#[derive(Debug)]
pub(crate) struct NotifiedPayment {
    /// The record-table row (and the order id and transaction id it carries).
    pub state: ThirdPartyState,
    /// When WeChat says it was paid.
    pub paid_at: DateTime<Utc>,
}

/// A job for a store's writer (this task, or the SQLite writer thread): a payment to
/// record, or a new order to insert, with where to send its outcome.
pub(crate) enum Job {
    /// A verified payment.
    Payment {
        payment: NotifiedPayment,
        answer: oneshot::Sender<Result<PaymentRecorded, StoreError>>,
    },
    /// A new order (its `id` assigned by the insert).
    Order {
        order: pay_log::Model,
        answer: oneshot::Sender<Result<pay_log::Model, StoreError>>,
    },
}

/// What a store's notify writer has committed since the store was opened (shared by its
/// clones): [`crate::PayStore::notify_writer_stats`]. Fewer commits than payments is group
/// commit at work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyWriterStats {
    /// Transactions committed, one per batch.
    pub commits: u64,
    /// Payments those transactions held.
    pub payments: u64,
}

/// The counters behind [`NotifyWriterStats`], written by the writer task (or, on SQLite,
/// by the writer thread of [`super::sqlite_writer`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) payments: AtomicU64,
}

/// The queue to a store's writer task. The task is started on first use (on the runtime
/// of that use) and ends when the store is dropped; if it is gone (its runtime shut down),
/// the next payment starts a new one.
#[derive(Debug)]
pub(crate) struct NotifyWriter {
    connection: DatabaseConnection,
    outbox: Arc<Outbox>,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let order_id = match self {
            Job::Payment { payment, .. } => &payment.state.order_id,
            Job::Order { order, .. } => &order.order_id,
        };
        f.debug_struct("Job")
            .field("order_id", order_id)
            .finish_non_exhaustive()
    }
}

fn writer_gone() -> StoreError {
    StoreError::Db {
        doing: "committing a payment",
        source: DbErr::Custom("the payment writer stopped before answering".into()),
    }
}

impl NotifyWriter {
    pub(crate) fn new(connection: DatabaseConnection, outbox: Arc<Outbox>) -> Self {
        NotifyWriter {
            connection,
            outbox,
            queue: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    /// The counters of [`NotifyWriter::stats`], for another writer of the same store to
    /// count in.
    pub(crate) fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// What the writer has committed so far.
    pub(crate) fn stats(&self) -> NotifyWriterStats {
        NotifyWriterStats {
            commits: self.counters.commits.load(Ordering::SeqCst),
            payments: self.counters.payments.load(Ordering::SeqCst),
        }
    }

    fn queue(&self) -> mpsc::Sender<Job> {
        let mut queue = self.queue.lock();
        if let Some(sender) = queue.as_ref().filter(|sender| !sender.is_closed()) {
            return sender.clone();
        }
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(
            self.connection.clone(),
            Arc::clone(&self.outbox),
            receiver,
            Arc::clone(&self.counters),
        ));
        *queue = Some(sender.clone());
        sender
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        if let Err(mpsc::error::SendError(job)) = self.queue().send(job).await {
            // The task died with the runtime it was started on; this call starts another.
            self.queue().send(job).await.map_err(|_| writer_gone())?;
        }
        Ok(())
    }

    /// Queues `payment` and waits until its batch is committed (or failed).
    pub(crate) async fn record(
        &self,
        payment: NotifiedPayment,
    ) -> Result<PaymentRecorded, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.send(Job::Payment { payment, answer }).await?;
        answered.await.map_err(|_| writer_gone())?
    }

    /// Queues the new `order` (its `id` is assigned) and waits until its batch is
    /// committed (or failed): creations share commits as payments do.
    pub(crate) async fn insert(&self, order: pay_log::Model) -> Result<pay_log::Model, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.send(Job::Order { order, answer }).await?;
        answered.await.map_err(|_| writer_gone())?
    }
}

/// On SQLite, the writer's own connection (a pool of one with the store's options): a
/// connection's page cache survives only its own commits — any other connection's write
/// empties it — so a writer taking whichever pooled connection is free would read its
/// B-tree pages back from the file on every batch. PostgreSQL keeps pages in the server
/// and shares the store's pool.
fn own_connection(connection: &DatabaseConnection) -> DatabaseConnection {
    super::sqlite_side_pool(connection, 1, |options| options)
}

async fn run(
    connection: DatabaseConnection,
    outbox: Arc<Outbox>,
    mut queue: mpsc::Receiver<Job>,
    counters: Arc<Counters>,
) {
    let connection = own_connection(&connection);
    let sqlite = connection.get_database_backend() == DbBackend::Sqlite;
    let mut wal_restarted = Instant::now();
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut payments = Vec::with_capacity(jobs.len());
        let mut payment_answers = Vec::with_capacity(jobs.len());
        let mut orders = Vec::new();
        let mut order_answers = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Payment { payment, answer } => {
                    payments.push(payment);
                    payment_answers.push(answer);
                }
                Job::Order { order, answer } => {
                    orders.push(order);
                    order_answers.push(answer);
                }
            }
        }
        let size = payments.len();
        let started = Instant::now();
        let committed = commit_jobs(&connection, &outbox, orders, payments).await;
        if size > 0 {
            crate::metrics::writer_commit(size, started.elapsed(), committed.is_ok());
        }
        match committed {
            Ok((inserted, outcomes)) => {
                if size > 0 {
                    // Counted before anyone is answered, so a caller sees its own commit.
                    counters.commits.fetch_add(1, Ordering::SeqCst);
                    counters.payments.fetch_add(size as u64, Ordering::SeqCst);
                }
                // A caller that stopped waiting (its request was cancelled) changes
                // nothing: what it asked for is committed (a payment's retry is a repeat).
                for (answer, outcome) in payment_answers.into_iter().zip(outcomes) {
                    let _ = answer.send(outcome);
                }
                for (answer, order) in order_answers.into_iter().zip(inserted) {
                    let _ = answer.send(order);
                }
            }
            Err(error) => {
                tracing::error!(%error, payments = size, orders = order_answers.len(),
                    "a batch of payments and orders could not be committed; none was written");
                let message = error.to_string();
                let failed = || StoreError::Db {
                    doing: "committing a batch of payments and orders",
                    source: DbErr::Custom(message.clone()),
                };
                for answer in payment_answers {
                    let _ = answer.send(Err(failed()));
                }
                for answer in order_answers {
                    let _ = answer.send(Err(failed()));
                }
            }
        }
        // After the answers, so no caller waits for it.
        if sqlite && wal_restarted.elapsed() >= WAL_RESTART_INTERVAL {
            restart_wal(&connection).await;
            wal_restarted = Instant::now();
        }
    }
}

/// `PRAGMA wal_checkpoint(RESTART)`: copies the WAL into the database and makes the next
/// writer start the WAL over. Best effort: if readers stay busy past the busy timeout it
/// is logged and tried again later; committed payments are not affected either way.
async fn restart_wal(connection: &DatabaseConnection) {
    let result = connection
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(RESTART)",
        ))
        .await;
    match result {
        // (busy, WAL frames, frames checkpointed); busy = 1 means it could not finish.
        Ok(Some(row)) if row.try_get_by_index::<i64>(0).unwrap_or(0) != 0 => {
            tracing::debug!("WAL restart deferred: readers still busy");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "WAL checkpoint failed; retried later"),
    }
}

/// [`commit_jobs`] for payments alone.
#[cfg(test)]
pub(crate) async fn commit_batch(
    connection: &DatabaseConnection,
    outbox: &Outbox,
    payments: Vec<NotifiedPayment>,
) -> Result<Vec<Result<PaymentRecorded, StoreError>>, StoreError> {
    commit_jobs(connection, outbox, Vec::new(), payments)
        .await
        .map(|(_, outcomes)| outcomes)
}

/// The new orders each insert gave (`DuplicateOrder` for a taken id), and each payment's
/// outcome.
type Committed = (
    Vec<Result<pay_log::Model, StoreError>>,
    Vec<Result<PaymentRecorded, StoreError>>,
);

/// Runs `payments` in one transaction, with the event of every transition it makes (and
/// of every payment conflict it records first), and raises `outbox`'s signal after the
/// commit. `Err` means nothing of the batch was written; `Ok` holds each payment's own
/// outcome, in order (an order that does not exist fails only
/// its own payment: no statement failed, the others stand).
///
/// The common case — orders still waiting — takes one conditional UPDATE for the whole
/// batch (`… WHERE status = 'wait' AND order_id IN (…) RETURNING *`, each order's own
/// transaction id and payment time picked by `CASE`), and the record rows one multi-row
/// upsert: two statements and one commit, however many payments. The rows the UPDATE
/// returns are exactly the transitions it made; each goes to the first payment of the
/// batch naming that order, as if the payments had run one after another. Payments whose
/// order was not waiting (a repeat, a closed or timed-out order) then take the
/// one-at-a-time path, inside the same transaction.
///
/// New `orders` are inserted first, in the same transaction (one multi-row `INSERT … ON
/// CONFLICT (order_id) DO NOTHING RETURNING id, order_id`: a taken id fails only its own
/// order, not the statement or the batch), with their `order.created` events while row
/// hooks listen.
async fn commit_jobs(
    connection: &DatabaseConnection,
    outbox: &Outbox,
    orders: Vec<pay_log::Model>,
    payments: Vec<NotifiedPayment>,
) -> Result<Committed, StoreError> {
    let transaction = connection
        .begin()
        .await
        .map_err(db("starting a transaction"))?;
    // A write comes first, so a SQLite transaction takes the write lock with its first
    // statement (waiting in the busy handler, never failing on a stale snapshot).
    let inserted = insert_orders_on(&transaction, orders).await?;
    let mut created: Vec<NewEvent> = Vec::new();
    if outbox.has_row_hooks() {
        created.extend(inserted.iter().filter_map(|order| {
            let order = order.as_ref().ok()?.clone();
            Some(NewEvent::transition(PayEventKind::OrderCreated, order))
        }));
    }
    let mut won = mark_waiting_paid_on(&transaction, &payments).await?;
    let mut outcomes = Vec::with_capacity(payments.len());
    let mut decided: HashSet<&str> = HashSet::with_capacity(payments.len());
    for payment in &payments {
        let order_id = payment.state.order_id.as_str();
        let first_of_its_order = decided.insert(order_id);
        if let Some(order) = won.remove(order_id).filter(|_| first_of_its_order) {
            outcomes.push(Ok(PaymentRecorded {
                outcome: PaidOutcome::Paid,
                order: Some(order),
            }));
            continue;
        }
        match mark_paid_on(
            &transaction,
            order_id,
            payment.state.transaction_id.as_deref(),
            payment.paid_at,
        )
        .await
        {
            Ok(recorded) => match conflicting_payment(&recorded, &payment.state) {
                // A second transaction for a paid order: kept apart, in this transaction.
                Some(kept) => outcomes.push(Ok(record_conflict_on(
                    &transaction,
                    &payment.state,
                    kept,
                    recorded.order,
                )
                .await?)),
                None => outcomes.push(Ok(recorded)),
            },
            Err(unknown @ StoreError::UnknownOrder { .. }) => outcomes.push(Err(unknown)),
            // Dropping the transaction rolls it back.
            Err(failed) => return Err(failed),
        }
    }
    let mut events = created;
    events.extend(events_of(&payments, &outcomes));
    // Every payment of the batch that was decided is logged with it (console: the order's
    // notifies); one INSERT for the batch.
    let logged: Vec<NotifyLogEntry> = payments
        .iter()
        .zip(&outcomes)
        .filter_map(|(payment, outcome)| {
            let recorded = outcome.as_ref().ok()?;
            Some(NotifyLogEntry::of_payment(
                &payment.state,
                &recorded.outcome,
            ))
        })
        .collect();
    // A conflicting payment's notify is not the order's: the record keeps the first.
    let records = payments
        .into_iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| {
            outcome
                .as_ref()
                .is_ok_and(|recorded| !matches!(recorded.outcome, PaidOutcome::Conflict { .. }))
        })
        .map(|(payment, _)| payment.state);
    save_notified_states_on(&transaction, records).await?;
    let events = write_events_on(&transaction, outbox, events).await?;
    insert_notify_log_on(&transaction, logged).await?;
    transaction
        .commit()
        .await
        .map_err(db("committing a batch of payments"))?;
    outbox.announce_written(&events);
    Ok((inserted, outcomes))
}

/// Inserts the new `wait` orders in one statement; each gets its row (with its `id`), or
/// [`StoreError::DuplicateOrder`] when its id was taken (before, or by an earlier order of
/// the same batch).
async fn insert_orders_on<C: ConnectionTrait>(
    connection: &C,
    orders: Vec<pay_log::Model>,
) -> Result<Vec<Result<pay_log::Model, StoreError>>, StoreError> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let rows = orders.iter().map(|order| {
        let mut row: pay_log::ActiveModel = order.clone().into();
        row.id = sea_orm::ActiveValue::NotSet;
        row
    });
    let mut insert = pay_log::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(pay_log::Column::OrderId)
                .do_nothing()
                .to_owned(),
        )
        .into_query();
    insert.returning(
        sea_orm::sea_query::Query::returning()
            .columns([pay_log::Column::Id, pay_log::Column::OrderId]),
    );
    let returned = connection
        .query_all(&insert)
        .await
        .map_err(db("inserting orders"))?;
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(returned.len());
    for row in &returned {
        let id: i64 = row
            .try_get("", "id")
            .map_err(db("reading inserted orders"))?;
        let order_id: String = row
            .try_get("", "order_id")
            .map_err(db("reading inserted orders"))?;
        ids.insert(order_id, id);
    }
    // The first order naming an id got it; any other is a duplicate.
    Ok(orders
        .into_iter()
        .map(|order| match ids.remove(&order.order_id) {
            Some(id) => Ok(pay_log::Model { id, ..order }),
            None => Err(StoreError::DuplicateOrder {
                order_id: order.order_id,
            }),
        })
        .collect())
}

/// The events of a batch's outcomes: each transition, and each payment conflict recorded
/// for the first time (a repeat writes nothing).
fn events_of(
    payments: &[NotifiedPayment],
    outcomes: &[Result<PaymentRecorded, StoreError>],
) -> Vec<NewEvent> {
    payments
        .iter()
        .zip(outcomes)
        .filter_map(|(payment, outcome)| event_of(payment, outcome.as_ref().ok()?))
        .collect()
}

/// The event of one recorded payment: its transition, or a payment conflict recorded for
/// the first time; `None` for a repeat, which writes nothing.
pub(crate) fn event_of(payment: &NotifiedPayment, recorded: &PaymentRecorded) -> Option<NewEvent> {
    let order = recorded.order.clone()?;
    let kind = match recorded.outcome {
        PaidOutcome::Paid => PayEventKind::Paid,
        PaidOutcome::PaidAfterClose { .. } => PayEventKind::PaidAfterClose,
        PaidOutcome::Conflict { first_seen: true } => {
            return Some(NewEvent {
                conflicting_transaction_id: payment.state.transaction_id.clone(),
                ..NewEvent::transition(PayEventKind::PaymentConflict, order)
            });
        }
        PaidOutcome::AlreadyPaid | PaidOutcome::Conflict { first_seen: false } => return None,
    };
    Some(NewEvent::transition(kind, order))
}

/// How many rows a batch statement for `count` rows is written for: the next power of
/// two (at most [`MAX_BATCH`], itself one), so a few statement texts cover every batch.
fn statement_rows(count: usize) -> usize {
    count.next_power_of_two().min(MAX_BATCH.max(count))
}

/// `wait → success` for every distinct order of `payments` still waiting, in one
/// conditional UPDATE; the rows it changed, by order id. Each order gets the transaction
/// id and payment time of the first payment naming it.
async fn mark_waiting_paid_on<C: ConnectionTrait>(
    connection: &C,
    payments: &[NotifiedPayment],
) -> Result<HashMap<String, pay_log::Model>, StoreError> {
    let Some(query) = mark_waiting_paid_query(connection.get_database_backend(), payments) else {
        return Ok(HashMap::new());
    };
    let rows = connection
        .query_all(&query)
        .await
        .map_err(db("marking orders paid"))?;
    rows.iter()
        .map(|row| {
            let order =
                pay_log::Model::from_query_result(row, "").map_err(db("reading paid orders"))?;
            Ok((order.order_id.clone(), order))
        })
        .collect()
}

/// The statement of [`mark_waiting_paid_on`]; `None` for no payments.
fn mark_waiting_paid_query(
    backend: DbBackend,
    payments: &[NotifiedPayment],
) -> Option<UpdateStatement> {
    let mut firsts: Vec<&NotifiedPayment> = Vec::with_capacity(payments.len());
    let mut seen: HashSet<&str> = HashSet::with_capacity(payments.len());
    for payment in payments {
        if seen.insert(payment.state.order_id.as_str()) {
            firsts.push(payment);
        }
    }
    // The statement's text depends only on how many orders it names, and each text is a
    // statement the driver prepares and caches per connection. Padding the count to a
    // power of two (by naming the last order again: a repeated `IN` member and a repeated
    // `CASE` arm with the same values change nothing) keeps that to a handful of texts,
    // instead of one per batch size evicting each other from the statement cache.
    let padded = statement_rows(firsts.len());
    let &last = firsts.last()?;
    let mut order_ids: Vec<&str> = Vec::with_capacity(padded);
    let mut transaction_ids = CaseStatement::new();
    let mut paid_ats = CaseStatement::new();
    for payment in firsts
        .iter()
        .copied()
        .chain(std::iter::repeat(last))
        .take(padded)
    {
        let order_id = payment.state.order_id.as_str();
        order_ids.push(order_id);
        let this_order = pay_log::Column::OrderId.eq(order_id);
        transaction_ids = transaction_ids.case(
            this_order.clone(),
            Expr::value(payment.state.transaction_id.clone()),
        );
        paid_ats = paid_ats.case(this_order, Expr::value(payment.paid_at.trunc_subsecs(6)));
    }
    // Without statistics, SQLite's planner takes an `IN` list of four or more order ids as
    // costlier than the equality on `status`, and walks the (status, next_check_at) index
    // over every waiting order instead of looking the few orders up by their unique id:
    // each batch then cost time growing with the number of waiting orders. A unary `+`
    // keeps the status term out of index selection, leaving the unique index.
    let still_waiting = if backend == DbBackend::Sqlite {
        Expr::cust_with_values("+\"status\" = ?", [PayStatus::Wait.as_str()])
    } else {
        pay_log::Column::Status.eq(PayStatus::Wait.as_str())
    };
    let transaction_ids = transaction_ids.finally(Expr::col(pay_log::Column::TransactionId));
    let paid_ats = paid_ats.finally(Expr::col(pay_log::Column::PaidAt));
    let mut query = pay_log::Entity::update_many()
        .col_expr(
            pay_log::Column::Status,
            Expr::value(PayStatus::Success.as_str()),
        )
        .col_expr(
            pay_log::Column::TransactionId,
            Expr::Case(Box::new(transaction_ids)),
        )
        .col_expr(pay_log::Column::PaidAt, Expr::Case(Box::new(paid_ats)))
        .col_expr(pay_log::Column::UpdatedAt, Expr::value(now()))
        .col_expr(pay_log::Column::EventSeq, next_event_seq())
        .filter(still_waiting)
        .filter(pay_log::Column::OrderId.is_in(order_ids))
        .into_query();
    query.returning_all();
    Some(query)
}

/// The record-table rows of verified notifies, in one multi-row upsert. When several
/// name one order, the last one's row is kept (as if written one after another; one
/// statement may not update a row twice on PostgreSQL).
async fn save_notified_states_on<C: ConnectionTrait>(
    connection: &C,
    states: impl Iterator<Item = ThirdPartyState>,
) -> Result<(), StoreError> {
    use wechat_record::Column as C;
    let mut latest: Vec<ThirdPartyState> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for state in states {
        match index.get(&state.order_id) {
            Some(&i) => latest[i] = state,
            None => {
                index.insert(state.order_id.clone(), latest.len());
                latest.push(state);
            }
        }
    }
    if latest.is_empty() {
        return Ok(());
    }
    // Rows in order-id order, so concurrent batches of several processes lock the record
    // rows in one order. (Should PostgreSQL still report a deadlock between two batches,
    // the one it aborts answers FAIL to its notifies, which WeChat sends again.)
    latest.sort_unstable_by(|a, b| a.order_id.cmp(&b.order_id));
    let at = now();
    // Padded like the UPDATE (see `mark_waiting_paid_on`), on SQLite only: there a row
    // given twice is upserted twice with the same values, which changes nothing, while
    // PostgreSQL refuses to update one row twice in a statement.
    let rows = if connection.get_database_backend() == DbBackend::Sqlite {
        let padded = statement_rows(latest.len());
        if let Some(last) = latest.last().cloned() {
            latest.resize(padded, last);
        }
        latest
    } else {
        latest
    };
    let rows = rows
        .into_iter()
        .map(|state| third_party_row(state, true, at));
    // As the one-row upsert: a notify without trade_state or transaction_id keeps the
    // stored one, and a paid record keeps its state and transaction.
    let query = wechat_record::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(C::OrderId)
                .update_columns([C::LastNotify, C::NotifiedAt, C::UpdatedAt])
                .value(C::TradeState, guarded_trade_state())
                .value(C::TransactionId, guarded_transaction_id())
                .to_owned(),
        )
        .into_query();
    connection
        .execute(&query)
        .await
        .map_err(db("saving WeChat's order states"))?;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::Utc;
    use sea_orm::{ConnectionTrait, DbBackend};

    use super::*;
    use crate::db::store::{NewOrder, PayStore};
    use crate::db::{DbConfig, connect};

    /// A verified payment of `order_id` (transaction `T{order_id}`, 100 fen).
    pub(in crate::db) fn payment(order_id: &str) -> NotifiedPayment {
        NotifiedPayment {
            state: ThirdPartyState {
                order_id: order_id.to_owned(),
                appid: "wx0000000000000001".into(),
                mch_id: "10000100".into(),
                total_fee: 100,
                trade_state: Some("SUCCESS".into()),
                transaction_id: Some(format!("T{order_id}")),
                raw: "<xml/>".into(),
                api_version: crate::db::entity::ApiVersion::V2,
            },
            paid_at: Utc::now(),
        }
    }

    /// A new order `order_id` of 100 fen, expiring in two hours.
    pub(in crate::db) fn new_order(order_id: &str) -> NewOrder {
        let at = Utc::now();
        NewOrder {
            order_id: order_id.to_owned(),
            subject: "s".into(),
            amount_fen: 100,
            element: "pays.myWechatPay".into(),
            expires_at: at + chrono::Duration::hours(2),
            first_check_at: at + chrono::Duration::minutes(1),
        }
    }

    async fn insert(store: &PayStore, order_id: &str) {
        store.insert_order(new_order(order_id)).await.unwrap();
    }

    /// A trigger that makes any UPDATE of order `POISON` fail, as a full disk or a lost
    /// connection would fail a statement halfway through a batch.
    async fn poison(store: &PayStore) {
        let connection = store.connection();
        let statements: &[&str] = match connection.get_database_backend() {
            DbBackend::Sqlite => &["CREATE TRIGGER poison BEFORE UPDATE ON pays_pay_log \
                 WHEN NEW.order_id = 'POISON' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"],
            _ => &[
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
                 IF NEW.order_id = 'POISON' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER poison BEFORE UPDATE ON pays_pay_log FOR EACH ROW \
                 EXECUTE FUNCTION poison()",
            ],
        };
        for statement in statements {
            connection.execute_unprepared(statement).await.unwrap();
        }
    }

    async fn stores() -> (Vec<PayStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![
            connect(&DbConfig::sqlite_beside(dir.path(), "writer"))
                .await
                .unwrap(),
        ];
        if let Ok(url) = std::env::var("JIT_TEST_POSTGRES_URL") {
            let mut config = DbConfig::new(url);
            config.pg_schema = Some(format!("w_{}", uuid::Uuid::new_v4().simple()));
            stores.push(connect(&config).await.unwrap());
        }
        (stores, dir)
    }

    /// Concurrent creations share commits; each gets its own row (as sea-orm reads it
    /// back), and a taken id fails only its own. SQLite (the writer thread) and PostgreSQL
    /// (the writer task).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creations_share_commits_and_a_taken_id_fails_only_its_own() {
        let (stores, _dir) = stores().await;
        for store in stores {
            store.insert_order(new_order("TAKEN")).await.unwrap();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..200 {
                let store = store.clone();
                let id = if i == 100 {
                    "TAKEN".to_owned()
                } else {
                    format!("N{i}")
                };
                tasks.spawn(async move { (id.clone(), store.insert_order(new_order(&id)).await) });
            }
            let mut ids = HashSet::new();
            while let Some(joined) = tasks.join_next().await {
                let (id, inserted) = joined.unwrap();
                if id == "TAKEN" {
                    assert!(
                        matches!(inserted, Err(StoreError::DuplicateOrder { .. })),
                        "{inserted:?}"
                    );
                    continue;
                }
                let inserted = inserted.unwrap();
                assert!(
                    ids.insert(inserted.id),
                    "row id {} given twice",
                    inserted.id
                );
                assert_eq!(store.get_order(&id).await.unwrap(), inserted);
            }
            assert_eq!(ids.len(), 199);
        }
    }

    #[tokio::test]
    async fn one_failing_payment_fails_its_whole_batch_and_writes_nothing() {
        let (stores, _dir) = stores().await;
        for store in stores {
            for id in ["A", "B", "POISON", "C"] {
                insert(&store, id).await;
            }
            poison(&store).await;
            let batch = ["A", "B", "POISON", "C"].map(payment).into();
            let error = commit_batch(store.connection(), store.outbox(), batch)
                .await
                .unwrap_err();
            assert!(error.to_string().contains("poisoned"), "{error}");
            for id in ["A", "B", "POISON", "C"] {
                let row = store.get_order(id).await.unwrap();
                assert_eq!(row.status, PayStatus::Wait, "{id}");
                assert_eq!(row.transaction_id, None, "{id}");
                assert!(store.find_record(id).await.unwrap().is_none(), "{id}");
            }
            // No transition, so no event: the events were in the rolled-back transaction.
            assert_eq!(event_count(&store).await, 0);
            // Without the poisoned order the same payments commit, each once.
            let batch = ["A", "B", "A", "C", "MISSING"].map(payment).into();
            let outcomes = commit_batch(store.connection(), store.outbox(), batch)
                .await
                .unwrap();
            let outcomes: Vec<_> = outcomes
                .into_iter()
                .map(|outcome| outcome.map(|recorded| recorded.outcome))
                .collect();
            assert!(matches!(outcomes[0], Ok(PaidOutcome::Paid)));
            assert!(matches!(outcomes[1], Ok(PaidOutcome::Paid)));
            assert!(matches!(outcomes[2], Ok(PaidOutcome::AlreadyPaid)));
            assert!(matches!(outcomes[3], Ok(PaidOutcome::Paid)));
            assert!(matches!(outcomes[4], Err(StoreError::UnknownOrder { .. })));
            for id in ["A", "B", "C"] {
                let row = store.get_order(id).await.unwrap();
                assert_eq!(row.status, PayStatus::Success, "{id}");
                assert_eq!(row.transaction_id, Some(format!("T{id}")));
            }
            assert_eq!(
                store.get_order("POISON").await.unwrap().status,
                PayStatus::Wait
            );
            // One event per transition, none for the repeat of A; the order's first event.
            assert_eq!(event_count(&store).await, 3);
            let events = crate::outbox::list_events(
                store.connection(),
                &crate::outbox::EventFilter {
                    order_id: Some("A".into()),
                    ..Default::default()
                },
                10,
            )
            .await
            .unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].event.event_type, "order.paid");
            assert_eq!(events[0].event.order_seq, 1);
            assert_eq!(store.get_order("A").await.unwrap().event_seq, 1);
            // A later batch repeating every payment writes nothing.
            let batch = ["A", "B", "C"].map(payment).into();
            commit_batch(store.connection(), store.outbox(), batch)
                .await
                .unwrap();
            assert_eq!(event_count(&store).await, 3);
        }
    }

    async fn event_count(store: &PayStore) -> usize {
        crate::outbox::list_events(store.connection(), &Default::default(), 1000)
            .await
            .unwrap()
            .len()
    }

    /// Whatever the batch size, SQLite finds a batch's orders by their unique id, not by
    /// walking every waiting order through the status index.
    #[tokio::test]
    async fn the_batch_update_looks_orders_up_by_id_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = connect(&DbConfig::sqlite_beside(dir.path(), "plan"))
            .await
            .unwrap();
        for size in [1, 3, 4, 17, 64, MAX_BATCH] {
            let payments: Vec<_> = (0..size).map(|i| payment(&format!("P{i}"))).collect();
            let query = mark_waiting_paid_query(DbBackend::Sqlite, &payments).unwrap();
            let (sql, values) = query.build(sea_orm::sea_query::SqliteQueryBuilder);
            let plan = store
                .connection()
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    format!("EXPLAIN QUERY PLAN {sql}"),
                    values,
                ))
                .await
                .unwrap();
            let details: Vec<String> = plan
                .iter()
                .map(|row| row.try_get_by_index::<String>(3).unwrap())
                .collect();
            assert!(
                details
                    .iter()
                    .any(|d| d.contains("pays_pay_log_order_id_uniq")),
                "{size} orders: {details:?}"
            );
            assert!(
                !details.iter().any(|d| d.contains("status_next_check")),
                "{size} orders: {details:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_writer_answers_every_caller_of_a_failed_batch_with_the_error() {
        let (stores, _dir) = stores().await;
        for store in stores {
            insert(&store, "POISON").await;
            poison(&store).await;
            let error = store
                .record_notified_payment(payment("POISON").state, Utc::now())
                .await
                .unwrap_err();
            assert!(error.to_string().contains("poisoned"), "{error}");
            // The writer survives a failed batch.
            insert(&store, "D").await;
            let recorded = store
                .record_notified_payment(payment("D").state, Utc::now())
                .await
                .unwrap();
            assert_eq!(recorded.outcome, PaidOutcome::Paid);
            assert_eq!(recorded.order.unwrap().status, PayStatus::Success);
        }
    }
}
