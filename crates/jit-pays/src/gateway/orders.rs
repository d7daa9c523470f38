//! The order's life at WeChat, for either API: `create`, the owned order, `check` and
//! `checkThird` (a query, kept in the record table, its answer applied), `cancel`, and
//! recording what WeChat vouches for.

use chrono::{DateTime, Utc};
use jit_runtime::log_safe;
use wechatpay_v2::{Fen, TradeState};

use super::{Gateway, QueriedOrder};
use crate::db::entity::{PayStatus, pay_log};
use crate::db::store::{
    CloseOutcome, NewOrder, PaidOutcome, PaymentRecorded, StoreError, ThirdPartyState, now,
};
use crate::error::PayError;
use crate::model::{CancelResult, CloseAtWechat, PayLog, WechatRecord};
use crate::order_id::{generate_order_id, validate_order_id, validate_subject};
use crate::transitions;

/// How long WeChat keeps a prepay order usable (V2's prepay id and V3's alike).
pub(crate) const PREPAY_LIFETIME: chrono::Duration = chrono::Duration::hours(2);

/// How many generated order ids `create` tries before giving up on collisions.
const GENERATED_ID_ATTEMPTS: usize = 5;

/// `create`: validates, then inserts a `wait` order of `gateway`'s element (generating its
/// id when none is given, retrying on a clash).
pub(crate) async fn create_order(
    gateway: &dyn Gateway,
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
    let settings = gateway.settings();
    let store = gateway.store();
    let created = now();
    let expiry = chrono::Duration::from_std(settings.order_expiry).unwrap_or(PREPAY_LIFETIME);
    let first_check = chrono::Duration::from_std(settings.reconciler.first_check_after)
        .unwrap_or(chrono::Duration::minutes(1));
    let new_order = |id: String| NewOrder {
        order_id: id,
        subject: subject.to_owned(),
        amount_fen: amount.get(),
        element: gateway.full_name().to_owned(),
        expires_at: created + expiry,
        first_check_at: created + first_check,
    };
    let row = match order_id {
        Some(id) => store.insert_order(new_order(id)).await?,
        None => {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match store.insert_order(new_order(generate_order_id())).await {
                    Err(StoreError::DuplicateOrder { .. }) if attempt < GENERATED_ID_ATTEMPTS => {
                        continue;
                    }
                    other => break other?,
                }
            }
        }
    };
    Ok(row.into())
}

/// The order `order_id`, refused as [`PayError::WrongElement`] when another element than
/// `gateway`'s owns it.
pub(crate) async fn owned_order(
    gateway: &dyn Gateway,
    order_id: &str,
) -> Result<pay_log::Model, PayError> {
    let row = gateway.store().get_order(order_id).await?;
    if row.element != gateway.full_name() {
        return Err(PayError::WrongElement {
            order_id: order_id.to_owned(),
            owner: row.element,
            this: gateway.full_name().to_owned(),
        });
    }
    Ok(row)
}

/// `check`: queries WeChat and applies what it says to the order.
pub(crate) async fn check_order(gateway: &dyn Gateway, order_id: &str) -> Result<PayLog, PayError> {
    let row = owned_order(gateway, order_id).await?;
    if row.status == PayStatus::Success {
        return Ok(row.into());
    }
    // Closed orders are queried too: a payment made before the close reached WeChat must
    // be found (and flagged), not left unseen.
    if let Some(answer) = query_and_record(gateway, &row).await? {
        apply_query(gateway, &row, &answer).await?;
    }
    Ok(gateway.store().get_order(order_id).await?.into())
}

/// `checkThird`: queries WeChat and keeps what it says in the record table only.
pub(crate) async fn check_at_wechat(
    gateway: &dyn Gateway,
    pay_log: &PayLog,
) -> Result<Option<WechatRecord>, PayError> {
    let row = owned_order(gateway, &pay_log.order_id).await?;
    match query_and_record(gateway, &row).await? {
        None => Ok(None),
        Some(_) => Ok(gateway
            .store()
            .find_record(&row.order_id)
            .await?
            .map(WechatRecord::from)),
    }
}

/// `cancel`: closes the order at WeChat, then locally.
pub(crate) async fn cancel_order(
    gateway: &dyn Gateway,
    order_id: &str,
) -> Result<CancelResult, PayError> {
    let row = owned_order(gateway, order_id).await?;
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
    match close_at_wechat(gateway, order_id).await? {
        CloseAtWechat::Paid => {
            let order = check_order(gateway, order_id).await?;
            tracing::info!(%order_id, status = %order.status, "cancel found the order paid");
            Err(PayError::OrderPaid {
                order_id: order_id.to_owned(),
            })
        }
        CloseAtWechat::Closed | CloseAtWechat::NotCreated => {
            let store = gateway.store();
            match transitions::record_closed(store, gateway.full_name(), order_id, PayStatus::Close)
                .await?
            {
                CloseOutcome::Closed => Ok(CancelResult {
                    closed: true,
                    message: format!("order {order_id} closed"),
                    order: store.get_order(order_id).await?.into(),
                }),
                CloseOutcome::AlreadyFinal(PayStatus::Success) => Err(PayError::OrderPaid {
                    order_id: order_id.to_owned(),
                }),
                CloseOutcome::AlreadyFinal(status) => Ok(CancelResult {
                    closed: true,
                    message: format!("order {order_id} was already {status}"),
                    order: store.get_order(order_id).await?.into(),
                }),
            }
        }
    }
}

/// `cancelThird`: closes the order at WeChat only.
pub(crate) async fn close_at_wechat(
    gateway: &dyn Gateway,
    order_id: &str,
) -> Result<CloseAtWechat, PayError> {
    owned_order(gateway, order_id).await?;
    gateway.close_order(order_id).await
}

/// Records a payment WeChat vouched for in a signed answer; the store writes its event if
/// this caller made the transition.
async fn record_paid(
    gateway: &dyn Gateway,
    order_id: &str,
    transaction_id: Option<&str>,
    paid_at: DateTime<Utc>,
) -> Result<PaidOutcome, StoreError> {
    let recorded = gateway
        .store()
        .mark_paid(order_id, transaction_id, paid_at)
        .await?;
    log_payment(gateway.full_name(), order_id, &recorded, transaction_id);
    Ok(recorded.outcome)
}

/// Logs what recording a payment of `element`'s order did: a transition, or a payment
/// conflict (`reported` is the transaction id of the payment just recorded). Its event,
/// if any, is already in the outbox.
pub(crate) fn log_payment(
    element: &str,
    order_id: &str,
    recorded: &PaymentRecorded,
    reported: Option<&str>,
) {
    match recorded.outcome {
        PaidOutcome::Paid => {
            tracing::info!(%element, %order_id, "order paid");
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
                tracing::info!(%element, order_id = %log_safe(order_id),
                    transaction_id = %log_safe(reported),
                    "repeat of a payment conflict already recorded");
                return;
            }
            tracing::error!(
                %element,
                order_id = %log_safe(order_id),
                order_transaction_id = %log_safe(kept),
                conflicting_transaction_id = %log_safe(reported),
                "second payment for an order already paid under another transaction: \
                 kept in pays_payment_conflict, the order keeps its first; refund it"
            );
        }
    }
}

/// Queries WeChat about `row` and keeps the answer in the record table. `None` when
/// WeChat has no such order.
async fn query_and_record(
    gateway: &dyn Gateway,
    row: &pay_log::Model,
) -> Result<Option<QueriedOrder>, PayError> {
    let Some(answer) = gateway.query_order(&row.order_id).await? else {
        return Ok(None);
    };
    if answer.out_trade_no != row.order_id {
        return Err(PayError::Mismatch {
            doing: "order query",
            order_id: row.order_id.clone(),
            message: format!("the answer is about order {}", answer.out_trade_no),
        });
    }
    gateway
        .store()
        .save_query(ThirdPartyState {
            order_id: row.order_id.clone(),
            appid: gateway.app_id().to_owned(),
            mch_id: gateway.mch_id().to_owned(),
            total_fee: answer.total_fen.unwrap_or(row.amount_fen),
            trade_state: Some(answer.trade_state.as_str().to_owned()),
            transaction_id: answer.transaction_id.clone(),
            raw: answer.raw.clone(),
            api_version: gateway.api_version(),
        })
        .await?;
    Ok(Some(answer))
}

/// Applies what a query said to the order: a payment of the order's amount is recorded,
/// a closed order is closed here; another amount changes nothing and is an error.
async fn apply_query(
    gateway: &dyn Gateway,
    row: &pay_log::Model,
    answer: &QueriedOrder,
) -> Result<(), PayError> {
    if answer.trade_state.is_paid() {
        if answer.total_fen != Some(row.amount_fen) {
            tracing::error!(
                order_id = %row.order_id,
                expected_fen = row.amount_fen,
                reported_fen = ?answer.total_fen,
                "the order query reports a payment of another amount: order left unchanged"
            );
            return Err(PayError::Mismatch {
                doing: "order query",
                order_id: row.order_id.clone(),
                message: format!(
                    "WeChat reports {} fen paid, the order is {} fen",
                    answer
                        .total_fen
                        .map_or("no".into(), |total| total.to_string()),
                    row.amount_fen
                ),
            });
        }
        record_paid(
            gateway,
            &row.order_id,
            answer.transaction_id.as_deref(),
            answer.paid_at.unwrap_or_else(now),
        )
        .await?;
    } else if matches!(answer.trade_state, TradeState::Closed | TradeState::Revoked) {
        transitions::record_closed(
            gateway.store(),
            gateway.full_name(),
            &row.order_id,
            PayStatus::Close,
        )
        .await?;
    }
    Ok(())
}
