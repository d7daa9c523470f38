//! The daily bill download: once WeChat's bills of a day are ready (`download_at`, Beijing
//! time, 10:00 by default), each merchant's ALL bill of the day before is downloaded and
//! every instance of the merchant reconciled against it.
//!
//! Several instances of the shop may run on one database: a day is downloaded by the one
//! that claims it ([`PayStore::claim_bill_day`]); the others find it claimed or stored and
//! leave it. A failed download keeps the claim until `retry_after` has passed, then any
//! instance tries again; a claimant that dies loses its claim after `claim_lease`.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use jit_runtime::{App, WeakApp, log_safe};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wechatpay_v2::BillType;

use super::{BillsError, DownloadedDay, ReconcileDay, bill_merchants, download_day, reconcile_day};
use crate::db::PayStore;
use crate::db::bills::DAY_STORED;
use crate::meta::service;
use crate::settings::PaysSettings;

/// When and as whom the daily download runs.
#[derive(Clone, Debug)]
pub struct BillSchedule {
    /// Beijing time of day after which the day before is downloaded.
    pub download_at: NaiveTime,
    /// This instance's name in claims.
    pub instance_id: String,
    /// How often the task looks whether a day is due.
    pub check_interval: Duration,
    /// A claimant that has not stored its day after this long has died; another takes it.
    pub claim_lease: Duration,
    /// After a failed download, the day waits this long before the next attempt.
    pub retry_after: Duration,
}

impl BillSchedule {
    /// The default time: 10:00 Beijing, when WeChat's bills of the day before are ready.
    pub const DEFAULT_DOWNLOAD_AT: NaiveTime = match NaiveTime::from_hms_opt(10, 0, 0) {
        Some(time) => time,
        None => panic!("10:00 is a time"),
    };

    /// A schedule at `download_at` for `instance_id`: a look every minute, 10-minute
    /// claims, 10 minutes between attempts.
    pub fn new(download_at: NaiveTime, instance_id: impl Into<String>) -> Self {
        BillSchedule {
            download_at,
            instance_id: instance_id.into(),
            check_interval: Duration::from_secs(60),
            claim_lease: Duration::from_secs(600),
            retry_after: Duration::from_secs(600),
        }
    }

    /// The date whose bill is due at `now`: yesterday (Beijing) once `download_at` has
    /// passed today, else the day before yesterday.
    pub fn due_date(&self, now: DateTime<Utc>) -> NaiveDate {
        let local = now.with_timezone(&wechatpay_v2::time::beijing());
        let today = local.date_naive();
        let days_back = if local.time() >= self.download_at {
            1
        } else {
            2
        };
        today - chrono::Duration::days(days_back)
    }
}

/// What one look of the schedule did for one merchant.
#[derive(Clone, Debug)]
pub struct ScheduledDay {
    /// The download this instance made.
    pub downloaded: DownloadedDay,
    /// The reconciliation of each instance of the merchant.
    pub reconciled: Vec<ReconcileDay>,
}

/// One look of the schedule at `now`: for each merchant whose ALL bill of
/// [`BillSchedule::due_date`] is neither stored nor claimed by another instance, claims it,
/// downloads it and reconciles every instance of the merchant. A failure is logged and the
/// day retried after `retry_after`.
pub async fn run_due(
    app: &App,
    schedule: &BillSchedule,
    now: DateTime<Utc>,
) -> Result<Vec<ScheduledDay>, BillsError> {
    let store = service::<PayStore>(app, "PayStore")?;
    let settings = service::<PaysSettings>(app, "PaysSettings")?;
    let date = schedule.due_date(now);
    let merchants = bill_merchants(app, None)?;
    let mut done: Vec<ScheduledDay> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for merchant in &merchants {
        let mch_id = merchant.mch_id.as_str();
        if seen.contains(&mch_id) {
            continue;
        }
        seen.push(mch_id);
        let key = merchant.day(BillType::All, date);
        if let Some(day) = store.bill_day(&key).await?
            && day.status == DAY_STORED
        {
            continue;
        }
        let claimed = store
            .claim_bill_day(
                &key,
                &merchant.element,
                &schedule.instance_id,
                now,
                schedule.claim_lease,
            )
            .await?;
        if !claimed {
            continue;
        }
        let attempt = async {
            let client = merchant.client(&settings)?;
            let downloaded = download_day(&client, &store, &merchant.element, &key).await?;
            let mut reconciled = Vec::new();
            for sibling in merchants.iter().filter(|m| m.mch_id == mch_id) {
                reconciled.push(reconcile_day(app, sibling, date).await?);
            }
            Ok::<_, BillsError>(ScheduledDay {
                downloaded,
                reconciled,
            })
        };
        match attempt.await {
            Ok(day) => done.push(day),
            Err(error) => {
                tracing::warn!(element = %merchant.element, date = %date,
                    error = %log_safe(&error.to_string()),
                    "the daily bill download failed; it is tried again later");
                let retry_at = now
                    + chrono::Duration::from_std(schedule.retry_after)
                        .unwrap_or(chrono::Duration::minutes(10));
                store
                    .postpone_bill_claim(&key, &schedule.instance_id, retry_at)
                    .await?;
            }
        }
    }
    Ok(done)
}

/// The running daily download; stop it with [`BillScheduleHandle::stop`].
#[derive(Debug)]
pub struct BillScheduleHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BillScheduleHandle {
    /// Asks the task to stop and waits for the look in progress to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the daily download for `app`: a look every `check_interval` ([`run_due`]). It
/// holds the app weakly and ends when the app is dropped.
pub fn start_bill_schedule(app: &App, schedule: BillSchedule) -> BillScheduleHandle {
    let interval = schedule.check_interval.max(Duration::from_millis(10));
    let weak: WeakApp = app.downgrade();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let Some(app) = weak.upgrade() else { break };
            if let Err(error) = run_due(&app, &schedule, Utc::now()).await {
                tracing::warn!(error = %log_safe(&error.to_string()), "daily bill download failed");
            }
            drop(app);
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
    BillScheduleHandle { stop, task }
}
