//! Refunds in V2's words: `secapi/pay/refund` and `refundquery` answered for the shared
//! refund flows ([`crate::gateway::refunds`]), and WeChat's refund notifies, whose
//! `req_info` is decrypted with this merchant's API key.

use wechatpay_v2::{ErrCode, Error as WxError, Fen, OrderRef, RefundRef, RefundRequest};

use super::WechatPay;
use crate::db::entity::{RefundStatus, refund};
use crate::error::PayError;
use crate::gateway::refunds::{NotifiedRefund, apply_refund_notify, v2_succeeded_at};
use crate::gateway::{RefundAtWechat, RefundRequestFailed};
use crate::model::{NotifyReply, RefusalReason};

/// Whether a failed refund request certainly did not reach WeChat as a refund: WeChat
/// refused it (a business error that retrying will not change, or a protocol refusal),
/// or it was never sent. Anything else (no answer, an answer that cannot be trusted, a
/// retryable business error) leaves the outcome unknown, for a query to settle.
fn refused_for_good(error: &WxError) -> bool {
    match error {
        WxError::Business { .. } => !error.is_retryable(),
        WxError::Protocol { .. } | WxError::InvalidRequest { .. } | WxError::Amount { .. } => true,
        WxError::Config(_) => true,
        _ => false,
    }
}

impl WechatPay {
    /// `secapi/pay/refund` for `refund` of an order of `total_fen`.
    pub(super) async fn request_refund_at_wechat(
        &self,
        refund: &refund::Model,
        total_fen: i64,
    ) -> Result<RefundAtWechat, RefundRequestFailed> {
        let request = RefundRequest {
            order: OrderRef::OutTradeNo(refund.order_id.clone()),
            out_refund_no: refund.refund_id.clone(),
            total_fee: Fen::new(total_fen),
            refund_fee: Fen::new(refund.amount_fen),
            refund_desc: refund.reason.clone(),
            notify_url: self.settings.refund_notify_url.clone(),
        };
        match crate::metrics::gateway_call("refund", self.client.refund(&request)).await {
            Ok(answer) => Ok(RefundAtWechat {
                out_refund_no: answer.out_refund_no,
                out_trade_no: answer.out_trade_no,
                refund_fen: answer.refund_fee.get(),
                wechat_refund_id: answer.refund_id,
                ..RefundAtWechat::default()
            }),
            Err(source) => {
                let refused = refused_for_good(&source);
                let failure = source.to_string();
                let error = PayError::Gateway {
                    doing: "refund",
                    order_id: refund.order_id.clone(),
                    source,
                };
                Err(RefundRequestFailed::new(refused, failure, error))
            }
        }
    }

    /// `refundquery` by `out_refund_no`; `None` when WeChat has no such refund.
    pub(super) async fn query_refund_at_wechat(
        &self,
        refund: &refund::Model,
    ) -> Result<Option<RefundAtWechat>, PayError> {
        let answer = match crate::metrics::gateway_call(
            "refundquery",
            self.client
                .refund_query(&RefundRef::OutRefundNo(refund.refund_id.clone())),
        )
        .await
        {
            Ok(answer) => answer,
            Err(WxError::Business {
                code: ErrCode::RefundNotExist,
                ..
            }) => return Ok(None),
            Err(source) => {
                return Err(PayError::Gateway {
                    doing: "refundquery",
                    order_id: refund.order_id.clone(),
                    source,
                });
            }
        };
        let record = answer
            .refunds
            .iter()
            .find(|record| record.out_refund_no == refund.refund_id)
            .ok_or_else(|| PayError::Mismatch {
                doing: "refundquery",
                order_id: refund.order_id.clone(),
                message: format!("WeChat's answer does not list refund {}", refund.refund_id),
            })?;
        Ok(Some(RefundAtWechat {
            out_refund_no: record.out_refund_no.clone(),
            out_trade_no: answer.out_trade_no.clone(),
            refund_fen: record.refund_fee.get(),
            wechat_refund_id: record.refund_id.clone(),
            status: Some(RefundStatus::of_wechat(record.refund_status)),
            account: record.refund_recv_account.clone(),
            succeeded_at: v2_succeeded_at(record.refund_success_time.as_deref()),
        }))
    }

    /// A refund notify: decrypted with this merchant's key (which is what authenticates
    /// it: refund notifies carry no signature), its merchant checked, then applied by the
    /// shared rule ([`apply_refund_notify`]).
    pub(super) async fn handle_refund_notify(&self, body: &[u8]) -> NotifyReply {
        let notify = match wechatpay_v2::parse_refund_notify(body, &self.config.api_key) {
            Ok(notify) => notify,
            Err(error) => {
                return NotifyReply::refused(
                    RefusalReason::BadSignature,
                    format!("refund notify refused: {error}"),
                );
            }
        };
        if notify.appid != self.config.app_id || notify.mch_id != self.config.mch_id {
            return NotifyReply::refused(
                RefusalReason::WrongMerchant,
                format!(
                    "refund notify for refund {} names appid {} / mch_id {}, not this \
                     merchant's",
                    notify.out_refund_no, notify.appid, notify.mch_id
                ),
            );
        }
        let status = RefundStatus::of_wechat(notify.refund_status);
        apply_refund_notify(
            self,
            NotifiedRefund {
                refund: RefundAtWechat {
                    out_refund_no: notify.out_refund_no,
                    out_trade_no: notify.out_trade_no,
                    refund_fen: notify.refund_fee.get(),
                    wechat_refund_id: notify.refund_id,
                    status: Some(status),
                    account: notify.refund_recv_account,
                    succeeded_at: v2_succeeded_at(notify.success_time.as_deref()),
                },
                total_fen: notify.total_fee.get(),
                transaction_id: notify.transaction_id,
            },
        )
        .await
    }
}
