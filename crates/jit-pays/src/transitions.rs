//! The local state changes every pay element makes the same way, whether it is a
//! [`crate::WechatPay`] or reached through its functions ([`crate::ElementPay`]): closing
//! or timing out an order here.
//!
//! The store writes the transition's event in the transition's transaction (the outbox),
//! so nothing here announces anything: the outbox's dispatcher does, after the commit.

use crate::db::PayStore;
use crate::db::entity::PayStatus;
use crate::db::store::CloseOutcome;
use crate::error::PayError;

/// Moves `order_id` of `element` from `wait` to `to` (`close` or `timeout`) here; the
/// store writes its event (`order.closed` or `order.timeout`) if this call made the move.
pub(crate) async fn record_closed(
    store: &PayStore,
    element: &str,
    order_id: &str,
    to: PayStatus,
) -> Result<CloseOutcome, PayError> {
    let outcome = store.close_order(order_id, to).await?;
    if outcome == CloseOutcome::Closed {
        tracing::info!(%element, %order_id, status = %to, "order closed");
    }
    Ok(outcome)
}
