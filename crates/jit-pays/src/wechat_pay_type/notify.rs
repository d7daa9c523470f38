//! `notify`: WeChat's payment notifies, verified with this merchant's key, checked against
//! the order, and recorded before WeChat hears SUCCESS.

use std::sync::Arc;

use jit_runtime::log_safe;
use wechatpay_v2::{TradeState, UnverifiedNotify};

use super::WechatPay;
use super::orders::paid_at;
use crate::db::cache::OrderFacts;
use crate::db::entity::ApiVersion;
use crate::db::store::ThirdPartyState;
use crate::gateway::notify::{payment_not_recorded, record_notified_payment};
use crate::model::{NotifyOutcome, NotifyReply, RefusalReason};

/// Reads a notify body far enough to route it: the notify, not yet verified, and the
/// order it names. A body that is no notify, or names no order, is refused. The one
/// reading for `PaySvc`'s shared URL and for a pay element's own `notify`.
pub(crate) fn read_notify(body: &[u8]) -> Result<(UnverifiedNotify, String), NotifyReply> {
    let unverified = UnverifiedNotify::parse(body).map_err(|error| {
        NotifyReply::refused(
            RefusalReason::Malformed,
            format!("unreadable notify: {error}"),
        )
    })?;
    let order_id = unverified
        .unverified_params()
        .get("out_trade_no")
        .cloned()
        .ok_or_else(|| {
            NotifyReply::refused(RefusalReason::Malformed, "notify without out_trade_no")
        })?;
    Ok((unverified, order_id))
}

/// The refusal of a notify naming an order this database does not hold.
pub(crate) fn unknown_order(order_id: &str) -> NotifyReply {
    NotifyReply::refused(
        RefusalReason::UnknownOrder,
        format!("notify for unknown order {order_id}"),
    )
}

impl WechatPay {
    /// `notify`: reads the body, finds its order, and handles it as [`Self::handle_routed_notify`].
    pub(super) async fn handle_notify(&self, body: &[u8]) -> NotifyReply {
        let (unverified, order_id) = match read_notify(body) {
            Ok(read) => read,
            Err(refused) => return refused,
        };
        let order = match self.store.order_facts(&order_id).await {
            Ok(Some(order)) => order,
            Ok(None) => return unknown_order(&order_id),
            Err(error) => return payment_not_recorded(&self.full_name, &order_id, &error),
        };
        self.handle_routed_notify(unverified, order, body).await
    }

    /// A notify whose body is parsed and whose order's facts are looked up: verifies it
    /// with this merchant's key, checks it against the order, and records what it says —
    /// answering SUCCESS only once that is committed.
    pub(super) async fn handle_routed_notify(
        &self,
        unverified: UnverifiedNotify,
        row: Arc<OrderFacts>,
        body: &[u8],
    ) -> NotifyReply {
        let order_id = row.order_id.clone();
        if unverified
            .unverified_params()
            .get("out_trade_no")
            .is_none_or(|named| *named != order_id)
        {
            return NotifyReply::refused(
                RefusalReason::Misrouted,
                format!("notify routed to order {order_id} names another"),
            );
        }
        if row.element != self.full_name {
            return NotifyReply::refused(
                RefusalReason::Misrouted,
                format!(
                    "notify for order {order_id} of another element ({})",
                    row.element
                ),
            );
        }
        let notify = match unverified.verify(&self.config.api_key) {
            Ok(notify) => notify,
            Err(error) => {
                return NotifyReply::refused(
                    RefusalReason::BadSignature,
                    format!("notify for order {order_id} refused: {error}"),
                );
            }
        };
        if notify.appid != self.config.app_id || notify.mch_id != self.config.mch_id {
            return NotifyReply::refused(
                RefusalReason::WrongMerchant,
                format!(
                    "notify for order {order_id} names appid {} / mch_id {}, not this merchant's",
                    notify.appid, notify.mch_id
                ),
            );
        }
        if !notify.is_paid() {
            if let Err(error) = self
                .store
                .save_notify(ThirdPartyState {
                    order_id: order_id.clone(),
                    appid: notify.appid.clone(),
                    mch_id: notify.mch_id.clone(),
                    total_fee: row.amount_fen,
                    trade_state: Some("PAYERROR".into()),
                    transaction_id: notify.transaction_id.clone(),
                    raw: String::from_utf8_lossy(body).into_owned(),
                    api_version: ApiVersion::V2,
                })
                .await
            {
                return payment_not_recorded(&self.full_name, &order_id, &error);
            }
            // The record keeps SUCCESS if the order is paid: see `guarded_trade_state`.
            tracing::info!(order_id = %log_safe(&order_id),
                "notify reports a failed payment; order unchanged");
            return NotifyReply::new(NotifyOutcome::NotPaid { order_id });
        }
        if notify.total_fee.get() != row.amount_fen {
            tracing::error!(
                %order_id,
                expected_fen = row.amount_fen,
                notified_fen = notify.total_fee.get(),
                "signed notify with another amount: order left unchanged"
            );
            return NotifyReply::refused(
                RefusalReason::AmountMismatch,
                format!(
                    "notify for order {order_id}: total_fee {} does not match the order's {}",
                    notify.total_fee.get(),
                    row.amount_fen
                ),
            );
        }
        // The repeat check, the commit and the reply are every API's: a repeat got here
        // only verified with the owner's key and matching the merchant and the amount,
        // exactly as a first notify.
        let state = || ThirdPartyState {
            order_id: order_id.clone(),
            appid: notify.appid.clone(),
            mch_id: notify.mch_id.clone(),
            total_fee: notify.total_fee.get(),
            trade_state: Some(TradeState::Success.as_str().to_owned()),
            transaction_id: notify.transaction_id.clone(),
            raw: String::from_utf8_lossy(body).into_owned(),
            api_version: ApiVersion::V2,
        };
        let paid_at = paid_at(notify.time_end.as_deref());
        let transaction_id = notify.transaction_id.as_deref();
        record_notified_payment(self, &row, transaction_id, state, paid_at, body).await
    }
}
