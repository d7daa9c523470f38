//! The order store: inserts, reads and the state machine.
//!
//! Every change of `status` is one conditional `UPDATE … WHERE order_id = ? AND status IN
//! (…)`; the row count it reports decides the single winner, identically on SQLite and
//! PostgreSQL, whichever process or task runs it. Only the winner may announce the change
//! (hooks), so each transition is announced exactly once.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Set, SqlErr, UpdateMany,
};

use super::cache::{DEFAULT_ORDER_CACHE_CAPACITY, OrderCache, OrderFacts};
use super::entity::{PayStatus, pay_log, payment_conflict, wechat_record};
use super::writer::{NotifiedPayment, NotifyWriter};

/// A database failure, with what the store was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The order id is taken.
    #[error("order {order_id} already exists")]
    DuplicateOrder {
        /// The order id.
        order_id: String,
    },
    /// No such order.
    #[error("order {order_id} does not exist")]
    UnknownOrder {
        /// The order id.
        order_id: String,
    },
    /// The database refused or failed.
    #[error("database error while {doing}: {source}")]
    Db {
        /// What the store was doing.
        doing: &'static str,
        /// The driver error.
        source: DbErr,
    },
}

pub(super) fn db(doing: &'static str) -> impl FnOnce(DbErr) -> StoreError {
    move |source| StoreError::Db { doing, source }
}

/// Current time at the precision both databases keep (microseconds), so what is written
/// reads back equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

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

/// The result of recording a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaidOutcome {
    /// This caller moved the order `wait → success`.
    Paid,
    /// This caller moved a closed/timed-out order to `success` and flagged it.
    PaidAfterClose {
        /// The state it was in.
        previous: PayStatus,
    },
    /// It was already paid; nothing changed.
    AlreadyPaid,
    /// It was already paid under another transaction id: this is a second payment for
    /// the order. The order keeps its first transaction; this one is kept in
    /// `pays_payment_conflict` ([`PayStore::payment_conflicts`]). `first_seen`: this
    /// caller recorded it (a repeat of the same conflicting notify finds it recorded).
    Conflict {
        /// Whether this caller's write recorded the conflict.
        first_seen: bool,
    },
}

/// A recorded payment: what happened, and the order as this caller saw it — when it made
/// the transition, as its conditional UPDATE left it (`RETURNING`), so announcing it needs
/// no second read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecorded {
    /// What this caller's UPDATE did.
    pub outcome: PaidOutcome,
    /// The order right after the transition when `outcome` is `Paid` or
    /// `PaidAfterClose`; for `AlreadyPaid` and `Conflict`, the paid order as it was found.
    pub order: Option<pay_log::Model>,
}

impl PaymentRecorded {
    fn already_paid(order: pay_log::Model) -> Self {
        PaymentRecorded {
            outcome: PaidOutcome::AlreadyPaid,
            order: Some(order),
        }
    }
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
}

/// What unifiedorder returned, for the record table.
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
    /// prepay_id.
    pub prepay_id: String,
    /// code_url (NATIVE).
    pub code_url: Option<String>,
    /// mweb_url (MWEB).
    pub mweb_url: Option<String>,
    /// Valid until.
    pub prepay_expires_at: DateTime<Utc>,
    /// total_fee sent.
    pub total_fee: i64,
}

/// What a verified notify or a query said, for the record table.
#[derive(Clone, Debug)]
pub struct ThirdPartyState {
    /// Order id.
    pub order_id: String,
    /// appid (used only when the row does not exist yet).
    pub appid: String,
    /// mch_id (ditto).
    pub mch_id: String,
    /// total_fee (ditto).
    pub total_fee: i64,
    /// trade_state (a SUCCESS notify counts as SUCCESS).
    pub trade_state: Option<String>,
    /// transaction_id.
    pub transaction_id: Option<String>,
    /// The raw XML.
    pub raw: String,
}

/// The family's tables behind one connection pool.
///
/// Payments reported by notifies are committed by one writer task per store (see
/// [`PayStore::record_notified_payment`]); every other write runs on the caller's task.
///
/// Clones share one bounded cache of the facts of orders that never change (owner,
/// amount, and a payment once committed or read: success is final), filled by this
/// store's inserts, reads and payments; [`PayStore::order_facts`] answers from it.
#[derive(Clone, Debug)]
pub struct PayStore {
    connection: DatabaseConnection,
    notify_writer: Arc<NotifyWriter>,
    orders: Arc<OrderCache>,
}

impl PayStore {
    /// Wraps an open, migrated connection.
    pub fn new(connection: DatabaseConnection) -> Self {
        PayStore {
            notify_writer: Arc::new(NotifyWriter::new(connection.clone())),
            connection,
            orders: Arc::new(OrderCache::new(DEFAULT_ORDER_CACHE_CAPACITY)),
        }
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
            return Ok(Some(known));
        }
        Ok(self
            .find_order(order_id)
            .await?
            .map(|row| Arc::new(OrderFacts::of_row(&row))))
    }

    /// Remembers the order a payment left behind, once that payment is committed.
    fn remember_payment(&self, recorded: &PaymentRecorded) {
        if let Some(order) = &recorded.order {
            self.orders.remember_row(order);
        }
    }

    /// The underlying connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.connection.ping().await.map_err(db("pinging"))
    }

    /// Inserts a new `wait` order. A taken order id is [`StoreError::DuplicateOrder`] and
    /// writes nothing.
    pub async fn insert_order(&self, order: NewOrder) -> Result<pay_log::Model, StoreError> {
        let at = now();
        let mut model = pay_log::Model {
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
        };
        let mut row: pay_log::ActiveModel = model.clone().into();
        row.id = NotSet;
        // Insert only (the id comes back as last_insert_rowid or `RETURNING id`): no
        // read-back, which on SQLite would be one more statement per order.
        match pay_log::Entity::insert(row).exec(&self.connection).await {
            Ok(inserted) => {
                model.id = inserted.last_insert_id;
                self.orders.remember_row(&model);
                Ok(model)
            }
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(StoreError::DuplicateOrder {
                    order_id: model.order_id,
                })
            }
            Err(source) => Err(StoreError::Db {
                doing: "inserting an order",
                source,
            }),
        }
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

    /// `wait → close` or `wait → timeout`, one conditional UPDATE.
    pub async fn close_order(
        &self,
        order_id: &str,
        to: PayStatus,
    ) -> Result<CloseOutcome, StoreError> {
        debug_assert!(matches!(to, PayStatus::Close | PayStatus::Timeout));
        let at = now();
        let result = pay_log::Entity::update_many()
            .col_expr(pay_log::Column::Status, Expr::value(to.as_str()))
            .col_expr(pay_log::Column::ClosedAt, Expr::value(at))
            .col_expr(pay_log::Column::UpdatedAt, Expr::value(at))
            .filter(pay_log::Column::OrderId.eq(order_id))
            .filter(pay_log::Column::Status.eq(PayStatus::Wait.as_str()))
            .exec(&self.connection)
            .await
            .map_err(db("closing an order"))?;
        if result.rows_affected == 1 {
            return Ok(CloseOutcome::Closed);
        }
        let current = self.get_order(order_id).await?;
        Ok(CloseOutcome::AlreadyFinal(current.status))
    }

    /// Records a payment: `wait → success`, or — if the order was closed or timed out
    /// locally meanwhile — `close|timeout → success` with `paid_after_close` set. Each is
    /// one conditional UPDATE; exactly one caller ever gets `Paid` or `PaidAfterClose`.
    pub async fn mark_paid(
        &self,
        order_id: &str,
        transaction_id: Option<&str>,
        paid_at: DateTime<Utc>,
    ) -> Result<PaymentRecorded, StoreError> {
        let recorded = mark_paid_on(&self.connection, order_id, transaction_id, paid_at).await?;
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
        let recorded = self
            .notify_writer
            .record(NotifiedPayment { state, paid_at })
            .await?;
        // Answered only after the commit: what is remembered is durable.
        self.remember_payment(&recorded);
        Ok(recorded)
    }
}

async fn get_order_on<C: ConnectionTrait>(
    connection: &C,
    order_id: &str,
) -> Result<pay_log::Model, StoreError> {
    pay_log::Entity::find()
        .filter(pay_log::Column::OrderId.eq(order_id))
        .one(connection)
        .await
        .map_err(db("reading an order"))?
        .ok_or_else(|| StoreError::UnknownOrder {
            order_id: order_id.to_owned(),
        })
}

/// Runs a conditional UPDATE of the pay log and returns the row it changed, if any
/// (`RETURNING *`: SQLite ≥ 3.35 and PostgreSQL). At most one row: every such UPDATE
/// names one `order_id`, which is unique.
async fn update_returning<C: ConnectionTrait>(
    connection: &C,
    update: UpdateMany<pay_log::Entity>,
) -> Result<Option<pay_log::Model>, DbErr> {
    let mut query = update.into_query();
    query.returning_all();
    let rows = connection.query_all(&query).await?;
    rows.first()
        .map(|row| pay_log::Model::from_query_result(row, ""))
        .transpose()
}

/// When `recorded` found the order already paid under another transaction than the one
/// `state` reports, the transaction the order keeps (`None` inside when it has none on
/// record: then nothing contradicts, and this is `None`).
pub(super) fn conflicting_payment(
    recorded: &PaymentRecorded,
    state: &ThirdPartyState,
) -> Option<String> {
    if recorded.outcome != PaidOutcome::AlreadyPaid {
        return None;
    }
    let kept = recorded.order.as_ref()?.transaction_id.as_ref()?;
    let reported = state.transaction_id.as_ref()?;
    (kept != reported).then(|| kept.clone())
}

/// Keeps the second payment `state` reports for an order paid under `kept`, once per
/// (order, transaction): `Conflict { first_seen }` says whether this call wrote it.
pub(super) async fn record_conflict_on<C: ConnectionTrait>(
    connection: &C,
    state: &ThirdPartyState,
    kept: String,
    order: Option<pay_log::Model>,
) -> Result<PaymentRecorded, StoreError> {
    use payment_conflict::Column as C;
    let row = payment_conflict::ActiveModel {
        id: NotSet,
        order_id: Set(state.order_id.clone()),
        transaction_id: Set(state.transaction_id.clone().unwrap_or_default()),
        order_transaction_id: Set(Some(kept)),
        total_fee: Set(state.total_fee),
        raw_notify: Set(state.raw.clone()),
        created_at: Set(now()),
    };
    let insert = payment_conflict::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([C::OrderId, C::TransactionId])
                .do_nothing()
                .to_owned(),
        )
        .into_query();
    let written = connection
        .execute(&insert)
        .await
        .map_err(db("recording a payment conflict"))?;
    Ok(PaymentRecorded {
        outcome: PaidOutcome::Conflict {
            first_seen: written.rows_affected() == 1,
        },
        order,
    })
}

pub(super) async fn mark_paid_on<C: ConnectionTrait>(
    connection: &C,
    order_id: &str,
    transaction_id: Option<&str>,
    paid_at: DateTime<Utc>,
) -> Result<PaymentRecorded, StoreError> {
    let paid_at = paid_at.trunc_subsecs(6);
    // Statuses only move forward, so two rounds always settle it; a third is a bug
    // elsewhere (e.g. someone writing `wait` back) and is reported, not looped on.
    for _ in 0..2 {
        let at = now();
        let won = update_returning(
            connection,
            pay_log::Entity::update_many()
                .col_expr(
                    pay_log::Column::Status,
                    Expr::value(PayStatus::Success.as_str()),
                )
                .col_expr(pay_log::Column::TransactionId, Expr::value(transaction_id))
                .col_expr(pay_log::Column::PaidAt, Expr::value(paid_at))
                .col_expr(pay_log::Column::UpdatedAt, Expr::value(at))
                .filter(pay_log::Column::OrderId.eq(order_id))
                .filter(pay_log::Column::Status.eq(PayStatus::Wait.as_str())),
        )
        .await
        .map_err(db("marking an order paid"))?;
        if let Some(order) = won {
            return Ok(PaymentRecorded {
                outcome: PaidOutcome::Paid,
                order: Some(order),
            });
        }
        let current = get_order_on(connection, order_id).await?;
        match current.status {
            PayStatus::Success => return Ok(PaymentRecorded::already_paid(current)),
            PayStatus::Wait => continue,
            previous @ (PayStatus::Close | PayStatus::Timeout) => {
                let late = update_returning(
                    connection,
                    pay_log::Entity::update_many()
                        .col_expr(
                            pay_log::Column::Status,
                            Expr::value(PayStatus::Success.as_str()),
                        )
                        .col_expr(pay_log::Column::PaidAfterClose, Expr::value(true))
                        .col_expr(pay_log::Column::TransactionId, Expr::value(transaction_id))
                        .col_expr(pay_log::Column::PaidAt, Expr::value(paid_at))
                        .col_expr(pay_log::Column::UpdatedAt, Expr::value(at))
                        .filter(pay_log::Column::OrderId.eq(order_id))
                        .filter(pay_log::Column::Status.eq(previous.as_str())),
                )
                .await
                .map_err(db("marking a closed order paid"))?;
                if let Some(order) = late {
                    return Ok(PaymentRecorded {
                        outcome: PaidOutcome::PaidAfterClose { previous },
                        order: Some(order),
                    });
                }
                // Another caller recorded the same payment first.
                continue;
            }
        }
    }
    let current = get_order_on(connection, order_id).await?;
    match current.status {
        PayStatus::Success => Ok(PaymentRecorded::already_paid(current)),
        _ => Err(StoreError::Db {
            doing: "marking an order paid",
            source: DbErr::Custom(format!(
                "order {order_id} neither moved to success nor is in success"
            )),
        }),
    }
}

impl PayStore {
    /// Waiting orders whose next reconciler look is due, oldest first.
    pub async fn due_for_check(
        &self,
        at: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<pay_log::Model>, StoreError> {
        pay_log::Entity::find()
            .filter(pay_log::Column::Status.eq(PayStatus::Wait.as_str()))
            .filter(pay_log::Column::NextCheckAt.lte(at))
            .order_by_asc(pay_log::Column::NextCheckAt)
            .limit(limit)
            .all(&self.connection)
            .await
            .map_err(db("scanning waiting orders"))
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
            prepay_id: Set(Some(prepay.prepay_id)),
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

/// The record upsert's `trade_state` on conflict: the one received (kept as it was when
/// none is), except that a record that says paid (`SUCCESS`, `REFUND`) never goes back to
/// an unpaid state — a verified `result_code=FAIL` notify or a stale query arriving after
/// the payment must not make the record contradict the order.
pub(super) fn guarded_trade_state() -> Expr {
    Expr::cust(
        "CASE WHEN pays_wechat_record.trade_state IN ('SUCCESS', 'REFUND') \
         AND COALESCE(excluded.trade_state, '') NOT IN ('SUCCESS', 'REFUND') \
         THEN pays_wechat_record.trade_state \
         ELSE COALESCE(excluded.trade_state, pays_wechat_record.trade_state) END",
    )
}

/// The record upsert's `transaction_id` on conflict: the one received (kept as it was
/// when none is), except that a paid record keeps the transaction it was paid under, as
/// the order does.
pub(super) fn guarded_transaction_id() -> Expr {
    Expr::cust(
        "CASE WHEN pays_wechat_record.trade_state IN ('SUCCESS', 'REFUND') \
         AND pays_wechat_record.transaction_id IS NOT NULL \
         THEN pays_wechat_record.transaction_id \
         ELSE COALESCE(excluded.transaction_id, pays_wechat_record.transaction_id) END",
    )
}

pub(super) async fn save_third_party_on<C: ConnectionTrait>(
    connection: &C,
    state: ThirdPartyState,
    from_notify: bool,
) -> Result<(), StoreError> {
    use wechat_record::Column as C;
    let columns = if from_notify {
        [C::UpdatedAt, C::LastNotify, C::NotifiedAt]
    } else {
        [C::UpdatedAt, C::LastQuery, C::QueriedAt]
    };
    let row = third_party_row(state, from_notify, now());
    wechat_record::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::OrderId)
                .update_columns(columns)
                .value(C::TradeState, guarded_trade_state())
                .value(C::TransactionId, guarded_transaction_id())
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await
        .map_err(db("saving WeChat's order state"))?;
    Ok(())
}

/// The WeChat record row a notify (`from_notify`) or an orderquery answer creates, stamped
/// `at`; the prepay columns stay empty (only `unifiedorder` fills them).
pub(super) fn third_party_row(
    state: ThirdPartyState,
    from_notify: bool,
    at: DateTime<Utc>,
) -> wechat_record::ActiveModel {
    let (last_notify, notified_at, last_query, queried_at) = if from_notify {
        (Some(state.raw), Some(at), None, None)
    } else {
        (None, None, Some(state.raw), Some(at))
    };
    wechat_record::ActiveModel {
        order_id: Set(state.order_id),
        appid: Set(state.appid),
        mch_id: Set(state.mch_id),
        trade_type: Set(None),
        prepay_id: Set(None),
        code_url: Set(None),
        mweb_url: Set(None),
        prepay_expires_at: Set(None),
        trade_state: Set(state.trade_state),
        transaction_id: Set(state.transaction_id),
        total_fee: Set(state.total_fee),
        last_notify: Set(last_notify),
        last_query: Set(last_query),
        created_at: Set(at),
        updated_at: Set(at),
        notified_at: Set(notified_at),
        queried_at: Set(queried_at),
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
    condition
}
