//! What is the same in every verified payment notify, whatever the API it came through:
//! a repeat of the recorded payment answered without writing, the payment committed by
//! the notify writer (group commit), and the outcome WeChat is answered with — success
//! only once the commit holds the transition.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jit_runtime::log_safe;

use super::Gateway;
use crate::db::cache::OrderFacts;
use crate::db::notify_log::{NotifyKind, NotifyLogEntry};
use crate::db::store::{PaidOutcome, ThirdPartyState};
use crate::model::{NotifyOutcome, NotifyReply};

/// Records the payment under `transaction_id` that a verified notify reports for `order`
/// (its facts: owner, amount, a payment already known), checked against the order by the
/// caller: `state` builds its record row, only when the payment is not a repeat (a repeat,
/// WeChat's most common notify, allocates nothing here). `body` is what is logged for a
/// repeat answered from memory.
pub(crate) async fn record_notified_payment(
    gateway: &dyn Gateway,
    order: &Arc<OrderFacts>,
    transaction_id: Option<&str>,
    state: impl FnOnce() -> ThirdPartyState,
    paid_at: DateTime<Utc>,
    body: &[u8],
) -> NotifyReply {
    let order_id = order.order_id.clone();
    // WeChat repeats notifies until answered: a repeat of the recorded payment is answered
    // without writing anything, and, when this process has committed or read that
    // payment, without reading anything either (`success` is final). A payment under
    // another transaction id is no repeat: the database decides it, and keeps it as a
    // conflict.
    if transaction_id.is_some() && order.paid_transaction_id.as_deref() == transaction_id {
        let outcome = NotifyOutcome::AlreadyPaid { order_id };
        // Logged off the request path: a repeat writes nothing on its way.
        gateway.store().notify_log().note(NotifyLogEntry::of_reply(
            NotifyKind::Payment,
            body,
            &outcome,
            None,
        ));
        return NotifyReply::new(outcome);
    }
    let reported = transaction_id;
    match gateway
        .store()
        .record_notified_payment(state(), paid_at)
        .await
    {
        Ok(recorded) => {
            // Committed, with its event: only now may WeChat hear success.
            super::orders::log_payment(gateway.full_name(), &order_id, &recorded, reported);
            NotifyReply::new(match recorded.outcome {
                PaidOutcome::Paid => NotifyOutcome::Paid { order_id },
                PaidOutcome::PaidAfterClose { .. } => NotifyOutcome::PaidAfterClose { order_id },
                PaidOutcome::AlreadyPaid => NotifyOutcome::AlreadyPaid { order_id },
                // Genuine and kept: acknowledged like any recorded payment, or WeChat would
                // re-send it for a day (docs/pays.md, "Payment conflicts").
                PaidOutcome::Conflict { .. } => NotifyOutcome::PaymentConflict {
                    order_id,
                    transaction_id: reported.unwrap_or_default().to_owned(),
                },
            })
        }
        Err(error) => payment_not_recorded(gateway.full_name(), &order_id, &error),
    }
}

/// A verified payment notify of `element`'s order that could not be committed: logged,
/// and answered so that WeChat sends it again.
pub(crate) fn payment_not_recorded(
    element: &str,
    order_id: &str,
    error: &dyn std::fmt::Display,
) -> NotifyReply {
    tracing::error!(%element, order_id = %log_safe(order_id),
        error = %log_safe(&error.to_string()),
        "payment notify not committed; WeChat will retry");
    NotifyReply::failed("temporarily unable to record the payment")
}
