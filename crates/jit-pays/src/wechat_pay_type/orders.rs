//! The order's life at WeChat: `create`, `check` and `checkThird` (orderquery), `cancel`
//! and `cancelThird` (closeorder), and recording what WeChat vouches for.

use chrono::{DateTime, Utc};
use jit_runtime::log_safe;
use wechatpay_v2::{ErrCode, Error as WxError, Fen, OrderQueryResponse, OrderRef, TradeState};

use super::WechatPay;
use crate::db::entity::{PayStatus, pay_log};
use crate::db::store::{
    CloseOutcome, NewOrder, PaidOutcome, PaymentRecorded, StoreError, ThirdPartyState, now,
};
use crate::error::PayError;
use crate::model::{CancelResult, CloseAtWechat, PayLog, WechatRecord};
use crate::order_id::{generate_order_id, validate_order_id, validate_subject};
use crate::transitions;

/// How long WeChat keeps a prepay id usable.
pub(super) const PREPAY_LIFETIME: chrono::Duration = chrono::Duration::hours(2);

/// How many generated order ids `create` tries before giving up on collisions.
const GENERATED_ID_ATTEMPTS: usize = 5;

/// When WeChat says an order was paid: its `time_end` (Beijing time); a missing or
/// unreadable one is now. The one rule for a verified notify and a signed query alike.
pub(super) fn paid_at(time_end: Option<&str>) -> DateTime<Utc> {
    time_end
        .and_then(|text| wechatpay_v2::parse_beijing_time(text).ok())
        .unwrap_or_else(now)
}

impl WechatPay {
    /// `create`: validates, then inserts a `wait` order (generating its id when none is
    /// given, retrying on a clash).
    pub(super) async fn create_order(
        &self,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError> {
        validate_subject(subject)?;
        let amount = amount.ensure_total_fee().map_err(|e| PayError::Invalid {
            field: "amount",
            message: e.to_string(),
        })?;
        if let Some(id) = &order_id {
            validate_order_id(id)?;
        }
        let created = now();
        let expiry =
            chrono::Duration::from_std(self.settings.order_expiry).unwrap_or(PREPAY_LIFETIME);
        let first_check = chrono::Duration::from_std(self.settings.reconciler.first_check_after)
            .unwrap_or(chrono::Duration::minutes(1));
        let new_order = |id: String| NewOrder {
            order_id: id,
            subject: subject.to_owned(),
            amount_fen: amount.get(),
            element: self.full_name.clone(),
            expires_at: created + expiry,
            first_check_at: created + first_check,
        };
        let row = match order_id {
            Some(id) => self.store.insert_order(new_order(id)).await?,
            None => {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self
                        .store
                        .insert_order(new_order(generate_order_id()))
                        .await
                    {
                        Err(StoreError::DuplicateOrder { .. })
                            if attempt < GENERATED_ID_ATTEMPTS =>
                        {
                            continue;
                        }
                        other => break other?,
                    }
                }
            }
        };
        Ok(row.into())
    }

    /// The order `order_id`, refused as [`PayError::WrongElement`] when another element
    /// owns it.
    pub(super) async fn owned_order(&self, order_id: &str) -> Result<pay_log::Model, PayError> {
        let row = self.store.get_order(order_id).await?;
        if row.element != self.full_name {
            return Err(PayError::WrongElement {
                order_id: order_id.to_owned(),
                owner: row.element,
                this: self.full_name.clone(),
            });
        }
        Ok(row)
    }

    /// `check`: queries WeChat and applies what it says to the order.
    pub(super) async fn check_order(&self, order_id: &str) -> Result<PayLog, PayError> {
        let row = self.owned_order(order_id).await?;
        if row.status == PayStatus::Success {
            return Ok(row.into());
        }
        // Closed orders are queried too: a payment made before the close reached WeChat
        // must be found (and flagged), not left unseen.
        if let Some(answer) = self.query_wechat(&row).await? {
            self.apply_query(&row, &answer).await?;
        }
        Ok(self.store.get_order(order_id).await?.into())
    }

    /// `checkThird`: queries WeChat and keeps what it says in the record table only.
    pub(super) async fn check_at_wechat(
        &self,
        pay_log: &PayLog,
    ) -> Result<Option<WechatRecord>, PayError> {
        let row = self.owned_order(&pay_log.order_id).await?;
        match self.query_wechat(&row).await? {
            None => Ok(None),
            Some(_) => Ok(self
                .store
                .find_record(&row.order_id)
                .await?
                .map(WechatRecord::from)),
        }
    }

    /// `cancel`: closes the order at WeChat, then locally.
    pub(super) async fn cancel_order(&self, order_id: &str) -> Result<CancelResult, PayError> {
        let row = self.owned_order(order_id).await?;
        match row.status {
            PayStatus::Success => {
                return Err(PayError::OrderPaid {
                    order_id: order_id.to_owned(),
                });
            }
            PayStatus::Close | PayStatus::Timeout => {
                return Ok(CancelResult {
                    closed: true,
                    message: format!("order {order_id} was already {}", row.status),
                    order: row.into(),
                });
            }
            PayStatus::Wait => {}
        }
        match self.close_at_wechat(order_id).await? {
            CloseAtWechat::Paid => {
                let order = self.check_order(order_id).await?;
                tracing::info!(%order_id, status = %order.status, "cancel found the order paid");
                Err(PayError::OrderPaid {
                    order_id: order_id.to_owned(),
                })
            }
            CloseAtWechat::Closed | CloseAtWechat::NotCreated => {
                match self.record_closed(order_id, PayStatus::Close).await? {
                    CloseOutcome::Closed => Ok(CancelResult {
                        closed: true,
                        message: format!("order {order_id} closed"),
                        order: self.store.get_order(order_id).await?.into(),
                    }),
                    CloseOutcome::AlreadyFinal(PayStatus::Success) => Err(PayError::OrderPaid {
                        order_id: order_id.to_owned(),
                    }),
                    CloseOutcome::AlreadyFinal(status) => Ok(CancelResult {
                        closed: true,
                        message: format!("order {order_id} was already {status}"),
                        order: self.store.get_order(order_id).await?.into(),
                    }),
                }
            }
        }
    }

    /// `cancelThird`: closes the order at WeChat only.
    pub(super) async fn close_at_wechat(&self, order_id: &str) -> Result<CloseAtWechat, PayError> {
        self.owned_order(order_id).await?;
        match crate::metrics::gateway_call("closeorder", self.client.close_order(order_id)).await {
            Ok(_) => Ok(CloseAtWechat::Closed),
            Err(WxError::Business {
                code: ErrCode::OrderClosed,
                ..
            }) => Ok(CloseAtWechat::Closed),
            Err(WxError::Business {
                code: ErrCode::OrderNotExist,
                ..
            }) => Ok(CloseAtWechat::NotCreated),
            Err(WxError::Business {
                code: ErrCode::OrderPaid,
                ..
            }) => Ok(CloseAtWechat::Paid),
            Err(source) => Err(PayError::Gateway {
                doing: "closeorder",
                order_id: order_id.to_owned(),
                source,
            }),
        }
    }

    /// Records a payment WeChat vouched for (verified notify or signed query); the store
    /// writes its event if this caller made the transition.
    pub(super) async fn record_paid(
        &self,
        order_id: &str,
        transaction_id: Option<&str>,
        time_end: Option<&str>,
    ) -> Result<PaidOutcome, StoreError> {
        let paid_at = paid_at(time_end);
        let recorded = self
            .store
            .mark_paid(order_id, transaction_id, paid_at)
            .await?;
        self.log_payment(order_id, &recorded, transaction_id);
        Ok(recorded.outcome)
    }

    /// Logs what recording a payment did: a transition, or a payment conflict (`reported`
    /// is the transaction id of the payment just recorded). Its event, if any, is already
    /// in the outbox.
    pub(super) fn log_payment(
        &self,
        order_id: &str,
        recorded: &PaymentRecorded,
        reported: Option<&str>,
    ) {
        match recorded.outcome {
            PaidOutcome::Paid => {
                tracing::info!(element = %self.full_name, %order_id, "order paid");
            }
            PaidOutcome::PaidAfterClose { previous } => {
                tracing::warn!(
                    %order_id, previous = %previous,
                    "payment arrived for an order closed locally: recorded as paid and flagged"
                );
            }
            PaidOutcome::AlreadyPaid => {}
            PaidOutcome::Conflict { first_seen } => {
                let kept = recorded
                    .order
                    .as_ref()
                    .and_then(|order| order.transaction_id.as_deref())
                    .unwrap_or_default();
                let reported = reported.unwrap_or_default();
                if !first_seen {
                    tracing::info!(element = %self.full_name, order_id = %log_safe(order_id),
                        transaction_id = %log_safe(reported),
                        "repeat of a payment conflict already recorded");
                    return;
                }
                tracing::error!(
                    element = %self.full_name,
                    order_id = %log_safe(order_id),
                    order_transaction_id = %log_safe(kept),
                    conflicting_transaction_id = %log_safe(reported),
                    "second payment for an order already paid under another transaction: \
                     kept in pays_payment_conflict, the order keeps its first; refund it"
                );
            }
        }
    }

    /// Moves the order `wait → to` locally (its event written with it) if still waiting.
    pub(super) async fn record_closed(
        &self,
        order_id: &str,
        to: PayStatus,
    ) -> Result<CloseOutcome, PayError> {
        transitions::record_closed(&self.store, &self.full_name, order_id, to).await
    }

    /// orderquery → record table. `None` when WeChat has no such order.
    async fn query_wechat(
        &self,
        row: &pay_log::Model,
    ) -> Result<Option<OrderQueryResponse>, PayError> {
        let answer = crate::metrics::gateway_call(
            "orderquery",
            self.client
                .order_query(&OrderRef::OutTradeNo(row.order_id.clone())),
        )
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(WxError::Business {
                code: ErrCode::OrderNotExist,
                ..
            }) => return Ok(None),
            Err(source) => {
                return Err(PayError::Gateway {
                    doing: "orderquery",
                    order_id: row.order_id.clone(),
                    source,
                });
            }
        };
        if answer.out_trade_no != row.order_id {
            return Err(PayError::Mismatch {
                doing: "orderquery",
                order_id: row.order_id.clone(),
                message: format!("the answer is about order {}", answer.out_trade_no),
            });
        }
        self.store
            .save_query(ThirdPartyState {
                order_id: row.order_id.clone(),
                appid: self.config.app_id.clone(),
                mch_id: self.config.mch_id.clone(),
                total_fee: answer.total_fee.map_or(row.amount_fen, Fen::get),
                trade_state: Some(answer.trade_state.as_str().to_owned()),
                transaction_id: answer.transaction_id.clone(),
                raw: wechatpay_v2::xml::encode(&answer.raw),
            })
            .await?;
        Ok(Some(answer))
    }

    /// Applies what orderquery said to the pay log.
    async fn apply_query(
        &self,
        row: &pay_log::Model,
        answer: &OrderQueryResponse,
    ) -> Result<(), PayError> {
        if answer.trade_state.is_paid() {
            let total = answer.total_fee.map(Fen::get);
            if total != Some(row.amount_fen) {
                tracing::error!(
                    order_id = %row.order_id,
                    expected_fen = row.amount_fen,
                    reported_fen = ?total,
                    "orderquery reports a payment of another amount: order left unchanged"
                );
                return Err(PayError::Mismatch {
                    doing: "orderquery",
                    order_id: row.order_id.clone(),
                    message: format!(
                        "WeChat reports {} fen paid, the order is {} fen",
                        total.map_or("no".into(), |t| t.to_string()),
                        row.amount_fen
                    ),
                });
            }
            self.record_paid(
                &row.order_id,
                answer.transaction_id.as_deref(),
                answer.time_end.as_deref(),
            )
            .await?;
        } else if matches!(answer.trade_state, TradeState::Closed | TradeState::Revoked) {
            self.record_closed(&row.order_id, PayStatus::Close).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_time_is_read_as_beijing_time() {
        let at = paid_at(Some("20261127103000"));
        assert_eq!(at.to_rfc3339(), "2026-11-27T02:30:00+00:00");
    }

    /// The copy this replaced read `time_end` with chrono alone, which takes second 60 as
    /// a leap second: a payment time WeChat never writes was stored as given.
    #[test]
    fn a_payment_time_that_is_no_real_time_is_now() {
        for text in ["20261231235960", "99999999999999", "2026123123595", ""] {
            let before = now();
            let at = paid_at(Some(text));
            assert!(at >= before && at <= now(), "{text:?}: {at}");
        }
        let before = now();
        assert!(paid_at(None) >= before);
    }
}
