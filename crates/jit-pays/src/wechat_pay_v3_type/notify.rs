//! V3 notifies: verified with the merchant's view of WeChat's keys (by `Wechatpay-Serial`,
//! within the replay window, SIGNTEST probes refused), decrypted with the APIv3 key, then
//! checked against the order or refund and recorded before WeChat hears success.
//!
//! `PaySvc` opens a notify with an element whose keys the serial names
//! ([`WechatPayV3::open`]) to learn which order it is about, and hands it to the order's
//! element; an element handed a notify another element opened opens it again with its own
//! keys, so nothing is recorded on the strength of another merchant's keys.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use wechatpay_v3::{Error as V3Error, TradeState};

use super::WechatPayV3;
use crate::db::cache::OrderFacts;
use crate::db::entity::{ApiVersion, RefundStatus};
use crate::db::store::{ThirdPartyState, now};
use crate::gateway::RefundAtWechat;
use crate::gateway::notify::{payment_not_recorded, record_notified_payment};
use crate::gateway::refunds::{NotifiedRefund, apply_refund_notify};
use crate::model::{NotifyReply, NotifyRequest, OpenedEvent, OpenedNotify, RefusalReason};
use crate::wechat_pay_type::unknown_order;

/// A notify that could not be opened, as its refusal (or, when the keys to check it could
/// not be had now, a failure WeChat retries).
fn not_opened(error: V3Error) -> NotifyReply {
    match error {
        error @ V3Error::InvalidSignature { .. } if error.is_signtest_probe() => {
            NotifyReply::refused(
                RefusalReason::BadSignature,
                "a WECHATPAY/SIGNTEST/ probe, refused as WeChat expects",
            )
        }
        error @ (V3Error::InvalidSignature { .. } | V3Error::Decrypt { .. }) => {
            NotifyReply::refused(
                RefusalReason::BadSignature,
                format!("V3 notify refused: {error}"),
            )
        }
        error @ V3Error::Malformed { .. } => NotifyReply::refused(
            RefusalReason::Malformed,
            format!("unreadable V3 notify: {error}"),
        ),
        // Downloading platform certificates failed: the notify may be genuine.
        other => NotifyReply::failed(format!("V3 notify not verified now: {other}")),
    }
}

impl WechatPayV3 {
    /// See [`crate::Pay::may_verify_serial`].
    pub(super) fn may_verify(&self, serial: &str) -> bool {
        let verifier = self.client.verifier();
        verifier.knows(serial)
            || (verifier.certificates().is_some() && !wechatpay_v3::keys::is_public_key_id(serial))
    }

    /// Verifies `request` with this element's keys and decrypts it with its APIv3 key.
    pub(super) async fn open(&self, request: &NotifyRequest) -> Result<OpenedNotify, NotifyReply> {
        let signed = request.signed_headers().map_err(|error| {
            NotifyReply::refused(
                RefusalReason::Malformed,
                format!("V3 notify without its signature: {error}"),
            )
        })?;
        let mut headers = HeaderMap::new();
        signed.insert_into(&mut headers).map_err(|error| {
            NotifyReply::refused(
                RefusalReason::Malformed,
                format!("V3 notify with an unusable signature header: {error}"),
            )
        })?;
        let notify = self
            .client
            .open_notify(&headers, request.body.as_bytes())
            .await
            .map_err(not_opened)?;
        let event = if notify.event_type.starts_with("TRANSACTION.") {
            notify.into_payment().map(OpenedEvent::Payment)
        } else {
            notify.into_refund().map(OpenedEvent::Refund)
        }
        .map_err(not_opened)?;
        Ok(OpenedNotify::new(&self.full_name, event, request.clone()))
    }

    /// `opened` as opened with this element's own keys.
    async fn own(&self, opened: OpenedNotify) -> Result<OpenedNotify, NotifyReply> {
        if opened.opened_by() == self.full_name {
            Ok(opened)
        } else {
            self.open(opened.request()).await
        }
    }

    /// A V3 payment notify: checked against its order (owner, merchant, amount) and
    /// recorded before WeChat hears success.
    pub(super) async fn handle_payment(&self, opened: OpenedNotify) -> NotifyReply {
        let opened = match self.own(opened).await {
            Ok(opened) => opened,
            Err(refused) => return refused,
        };
        let OpenedEvent::Payment(payment) = opened.event() else {
            return NotifyReply::refused(
                RefusalReason::Malformed,
                "a V3 refund notify sent as a payment notify",
            );
        };
        let transaction = &payment.transaction;
        let order_id = &transaction.out_trade_no;
        let order: Arc<OrderFacts> = match self.store.order_facts(order_id).await {
            Ok(Some(order)) => order,
            Ok(None) => return unknown_order(order_id),
            Err(error) => return payment_not_recorded(&self.full_name, order_id, &error),
        };
        if order.element != self.full_name {
            return NotifyReply::refused(
                RefusalReason::Misrouted,
                format!(
                    "notify for order {order_id} of another element ({})",
                    order.element
                ),
            );
        }
        if transaction.mchid != self.config.mch_id || transaction.appid != self.config.app_id {
            return NotifyReply::refused(
                RefusalReason::WrongMerchant,
                format!(
                    "notify for order {order_id} names appid {} / mchid {}, not this merchant's",
                    transaction.appid, transaction.mchid
                ),
            );
        }
        let total = transaction.amount.total.get();
        if total != order.amount_fen {
            tracing::error!(
                %order_id,
                expected_fen = order.amount_fen,
                notified_fen = total,
                "signed V3 notify with another amount: order left unchanged"
            );
            return NotifyReply::refused(
                RefusalReason::AmountMismatch,
                format!(
                    "notify for order {order_id}: amount.total {total} does not match the \
                     order's {}",
                    order.amount_fen
                ),
            );
        }
        let state = || ThirdPartyState {
            order_id: order_id.clone(),
            appid: transaction.appid.clone(),
            mch_id: transaction.mchid.clone(),
            total_fee: total,
            trade_state: Some(TradeState::Success.as_str().to_owned()),
            transaction_id: transaction.transaction_id.clone(),
            // The decrypted transaction: the envelope is ciphertext, this is what it says.
            raw: transaction.raw.to_string(),
            api_version: ApiVersion::V3,
        };
        let paid_at = transaction.success_time.unwrap_or_else(now);
        record_notified_payment(
            self,
            &order,
            transaction.transaction_id.as_deref(),
            state,
            paid_at,
            opened.request().body.as_bytes(),
        )
        .await
    }

    /// A V3 refund notify: its merchant checked, then applied by the shared rule
    /// ([`apply_refund_notify`]: against the stored refund and its order, once).
    pub(super) async fn handle_refund(&self, opened: OpenedNotify) -> NotifyReply {
        let opened = match self.own(opened).await {
            Ok(opened) => opened,
            Err(refused) => return refused,
        };
        let OpenedEvent::Refund(notify) = opened.event() else {
            return NotifyReply::refused(
                RefusalReason::Malformed,
                "a V3 payment notify sent as a refund notify",
            );
        };
        let notice = &notify.refund;
        if notice.mchid != self.config.mch_id {
            return NotifyReply::refused(
                RefusalReason::WrongMerchant,
                format!(
                    "refund notify for refund {} names mchid {}, not this merchant's",
                    notice.out_refund_no, notice.mchid
                ),
            );
        }
        apply_refund_notify(
            self,
            NotifiedRefund {
                refund: RefundAtWechat {
                    out_refund_no: notice.out_refund_no.clone(),
                    out_trade_no: notice.out_trade_no.clone(),
                    refund_fen: notice.amount.refund.get(),
                    wechat_refund_id: notice.refund_id.clone(),
                    status: Some(RefundStatus::of_wechat_v3(notice.refund_status)),
                    account: notice.user_received_account.clone(),
                    succeeded_at: notice.success_time,
                },
                total_fen: notice.amount.total.get(),
                transaction_id: notice.transaction_id.clone(),
            },
        )
        .await
    }
}
