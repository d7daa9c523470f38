//! Group commit for the payments notifies report.
//!
//! A durable commit (the fsync of SQLite's WAL, or PostgreSQL's WAL flush) costs far more
//! than the statements before it, and writes to one SQLite file are serialised anyway. So
//! one writer task per store takes every payment queued while its previous commit ran (up
//! to [`MAX_BATCH`]), runs each one's conditional UPDATE and record-table upsert in one
//! transaction, commits once and only then answers each caller with its own outcome.
//!
//! Exactly-once is untouched: each payment is still its own `UPDATE … WHERE order_id = ?
//! AND status = 'wait'` (or the late-paid variant), and its row count alone decides its
//! caller's outcome — including two notifies for one order in the same batch (the second
//! sees the first's write inside the transaction) and writers outside the batch (check,
//! cancel, the reconciler, other processes), which race on the same row as before.
//!
//! All or nothing: if a statement or the commit fails, the transaction is rolled back and
//! every caller of the batch gets the error — none is told the payment is recorded.

use parking_lot::Mutex;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use chrono::{DateTime, Utc};

use super::store::{
    PaymentRecorded, StoreError, ThirdPartyState, db, mark_paid_on, save_third_party_on,
};

/// At most this many payments share a commit. Bounds the time a transaction holds the
/// write lock (and the latency of its last caller); at a few tens of µs of statements per
/// payment, a full batch costs about as much as a few fsyncs.
pub(crate) const MAX_BATCH: usize = 256;

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

struct Job {
    payment: NotifiedPayment,
    answer: oneshot::Sender<Result<PaymentRecorded, StoreError>>,
}

/// The queue to a store's writer task. The task is started on first use (on the runtime
/// of that use) and ends when the store is dropped; if it is gone (its runtime shut down),
/// the next payment starts a new one.
#[derive(Debug)]
pub(crate) struct NotifyWriter {
    connection: DatabaseConnection,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("order_id", &self.payment.state.order_id)
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
    pub(crate) fn new(connection: DatabaseConnection) -> Self {
        NotifyWriter {
            connection,
            queue: Mutex::new(None),
        }
    }

    fn queue(&self) -> mpsc::Sender<Job> {
        let mut queue = self.queue.lock();
        if let Some(sender) = queue.as_ref().filter(|sender| !sender.is_closed()) {
            return sender.clone();
        }
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(self.connection.clone(), receiver));
        *queue = Some(sender.clone());
        sender
    }

    /// Queues `payment` and waits until its batch is committed (or failed).
    pub(crate) async fn record(
        &self,
        payment: NotifiedPayment,
    ) -> Result<PaymentRecorded, StoreError> {
        let (answer, answered) = oneshot::channel();
        let job = Job { payment, answer };
        if let Err(mpsc::error::SendError(job)) = self.queue().send(job).await {
            // The task died with the runtime it was started on; this call starts another.
            self.queue().send(job).await.map_err(|_| writer_gone())?;
        }
        answered.await.map_err(|_| writer_gone())?
    }
}

async fn run(connection: DatabaseConnection, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (payments, answers): (Vec<_>, Vec<_>) =
            jobs.drain(..).map(|job| (job.payment, job.answer)).unzip();
        let size = payments.len();
        match commit_batch(&connection, payments).await {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    // A caller that stopped waiting (its request was cancelled) changes
                    // nothing: the payment is committed and WeChat's retry is a repeat.
                    let _ = answer.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, payments = size,
                    "a batch of notified payments could not be committed; none was recorded");
                let message = error.to_string();
                for answer in answers {
                    let _ = answer.send(Err(StoreError::Db {
                        doing: "committing a batch of payments",
                        source: DbErr::Custom(message.clone()),
                    }));
                }
            }
        }
    }
}

/// Runs `payments` in one transaction. `Err` means nothing of the batch was written; `Ok`
/// holds each payment's own outcome, in order (an order that does not exist fails only
/// its own payment: no statement failed, the others stand).
pub(crate) async fn commit_batch(
    connection: &DatabaseConnection,
    payments: Vec<NotifiedPayment>,
) -> Result<Vec<Result<PaymentRecorded, StoreError>>, StoreError> {
    let transaction = connection
        .begin()
        .await
        .map_err(db("starting a transaction"))?;
    let mut outcomes = Vec::with_capacity(payments.len());
    for NotifiedPayment { state, paid_at } in payments {
        // The conditional UPDATE comes first, so a SQLite transaction takes the write
        // lock with its first statement (waiting in the busy handler, never failing on a
        // stale snapshot).
        match mark_paid_on(
            &transaction,
            &state.order_id,
            state.transaction_id.as_deref(),
            paid_at,
        )
        .await
        {
            Ok(recorded) => {
                save_third_party_on(&transaction, state, true).await?;
                outcomes.push(Ok(recorded));
            }
            Err(unknown @ StoreError::UnknownOrder { .. }) => outcomes.push(Err(unknown)),
            // Dropping the transaction rolls it back.
            Err(failed) => return Err(failed),
        }
    }
    transaction
        .commit()
        .await
        .map_err(db("committing a batch of payments"))?;
    Ok(outcomes)
}
