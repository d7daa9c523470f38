//! What the pays family counts and times, through the [`metrics`] facade.
//!
//! This module owns the names and the label sets of every metric jit-pays records; the
//! code that records calls the functions here (one line at each place), never the facade
//! directly. Until a host installs a recorder (the `jit` binary's `GET /metrics` does) a
//! call records nothing, and costs a load of the global recorder and a branch. With the
//! Prometheus recorder, a counter costs one lookup in a sharded map of the registered
//! series plus an atomic add: labels here are `&'static str` from small fixed sets, never
//! text from outside (no order ids, no reasons, no URLs), so the number of series is
//! bounded whatever arrives.
//!
//! Gauges that describe the database (waiting orders, orders past their expiry, the
//! outbox's backlog) are computed when scraped: [`StoreGauges::refresh`], at most once
//! per interval. docs/operations.md says what each metric means.

use std::time::{Duration, Instant};

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use parking_lot::Mutex;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::db::entity::{PayStatus, pay_log};
use crate::db::outbox::{HOOKS_CONSUMER, pending_deliveries};
use crate::db::store::{StoreError, now};
use crate::db::{PayStore, outbox::AttemptResult};
use crate::events::{PayEvent, PayEventKind};
use crate::model::{NotifyOutcome, NotifyReply, RefusalReason};
use crate::reconciler::ReconcileReport;

/// Notifies handled, by `kind` (`payment`, `refund`) and `outcome`.
pub const NOTIFIES: &str = "jit_pays_notifies_total";
/// Refused notifies, by `kind` and `reason` ([`RefusalReason`]).
pub const NOTIFY_REFUSALS: &str = "jit_pays_notify_refusals_total";
/// Events committed, by `event` ([`PayEventKind`]'s name: `order.paid`, `refund.failed`…).
pub const TRANSITIONS: &str = "jit_pays_transitions_total";
/// Calls to WeChat Pay, by `endpoint`, `result` and `err_code`.
pub const GATEWAY_CALLS: &str = "jit_pays_gateway_calls_total";
/// How long a call to WeChat Pay took, by `endpoint`.
pub const GATEWAY_CALL_SECONDS: &str = "jit_pays_gateway_call_duration_seconds";
/// Payments per group commit of the notify writer.
pub const WRITER_BATCH_SIZE: &str = "jit_pays_notify_writer_batch_size";
/// How long a group commit took (statements and commit), by `result`.
pub const WRITER_COMMIT_SECONDS: &str = "jit_pays_notify_writer_commit_duration_seconds";
/// Order-cache lookups on the notify path, by `result` (`hit`, `miss`).
pub const ORDER_CACHE_LOOKUPS: &str = "jit_pays_order_cache_lookups_total";
/// Reconciler passes, by `result` (`ok`, `failed`).
pub const RECONCILER_ROUNDS: &str = "jit_pays_reconciler_rounds_total";
/// How long a reconciler pass took.
pub const RECONCILER_ROUND_SECONDS: &str = "jit_pays_reconciler_round_duration_seconds";
/// Orders and refunds a pass looked at, by `outcome`.
pub const RECONCILER_ITEMS: &str = "jit_pays_reconciler_items_total";
/// How overdue the most overdue waiting order is for its reconciler check (computed at
/// scrape; orders a pass has claimed are not overdue).
pub const RECONCILER_LAG_SECONDS: &str = "jit_pays_reconciler_lag_seconds";
/// When the last pass ended (Unix time).
pub const RECONCILER_LAST_ROUND: &str = "jit_pays_reconciler_last_round_timestamp_seconds";
/// Event delivery attempts, by `consumer` (`hooks`, `webhook`) and `result`.
pub const EVENT_DELIVERIES: &str = "jit_pays_event_deliveries_total";
/// Refund requests sent to WeChat, by `outcome`.
pub const REFUND_REQUESTS: &str = "jit_pays_refund_requests_total";
/// Orders in `wait` (computed at scrape).
pub const ORDERS_WAITING: &str = "jit_pays_orders_waiting";
/// Orders still in `wait` past their expiry (computed at scrape).
pub const ORDERS_PAST_EXPIRY: &str = "jit_pays_orders_past_expiry";
/// Pending event deliveries, by `consumer` (computed at scrape).
pub const OUTBOX_PENDING: &str = "jit_pays_outbox_pending_deliveries";

/// The histograms' bucket bounds, for the host's recorder: `(metric, bounds)`.
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    (
        GATEWAY_CALL_SECONDS,
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ],
    ),
    (
        WRITER_BATCH_SIZE,
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
    ),
    (
        WRITER_COMMIT_SECONDS,
        &[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ],
    ),
    (
        RECONCILER_ROUND_SECONDS,
        &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0],
    ),
];

/// The gateway endpoints jit-pays calls, as labelled.
const ENDPOINTS: [&str; 12] = [
    "unifiedorder",
    "orderquery",
    "closeorder",
    "refund",
    "refundquery",
    "downloadbill",
    "v3_prepay",
    "v3_query",
    "v3_close",
    "v3_refund",
    "v3_refund_query",
    "v3_tradebill",
];

/// Describes every metric (HELP lines) and registers the series of the fixed label sets
/// at zero, so dashboards and alert rules see them (and `rate()` works) before the first
/// event. A host calls it once, after installing its recorder.
pub fn describe() {
    describe_counter!(
        NOTIFIES,
        "Notifies from WeChat Pay handled, by kind and outcome."
    );
    describe_counter!(
        NOTIFY_REFUSALS,
        "Notifies refused (nothing changed), by kind and reason."
    );
    describe_counter!(
        TRANSITIONS,
        "Events committed with their transition, by type."
    );
    describe_counter!(
        GATEWAY_CALLS,
        "Calls to WeChat Pay, by endpoint, result and err_code."
    );
    describe_histogram!(
        GATEWAY_CALL_SECONDS,
        Unit::Seconds,
        "Latency of calls to WeChat Pay, by endpoint."
    );
    describe_histogram!(
        WRITER_BATCH_SIZE,
        Unit::Count,
        "Payments committed per group commit of the notify writer."
    );
    describe_histogram!(
        WRITER_COMMIT_SECONDS,
        Unit::Seconds,
        "Duration of a notify writer group commit (statements and commit), by result."
    );
    describe_counter!(
        ORDER_CACHE_LOOKUPS,
        "Order-cache lookups routing notifies, by result (hit, miss)."
    );
    describe_counter!(RECONCILER_ROUNDS, "Reconciler passes, by result.");
    describe_histogram!(
        RECONCILER_ROUND_SECONDS,
        Unit::Seconds,
        "Duration of a reconciler pass."
    );
    describe_counter!(
        RECONCILER_ITEMS,
        "Orders and refunds the reconciler looked at, by outcome."
    );
    describe_gauge!(
        RECONCILER_LAG_SECONDS,
        Unit::Seconds,
        "How overdue the most overdue waiting order is for its reconciler check (computed at scrape)."
    );
    describe_gauge!(
        RECONCILER_LAST_ROUND,
        Unit::Seconds,
        "Unix time at which the last reconciler pass ended."
    );
    describe_counter!(
        EVENT_DELIVERIES,
        "Event delivery attempts, by consumer (hooks, webhook) and result."
    );
    describe_counter!(
        REFUND_REQUESTS,
        "Refund requests sent to WeChat, by outcome."
    );
    describe_gauge!(ORDERS_WAITING, "Orders in wait (computed at scrape).");
    describe_gauge!(
        ORDERS_PAST_EXPIRY,
        "Orders still in wait past their expiry (computed at scrape)."
    );
    describe_gauge!(
        OUTBOX_PENDING,
        "Event deliveries pending, by consumer (computed at scrape)."
    );

    for outcome in PAYMENT_NOTIFY_OUTCOMES {
        counter!(NOTIFIES, "kind" => "payment", "outcome" => outcome).absolute(0);
    }
    for outcome in REFUND_NOTIFY_OUTCOMES {
        counter!(NOTIFIES, "kind" => "refund", "outcome" => outcome).absolute(0);
    }
    for reason in RefusalReason::ALL {
        for kind in ["payment", "refund"] {
            counter!(NOTIFY_REFUSALS, "kind" => kind, "reason" => reason.as_str()).absolute(0);
        }
    }
    for kind in PayEventKind::ALL {
        counter!(TRANSITIONS, "event" => kind.name()).absolute(0);
    }
    for endpoint in ENDPOINTS {
        counter!(GATEWAY_CALLS, "endpoint" => endpoint, "result" => "ok", "err_code" => "")
            .absolute(0);
    }
    for result in ["hit", "miss"] {
        counter!(ORDER_CACHE_LOOKUPS, "result" => result).absolute(0);
    }
    for result in ["ok", "failed"] {
        counter!(RECONCILER_ROUNDS, "result" => result).absolute(0);
    }
    for outcome in RECONCILER_OUTCOMES {
        counter!(RECONCILER_ITEMS, "outcome" => outcome).absolute(0);
    }
    for consumer in ["hooks", "webhook"] {
        for result in ["delivered", "failed"] {
            counter!(EVENT_DELIVERIES, "consumer" => consumer, "result" => result).absolute(0);
        }
    }
    for outcome in REFUND_OUTCOMES {
        counter!(REFUND_REQUESTS, "outcome" => outcome).absolute(0);
    }
}

/// The `outcome` labels of [`NOTIFIES`] a payment notify can have.
const PAYMENT_NOTIFY_OUTCOMES: [&str; 7] = [
    "paid",
    "paid_after_close",
    "already_paid",
    "not_paid",
    "payment_conflict",
    "rejected",
    "failed",
];

/// The `outcome` labels of [`NOTIFIES`] a refund notify can have.
const REFUND_NOTIFY_OUTCOMES: [&str; 3] = ["refund", "rejected", "failed"];

/// Which notify URL a notify came to: a payment's or a refund's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotifyKind {
    Payment,
    Refund,
}

/// Counts a handled notify: its outcome and, for a refusal, the kind of refusal.
pub(crate) fn notify(kind: NotifyKind, reply: &NotifyReply) {
    let kind = match kind {
        NotifyKind::Payment => "payment",
        NotifyKind::Refund => "refund",
    };
    let outcome = match reply.outcome() {
        NotifyOutcome::Paid { .. } => "paid",
        NotifyOutcome::PaidAfterClose { .. } => "paid_after_close",
        NotifyOutcome::AlreadyPaid { .. } => "already_paid",
        NotifyOutcome::NotPaid { .. } => "not_paid",
        NotifyOutcome::PaymentConflict { .. } => "payment_conflict",
        NotifyOutcome::Refund { .. } => "refund",
        NotifyOutcome::Rejected { kind: reason, .. } => {
            counter!(NOTIFY_REFUSALS, "kind" => kind, "reason" => reason.as_str()).increment(1);
            "rejected"
        }
        NotifyOutcome::Failed { .. } => "failed",
    };
    counter!(NOTIFIES, "kind" => kind, "outcome" => outcome).increment(1);
}

/// Counts the events of a transaction that has just committed.
pub(crate) fn transitions(events: &[PayEvent]) {
    // `order.created` is the row hooks' own event, not a transition of the state machine.
    for event in events.iter().filter(|event| !event.kind.is_row_hook_only()) {
        counter!(TRANSITIONS, "event" => event.kind.name()).increment(1);
    }
}

/// Times `call` to WeChat Pay's `endpoint` (one of [`ENDPOINTS`]) and counts its result;
/// hands the result back unchanged. Either client's calls.
pub(crate) async fn gateway_call<T, E: GatewayError>(
    endpoint: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    let (outcome, err_code) = match &result {
        Ok(_) => ("ok", String::new()),
        Err(error) => error.labels(),
    };
    histogram!(GATEWAY_CALL_SECONDS, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    counter!(GATEWAY_CALLS, "endpoint" => endpoint, "result" => outcome, "err_code" => err_code)
        .increment(1);
    result
}

/// A client's error as the gateway-call counter labels it.
pub(crate) trait GatewayError {
    /// `(result, err_code)` of a failed call. The code is one the client knows (a fixed
    /// list) or `OTHER`: WeChat's text never becomes a label.
    fn labels(&self) -> (&'static str, String);
}

impl GatewayError for wechatpay_v2::Error {
    fn labels(&self) -> (&'static str, String) {
        use wechatpay_v2::Error as E;
        let result = match self {
            E::Transport(_) => "transport_error",
            E::Protocol { .. } => "protocol_error",
            E::Business { .. } => "business_error",
            E::InvalidSignature { .. } | E::Malformed { .. } | E::Xml { .. } | E::Bill(_) => {
                "bad_response"
            }
            _ => "invalid_request",
        };
        let err_code = match self.err_code() {
            None => String::new(),
            Some(wechatpay_v2::ErrCode::Other(_)) => "OTHER".to_owned(),
            Some(code) => code.as_str().to_owned(),
        };
        (result, err_code)
    }
}

impl GatewayError for wechatpay_v3::Error {
    fn labels(&self) -> (&'static str, String) {
        use wechatpay_v3::Error as E;
        let result = match self {
            E::Transport(_) => "transport_error",
            E::Api { .. } => "business_error",
            E::InvalidSignature { .. }
            | E::Malformed { .. }
            | E::Decrypt { .. }
            | E::BillDigest { .. } => "bad_response",
            _ => "invalid_request",
        };
        let err_code = match self.code() {
            None => String::new(),
            Some(wechatpay_v3::ErrorCode::Other(_)) => "OTHER".to_owned(),
            Some(code) => code.as_str().to_owned(),
        };
        (result, err_code)
    }
}

/// A group commit of the notify writer: how many payments, how long, whether it held.
pub(crate) fn writer_commit(payments: usize, took: Duration, committed: bool) {
    let result = if committed { "ok" } else { "failed" };
    histogram!(WRITER_COMMIT_SECONDS, "result" => result).record(took.as_secs_f64());
    if committed {
        histogram!(WRITER_BATCH_SIZE).record(payments as f64);
    }
}

/// An order-cache lookup routing a notify.
pub(crate) fn order_cache(hit: bool) {
    counter!(ORDER_CACHE_LOOKUPS, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

/// Every `outcome` label of [`RECONCILER_ITEMS`], in [`ReconcileReport`]'s order.
const RECONCILER_OUTCOMES: [&str; 8] = [
    "order_paid",
    "order_closed",
    "order_timed_out",
    "order_waiting",
    "order_failed",
    "refund_settled",
    "refund_waiting",
    "refund_failed",
];

/// A reconciler pass: its report (or failure) and its duration.
pub(crate) fn reconciler_round(report: Option<&ReconcileReport>, took: Duration) {
    let result = if report.is_some() { "ok" } else { "failed" };
    counter!(RECONCILER_ROUNDS, "result" => result).increment(1);
    histogram!(RECONCILER_ROUND_SECONDS).record(took.as_secs_f64());
    gauge!(RECONCILER_LAST_ROUND).set(now().timestamp_millis() as f64 / 1000.0);
    if let Some(report) = report {
        let counts = [
            report.paid,
            report.closed,
            report.timed_out,
            report.waiting,
            report.failed,
            report.refunds_settled,
            report.refunds_waiting,
            report.refunds_failed,
        ];
        for (outcome, count) in RECONCILER_OUTCOMES.into_iter().zip(counts) {
            if count > 0 {
                counter!(RECONCILER_ITEMS, "outcome" => outcome).increment(count as u64);
            }
        }
    }
}

/// The attempts of one claim of `consumer` (`hooks` or a webhook's URL, which is not a
/// label: every webhook counts as `webhook`).
pub(crate) fn deliveries(consumer: &str, results: &[AttemptResult]) {
    let consumer = consumer_label(consumer);
    let failed = results
        .iter()
        .filter(|result| result.error.is_some())
        .count() as u64;
    let delivered = results.len() as u64 - failed;
    counter!(EVENT_DELIVERIES, "consumer" => consumer, "result" => "delivered")
        .increment(delivered);
    counter!(EVENT_DELIVERIES, "consumer" => consumer, "result" => "failed").increment(failed);
}

fn consumer_label(consumer: &str) -> &'static str {
    if consumer == HOOKS_CONSUMER {
        "hooks"
    } else {
        "webhook"
    }
}

/// Every `outcome` label of [`REFUND_REQUESTS`].
const REFUND_OUTCOMES: [&str; 4] = ["accepted", "refused", "unknown", "mismatch"];

/// What became of a refund request sent to WeChat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefundRequestOutcome {
    /// WeChat took it (`processing` until it reports the result).
    Accepted,
    /// WeChat refused it for good: the refund is closed.
    Refused,
    /// No usable answer: the reconciler queries it.
    Unknown,
    /// A signed answer about another refund: left for the query.
    Mismatch,
}

/// Counts a refund request's outcome.
pub(crate) fn refund_request(outcome: RefundRequestOutcome) {
    let outcome = match outcome {
        RefundRequestOutcome::Accepted => "accepted",
        RefundRequestOutcome::Refused => "refused",
        RefundRequestOutcome::Unknown => "unknown",
        RefundRequestOutcome::Mismatch => "mismatch",
    };
    counter!(REFUND_REQUESTS, "outcome" => outcome).increment(1);
}

/// The gauges computed from the database when scraped, at most once per `interval`: a
/// scrape storm costs the database nothing more.
#[derive(Debug)]
pub struct StoreGauges {
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl StoreGauges {
    /// Gauges refreshed at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        StoreGauges {
            interval,
            last: Mutex::new(None),
        }
    }

    /// Sets [`ORDERS_WAITING`], [`ORDERS_PAST_EXPIRY`], [`RECONCILER_LAG_SECONDS`] and
    /// [`OUTBOX_PENDING`] from `store`, unless they were set less than the interval ago:
    /// two COUNTs and one indexed read on the `(status, next_check_at)` index, one COUNT
    /// of pending deliveries.
    pub async fn refresh(&self, store: &PayStore) -> Result<(), StoreError> {
        {
            let mut last = self.last.lock();
            if last.is_some_and(|at| at.elapsed() < self.interval) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let waiting =
            || pay_log::Entity::find().filter(pay_log::Column::Status.eq(PayStatus::Wait.as_str()));
        let connection = store.connection();
        let at = now();
        let all = waiting()
            .count(connection)
            .await
            .map_err(|source| StoreError::Db {
                doing: "counting waiting orders",
                source,
            })?;
        let expired = waiting()
            .filter(pay_log::Column::ExpiresAt.lt(at))
            .count(connection)
            .await
            .map_err(|source| StoreError::Db {
                doing: "counting orders past their expiry",
                source,
            })?;
        let most_overdue = waiting()
            .filter(pay_log::Column::NextCheckAt.lte(at))
            .order_by_asc(pay_log::Column::NextCheckAt)
            .one(connection)
            .await
            .map_err(|source| StoreError::Db {
                doing: "finding the most overdue order",
                source,
            })?;
        let lag = most_overdue.map_or(0.0, |order| {
            (at - order.next_check_at).num_milliseconds().max(0) as f64 / 1000.0
        });
        let pending = pending_deliveries(connection).await?;
        gauge!(RECONCILER_LAG_SECONDS).set(lag);
        gauge!(ORDERS_WAITING).set(all as f64);
        gauge!(ORDERS_PAST_EXPIRY).set(expired as f64);
        let (mut hooks, mut webhooks) = (0u64, 0u64);
        for (consumer, count) in pending {
            match consumer_label(&consumer) {
                "hooks" => hooks += count,
                _ => webhooks += count,
            }
        }
        gauge!(OUTBOX_PENDING, "consumer" => "hooks").set(hooks as f64);
        gauge!(OUTBOX_PENDING, "consumer" => "webhook").set(webhooks as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_keep_their_wire_text_and_others_are_folded() {
        let business = |code: &str| wechatpay_v2::Error::Business {
            endpoint: "/pay/refundquery",
            code: wechatpay_v2::ErrCode::parse(code),
            description: "free text".into(),
        };
        assert_eq!(
            business("NOTENOUGH").labels(),
            ("business_error", "NOTENOUGH".to_owned())
        );
        assert_eq!(
            business("SOMETHING_NEW order 123").labels(),
            ("business_error", "OTHER".to_owned())
        );
    }

    #[test]
    fn refusal_labels_are_distinct() {
        let labels: std::collections::HashSet<_> = RefusalReason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .collect();
        assert_eq!(labels.len(), RefusalReason::ALL.len());
    }
}
