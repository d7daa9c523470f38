//! Orders and refunds, in memory and bounded, with WeChat's state machine.
//!
//! Every transition happens under one lock, so a payment, a close and a refund racing on
//! the same order see one consistent order of events. Live and sandbox orders are kept
//! apart, as WeChat keeps them.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate};
use indexmap::IndexMap;
use parking_lot::Mutex;
use serde::Serialize;
use wechatpay_v2::time;
use wechatpay_v2::{Fen, RefundStatus};

use crate::ids;

/// Production or sandbox (`/xdc/apiv2sandbox/...`, formerly `/sandboxnew/...`) orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Env {
    /// Calls under `/pay/...` and `/secapi/...`.
    Live,
    /// Calls under `/xdc/apiv2sandbox/...` or the old `/sandboxnew/...`, signed with the
    /// sandbox key.
    Sandbox,
}

/// Which protocol made an order: its notifies speak the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiVersion {
    /// XML, signed with the API key (`/pay/unifiedorder`).
    V2,
    /// JSON, RSA-signed (`/v3/pay/transactions/...`).
    V3,
}

/// An order's `trade_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TradeState {
    /// Waiting for the payer.
    #[serde(rename = "NOTPAY")]
    NotPay,
    /// The payer is entering a password.
    #[serde(rename = "USERPAYING")]
    UserPaying,
    /// Paid.
    #[serde(rename = "SUCCESS")]
    Success,
    /// Paid, then (partly) refunded.
    #[serde(rename = "REFUND")]
    Refund,
    /// Closed before payment.
    #[serde(rename = "CLOSED")]
    Closed,
    /// The payment failed (bank refusal...).
    #[serde(rename = "PAYERROR")]
    PayError,
}

impl TradeState {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::NotPay => "NOTPAY",
            TradeState::UserPaying => "USERPAYING",
            TradeState::Success => "SUCCESS",
            TradeState::Refund => "REFUND",
            TradeState::Closed => "CLOSED",
            TradeState::PayError => "PAYERROR",
        }
    }

    /// WeChat's `trade_state_desc`.
    pub fn description(self) -> &'static str {
        match self {
            TradeState::NotPay => "订单未支付",
            TradeState::UserPaying => "需要用户输入支付密码",
            TradeState::Success => "支付成功",
            TradeState::Refund => "订单发生过退款，退款详情请查询申请退款",
            TradeState::Closed => "订单已关闭",
            TradeState::PayError => "支付失败，请重新下单支付",
        }
    }

    fn is_paid(self) -> bool {
        matches!(self, TradeState::Success | TradeState::Refund)
    }

    /// Nothing more will happen to the order by itself (it can still be refunded).
    fn is_finished(self) -> bool {
        !matches!(self, TradeState::NotPay | TradeState::UserPaying)
    }
}

/// A refund of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refund {
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// The amount refunded.
    pub refund_fee: Fen,
    /// When it was requested.
    pub created_at: DateTime<FixedOffset>,
    /// When it leaves `PROCESSING`, as WeChat's refunds do after a while (see
    /// [`SimConfig::refund_processing_ms`](crate::SimConfig::refund_processing_ms)); `None`
    /// while it is held in `PROCESSING` until
    /// [`SimHandle::settle_refund`](crate::SimHandle::settle_refund) settles it.
    pub settles_at: Option<DateTime<FixedOffset>>,
    /// What it becomes at `settles_at`: `SUCCESS`, or `CHANGE` / `REFUNDCLOSE` when a
    /// [`RefundPlan`] or a settlement said so.
    pub ends_as: RefundStatus,
    /// Where the refund notify goes, if anywhere.
    pub notify_url: Option<String>,
    /// The merchant's reason.
    pub refund_desc: Option<String>,
    /// Its settlement has been acted on (notify sent, a closed refund's money returned to
    /// the merchant's balance): exactly once, by the timer or by a settlement.
    #[serde(skip)]
    pub(crate) announced: bool,
}

impl Refund {
    /// When it settled, if it has by `now`.
    pub fn settled_at(&self, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        self.settles_at.filter(|at| now >= *at)
    }

    /// `refund_status` at `now`: `PROCESSING` until it settles, then what it ends as.
    pub fn status_at(&self, now: DateTime<FixedOffset>) -> RefundStatus {
        match self.settled_at(now) {
            Some(_) => self.ends_as,
            None => RefundStatus::Processing,
        }
    }

    /// The refund's success time (`refund_success_time`, the bill's success time column,
    /// the notify's `success_time`): only a refund that succeeded has one.
    pub fn success_time(&self, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        self.settled_at(now)
            .filter(|_| self.ends_as == RefundStatus::Success)
    }

    /// Whether its money still counts as refunded at `now`: everything but a closed refund,
    /// whose money WeChat lets the merchant refund again under a new out_refund_no.
    pub fn counts_at(&self, now: DateTime<FixedOffset>) -> bool {
        self.status_at(now) != RefundStatus::RefundClose
    }
}

/// What a refund not yet asked for will do, instead of succeeding after
/// [`SimConfig::refund_processing_ms`](crate::SimConfig::refund_processing_ms): name it by
/// `out_refund_no`, or take the next new refund of the order `out_trade_no`. Used once.
///
/// `status` is the refund's end: `CHANGE` or `REFUNDCLOSE` (or `SUCCESS`) after the usual
/// processing time, or `PROCESSING` to hold it there until
/// [`SimHandle::settle_refund`](crate::SimHandle::settle_refund).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundPlan {
    /// The refund's number, as the merchant will send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_refund_no: Option<String>,
    /// Or: the next refund of this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    /// How it ends (`PROCESSING`: held until settled).
    pub status: RefundStatus,
}

impl RefundPlan {
    /// The refund numbered `out_refund_no` ends as `status`.
    pub fn refund(out_refund_no: impl Into<String>, status: RefundStatus) -> Self {
        RefundPlan {
            out_refund_no: Some(out_refund_no.into()),
            out_trade_no: None,
            status,
        }
    }

    /// The next new refund of the order `out_trade_no` ends as `status`.
    pub fn next_refund_of(out_trade_no: impl Into<String>, status: RefundStatus) -> Self {
        RefundPlan {
            out_refund_no: None,
            out_trade_no: Some(out_trade_no.into()),
            status,
        }
    }

    fn matches(&self, out_refund_no: &str, out_trade_no: &str) -> bool {
        self.out_refund_no.as_deref() == Some(out_refund_no)
            || self.out_trade_no.as_deref() == Some(out_trade_no)
    }
}

/// A payment WeChat has and the merchant never asked for: a live NATIVE order, paid now,
/// without a notify (nobody gave a notify_url). For reconciliation tests: the bill lists it,
/// the merchant's books do not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutsidePayment {
    /// The order number it carries.
    pub out_trade_no: String,
    /// The amount paid.
    pub total_fee: Fen,
    /// The merchant; may be left out when only one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mch_id: Option<String>,
}

impl OutsidePayment {
    /// A payment of `total_fee` to the only merchant.
    pub fn new(out_trade_no: impl Into<String>, total_fee: Fen) -> Self {
        OutsidePayment {
            out_trade_no: out_trade_no.into(),
            total_fee,
            mch_id: None,
        }
    }
}

/// Why an [`OutsidePayment`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutsidePaymentError {
    /// The amount is zero or negative.
    #[error("total_fee must be positive")]
    Amount,
    /// No merchant with this mch_id.
    #[error("no merchant `{0}`")]
    UnknownMerchant(String),
    /// Several merchants are configured and none was named.
    #[error("several merchants are configured: give mch_id")]
    WhichMerchant,
    /// The merchant already has an order with this number.
    #[error("out_trade_no `{0}` is already an order of this merchant")]
    Exists(String),
}

/// Why a refund control ([`RefundPlan`], a settlement) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundControlError {
    /// A plan must name exactly one of out_refund_no and out_trade_no.
    #[error("name the refund by out_refund_no or its order by out_trade_no (exactly one)")]
    NoTarget,
    /// A plan named a refund that was already asked for.
    #[error("refund `{0}` was already asked for: settle it instead")]
    AlreadyRequested(String),
    /// No refund with this number.
    #[error("no refund `{0}`")]
    NotFound(String),
    /// Several merchants (or live and sandbox) have a refund with this number.
    #[error("out_refund_no `{0}` is used by several merchants")]
    Ambiguous(String),
    /// A settlement must say how the refund ends.
    #[error("a refund settles as SUCCESS, CHANGE or REFUNDCLOSE, not PROCESSING")]
    NotFinal,
    /// The refund has already settled.
    #[error("refund `{out_refund_no}` has already settled as {status}")]
    AlreadySettled {
        /// The refund.
        out_refund_no: String,
        /// How it ended.
        status: RefundStatus,
    },
}

/// How many `orderquery` times each order keeps in [`OrderQueries::recent_t_ms`].
pub const RECENT_QUERY_TIMES: usize = 32;

/// The `orderquery` calls that named an order: what tests of reconcilers count (is each
/// waiting order queried once per round, however many instances reconcile?). WeChat keeps
/// no such record; the simulator does, for its inspection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OrderQueries {
    /// `orderquery` calls that passed the protocol checks (a valid signature included) and
    /// named this order, by out_trade_no or by transaction_id.
    pub count: u64,
    /// When the newest of them arrived, oldest first, at most [`RECENT_QUERY_TIMES`]:
    /// milliseconds since the simulator started, the clock of
    /// [`RequestRecord::t_ms`](crate::RequestRecord::t_ms) (the call's record has the same
    /// value).
    pub recent_t_ms: Vec<f64>,
}

impl OrderQueries {
    fn record(&mut self, t_ms: f64) {
        self.count += 1;
        if self.recent_t_ms.len() >= RECENT_QUERY_TIMES {
            self.recent_t_ms.remove(0);
        }
        self.recent_t_ms.push(t_ms);
    }
}

/// An order as the gateway holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    /// Live or sandbox.
    pub env: Env,
    /// The protocol that created it (V3 orders are always live).
    pub api_version: ApiVersion,
    /// The app id it was created with.
    pub appid: String,
    /// The merchant.
    pub mch_id: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// `body`.
    pub body: String,
    /// `attach`, echoed in queries and notifies.
    pub attach: Option<String>,
    /// `device_info`.
    pub device_info: Option<String>,
    /// The amount.
    pub total_fee: Fen,
    /// `fee_type`, CNY unless given.
    pub fee_type: String,
    /// `trade_type`.
    pub trade_type: String,
    /// The payer named at creation (JSAPI), or who paid.
    pub openid: Option<String>,
    /// `notify_url`.
    pub notify_url: String,
    /// `sign_type` of the creating call: notifies are signed the same way.
    pub sign_type: Option<String>,
    /// The prepay id (the same one when the order is created again with identical
    /// parameters).
    pub prepay_id: String,
    /// NATIVE only.
    pub code_url: Option<String>,
    /// MWEB only.
    pub mweb_url: Option<String>,
    /// `time_expire`, if given.
    pub time_expire: Option<String>,
    /// Where the order stands.
    pub state: TradeState,
    /// Set once paid.
    pub transaction_id: Option<String>,
    /// `time_end` (yyyyMMddHHmmss) once paid.
    pub time_end: Option<String>,
    /// When it was paid.
    pub paid_at: Option<DateTime<FixedOffset>>,
    /// When it was created.
    pub created_at: DateTime<FixedOffset>,
    /// Refunds, oldest first.
    pub refunds: Vec<Refund>,
    /// The `orderquery` calls that named it since it was created or the inspection was
    /// last cleared.
    pub queries: OrderQueries,
    /// The creating call's parameters other than `nonce_str`, `sign` and `sign_type`:
    /// creating the order again must repeat them exactly.
    #[serde(skip)]
    pub(crate) fingerprint: Vec<(String, String)>,
    #[serde(skip)]
    pub(crate) qr_code: Option<String>,
}

impl Order {
    /// The total refunded at `now`: every refund but the closed ones (see
    /// [`Refund::counts_at`]).
    pub fn refunded(&self, now: DateTime<FixedOffset>) -> Fen {
        self.refunds
            .iter()
            .filter(|refund| refund.counts_at(now))
            .fold(Fen::ZERO, |sum, refund| {
                sum.checked_add(refund.refund_fee).unwrap_or(Fen::MAX)
            })
    }
}

/// What a new order needs, checked by the gateway before it reaches the store.
#[derive(Debug, Clone)]
pub(crate) struct NewOrder {
    pub env: Env,
    pub api_version: ApiVersion,
    pub appid: String,
    pub mch_id: String,
    pub out_trade_no: String,
    pub body: String,
    pub attach: Option<String>,
    pub device_info: Option<String>,
    pub total_fee: Fen,
    pub fee_type: String,
    pub trade_type: String,
    pub openid: Option<String>,
    pub notify_url: String,
    pub sign_type: Option<String>,
    pub time_expire: Option<String>,
    pub fingerprint: Vec<(String, String)>,
}

/// A business refusal: `result_code=FAIL` with this `err_code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BizError {
    /// The order is paid.
    #[error("ORDERPAID")]
    OrderPaid,
    /// The order is closed.
    #[error("ORDERCLOSED")]
    OrderClosed,
    /// No such order.
    #[error("ORDERNOTEXIST")]
    OrderNotExist,
    /// The out_trade_no was used with other parameters.
    #[error("OUT_TRADE_NO_USED")]
    OutTradeNoUsed,
    /// No such refund.
    #[error("REFUNDNOTEXIST")]
    RefundNotExist,
    /// The merchant's refund balance is short.
    #[error("NOTENOUGH")]
    NotEnough,
    /// The order cannot be refunded in its state.
    #[error("TRADE_STATE_ERROR")]
    TradeStateError,
    /// The same out_refund_no was sent with another amount.
    #[error("REFUND_FEE_MISMATCH")]
    RefundFeeMismatch,
    /// A value contradicts the order (amounts).
    #[error("PARAM_ERROR: {0}")]
    ParamError(&'static str),
}

impl BizError {
    /// `err_code`.
    pub fn code(&self) -> &'static str {
        match self {
            BizError::OrderPaid => "ORDERPAID",
            BizError::OrderClosed => "ORDERCLOSED",
            BizError::OrderNotExist => "ORDERNOTEXIST",
            BizError::OutTradeNoUsed => "OUT_TRADE_NO_USED",
            BizError::RefundNotExist => "REFUNDNOTEXIST",
            BizError::NotEnough => "NOTENOUGH",
            BizError::TradeStateError => "TRADE_STATE_ERROR",
            BizError::RefundFeeMismatch => "REFUND_FEE_MISMATCH",
            BizError::ParamError(_) => "PARAM_ERROR",
        }
    }

    /// `err_code_des`, WeChat's wording.
    pub fn description(&self) -> &'static str {
        match self {
            BizError::OrderPaid => "该订单已支付",
            BizError::OrderClosed => "该订单已关闭",
            BizError::OrderNotExist => "订单不存在",
            BizError::OutTradeNoUsed => "商户订单号重复",
            BizError::RefundNotExist => "退款订单查询失败",
            BizError::NotEnough => "基本账户余额不足，请充值后重新发起",
            BizError::TradeStateError => "订单状态错误",
            BizError::RefundFeeMismatch => "订单金额或退款金额与之前请求不一致，请核实后再试",
            BizError::ParamError(description) => description,
        }
    }
}

/// Which order a payer acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayTarget {
    /// The merchant's order number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    /// The `code_url` shown as a QR code (NATIVE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_url: Option<String>,
    /// The prepay id (JSAPI, APP, MWEB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepay_id: Option<String>,
    /// Narrows `out_trade_no` to one merchant when several use the same number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mch_id: Option<String>,
    /// The payer's openid; the order's, or a made-up one, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
}

impl PayTarget {
    /// The order with this out_trade_no (unique across merchants, or see
    /// [`PayTarget::mch_id`]).
    pub fn out_trade_no(out_trade_no: impl Into<String>) -> Self {
        PayTarget {
            out_trade_no: Some(out_trade_no.into()),
            ..PayTarget::default()
        }
    }

    /// The order behind a `code_url`.
    pub fn code_url(code_url: impl Into<String>) -> Self {
        PayTarget {
            code_url: Some(code_url.into()),
            ..PayTarget::default()
        }
    }

    /// The order of a prepay id.
    pub fn prepay_id(prepay_id: impl Into<String>) -> Self {
        PayTarget {
            prepay_id: Some(prepay_id.into()),
            ..PayTarget::default()
        }
    }
}

impl From<&str> for PayTarget {
    /// A `weixin://` URL is a code_url, anything else an out_trade_no.
    fn from(text: &str) -> Self {
        if text.starts_with("weixin://") {
            PayTarget::code_url(text)
        } else {
            PayTarget::out_trade_no(text)
        }
    }
}

impl From<String> for PayTarget {
    fn from(text: String) -> Self {
        PayTarget::from(text.as_str())
    }
}

/// Why the payer could not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    /// The target named nothing.
    #[error("name the order by out_trade_no, code_url or prepay_id")]
    NoTarget,
    /// No order matches.
    #[error("no order matches {0}")]
    NotFound(String),
    /// Several merchants (or live and sandbox) have this out_trade_no.
    #[error("out_trade_no `{0}` is used by several merchants; give mch_id")]
    Ambiguous(String),
    /// The order cannot be paid in its state.
    #[error("order `{out_trade_no}` is {state:?} and cannot be paid")]
    WrongState {
        /// The order.
        out_trade_no: String,
        /// Its state.
        state: TradeState,
    },
    /// The order's `time_expire` has passed.
    #[error("order `{0}` expired (time_expire passed)")]
    Expired(String),
}

type OrderKey = (Env, String, String);

#[derive(Debug, Default)]
struct Book {
    /// Insertion order is age: the front is the oldest.
    orders: IndexMap<String, Order>,
    by_transaction: HashMap<String, String>,
    /// out_refund_no and refund_id -> out_trade_no.
    by_refund: HashMap<String, String>,
}

impl Book {
    fn forget(&mut self, out_trade_no: &str) -> Option<Order> {
        let order = self.orders.shift_remove(out_trade_no)?;
        if let Some(transaction_id) = &order.transaction_id {
            self.by_transaction.remove(transaction_id);
        }
        for refund in &order.refunds {
            self.by_refund.remove(&refund.out_refund_no);
            self.by_refund.remove(&refund.refund_id);
        }
        Some(order)
    }
}

#[derive(Debug, Default)]
struct Inner {
    books: HashMap<(Env, String), Book>,
    by_code: HashMap<String, OrderKey>,
    by_prepay: HashMap<String, OrderKey>,
}

/// How an order is named in a query.
#[derive(Debug, Clone)]
pub(crate) enum OrderRef {
    TransactionId(String),
    OutTradeNo(String),
}

/// How a refund query names its refunds, most precise first.
#[derive(Debug, Clone)]
pub(crate) enum RefundRef {
    RefundId(String),
    OutRefundNo(String),
    Order(OrderRef),
}

pub(crate) enum Created {
    New(Order),
    Again(Order),
}

pub(crate) struct RefundRequest {
    pub out_refund_no: String,
    pub total_fee: Fen,
    pub refund_fee: Fen,
    pub notify_url: Option<String>,
    pub refund_desc: Option<String>,
    /// How long the new refund stays `PROCESSING`.
    pub processing: std::time::Duration,
}

/// The outcome of a refund call: the order after it and the refund (new or repeated).
pub(crate) struct RefundOutcome {
    pub order: Order,
    pub refund: Refund,
    pub is_new: bool,
}

/// A refund that has just settled: the order and the refund, to notify.
pub(crate) struct Settled {
    pub order: Order,
    pub refund: Refund,
}

/// The order store.
#[derive(Debug)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
    max_orders_per_merchant: usize,
    /// Refund balance left per merchant (both environments draw from it).
    refund_balances: Mutex<HashMap<String, Fen>>,
    /// What refunds not yet asked for will do, oldest first. Locked after `inner` when both
    /// are (as `refund_balances`).
    refund_plans: Mutex<Vec<RefundPlan>>,
}

impl Store {
    pub fn new(
        max_orders_per_merchant: usize,
        refund_balances: impl IntoIterator<Item = (String, Fen)>,
    ) -> Self {
        Store {
            inner: Mutex::new(Inner::default()),
            max_orders_per_merchant,
            refund_balances: Mutex::new(refund_balances.into_iter().collect()),
            refund_plans: Mutex::new(Vec::new()),
        }
    }

    /// Sets (or lifts, with `None`) the refund balance of a merchant.
    pub fn set_refund_balance(&self, mch_id: &str, balance: Option<Fen>) {
        let mut balances = self.refund_balances.lock();
        match balance {
            Some(balance) => balances.insert(mch_id.to_string(), balance),
            None => balances.remove(mch_id),
        };
    }

    /// Creates the order, or returns the existing one when every parameter is the same.
    pub fn create(&self, new: NewOrder) -> Result<Created, BizError> {
        let mut inner = self.inner.lock();
        let book_key = (new.env, new.mch_id.clone());
        if let Some(existing) = inner
            .books
            .get(&book_key)
            .and_then(|book| book.orders.get(&new.out_trade_no))
        {
            return match existing.state {
                state if state.is_paid() => Err(BizError::OrderPaid),
                TradeState::Closed => Err(BizError::OrderClosed),
                _ if existing.fingerprint == new.fingerprint => {
                    Ok(Created::Again(existing.clone()))
                }
                _ => Err(BizError::OutTradeNoUsed),
            };
        }
        let now = time::beijing_now();
        let prepay_id = ids::prepay_id(now);
        let (code_url, qr_code) = if new.trade_type == "NATIVE" {
            let mut code = ids::qr_code();
            while inner.by_code.contains_key(&code) {
                code = ids::qr_code();
            }
            (
                Some(format!("weixin://wxpay/bizpayurl?pr={code}")),
                Some(code),
            )
        } else {
            (None, None)
        };
        let mweb_url = (new.trade_type == "MWEB").then(|| {
            format!(
                "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={prepay_id}&package={}",
                ids::mweb_package()
            )
        });
        let order = Order {
            env: new.env,
            api_version: new.api_version,
            appid: new.appid,
            mch_id: new.mch_id.clone(),
            out_trade_no: new.out_trade_no.clone(),
            body: new.body,
            attach: new.attach,
            device_info: new.device_info,
            total_fee: new.total_fee,
            fee_type: new.fee_type,
            trade_type: new.trade_type,
            openid: new.openid,
            notify_url: new.notify_url,
            sign_type: new.sign_type,
            prepay_id: prepay_id.clone(),
            code_url,
            mweb_url,
            time_expire: new.time_expire,
            state: TradeState::NotPay,
            transaction_id: None,
            time_end: None,
            paid_at: None,
            created_at: now,
            refunds: Vec::new(),
            queries: OrderQueries::default(),
            fingerprint: new.fingerprint,
            qr_code: qr_code.clone(),
        };
        let key: OrderKey = (new.env, new.mch_id.clone(), new.out_trade_no.clone());
        let evicted = {
            let book = inner.books.entry(book_key).or_default();
            let evicted = if book.orders.len() >= self.max_orders_per_merchant {
                let victim = book
                    .orders
                    .values()
                    .find(|order| order.state.is_finished())
                    .or_else(|| book.orders.values().next())
                    .map(|order| order.out_trade_no.clone());
                victim.and_then(|out_trade_no| book.forget(&out_trade_no))
            } else {
                None
            };
            book.orders.insert(new.out_trade_no, order.clone());
            evicted
        };
        if let Some(evicted) = evicted {
            inner.by_prepay.remove(&evicted.prepay_id);
            if let Some(code) = &evicted.qr_code {
                inner.by_code.remove(code);
            }
        }
        inner.by_prepay.insert(prepay_id, key.clone());
        if let Some(code) = qr_code {
            inner.by_code.insert(code, key);
        }
        Ok(Created::New(order))
    }

    /// The order an `orderquery` arriving at `t_ms` names, with the query counted on it.
    pub fn query(&self, env: Env, mch_id: &str, order: &OrderRef, t_ms: f64) -> Option<Order> {
        let mut inner = self.inner.lock();
        let book = inner.books.get_mut(&(env, mch_id.to_string()))?;
        let out_trade_no = match order {
            OrderRef::OutTradeNo(out_trade_no) => out_trade_no,
            OrderRef::TransactionId(transaction_id) => book.by_transaction.get(transaction_id)?,
        };
        let order = book.orders.get_mut(out_trade_no)?;
        order.queries.record(t_ms);
        Some(order.clone())
    }

    /// Restarts every order's query count (the inspection was cleared).
    pub fn forget_queries(&self) {
        let mut inner = self.inner.lock();
        for book in inner.books.values_mut() {
            for order in book.orders.values_mut() {
                order.queries = OrderQueries::default();
            }
        }
    }

    pub fn close(&self, env: Env, mch_id: &str, out_trade_no: &str) -> Result<Order, BizError> {
        let mut inner = self.inner.lock();
        let order = inner
            .books
            .get_mut(&(env, mch_id.to_string()))
            .and_then(|book| book.orders.get_mut(out_trade_no))
            .ok_or(BizError::OrderNotExist)?;
        match order.state {
            state if state.is_paid() => Err(BizError::OrderPaid),
            TradeState::Closed => Err(BizError::OrderClosed),
            _ => {
                order.state = TradeState::Closed;
                Ok(order.clone())
            }
        }
    }

    fn locate(inner: &Inner, target: &PayTarget) -> Result<OrderKey, PayError> {
        if let Some(code_url) = &target.code_url {
            let code = code_url
                .split_once("pr=")
                .map(|(_, code)| code)
                .unwrap_or(code_url.as_str());
            return inner
                .by_code
                .get(code)
                .cloned()
                .ok_or_else(|| PayError::NotFound(format!("code_url `{code_url}`")));
        }
        if let Some(prepay_id) = &target.prepay_id {
            return inner
                .by_prepay
                .get(prepay_id)
                .cloned()
                .ok_or_else(|| PayError::NotFound(format!("prepay_id `{prepay_id}`")));
        }
        let Some(out_trade_no) = &target.out_trade_no else {
            return Err(PayError::NoTarget);
        };
        let mut matches = inner.books.iter().filter(|((_, mch_id), book)| {
            target.mch_id.as_ref().is_none_or(|wanted| wanted == mch_id)
                && book.orders.contains_key(out_trade_no)
        });
        let found = matches.next();
        if matches.next().is_some() {
            return Err(PayError::Ambiguous(out_trade_no.clone()));
        }
        let ((env, mch_id), _) =
            found.ok_or_else(|| PayError::NotFound(format!("out_trade_no `{out_trade_no}`")))?;
        Ok((*env, mch_id.clone(), out_trade_no.clone()))
    }

    fn with_target<T>(
        &self,
        target: &PayTarget,
        act: impl FnOnce(&mut Book, &str) -> Result<T, PayError>,
    ) -> Result<T, PayError> {
        let mut inner = self.inner.lock();
        let (env, mch_id, out_trade_no) = Self::locate(&inner, target)?;
        let book = inner
            .books
            .get_mut(&(env, mch_id))
            .ok_or_else(|| PayError::NotFound(format!("out_trade_no `{out_trade_no}`")))?;
        act(book, &out_trade_no)
    }

    /// The payer pays: NOTPAY, USERPAYING or PAYERROR becomes SUCCESS.
    pub fn pay(&self, target: &PayTarget) -> Result<Order, PayError> {
        self.with_target(target, |book, out_trade_no| {
            let order = book
                .orders
                .get_mut(out_trade_no)
                .ok_or_else(|| PayError::NotFound(format!("out_trade_no `{out_trade_no}`")))?;
            if !matches!(
                order.state,
                TradeState::NotPay | TradeState::UserPaying | TradeState::PayError
            ) {
                return Err(PayError::WrongState {
                    out_trade_no: out_trade_no.to_string(),
                    state: order.state,
                });
            }
            let now = time::beijing_now();
            if order
                .time_expire
                .as_deref()
                .is_some_and(|expire| expire < time::beijing_time(now).as_str())
            {
                return Err(PayError::Expired(out_trade_no.to_string()));
            }
            let transaction_id = ids::transaction_id(now);
            order.state = TradeState::Success;
            order.transaction_id = Some(transaction_id.clone());
            order.time_end = Some(time::beijing_time(now));
            order.paid_at = Some(now);
            if let Some(openid) = &target.openid {
                order.openid = Some(openid.clone());
            } else if order.openid.is_none() {
                order.openid = Some(ids::openid());
            }
            let order = order.clone();
            book.by_transaction
                .insert(transaction_id, out_trade_no.to_string());
            Ok(order)
        })
    }

    /// Creates and pays, in one step, a live order the merchant never created.
    pub fn record_outside_payment(
        &self,
        merchant: &crate::MerchantConfig,
        payment: &OutsidePayment,
    ) -> Result<Order, OutsidePaymentError> {
        let exists = || OutsidePaymentError::Exists(payment.out_trade_no.clone());
        let created = self.create(NewOrder {
            env: Env::Live,
            api_version: ApiVersion::V2,
            appid: merchant.appid.clone(),
            mch_id: merchant.mch_id.clone(),
            out_trade_no: payment.out_trade_no.clone(),
            body: "outside payment".into(),
            attach: None,
            device_info: None,
            total_fee: payment.total_fee,
            fee_type: "CNY".into(),
            trade_type: "NATIVE".into(),
            openid: None,
            notify_url: String::new(),
            sign_type: None,
            time_expire: None,
            fingerprint: Vec::new(),
        });
        let Ok(Created::New(_)) = created else {
            return Err(exists());
        };
        self.pay(&PayTarget {
            mch_id: Some(merchant.mch_id.clone()),
            ..PayTarget::out_trade_no(payment.out_trade_no.clone())
        })
        // Only a sandbox order of the same number can get in the way.
        .map_err(|_| exists())
    }

    /// The payer's bank refuses: NOTPAY or USERPAYING becomes PAYERROR.
    pub fn fail_payment(&self, target: &PayTarget) -> Result<Order, PayError> {
        self.set_unpaid_state(target, TradeState::PayError)
    }

    /// The payer is entering a password: NOTPAY becomes USERPAYING.
    pub fn start_paying(&self, target: &PayTarget) -> Result<Order, PayError> {
        self.set_unpaid_state(target, TradeState::UserPaying)
    }

    fn set_unpaid_state(&self, target: &PayTarget, state: TradeState) -> Result<Order, PayError> {
        self.with_target(target, |book, out_trade_no| {
            let order = book
                .orders
                .get_mut(out_trade_no)
                .ok_or_else(|| PayError::NotFound(format!("out_trade_no `{out_trade_no}`")))?;
            if !matches!(order.state, TradeState::NotPay | TradeState::UserPaying) {
                return Err(PayError::WrongState {
                    out_trade_no: out_trade_no.to_string(),
                    state: order.state,
                });
            }
            order.state = state;
            Ok(order.clone())
        })
    }

    pub fn refund(
        &self,
        env: Env,
        mch_id: &str,
        order_ref: &OrderRef,
        request: RefundRequest,
    ) -> Result<RefundOutcome, BizError> {
        let mut inner = self.inner.lock();
        let book = inner
            .books
            .get_mut(&(env, mch_id.to_string()))
            .ok_or(BizError::OrderNotExist)?;
        let out_trade_no = match order_ref {
            OrderRef::OutTradeNo(out_trade_no) => out_trade_no.clone(),
            OrderRef::TransactionId(transaction_id) => book
                .by_transaction
                .get(transaction_id)
                .cloned()
                .ok_or(BizError::OrderNotExist)?,
        };
        if let Some(owner) = book.by_refund.get(&request.out_refund_no)
            && *owner != out_trade_no
        {
            return Err(BizError::ParamError("out_refund_no已被其他订单使用"));
        }
        let order = book
            .orders
            .get_mut(&out_trade_no)
            .ok_or(BizError::OrderNotExist)?;
        if let Some(previous) = order
            .refunds
            .iter()
            .find(|refund| refund.out_refund_no == request.out_refund_no)
        {
            // Retrying a refund is how a client recovers from SYSTEMERROR: same number,
            // same amounts, same refund.
            if previous.refund_fee != request.refund_fee || order.total_fee != request.total_fee {
                return Err(BizError::RefundFeeMismatch);
            }
            return Ok(RefundOutcome {
                refund: previous.clone(),
                order: order.clone(),
                is_new: false,
            });
        }
        if !order.state.is_paid() {
            return Err(BizError::TradeStateError);
        }
        if request.total_fee != order.total_fee {
            return Err(BizError::ParamError(
                "订单金额total_fee与实际支付金额不一致",
            ));
        }
        if request.refund_fee > order.total_fee {
            return Err(BizError::ParamError("退款金额大于支付金额"));
        }
        let now = time::beijing_now();
        let refunded_after = order
            .refunded(now)
            .checked_add(request.refund_fee)
            .unwrap_or(Fen::MAX);
        if refunded_after > order.total_fee {
            return Err(BizError::ParamError("累计退款金额大于支付金额"));
        }
        {
            let mut balances = self.refund_balances.lock();
            if let Some(balance) = balances.get_mut(mch_id) {
                let Some(left) = balance
                    .checked_sub(request.refund_fee)
                    .filter(|left| *left >= Fen::ZERO)
                else {
                    return Err(BizError::NotEnough);
                };
                *balance = left;
            }
        }
        let plan = {
            let mut plans = self.refund_plans.lock();
            plans
                .iter()
                .position(|plan| plan.matches(&request.out_refund_no, &out_trade_no))
                .map(|at| plans.remove(at))
        };
        // The configuration bounds `processing`, so the sum cannot overflow.
        let after_processing = chrono::Duration::from_std(request.processing)
            .ok()
            .and_then(|processing| now.checked_add_signed(processing))
            .unwrap_or(now);
        let (settles_at, ends_as) = match plan.map(|plan| plan.status) {
            Some(RefundStatus::Processing) => (None, RefundStatus::Success),
            Some(status) => (Some(after_processing), status),
            None => (Some(after_processing), RefundStatus::Success),
        };
        let mut refund = Refund {
            out_refund_no: request.out_refund_no.clone(),
            refund_id: ids::refund_id(now),
            refund_fee: request.refund_fee,
            created_at: now,
            settles_at,
            ends_as,
            notify_url: request.notify_url,
            refund_desc: request.refund_desc,
            announced: false,
        };
        if refund.settled_at(now).is_some() {
            self.announce(mch_id, &mut refund);
        }
        order.refunds.push(refund.clone());
        order.state = TradeState::Refund;
        let order = order.clone();
        book.by_refund
            .insert(refund.out_refund_no.clone(), out_trade_no.clone());
        book.by_refund
            .insert(refund.refund_id.clone(), out_trade_no.clone());
        Ok(RefundOutcome {
            order,
            refund,
            is_new: true,
        })
    }

    /// Marks a settled refund as acted on; a closed refund's money goes back to the
    /// merchant's refund balance.
    fn announce(&self, mch_id: &str, refund: &mut Refund) {
        refund.announced = true;
        if refund.ends_as == RefundStatus::RefundClose
            && let Some(balance) = self.refund_balances.lock().get_mut(mch_id)
        {
            *balance = balance.checked_add(refund.refund_fee).unwrap_or(Fen::MAX);
        }
    }

    /// Keeps `plan` for the refund it names.
    pub fn plan_refund(&self, plan: RefundPlan) -> Result<(), RefundControlError> {
        if plan.out_refund_no.is_some() == plan.out_trade_no.is_some() {
            return Err(RefundControlError::NoTarget);
        }
        let inner = self.inner.lock();
        if let Some(out_refund_no) = &plan.out_refund_no
            && inner
                .books
                .values()
                .any(|book| book.by_refund.contains_key(out_refund_no))
        {
            return Err(RefundControlError::AlreadyRequested(out_refund_no.clone()));
        }
        self.refund_plans.lock().push(plan);
        Ok(())
    }

    /// The plans not yet used, oldest first.
    pub fn refund_plans(&self) -> Vec<RefundPlan> {
        self.refund_plans.lock().clone()
    }

    /// Forgets every plan not yet used.
    pub fn clear_refund_plans(&self) {
        self.refund_plans.lock().clear();
    }

    /// Settles a refund still `PROCESSING` now, as `status`.
    pub fn settle_refund(
        &self,
        out_refund_no: &str,
        status: RefundStatus,
    ) -> Result<Settled, RefundControlError> {
        if status == RefundStatus::Processing {
            return Err(RefundControlError::NotFinal);
        }
        let mut inner = self.inner.lock();
        let mut owners = inner
            .books
            .iter()
            .filter_map(|(key, book)| Some((key.clone(), book.by_refund.get(out_refund_no)?)));
        let Some(((env, mch_id), out_trade_no)) = owners.next() else {
            return Err(RefundControlError::NotFound(out_refund_no.to_string()));
        };
        if owners.next().is_some() {
            return Err(RefundControlError::Ambiguous(out_refund_no.to_string()));
        }
        let out_trade_no = out_trade_no.clone();
        let now = time::beijing_now();
        let order = inner
            .books
            .get_mut(&(env, mch_id.clone()))
            .and_then(|book| book.orders.get_mut(&out_trade_no))
            .ok_or_else(|| RefundControlError::NotFound(out_refund_no.to_string()))?;
        let refund = order
            .refunds
            .iter_mut()
            // `by_refund` also holds refund ids: only the number names a refund here.
            .find(|refund| refund.out_refund_no == out_refund_no)
            .ok_or_else(|| RefundControlError::NotFound(out_refund_no.to_string()))?;
        if refund.announced || refund.settled_at(now).is_some() {
            return Err(RefundControlError::AlreadySettled {
                out_refund_no: out_refund_no.to_string(),
                status: refund.status_at(now),
            });
        }
        refund.settles_at = Some(now);
        refund.ends_as = status;
        self.announce(&mch_id, refund);
        let refund = refund.clone();
        Ok(Settled {
            order: order.clone(),
            refund,
        })
    }

    /// The refund `out_refund_no` has reached the settlement time `scheduled` it was given:
    /// it, once, unless a settlement came first.
    pub fn settle_due(
        &self,
        env: Env,
        mch_id: &str,
        out_refund_no: &str,
        scheduled: DateTime<FixedOffset>,
    ) -> Option<Settled> {
        let mut inner = self.inner.lock();
        let book = inner.books.get_mut(&(env, mch_id.to_string()))?;
        let out_trade_no = book.by_refund.get(out_refund_no)?.clone();
        let order = book.orders.get_mut(&out_trade_no)?;
        let refund = order
            .refunds
            .iter_mut()
            .find(|refund| refund.out_refund_no == out_refund_no)?;
        if refund.announced || refund.settles_at != Some(scheduled) {
            return None;
        }
        self.announce(mch_id, refund);
        let refund = refund.clone();
        Some(Settled {
            order: order.clone(),
            refund,
        })
    }

    /// The order and the refunds a refund query names.
    pub fn refunds(
        &self,
        env: Env,
        mch_id: &str,
        refund_ref: &RefundRef,
    ) -> Result<(Order, Vec<Refund>), BizError> {
        let inner = self.inner.lock();
        let book = inner
            .books
            .get(&(env, mch_id.to_string()))
            .ok_or(BizError::RefundNotExist)?;
        let (out_trade_no, only) = match refund_ref {
            RefundRef::RefundId(id) | RefundRef::OutRefundNo(id) => (
                book.by_refund.get(id).ok_or(BizError::RefundNotExist)?,
                Some(id),
            ),
            RefundRef::Order(OrderRef::OutTradeNo(out_trade_no)) => (out_trade_no, None),
            RefundRef::Order(OrderRef::TransactionId(transaction_id)) => (
                book.by_transaction
                    .get(transaction_id)
                    .ok_or(BizError::RefundNotExist)?,
                None,
            ),
        };
        let order = book
            .orders
            .get(out_trade_no)
            .ok_or(BizError::RefundNotExist)?;
        let refunds: Vec<Refund> = order
            .refunds
            .iter()
            .filter(|refund| {
                only.is_none_or(|id| refund.refund_id == *id || refund.out_refund_no == *id)
            })
            .cloned()
            .collect();
        if refunds.is_empty() {
            return Err(BizError::RefundNotExist);
        }
        Ok((order.clone(), refunds))
    }

    /// Orders of one merchant paid or refunded on `date` (Beijing time), oldest first.
    pub fn orders_touched_on(&self, env: Env, mch_id: &str, date: NaiveDate) -> Vec<Order> {
        let inner = self.inner.lock();
        let Some(book) = inner.books.get(&(env, mch_id.to_string())) else {
            return Vec::new();
        };
        book.orders
            .values()
            .filter(|order| {
                order
                    .paid_at
                    .is_some_and(|at| time::beijing_date(at) == date)
                    || order
                        .refunds
                        .iter()
                        .any(|refund| time::beijing_date(refund.created_at) == date)
            })
            .cloned()
            .collect()
    }

    /// Every order, merchant by merchant, oldest first.
    pub fn all_orders(&self) -> Vec<Order> {
        let inner = self.inner.lock();
        let mut orders: Vec<Order> = inner
            .books
            .values()
            .flat_map(|book| book.orders.values().cloned())
            .collect();
        orders.sort_by_key(|order| order.created_at);
        orders
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_order(out_trade_no: &str, total: i64) -> NewOrder {
        NewOrder {
            env: Env::Live,
            api_version: ApiVersion::V2,
            appid: "wx1".into(),
            mch_id: "m1".into(),
            out_trade_no: out_trade_no.into(),
            body: "b".into(),
            attach: None,
            device_info: None,
            total_fee: Fen::new(total),
            fee_type: "CNY".into(),
            trade_type: "NATIVE".into(),
            openid: None,
            notify_url: "http://127.0.0.1:1/n".into(),
            sign_type: None,
            time_expire: None,
            fingerprint: vec![("total_fee".into(), total.to_string())],
        }
    }

    fn refund_request(no: &str, fee: i64) -> RefundRequest {
        RefundRequest {
            out_refund_no: no.into(),
            total_fee: Fen::new(100),
            refund_fee: Fen::new(fee),
            notify_url: None,
            refund_desc: None,
            processing: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn same_parameters_give_the_same_prepay_and_others_are_refused() {
        let store = Store::new(10, []);
        let Ok(Created::New(first)) = store.create(new_order("o1", 100)) else {
            panic!("not created")
        };
        let Ok(Created::Again(again)) = store.create(new_order("o1", 100)) else {
            panic!("not reused")
        };
        assert_eq!(first.prepay_id, again.prepay_id);
        assert_eq!(first.code_url, again.code_url);
        assert!(matches!(
            store.create(new_order("o1", 101)),
            Err(BizError::OutTradeNoUsed)
        ));
    }

    #[test]
    fn states_only_move_forward() {
        let store = Store::new(10, []);
        let _ = store.create(new_order("o1", 100));
        let paid = store.pay(&PayTarget::out_trade_no("o1")).unwrap();
        assert_eq!(paid.state, TradeState::Success);
        assert!(matches!(
            store.pay(&PayTarget::out_trade_no("o1")),
            Err(PayError::WrongState { .. })
        ));
        assert_eq!(store.close(Env::Live, "m1", "o1"), Err(BizError::OrderPaid));
        assert!(matches!(
            store.create(new_order("o1", 100)),
            Err(BizError::OrderPaid)
        ));
        let _ = store.create(new_order("o2", 100));
        store.close(Env::Live, "m1", "o2").unwrap();
        assert_eq!(
            store.close(Env::Live, "m1", "o2"),
            Err(BizError::OrderClosed)
        );
        assert!(store.pay(&PayTarget::out_trade_no("o2")).is_err());
        assert_eq!(
            store.close(Env::Live, "m1", "nope"),
            Err(BizError::OrderNotExist)
        );
    }

    #[test]
    fn refunds_are_bounded_and_idempotent() {
        let store = Store::new(10, [("m1".to_string(), Fen::new(1_000))]);
        let _ = store.create(new_order("o1", 100));
        let by_no = OrderRef::OutTradeNo("o1".into());
        assert_eq!(
            store
                .refund(Env::Live, "m1", &by_no, refund_request("r1", 10))
                .err(),
            Some(BizError::TradeStateError)
        );
        store.pay(&PayTarget::out_trade_no("o1")).unwrap();
        let first = store
            .refund(Env::Live, "m1", &by_no, refund_request("r1", 60))
            .unwrap();
        assert!(first.is_new);
        assert_eq!(first.order.state, TradeState::Refund);
        let again = store
            .refund(Env::Live, "m1", &by_no, refund_request("r1", 60))
            .unwrap();
        assert!(!again.is_new);
        assert_eq!(again.refund.refund_id, first.refund.refund_id);
        assert_eq!(
            store
                .refund(Env::Live, "m1", &by_no, refund_request("r1", 61))
                .err(),
            Some(BizError::RefundFeeMismatch)
        );
        assert_eq!(
            store
                .refund(Env::Live, "m1", &by_no, refund_request("r2", 41))
                .err(),
            Some(BizError::ParamError("累计退款金额大于支付金额"))
        );
        store
            .refund(Env::Live, "m1", &by_no, refund_request("r2", 40))
            .unwrap();
        let (_, refunds) = store
            .refunds(Env::Live, "m1", &RefundRef::Order(by_no))
            .unwrap();
        assert_eq!(refunds.len(), 2);
    }

    #[test]
    fn refund_balance_runs_out() {
        let store = Store::new(10, [("m1".to_string(), Fen::new(50))]);
        let _ = store.create(new_order("o1", 100));
        store.pay(&PayTarget::out_trade_no("o1")).unwrap();
        let by_no = OrderRef::OutTradeNo("o1".into());
        assert_eq!(
            store
                .refund(Env::Live, "m1", &by_no, refund_request("r1", 60))
                .err(),
            Some(BizError::NotEnough)
        );
        store
            .refund(Env::Live, "m1", &by_no, refund_request("r1", 50))
            .unwrap();
    }

    #[test]
    fn a_planned_refund_ends_as_planned_and_a_closed_one_frees_its_amount() {
        let store = Store::new(10, [("m1".to_string(), Fen::new(100))]);
        let _ = store.create(new_order("o1", 100));
        store.pay(&PayTarget::out_trade_no("o1")).unwrap();
        let by_no = OrderRef::OutTradeNo("o1".into());
        store
            .plan_refund(RefundPlan::refund("r1", RefundStatus::RefundClose))
            .unwrap();
        let closed = store
            .refund(Env::Live, "m1", &by_no, refund_request("r1", 100))
            .unwrap();
        let now = time::beijing_now();
        assert_eq!(closed.refund.status_at(now), RefundStatus::RefundClose);
        assert_eq!(closed.refund.success_time(now), None);
        assert_eq!(closed.order.refunded(now), Fen::ZERO);
        assert!(store.refund_plans().is_empty(), "a plan is used once");
        // The money is refundable again, and back in the balance.
        let again = store
            .refund(Env::Live, "m1", &by_no, refund_request("r2", 100))
            .unwrap();
        let now = time::beijing_now();
        assert_eq!(again.refund.status_at(now), RefundStatus::Success);
        assert_eq!(again.order.refunded(now), Fen::new(100));
        assert_eq!(
            store
                .plan_refund(RefundPlan::refund("r2", RefundStatus::Change))
                .err(),
            Some(RefundControlError::AlreadyRequested("r2".into()))
        );
        assert_eq!(
            store
                .plan_refund(RefundPlan {
                    out_refund_no: None,
                    out_trade_no: None,
                    status: RefundStatus::Change,
                })
                .err(),
            Some(RefundControlError::NoTarget)
        );
    }

    #[test]
    fn a_held_refund_processes_until_settled_once() {
        let store = Store::new(10, []);
        let _ = store.create(new_order("o1", 100));
        store.pay(&PayTarget::out_trade_no("o1")).unwrap();
        let by_no = OrderRef::OutTradeNo("o1".into());
        store
            .plan_refund(RefundPlan::next_refund_of("o1", RefundStatus::Processing))
            .unwrap();
        let held = store
            .refund(Env::Live, "m1", &by_no, refund_request("r1", 30))
            .unwrap();
        assert_eq!(held.refund.settles_at, None);
        assert_eq!(
            held.refund.status_at(time::beijing_now()),
            RefundStatus::Processing
        );
        assert_eq!(
            store.settle_refund("r1", RefundStatus::Processing).err(),
            Some(RefundControlError::NotFinal)
        );
        let settled = store.settle_refund("r1", RefundStatus::Change).unwrap();
        assert_eq!(
            settled.refund.status_at(time::beijing_now()),
            RefundStatus::Change
        );
        assert!(settled.refund.announced);
        assert!(matches!(
            store.settle_refund("r1", RefundStatus::Success),
            Err(RefundControlError::AlreadySettled {
                status: RefundStatus::Change,
                ..
            })
        ));
        assert_eq!(
            store.settle_refund("nope", RefundStatus::Success).err(),
            Some(RefundControlError::NotFound("nope".into()))
        );
        // A CHANGE refund still counts: its money left the merchant.
        assert_eq!(settled.order.refunded(time::beijing_now()), Fen::new(30));
        // The next refund of the order is not held: the plan was used.
        let next = store
            .refund(Env::Live, "m1", &by_no, refund_request("r2", 30))
            .unwrap();
        assert!(next.refund.announced);
    }

    #[test]
    fn a_timed_refund_settles_once_unless_settled_first() {
        let store = Store::new(10, [("m1".to_string(), Fen::new(100))]);
        let _ = store.create(new_order("o1", 100));
        store.pay(&PayTarget::out_trade_no("o1")).unwrap();
        let by_no = OrderRef::OutTradeNo("o1".into());
        let timed = |no: &str| RefundRequest {
            processing: std::time::Duration::from_secs(3600),
            ..refund_request(no, 50)
        };
        // Closed at once: its 50 go back to the balance of 100.
        store
            .plan_refund(RefundPlan::refund("r1", RefundStatus::RefundClose))
            .unwrap();
        store
            .refund(Env::Live, "m1", &by_no, refund_request("r1", 50))
            .unwrap();
        let second = store.refund(Env::Live, "m1", &by_no, timed("r2")).unwrap();
        let scheduled = second.refund.settles_at.unwrap();
        let settled = store.settle_due(Env::Live, "m1", "r2", scheduled).unwrap();
        assert!(settled.refund.announced);
        assert!(store.settle_due(Env::Live, "m1", "r2", scheduled).is_none());
        let third = store.refund(Env::Live, "m1", &by_no, timed("r3")).unwrap();
        store.settle_refund("r3", RefundStatus::Success).unwrap();
        assert!(
            store
                .settle_due(Env::Live, "m1", "r3", third.refund.settles_at.unwrap())
                .is_none(),
            "the timer of a refund settled by hand does nothing"
        );
        // 50 + 50 of 100 went out: the balance is empty.
        let _ = store.create(new_order("o2", 100));
        store.pay(&PayTarget::out_trade_no("o2")).unwrap();
        assert_eq!(
            store
                .refund(
                    Env::Live,
                    "m1",
                    &OrderRef::OutTradeNo("o2".into()),
                    refund_request("r4", 1)
                )
                .err(),
            Some(BizError::NotEnough)
        );
    }

    #[test]
    fn the_oldest_finished_order_is_evicted_first() {
        let store = Store::new(2, []);
        let _ = store.create(new_order("o1", 100));
        let _ = store.create(new_order("o2", 100));
        store.close(Env::Live, "m1", "o2").unwrap();
        let _ = store.create(new_order("o3", 100));
        let left: Vec<String> = store
            .all_orders()
            .into_iter()
            .map(|order| order.out_trade_no)
            .collect();
        assert_eq!(left, ["o1", "o3"]);
        let _ = store.create(new_order("o4", 100));
        let left: Vec<String> = store
            .all_orders()
            .into_iter()
            .map(|order| order.out_trade_no)
            .collect();
        assert_eq!(left, ["o3", "o4"], "no finished order: the oldest goes");
    }

    #[test]
    fn payers_find_orders_by_code_url() {
        let store = Store::new(10, []);
        let Ok(Created::New(order)) = store.create(new_order("o1", 100)) else {
            panic!()
        };
        let code_url = order.code_url.unwrap();
        assert!(code_url.starts_with("weixin://wxpay/bizpayurl?pr="));
        let paid = store.pay(&PayTarget::from(code_url.as_str())).unwrap();
        assert_eq!(paid.out_trade_no, "o1");
        assert!(matches!(
            store.pay(&PayTarget::code_url("weixin://wxpay/bizpayurl?pr=zzz")),
            Err(PayError::NotFound(_))
        ));
    }
}
