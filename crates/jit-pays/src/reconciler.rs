//! The reconciler: a background task that queries orders whose notify has not come, and
//! times out orders past their expiry (closing them at WeChat first).

use std::time::Duration;

use jit_runtime::{App, WeakApp, log_safe};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::PayStore;
use crate::db::entity::PayStatus;
use crate::db::store::now;
use crate::error::PayError;
use crate::meta::service;
use crate::model::{CloseAtWechat, PayLog};
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
    Ok(report)
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
            if let Err(error) = reconcile_due(&app).await {
                tracing::warn!(error = %log_safe(&error.to_string()), "reconciler pass failed");
            }
        }
    });
    Ok(ReconcilerHandle { stop, task })
}
