//! The inspection log: what the gateway received and sent, for tests to assert on.
//!
//! Bounded: each list keeps the newest [`SimConfig::max_log_entries`](crate::SimConfig)
//! records. Times are given twice: wall-clock (`at`, Beijing time) for people, and
//! milliseconds since the simulator started (`t_ms`, monotonic) for arithmetic on gaps.
//! Each order in an [`Inspection`] also says how often, and when, `orderquery` named it
//! ([`Order::queries`]); clearing the log restarts those counts too.

use std::collections::VecDeque;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use parking_lot::Mutex;
use serde::Serialize;
use wechatpay_v2::time;

use crate::store::Order;

/// One API call and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// Position in the log (shared with notify attempts), increasing.
    pub seq: u64,
    /// When the request arrived.
    pub at: DateTime<FixedOffset>,
    /// Milliseconds since start when the request arrived.
    pub t_ms: f64,
    /// The request path.
    pub path: String,
    /// The endpoint name (`unifiedorder`, ...), or `unknown`.
    pub endpoint: String,
    /// `mch_id` of the request, when it could be read.
    pub mch_id: Option<String>,
    /// The body received, as text (lossy when not UTF-8).
    pub request_body: String,
    /// The HTTP status answered (`None` when the request was left hanging).
    pub status: Option<u16>,
    /// The body answered.
    pub response_body: Option<String>,
    /// `err_code` of the answer, when there is one.
    pub err_code: Option<String>,
    /// Faults that struck this call.
    pub faults: Vec<String>,
    /// How long the call took, in milliseconds.
    pub elapsed_ms: f64,
}

/// One delivery of a notify.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyRecord {
    /// Position in the log, increasing.
    pub seq: u64,
    /// `pay` or `refund`.
    pub kind: String,
    /// The merchant.
    pub mch_id: String,
    /// The order.
    pub out_trade_no: String,
    /// The refund, for refund notifies.
    pub out_refund_no: Option<String>,
    /// The URL posted to.
    pub url: String,
    /// 1 for the first delivery, then one more per retry.
    pub attempt: u32,
    /// Which copy of a duplicated delivery (1 when not duplicated).
    pub copy: u32,
    /// When the delivery started.
    pub at: DateTime<FixedOffset>,
    /// Milliseconds since start when the delivery started.
    pub t_ms: f64,
    /// The XML posted (empty when dropped).
    pub body: String,
    /// What happened: `acknowledged`, `rejected`, `http_error`, `unreachable`,
    /// `timeout`, `dropped`.
    pub outcome: String,
    /// The HTTP status of the merchant's answer.
    pub reply_status: Option<u16>,
    /// The merchant's answer.
    pub reply_body: Option<String>,
    /// Transport error, when the merchant could not be reached.
    pub error: Option<String>,
    /// How long the delivery took, in milliseconds.
    pub elapsed_ms: f64,
    /// Faults that struck this notify.
    pub faults: Vec<String>,
}

impl NotifyRecord {
    /// Whether the merchant answered SUCCESS.
    pub fn acknowledged(&self) -> bool {
        self.outcome == "acknowledged"
    }
}

/// A payer's action (`pay`, `fail`, `paying`) on an order.
#[derive(Debug, Clone, Serialize)]
pub struct PayerRecord {
    /// Position in the log, increasing.
    pub seq: u64,
    /// `pay`, `fail` or `paying`.
    pub action: String,
    /// The merchant.
    pub mch_id: String,
    /// The order.
    pub out_trade_no: String,
    /// When.
    pub at: DateTime<FixedOffset>,
    /// Milliseconds since start.
    pub t_ms: f64,
}

/// Everything the simulator received and sent, plus its orders.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// API calls, oldest first.
    pub requests: Vec<RequestRecord>,
    /// Notify deliveries, oldest first.
    pub notifies: Vec<NotifyRecord>,
    /// Payer actions, oldest first.
    pub payer_actions: Vec<PayerRecord>,
    /// The orders held now, each with its `orderquery` count ([`Order::queries`]).
    pub orders: Vec<Order>,
    /// Notifies dispatched that may still be delivered (a first delivery, or a retry after
    /// a failed one). Zero means no notify will arrive until the next payment or refund: wait
    /// for it instead of sleeping to show that something was not sent again.
    pub pending_notifies: usize,
}

impl Inspection {
    /// Notify deliveries for one order, oldest first.
    pub fn notifies_for(&self, out_trade_no: &str) -> Vec<&NotifyRecord> {
        self.notifies
            .iter()
            .filter(|record| record.out_trade_no == out_trade_no)
            .collect()
    }

    /// API calls to one endpoint (`unifiedorder`, ...), oldest first.
    pub fn requests_to(&self, endpoint: &str) -> Vec<&RequestRecord> {
        self.requests
            .iter()
            .filter(|record| record.endpoint == endpoint)
            .collect()
    }

    /// The order with this out_trade_no.
    pub fn order(&self, out_trade_no: &str) -> Option<&Order> {
        self.orders
            .iter()
            .find(|order| order.out_trade_no == out_trade_no)
    }

    /// How many `orderquery` calls named the order with this out_trade_no (0 for an order
    /// the simulator does not hold).
    pub fn query_count(&self, out_trade_no: &str) -> u64 {
        self.order(out_trade_no)
            .map_or(0, |order| order.queries.count)
    }
}

#[derive(Debug, Default)]
struct Logs {
    next_seq: u64,
    requests: VecDeque<RequestRecord>,
    notifies: VecDeque<NotifyRecord>,
    payer_actions: VecDeque<PayerRecord>,
}

/// The log itself.
#[derive(Debug)]
pub(crate) struct InspectLog {
    started: Instant,
    capacity: usize,
    logs: Mutex<Logs>,
}

fn push_bounded<T>(list: &mut VecDeque<T>, capacity: usize, record: T) {
    if list.len() >= capacity {
        list.pop_front();
    }
    list.push_back(record);
}

impl InspectLog {
    pub fn new(capacity: usize) -> Self {
        InspectLog {
            started: Instant::now(),
            capacity,
            logs: Mutex::new(Logs::default()),
        }
    }

    /// Milliseconds since start, and the wall-clock time.
    pub fn now(&self) -> (f64, DateTime<FixedOffset>) {
        (
            self.started.elapsed().as_secs_f64() * 1000.0,
            time::beijing_now(),
        )
    }

    pub fn millis_since(&self, t_ms: f64) -> f64 {
        self.now().0 - t_ms
    }

    pub fn record_request(&self, mut record: RequestRecord) {
        let mut logs = self.logs.lock();
        logs.next_seq += 1;
        record.seq = logs.next_seq;
        push_bounded(&mut logs.requests, self.capacity, record);
    }

    pub fn record_notify(&self, mut record: NotifyRecord) {
        let mut logs = self.logs.lock();
        logs.next_seq += 1;
        record.seq = logs.next_seq;
        push_bounded(&mut logs.notifies, self.capacity, record);
    }

    pub fn record_payer(&self, action: &str, order: &Order) {
        let (t_ms, at) = self.now();
        let mut logs = self.logs.lock();
        logs.next_seq += 1;
        let record = PayerRecord {
            seq: logs.next_seq,
            action: action.to_string(),
            mch_id: order.mch_id.clone(),
            out_trade_no: order.out_trade_no.clone(),
            at,
            t_ms,
        };
        push_bounded(&mut logs.payer_actions, self.capacity, record);
    }

    pub fn snapshot(&self, orders: Vec<Order>, pending_notifies: usize) -> Inspection {
        let logs = self.logs.lock();
        Inspection {
            requests: logs.requests.iter().cloned().collect(),
            notifies: logs.notifies.iter().cloned().collect(),
            payer_actions: logs.payer_actions.iter().cloned().collect(),
            orders,
            pending_notifies,
        }
    }

    pub fn clear(&self) {
        let mut logs = self.logs.lock();
        logs.requests.clear();
        logs.notifies.clear();
        logs.payer_actions.clear();
    }
}
