//! The order's calls at WeChat in V2's words, `orderquery` and `closeorder`, answered for
//! the shared flows ([`crate::gateway::orders`]), and the payment time WeChat writes.

use chrono::{DateTime, Utc};
use wechatpay_v2::{ErrCode, Error as WxError, Fen, OrderRef};

use super::WechatPay;
use crate::db::store::now;
use crate::error::PayError;
use crate::gateway::QueriedOrder;
use crate::model::CloseAtWechat;

/// When WeChat says an order was paid: its `time_end` (Beijing time); a missing or
/// unreadable one is now. The one rule for a verified notify and a signed query alike.
pub(super) fn paid_at(time_end: Option<&str>) -> DateTime<Utc> {
    time_end
        .and_then(|text| wechatpay_v2::parse_beijing_time(text).ok())
        .unwrap_or_else(now)
}

impl WechatPay {
    /// `closeorder`.
    pub(super) async fn close_order_at_wechat(
        &self,
        order_id: &str,
    ) -> Result<CloseAtWechat, PayError> {
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

    /// `orderquery`; `None` when WeChat has no such order.
    pub(super) async fn query_order_at_wechat(
        &self,
        order_id: &str,
    ) -> Result<Option<QueriedOrder>, PayError> {
        let answer = crate::metrics::gateway_call(
            "orderquery",
            self.client
                .order_query(&OrderRef::OutTradeNo(order_id.to_owned())),
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
                    order_id: order_id.to_owned(),
                    source,
                });
            }
        };
        Ok(Some(QueriedOrder {
            out_trade_no: answer.out_trade_no.clone(),
            trade_state: answer.trade_state,
            transaction_id: answer.transaction_id.clone(),
            total_fen: answer.total_fee.map(Fen::get),
            paid_at: answer.time_end.as_deref().map(|text| paid_at(Some(text))),
            raw: wechatpay_v2::xml::encode(&answer.raw),
        }))
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
