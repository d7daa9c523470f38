//! The statements the order store and the notify writer both run, so the module graph
//! runs one way (`store` → `writer` → `rows`): recording a payment on an order
//! ([`mark_paid_on`]), keeping a second payment apart ([`record_conflict_on`]), and the
//! WeChat record row with its guarded upsert ([`save_third_party_on`]).
//!
//! Each takes any connection, so the writer runs them inside its batch transaction and
//! the store on its pool.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryTrait, Set, UpdateMany,
};

use super::entity::{ApiVersion, PayStatus, pay_log, payment_conflict, wechat_record};
use super::error::{StoreError, db};

/// Current time at the precision both databases keep (microseconds), so what is written
/// reads back equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
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
    /// `pays_payment_conflict` ([`crate::PayStore::payment_conflicts`]). `first_seen`: this
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
    /// What WeChat sent, as received: the notify or query answer (V2: XML; V3: the
    /// decrypted or signed JSON).
    pub raw: String,
    /// The API it came through (written when the record row is created).
    pub api_version: ApiVersion,
}

pub(crate) async fn get_order_on<C: ConnectionTrait>(
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
pub(crate) async fn update_returning<C: ConnectionTrait>(
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

/// `event_seq + 1`: every UPDATE that makes a transition counts the event it writes.
pub(crate) fn next_event_seq() -> Expr {
    use sea_orm::sea_query::ExprTrait;
    Expr::col(pay_log::Column::EventSeq).add(1)
}

/// When `recorded` found the order already paid under another transaction than the one
/// `state` reports, the transaction the order keeps (`None` inside when it has none on
/// record: then nothing contradicts, and this is `None`).
pub(crate) fn conflicting_payment(
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
/// (order, transaction): `Conflict { first_seen }` says whether this call wrote it. When it
/// did, the order's `event_seq` counts the conflict's event and the order returned is the
/// one after that (the caller writes the event in the same transaction).
pub(crate) async fn record_conflict_on<C: ConnectionTrait>(
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
    let first_seen = written.rows_affected() == 1;
    let counted = if first_seen {
        update_returning(
            connection,
            pay_log::Entity::update_many()
                .col_expr(pay_log::Column::EventSeq, next_event_seq())
                .filter(pay_log::Column::OrderId.eq(state.order_id.as_str())),
        )
        .await
        .map_err(db("counting a payment conflict's event"))?
    } else {
        None
    };
    Ok(conflict_recorded(first_seen, counted, order))
}

/// A payment conflict's outcome: `first_seen` when this caller recorded it, with the order
/// as the UPDATE counting its event left it (`counted`), else as it was `found`.
pub(crate) fn conflict_recorded(
    first_seen: bool,
    counted: Option<pay_log::Model>,
    found: Option<pay_log::Model>,
) -> PaymentRecorded {
    PaymentRecorded {
        outcome: PaidOutcome::Conflict { first_seen },
        order: counted.or(found),
    }
}

/// Records a payment on `connection`: `wait → success`, or `close|timeout → success` with
/// `paid_after_close` set, each one conditional UPDATE whose returned row makes this caller
/// the single winner ([`crate::PayStore::mark_paid`] describes the outcomes).
pub(crate) async fn mark_paid_on<C: ConnectionTrait>(
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
        // `from → success` with this payment's transaction and time, if still in `from`.
        let paid_from = |from: PayStatus| {
            pay_log::Entity::update_many()
                .col_expr(
                    pay_log::Column::Status,
                    Expr::value(PayStatus::Success.as_str()),
                )
                .col_expr(pay_log::Column::TransactionId, Expr::value(transaction_id))
                .col_expr(pay_log::Column::PaidAt, Expr::value(paid_at))
                .col_expr(pay_log::Column::UpdatedAt, Expr::value(at))
                .col_expr(pay_log::Column::EventSeq, next_event_seq())
                .filter(pay_log::Column::OrderId.eq(order_id))
                .filter(pay_log::Column::Status.eq(from.as_str()))
        };
        let won = update_returning(connection, paid_from(PayStatus::Wait))
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
                    paid_from(previous)
                        .col_expr(pay_log::Column::PaidAfterClose, Expr::value(true)),
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

/// The record upsert's `trade_state` on conflict: the one received (kept as it was when
/// none is), except that a record that says paid (`SUCCESS`, `REFUND`) never goes back to
/// an unpaid state — a verified `result_code=FAIL` notify or a stale query arriving after
/// the payment must not make the record contradict the order.
pub(crate) fn guarded_trade_state() -> Expr {
    Expr::cust(GUARDED_TRADE_STATE)
}

/// The SQL of [`guarded_trade_state`].
pub(crate) const GUARDED_TRADE_STATE: &str = "CASE WHEN pays_wechat_record.trade_state IN ('SUCCESS', 'REFUND') \
     AND COALESCE(excluded.trade_state, '') NOT IN ('SUCCESS', 'REFUND') \
     THEN pays_wechat_record.trade_state \
     ELSE COALESCE(excluded.trade_state, pays_wechat_record.trade_state) END";

/// The record upsert's `transaction_id` on conflict: the one received (kept as it was
/// when none is), except that a paid record keeps the transaction it was paid under, as
/// the order does.
pub(crate) fn guarded_transaction_id() -> Expr {
    Expr::cust(GUARDED_TRANSACTION_ID)
}

/// The SQL of [`guarded_transaction_id`].
pub(crate) const GUARDED_TRANSACTION_ID: &str = "CASE WHEN pays_wechat_record.trade_state IN ('SUCCESS', 'REFUND') \
     AND pays_wechat_record.transaction_id IS NOT NULL \
     THEN pays_wechat_record.transaction_id \
     ELSE COALESCE(excluded.transaction_id, pays_wechat_record.transaction_id) END";

pub(crate) async fn save_third_party_on<C: ConnectionTrait>(
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
pub(crate) fn third_party_row(
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
        api_version: Set(state.api_version),
    }
}
