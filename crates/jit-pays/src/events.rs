//! Hooks for hosted code: be told when an order is paid, closed or timed out, or when
//! WeChat reports a second payment for a paid order.
//!
//! Only the caller whose conditional UPDATE moved the order announces the change, so each
//! subscriber hears of each transition once, whichever of notify, check, cancel and the
//! reconciler got there first. Announcing happens after the commit and in-process: a crash
//! between the two loses the announcement (the row is still right); subscribers that must
//! never miss one should also scan `PayLogModel` on start.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::model::PayLog;

/// What happened to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayEventKind {
    /// `wait → success`.
    Paid,
    /// `close|timeout → success`: paid after it was given up locally.
    PaidAfterClose,
    /// `wait → close` (cancel).
    Closed,
    /// `wait → timeout` (expired).
    TimedOut,
    /// Not a transition: WeChat reported a second payment, under another transaction, for
    /// an order already paid. The order keeps its first transaction; the second is kept in
    /// `pays_payment_conflict` and named by [`PayEvent::conflicting_transaction_id`].
    /// Someone must refund it. Announced once per conflicting transaction.
    PaymentConflict,
}

/// One transition (or payment conflict), with the order as it is right after it.
#[derive(Clone, Debug)]
pub struct PayEvent {
    /// What happened.
    pub kind: PayEventKind,
    /// The order after the transition.
    pub order: PayLog,
    /// For [`PayEventKind::PaymentConflict`]: the transaction id of the second payment
    /// (the order's own is `order.transaction_id`). `None` for every other kind.
    pub conflicting_transaction_id: Option<String>,
}

impl PayEvent {
    /// A transition of `order`.
    pub fn transition(kind: PayEventKind, order: PayLog) -> Self {
        PayEvent {
            kind,
            order,
            conflicting_transaction_id: None,
        }
    }
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

    /// Calls `subscriber` for every transition. It runs on the task that made the
    /// transition, before a notify is answered: keep it short (spawn for slow work).
    pub fn subscribe(&self, subscriber: impl Fn(&PayEvent) + Send + Sync + 'static) {
        self.subscribers.write().push(Arc::new(subscriber));
    }

    /// Calls `subscriber` only for payments (`Paid` and `PaidAfterClose`).
    pub fn on_paid(&self, subscriber: impl Fn(&PayEvent) + Send + Sync + 'static) {
        self.subscribe(move |event| {
            if matches!(
                event.kind,
                PayEventKind::Paid | PayEventKind::PaidAfterClose
            ) {
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

    /// Announces a transition. A panicking subscriber is logged and does not stop the
    /// others, nor the caller.
    pub fn emit(&self, event: &PayEvent) {
        let subscribers: Vec<Subscriber> = self.subscribers.read().clone();
        for subscriber in subscribers {
            if catch_unwind(AssertUnwindSafe(|| subscriber(event))).is_err() {
                tracing::error!(
                    order_id = %event.order.order_id,
                    kind = ?event.kind,
                    "a pay event subscriber panicked"
                );
            }
        }
    }
}
