//! Refunds: reserving an order's money for a refund, and each refund's state machine.
//!
//! Two rules hold on any number of instances sharing one database, because each is one
//! conditional UPDATE whose row count decides:
//! - an order never holds more refunds than was paid: a new refund adds its amount to
//!   `refund_reserved_fen` only `WHERE status = 'success' AND refund_reserved_fen + amount
//!   <= amount_fen`, in the transaction that inserts the refund row;
//! - a refund's status only moves forward ([`RefundStatus::reachable_from`]), once: the
//!   UPDATE names the states it may leave.
//!
//! Each transition updates the order's totals (`refunded_fen` on success; a `closed`
//! refund gives back what it held) and writes its `refund.*` event in the same
//! transaction, counted in the order's own events so a consumer sees an order's payment
//! and refunds in commit order.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};

use super::entity::{PayStatus, RefundStatus, pay_log, refund};
use super::error::{StoreError, db};
use super::outbox::{NewEvent, write_events_on};
use super::rows::{get_order_on, next_event_seq, now, update_returning};
use super::store::PayStore;
use crate::events::PayEventKind;

/// A refund to reserve the money of.
#[derive(Clone, Debug)]
pub struct NewRefund {
    /// The merchant's refund number.
    pub refund_id: String,
    /// The paid order.
    pub order_id: String,
    /// The pay element asking (must own the order).
    pub element: String,
    /// Amount in fen (already validated positive).
    pub amount_fen: i64,
    /// Reason shown to the buyer.
    pub reason: Option<String>,
    /// The reconciler's first look, should WeChat not report an outcome by then.
    pub first_check_at: DateTime<Utc>,
}

/// Why an order's money cannot be reserved for a refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundRefusal {
    /// The order is not paid.
    NotPaid {
        /// Its state.
        status: PayStatus,
    },
    /// The amount is more than what is left to refund.
    Exceeds {
        /// The order's amount.
        paid_fen: i64,
        /// What its refunds already hold.
        reserved_fen: i64,
    },
}

/// What [`PayStore::reserve_refund`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// This caller wrote the refund (`processing`) and its order's new totals.
    New {
        /// The refund row.
        refund: refund::Model,
        /// The order after the reservation.
        order: Box<pay_log::Model>,
    },
    /// A refund with this id exists already (a retry, or a reuse the caller must refuse);
    /// nothing was written.
    Existing(refund::Model),
    /// The order cannot hold it; nothing was written.
    Refused(RefundRefusal),
}

/// What WeChat said about a refund, applied by [`PayStore::settle_refund`].
#[derive(Clone, Debug, Default)]
pub struct RefundFacts {
    /// WeChat's refund id.
    pub wechat_refund_id: Option<String>,
    /// Where the money went.
    pub account: Option<String>,
    /// Why it failed (`closed`, `change`).
    pub failure: Option<String>,
    /// When it succeeded.
    pub succeeded_at: Option<DateTime<Utc>>,
}

/// What [`PayStore::settle_refund`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// This caller moved the refund; its event is written.
    Moved {
        /// The refund after the transition.
        refund: refund::Model,
        /// Its order after the transition.
        order: Box<pay_log::Model>,
    },
    /// The refund was already where it is (a repeated notify, a query after the notify,
    /// a late report of an earlier state); nothing changed.
    Unchanged(refund::Model),
}

/// The event of a refund moving to `to`.
fn event_kind(to: RefundStatus) -> PayEventKind {
    match to {
        RefundStatus::Processing => PayEventKind::RefundRequested,
        RefundStatus::Success => PayEventKind::RefundSucceeded,
        RefundStatus::Change => PayEventKind::RefundAbnormal,
        RefundStatus::Closed => PayEventKind::RefundFailed,
    }
}

async fn find_refund_on<C: ConnectionTrait>(
    connection: &C,
    refund_id: &str,
) -> Result<Option<refund::Model>, StoreError> {
    refund::Entity::find()
        .filter(refund::Column::RefundId.eq(refund_id))
        .one(connection)
        .await
        .map_err(db("reading a refund"))
}

impl PayStore {
    /// Reserves the money of a new refund and writes it `processing`, with its
    /// `refund.requested` event, in one transaction — or finds the refund id taken, or the
    /// order unable to hold it, and writes nothing.
    pub async fn reserve_refund(&self, new: NewRefund) -> Result<Reserved, StoreError> {
        if let Some(existing) = self.find_refund(&new.refund_id).await? {
            return Ok(Reserved::Existing(existing));
        }
        let at = now();
        let transaction = self
            .connection
            .begin()
            .await
            .map_err(db("starting a refund"))?;
        let reserved = update_returning(
            &transaction,
            pay_log::Entity::update_many()
                .col_expr(
                    pay_log::Column::RefundReservedFen,
                    Expr::col(pay_log::Column::RefundReservedFen).add(new.amount_fen),
                )
                .col_expr(pay_log::Column::UpdatedAt, Expr::value(at))
                .col_expr(pay_log::Column::EventSeq, next_event_seq())
                .filter(pay_log::Column::OrderId.eq(new.order_id.as_str()))
                .filter(pay_log::Column::Element.eq(new.element.as_str()))
                .filter(pay_log::Column::Status.eq(PayStatus::Success.as_str()))
                .filter(
                    Expr::col(pay_log::Column::RefundReservedFen)
                        .add(new.amount_fen)
                        .lte(Expr::col(pay_log::Column::AmountFen)),
                ),
        )
        .await
        .map_err(db("reserving a refund's amount"))?;
        let Some(order) = reserved else {
            let order = get_order_on(&transaction, &new.order_id).await?;
            drop(transaction);
            return Ok(Reserved::Refused(if order.status != PayStatus::Success {
                RefundRefusal::NotPaid {
                    status: order.status,
                }
            } else {
                RefundRefusal::Exceeds {
                    paid_fen: order.amount_fen,
                    reserved_fen: order.refund_reserved_fen,
                }
            }));
        };
        let row = refund::ActiveModel {
            id: NotSet,
            refund_id: Set(new.refund_id.clone()),
            order_id: Set(new.order_id.clone()),
            element: Set(new.element.clone()),
            amount_fen: Set(new.amount_fen),
            reason: Set(new.reason.clone()),
            status: Set(RefundStatus::Processing),
            wechat_refund_id: Set(None),
            account: Set(None),
            failure: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            succeeded_at: Set(None),
            check_attempts: Set(0),
            next_check_at: Set(new.first_check_at.trunc_subsecs(6)),
        };
        let refund = match refund::Entity::insert(row)
            .exec_with_returning(&transaction)
            .await
        {
            Ok(refund) => refund,
            // Another caller wrote this refund id since the read above; theirs stands.
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                drop(transaction);
                return match self.find_refund(&new.refund_id).await? {
                    Some(existing) => Ok(Reserved::Existing(existing)),
                    None => Err(StoreError::Db {
                        doing: "writing a refund",
                        source: err,
                    }),
                };
            }
            Err(source) => {
                return Err(StoreError::Db {
                    doing: "writing a refund",
                    source,
                });
            }
        };
        self.commit_with_event(transaction, PayEventKind::RefundRequested, &order, &refund)
            .await?;
        Ok(Reserved::New {
            refund,
            order: Box::new(order),
        })
    }

    /// Records WeChat's refund id once WeChat accepted the request; the status does not
    /// change (the outcome comes by notify or query).
    pub async fn record_refund_accepted(
        &self,
        refund_id: &str,
        wechat_refund_id: &str,
    ) -> Result<(), StoreError> {
        refund::Entity::update_many()
            .col_expr(
                refund::Column::WechatRefundId,
                Expr::value(wechat_refund_id.to_owned()),
            )
            .col_expr(refund::Column::UpdatedAt, Expr::value(now()))
            .filter(refund::Column::RefundId.eq(refund_id))
            .filter(refund::Column::WechatRefundId.is_null())
            .exec(&self.connection)
            .await
            .map_err(db("recording WeChat's refund id"))?;
        Ok(())
    }

    /// Moves a refund to `to` if its state allows ([`RefundStatus::reachable_from`]):
    /// the refund row, its order's totals and its event in one transaction. Otherwise
    /// nothing changes and the refund is returned as it is.
    pub async fn settle_refund(
        &self,
        refund_id: &str,
        to: RefundStatus,
        facts: RefundFacts,
    ) -> Result<Settled, StoreError> {
        let from = to.reachable_from();
        let current =
            self.find_refund(refund_id)
                .await?
                .ok_or_else(|| StoreError::UnknownRefund {
                    refund_id: refund_id.to_owned(),
                })?;
        if !from.contains(&current.status) {
            return Ok(Settled::Unchanged(current));
        }
        let at = now();
        let transaction = self
            .connection
            .begin()
            .await
            .map_err(db("starting a refund's transition"))?;
        let mut update = refund::Entity::update_many()
            .col_expr(refund::Column::Status, Expr::value(to.as_str()))
            .col_expr(refund::Column::UpdatedAt, Expr::value(at))
            .filter(refund::Column::RefundId.eq(refund_id))
            .filter(refund::Column::Status.is_in(from.iter().map(|status| status.as_str())));
        if let Some(id) = facts.wechat_refund_id {
            update = update.col_expr(refund::Column::WechatRefundId, Expr::value(id));
        }
        if let Some(account) = facts.account {
            update = update.col_expr(refund::Column::Account, Expr::value(account));
        }
        if let Some(failure) = facts.failure {
            update = update.col_expr(refund::Column::Failure, Expr::value(failure));
        }
        if to == RefundStatus::Success {
            let succeeded_at = facts.succeeded_at.unwrap_or(at).trunc_subsecs(6);
            update = update.col_expr(refund::Column::SucceededAt, Expr::value(succeeded_at));
        }
        let mut query = sea_orm::QueryTrait::into_query(update);
        query.returning_all();
        let moved = transaction
            .query_one(&query)
            .await
            .map_err(db("moving a refund"))?
            .map(|row| refund::Model::from_query_result(&row, ""))
            .transpose()
            .map_err(db("reading a moved refund"))?;
        let Some(refund) = moved else {
            drop(transaction);
            let current =
                self.find_refund(refund_id)
                    .await?
                    .ok_or_else(|| StoreError::UnknownRefund {
                        refund_id: refund_id.to_owned(),
                    })?;
            return Ok(Settled::Unchanged(current));
        };
        let mut order_update = pay_log::Entity::update_many()
            .col_expr(pay_log::Column::UpdatedAt, Expr::value(at))
            .col_expr(pay_log::Column::EventSeq, next_event_seq())
            .filter(pay_log::Column::OrderId.eq(refund.order_id.as_str()));
        match to {
            RefundStatus::Success => {
                order_update = order_update.col_expr(
                    pay_log::Column::RefundedFen,
                    Expr::col(pay_log::Column::RefundedFen).add(refund.amount_fen),
                );
            }
            // Nothing went back: what the refund held can be refunded again.
            RefundStatus::Closed => {
                order_update = order_update.col_expr(
                    pay_log::Column::RefundReservedFen,
                    Expr::col(pay_log::Column::RefundReservedFen).sub(refund.amount_fen),
                );
            }
            RefundStatus::Change | RefundStatus::Processing => {}
        }
        let order = update_returning(&transaction, order_update)
            .await
            .map_err(db("updating an order's refund totals"))?
            .ok_or_else(|| StoreError::UnknownOrder {
                order_id: refund.order_id.clone(),
            })?;
        self.commit_with_event(transaction, event_kind(to), &order, &refund)
            .await?;
        Ok(Settled::Moved {
            refund,
            order: Box::new(order),
        })
    }

    /// Writes the event of a refund's transition in its transaction, commits, and tells
    /// the outbox's dispatcher.
    async fn commit_with_event(
        &self,
        transaction: DatabaseTransaction,
        kind: PayEventKind,
        order: &pay_log::Model,
        refund: &refund::Model,
    ) -> Result<(), StoreError> {
        let events = write_events_on(
            &transaction,
            &self.outbox,
            vec![NewEvent::refund_transition(
                kind,
                order.clone(),
                refund.clone(),
            )],
        )
        .await?;
        transaction
            .commit()
            .await
            .map_err(db("committing a refund's transition"))?;
        self.outbox.announce_written(&events);
        Ok(())
    }

    /// One refund by the merchant's refund number.
    pub async fn find_refund(&self, refund_id: &str) -> Result<Option<refund::Model>, StoreError> {
        find_refund_on(&self.connection, refund_id).await
    }

    /// An order's refunds, oldest first.
    pub async fn list_refunds(&self, order_id: &str) -> Result<Vec<refund::Model>, StoreError> {
        refund::Entity::find()
            .filter(refund::Column::OrderId.eq(order_id))
            .order_by_asc(refund::Column::Id)
            .all(&self.connection)
            .await
            .map_err(db("listing an order's refunds"))
    }

    /// Claims up to `limit` unsettled refunds (`processing`, `change`) whose next look is
    /// due, pushing their `next_check_at` to `at + lease` in the same statement, as
    /// [`PayStore::claim_due_for_check`] does for orders.
    pub async fn claim_due_refunds(
        &self,
        at: DateTime<Utc>,
        limit: u64,
        lease: std::time::Duration,
    ) -> Result<Vec<refund::Model>, StoreError> {
        let rows = super::claim_due_rows(
            &self.connection,
            "pays_refund",
            "status IN ('processing', 'change')",
            at,
            limit,
            lease,
        )
        .await
        .map_err(db("claiming unsettled refunds"))?;
        let mut due = rows
            .iter()
            .map(|row| refund::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db("reading claimed refunds"))?;
        due.sort_by_key(|row| row.id);
        Ok(due)
    }

    /// Pushes a refund's next reconciler look to `next_check_at`, counting the attempt.
    pub async fn postpone_refund_check(
        &self,
        refund_id: &str,
        attempts: i32,
        next_check_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        refund::Entity::update_many()
            .col_expr(refund::Column::CheckAttempts, Expr::value(attempts))
            .col_expr(
                refund::Column::NextCheckAt,
                Expr::value(next_check_at.trunc_subsecs(6)),
            )
            .filter(refund::Column::RefundId.eq(refund_id))
            .exec(&self.connection)
            .await
            .map_err(db("scheduling a refund's next check"))?;
        Ok(())
    }
}
