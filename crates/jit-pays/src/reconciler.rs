//! The reconciler: a background task that queries orders whose notify has not come, times
//! out orders past their expiry (closing them at WeChat first), and settles refunds whose
//! outcome WeChat has not reported (querying them, and re-sending a request WeChat never
//! got: the same `out_refund_no`, the same body).

use std::time::Duration;

use jit_runtime::{App, WeakApp, log_safe};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::PayStore;
use crate::db::entity::{PayStatus, RefundStatus};
use crate::db::store::now;
use crate::error::PayError;
use crate::meta::service;
use crate::model::{CloseAtWechat, PayLog, Refund, RefundArgs};
use crate::pay::Pay;
use crate::settings::PaysSettings;
use crate::transitions;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Orders looked at.
    pub examined: usize,
    /// Found paid.
    pub paid: usize,
    /// Found closed at WeChat.
    pub closed: usize,
    /// Timed out.
    pub timed_out: usize,
    /// Still waiting (rescheduled).
    pub waiting: usize,
    /// Failed (rescheduled; logged).
    pub failed: usize,
    /// Unsettled refunds looked at.
    pub refunds_examined: usize,
    /// Refunds found settled (success, change or closed).
    pub refunds_settled: usize,
    /// Refunds still processing (rescheduled).
    pub refunds_waiting: usize,
    /// Refunds whose look failed (rescheduled; logged).
    pub refunds_failed: usize,
}

/// One pass over the orders due now: claims them (so another instance's pass does not
/// query them too: [`PayStore::claim_due_for_check`]), looks at each, and reschedules
/// those still waiting.
pub async fn reconcile_due(app: &App) -> Result<ReconcileReport, PayError> {
    let store = service::<PayStore>(app, "PayStore")?;
    let settings = service::<PaysSettings>(app, "PaysSettings")?;
    let due = store
        .claim_due_for_check(
            now(),
            settings.reconciler.batch_size,
            settings.reconciler.claim_lease,
        )
        .await?;
    let mut report = ReconcileReport::default();
    for row in due {
        report.examined += 1;
        let attempts = row.check_attempts.saturating_add(1);
        let outcome = match crate::element_pay::pay_of_element(app, &row.element).await {
            Ok(pay) => pay.reconcile(&row.order_id).await,
            Err(error) => Err(error),
        };
        let reschedule = match outcome {
            Ok(order) => match order.status {
                PayStatus::Success => {
                    report.paid += 1;
                    false
                }
                PayStatus::Close => {
                    report.closed += 1;
                    false
                }
                PayStatus::Timeout => {
                    report.timed_out += 1;
                    false
                }
                PayStatus::Wait => {
                    report.waiting += 1;
                    true
                }
            },
            Err(error) => {
                report.failed += 1;
                // The error may quote the gateway (return_msg, err_code_des).
                tracing::warn!(order_id = %log_safe(&row.order_id),
                    error = %log_safe(&error.to_string()), "reconciling an order failed");
                true
            }
        };
        if reschedule {
            let pause = chrono::Duration::from_std(settings.reconciler.backoff(attempts))
                .unwrap_or(chrono::Duration::minutes(15));
            let at = now();
            // Never sleep past the expiry: that is when the order must be timed out.
            let next = if row.expires_at > at {
                (at + pause).min(row.expires_at)
            } else {
                at + pause
            };
            store.postpone_check(&row.order_id, attempts, next).await?;
        }
    }
    reconcile_due_refunds(app, &store, &settings, &mut report).await?;
    Ok(report)
}

/// The refunds part of a pass: claims the unsettled refunds that are due, looks at each
/// through its element ([`reconcile_refund`]) and reschedules those still unsettled.
async fn reconcile_due_refunds(
    app: &App,
    store: &PayStore,
    settings: &PaysSettings,
    report: &mut ReconcileReport,
) -> Result<(), PayError> {
    let due = store
        .claim_due_refunds(
            now(),
            settings.reconciler.batch_size,
            settings.reconciler.claim_lease,
        )
        .await?;
    for row in due {
        report.refunds_examined += 1;
        let attempts = row.check_attempts.saturating_add(1);
        let outcome = match crate::element_pay::pay_of_element(app, &row.element).await {
            Ok(pay) => reconcile_refund(pay.as_ref(), &row.refund_id).await,
            Err(error) => Err(error),
        };
        let pause = match outcome {
            Ok(refund) => match refund.status {
                RefundStatus::Success | RefundStatus::Closed => {
                    report.refunds_settled += 1;
                    None
                }
                // Settled by hand at WeChat, if ever: looked at again, but rarely.
                RefundStatus::Change => {
                    report.refunds_settled += 1;
                    Some(settings.reconciler.max_backoff)
                }
                RefundStatus::Processing => {
                    report.refunds_waiting += 1;
                    Some(settings.reconciler.backoff(attempts))
                }
            },
            Err(error) => {
                report.refunds_failed += 1;
                tracing::warn!(refund_id = %log_safe(&row.refund_id),
                    error = %log_safe(&error.to_string()), "reconciling a refund failed");
                Some(settings.reconciler.backoff(attempts))
            }
        };
        if let Some(pause) = pause {
            let pause = chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::minutes(15));
            store
                .postpone_refund_check(&row.refund_id, attempts, now() + pause)
                .await?;
        }
    }
    Ok(())
}

/// The reconciler's step for one unsettled refund of `pay`: query it at WeChat; when
/// WeChat has never heard of it (the request's answer was lost before the request
/// arrived), ask again with the same refund — `pay`'s own `refund` under the same id,
/// which re-sends the identical request.
pub(crate) async fn reconcile_refund(pay: &dyn Pay, refund_id: &str) -> Result<Refund, PayError> {
    let refund = pay.query_refund(refund_id).await?;
    if refund.status != RefundStatus::Processing || refund.wechat_refund_id.is_some() {
        return Ok(refund);
    }
    pay.refund(RefundArgs {
        order_id: refund.order_id.clone(),
        amount: Some(refund.amount),
        reason: refund.reason.clone(),
        refund_id: Some(refund.refund_id.clone()),
    })
    .await
}

/// The reconciler's step for one order of `pay`, the same for every pay element: a
/// waiting order is checked at WeChat; one still waiting past its expiry is closed at
/// WeChat (a payment found there is recorded by checking again) and timed out here.
///
/// It goes through `pay`'s own `getOrder`, `check` and `cancelThird`, so what an element
/// overrides stays in force; only the local `wait → timeout` is the family's.
pub(crate) async fn reconcile_order(
    pay: &dyn Pay,
    store: &PayStore,
    order_id: &str,
) -> Result<PayLog, PayError> {
    let order = pay.get_order(order_id).await?;
    if order.status != PayStatus::Wait {
        return Ok(order);
    }
    let order = pay.check(order_id).await?;
    if order.status != PayStatus::Wait || order.expires_at > now() {
        return Ok(order);
    }
    match pay.cancel_third(order_id).await? {
        CloseAtWechat::Paid => pay.check(order_id).await,
        CloseAtWechat::Closed | CloseAtWechat::NotCreated => {
            transitions::record_closed(store, pay.full_name(), order_id, PayStatus::Timeout)
                .await?;
            pay.get_order(order_id).await
        }
    }
}

/// The running reconciler; stop it with [`ReconcilerHandle::stop`].
#[derive(Debug)]
pub struct ReconcilerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ReconcilerHandle {
    /// Asks the task to stop and waits for the pass in progress to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the reconciler for `app`: a pass every `scan_interval` of the app's
/// [`PaysSettings`]. It holds the app weakly and ends when the app is dropped.
pub fn start_reconciler(app: &App) -> Result<ReconcilerHandle, PayError> {
    let settings = service::<PaysSettings>(app, "PaysSettings")?;
    let interval = settings
        .reconciler
        .scan_interval
        .max(Duration::from_millis(10));
    let weak: WeakApp = app.downgrade();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let Some(app) = weak.upgrade() else { break };
            let started = std::time::Instant::now();
            let pass = reconcile_due(&app).await;
            crate::metrics::reconciler_round(pass.as_ref().ok(), started.elapsed());
            if let Err(error) = pass {
                tracing::warn!(error = %log_safe(&error.to_string()), "reconciler pass failed");
            }
        }
    });
    Ok(ReconcilerHandle { stop, task })
}
