//! Refunds: `refund` (secapi/pay/refund), `queryRefund` (refundquery), `listRefunds`, and
//! WeChat's refund notifies.
//!
//! A refund's money is held (`PayStore::reserve_refund`) before WeChat is asked, so two
//! refunds racing on one order, on any instances, never add up to more than was paid.
//! Then the request goes out with the refund's own `out_refund_no`: WeChat treats a
//! repeat of it as the same refund, which is what makes every retry safe — a caller's
//! retry with the same `refundId`, and the reconciler's re-send of a request whose answer
//! never came. What WeChat then says (answer, notify, query) moves the refund forward
//! once; a refused request closes it and gives the money back to the order.

use chrono::{DateTime, Utc};
use jit_runtime::log_safe;
use wechatpay_v2::{ErrCode, Error as WxError, Fen, OrderRef, RefundRef, RefundRequest};

use super::WechatPay;
use crate::db::entity::{RefundStatus, refund};
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

/// WeChat's `success_time` / `refund_success_time` (Beijing time), if it reads.
fn succeeded_at(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|text| wechatpay_v2::time::parse_beijing_readable_time(text).ok())
}

/// What WeChat's status says in words, for a refund it closed or could not pay back.
fn failure_of(status: RefundStatus) -> Option<String> {
    match status {
        RefundStatus::Change => Some(
            "WeChat could not refund to the original account (CHANGE): settle it on the \
             merchant platform"
                .into(),
        ),
        RefundStatus::Closed => Some("WeChat closed the refund (REFUNDCLOSE)".into()),
        RefundStatus::Processing | RefundStatus::Success => None,
    }
}

impl WechatPay {
    /// `refund`: checks, holds the money, asks WeChat.
    pub(super) async fn refund_order(&self, request: RefundArgs) -> Result<Refund, PayError> {
        self.require_merchant_certificate()?;
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
        let amount = match request.amount {
            Some(amount) => Some(amount.ensure_total_fee().map_err(|e| PayError::Invalid {
                field: "amount",
                message: e.to_string(),
            })?),
            None => None,
        };
        let order = self.owned_order(&request.order_id).await?;
        // A retry names its refund: answer it before looking at what is left to refund
        // (a full refund's retry finds nothing left, and is still the same refund).
        if let Some(id) = &request.refund_id
            && let Some(existing) = self.store.find_refund(id).await?
        {
            return self.retried(existing, &request, amount).await;
        }
        let left = order.amount_fen - order.refund_reserved_fen;
        let amount_fen = match amount {
            Some(amount) => amount.get(),
            None if left > 0 => left,
            None => {
                return Err(PayError::Invalid {
                    field: "amount",
                    message: format!(
                        "order {} has nothing left to refund ({} yuan paid, {} yuan held by \
                         its refunds)",
                        order.order_id,
                        Fen::new(order.amount_fen),
                        Fen::new(order.refund_reserved_fen)
                    ),
                });
            }
        };
        let first_check = chrono::Duration::from_std(self.settings.reconciler.first_check_after)
            .unwrap_or(chrono::Duration::minutes(1));
        let mut attempt = 0;
        let (refund, order) = loop {
            attempt += 1;
            let refund_id = request.refund_id.clone().unwrap_or_else(generate_refund_id);
            let reserved = self
                .store
                .reserve_refund(NewRefund {
                    refund_id,
                    order_id: order.order_id.clone(),
                    element: self.full_name.clone(),
                    amount_fen,
                    reason: request.reason.clone(),
                    first_check_at: now() + first_check,
                })
                .await?;
            match reserved {
                Reserved::New { refund, order } => break (refund, order),
                // Written by a concurrent call with the caller's id: that one is this one.
                Reserved::Existing(existing) if request.refund_id.is_some() => {
                    return self.retried(existing, &request, amount).await;
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
                            "{} yuan is more than the {} yuan left to refund of order {} \
                             ({} yuan paid, {} yuan held by its refunds)",
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
        self.ask_wechat(refund, order.amount_fen).await
    }

    /// A refund asked for again under its id: the same refund when it names the same
    /// order (and amount, when one is given), re-sent to WeChat if its first request's
    /// answer never came; anything else reuses the id and is refused.
    async fn retried(
        &self,
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
        if existing.element != self.full_name {
            return Err(PayError::WrongElement {
                order_id: existing.order_id,
                owner: existing.element,
                this: self.full_name.clone(),
            });
        }
        if existing.status == RefundStatus::Processing && existing.wechat_refund_id.is_none() {
            let order = self.owned_order(&existing.order_id).await?;
            return self.ask_wechat(existing, order.amount_fen).await;
        }
        Ok(existing.into())
    }

    /// Sends the refund request of `refund` (of an order of `total_fen`) and records the
    /// answer: accepted (WeChat's refund id kept, still `processing`, or settled when the
    /// notify already came), refused (the refund closed, an error), or unknown (left
    /// `processing` for the reconciler's query).
    async fn ask_wechat(&self, refund: refund::Model, total_fen: i64) -> Result<Refund, PayError> {
        let request = RefundRequest {
            order: OrderRef::OutTradeNo(refund.order_id.clone()),
            out_refund_no: refund.refund_id.clone(),
            total_fee: Fen::new(total_fen),
            refund_fee: Fen::new(refund.amount_fen),
            refund_desc: refund.reason.clone(),
            notify_url: self.settings.refund_notify_url.clone(),
        };
        match crate::metrics::gateway_call("refund", self.client.refund(&request)).await {
            Ok(answer) => {
                if answer.out_refund_no != refund.refund_id
                    || answer.out_trade_no != refund.order_id
                    || answer.refund_fee.get() != refund.amount_fen
                {
                    // Signed by WeChat, yet not this refund: keep it `processing` and let
                    // the query settle it, rather than record what does not match.
                    crate::metrics::refund_request(RefundRequestOutcome::Mismatch);
                    return Err(PayError::Mismatch {
                        doing: "refund",
                        order_id: refund.order_id.clone(),
                        message: format!(
                            "WeChat answered refund {} for order {} of {} yuan, asked {} of {} yuan",
                            answer.out_refund_no,
                            answer.out_trade_no,
                            answer.refund_fee,
                            refund.refund_id,
                            Fen::new(refund.amount_fen)
                        ),
                    });
                }
                crate::metrics::refund_request(RefundRequestOutcome::Accepted);
                self.store
                    .record_refund_accepted(&refund.refund_id, &answer.refund_id)
                    .await?;
                Ok(self.stored_refund(&refund.refund_id).await?.into())
            }
            Err(error) if refused_for_good(&error) => {
                crate::metrics::refund_request(RefundRequestOutcome::Refused);
                let failure = error.to_string();
                tracing::warn!(element = %self.full_name, refund_id = %log_safe(&refund.refund_id),
                    error = %log_safe(&failure), "WeChat refused a refund; it is closed");
                self.store
                    .settle_refund(
                        &refund.refund_id,
                        RefundStatus::Closed,
                        RefundFacts {
                            failure: Some(failure),
                            ..RefundFacts::default()
                        },
                    )
                    .await?;
                Err(PayError::Gateway {
                    doing: "refund",
                    order_id: refund.order_id,
                    source: error,
                })
            }
            Err(error) => {
                // The request may have reached WeChat: only a query can tell. The refund
                // stays `processing` and the reconciler asks (re-sending the same request
                // if WeChat never got it).
                crate::metrics::refund_request(RefundRequestOutcome::Unknown);
                tracing::warn!(element = %self.full_name, refund_id = %log_safe(&refund.refund_id),
                    error = %log_safe(&error.to_string()),
                    "refund request without a usable answer; the reconciler will query it");
                Ok(self.stored_refund(&refund.refund_id).await?.into())
            }
        }
    }

    async fn stored_refund(&self, refund_id: &str) -> Result<refund::Model, PayError> {
        self.store
            .find_refund(refund_id)
            .await?
            .ok_or_else(|| PayError::UnknownRefund {
                refund_id: refund_id.to_owned(),
            })
    }

    /// The refund `refund_id`, refused as [`PayError::WrongElement`] when another element
    /// owns its order.
    async fn owned_refund(&self, refund_id: &str) -> Result<refund::Model, PayError> {
        let refund = self.stored_refund(refund_id).await?;
        if refund.element != self.full_name {
            return Err(PayError::WrongElement {
                order_id: refund.order_id,
                owner: refund.element,
                this: self.full_name.clone(),
            });
        }
        Ok(refund)
    }

    /// `queryRefund`: asks WeChat (refundquery by `out_refund_no`) and applies the answer.
    pub(super) async fn query_refund_at_wechat(&self, refund_id: &str) -> Result<Refund, PayError> {
        let refund = self.owned_refund(refund_id).await?;
        let answer = match crate::metrics::gateway_call(
            "refundquery",
            self.client
                .refund_query(&RefundRef::OutRefundNo(refund.refund_id.clone())),
        )
        .await
        {
            Ok(answer) => answer,
            // WeChat never got the request (its answer was lost before it arrived): the
            // refund stays `processing`, for the same request to be sent again.
            Err(WxError::Business {
                code: ErrCode::RefundNotExist,
                ..
            }) if refund.wechat_refund_id.is_none() => return Ok(refund.into()),
            Err(source) => {
                return Err(PayError::Gateway {
                    doing: "refundquery",
                    order_id: refund.order_id,
                    source,
                });
            }
        };
        let mismatch = |message: String| PayError::Mismatch {
            doing: "refundquery",
            order_id: refund.order_id.clone(),
            message,
        };
        if answer.out_trade_no != refund.order_id {
            return Err(mismatch(format!(
                "WeChat lists refund {} under order {}",
                refund.refund_id, answer.out_trade_no
            )));
        }
        let record = answer
            .refunds
            .iter()
            .find(|record| record.out_refund_no == refund.refund_id)
            .ok_or_else(|| {
                mismatch(format!(
                    "WeChat's answer does not list refund {}",
                    refund.refund_id
                ))
            })?;
        if record.refund_fee.get() != refund.amount_fen {
            return Err(mismatch(format!(
                "WeChat has refund {} at {} yuan, the shop at {} yuan",
                refund.refund_id,
                record.refund_fee,
                Fen::new(refund.amount_fen)
            )));
        }
        let status = RefundStatus::of_wechat(record.refund_status);
        self.apply_refund_state(
            &refund,
            status,
            RefundFacts {
                wechat_refund_id: Some(record.refund_id.clone()),
                account: record.refund_recv_account.clone(),
                failure: failure_of(status),
                succeeded_at: succeeded_at(record.refund_success_time.as_deref()),
            },
        )
        .await
        .map(Into::into)
    }

    /// Moves `refund` to what WeChat reports (a `processing` report only keeps WeChat's
    /// refund id); returns the refund as it is now.
    async fn apply_refund_state(
        &self,
        refund: &refund::Model,
        status: RefundStatus,
        facts: RefundFacts,
    ) -> Result<refund::Model, PayError> {
        if status == RefundStatus::Processing {
            if let Some(id) = &facts.wechat_refund_id {
                self.store
                    .record_refund_accepted(&refund.refund_id, id)
                    .await?;
            }
            return self.stored_refund(&refund.refund_id).await;
        }
        Ok(
            match self
                .store
                .settle_refund(&refund.refund_id, status, facts)
                .await?
            {
                Settled::Moved { refund, .. } => {
                    tracing::info!(element = %self.full_name, refund_id = %log_safe(&refund.refund_id),
                        status = %refund.status, "refund settled");
                    refund
                }
                Settled::Unchanged(refund) => refund,
            },
        )
    }

    /// `listRefunds`: an order's refunds as stored.
    pub(super) async fn refunds_of(&self, order_id: &str) -> Result<Vec<Refund>, PayError> {
        self.owned_order(order_id).await?;
        Ok(self
            .store
            .list_refunds(order_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// A refund notify: decrypted with this merchant's key (which is what authenticates
    /// it: refund notifies carry no signature), checked against the stored refund and its
    /// order (merchant, order, amounts), applied once. Anything that does not decrypt or
    /// does not match changes nothing and is refused.
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
        let refund_id = notify.out_refund_no.clone();
        if notify.appid != self.config.app_id || notify.mch_id != self.config.mch_id {
            return NotifyReply::refused(
                RefusalReason::WrongMerchant,
                format!(
                    "refund notify for refund {refund_id} names appid {} / mch_id {}, not this \
                 merchant's",
                    notify.appid, notify.mch_id
                ),
            );
        }
        let refund = match self.store.find_refund(&refund_id).await {
            Ok(Some(refund)) => refund,
            Ok(None) => {
                return NotifyReply::refused(
                    RefusalReason::UnknownOrder,
                    format!("refund notify for unknown refund {refund_id}"),
                );
            }
            Err(error) => return self.refund_notify_failed(&refund_id, &error),
        };
        let order = match self.store.find_order(&refund.order_id).await {
            Ok(Some(order)) => order,
            Ok(None) => {
                return NotifyReply::refused(
                    RefusalReason::UnknownOrder,
                    format!("refund notify for refund {refund_id} of a missing order"),
                );
            }
            Err(error) => return self.refund_notify_failed(&refund_id, &error),
        };
        let contradiction = if refund.element != self.full_name {
            Some(format!("its refund belongs to `{}`", refund.element))
        } else if notify.out_trade_no != refund.order_id {
            Some(format!(
                "it names order {}, the refund is of order {}",
                notify.out_trade_no, refund.order_id
            ))
        } else if notify.refund_fee.get() != refund.amount_fen {
            Some(format!(
                "refund_fee {} does not match the refund's {}",
                notify.refund_fee.get(),
                refund.amount_fen
            ))
        } else if notify.total_fee.get() != order.amount_fen {
            Some(format!(
                "total_fee {} does not match the order's {}",
                notify.total_fee.get(),
                order.amount_fen
            ))
        } else if order
            .transaction_id
            .as_ref()
            .is_some_and(|paid| *paid != notify.transaction_id)
        {
            Some(format!(
                "transaction_id {} is not the order's",
                notify.transaction_id
            ))
        } else if refund
            .wechat_refund_id
            .as_ref()
            .is_some_and(|known| *known != notify.refund_id)
        {
            Some(format!(
                "refund_id {} is not the refund's",
                notify.refund_id
            ))
        } else {
            None
        };
        if let Some(contradiction) = contradiction {
            tracing::error!(element = %self.full_name, refund_id = %log_safe(&refund_id),
                contradiction = %log_safe(&contradiction),
                "decrypted refund notify contradicts the refund: left unchanged");
            return NotifyReply::refused(
                RefusalReason::RefundMismatch,
                format!("refund notify for refund {refund_id}: {contradiction}"),
            );
        }
        let status = RefundStatus::of_wechat(notify.refund_status);
        let applied = self
            .apply_refund_state(
                &refund,
                status,
                RefundFacts {
                    wechat_refund_id: Some(notify.refund_id.clone()),
                    account: notify.refund_recv_account.clone(),
                    failure: failure_of(status),
                    succeeded_at: succeeded_at(notify.success_time.as_deref()),
                },
            )
            .await;
        match applied {
            Ok(refund) => NotifyReply::new(NotifyOutcome::Refund {
                refund_id,
                status: refund.status,
            }),
            Err(error) => self.refund_notify_failed(&refund_id, &error),
        }
    }

    fn refund_notify_failed(&self, refund_id: &str, error: &dyn std::fmt::Display) -> NotifyReply {
        tracing::error!(element = %self.full_name, refund_id = %log_safe(refund_id),
            error = %log_safe(&error.to_string()),
            "refund notify not committed; WeChat will retry");
        NotifyReply::failed("temporarily unable to record the refund")
    }
}
