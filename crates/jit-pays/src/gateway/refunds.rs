//! Refunds, for either API: `refund`, `queryRefund`, `listRefunds`, and applying what a
//! decrypted refund notify says.
//!
//! A refund's money is held (`PayStore::reserve_refund`) before WeChat is asked, so two
//! refunds racing on one order, on any instances, never add up to more than was paid.
//! Then the request goes out with the refund's own number (`out_refund_no`): WeChat treats
//! a repeat of it as the same refund, which is what makes every retry safe — a caller's
//! retry with the same `refundId`, and the reconciler's re-send of a request whose answer
//! never came. What WeChat then says (answer, notify, query) moves the refund forward
//! once; a refused request closes it and gives the money back to the order.

use chrono::{DateTime, Utc};
use jit_runtime::log_safe;
use wechatpay_v2::Fen;

use super::orders::owned_order;
use super::{Gateway, RefundAtWechat, RefundRequestFailed};
use crate::db::entity::{RefundStatus, pay_log, refund};
use crate::db::refunds::{NewRefund, RefundFacts, RefundRefusal, Reserved, Settled};
use crate::db::store::now;
use crate::error::PayError;
use crate::metrics::RefundRequestOutcome;
use crate::model::{NotifyOutcome, NotifyReply, Refund, RefundArgs, RefusalReason};
use crate::order_id::{
    MAX_REFUND_REASON_CHARS, generate_refund_id, validate_payer_text, validate_refund_id,
};

/// How many generated refund ids `refund` tries before giving up on collisions.
const GENERATED_ID_ATTEMPTS: usize = 5;

/// What WeChat's status says in words, for a refund it closed or could not pay back.
pub(crate) fn failure_of(status: RefundStatus) -> Option<String> {
    match status {
        RefundStatus::Change => Some(
            "WeChat could not refund to the original account (CHANGE, V3: ABNORMAL): settle \
             it on the merchant platform"
                .into(),
        ),
        RefundStatus::Closed => Some("WeChat closed the refund".into()),
        RefundStatus::Processing | RefundStatus::Success => None,
    }
}

/// Checks a refund's arguments: its id's shape, its reason (length, text a payer may be
/// shown), its amount (what WeChat can take).
fn checked_amount(request: &RefundArgs) -> Result<Option<Fen>, PayError> {
    if let Some(id) = &request.refund_id {
        validate_refund_id(id)?;
    }
    if let Some(reason) = &request.reason {
        if reason.chars().count() > MAX_REFUND_REASON_CHARS {
            return Err(PayError::Invalid {
                field: "reason",
                message: format!(
                    "is {} characters long; WeChat accepts at most {MAX_REFUND_REASON_CHARS}",
                    reason.chars().count()
                ),
            });
        }
        validate_payer_text("reason", reason)?;
    }
    request
        .amount
        .map(|amount| {
            amount.ensure_total_fee().map_err(|e| PayError::Invalid {
                field: "amount",
                message: e.to_string(),
            })
        })
        .transpose()
}

/// `refund`: checks, holds the money, asks WeChat.
pub(crate) async fn refund_order(
    gateway: &dyn Gateway,
    request: RefundArgs,
) -> Result<Refund, PayError> {
    gateway.refund_ready()?;
    let amount = checked_amount(&request)?;
    let order = owned_order(gateway, &request.order_id).await?;
    let store = gateway.store();
    // A retry names its refund: answer it before looking at what is left to refund (a
    // full refund's retry finds nothing left, and is still the same refund).
    if let Some(id) = &request.refund_id
        && let Some(existing) = store.find_refund(id).await?
    {
        return retried(gateway, existing, &request, amount).await;
    }
    let left = order.amount_fen - order.refund_reserved_fen;
    let amount_fen = match amount {
        Some(amount) => amount.get(),
        None if left > 0 => left,
        None => {
            return Err(PayError::Invalid {
                field: "amount",
                message: format!(
                    "order {} has nothing left to refund ({} yuan paid, {} yuan held by its \
                     refunds)",
                    order.order_id,
                    Fen::new(order.amount_fen),
                    Fen::new(order.refund_reserved_fen)
                ),
            });
        }
    };
    let first_check = chrono::Duration::from_std(gateway.settings().reconciler.first_check_after)
        .unwrap_or(chrono::Duration::minutes(1));
    let mut attempt = 0;
    let (refund, order) = loop {
        attempt += 1;
        let refund_id = request.refund_id.clone().unwrap_or_else(generate_refund_id);
        let reserved = store
            .reserve_refund(NewRefund {
                refund_id,
                order_id: order.order_id.clone(),
                element: gateway.full_name().to_owned(),
                amount_fen,
                reason: request.reason.clone(),
                first_check_at: now() + first_check,
            })
            .await?;
        match reserved {
            Reserved::New { refund, order } => break (refund, order),
            // Written by a concurrent call with the caller's id: that one is this one.
            Reserved::Existing(existing) if request.refund_id.is_some() => {
                return retried(gateway, existing, &request, amount).await;
            }
            Reserved::Existing(_) if attempt < GENERATED_ID_ATTEMPTS => continue,
            Reserved::Existing(existing) => {
                return Err(PayError::unavailable(format!(
                    "could not generate an unused refund id (last tried {})",
                    existing.refund_id
                )));
            }
            Reserved::Refused(RefundRefusal::NotPaid { status }) => {
                return Err(PayError::OrderNotPaid {
                    order_id: order.order_id.clone(),
                    status,
                });
            }
            Reserved::Refused(RefundRefusal::Exceeds {
                paid_fen,
                reserved_fen,
            }) => {
                return Err(PayError::Invalid {
                    field: "amount",
                    message: format!(
                        "{} yuan is more than the {} yuan left to refund of order {} ({} yuan \
                         paid, {} yuan held by its refunds)",
                        Fen::new(amount_fen),
                        Fen::new(paid_fen - reserved_fen),
                        order.order_id,
                        Fen::new(paid_fen),
                        Fen::new(reserved_fen)
                    ),
                });
            }
        }
    };
    ask_wechat(gateway, refund, order.amount_fen).await
}

/// A refund asked for again under its id: the same refund when it names the same order
/// (and amount, when one is given), re-sent to WeChat if its first request's answer never
/// came; anything else reuses the id and is refused.
async fn retried(
    gateway: &dyn Gateway,
    existing: refund::Model,
    request: &RefundArgs,
    amount: Option<Fen>,
) -> Result<Refund, PayError> {
    let other_amount = amount.is_some_and(|amount| amount.get() != existing.amount_fen);
    if existing.order_id != request.order_id || other_amount {
        return Err(PayError::RefundIdUsed {
            refund_id: existing.refund_id.clone(),
            existing: format!(
                "a refund of {} yuan of order {}",
                Fen::new(existing.amount_fen),
                existing.order_id
            ),
        });
    }
    if existing.element != gateway.full_name() {
        return Err(PayError::WrongElement {
            order_id: existing.order_id,
            owner: existing.element,
            this: gateway.full_name().to_owned(),
        });
    }
    if existing.status == RefundStatus::Processing && existing.wechat_refund_id.is_none() {
        let order = owned_order(gateway, &existing.order_id).await?;
        return ask_wechat(gateway, existing, order.amount_fen).await;
    }
    Ok(existing.into())
}

/// Sends the refund request of `refund` (of an order of `total_fen`) and records the
/// answer: accepted (WeChat's refund id kept; settled when the answer or an earlier notify
/// says so), refused (the refund closed, an error), or unknown (left `processing` for the
/// reconciler's query).
async fn ask_wechat(
    gateway: &dyn Gateway,
    refund: refund::Model,
    total_fen: i64,
) -> Result<Refund, PayError> {
    let store = gateway.store();
    match gateway.request_refund(&refund, total_fen).await {
        Ok(answer) => {
            if answer.out_refund_no != refund.refund_id
                || answer.out_trade_no != refund.order_id
                || answer.refund_fen != refund.amount_fen
            {
                // Signed by WeChat, yet not this refund: keep it `processing` and let the
                // query settle it, rather than record what does not match.
                crate::metrics::refund_request(RefundRequestOutcome::Mismatch);
                return Err(PayError::Mismatch {
                    doing: "refund",
                    order_id: refund.order_id.clone(),
                    message: format!(
                        "WeChat answered refund {} for order {} of {} yuan, asked {} of {} yuan",
                        answer.out_refund_no,
                        answer.out_trade_no,
                        Fen::new(answer.refund_fen),
                        refund.refund_id,
                        Fen::new(refund.amount_fen)
                    ),
                });
            }
            crate::metrics::refund_request(RefundRequestOutcome::Accepted);
            let status = answer.status.unwrap_or(RefundStatus::Processing);
            Ok(
                apply_refund_state(gateway, &refund, status, facts_of(&answer, status))
                    .await?
                    .into(),
            )
        }
        Err(RefundRequestFailed::Refused { error, failure }) => {
            crate::metrics::refund_request(RefundRequestOutcome::Refused);
            tracing::warn!(element = %gateway.full_name(), refund_id = %log_safe(&refund.refund_id),
                error = %log_safe(&failure), "WeChat refused a refund; it is closed");
            store
                .settle_refund(
                    &refund.refund_id,
                    RefundStatus::Closed,
                    RefundFacts {
                        failure: Some(failure),
                        ..RefundFacts::default()
                    },
                )
                .await?;
            Err(error)
        }
        Err(RefundRequestFailed::Unknown(error)) => {
            // The request may have reached WeChat: only a query can tell. The refund stays
            // `processing` and the reconciler asks (re-sending the same request if WeChat
            // never got it).
            crate::metrics::refund_request(RefundRequestOutcome::Unknown);
            tracing::warn!(element = %gateway.full_name(), refund_id = %log_safe(&refund.refund_id),
                error = %log_safe(&error.to_string()),
                "refund request without a usable answer; the reconciler will query it");
            Ok(stored_refund(gateway, &refund.refund_id).await?.into())
        }
    }
}

/// What an answer about a refund in state `status` tells the refund row.
fn facts_of(answer: &RefundAtWechat, status: RefundStatus) -> RefundFacts {
    RefundFacts {
        wechat_refund_id: Some(answer.wechat_refund_id.clone()),
        account: answer.account.clone(),
        failure: failure_of(status),
        succeeded_at: answer.succeeded_at,
    }
}

async fn stored_refund(gateway: &dyn Gateway, refund_id: &str) -> Result<refund::Model, PayError> {
    gateway
        .store()
        .find_refund(refund_id)
        .await?
        .ok_or_else(|| PayError::UnknownRefund {
            refund_id: refund_id.to_owned(),
        })
}

/// The refund `refund_id`, refused as [`PayError::WrongElement`] when another element owns
/// its order.
async fn owned_refund(gateway: &dyn Gateway, refund_id: &str) -> Result<refund::Model, PayError> {
    let refund = stored_refund(gateway, refund_id).await?;
    if refund.element != gateway.full_name() {
        return Err(PayError::WrongElement {
            order_id: refund.order_id,
            owner: refund.element,
            this: gateway.full_name().to_owned(),
        });
    }
    Ok(refund)
}

/// `queryRefund`: asks WeChat about the refund by its number and applies the answer.
pub(crate) async fn query_refund(
    gateway: &dyn Gateway,
    refund_id: &str,
) -> Result<Refund, PayError> {
    let refund = owned_refund(gateway, refund_id).await?;
    let mismatch = |message: String| PayError::Mismatch {
        doing: "refund query",
        order_id: refund.order_id.clone(),
        message,
    };
    let Some(answer) = gateway.query_refund(&refund).await? else {
        // WeChat never got the request (its answer was lost before it arrived): the refund
        // stays `processing`, for the same request to be sent again.
        return match &refund.wechat_refund_id {
            None => Ok(refund.into()),
            Some(accepted) => Err(mismatch(format!(
                "WeChat does not know refund {}, which it accepted as {accepted}",
                refund.refund_id
            ))),
        };
    };
    if answer.out_trade_no != refund.order_id {
        return Err(mismatch(format!(
            "WeChat lists refund {} under order {}",
            refund.refund_id, answer.out_trade_no
        )));
    }
    if answer.out_refund_no != refund.refund_id {
        return Err(mismatch(format!(
            "WeChat's answer is about refund {}, not {}",
            answer.out_refund_no, refund.refund_id
        )));
    }
    if answer.refund_fen != refund.amount_fen {
        return Err(mismatch(format!(
            "WeChat has refund {} at {} yuan, the shop at {} yuan",
            refund.refund_id,
            Fen::new(answer.refund_fen),
            Fen::new(refund.amount_fen)
        )));
    }
    let status = answer.status.unwrap_or(RefundStatus::Processing);
    apply_refund_state(gateway, &refund, status, facts_of(&answer, status))
        .await
        .map(Into::into)
}

/// Moves `refund` to what WeChat reports (a `processing` report only keeps WeChat's refund
/// id); returns the refund as it is now.
async fn apply_refund_state(
    gateway: &dyn Gateway,
    refund: &refund::Model,
    status: RefundStatus,
    facts: RefundFacts,
) -> Result<refund::Model, PayError> {
    let store = gateway.store();
    if status == RefundStatus::Processing {
        if let Some(id) = &facts.wechat_refund_id {
            store.record_refund_accepted(&refund.refund_id, id).await?;
        }
        return stored_refund(gateway, &refund.refund_id).await;
    }
    Ok(
        match store
            .settle_refund(&refund.refund_id, status, facts)
            .await?
        {
            Settled::Moved { refund, .. } => {
                tracing::info!(element = %gateway.full_name(), refund_id = %log_safe(&refund.refund_id),
                    status = %refund.status, "refund settled");
                refund
            }
            Settled::Unchanged(refund) => refund,
        },
    )
}

/// `listRefunds`: an order's refunds as stored.
pub(crate) async fn refunds_of(
    gateway: &dyn Gateway,
    order_id: &str,
) -> Result<Vec<Refund>, PayError> {
    owned_order(gateway, order_id).await?;
    Ok(gateway
        .store()
        .list_refunds(order_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// What a decrypted refund notify says, in words both APIs share. Its merchant is
/// checked by the Type that decrypted it (V2 names appid and mch_id, V3 only mchid).
#[derive(Clone, Debug)]
pub(crate) struct NotifiedRefund {
    /// The report itself: which refund, of which order, how much, in which state.
    pub refund: RefundAtWechat,
    /// The paid order's total, in fen.
    pub total_fen: i64,
    /// The order's transaction.
    pub transaction_id: String,
}

/// Applies a refund notify that decrypted with `gateway`'s key: checked against the stored
/// refund and its order (order, amounts, transaction, WeChat's refund id), applied once.
/// Anything that does not match changes nothing and is refused.
pub(crate) async fn apply_refund_notify(
    gateway: &dyn Gateway,
    notified: NotifiedRefund,
) -> NotifyReply {
    let report = &notified.refund;
    let refund_id = report.out_refund_no.clone();
    let store = gateway.store();
    let refund = match store.find_refund(&refund_id).await {
        Ok(Some(refund)) => refund,
        Ok(None) => {
            return NotifyReply::refused(
                RefusalReason::UnknownOrder,
                format!("refund notify for unknown refund {refund_id}"),
            );
        }
        Err(error) => return refund_notify_failed(gateway, &refund_id, &error),
    };
    let order = match store.find_order(&refund.order_id).await {
        Ok(Some(order)) => order,
        Ok(None) => {
            return NotifyReply::refused(
                RefusalReason::UnknownOrder,
                format!("refund notify for refund {refund_id} of a missing order"),
            );
        }
        Err(error) => return refund_notify_failed(gateway, &refund_id, &error),
    };
    if let Some(contradiction) = contradiction(gateway, &notified, &refund, &order) {
        tracing::error!(element = %gateway.full_name(), refund_id = %log_safe(&refund_id),
            contradiction = %log_safe(&contradiction),
            "decrypted refund notify contradicts the refund: left unchanged");
        return NotifyReply::refused(
            RefusalReason::RefundMismatch,
            format!("refund notify for refund {refund_id}: {contradiction}"),
        );
    }
    let status = report.status.unwrap_or(RefundStatus::Processing);
    match apply_refund_state(gateway, &refund, status, facts_of(report, status)).await {
        Ok(refund) => NotifyReply::new(NotifyOutcome::Refund {
            refund_id,
            status: refund.status,
        }),
        Err(error) => refund_notify_failed(gateway, &refund_id, &error),
    }
}

/// How a refund notify contradicts the stored refund or its order, if it does.
fn contradiction(
    gateway: &dyn Gateway,
    notified: &NotifiedRefund,
    refund: &refund::Model,
    order: &pay_log::Model,
) -> Option<String> {
    let report = &notified.refund;
    if refund.element != gateway.full_name() {
        Some(format!("its refund belongs to `{}`", refund.element))
    } else if report.out_trade_no != refund.order_id {
        Some(format!(
            "it names order {}, the refund is of order {}",
            report.out_trade_no, refund.order_id
        ))
    } else if report.refund_fen != refund.amount_fen {
        Some(format!(
            "refund_fee {} does not match the refund's {}",
            report.refund_fen, refund.amount_fen
        ))
    } else if notified.total_fen != order.amount_fen {
        Some(format!(
            "total_fee {} does not match the order's {}",
            notified.total_fen, order.amount_fen
        ))
    } else if order
        .transaction_id
        .as_ref()
        .is_some_and(|paid| *paid != notified.transaction_id)
    {
        Some(format!(
            "transaction_id {} is not the order's",
            notified.transaction_id
        ))
    } else if refund
        .wechat_refund_id
        .as_ref()
        .is_some_and(|known| *known != report.wechat_refund_id)
    {
        Some(format!(
            "refund_id {} is not the refund's",
            report.wechat_refund_id
        ))
    } else {
        None
    }
}

fn refund_notify_failed(
    gateway: &dyn Gateway,
    refund_id: &str,
    error: &dyn std::fmt::Display,
) -> NotifyReply {
    tracing::error!(element = %gateway.full_name(), refund_id = %log_safe(refund_id),
        error = %log_safe(&error.to_string()),
        "refund notify not committed; WeChat will retry");
    NotifyReply::failed("temporarily unable to record the refund")
}

/// When WeChat says a refund succeeded, as its V2 text (Beijing time, `yyyy-MM-dd
/// HH:mm:ss`) reads; `None` when absent or unreadable.
pub(crate) fn v2_succeeded_at(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|text| wechatpay_v2::time::parse_beijing_readable_time(text).ok())
}
