//! The order store: inserts, reads and the state machine.
//!
//! Every change of `status` is one conditional `UPDATE … WHERE order_id = ? AND status IN
//! (…)`; the row count it reports decides the single winner, identically on SQLite and
//! PostgreSQL, whichever process or task runs it. The winner writes the transition's
//! event in the same transaction (the outbox, [`super::outbox`]), so each transition has
//! exactly one event, and none is written for a transition that did not happen.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait,
};

use super::cache::{DEFAULT_ORDER_CACHE_CAPACITY, OrderCache, OrderFacts};
use super::entity::{ApiVersion, PayStatus, pay_log, payment_conflict, wechat_record};
use super::error::db;
use super::notify_log::NotifyLog;
use super::outbox::{NewEvent, Outbox, write_events_on};
use super::rows::{mark_paid_on, next_event_seq, save_third_party_on};
use super::sqlite_writer::SqliteHotPath;
use super::writer::{NotifiedPayment, NotifyWriter, NotifyWriterStats};
use crate::events::PayEventKind;

pub use super::error::StoreError;
pub use super::rows::{PaidOutcome, PaymentRecorded, ThirdPartyState, now};

/// What a new order needs.
#[derive(Clone, Debug)]
pub struct NewOrder {
    /// Merchant order number.
    pub order_id: String,
    /// Title.
    pub subject: String,
    /// Amount in fen (already validated positive).
    pub amount_fen: i64,
    /// Owning element's fullName.
    pub element: String,
    /// Unpaid after this instant → `timeout`.
    pub expires_at: DateTime<Utc>,
    /// First reconciler look.
    pub first_check_at: DateTime<Utc>,
}

/// The result of an attempted close/timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    /// This caller moved the order out of `wait`.
    Closed,
    /// Someone else already moved it; here is where it is.
    AlreadyFinal(PayStatus),
}

/// Filters for listing orders.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    /// Only this state.
    pub status: Option<PayStatus>,
    /// Only this element's orders.
    pub element: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub created_to: Option<DateTime<Utc>>,
    /// Only orders whose id starts with this text (taken literally: `%` and `_` too).
    pub order_id_prefix: Option<String>,
    /// Amount at least this many fen.
    pub amount_min_fen: Option<i64>,
    /// Amount at most this many fen.
    pub amount_max_fen: Option<i64>,
    /// Only orders whose expiry is strictly before this instant (with `status: wait`:
    /// the orders stuck past their expiry).
    pub expires_before: Option<DateTime<Utc>>,
    /// Paid at or after.
    pub paid_from: Option<DateTime<Utc>>,
    /// Paid strictly before.
    pub paid_to: Option<DateTime<Utc>>,
}

/// What the prepay call (V2 `unifiedorder`, V3 `/v3/pay/transactions/…`) returned, for the
/// record table.
#[derive(Clone, Debug)]
pub struct PrepayRecord {
    /// Order id.
    pub order_id: String,
    /// appid.
    pub appid: String,
    /// mch_id.
    pub mch_id: String,
    /// trade_type.
    pub trade_type: String,
    /// prepay_id (V3 answers NATIVE and H5 orders without one).
    pub prepay_id: Option<String>,
    /// code_url (NATIVE).
    pub code_url: Option<String>,
    /// mweb_url (MWEB).
    pub mweb_url: Option<String>,
    /// Valid until.
    pub prepay_expires_at: DateTime<Utc>,
    /// total_fee sent.
    pub total_fee: i64,
    /// The API the prepay order was made in.
    pub api_version: ApiVersion,
}

/// The family's tables behind one connection pool.
///
/// Payments reported by notifies are committed by one writer per store (see
/// [`PayStore::record_notified_payment`]); on SQLite new orders share its commits, and the
/// orders a notify must read are read by one reader thread ([`super::sqlite_writer`]).
/// Every other write runs on the caller's task.
///
/// Clones share one bounded cache of the facts of orders that never change (owner,
/// amount, and a payment once committed or read: success is final), filled by this
/// store's inserts, reads and payments; [`PayStore::order_facts`] answers from it.
#[derive(Clone, Debug)]
pub struct PayStore {
    pub(super) connection: DatabaseConnection,
    notify_writer: Arc<NotifyWriter>,
    orders: Arc<OrderCache>,
    pub(super) outbox: Arc<Outbox>,
    pub(super) notify_log: Arc<NotifyLog>,
    /// On a SQLite file: the writer and reader threads of the hot paths.
    sqlite: Option<Arc<SqliteHotPath>>,
}

/// The busy timeout of [`PayStore::new`]: [`super::DbConfig::new`]'s.
const DEFAULT_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl PayStore {
    /// Wraps an open, migrated connection.
    pub fn new(connection: DatabaseConnection) -> Self {
        Self::with_busy_timeout(connection, DEFAULT_BUSY_TIMEOUT)
    }

    /// Wraps an open, migrated connection whose SQLite writers wait `busy_timeout` for the
    /// write lock.
    pub(crate) fn with_busy_timeout(
        connection: DatabaseConnection,
        busy_timeout: std::time::Duration,
    ) -> Self {
        let outbox = Arc::new(Outbox::default());
        let notify_writer = NotifyWriter::new(connection.clone(), Arc::clone(&outbox));
        let sqlite = (connection.get_database_backend() == sea_orm::DbBackend::Sqlite)
            .then(|| {
                let pool = connection.get_sqlite_connection_pool();
                SqliteHotPath::new(
                    pool.connect_options().get_filename().to_owned(),
                    busy_timeout,
                    Arc::clone(&outbox),
                    notify_writer.counters(),
                )
            })
            .flatten()
            .map(Arc::new);
        PayStore {
            notify_writer: Arc::new(notify_writer),
            notify_log: Arc::new(NotifyLog::new(connection.clone(), sqlite.clone())),
            connection,
            orders: Arc::new(OrderCache::new(DEFAULT_ORDER_CACHE_CAPACITY)),
            outbox,
            sqlite,
        }
    }

    /// The outbox configuration of this store and its clones: where new events go.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// How many orders' facts this store (and its clones) remember; 0 remembers none.
    /// [`crate::register`] sets it from [`crate::PaysSettings::order_cache_capacity`].
    pub fn set_order_cache_capacity(&self, capacity: usize) {
        self.orders.set_capacity(capacity);
    }

    /// The facts of an order that never change once true (owner, amount, and whether it is
    /// known paid), from memory when this process has seen the order, else from one read.
    /// `None`: no such order.
    pub async fn order_facts(&self, order_id: &str) -> Result<Option<Arc<OrderFacts>>, StoreError> {
        if let Some(known) = self.orders.get(order_id) {
            crate::metrics::order_cache(true);
            return Ok(Some(known));
        }
        crate::metrics::order_cache(false);
        let row = match &self.sqlite {
            // Read with the other notifies' reads of the moment, in one query.
            Some(sqlite) => {
                let row = sqlite.read(order_id).await?;
                if let Some(row) = &row {
                    self.orders.remember_row(row);
                }
                row
            }
            None => self.find_order(order_id).await?,
        };
        Ok(row.map(|row| Arc::new(OrderFacts::of_row(&row))))
    }

    /// Remembers the order a payment left behind, once that payment is committed.
    fn remember_payment(&self, recorded: &PaymentRecorded) {
        if let Some(order) = &recorded.order {
            self.orders.remember_row(order);
        }
    }

    /// What the notify writer of this store (and its clones) has committed: how many
    /// transactions, holding how many payments.
    pub fn notify_writer_stats(&self) -> NotifyWriterStats {
        self.notify_writer.stats()
    }

    /// The underlying connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.connection.ping().await.map_err(db("pinging"))
    }

    /// Inserts a new `wait` order, durably before this returns. A taken order id is
    /// [`StoreError::DuplicateOrder`] and writes nothing. While row hooks are present
    /// ([`Outbox::has_row_hooks`]), the order's `order.created` event is written in the
    /// same transaction. The insert shares its commit with whatever else the store's writer
    /// has queued (other orders, notified payments): alone it costs one commit.
    pub async fn insert_order(&self, order: NewOrder) -> Result<pay_log::Model, StoreError> {
        let at = now();
        let model = pay_log::Model {
            id: 0,
            order_id: order.order_id,
            subject: order.subject,
            amount_fen: order.amount_fen,
            status: PayStatus::Wait,
            element: order.element,
            pay_type: None,
            transaction_id: None,
            paid_after_close: false,
            created_at: at,
            updated_at: at,
            paid_at: None,
            closed_at: None,
            expires_at: order.expires_at.trunc_subsecs(6),
            check_attempts: 0,
            next_check_at: order.first_check_at.trunc_subsecs(6),
            event_seq: 0,
            refunded_fen: 0,
            refund_reserved_fen: 0,
        };
        let model = match &self.sqlite {
            Some(sqlite) => sqlite.insert(model).await?,
            None => self.notify_writer.insert(model).await?,
        };
        self.orders.remember_row(&model);
        Ok(model)
    }

    /// One order by id.
    pub async fn find_order(&self, order_id: &str) -> Result<Option<pay_log::Model>, StoreError> {
        let row = pay_log::Entity::find()
            .filter(pay_log::Column::OrderId.eq(order_id))
            .one(&self.connection)
            .await
            .map_err(db("reading an order"))?;
        if let Some(row) = &row {
            self.orders.remember_row(row);
        }
        Ok(row)
    }

    /// One order by id, absent → [`StoreError::UnknownOrder`].
    pub async fn get_order(&self, order_id: &str) -> Result<pay_log::Model, StoreError> {
        self.find_order(order_id)
            .await?
            .ok_or_else(|| StoreError::UnknownOrder {
                order_id: order_id.to_owned(),
            })
    }

    /// Orders matching `filter`, newest first, `limit` from `offset`.
    pub async fn list_orders(
        &self,
        filter: &OrderFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<pay_log::Model>, StoreError> {
        pay_log::Entity::find()
            .filter(filter_condition(filter))
            .order_by_desc(pay_log::Column::CreatedAt)
            .order_by_desc(pay_log::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(&self.connection)
            .await
            .map_err(db("listing orders"))
    }

    /// How many orders match `filter`.
    pub async fn count_orders(&self, filter: &OrderFilter) -> Result<u64, StoreError> {
        pay_log::Entity::find()
            .filter(filter_condition(filter))
            .count(&self.connection)
            .await
            .map_err(db("counting orders"))
    }

    /// The sum of the amounts of the orders matching `filter`, in fen (0 for none).
    pub async fn sum_amount_fen(&self, filter: &OrderFilter) -> Result<i64, StoreError> {
        // CAST: PostgreSQL's SUM of a BIGINT is a NUMERIC.
        let sum: Option<i64> = pay_log::Entity::find()
            .select_only()
            .column_as(
                Expr::cust("CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT)"),
                "total",
            )
            .filter(filter_condition(filter))
            .into_tuple()
            .one(&self.connection)
            .await
            .map_err(db("summing order amounts"))?;
        Ok(sum.unwrap_or(0))
    }

    /// Remembers the trade type of the latest prepay order (not a state change).
    pub async fn set_pay_type(&self, order_id: &str, pay_type: &str) -> Result<(), StoreError> {
        pay_log::Entity::update_many()
            .col_expr(pay_log::Column::PayType, Expr::value(pay_type))
            .col_expr(pay_log::Column::UpdatedAt, Expr::value(now()))
            .filter(pay_log::Column::OrderId.eq(order_id))
            .exec(&self.connection)
            .await
            .map_err(db("recording the pay type"))?;
        Ok(())
    }

    /// `wait → close` or `wait → timeout`, one conditional UPDATE, and its event
    /// (`order.closed` or `order.timeout`) in the same transaction.
    pub async fn close_order(
        &self,
        order_id: &str,
        to: PayStatus,
    ) -> Result<CloseOutcome, StoreError> {
        debug_assert!(matches!(to, PayStatus::Close | PayStatus::Timeout));
        let kind = if to == PayStatus::Timeout {
            PayEventKind::TimedOut
        } else {
            PayEventKind::Closed
        };
        let at = now();
        let transaction = self
            .connection
            .begin()
            .await
            .map_err(db("starting to close an order"))?;
        let mut update = pay_log::Entity::update_many()
            .col_expr(pay_log::Column::Status, Expr::value(to.as_str()))
            .col_expr(pay_log::Column::ClosedAt, Expr::value(at))
            .col_expr(pay_log::Column::UpdatedAt, Expr::value(at))
            .col_expr(pay_log::Column::EventSeq, next_event_seq())
            .filter(pay_log::Column::OrderId.eq(order_id))
            .filter(pay_log::Column::Status.eq(PayStatus::Wait.as_str()))
            .into_query();
        update.returning_all();
        let closed = transaction
            .query_one(&update)
            .await
            .map_err(db("closing an order"))?
            .map(|row| pay_log::Model::from_query_result(&row, ""))
            .transpose()
            .map_err(db("reading a closed order"))?;
        let Some(order) = closed else {
            drop(transaction);
            let current = self.get_order(order_id).await?;
            return Ok(CloseOutcome::AlreadyFinal(current.status));
        };
        let events = write_events_on(
            &transaction,
            &self.outbox,
            vec![NewEvent::transition(kind, order)],
        )
        .await?;
        transaction
            .commit()
            .await
            .map_err(db("committing an order's close"))?;
        self.outbox.announce_written(&events);
        Ok(CloseOutcome::Closed)
    }

    /// Records a payment: `wait → success`, or — if the order was closed or timed out
    /// locally meanwhile — `close|timeout → success` with `paid_after_close` set. Each is
    /// one conditional UPDATE; exactly one caller ever gets `Paid` or `PaidAfterClose`,
    /// and that caller's transaction writes the event.
    pub async fn mark_paid(
        &self,
        order_id: &str,
        transaction_id: Option<&str>,
        paid_at: DateTime<Utc>,
    ) -> Result<PaymentRecorded, StoreError> {
        let transaction = self
            .connection
            .begin()
            .await
            .map_err(db("starting to record a payment"))?;
        let recorded = mark_paid_on(&transaction, order_id, transaction_id, paid_at).await?;
        let kind = match recorded.outcome {
            PaidOutcome::Paid => Some(PayEventKind::Paid),
            PaidOutcome::PaidAfterClose { .. } => Some(PayEventKind::PaidAfterClose),
            PaidOutcome::AlreadyPaid | PaidOutcome::Conflict { .. } => None,
        };
        let event = kind.zip(recorded.order.clone());
        let mut events = Vec::new();
        if let Some((kind, order)) = &event {
            events = write_events_on(
                &transaction,
                &self.outbox,
                vec![NewEvent::transition(*kind, order.clone())],
            )
            .await?;
        }
        transaction
            .commit()
            .await
            .map_err(db("committing a payment"))?;
        if event.is_some() {
            self.outbox.announce_written(&events);
        }
        self.remember_payment(&recorded);
        Ok(recorded)
    }

    /// The payment a verified notify reports: [`PayStore::mark_paid`] and the record-table
    /// row, made durable before this returns.
    ///
    /// Group commit: the payment is queued to the store's writer task, which runs whatever
    /// payments are queued (up to a cap) in one transaction — each its own conditional
    /// UPDATE, whose row count decides that caller's outcome — and commits once. A failed
    /// statement or commit fails every payment of the batch (nothing of it is written), so
    /// each caller answers FAIL and WeChat sends its notify again. There is no waiting
    /// for company: a batch is what queued while the previous commit ran, so at low load
    /// a payment costs one commit, as before.
    pub async fn record_notified_payment(
        &self,
        state: ThirdPartyState,
        paid_at: DateTime<Utc>,
    ) -> Result<PaymentRecorded, StoreError> {
        let payment = NotifiedPayment { state, paid_at };
        let recorded = match &self.sqlite {
            Some(sqlite) => sqlite.record(payment).await?,
            None => self.notify_writer.record(payment).await?,
        };
        // Answered only after the commit: what is remembered is durable.
        self.remember_payment(&recorded);
        Ok(recorded)
    }
}

impl PayStore {
    /// Claims up to `limit` waiting orders whose next reconciler look is due (the longest
    /// due first; returned oldest order first), by pushing their `next_check_at` to `at + lease` in the same statement: an
    /// order claimed by one instance (or task) is not due for another until the claimant
    /// reschedules it ([`PayStore::postpone_check`]) or dies and the lease lapses. So with
    /// several instances on one database each due order is queried once per round. On
    /// PostgreSQL the candidates are picked `FOR UPDATE SKIP LOCKED`; SQLite serialises
    /// writers anyway.
    pub async fn claim_due_for_check(
        &self,
        at: DateTime<Utc>,
        limit: u64,
        lease: std::time::Duration,
    ) -> Result<Vec<pay_log::Model>, StoreError> {
        let rows = super::claim_due_rows(
            &self.connection,
            "pays_pay_log",
            "status = 'wait'",
            at,
            limit,
            lease,
        )
        .await
        .map_err(db("claiming waiting orders"))?;
        let mut due = rows
            .iter()
            .map(|row| pay_log::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db("reading claimed orders"))?;
        // RETURNING does not keep the subquery's order; ids follow creation.
        due.sort_by_key(|row| row.id);
        Ok(due)
    }

    /// Pushes an order's next reconciler look to `next_check_at`, counting the attempt.
    pub async fn postpone_check(
        &self,
        order_id: &str,
        attempts: i32,
        next_check_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        pay_log::Entity::update_many()
            .col_expr(pay_log::Column::CheckAttempts, Expr::value(attempts))
            .col_expr(
                pay_log::Column::NextCheckAt,
                Expr::value(next_check_at.trunc_subsecs(6)),
            )
            .filter(pay_log::Column::OrderId.eq(order_id))
            .filter(pay_log::Column::Status.eq(PayStatus::Wait.as_str()))
            .exec(&self.connection)
            .await
            .map_err(db("scheduling the next check"))?;
        Ok(())
    }

    /// The second payments reported for an order already paid under another transaction,
    /// oldest first (none for almost every order).
    pub async fn payment_conflicts(
        &self,
        order_id: &str,
    ) -> Result<Vec<payment_conflict::Model>, StoreError> {
        payment_conflict::Entity::find()
            .filter(payment_conflict::Column::OrderId.eq(order_id))
            .order_by_asc(payment_conflict::Column::Id)
            .all(&self.connection)
            .await
            .map_err(db("reading payment conflicts"))
    }

    /// The WeChat record of an order.
    pub async fn find_record(
        &self,
        order_id: &str,
    ) -> Result<Option<wechat_record::Model>, StoreError> {
        wechat_record::Entity::find_by_id(order_id.to_owned())
            .one(&self.connection)
            .await
            .map_err(db("reading a WeChat record"))
    }

    /// Stores (or replaces) the prepay order data.
    pub async fn save_prepay(&self, prepay: PrepayRecord) -> Result<(), StoreError> {
        use wechat_record::Column as C;
        let at = now();
        let row = wechat_record::ActiveModel {
            order_id: Set(prepay.order_id),
            appid: Set(prepay.appid),
            mch_id: Set(prepay.mch_id),
            trade_type: Set(Some(prepay.trade_type)),
            prepay_id: Set(prepay.prepay_id),
            code_url: Set(prepay.code_url),
            mweb_url: Set(prepay.mweb_url),
            prepay_expires_at: Set(Some(prepay.prepay_expires_at.trunc_subsecs(6))),
            trade_state: Set(None),
            transaction_id: Set(None),
            total_fee: Set(prepay.total_fee),
            last_notify: Set(None),
            last_query: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            notified_at: Set(None),
            queried_at: Set(None),
            api_version: Set(prepay.api_version),
        };
        wechat_record::Entity::insert(row)
            .on_conflict(
                OnConflict::column(C::OrderId)
                    .update_columns([
                        C::Appid,
                        C::MchId,
                        C::TradeType,
                        C::PrepayId,
                        C::CodeUrl,
                        C::MwebUrl,
                        C::PrepayExpiresAt,
                        C::TotalFee,
                        C::UpdatedAt,
                        C::ApiVersion,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.connection)
            .await
            .map_err(db("saving the prepay order"))?;
        Ok(())
    }

    /// Stores what a verified notify said.
    pub async fn save_notify(&self, state: ThirdPartyState) -> Result<(), StoreError> {
        self.save_third_party(state, true).await
    }

    /// Stores what an orderquery said.
    pub async fn save_query(&self, state: ThirdPartyState) -> Result<(), StoreError> {
        self.save_third_party(state, false).await
    }

    async fn save_third_party(
        &self,
        state: ThirdPartyState,
        from_notify: bool,
    ) -> Result<(), StoreError> {
        save_third_party_on(&self.connection, state, from_notify).await
    }
}

fn filter_condition(filter: &OrderFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(status) = filter.status {
        condition = condition.add(pay_log::Column::Status.eq(status.as_str()));
    }
    if let Some(element) = &filter.element {
        condition = condition.add(pay_log::Column::Element.eq(element.as_str()));
    }
    if let Some(from) = filter.created_from {
        condition = condition.add(pay_log::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.created_to {
        condition = condition.add(pay_log::Column::CreatedAt.lt(to));
    }
    if let Some(prefix) = &filter.order_id_prefix {
        // LIKE with the prefix's own wildcards escaped: a prefix is text, not a pattern.
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        condition = condition
            .add(Expr::col(pay_log::Column::OrderId).like(LikeExpr::new(pattern).escape('\\')));
    }
    if let Some(min) = filter.amount_min_fen {
        condition = condition.add(pay_log::Column::AmountFen.gte(min));
    }
    if let Some(max) = filter.amount_max_fen {
        condition = condition.add(pay_log::Column::AmountFen.lte(max));
    }
    if let Some(before) = filter.expires_before {
        condition = condition.add(pay_log::Column::ExpiresAt.lt(before));
    }
    if let Some(from) = filter.paid_from {
        condition = condition.add(pay_log::Column::PaidAt.gte(from));
    }
    if let Some(to) = filter.paid_to {
        condition = condition.add(pay_log::Column::PaidAt.lt(to));
    }
    condition
}
