//! Payment events: what hosted code and merchant webhooks are told when an order is paid,
//! closed or timed out, when WeChat reports a second payment for a paid order, when a
//! refund is asked for and settles, and when reconciliation finds the shop's books and
//! WeChat's bill disagreeing.
//!
//! Every transition writes its event in the transition's own transaction (the outbox,
//! [`crate::outbox`]): no transition without its event, no event without its transition,
//! and a repeat of a known payment writes nothing. Subscribers ([`PayEvents`]) are one
//! consumer of the outbox, webhook endpoints are others; each is handed each event **at
//! least once, in commit order per order**, by the outbox's dispatcher, never on the task
//! of the request that made the transition. An event may come again (a crash between a
//! delivery and its record, a subscriber that panicked): [`PayEvent::id`] names it, so a
//! consumer can tell a repeat.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::bills::Mismatch;
use crate::model::{PayLog, Refund};

/// The version of the event envelope ([`PayEvent`]) this build writes. A change that a
/// consumer could trip on (a field renamed or removed, a meaning changed) raises it;
/// added fields do not.
pub const EVENT_VERSION: u32 = 1;

/// What happened to an order. Its wire name (`order.paid`, ...) is [`PayEventKind::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayEventKind {
    /// A new order was committed. Not in [`PayEventKind::ALL`]: written only while
    /// `pays.models.PayLogModel` row hooks are present (its `onCreate`,
    /// [`crate::models::row_hooks`]) and handed only to them, never to a webhook or a
    /// [`PayEvents`] subscriber. Its `order_seq` is 0, so the order's other events keep
    /// their numbers.
    #[serde(rename = "order.created")]
    OrderCreated,
    /// `wait → success`.
    #[serde(rename = "order.paid")]
    Paid,
    /// `close|timeout → success`: paid after it was given up locally.
    #[serde(rename = "order.paid_after_close")]
    PaidAfterClose,
    /// `wait → close` (cancel).
    #[serde(rename = "order.closed")]
    Closed,
    /// `wait → timeout` (expired).
    #[serde(rename = "order.timeout")]
    TimedOut,
    /// Not a transition: WeChat reported a second payment, under another transaction, for
    /// an order already paid. The order keeps its first transaction; the second is kept in
    /// `pays_payment_conflict` and named by [`PayEvent::conflicting_transaction_id`].
    /// Someone must refund it. One event per conflicting transaction.
    #[serde(rename = "order.payment_conflict")]
    PaymentConflict,
    /// A refund was asked for (`pays_refund` row written, `processing`); the money is held
    /// for it. WeChat's answer comes as one of the other `refund.*` events.
    #[serde(rename = "refund.requested")]
    RefundRequested,
    /// `processing|change → success`: the money is back with the buyer.
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
    /// `processing → change`: WeChat could not pay it back the original way; settle it on
    /// WeChat's merchant platform.
    #[serde(rename = "refund.abnormal")]
    RefundAbnormal,
    /// `processing|change → closed`: refused when asked (not enough balance...) or closed
    /// by WeChat; nothing was refunded and the money it held may be refunded again.
    #[serde(rename = "refund.failed")]
    RefundFailed,
    /// Not a transition: reconciliation found the shop's books and WeChat's bill
    /// disagreeing about an order or refund, and a live query did not settle it.
    #[serde(rename = "reconcile.mismatch")]
    ReconcileMismatch,
}

impl PayEventKind {
    /// Every kind webhooks and subscribers get, in the order the docs list them (all but
    /// [`PayEventKind::OrderCreated`], the row hooks' own).
    pub const ALL: [PayEventKind; 10] = [
        PayEventKind::Paid,
        PayEventKind::PaidAfterClose,
        PayEventKind::Closed,
        PayEventKind::TimedOut,
        PayEventKind::PaymentConflict,
        PayEventKind::RefundRequested,
        PayEventKind::RefundSucceeded,
        PayEventKind::RefundAbnormal,
        PayEventKind::RefundFailed,
        PayEventKind::ReconcileMismatch,
    ];

    /// The wire name: `order.paid`, `order.paid_after_close`, `order.closed`,
    /// `order.timeout`, `order.payment_conflict`, `refund.requested`, `refund.succeeded`,
    /// `refund.abnormal`, `refund.failed`, `reconcile.mismatch`.
    pub fn name(self) -> &'static str {
        match self {
            PayEventKind::OrderCreated => "order.created",
            PayEventKind::Paid => "order.paid",
            PayEventKind::PaidAfterClose => "order.paid_after_close",
            PayEventKind::Closed => "order.closed",
            PayEventKind::TimedOut => "order.timeout",
            PayEventKind::PaymentConflict => "order.payment_conflict",
            PayEventKind::RefundRequested => "refund.requested",
            PayEventKind::RefundSucceeded => "refund.succeeded",
            PayEventKind::RefundAbnormal => "refund.abnormal",
            PayEventKind::RefundFailed => "refund.failed",
            PayEventKind::ReconcileMismatch => "reconcile.mismatch",
        }
    }

    /// Whether only the row hooks take it ([`PayEventKind::OrderCreated`]).
    pub fn is_row_hook_only(self) -> bool {
        self == PayEventKind::OrderCreated
    }

    /// The kind of a wire name, among [`PayEventKind::ALL`] (what webhooks can ask for).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether it reports money received (`order.paid`, `order.paid_after_close`).
    pub fn is_payment(self) -> bool {
        matches!(self, PayEventKind::Paid | PayEventKind::PaidAfterClose)
    }

    /// Whether it reports a refund's transition (`refund.*`).
    pub fn is_refund(self) -> bool {
        matches!(
            self,
            PayEventKind::RefundRequested
                | PayEventKind::RefundSucceeded
                | PayEventKind::RefundAbnormal
                | PayEventKind::RefundFailed
        )
    }
}

impl std::fmt::Display for PayEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One event: the envelope every consumer gets, and (as JSON) the body every webhook
/// receives and `pays_event.payload` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayEvent {
    /// The event's id, a UUIDv7 (sortable by creation time). The same on every delivery
    /// of the event: a consumer that has seen it may skip it.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: PayEventKind,
    /// The envelope's version ([`EVENT_VERSION`] when written by this build).
    pub version: u32,
    /// When the transition was committed (UTC, RFC 3339).
    pub created_at: DateTime<Utc>,
    /// The order's event number: 1 for its first event, then 2, ... A consumer that
    /// sees a number it already passed holds a repeat.
    pub order_seq: i32,
    /// The merchant order number the event is about (the bill's `out_trade_no` for a
    /// mismatch about an order the shop does not have).
    #[serde(default)]
    pub order_id: String,
    /// The order as the transition committed it (with its refund totals). Present on
    /// every `order.*` and `refund.*` event; on `reconcile.mismatch`, only when the shop
    /// has the order (a payment found only in WeChat's bill has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<PayLog>,
    /// For `refund.*`: the refund as the transition committed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
    /// For [`PayEventKind::PaymentConflict`]: the transaction id of the second payment
    /// (the order's own is `order.transaction_id`). Absent for every other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicting_transaction_id: Option<String>,
    /// For [`PayEventKind::ReconcileMismatch`]: what disagrees, between what the shop, the
    /// bill and a live query said. Absent for every other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

type Subscriber = Arc<dyn Fn(&PayEvent) + Send + Sync>;

/// The subscriber list, shared by every pay element of an app (a service).
#[derive(Default)]
pub struct PayEvents {
    subscribers: RwLock<Vec<Subscriber>>,
}

impl std::fmt::Debug for PayEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayEvents")
            .field("subscribers", &self.subscribers.read().len())
            .finish()
    }
}

impl PayEvents {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `subscriber` for every event. It runs on the outbox's dispatcher, one event
    /// after another: keep it short (spawn for slow work). A panic counts as a failed
    /// delivery: the event is handed to every subscriber again later (so a subscriber
    /// must tolerate a repeat: [`PayEvent::id`]).
    pub fn subscribe(&self, subscriber: impl Fn(&PayEvent) + Send + Sync + 'static) {
        self.subscribers.write().push(Arc::new(subscriber));
    }

    /// Whether anyone is subscribed.
    pub fn has_subscribers(&self) -> bool {
        !self.subscribers.read().is_empty()
    }

    /// Calls `subscriber` only for payments (`Paid` and `PaidAfterClose`).
    pub fn on_paid(&self, subscriber: impl Fn(&PayEvent) + Send + Sync + 'static) {
        self.subscribe(move |event| {
            if event.kind.is_payment() {
                subscriber(event);
            }
        });
    }

    /// Calls `subscriber` only for payment conflicts (a second payment for a paid order).
    pub fn on_payment_conflict(&self, subscriber: impl Fn(&PayEvent) + Send + Sync + 'static) {
        self.subscribe(move |event| {
            if event.kind == PayEventKind::PaymentConflict {
                subscriber(event);
            }
        });
    }

    /// Calls `subscriber` only for closes and time-outs.
    pub fn on_closed(&self, subscriber: impl Fn(&PayEvent) + Send + Sync + 'static) {
        self.subscribe(move |event| {
            if matches!(event.kind, PayEventKind::Closed | PayEventKind::TimedOut) {
                subscriber(event);
            }
        });
    }

    /// Hands `event` to every subscriber. A panicking subscriber is logged and does not
    /// stop the others; the result says whether every subscriber returned (the outbox
    /// then counts the event delivered) or which one panicked first.
    pub fn emit(&self, event: &PayEvent) -> Result<(), SubscriberPanicked> {
        if event.kind.is_row_hook_only() {
            return Ok(());
        }
        let subscribers: Vec<Subscriber> = self.subscribers.read().clone();
        let mut outcome = Ok(());
        for (index, subscriber) in subscribers.into_iter().enumerate() {
            if catch_unwind(AssertUnwindSafe(|| subscriber(event))).is_err() {
                tracing::error!(
                    order_id = %event.order_id,
                    event_id = %event.id,
                    kind = %event.kind,
                    subscriber = index,
                    "a pay event subscriber panicked; the event will be handed over again"
                );
                if outcome.is_ok() {
                    outcome = Err(SubscriberPanicked { index });
                }
            }
        }
        outcome
    }
}

/// A subscriber panicked while handling an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pay event subscriber #{index} panicked")]
pub struct SubscriberPanicked {
    /// Its position in subscription order.
    pub index: usize,
}
