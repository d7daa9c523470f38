//! Notifies: building them as WeChat does and delivering them on WeChat's retry schedule.
//!
//! A notify is delivered at once, then again after each gap of [`NOTIFY_RETRY_SCHEDULE`]
//! (divided by the configured time scale) until the merchant answers an XML document
//! whose `return_code` is `SUCCESS`. Anything else — another body, an HTTP error, no
//! answer within the timeout — counts as a failed delivery.
//!
//! Every notify is counted as pending from the moment it is dispatched until it needs no
//! further delivery (acknowledged, dropped, out of retries, or the simulator stopped), and
//! the count is part of the inspection ([`Inspection::pending_notifies`](crate::Inspection)):
//! at zero, nothing more will be delivered until the next payment or refund, which is how a
//! test shows that a notify was *not* sent again without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use wechatpay_v2::time;
use wechatpay_v2::{ApiKey, Params, RefundStatus, SignType};

use crate::config::V3Mode;
use crate::fault::{Endpoint, FaultControl, NotifyFaults};
use crate::inspect::{InspectLog, NotifyRecord};
use crate::store::{Order, Refund};
use crate::v3_keys::Platform;

/// WeChat's gaps between notify deliveries: after the first delivery fails it retries
/// 15 s later, then 15 s, 30 s, 3 min, 10 min, 20 min, 30 min, 30 min, 30 min, 60 min,
/// 3 h, 3 h, 3 h, 6 h, 6 h after each previous failure (16 deliveries, about 24 h).
pub const NOTIFY_RETRY_SCHEDULE: [Duration; 15] = [
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(3 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(20 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
];

/// How long reordered notifies wait for the window to fill before being released anyway.
const REORDER_HOLD: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotifyKind {
    Pay,
    Refund,
}

impl NotifyKind {
    fn name(self) -> &'static str {
        match self {
            NotifyKind::Pay => "pay",
            NotifyKind::Refund => "refund",
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            NotifyKind::Pay => Endpoint::PayNotify,
            NotifyKind::Refund => Endpoint::RefundNotify,
        }
    }
}

/// One notify to deliver: the body is built (and, in V2, signed) once, every delivery
/// repeats it.
#[derive(Debug, Clone)]
pub(crate) struct NotifyJob {
    pub kind: NotifyKind,
    pub mch_id: String,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    pub url: String,
    pub body: String,
    pub wire: NotifyWire,
}

/// The protocol a notify speaks, which decides its headers and what acknowledges it.
#[derive(Debug, Clone)]
pub(crate) enum NotifyWire {
    /// XML; acknowledged by `return_code=SUCCESS`.
    V2,
    /// JSON with `Wechatpay-*` signature headers made afresh for each delivery (a retry
    /// hours later must pass the receiver's replay window); acknowledged by any 2xx
    /// (WeChat documents 200 and 204).
    V3 {
        platform: Arc<Platform>,
        mode: V3Mode,
        /// A `WECHATPAY/SIGNTEST/` probe: delivered once, never retried.
        probe: bool,
    },
}

impl NotifyWire {
    fn content_type(&self) -> &'static str {
        match self {
            NotifyWire::V2 => "text/xml; charset=utf-8",
            NotifyWire::V3 { .. } => "application/json",
        }
    }

    /// The signature headers of one delivery (none in V2).
    fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        let NotifyWire::V3 {
            platform,
            mode,
            probe,
        } = self
        else {
            return Vec::new();
        };
        match platform.signer(*mode).sign(body) {
            Ok(mut headers) => {
                if *probe {
                    headers.signature = format!(
                        "{}{}",
                        wechatpay_v3::verify::SIGNTEST_PREFIX,
                        headers.signature
                    );
                }
                headers.to_pairs()
            }
            Err(error) => {
                tracing::error!(%error, "a V3 notify cannot be signed; sent unsigned");
                Vec::new()
            }
        }
    }

    fn is_acknowledgement(&self, status: reqwest::StatusCode, body: &[u8]) -> bool {
        match self {
            NotifyWire::V2 => status.is_success() && is_acknowledgement(body),
            NotifyWire::V3 { .. } => status.is_success(),
        }
    }

    fn is_probe(&self) -> bool {
        matches!(self, NotifyWire::V3 { probe: true, .. })
    }
}

impl NotifyJob {
    /// How the inspection log names it: `pay`, `refund`, `pay_v3`, `refund_v3`, or
    /// `signtest_probe`.
    pub fn kind_name(&self) -> &'static str {
        match (&self.wire, self.kind) {
            (NotifyWire::V2, kind) => kind.name(),
            (NotifyWire::V3 { probe: true, .. }, _) => "signtest_probe",
            (NotifyWire::V3 { .. }, NotifyKind::Pay) => "pay_v3",
            (NotifyWire::V3 { .. }, NotifyKind::Refund) => "refund_v3",
        }
    }
}

/// The payment result notify of a paid order, signed like the order's creating call.
pub(crate) fn payment_notify(order: &Order, key: &ApiKey) -> NotifyJob {
    let mut params = Params::new();
    let mut put = |name: &str, value: &str| {
        params.insert(name.to_string(), value.to_string());
    };
    put("return_code", "SUCCESS");
    put("return_msg", "OK");
    put("appid", &order.appid);
    put("mch_id", &order.mch_id);
    if let Some(device_info) = &order.device_info {
        put("device_info", device_info);
    }
    put("nonce_str", &wechatpay_v2::nonce_str());
    put("result_code", "SUCCESS");
    put("openid", order.openid.as_deref().unwrap_or_default());
    put("is_subscribe", "N");
    put("trade_type", &order.trade_type);
    put("bank_type", "OTHERS");
    put("total_fee", &order.total_fee.to_fen_string());
    put("fee_type", &order.fee_type);
    put("cash_fee", &order.total_fee.to_fen_string());
    put("cash_fee_type", "CNY");
    put(
        "transaction_id",
        order.transaction_id.as_deref().unwrap_or_default(),
    );
    put("out_trade_no", &order.out_trade_no);
    if let Some(attach) = &order.attach {
        put("attach", attach);
    }
    put("time_end", order.time_end.as_deref().unwrap_or_default());
    let sign_type = order
        .sign_type
        .as_deref()
        .and_then(|name| name.parse().ok())
        .unwrap_or(SignType::Md5);
    wechatpay_v2::sign_params(&mut params, sign_type, key);
    NotifyJob {
        kind: NotifyKind::Pay,
        mch_id: order.mch_id.clone(),
        out_trade_no: order.out_trade_no.clone(),
        out_refund_no: None,
        url: order.notify_url.clone(),
        body: wechatpay_v2::xml::encode(&params),
        wire: NotifyWire::V2,
    }
}

/// The refund result notify: unsigned, its details encrypted in `req_info` as WeChat does.
pub(crate) fn refund_notify(order: &Order, refund: &Refund, url: &str, key: &ApiKey) -> NotifyJob {
    let mut details = Params::new();
    let mut put = |name: &str, value: &str| {
        details.insert(name.to_string(), value.to_string());
    };
    put("out_refund_no", &refund.out_refund_no);
    put("out_trade_no", &order.out_trade_no);
    put("refund_account", "REFUND_SOURCE_UNSETTLED_FUNDS");
    put("refund_fee", &refund.refund_fee.to_fen_string());
    put("refund_id", &refund.refund_id);
    put("refund_recv_accout", "支付用户的零钱");
    put("refund_request_source", "API");
    // Sent once the refund has settled: SUCCESS, CHANGE or REFUNDCLOSE.
    put("refund_status", refund.ends_as.as_str());
    put("settlement_refund_fee", &refund.refund_fee.to_fen_string());
    put("settlement_total_fee", &order.total_fee.to_fen_string());
    // Only a refund that reached the payer has a success time.
    if refund.ends_as == RefundStatus::Success
        && let Some(settled_at) = refund.settles_at
    {
        put("success_time", &time::beijing_readable_time(settled_at));
    }
    put("total_fee", &order.total_fee.to_fen_string());
    put(
        "transaction_id",
        order.transaction_id.as_deref().unwrap_or_default(),
    );

    let mut params = Params::new();
    params.insert("return_code".into(), "SUCCESS".into());
    params.insert("appid".into(), order.appid.clone());
    params.insert("mch_id".into(), order.mch_id.clone());
    params.insert("nonce_str".into(), wechatpay_v2::nonce_str());
    params.insert(
        "req_info".into(),
        wechatpay_v2::encrypt_req_info(&details, key),
    );
    NotifyJob {
        kind: NotifyKind::Refund,
        mch_id: order.mch_id.clone(),
        out_trade_no: order.out_trade_no.clone(),
        out_refund_no: Some(refund.out_refund_no.clone()),
        url: url.to_string(),
        body: wechatpay_v2::xml::encode(&params),
        wire: NotifyWire::V2,
    }
}

/// Whether a merchant's answer acknowledges a notify.
fn is_acknowledgement(body: &[u8]) -> bool {
    wechatpay_v2::xml::decode(body)
        .ok()
        .and_then(|params| params.get("return_code").cloned())
        .is_some_and(|code| code == "SUCCESS")
}

/// One notify that may still be delivered: counted while alive, so dropping it (when the job
/// ends, or its task is cancelled at shutdown) is what lowers the count.
struct Pending(Arc<AtomicUsize>);

impl Pending {
    fn new(count: &Arc<AtomicUsize>) -> Pending {
        count.fetch_add(1, Ordering::SeqCst);
        Pending(Arc::clone(count))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A notify held back by the reorder fault.
struct Held {
    job: NotifyJob,
    faults: NotifyFaults,
    pending: Pending,
}

#[derive(Default)]
struct ReorderBuffer {
    /// Raised every time a batch is released, so a stale hold timer releases nothing.
    generation: u64,
    held: Vec<Held>,
}

/// Delivers notifies in the background.
pub(crate) struct Notifier {
    http: reqwest::Client,
    log: Arc<InspectLog>,
    faults: FaultControl,
    time_scale: f64,
    shutdown: watch::Receiver<bool>,
    reorder: Mutex<ReorderBuffer>,
    /// Notifies dispatched that may still be delivered.
    pending: Arc<AtomicUsize>,
}

impl Notifier {
    pub fn new(
        log: Arc<InspectLog>,
        faults: FaultControl,
        time_scale: f64,
        timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Notifier {
            http,
            log,
            faults,
            time_scale,
            shutdown,
            reorder: Mutex::new(ReorderBuffer::default()),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many dispatched notifies may still be delivered (first delivery or a retry).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Delivers in the background, following the notify faults in force.
    pub fn dispatch(self: &Arc<Self>, job: NotifyJob) {
        let faults = self.faults.for_notify(&job.mch_id, job.kind.endpoint());
        if faults.drop {
            self.record_dropped(&job, &faults);
            return;
        }
        let pending = Pending::new(&self.pending);
        if let Some(window) = faults.reorder_window {
            self.hold_for_reorder(
                Held {
                    job,
                    faults,
                    pending,
                },
                window as usize,
            );
            return;
        }
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            if job.wire.is_probe() {
                notifier.attempt(&job, 1, &faults).await;
            } else {
                notifier.deliver_until_acknowledged(job, faults, 1).await;
            }
            drop(pending);
        });
    }

    /// [`Notifier::dispatch`]es what `make` gives once `delay` has passed (unless the
    /// simulator stops first): made then, so it says what is true then, and nothing when
    /// `make` finds nothing left to tell. Counted as pending meanwhile.
    pub fn dispatch_after(
        self: &Arc<Self>,
        delay: Duration,
        make: impl FnOnce() -> Option<NotifyJob> + Send + 'static,
    ) {
        let pending = Pending::new(&self.pending);
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            if notifier.sleep(delay).await
                && let Some(job) = make()
            {
                notifier.dispatch(job);
            }
            // Counted by `dispatch` from here on.
            drop(pending);
        });
    }

    /// Makes the first delivery before returning (retries continue in the background).
    pub async fn deliver_first_now(self: &Arc<Self>, job: NotifyJob) {
        let faults = self.faults.for_notify(&job.mch_id, job.kind.endpoint());
        if faults.drop {
            self.record_dropped(&job, &faults);
            return;
        }
        let pending = Pending::new(&self.pending);
        if self.attempt(&job, 1, &faults).await {
            return;
        }
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            notifier.deliver_until_acknowledged(job, faults, 2).await;
            drop(pending);
        });
    }

    fn hold_for_reorder(self: &Arc<Self>, held: Held, window: usize) {
        let mut buffer = self.reorder.lock();
        buffer.held.push(held);
        if buffer.held.len() >= window {
            let batch = std::mem::take(&mut buffer.held);
            buffer.generation += 1;
            drop(buffer);
            self.release(batch);
        } else if buffer.held.len() == 1 {
            let generation = buffer.generation;
            let notifier = Arc::clone(self);
            tokio::spawn(async move {
                if !notifier.sleep(REORDER_HOLD).await {
                    return;
                }
                let batch = {
                    let mut buffer = notifier.reorder.lock();
                    if buffer.generation != generation {
                        return;
                    }
                    buffer.generation += 1;
                    std::mem::take(&mut buffer.held)
                };
                notifier.release(batch);
            });
        }
    }

    /// Delivers a held batch newest first: each first delivery completes before the next
    /// starts, so the merchant sees them in exactly that order.
    fn release(self: &Arc<Self>, mut batch: Vec<Held>) {
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            batch.reverse();
            for Held {
                job,
                faults,
                pending,
            } in batch
            {
                if notifier.attempt(&job, 1, &faults).await {
                    continue;
                }
                let retrier = Arc::clone(&notifier);
                tokio::spawn(async move {
                    retrier.deliver_until_acknowledged(job, faults, 2).await;
                    drop(pending);
                });
            }
        });
    }

    /// Delivers from attempt `first_attempt` on, waiting the scheduled gap before each
    /// retry, until acknowledged, the schedule runs out, or the simulator stops.
    async fn deliver_until_acknowledged(
        self: Arc<Self>,
        job: NotifyJob,
        faults: NotifyFaults,
        first_attempt: u32,
    ) {
        let mut attempt = first_attempt;
        loop {
            if attempt > 1 {
                let Some(gap) = NOTIFY_RETRY_SCHEDULE.get(attempt as usize - 2) else {
                    return;
                };
                if !self.sleep(gap.div_f64(self.time_scale)).await {
                    return;
                }
            }
            if self.attempt(&job, attempt, &faults).await {
                return;
            }
            attempt += 1;
        }
    }

    /// Sleeps unless the simulator stops first; `false` when it stopped.
    async fn sleep(&self, duration: Duration) -> bool {
        crate::sleep_unless_stopped(&self.shutdown, duration).await
    }

    /// One delivery (several copies at once when duplicated); whether any was acknowledged.
    async fn attempt(&self, job: &NotifyJob, attempt: u32, faults: &NotifyFaults) -> bool {
        if !faults.latency.is_zero() && !self.sleep(faults.latency).await {
            return false;
        }
        let copies = (1..=faults.copies).map(|copy| self.deliver_copy(job, attempt, copy, faults));
        futures::future::join_all(copies)
            .await
            .into_iter()
            .any(|acknowledged| acknowledged)
    }

    async fn deliver_copy(
        &self,
        job: &NotifyJob,
        attempt: u32,
        copy: u32,
        faults: &NotifyFaults,
    ) -> bool {
        let (t_ms, at) = self.log.now();
        let mut request = self
            .http
            .post(&job.url)
            .header(reqwest::header::CONTENT_TYPE, job.wire.content_type());
        for (name, value) in job.wire.headers(job.body.as_bytes()) {
            request = request.header(name, value);
        }
        let sent = request.body(job.body.clone()).send().await;
        let mut record = NotifyRecord {
            seq: 0,
            kind: job.kind_name().to_string(),
            mch_id: job.mch_id.clone(),
            out_trade_no: job.out_trade_no.clone(),
            out_refund_no: job.out_refund_no.clone(),
            url: job.url.clone(),
            attempt,
            copy,
            at,
            t_ms,
            body: job.body.clone(),
            outcome: String::new(),
            reply_status: None,
            reply_body: None,
            error: None,
            elapsed_ms: 0.0,
            faults: faults.applied.clone(),
        };
        let answer = match sent {
            Ok(response) => {
                let status = response.status();
                record.reply_status = Some(status.as_u16());
                response.bytes().await.map(|body| (status, body))
            }
            Err(error) => Err(error),
        };
        let acknowledged = match answer {
            Ok((status, body)) => {
                let acknowledged = job.wire.is_acknowledgement(status, &body);
                record.outcome = if acknowledged {
                    "acknowledged"
                } else if status.is_success() {
                    "rejected"
                } else {
                    "http_error"
                }
                .to_string();
                record.reply_body = Some(String::from_utf8_lossy(&body).into_owned());
                acknowledged
            }
            // Not sent, or no whole answer read back.
            Err(error) => {
                record.outcome = if error.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                }
                .to_string();
                record.error = Some(error.to_string());
                false
            }
        };
        record.elapsed_ms = self.log.millis_since(t_ms);
        tracing::debug!(
            kind = job.kind.name(),
            out_trade_no = %job.out_trade_no,
            attempt,
            copy,
            outcome = %record.outcome,
            "notify delivery"
        );
        self.log.record_notify(record);
        acknowledged
    }

    fn record_dropped(&self, job: &NotifyJob, faults: &NotifyFaults) {
        let (t_ms, at) = self.log.now();
        self.log.record_notify(NotifyRecord {
            seq: 0,
            kind: job.kind_name().to_string(),
            mch_id: job.mch_id.clone(),
            out_trade_no: job.out_trade_no.clone(),
            out_refund_no: job.out_refund_no.clone(),
            url: job.url.clone(),
            attempt: 1,
            copy: 1,
            at,
            t_ms,
            body: String::new(),
            outcome: "dropped".to_string(),
            reply_status: None,
            reply_body: None,
            error: None,
            elapsed_ms: 0.0,
            faults: faults.applied.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_wechats() {
        let total: Duration = NOTIFY_RETRY_SCHEDULE.iter().sum();
        assert_eq!(
            total,
            Duration::from_secs(24 * 3600 + 4 * 60),
            "about 24 h in all"
        );
        assert_eq!(NOTIFY_RETRY_SCHEDULE[3], Duration::from_secs(180));
    }

    #[test]
    fn only_a_success_document_acknowledges() {
        assert!(is_acknowledgement(
            b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
        ));
        assert!(!is_acknowledgement(b"SUCCESS"));
        assert!(!is_acknowledgement(
            b"<xml><return_code>FAIL</return_code></xml>"
        ));
        assert!(!is_acknowledgement(b""));
    }
}
