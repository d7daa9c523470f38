//! `pays_notify_log`: every notify received — payment or refund, verified or refused, and
//! why — for the merchant's console (the order page's notifies, the dashboard's refusals
//! by reason).
//!
//! Two ways in, so the hot path pays little:
//! - a verified payment committed by the notify writer gets its row inside the writer's
//!   batch transaction ([`insert_on`], one multi-row INSERT per batch): durable with the
//!   payment it reports;
//! - everything else (refusals, failures, notifies saying a payment failed, repeats
//!   answered from memory, refund notifies) is [noted](NotifyLog::note) off the request
//!   path: queued to a bounded channel that one task per store drains into the table. When
//!   the queue is full (a flood of forgeries) the entry is dropped and counted
//!   ([`NotifyLogStats::dropped`]); the notify's answer never waits for its log row.
//!
//! A row holds the body truncated to [`MAX_BODY_CHARS`] characters (a real notify is under
//! 2 KiB) and the refusal's reason; never a key (notifies carry none: a payment notify is
//! signed, a refund notify's `req_info` stays encrypted).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use tokio::sync::mpsc;

use super::entity::{notify_log, refund};
use super::error::{StoreError, db};
use super::rows::{PaidOutcome, ThirdPartyState, now};
use super::sqlite_writer::SqliteHotPath;
use super::store::PayStore;
use crate::model::NotifyOutcome;

/// The longest body a row keeps, in characters.
pub const MAX_BODY_CHARS: usize = 4096;

/// The longest reason a row keeps, in characters.
const MAX_REASON_CHARS: usize = 512;

/// How many noted entries may wait for the log task before new ones are dropped.
const QUEUE_CAPACITY: usize = 1024;

/// At most this many noted entries share one INSERT.
const WRITE_BATCH: usize = 128;

/// Which notify URL it came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyKind {
    /// A payment result notify.
    Payment,
    /// A refund result notify.
    Refund,
}

impl NotifyKind {
    /// `payment` or `refund`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Payment => "payment",
            NotifyKind::Refund => "refund",
        }
    }
}

/// One notify to log.
#[derive(Clone, Debug)]
pub struct NotifyLogEntry {
    kind: NotifyKind,
    order_id: Option<String>,
    refund_id: Option<String>,
    outcome: &'static str,
    verified: bool,
    reason_kind: Option<&'static str>,
    reason: Option<String>,
    peer: Option<String>,
    body_len: i64,
    body: String,
    received_at: DateTime<Utc>,
}

impl NotifyLogEntry {
    /// The entry of a notify of `kind` whose body was `body`, answered with `outcome`,
    /// sent by `peer`.
    pub fn of_reply(
        kind: NotifyKind,
        body: &[u8],
        outcome: &NotifyOutcome,
        peer: Option<IpAddr>,
    ) -> Self {
        let (order_id, refund_id, reason) = match outcome {
            NotifyOutcome::Paid { order_id }
            | NotifyOutcome::PaidAfterClose { order_id }
            | NotifyOutcome::AlreadyPaid { order_id }
            | NotifyOutcome::NotPaid { order_id }
            | NotifyOutcome::PaymentConflict { order_id, .. } => {
                (Some(order_id.clone()), None, None)
            }
            NotifyOutcome::Refund { refund_id, .. } => (None, Some(refund_id.clone()), None),
            NotifyOutcome::Rejected { reason, .. } | NotifyOutcome::Failed { reason } => {
                (None, None, Some(reason.as_str()))
            }
        };
        // The refusal's kind as the code that refused it said (the same label as the
        // refusal metrics), never read back from the message.
        let refusal = match outcome {
            NotifyOutcome::Rejected { kind, .. } => Some(kind.as_str()),
            _ => None,
        };
        NotifyLogEntry {
            kind,
            order_id,
            refund_id,
            outcome: outcome_name(outcome),
            verified: !matches!(
                outcome,
                NotifyOutcome::Rejected { .. } | NotifyOutcome::Failed { .. }
            ),
            reason_kind: refusal,
            reason: reason.map(|reason| truncated(reason, MAX_REASON_CHARS)),
            peer: peer.map(|peer| peer.to_string()),
            body_len: body.len() as i64,
            body: truncated(&String::from_utf8_lossy(body), MAX_BODY_CHARS),
            received_at: now(),
        }
    }

    /// The entry of a verified payment the notify writer committed with `outcome`.
    pub(crate) fn of_payment(state: &ThirdPartyState, outcome: &PaidOutcome) -> Self {
        let name = match outcome {
            PaidOutcome::Paid => "paid",
            PaidOutcome::PaidAfterClose { .. } => "paid_after_close",
            PaidOutcome::AlreadyPaid => "already_paid",
            PaidOutcome::Conflict { .. } => "conflict",
        };
        NotifyLogEntry {
            kind: NotifyKind::Payment,
            order_id: Some(state.order_id.clone()),
            refund_id: None,
            outcome: name,
            verified: true,
            reason_kind: None,
            reason: None,
            peer: None,
            body_len: state.raw.len() as i64,
            body: truncated(&state.raw, MAX_BODY_CHARS),
            received_at: now(),
        }
    }

    fn into_row(self) -> notify_log::ActiveModel {
        notify_log::ActiveModel {
            id: NotSet,
            received_at: Set(self.received_at),
            kind: Set(self.kind.as_str().to_owned()),
            order_id: Set(self.order_id.map(|id| truncated(&id, 64))),
            refund_id: Set(self.refund_id.map(|id| truncated(&id, 64))),
            outcome: Set(self.outcome.to_owned()),
            verified: Set(self.verified),
            reason_kind: Set(self.reason_kind.map(str::to_owned)),
            reason: Set(self.reason),
            peer: Set(self.peer),
            body_len: Set(self.body_len),
            body: Set(self.body),
        }
    }
}

/// Whether a payment notify answered with `outcome` got its row from the notify writer's
/// transaction (or, for a repeat answered from memory, from the element), so its entry
/// point must not note it again.
pub fn logged_with_payment(outcome: &NotifyOutcome) -> bool {
    matches!(
        outcome,
        NotifyOutcome::Paid { .. }
            | NotifyOutcome::PaidAfterClose { .. }
            | NotifyOutcome::AlreadyPaid { .. }
            | NotifyOutcome::PaymentConflict { .. }
    )
}

/// The stored name of an outcome.
fn outcome_name(outcome: &NotifyOutcome) -> &'static str {
    match outcome {
        NotifyOutcome::Paid { .. } => "paid",
        NotifyOutcome::PaidAfterClose { .. } => "paid_after_close",
        NotifyOutcome::AlreadyPaid { .. } => "already_paid",
        NotifyOutcome::NotPaid { .. } => "not_paid",
        NotifyOutcome::PaymentConflict { .. } => "conflict",
        NotifyOutcome::Refund { .. } => "refund",
        NotifyOutcome::Rejected { .. } => "refused",
        NotifyOutcome::Failed { .. } => "failed",
    }
}

fn truncated(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// What a store's notify log has written and dropped since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyLogStats {
    /// Noted entries written to the table (rows written with payments are not counted).
    pub written: u64,
    /// Noted entries dropped: the queue was full, or their INSERT failed.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

/// The queue to a store's notify-log task. The task is started on first use (on the
/// runtime of that use) and ends when the store is dropped; if it is gone (its runtime
/// shut down), the next entry starts a new one.
#[derive(Debug)]
pub struct NotifyLog {
    connection: DatabaseConnection,
    /// On a SQLite file, the writer thread the entries are committed by, with whatever
    /// else it commits (no connection hand-off per statement, no commit of their own).
    sqlite: Option<Arc<SqliteHotPath>>,
    queue: Mutex<Option<mpsc::Sender<NotifyLogEntry>>>,
    counters: Arc<Counters>,
}

impl NotifyLog {
    pub(crate) fn new(connection: DatabaseConnection, sqlite: Option<Arc<SqliteHotPath>>) -> Self {
        NotifyLog {
            connection,
            sqlite,
            queue: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    /// Queues `entry` to be written; never waits. A full queue drops it (counted).
    pub fn note(&self, entry: NotifyLogEntry) {
        let mut queue = self.queue.lock();
        let sender = match queue.as_ref().filter(|sender| !sender.is_closed()) {
            Some(sender) => sender.clone(),
            None => {
                let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
                tokio::spawn(run(
                    self.connection.clone(),
                    self.sqlite.clone(),
                    receiver,
                    Arc::clone(&self.counters),
                ));
                *queue = Some(sender.clone());
                sender
            }
        };
        drop(queue);
        if sender.try_send(entry).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            // One line per thousand drops: the flood itself must not flood the log.
            if dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped = dropped + 1,
                    "notify log queue full: notifies are answered but not all are logged"
                );
            }
        }
    }

    /// What this log has written and dropped so far.
    pub fn stats(&self) -> NotifyLogStats {
        NotifyLogStats {
            written: self.counters.written.load(Ordering::SeqCst),
            dropped: self.counters.dropped.load(Ordering::SeqCst),
        }
    }
}

async fn run(
    connection: DatabaseConnection,
    sqlite: Option<Arc<SqliteHotPath>>,
    mut queue: mpsc::Receiver<NotifyLogEntry>,
    counters: Arc<Counters>,
) {
    let mut entries = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut entries, WRITE_BATCH).await > 0 {
        let mut batch = std::mem::take(&mut entries);
        for entry in &mut batch {
            complete(&connection, entry).await;
        }
        let size = batch.len() as u64;
        let written = match &sqlite {
            Some(sqlite) => sqlite.log(batch).await,
            None => insert_on(&connection, batch).await,
        };
        match written {
            Ok(()) => {
                counters.written.fetch_add(size, Ordering::SeqCst);
            }
            Err(error) => {
                counters.dropped.fetch_add(size, Ordering::SeqCst);
                tracing::warn!(%error, entries = size, "notify log entries not written");
            }
        }
    }
}

/// Fills in, off the request path, the order an entry is about when its outcome did not
/// say: a payment notify's `out_trade_no` as the body claims it (unverified for a
/// refusal), a refund's order from the refund table.
async fn complete(connection: &DatabaseConnection, entry: &mut NotifyLogEntry) {
    if entry.order_id.is_some() {
        return;
    }
    match entry.kind {
        NotifyKind::Payment => {
            entry.order_id = wechatpay_v2::xml::decode(entry.body.as_bytes())
                .ok()
                .and_then(|params| params.get("out_trade_no").cloned());
        }
        NotifyKind::Refund => {
            let Some(refund_id) = &entry.refund_id else {
                return;
            };
            entry.order_id = refund::Entity::find()
                .filter(refund::Column::RefundId.eq(refund_id.as_str()))
                .one(connection)
                .await
                .ok()
                .flatten()
                .map(|refund| refund.order_id);
        }
    }
}

/// Writes `entries` on `connection` (the notify writer's transaction, or the log task's
/// connection) in one INSERT.
pub(crate) async fn insert_on<C: ConnectionTrait>(
    connection: &C,
    entries: Vec<NotifyLogEntry>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    notify_log::Entity::insert_many(entries.into_iter().map(NotifyLogEntry::into_row))
        .exec_without_returning(connection)
        .await
        .map_err(db("logging notifies"))?;
    Ok(())
}

/// [`insert_on`] on the SQLite writer's own connection ([`super::sqlite_writer`]), inside
/// its batch transaction.
pub(crate) fn insert_sqlite(
    transaction: &rusqlite::Transaction<'_>,
    entries: &[NotifyLogEntry],
) -> Result<(), StoreError> {
    use super::sqlite_writer::{sqlite_error, sqlite_time};
    if entries.is_empty() {
        return Ok(());
    }
    let mut insert = transaction
        .prepare_cached(
            "INSERT INTO pays_notify_log (received_at, kind, order_id, refund_id, outcome, \
             verified, reason_kind, reason, peer, body_len, body) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(sqlite_error("logging notifies"))?;
    for entry in entries {
        insert
            .execute(rusqlite::params![
                sqlite_time(&entry.received_at),
                entry.kind.as_str(),
                entry.order_id.as_deref().map(|id| truncated(id, 64)),
                entry.refund_id.as_deref().map(|id| truncated(id, 64)),
                entry.outcome,
                entry.verified,
                entry.reason_kind,
                entry.reason,
                entry.peer,
                entry.body_len,
                entry.body,
            ])
            .map_err(sqlite_error("logging notifies"))?;
    }
    Ok(())
}

/// The most notifies the order page shows.
pub const NOTIFIES_SHOWN: u64 = 200;

impl PayStore {
    /// The notifies received for `order_id` (refusals under the order id they claimed),
    /// newest first, at most [`NOTIFIES_SHOWN`].
    pub async fn notifies_of(&self, order_id: &str) -> Result<Vec<notify_log::Model>, StoreError> {
        notify_log::Entity::find()
            .filter(notify_log::Column::OrderId.eq(order_id))
            .order_by_desc(notify_log::Column::Id)
            .limit(NOTIFIES_SHOWN)
            .all(&self.connection)
            .await
            .map_err(db("reading an order's notifies"))
    }

    /// Refused notifies received at or after `since`, counted by reason kind, the most
    /// frequent first.
    pub async fn notify_refusals_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut counts: Vec<(Option<String>, i64)> = notify_log::Entity::find()
            .select_only()
            .column(notify_log::Column::ReasonKind)
            .column_as(
                Expr::from(Func::count(Expr::col(notify_log::Column::Id))),
                "refusals",
            )
            .filter(notify_log::Column::Outcome.eq("refused"))
            .filter(notify_log::Column::ReceivedAt.gte(since))
            .group_by(notify_log::Column::ReasonKind)
            .into_tuple()
            .all(&self.connection)
            .await
            .map_err(db("counting refused notifies"))?;
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(counts
            .into_iter()
            .map(|(kind, count)| (kind.unwrap_or_else(|| "other".to_owned()), count))
            .collect())
    }

    /// The log of every notify this store (and its clones) received.
    pub fn notify_log(&self) -> &NotifyLog {
        &self.notify_log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_reasons_are_truncated_on_a_character_boundary() {
        let body = "é".repeat(MAX_BODY_CHARS + 10);
        let entry = NotifyLogEntry::of_reply(
            NotifyKind::Payment,
            body.as_bytes(),
            &NotifyOutcome::Rejected {
                kind: crate::model::RefusalReason::Other,
                reason: "x".repeat(2000),
            },
            None,
        );
        assert_eq!(entry.body.chars().count(), MAX_BODY_CHARS);
        assert_eq!(entry.body_len, body.len() as i64);
        assert_eq!(
            entry.reason.as_deref().map(str::len),
            Some(MAX_REASON_CHARS)
        );
        assert_eq!(entry.outcome, "refused");
        assert!(!entry.verified);
        assert_eq!(entry.reason_kind, Some("other"));
    }
}
