//! The local state changes every pay element makes the same way, whether it is a
//! [`crate::WechatPay`] or reached through its functions ([`crate::ElementPay`]): closing
//! or timing out an order here, and announcing a transition to the hooks.
//!
//! Only the caller whose conditional UPDATE moved the order announces it, so each
//! transition is announced once ([`crate::events`]).

use crate::db::PayStore;
use crate::db::entity::PayStatus;
use crate::db::store::CloseOutcome;
use crate::error::PayError;
use crate::events::{PayEvent, PayEventKind, PayEvents};

/// Announces a committed transition of `order_id`, with the order as it is now. A failed
/// re-read is logged, not returned: the transition stands and its caller goes on.
pub(crate) async fn announce(
    store: &PayStore,
    events: &PayEvents,
    order_id: &str,
    kind: PayEventKind,
) {
    match store.get_order(order_id).await {
        Ok(row) => events.emit(&PayEvent::transition(kind, row.into())),
        Err(error) => tracing::error!(
            %order_id, ?kind, %error,
            "transition committed but the order could not be re-read to announce it"
        ),
    }
}

/// Moves `order_id` of `element` from `wait` to `to` (`close` or `timeout`) here, and
/// announces it ([`PayEventKind::Closed`] or [`PayEventKind::TimedOut`]) if this call
/// made the move.
pub(crate) async fn record_closed(
    store: &PayStore,
    events: &PayEvents,
    element: &str,
    order_id: &str,
    to: PayStatus,
) -> Result<CloseOutcome, PayError> {
    let outcome = store.close_order(order_id, to).await?;
    if outcome == CloseOutcome::Closed {
        tracing::info!(%element, %order_id, status = %to, "order closed");
        let kind = if to == PayStatus::Timeout {
            PayEventKind::TimedOut
        } else {
            PayEventKind::Closed
        };
        announce(store, events, order_id, kind).await;
    }
    Ok(outcome)
}
