//! The `Pay` trait: the seed's WeChat Pay methods under Rust names, and the dispatch of
//! functionList calls onto it.

use std::any::TypeId;
use std::sync::Arc;

use async_trait::async_trait;
use jit_runtime::{CallContext, CallError, Element, ElementDef, Secret};
use serde_json::{Map, Value, json};
use wechatpay_v2::{Fen, UnverifiedNotify};

use crate::args::{
    arg_amount, arg_notify_request, arg_opt_str, arg_pay_type, arg_payer, arg_refund, arg_str,
    no_such_function, to_json,
};
use crate::db::cache::OrderFacts;
use crate::db::entity::ApiVersion;
use crate::error::PayError;
use crate::model::{
    CancelResult, CloseAtWechat, NotifyReply, NotifyRequest, OpenedNotify, PayLog, PayType, PayUrl,
    Payer, Refund, RefundArgs, RefusalReason, WechatRecord,
};

/// A payment element: what `app.get::<dyn Pay>("pays.myWechatPay")` hands out.
///
/// A Type extending `pays.WechatPayType` in Rust implements it by wrapping the parent's
/// `Arc<dyn Pay>` (from [`pay_of`] on `LoadContext::load_with_parent`), overriding some
/// methods and delegating the rest, then exposes it with [`PayElement`].
#[async_trait]
pub trait Pay: Send + Sync + 'static {
    /// The element's fullName (`pays.myWechatPay`).
    fn full_name(&self) -> &str;
    /// The configuration with secrets masked.
    fn config(&self) -> Value;
    /// WeChat appid.
    fn app_id(&self) -> &str;
    /// WeChat merchant id.
    fn mch_id(&self) -> &str;
    /// The API key (masked when displayed).
    fn api_key(&self) -> Secret<String>;

    /// Creates a `wait` order. `amount` must be positive and at most
    /// [`Fen::MAX_TOTAL_FEE`]; `order_id` when given must be
    /// ≤ 32 chars of `[0-9A-Za-z_\-|*]` and unused (else [`PayError::DuplicateOrder`],
    /// nothing written); when absent one is generated.
    async fn create(
        &self,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError>;

    /// A fresh order number: `"D"` + yyyyMMddHHmmss (Beijing) + 6 digits.
    fn generate_order_id(&self) -> String {
        crate::order_id::generate_order_id()
    }

    /// Creates (or reuses) the prepay order at WeChat and returns what the payer needs.
    async fn get_pay_url(
        &self,
        order_id: &str,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PayUrl, PayError>;

    /// The order as stored (no call to WeChat). Orders of other elements are
    /// [`PayError::WrongElement`].
    async fn get_order(&self, order_id: &str) -> Result<PayLog, PayError>;

    /// Where WeChat sends payment notifies for this element's orders.
    fn get_notify_url(&self) -> String;

    /// Queries WeChat, updates the record table, moves the order if WeChat says it is paid
    /// or closed; returns the order as it is now.
    async fn check(&self, order_id: &str) -> Result<PayLog, PayError>;

    /// Queries WeChat and updates the record table; `None` when WeChat does not know the
    /// order (no getPayUrl yet).
    async fn check_third(&self, pay_log: &PayLog) -> Result<Option<WechatRecord>, PayError>;

    /// Closes the order at WeChat and then locally. A paid order (ORDERPAID) is checked,
    /// recorded as paid and reported as [`PayError::OrderPaid`].
    async fn cancel(&self, order_id: &str) -> Result<CancelResult, PayError>;

    /// Closes the order at WeChat only.
    async fn cancel_third(&self, order_id: &str) -> Result<CloseAtWechat, PayError>;

    /// Handles a payment notify body; the reply says what to answer WeChat. Never fails:
    /// every refusal is a FAIL reply with nothing changed, its reason in the outcome
    /// ([`crate::NotifyOutcome::Rejected`]) rather than in the log: the reason quotes the
    /// unverified body, so the notify's entry point logs it, escaped and rate-limited per
    /// sender ([`crate::PaySvc::wechat_notify_from`] does).
    async fn notify(&self, body: &[u8]) -> NotifyReply;

    /// [`Pay::notify`] for a body the caller has already parsed and whose order's facts
    /// (`out_trade_no`'s owner, amount, known payment) it has already looked up — `PaySvc`
    /// does both to route the notify, and this spares doing them twice. Nothing in
    /// `notify` is trusted yet.
    ///
    /// The default ignores both and calls [`Pay::notify`], so a Type that overrides
    /// `notify` keeps its override; override this only together with `notify`.
    async fn notify_for_order(
        &self,
        notify: UnverifiedNotify,
        order: Arc<OrderFacts>,
        body: &[u8],
    ) -> NotifyReply {
        let _ = (notify, order);
        self.notify(body).await
    }

    /// The reconciler's step for one waiting order: query it, and when it is past its
    /// expiry and still unpaid, close it at WeChat and locally as `timeout`.
    async fn reconcile(&self, order_id: &str) -> Result<PayLog, PayError>;

    /// Refunds a paid order, all that is left or `amount`, and asks WeChat. The money is
    /// held for the refund before WeChat is asked, so refunds never add up to more than
    /// was paid. The answer is the refund: `processing` until WeChat reports the outcome
    /// (by notify, or the reconciler's query). A refused request closes the refund and is
    /// an error. The same `refund_id` again is the same refund (a retry), not a second one.
    async fn refund(&self, request: RefundArgs) -> Result<Refund, PayError>;

    /// Asks WeChat about a refund and applies what it says; returns the refund as it is now.
    async fn query_refund(&self, refund_id: &str) -> Result<Refund, PayError>;

    /// An order's refunds as stored, oldest first.
    async fn list_refunds(&self, order_id: &str) -> Result<Vec<Refund>, PayError>;

    /// Handles a refund notify body (its `req_info` decrypted with this merchant's key);
    /// like [`Pay::notify`], never fails: a refusal is a FAIL reply with nothing changed.
    async fn refund_notify(&self, body: &[u8]) -> NotifyReply;

    /// The WeChat Pay API the element speaks. V2 unless a V3 element says otherwise.
    fn api_version(&self) -> ApiVersion {
        ApiVersion::V2
    }

    /// Whether a V3 notify whose `Wechatpay-Serial` is `serial` may be verified with this
    /// element's keys (its WeChat Pay public key's id, a platform certificate it holds, or
    /// any certificate serial while it uses platform certificates, which it downloads
    /// when one is new). A V2 element verifies none.
    fn may_verify_serial(&self, serial: &str) -> bool {
        let _ = serial;
        false
    }

    /// Verifies a V3 notify with this element's keys and decrypts it with its APIv3 key,
    /// or refuses it (nothing changed). A V2 element refuses every one.
    async fn open_notify(&self, request: &NotifyRequest) -> Result<OpenedNotify, NotifyReply> {
        let _ = request;
        Err(speaks_v2(self.full_name()))
    }

    /// Handles a verified V3 payment notify of one of this element's orders: checks it
    /// against the order and records the payment, answering success only once that is
    /// committed. Like [`Pay::notify`], never fails. A notify another element opened is
    /// opened again with this element's keys.
    async fn payment_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        let _ = opened;
        speaks_v2(self.full_name())
    }

    /// Handles a verified V3 refund notify of one of this element's refunds, as
    /// [`Pay::payment_notify_opened`] does payments.
    async fn refund_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        let _ = opened;
        speaks_v2(self.full_name())
    }
}

/// The refusal of a V3 notify by an element that speaks V2.
fn speaks_v2(element: &str) -> NotifyReply {
    NotifyReply::refused(
        RefusalReason::Misrouted,
        format!("`{element}` speaks WeChat Pay V2: it takes no V3 notify"),
    )
}

/// A Type that extends a pay Type by changing some of its behaviour: implement
/// [`PayExtension::parent`] and only the methods that change; every other method goes to
/// the parent, and the blanket implementation makes the extension a [`Pay`].
///
/// ```ignore
/// struct Discounted { parent: Arc<dyn Pay> }
///
/// #[async_trait]
/// impl PayExtension for Discounted {
///     fn parent(&self) -> &Arc<dyn Pay> { &self.parent }
///     async fn create(&self, subject: &str, amount: Fen, order_id: Option<String>)
///         -> Result<PayLog, PayError> {
///         self.parent.create(subject, Fen::new(amount.get() * 9 / 10), order_id).await
///     }
/// }
/// ```
///
/// A method added to [`Pay`] later is added here with a default that delegates, so an
/// extension keeps compiling and keeps its parent's behaviour for it.
#[async_trait]
pub trait PayExtension: Send + Sync + 'static {
    /// The pay element this one extends (from [`pay_of`] on
    /// `LoadContext::load_with_parent`).
    fn parent(&self) -> &Arc<dyn Pay>;

    /// See [`Pay::full_name`].
    fn full_name(&self) -> &str {
        self.parent().full_name()
    }
    /// See [`Pay::config`].
    fn config(&self) -> Value {
        self.parent().config()
    }
    /// See [`Pay::app_id`].
    fn app_id(&self) -> &str {
        self.parent().app_id()
    }
    /// See [`Pay::mch_id`].
    fn mch_id(&self) -> &str {
        self.parent().mch_id()
    }
    /// See [`Pay::api_key`].
    fn api_key(&self) -> Secret<String> {
        self.parent().api_key()
    }
    /// See [`Pay::create`].
    async fn create(
        &self,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError> {
        self.parent().create(subject, amount, order_id).await
    }
    /// See [`Pay::generate_order_id`].
    fn generate_order_id(&self) -> String {
        self.parent().generate_order_id()
    }
    /// See [`Pay::get_pay_url`].
    async fn get_pay_url(
        &self,
        order_id: &str,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PayUrl, PayError> {
        self.parent().get_pay_url(order_id, pay_type, payer).await
    }
    /// See [`Pay::get_order`].
    async fn get_order(&self, order_id: &str) -> Result<PayLog, PayError> {
        self.parent().get_order(order_id).await
    }
    /// See [`Pay::get_notify_url`].
    fn get_notify_url(&self) -> String {
        self.parent().get_notify_url()
    }
    /// See [`Pay::check`].
    async fn check(&self, order_id: &str) -> Result<PayLog, PayError> {
        self.parent().check(order_id).await
    }
    /// See [`Pay::check_third`].
    async fn check_third(&self, pay_log: &PayLog) -> Result<Option<WechatRecord>, PayError> {
        self.parent().check_third(pay_log).await
    }
    /// See [`Pay::cancel`].
    async fn cancel(&self, order_id: &str) -> Result<CancelResult, PayError> {
        self.parent().cancel(order_id).await
    }
    /// See [`Pay::cancel_third`].
    async fn cancel_third(&self, order_id: &str) -> Result<CloseAtWechat, PayError> {
        self.parent().cancel_third(order_id).await
    }
    /// See [`Pay::notify`].
    async fn notify(&self, body: &[u8]) -> NotifyReply {
        self.parent().notify(body).await
    }
    /// See [`Pay::notify_for_order`]. The default hands the notify to this extension's own
    /// [`PayExtension::notify`], so an extension overriding `notify` keeps its override
    /// for notifies routed by `PaySvc`.
    async fn notify_for_order(
        &self,
        notify: UnverifiedNotify,
        order: Arc<OrderFacts>,
        body: &[u8],
    ) -> NotifyReply {
        let _ = (notify, order);
        PayExtension::notify(self, body).await
    }
    /// See [`Pay::reconcile`].
    async fn reconcile(&self, order_id: &str) -> Result<PayLog, PayError> {
        self.parent().reconcile(order_id).await
    }
    /// See [`Pay::refund`].
    async fn refund(&self, request: RefundArgs) -> Result<Refund, PayError> {
        self.parent().refund(request).await
    }
    /// See [`Pay::query_refund`].
    async fn query_refund(&self, refund_id: &str) -> Result<Refund, PayError> {
        self.parent().query_refund(refund_id).await
    }
    /// See [`Pay::list_refunds`].
    async fn list_refunds(&self, order_id: &str) -> Result<Vec<Refund>, PayError> {
        self.parent().list_refunds(order_id).await
    }
    /// See [`Pay::refund_notify`].
    async fn refund_notify(&self, body: &[u8]) -> NotifyReply {
        self.parent().refund_notify(body).await
    }
    /// See [`Pay::api_version`].
    fn api_version(&self) -> ApiVersion {
        self.parent().api_version()
    }
    /// See [`Pay::may_verify_serial`].
    fn may_verify_serial(&self, serial: &str) -> bool {
        self.parent().may_verify_serial(serial)
    }
    /// See [`Pay::open_notify`].
    async fn open_notify(&self, request: &NotifyRequest) -> Result<OpenedNotify, NotifyReply> {
        self.parent().open_notify(request).await
    }
    /// See [`Pay::payment_notify_opened`].
    async fn payment_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        self.parent().payment_notify_opened(opened).await
    }
    /// See [`Pay::refund_notify_opened`].
    async fn refund_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        self.parent().refund_notify_opened(opened).await
    }
}

/// Every [`PayExtension`] is a [`Pay`]: each method is the extension's (its override, or
/// its default delegating to the parent).
#[async_trait]
impl<T: PayExtension> Pay for T {
    fn full_name(&self) -> &str {
        PayExtension::full_name(self)
    }
    fn config(&self) -> Value {
        PayExtension::config(self)
    }
    fn app_id(&self) -> &str {
        PayExtension::app_id(self)
    }
    fn mch_id(&self) -> &str {
        PayExtension::mch_id(self)
    }
    fn api_key(&self) -> Secret<String> {
        PayExtension::api_key(self)
    }
    async fn create(
        &self,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError> {
        PayExtension::create(self, subject, amount, order_id).await
    }
    fn generate_order_id(&self) -> String {
        PayExtension::generate_order_id(self)
    }
    async fn get_pay_url(
        &self,
        order_id: &str,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PayUrl, PayError> {
        PayExtension::get_pay_url(self, order_id, pay_type, payer).await
    }
    async fn get_order(&self, order_id: &str) -> Result<PayLog, PayError> {
        PayExtension::get_order(self, order_id).await
    }
    fn get_notify_url(&self) -> String {
        PayExtension::get_notify_url(self)
    }
    async fn check(&self, order_id: &str) -> Result<PayLog, PayError> {
        PayExtension::check(self, order_id).await
    }
    async fn check_third(&self, pay_log: &PayLog) -> Result<Option<WechatRecord>, PayError> {
        PayExtension::check_third(self, pay_log).await
    }
    async fn cancel(&self, order_id: &str) -> Result<CancelResult, PayError> {
        PayExtension::cancel(self, order_id).await
    }
    async fn cancel_third(&self, order_id: &str) -> Result<CloseAtWechat, PayError> {
        PayExtension::cancel_third(self, order_id).await
    }
    async fn notify(&self, body: &[u8]) -> NotifyReply {
        PayExtension::notify(self, body).await
    }
    async fn notify_for_order(
        &self,
        notify: UnverifiedNotify,
        order: Arc<OrderFacts>,
        body: &[u8],
    ) -> NotifyReply {
        PayExtension::notify_for_order(self, notify, order, body).await
    }
    async fn reconcile(&self, order_id: &str) -> Result<PayLog, PayError> {
        PayExtension::reconcile(self, order_id).await
    }
    async fn refund(&self, request: RefundArgs) -> Result<Refund, PayError> {
        PayExtension::refund(self, request).await
    }
    async fn query_refund(&self, refund_id: &str) -> Result<Refund, PayError> {
        PayExtension::query_refund(self, refund_id).await
    }
    async fn list_refunds(&self, order_id: &str) -> Result<Vec<Refund>, PayError> {
        PayExtension::list_refunds(self, order_id).await
    }
    async fn refund_notify(&self, body: &[u8]) -> NotifyReply {
        PayExtension::refund_notify(self, body).await
    }
    fn api_version(&self) -> ApiVersion {
        PayExtension::api_version(self)
    }
    fn may_verify_serial(&self, serial: &str) -> bool {
        PayExtension::may_verify_serial(self, serial)
    }
    async fn open_notify(&self, request: &NotifyRequest) -> Result<OpenedNotify, NotifyReply> {
        PayExtension::open_notify(self, request).await
    }
    async fn payment_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        PayExtension::payment_notify_opened(self, opened).await
    }
    async fn refund_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        PayExtension::refund_notify_opened(self, opened).await
    }
}

/// The `Arc<dyn Pay>` an element provides, if it is a pay element.
pub fn pay_of(element: Arc<dyn Element>) -> Option<Arc<dyn Pay>> {
    element
        .interface(TypeId::of::<Arc<dyn Pay>>())
        .and_then(|provided| provided.downcast::<Arc<dyn Pay>>().ok())
        .map(|typed| *typed)
}

/// An element backed by any [`Pay`]: its functionList calls go through [`call_pay`] and it
/// provides `dyn Pay` to `App::get`.
pub struct PayElement {
    def: Arc<ElementDef>,
    pay: Arc<dyn Pay>,
}

impl PayElement {
    /// Wraps `pay` as the element `def`.
    pub fn new(def: Arc<ElementDef>, pay: Arc<dyn Pay>) -> Self {
        PayElement { def, pay }
    }

    /// The pay behind the element.
    pub fn pay(&self) -> &Arc<dyn Pay> {
        &self.pay
    }
}

#[async_trait]
impl Element for PayElement {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        _cx: &CallContext,
    ) -> Result<Value, CallError> {
        call_pay(self.pay.as_ref(), function, &args).await
    }

    fn interface(self: Arc<Self>, iface: TypeId) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        if iface == TypeId::of::<Arc<dyn Pay>>() {
            return Some(Box::new(self.pay.clone()));
        }
        if iface == TypeId::of::<Arc<Self>>() {
            return Some(Box::new(self));
        }
        None
    }
}

/// Calls the [`Pay`] method behind a functionList function, JSON in and out. Reusable by
/// any element that wraps a `Pay` (a Type extending `pays.WechatPayType`).
pub async fn call_pay(
    pay: &dyn Pay,
    function: &str,
    args: &Map<String, Value>,
) -> Result<Value, CallError> {
    match function {
        "create" => {
            let subject = arg_str(args, "subject")?;
            let amount = arg_amount(args)?;
            let order_id = arg_opt_str(args, "orderId")?.map(str::to_owned);
            to_json(&pay.create(subject, amount, order_id).await?)
        }
        "generateOrderId" => Ok(Value::String(pay.generate_order_id())),
        "getPayUrl" => {
            let order_id = arg_str(args, "orderId")?;
            let pay_type = arg_pay_type(args)?;
            let payer = arg_payer(args)?;
            to_json(&pay.get_pay_url(order_id, pay_type, &payer).await?)
        }
        "getNotifyUrl" => Ok(Value::String(pay.get_notify_url())),
        "getOrder" => to_json(&pay.get_order(arg_str(args, "orderId")?).await?),
        "check" => to_json(&pay.check(arg_str(args, "orderId")?).await?),
        "checkThird" => {
            let order_id = match args.get("payLog") {
                Some(Value::Object(log)) => log.get("orderId").and_then(Value::as_str),
                Some(Value::String(id)) => Some(id.as_str()),
                _ => None,
            }
            .ok_or_else(|| {
                CallError::bad_arguments(
                    "argument `payLog` must be a pay log object with `orderId` (or the order id)",
                )
            })?;
            let log = pay.get_order(order_id).await?;
            to_json(&pay.check_third(&log).await?)
        }
        "cancel" => to_json(&pay.cancel(arg_str(args, "orderId")?).await?),
        "cancelThird" => to_json(&pay.cancel_third(arg_str(args, "orderId")?).await?),
        "notify" if pay.api_version() == ApiVersion::V3 => {
            let request = arg_notify_request(args, "request")?;
            let reply = match pay.open_notify(&request).await {
                Ok(opened) => pay.payment_notify_opened(opened).await,
                Err(refused) => refused,
            };
            Ok(json!({ "outcome": to_json(reply.outcome())?, "reply": reply.v3_http() }))
        }
        "notify" => {
            let reply = pay.notify(arg_str(args, "xml")?.as_bytes()).await;
            Ok(json!({ "outcome": to_json(reply.outcome())?, "reply": reply.xml() }))
        }
        "refund" => to_json(&pay.refund(arg_refund(args)?).await?),
        "queryRefund" => to_json(&pay.query_refund(arg_str(args, "refundId")?).await?),
        "listRefunds" => to_json(&pay.list_refunds(arg_str(args, "orderId")?).await?),
        "refundNotify" if pay.api_version() == ApiVersion::V3 => {
            let request = arg_notify_request(args, "request")?;
            let reply = match pay.open_notify(&request).await {
                Ok(opened) => pay.refund_notify_opened(opened).await,
                Err(refused) => refused,
            };
            Ok(json!({ "outcome": to_json(reply.outcome())?, "reply": reply.v3_http() }))
        }
        "refundNotify" => {
            let reply = pay.refund_notify(arg_str(args, "xml")?.as_bytes()).await;
            Ok(json!({ "outcome": to_json(reply.outcome())?, "reply": reply.xml() }))
        }
        "getProperties" => Ok(json!({
            "fullName": pay.full_name(),
            "config": pay.config(),
            "appId": pay.app_id(),
            "mchId": pay.mch_id(),
            "apiKey": jit_runtime::MASK,
        })),
        other => Err(no_such_function(pay.full_name(), other)),
    }
}
