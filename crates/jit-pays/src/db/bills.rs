//! The statements of bills and reconciliation: storing a downloaded day (its lines
//! replaced in one transaction), the scheduled download's claim on a day, reading a day's
//! lines and the local orders and refunds of a day, and raising a mismatch's event once.
//!
//! A day is keyed by (merchant, bill type, Beijing date): a bill is the merchant's, so two
//! instances of one merchant share it.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QueryTrait, Set, SqlErr, TransactionTrait,
};
use wechatpay_v2::BillType;
use wechatpay_v2::bill::Bill;

use super::entity::{PayStatus, bill_day, bill_line, pay_log, reconcile_mismatch, refund};
use super::error::{StoreError, db};
use super::outbox::{NewEvent, write_events_on};
use super::rows::{next_event_seq, now, update_returning};
use super::store::PayStore;
use crate::bills::Mismatch;
use crate::events::PayEvent;

/// `bill_day.status` while a scheduled download holds the day.
pub const DAY_CLAIMED: &str = "claimed";
/// `bill_day.status` once the day's lines are stored.
pub const DAY_STORED: &str = "stored";

/// Rows per INSERT of bill lines: 21 values each stays well under SQLite's and
/// PostgreSQL's limits on bound values.
const LINES_PER_INSERT: usize = 500;

/// Which bill: a merchant's bill of one type for one Beijing date.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BillDayKey {
    /// The merchant.
    pub mch_id: String,
    /// ALL, SUCCESS or REFUND.
    pub bill_type: BillType,
    /// The Beijing date.
    pub date: NaiveDate,
}

impl BillDayKey {
    /// The date as stored: `yyyy-MM-dd`.
    pub fn date_text(&self) -> String {
        date_text(self.date)
    }
}

/// A date as the bill tables store it: `yyyy-MM-dd`.
pub fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// The instants a Beijing date spans: `[start, end)`.
pub fn beijing_day(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = wechatpay_v2::time::from_beijing_local(date.and_time(chrono::NaiveTime::MIN));
    (start, start + chrono::Duration::days(1))
}

fn line_row(
    key: &BillDayKey,
    element: &str,
    line: &wechatpay_v2::bill::BillLine,
) -> bill_line::ActiveModel {
    let row = &line.row;
    let refund = row.refund.as_ref();
    bill_line::ActiveModel {
        id: NotSet,
        mch_id: Set(key.mch_id.clone()),
        bill_type: Set(key.bill_type.as_str().to_owned()),
        bill_date: Set(key.date_text()),
        element: Set(element.to_owned()),
        line_number: Set(i32::try_from(line.number).unwrap_or(i32::MAX)),
        trade_time: Set(row.trade_time.trunc_subsecs(6)),
        appid: Set(row.appid.clone()),
        out_trade_no: Set(row.out_trade_no.clone()),
        transaction_id: Set(row.transaction_id.clone()),
        trade_state: Set(row.trade_state.as_str().to_owned()),
        total_fee: Set(row.total_fee.get()),
        settlement_total_fee: Set(row.settlement_total_fee.get()),
        out_refund_no: Set(refund.map(|r| r.out_refund_no.clone())),
        refund_id: Set(refund.map(|r| r.refund_id.clone())),
        refund_fee: Set(refund.map(|r| r.refund_fee.get())),
        settlement_refund_fee: Set(refund.map(|r| r.settlement_refund_fee.get())),
        refund_status: Set(refund.map(|r| r.refund_status.as_str().to_owned())),
        service_fee: Set(row.service_fee.units()),
        raw: Set(line.raw.clone()),
    }
}

fn day_filter<Q: QueryFilter>(query: Q, key: &BillDayKey) -> Q {
    query
        .filter(bill_day::Column::MchId.eq(key.mch_id.as_str()))
        .filter(bill_day::Column::BillType.eq(key.bill_type.as_str()))
        .filter(bill_day::Column::BillDate.eq(key.date_text()))
}

fn lines_filter<Q: QueryFilter>(query: Q, key: &BillDayKey) -> Q {
    query
        .filter(bill_line::Column::MchId.eq(key.mch_id.as_str()))
        .filter(bill_line::Column::BillType.eq(key.bill_type.as_str()))
        .filter(bill_line::Column::BillDate.eq(key.date_text()))
}

impl PayStore {
    /// Stores a downloaded day: `bill` (`None`: WeChat had no bill for it) replaces
    /// whatever lines the day had, and the day is marked stored (any claim on it ends), in
    /// one transaction: a reader sees the old lines or the new ones, never a mix.
    pub async fn store_bill_day(
        &self,
        key: &BillDayKey,
        element: &str,
        bill: Option<&Bill>,
    ) -> Result<bill_day::Model, StoreError> {
        let at = now();
        let lines = bill.map_or(&[][..], |bill| bill.lines.as_slice());
        let transaction = self
            .connection
            .begin()
            .await
            .map_err(db("starting to store a bill"))?;
        lines_filter(bill_line::Entity::delete_many(), key)
            .exec(&transaction)
            .await
            .map_err(db("removing a bill's earlier lines"))?;
        for chunk in lines.chunks(LINES_PER_INSERT) {
            bill_line::Entity::insert_many(chunk.iter().map(|line| line_row(key, element, line)))
                .exec_without_returning(&transaction)
                .await
                .map_err(db("storing bill lines"))?;
        }
        let day = bill_day::ActiveModel {
            id: NotSet,
            mch_id: Set(key.mch_id.clone()),
            bill_type: Set(key.bill_type.as_str().to_owned()),
            bill_date: Set(key.date_text()),
            element: Set(element.to_owned()),
            status: Set(DAY_STORED.to_owned()),
            no_bill: Set(bill.is_none()),
            line_count: Set(i32::try_from(lines.len()).unwrap_or(i32::MAX)),
            summary: Set(bill.map(|bill| bill.summary.raw.clone())),
            lease_owner: Set(None),
            lease_until: Set(None),
            downloaded_at: Set(Some(at)),
            created_at: Set(at),
            updated_at: Set(at),
        };
        use bill_day::Column as C;
        bill_day::Entity::insert(day)
            .on_conflict(
                OnConflict::columns([C::MchId, C::BillType, C::BillDate])
                    .update_columns([
                        C::Element,
                        C::Status,
                        C::NoBill,
                        C::LineCount,
                        C::Summary,
                        C::LeaseOwner,
                        C::LeaseUntil,
                        C::DownloadedAt,
                        C::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&transaction)
            .await
            .map_err(db("recording a bill day"))?;
        let stored = day_filter(bill_day::Entity::find(), key)
            .one(&transaction)
            .await
            .map_err(db("reading a bill day"))?
            .ok_or_else(|| StoreError::Db {
                doing: "recording a bill day",
                source: sea_orm::DbErr::RecordNotFound("the bill day just written".into()),
            })?;
        transaction
            .commit()
            .await
            .map_err(db("committing a bill"))?;
        Ok(stored)
    }

    /// The day's record, if it was ever downloaded or claimed.
    pub async fn bill_day(&self, key: &BillDayKey) -> Result<Option<bill_day::Model>, StoreError> {
        day_filter(bill_day::Entity::find(), key)
            .one(&self.connection)
            .await
            .map_err(db("reading a bill day"))
    }

    /// The day's stored lines, in bill order.
    pub async fn bill_lines(&self, key: &BillDayKey) -> Result<Vec<bill_line::Model>, StoreError> {
        lines_filter(bill_line::Entity::find(), key)
            .order_by_asc(bill_line::Column::LineNumber)
            .all(&self.connection)
            .await
            .map_err(db("reading bill lines"))
    }

    /// Claims a day for a scheduled download by `owner` until `at + lease`: `true` when
    /// this caller now holds it. A day already stored, or claimed by another instance
    /// whose claim has not lapsed, is not claimed. One conditional statement each (an
    /// INSERT that a present row turns into nothing, then an UPDATE of a lapsed claim), so
    /// of several instances exactly one gets the day.
    pub async fn claim_bill_day(
        &self,
        key: &BillDayKey,
        element: &str,
        owner: &str,
        at: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        use bill_day::Column as C;
        let at = at.trunc_subsecs(6);
        let until = (at
            + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(10)))
        .trunc_subsecs(6);
        let claim = bill_day::ActiveModel {
            id: NotSet,
            mch_id: Set(key.mch_id.clone()),
            bill_type: Set(key.bill_type.as_str().to_owned()),
            bill_date: Set(key.date_text()),
            element: Set(element.to_owned()),
            status: Set(DAY_CLAIMED.to_owned()),
            no_bill: Set(false),
            line_count: Set(0),
            summary: Set(None),
            lease_owner: Set(Some(owner.to_owned())),
            lease_until: Set(Some(until)),
            downloaded_at: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        };
        let insert = bill_day::Entity::insert(claim)
            .on_conflict(
                OnConflict::columns([C::MchId, C::BillType, C::BillDate])
                    .do_nothing()
                    .to_owned(),
            )
            .into_query();
        let inserted = self
            .connection
            .execute(&insert)
            .await
            .map_err(db("claiming a bill day"))?;
        if inserted.rows_affected() == 1 {
            return Ok(true);
        }
        let retaken = day_filter(bill_day::Entity::update_many(), key)
            .col_expr(C::LeaseOwner, Expr::value(owner))
            .col_expr(C::LeaseUntil, Expr::value(until))
            .col_expr(C::Element, Expr::value(element))
            .col_expr(C::UpdatedAt, Expr::value(at))
            .filter(C::Status.eq(DAY_CLAIMED))
            .filter(C::LeaseUntil.lt(at))
            .exec(&self.connection)
            .await
            .map_err(db("taking over a lapsed bill claim"))?;
        Ok(retaken.rows_affected == 1)
    }

    /// Ends `owner`'s claim on a day whose download failed, keeping it out of every
    /// instance's reach until `retry_at` (the back-off before the next attempt).
    pub async fn postpone_bill_claim(
        &self,
        key: &BillDayKey,
        owner: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use bill_day::Column as C;
        day_filter(bill_day::Entity::update_many(), key)
            .col_expr(C::LeaseUntil, Expr::value(retry_at.trunc_subsecs(6)))
            .col_expr(C::UpdatedAt, Expr::value(now()))
            .filter(C::Status.eq(DAY_CLAIMED))
            .filter(C::LeaseOwner.eq(owner))
            .exec(&self.connection)
            .await
            .map_err(db("postponing a bill claim"))?;
        Ok(())
    }

    /// `element`'s orders paid within `[from, to)`, oldest payment first.
    pub async fn orders_paid_between(
        &self,
        element: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<pay_log::Model>, StoreError> {
        pay_log::Entity::find()
            .filter(pay_log::Column::Element.eq(element))
            .filter(pay_log::Column::Status.eq(PayStatus::Success.as_str()))
            .filter(pay_log::Column::PaidAt.gte(from))
            .filter(pay_log::Column::PaidAt.lt(to))
            .order_by_asc(pay_log::Column::PaidAt)
            .order_by_asc(pay_log::Column::Id)
            .all(&self.connection)
            .await
            .map_err(db("listing the orders paid on a day"))
    }

    /// `element`'s refunds asked for within `[from, to)` (WeChat's bill lists a refund on
    /// the day it was asked for), oldest first.
    pub async fn refunds_created_between(
        &self,
        element: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<refund::Model>, StoreError> {
        refund::Entity::find()
            .filter(refund::Column::Element.eq(element))
            .filter(refund::Column::CreatedAt.gte(from))
            .filter(refund::Column::CreatedAt.lt(to))
            .order_by_asc(refund::Column::Id)
            .all(&self.connection)
            .await
            .map_err(db("listing the refunds of a day"))
    }

    /// The mismatches already raised for `element` on `date`.
    pub async fn reconcile_mismatches(
        &self,
        element: &str,
        date: NaiveDate,
    ) -> Result<Vec<reconcile_mismatch::Model>, StoreError> {
        reconcile_mismatch::Entity::find()
            .filter(reconcile_mismatch::Column::Element.eq(element))
            .filter(reconcile_mismatch::Column::BillDate.eq(date_text(date)))
            .order_by_asc(reconcile_mismatch::Column::Id)
            .all(&self.connection)
            .await
            .map_err(db("reading reconcile mismatches"))
    }

    /// Raises `mismatch`'s `reconcile.mismatch` event, once per (date, element, kind,
    /// order, refund): the mismatch row and the event are written in one transaction, and
    /// a mismatch already recorded writes nothing (`None`).
    ///
    /// The event counts in its order's events: for an order the shop has, its `event_seq`
    /// is bumped in the same transaction, as by every transition; for one only the bill
    /// has, it takes the next free number of that order id. A concurrent writer taking the
    /// same number (another instance reconciling) makes this transaction fail on the
    /// event's unique key; it is then run again, and finds the mismatch recorded or the
    /// next number free.
    pub async fn raise_mismatch(
        &self,
        mismatch: &Mismatch,
    ) -> Result<Option<PayEvent>, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_raise_mismatch(mismatch).await {
                Err(StoreError::Db { source, .. })
                    if attempts < 5
                        && matches!(
                            source.sql_err(),
                            Some(SqlErr::UniqueConstraintViolation(_))
                        ) =>
                {
                    continue;
                }
                outcome => return outcome,
            }
        }
    }

    async fn try_raise_mismatch(
        &self,
        mismatch: &Mismatch,
    ) -> Result<Option<PayEvent>, StoreError> {
        use reconcile_mismatch::Column as C;
        let refund_id = mismatch.refund_id.clone().unwrap_or_default();
        let detail = serde_json::to_string(mismatch).map_err(|error| StoreError::Db {
            doing: "recording a mismatch",
            source: sea_orm::DbErr::Custom(format!("the mismatch does not serialise: {error}")),
        })?;
        let transaction = self
            .connection
            .begin()
            .await
            .map_err(db("starting to record a mismatch"))?;
        let row = reconcile_mismatch::ActiveModel {
            id: NotSet,
            bill_date: Set(date_text(mismatch.date)),
            element: Set(mismatch.element.clone()),
            kind: Set(mismatch.kind.as_str().to_owned()),
            order_id: Set(mismatch.order_id.clone()),
            refund_id: Set(refund_id.clone()),
            event_id: Set(String::new()),
            detail: Set(detail),
            created_at: Set(now()),
        };
        let insert = reconcile_mismatch::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([C::BillDate, C::Element, C::Kind, C::OrderId, C::RefundId])
                    .do_nothing()
                    .to_owned(),
            )
            .into_query();
        let inserted = transaction
            .execute(&insert)
            .await
            .map_err(db("recording a mismatch"))?;
        if inserted.rows_affected() != 1 {
            return Ok(None);
        }
        let order = update_returning(
            &transaction,
            pay_log::Entity::update_many()
                .col_expr(pay_log::Column::EventSeq, next_event_seq())
                .filter(pay_log::Column::OrderId.eq(mismatch.order_id.as_str())),
        )
        .await
        .map_err(db("counting a mismatch's event"))?;
        let order_seq = match &order {
            Some(order) => order.event_seq,
            None => next_free_seq(&transaction, &mismatch.order_id).await?,
        };
        let element = order
            .as_ref()
            .map_or_else(|| mismatch.element.clone(), |order| order.element.clone());
        let events = write_events_on(
            &transaction,
            &self.outbox,
            vec![NewEvent::mismatch(
                mismatch.order_id.clone(),
                order_seq,
                element,
                order,
                mismatch.clone(),
            )],
        )
        .await?;
        let event = events.first().cloned();
        if let Some(event) = &event {
            reconcile_mismatch::Entity::update_many()
                .col_expr(C::EventId, Expr::value(event.id.as_str()))
                .filter(C::BillDate.eq(date_text(mismatch.date)))
                .filter(C::Element.eq(mismatch.element.as_str()))
                .filter(C::Kind.eq(mismatch.kind.as_str()))
                .filter(C::OrderId.eq(mismatch.order_id.as_str()))
                .filter(C::RefundId.eq(refund_id.as_str()))
                .exec(&transaction)
                .await
                .map_err(db("recording a mismatch's event"))?;
        }
        transaction
            .commit()
            .await
            .map_err(db("committing a mismatch"))?;
        self.outbox.announce_written(&events);
        Ok(event)
    }
}

/// The next event number of an order id the shop has no order for.
async fn next_free_seq<C: ConnectionTrait>(
    connection: &C,
    order_id: &str,
) -> Result<i32, StoreError> {
    let backend = connection.get_database_backend();
    let row = connection
        .query_one_raw(super::statement(
            backend,
            "SELECT COALESCE(MAX(order_seq), 0) + 1 AS next FROM pays_event WHERE order_id = ?",
            vec![order_id.into()],
        ))
        .await
        .map_err(db("numbering a mismatch's event"))?;
    let next = row
        .map(|row| row.try_get::<i32>("", "next"))
        .transpose()
        .map_err(db("numbering a mismatch's event"))?;
    Ok(next.unwrap_or(1))
}
