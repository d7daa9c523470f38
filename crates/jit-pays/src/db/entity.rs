//! The two tables of the family, as sea-orm entities.
//!
//! `pays_pay_log` is the local order table (`pays.models.PayLogModel`); its `status` column is
//! the single source of truth for an order's state and only ever moves through the
//! conditional UPDATEs in [`super::store`]. `pays_wechat_record` mirrors what WeChat Pay
//! said about the order (one row per order), for audits and for answering a second
//! `getPayUrl` without calling WeChat again; once it says the order is paid it keeps the
//! transaction the order was paid under. `pays_payment_conflict` keeps every other payment
//! WeChat reported for an order already paid (a second transaction for one order).
//!
//! The outbox: `pays_event` holds one row per transition, written in the transition's own
//! transaction; `pays_event_delivery` one row per event and consumer (the hooks, each
//! webhook endpoint), the unit of work an instance claims; `pays_webhook_delivery` every
//! attempt to deliver one.
//!
//! `pays_refund` holds one row per refund asked for (WeChat's `out_refund_no` is its
//! `refund_id`); its `status` moves only forward, by conditional UPDATEs in
//! [`super::refunds`], each together with the order's refund totals and an event.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// `pays.Meta.PayStatusEnum`: the four states of an order.
///
/// `Wait` is the only non-final state; `Success`, `Close` and `Timeout` are final except
/// that a genuine payment reported for a `Close`/`Timeout` order moves it to `Success`
/// with the `paid_after_close` flag (the money moved; it must not be dropped).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "lowercase")]
pub enum PayStatus {
    /// Created, waiting for payment.
    #[sea_orm(string_value = "wait")]
    Wait,
    /// Paid.
    #[sea_orm(string_value = "success")]
    Success,
    /// Closed by the merchant (cancel).
    #[sea_orm(string_value = "close")]
    Close,
    /// Closed because it expired unpaid.
    #[sea_orm(string_value = "timeout")]
    Timeout,
}

impl PayStatus {
    /// The value stored in the database and shown to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            PayStatus::Wait => "wait",
            PayStatus::Success => "success",
            PayStatus::Close => "close",
            PayStatus::Timeout => "timeout",
        }
    }

    /// Parses the stored/client spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "wait" => Some(PayStatus::Wait),
            "success" => Some(PayStatus::Success),
            "close" => Some(PayStatus::Close),
            "timeout" => Some(PayStatus::Timeout),
            _ => None,
        }
    }

    /// Whether no further ordinary transition can leave this state.
    pub fn is_final(self) -> bool {
        match self {
            PayStatus::Wait => false,
            PayStatus::Success | PayStatus::Close | PayStatus::Timeout => true,
        }
    }
}

impl std::fmt::Display for PayStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pay log table.
pub mod pay_log {
    use super::PayStatus;
    use sea_orm::entity::prelude::*;

    /// One order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_pay_log")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The merchant order number (WeChat's `out_trade_no`), unique.
        #[sea_orm(unique)]
        pub order_id: String,
        /// Order title (WeChat's `body`).
        pub subject: String,
        /// Amount in fen.
        pub amount_fen: i64,
        /// Current state.
        pub status: PayStatus,
        /// fullName of the pay element that owns the order.
        pub element: String,
        /// Trade type of the last successful getPayUrl (NATIVE, MWEB, JSAPI, APP).
        pub pay_type: Option<String>,
        /// WeChat's transaction id once paid.
        pub transaction_id: Option<String>,
        /// A payment arrived for an order already closed or timed out locally.
        pub paid_after_close: bool,
        /// Creation time.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
        /// When it was paid (WeChat's time_end when known).
        pub paid_at: Option<DateTimeUtc>,
        /// When it was closed or timed out.
        pub closed_at: Option<DateTimeUtc>,
        /// After this instant an unpaid order is closed as `timeout`.
        pub expires_at: DateTimeUtc,
        /// How many times the reconciler has queried it.
        pub check_attempts: i32,
        /// The reconciler does not look at it before this instant.
        pub next_check_at: DateTimeUtc,
        /// How many events the order has had: every transition's UPDATE adds one, and the
        /// event it writes carries the new value as its `order_seq`.
        pub event_seq: i32,
        /// The money refunded: the sum of the order's `success` refunds.
        pub refunded_fen: i64,
        /// The money refunds hold: the sum of the order's refunds that are not `closed`
        /// (`processing`, `success`, `change`). A new refund fits while this plus its
        /// amount stays within `amount_fen`; the conditional UPDATE that says so is what
        /// keeps concurrent refunds, on any instance, from refunding more than was paid.
        pub refund_reserved_fen: i64,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Which WeChat Pay API an element speaks, and so which API its orders' records are in:
/// V2 (XML, the API key) or V3 (JSON, RSA, the APIv3 key). An order's element decides it:
/// `pays.WechatPayType` instances speak V2, `pays.WechatPayV3Type` instances V3.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(4))")]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// WeChat Pay V2.
    #[default]
    #[sea_orm(string_value = "v2")]
    V2,
    /// WeChat Pay API v3.
    #[sea_orm(string_value = "v3")]
    V3,
}

impl ApiVersion {
    /// `v2` or `v3`, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        }
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The WeChat Pay record table.
pub mod wechat_record {
    use sea_orm::entity::prelude::*;

    /// What WeChat Pay knows about one order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_wechat_record")]
    pub struct Model {
        /// The merchant order number.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        /// appid used for the order.
        pub appid: String,
        /// Merchant id used for the order.
        pub mch_id: String,
        /// trade_type of the prepay order.
        pub trade_type: Option<String>,
        /// prepay_id from unifiedorder.
        pub prepay_id: Option<String>,
        /// code_url (NATIVE).
        pub code_url: Option<String>,
        /// mweb_url (MWEB).
        pub mweb_url: Option<String>,
        /// When the prepay order stops being usable (prepay_id lives 2 h).
        pub prepay_expires_at: Option<DateTimeUtc>,
        /// Last trade_state seen (query or notify).
        pub trade_state: Option<String>,
        /// WeChat transaction id.
        pub transaction_id: Option<String>,
        /// total_fee in fen as sent to WeChat.
        pub total_fee: i64,
        /// The last raw notify body (signed XML, no secret in it).
        pub last_notify: Option<String>,
        /// The last raw orderquery response.
        pub last_query: Option<String>,
        /// Row creation.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
        /// Last notify.
        pub notified_at: Option<DateTimeUtc>,
        /// Last query.
        pub queried_at: Option<DateTimeUtc>,
        /// The API the record's calls and notifies were made in: its raw bodies are XML
        /// (V2) or JSON (V3).
        pub api_version: super::ApiVersion,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Payments reported for an order that was already paid under another transaction.
pub mod payment_conflict {
    use sea_orm::entity::prelude::*;

    /// One second payment: the order keeps its first transaction, this one is kept here
    /// for someone to refund or reconcile.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_payment_conflict")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The merchant order number.
        pub order_id: String,
        /// WeChat's transaction id of this (second) payment. Unique with `order_id`: a
        /// repeat of the same notify is the same conflict.
        pub transaction_id: String,
        /// The transaction id the order was paid under, and keeps.
        pub order_transaction_id: Option<String>,
        /// total_fee of this payment, in fen.
        pub total_fee: i64,
        /// The verified notify, raw (signed XML, no secret in it).
        pub raw_notify: String,
        /// When it was first received.
        pub created_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The outbox's events: one per transition (and per payment conflict), never changed.
pub mod event {
    use sea_orm::entity::prelude::*;

    /// One event, as committed with its transition.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_event")]
    pub struct Model {
        /// UUIDv7: sortable by creation time.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `order.paid`, ... ([`crate::outbox::EventType`]).
        pub event_type: String,
        /// The envelope's version.
        pub version: i32,
        /// The order.
        pub order_id: String,
        /// The order's event number: 1 for its first event, then 2, ...
        pub order_seq: i32,
        /// fullName of the pay element that owns the order.
        pub element: String,
        /// The whole envelope, JSON: exactly the body a webhook receives.
        pub payload: String,
        /// When the transition was committed.
        pub created_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The outbox's work: one row per event and consumer.
pub mod event_delivery {
    use sea_orm::entity::prelude::*;

    /// Delivering one event to one consumer.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_event_delivery")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The event.
        pub event_id: String,
        /// `hooks`, or a webhook endpoint's URL.
        pub consumer: String,
        /// The event's order (copied, for the per-order ordering rule).
        pub order_id: String,
        /// The event's `order_seq` (copied, ditto).
        pub order_seq: i32,
        /// `pending`, `delivered` or `dead`.
        pub status: String,
        /// Attempts made so far.
        pub attempts: i32,
        /// The back-off counts attempts from here (a replay starts it over).
        pub backoff_from: i32,
        /// Not attempted before this instant.
        pub next_attempt_at: DateTimeUtc,
        /// A failure after this instant makes the delivery dead.
        pub give_up_at: DateTimeUtc,
        /// The instance attempting it now, if any.
        pub lease_owner: Option<String>,
        /// That instance's claim lapses at this instant (it died, or hangs).
        pub lease_until: Option<DateTimeUtc>,
        /// Why the last attempt failed.
        pub last_error: Option<String>,
        /// Row creation.
        pub created_at: DateTimeUtc,
        /// When a consumer took it.
        pub delivered_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every attempt to deliver an event.
pub mod webhook_delivery {
    use sea_orm::entity::prelude::*;

    /// One attempt.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_webhook_delivery")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The event.
        pub event_id: String,
        /// The consumer: a webhook URL, or `hooks`.
        pub endpoint: String,
        /// 1 for the first attempt of this event at this endpoint.
        pub attempt: i32,
        /// The HTTP status answered, if one was.
        pub status_code: Option<i32>,
        /// How long the attempt took, in milliseconds.
        pub latency_ms: i64,
        /// Why it failed, if it did.
        pub error: Option<String>,
        /// The instance that made it.
        pub instance: String,
        /// When it started.
        pub attempted_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `processing` / `success` / `change` / `closed`: a refund's state, WeChat's PROCESSING,
/// SUCCESS, CHANGE and REFUNDCLOSE.
///
/// `processing → success | change | closed`, and `change → success | closed` (a refund
/// that could not reach the buyer's card is settled by hand at WeChat's merchant
/// platform). `success` and `closed` are final.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "lowercase")]
pub enum RefundStatus {
    /// Asked for; WeChat has not reported an outcome yet (or has not answered the request).
    #[sea_orm(string_value = "processing")]
    Processing,
    /// The money is back with the buyer.
    #[sea_orm(string_value = "success")]
    Success,
    /// WeChat could not pay it back the original way (a cancelled card...): the merchant
    /// must settle it on WeChat's merchant platform. The money is still held.
    #[sea_orm(string_value = "change")]
    Change,
    /// Closed without refunding: refused when asked (not enough balance...) or closed by
    /// WeChat. The money it held may be refunded again under a new refund id.
    #[sea_orm(string_value = "closed")]
    Closed,
}

impl RefundStatus {
    /// The value stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "processing",
            RefundStatus::Success => "success",
            RefundStatus::Change => "change",
            RefundStatus::Closed => "closed",
        }
    }

    /// The states a refund may be in just before moving to `self`.
    pub fn reachable_from(self) -> &'static [RefundStatus] {
        match self {
            RefundStatus::Processing => &[],
            RefundStatus::Success | RefundStatus::Closed => {
                &[RefundStatus::Processing, RefundStatus::Change]
            }
            RefundStatus::Change => &[RefundStatus::Processing],
        }
    }

    /// WeChat's status (`refund_status`) as one of these.
    pub fn of_wechat(status: wechatpay_v2::RefundStatus) -> Self {
        use wechatpay_v2::RefundStatus as Wechat;
        match status {
            Wechat::Processing => RefundStatus::Processing,
            Wechat::Success => RefundStatus::Success,
            Wechat::Change => RefundStatus::Change,
            Wechat::RefundClose => RefundStatus::Closed,
        }
    }

    /// The state WeChat Pay API v3 reports: its `ABNORMAL` is V2's `CHANGE`.
    pub fn of_wechat_v3(status: wechatpay_v3::RefundStatus) -> Self {
        use wechatpay_v3::RefundStatus as Wechat;
        match status {
            Wechat::Processing => RefundStatus::Processing,
            Wechat::Success => RefundStatus::Success,
            Wechat::Abnormal => RefundStatus::Change,
            Wechat::Closed => RefundStatus::Closed,
        }
    }
}

impl std::fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order's refund state beside its [`PayStatus`] (which does not change when money
/// goes back): derived from `refunded_fen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderRefundStatus {
    /// Nothing refunded.
    None,
    /// Part of the amount refunded.
    Partial,
    /// All of it refunded.
    Full,
}

impl OrderRefundStatus {
    /// The refund state of an order of `amount_fen` of which `refunded_fen` went back.
    pub fn of(amount_fen: i64, refunded_fen: i64) -> Self {
        if refunded_fen <= 0 {
            OrderRefundStatus::None
        } else if refunded_fen < amount_fen {
            OrderRefundStatus::Partial
        } else {
            OrderRefundStatus::Full
        }
    }
}

/// The refund table.
pub mod refund {
    use super::RefundStatus;
    use sea_orm::entity::prelude::*;

    /// One refund of an order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_refund")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The merchant's refund number (WeChat's `out_refund_no`), unique.
        #[sea_orm(unique)]
        pub refund_id: String,
        /// The refunded order.
        pub order_id: String,
        /// fullName of the pay element that owns the order.
        pub element: String,
        /// The amount, in fen.
        pub amount_fen: i64,
        /// The reason shown to the buyer (`refund_desc`).
        pub reason: Option<String>,
        /// State.
        pub status: RefundStatus,
        /// WeChat's refund id, once WeChat accepted the request. `None` while the outcome
        /// of the request is unknown (it timed out, the process stopped mid-call).
        pub wechat_refund_id: Option<String>,
        /// Where the money went (WeChat's `refund_recv_accout`).
        pub account: Option<String>,
        /// Why it is `closed` or `change`, as WeChat said.
        pub failure: Option<String>,
        /// Asked for.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
        /// When it succeeded (WeChat's success_time when known).
        pub succeeded_at: Option<DateTimeUtc>,
        /// How many times the reconciler has asked WeChat about it.
        pub check_attempts: i32,
        /// The reconciler does not look at it before this instant.
        pub next_check_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The bill days: one row per (merchant, bill type, Beijing date) downloaded or being
/// downloaded, so a day is known downloaded even when WeChat had no bill for it.
pub mod bill_day {
    use sea_orm::entity::prelude::*;

    /// One day's bill of one merchant and type.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_bill_day")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The merchant (a bill is the merchant's, whichever instance downloaded it).
        pub mch_id: String,
        /// `ALL`, `SUCCESS` or `REFUND`.
        pub bill_type: String,
        /// The Beijing date, `yyyy-MM-dd`.
        pub bill_date: String,
        /// fullName of the pay element that downloaded it.
        pub element: String,
        /// `claimed` (a scheduled download is under way) or `stored`.
        pub status: String,
        /// WeChat answered "No Bill Exist": nothing happened that day.
        pub no_bill: bool,
        /// How many data lines were stored.
        pub line_count: i32,
        /// The summary line, raw (`None` for a day without a bill).
        pub summary: Option<String>,
        /// The instance holding the claim of a scheduled download.
        pub lease_owner: Option<String>,
        /// That claim lapses at this instant (the instance died).
        pub lease_until: Option<DateTimeUtc>,
        /// When the lines were stored.
        pub downloaded_at: Option<DateTimeUtc>,
        /// Row creation.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The lines of WeChat's daily bills, as downloaded: the fields reconciliation compares
/// and the raw line.
pub mod bill_line {
    use sea_orm::entity::prelude::*;

    /// One data line of a bill.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_bill_line")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The merchant.
        pub mch_id: String,
        /// `ALL`, `SUCCESS` or `REFUND`.
        pub bill_type: String,
        /// The Beijing date, `yyyy-MM-dd`.
        pub bill_date: String,
        /// fullName of the pay element that downloaded it.
        pub element: String,
        /// The line number in the bill (the header is line 1).
        pub line_number: i32,
        /// `交易时间`.
        pub trade_time: DateTimeUtc,
        /// `公众账号ID`.
        pub appid: String,
        /// `商户订单号`.
        pub out_trade_no: String,
        /// `微信订单号`.
        pub transaction_id: String,
        /// `交易状态`: `SUCCESS` (a payment) or `REFUND` (a refund line).
        pub trade_state: String,
        /// `订单金额` in fen (zero on refund lines).
        pub total_fee: i64,
        /// `应结订单金额` in fen.
        pub settlement_total_fee: i64,
        /// `商户退款单号` (refund lines).
        pub out_refund_no: Option<String>,
        /// `微信退款单号` (refund lines).
        pub refund_id: Option<String>,
        /// `申请退款金额` in fen (refund lines).
        pub refund_fee: Option<i64>,
        /// `退款金额` in fen (refund lines).
        pub settlement_refund_fee: Option<i64>,
        /// `退款状态` (refund lines): `SUCCESS`, `PROCESSING`, ...
        pub refund_status: Option<String>,
        /// `手续费` in units of 0.00001 yuan (negative on refund lines).
        pub service_fee: i64,
        /// The line as WeChat wrote it.
        pub raw: String,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The mismatches reconciliation has raised an event for: one row per (date, element,
/// kind, order, refund), so running a day again does not raise the same one twice.
pub mod reconcile_mismatch {
    use sea_orm::entity::prelude::*;

    /// One mismatch, as first reported.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_reconcile_mismatch")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The Beijing date reconciled, `yyyy-MM-dd`.
        pub bill_date: String,
        /// The pay element reconciled.
        pub element: String,
        /// `missing_locally`, `missing_in_bill`, `amount_mismatch`, `status_mismatch`.
        pub kind: String,
        /// The order (the bill's `out_trade_no` when the shop does not have it).
        pub order_id: String,
        /// The refund, or empty for a mismatch about the payment.
        pub refund_id: String,
        /// The event raised for it.
        pub event_id: String,
        /// The mismatch as reported (JSON).
        pub detail: String,
        /// When it was first found.
        pub created_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every notify received: `pays_notify_log` ([`crate::db::notify_log`]).
pub mod notify_log {
    use sea_orm::entity::prelude::*;

    /// One notify as it arrived and what became of it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pays_notify_log")]
    pub struct Model {
        /// Surrogate key (arrival order).
        #[sea_orm(primary_key)]
        pub id: i64,
        /// When it was handled.
        pub received_at: DateTimeUtc,
        /// `payment` or `refund`.
        pub kind: String,
        /// The order it names (unverified when refused), if it names one.
        pub order_id: Option<String>,
        /// The refund it names (refund notifies), if known.
        pub refund_id: Option<String>,
        /// What became of it: `paid`, `paid_after_close`, `already_paid`, `not_paid`,
        /// `conflict`, `refund`, `refused` or `failed`.
        pub outcome: String,
        /// Whether its signature (or, for a refund, its encryption) was verified.
        pub verified: bool,
        /// For a refusal: a short stable code of why (`bad_signature`, `unknown_order`…).
        pub reason_kind: Option<String>,
        /// For a refusal or failure: why, in words.
        pub reason: Option<String>,
        /// The sender's address, when the host knew it.
        pub peer: Option<String>,
        /// The body's length in bytes, as received.
        pub body_len: i64,
        /// The body, truncated to [`crate::db::notify_log::MAX_BODY_CHARS`] characters.
        pub body: String,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
