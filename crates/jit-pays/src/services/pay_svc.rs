//! `pays.services.PaySvc`: the family's service element. It routes each call to the pay
//! element that owns the order, and receives WeChat's notifies at one shared URL per kind
//! and API: `wechatNotify` and `wechatRefundNotify` (V2, XML), `wechatNotifyV3` and
//! `wechatRefundNotifyV3` (V3, the host's `http` body format: headers and raw body in,
//! status and JSON body out).

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jit_runtime::{
    App, CallContext, CallError, Element, ElementDef, ElementError, LoadContext, Loader,
    LogAdmission, RefusalLogLimiter, WeakApp, log_safe,
};
use serde::Serialize;
use serde_json::{Map, Value};
use wechatpay_v2::Fen;

use crate::args::{
    arg_amount, arg_notify_request, arg_opt_str, arg_pay_type, arg_payer, arg_refund, arg_str,
    no_such_function, to_json,
};
use crate::db::PayStore;
use crate::db::entity::{ApiVersion, OrderRefundStatus, PayStatus};
use crate::db::notify_log::{NotifyKind, NotifyLogEntry, logged_with_payment};
use crate::element_pay::pay_of_element;
use crate::error::PayError;
use crate::instances::{is_pay_instance, pay_api_version, pay_instances, pay_instances_of};
use crate::model::{
    NotifyOutcome, NotifyReply, NotifyRequest, OpenedNotify, PayLog, PayType, PayUrl, Payer,
    Refund, RefundArgs, RefusalReason,
};
use crate::pay::Pay;
use crate::wechat_pay_type::{read_notify, unknown_order};

/// The fullName of the element.
pub const PAY_SVC: &str = "pays.services.PaySvc";

/// `query`'s answer: `{orderId, status, amount, payTime}` (+ `amountFen`, `paidAfterClose`,
/// `refundedFen`, `refundStatus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    /// Order number.
    pub order_id: String,
    /// State.
    pub status: PayStatus,
    /// Amount in yuan, exact decimal text (`"99.99"`).
    pub amount: String,
    /// Amount in fen.
    pub amount_fen: Fen,
    /// When it was paid.
    pub pay_time: Option<DateTime<Utc>>,
    /// Paid after it had been closed locally.
    pub paid_after_close: bool,
    /// The money refunded so far, in fen.
    pub refunded_fen: Fen,
    /// `none`, `partial` or `full`.
    pub refund_status: OrderRefundStatus,
}

impl From<PayLog> for OrderSummary {
    fn from(log: PayLog) -> Self {
        OrderSummary {
            order_id: log.order_id,
            status: log.status,
            amount: log.amount_yuan,
            amount_fen: log.amount,
            pay_time: log.pay_time,
            paid_after_close: log.paid_after_close,
            refunded_fen: log.refunded_fen,
            refund_status: log.refund_status,
        }
    }
}

/// The source key of refusals whose sender is not known (the host gave no peer address):
/// they share one budget.
const UNKNOWN_PEER: &str = "unknown peer";

/// The PaySvc element.
pub struct PaySvc {
    def: Arc<ElementDef>,
    app: WeakApp,
    store: Arc<PayStore>,
    /// Refused notifies are logged at most this often per sender, so a flood of forgeries
    /// cannot fill the disk.
    refusal_log: RefusalLogLimiter,
}

impl PaySvc {
    /// The service of `app`, reading orders from `store`.
    pub fn new(def: Arc<ElementDef>, app: WeakApp, store: Arc<PayStore>) -> Self {
        PaySvc {
            def,
            app,
            store,
            refusal_log: RefusalLogLimiter::default(),
        }
    }

    /// The same service with its own budget for refusal logs (tests, hosts that want
    /// another rate than [`RefusalLogLimiter::default`]).
    pub fn with_refusal_log(mut self, limiter: RefusalLogLimiter) -> Self {
        self.refusal_log = limiter;
        self
    }

    fn app(&self) -> Result<App, PayError> {
        self.app
            .upgrade()
            .ok_or_else(|| PayError::unavailable("the app is no longer running"))
    }

    /// The pay element `name` as a [`Pay`]: its typed one, or — for an element offering
    /// none (a plugin's Type extending `pays.WechatPayType`) — one calling its functions.
    ///
    /// A name that is no WeChat Pay instance is the caller's mistake
    /// ([`PayError::Invalid`]); an instance that cannot be built (its settings, its
    /// plugin) is the operator's ([`PayError::Unavailable`], an internal error whose
    /// detail goes to the log, not to the caller).
    pub async fn pay_named(&self, name: &str) -> Result<Arc<dyn Pay>, PayError> {
        let app = self.app()?;
        let definitions = app.definitions();
        let refused = |message: String| PayError::Invalid {
            field: "element",
            message,
        };
        match definitions.chain(name) {
            None => {
                let hint = definitions
                    .suggest(name)
                    .map(|near| format!(" (did you mean `{near}`?)"))
                    .unwrap_or_default();
                return Err(refused(format!("no element `{name}`{hint}")));
            }
            Some(chain) if !is_pay_instance(definitions, chain) => {
                return Err(refused(if pay_api_version(chain).is_some() {
                    format!("`{name}` is a pay Type, not an instance that can take orders")
                } else {
                    format!("`{name}` is not a WeChat Pay element (its chain is {chain})")
                }));
            }
            Some(_) => {}
        }
        pay_of_element(&app, name).await
    }

    /// The default pay element: the first (by fullName) pay instance, of
    /// `pays.WechatPayType`, `pays.WechatPayV3Type` or a Type extending either.
    pub fn default_pay_name(&self) -> Result<String, PayError> {
        let app = self.app()?;
        pay_instances(app.definitions())
            .map(|chain| chain.element().full_name.to_string())
            .next()
            // The app's configuration, not the caller, lacks a merchant.
            .ok_or_else(|| {
                PayError::unavailable(format!(
                    "the app has no instance of {} or {}",
                    crate::WECHAT_PAY_TYPE,
                    crate::WECHAT_PAY_V3_TYPE
                ))
            })
    }

    /// The pay element that owns `order_id`.
    pub async fn pay_for_order(&self, order_id: &str) -> Result<Arc<dyn Pay>, PayError> {
        let row = self.store.get_order(order_id).await?;
        self.pay_of_element(&row.element)
            .await
            .map_err(|e| PayError::unavailable_because(format!("order {order_id}"), e))
    }

    /// The pay element `name`, which owns an order.
    async fn pay_of_element(&self, name: &str) -> Result<Arc<dyn Pay>, PayError> {
        pay_of_element(&self.app()?, name).await
    }

    /// Creates an order with `element` (default: [`Self::default_pay_name`]).
    pub async fn create(
        &self,
        element: Option<&str>,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError> {
        let name = match element {
            Some(name) => name.to_owned(),
            None => self.default_pay_name()?,
        };
        self.pay_named(&name)
            .await?
            .create(subject, amount, order_id)
            .await
    }

    /// getPayUrl through the owning element.
    pub async fn get_pay_url(
        &self,
        order_id: &str,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PayUrl, PayError> {
        self.pay_for_order(order_id)
            .await?
            .get_pay_url(order_id, pay_type, payer)
            .await
    }

    /// The stored state of an order.
    pub async fn query(&self, order_id: &str) -> Result<OrderSummary, PayError> {
        Ok(PayLog::from(self.store.get_order(order_id).await?).into())
    }

    /// check through the owning element.
    pub async fn check(&self, order_id: &str) -> Result<OrderSummary, PayError> {
        Ok(self
            .pay_for_order(order_id)
            .await?
            .check(order_id)
            .await?
            .into())
    }

    /// Reconciles the Beijing day `date` of every WeChat Pay instance (or only `element`)
    /// against WeChat's ALL bill ([`crate::bills::reconcile`]).
    pub async fn reconcile(
        &self,
        date: chrono::NaiveDate,
        element: Option<&str>,
    ) -> Result<Vec<crate::bills::ReconcileDay>, crate::bills::BillsError> {
        crate::bills::reconcile_days(&self.app()?, date, element).await
    }

    /// Handles a notify POSTed to the shared URL, its sender unknown: as
    /// [`PaySvc::wechat_notify_from`] with no peer address.
    pub async fn wechat_notify(&self, body: &[u8]) -> NotifyReply {
        self.wechat_notify_from(body, None).await
    }

    /// Handles a notify POSTed to the shared URL by `peer`: the order it names decides the
    /// element, whose key verifies it. Unknown orders and unreadable bodies are FAIL,
    /// nothing changed.
    ///
    /// Every refusal, this service's or the element's, is logged here: the reason escaped
    /// ([`log_safe`]: it quotes the unverified body) and at most a few times a minute per
    /// peer address (senders without one share a budget).
    pub async fn wechat_notify_from(&self, body: &[u8], peer: Option<IpAddr>) -> NotifyReply {
        let reply = self.route_notify(body).await;
        self.answered(NotifyKind::Payment, body, reply, peer)
    }

    /// What every notify entry point does with its reply, V2's and V3's: counts it, logs a
    /// refusal (escaped, rate-limited per peer) and notes the notify in the notify log
    /// (a recorded payment has its row from the notify writer already).
    fn answered(
        &self,
        kind: NotifyKind,
        body: &[u8],
        reply: NotifyReply,
        peer: Option<IpAddr>,
    ) -> NotifyReply {
        let counted = match kind {
            NotifyKind::Payment => crate::metrics::NotifyKind::Payment,
            NotifyKind::Refund => crate::metrics::NotifyKind::Refund,
        };
        crate::metrics::notify(counted, &reply);
        if let NotifyOutcome::Rejected { reason, .. } = reply.outcome() {
            self.log_refusal(peer, reason);
        }
        if kind == NotifyKind::Refund || !logged_with_payment(reply.outcome()) {
            self.store.notify_log().note(NotifyLogEntry::of_reply(
                kind,
                body,
                reply.outcome(),
                peer,
            ));
        }
        reply
    }

    fn log_refusal(&self, peer: Option<IpAddr>, reason: &str) {
        let source = peer.map(|peer| peer.to_string());
        let source = source.as_deref().unwrap_or(UNKNOWN_PEER);
        if let LogAdmission::Log { suppressed } = self.refusal_log.admit(source) {
            tracing::warn!(
                peer = source,
                reason = %log_safe(reason),
                suppressed_since_last = suppressed,
                "payment notify refused"
            );
        }
    }

    /// refund through the element that owns the order.
    pub async fn refund(&self, request: RefundArgs) -> Result<Refund, PayError> {
        self.pay_for_order(&request.order_id)
            .await?
            .refund(request)
            .await
    }

    /// queryRefund through the element that owns the refund's order.
    pub async fn query_refund(&self, refund_id: &str) -> Result<Refund, PayError> {
        let refund =
            self.store
                .find_refund(refund_id)
                .await?
                .ok_or_else(|| PayError::UnknownRefund {
                    refund_id: refund_id.to_owned(),
                })?;
        self.pay_of_element(&refund.element)
            .await
            .map_err(|e| PayError::unavailable_because(format!("refund {refund_id}"), e))?
            .query_refund(refund_id)
            .await
    }

    /// listRefunds through the element that owns the order.
    pub async fn list_refunds(&self, order_id: &str) -> Result<Vec<Refund>, PayError> {
        self.pay_for_order(order_id)
            .await?
            .list_refunds(order_id)
            .await
    }

    /// Handles a refund notify POSTed to the shared URL by `peer`. Refund notifies carry
    /// no signature and name their refund only inside `req_info`, encrypted with the
    /// merchant's key: the outer `mch_id` and `appid` pick the merchants that may have
    /// sent it, the one whose key decrypts it reveals the refund, and the element that
    /// owns the refund handles it (decrypting again, and checking it against the refund).
    /// Refusals are logged as [`PaySvc::wechat_notify_from`] logs them.
    pub async fn wechat_refund_notify_from(
        &self,
        body: &[u8],
        peer: Option<IpAddr>,
    ) -> NotifyReply {
        let reply = self.route_refund_notify(body).await;
        self.answered(NotifyKind::Refund, body, reply, peer)
    }

    async fn route_refund_notify(&self, body: &[u8]) -> NotifyReply {
        let outer = match wechatpay_v2::xml::decode(body) {
            Ok(outer) => outer,
            Err(error) => {
                return NotifyReply::refused(
                    RefusalReason::Malformed,
                    format!("unreadable refund notify: {error}"),
                );
            }
        };
        let (Some(mch_id), Some(appid), Some(req_info)) = (
            outer.get("mch_id"),
            outer.get("appid"),
            outer.get("req_info"),
        ) else {
            return NotifyReply::refused(
                RefusalReason::Malformed,
                "refund notify without mch_id, appid or req_info",
            );
        };
        let app = match self.app() {
            Ok(app) => app,
            Err(error) => return NotifyReply::failed(error.to_string()),
        };
        // V2 refund notifies decrypt with V2 API keys: V3 merchants have none.
        let names: Vec<String> = pay_instances_of(app.definitions(), ApiVersion::V2)
            .map(|chain| chain.element().full_name.to_string())
            .collect();
        let mut merchants = 0;
        for name in names {
            let pay = match pay_of_element(&app, &name).await {
                Ok(pay) => pay,
                Err(error) => {
                    tracing::error!(element = %name, error = %log_safe(&error.to_string()),
                        "pay element unavailable while routing a refund notify");
                    continue;
                }
            };
            if pay.mch_id() != mch_id || pay.app_id() != appid {
                continue;
            }
            merchants += 1;
            let key = wechatpay_v2::ApiKey::new(pay.api_key().expose().clone());
            let Ok(info) = wechatpay_v2::decrypt_req_info(req_info, &key) else {
                continue;
            };
            let Some(refund_id) = info.get("out_refund_no") else {
                return NotifyReply::refused(
                    RefusalReason::Malformed,
                    "refund notify without out_refund_no",
                );
            };
            return match self.store.find_refund(refund_id).await {
                Ok(Some(refund)) => match self.pay_of_element(&refund.element).await {
                    Ok(owner) => owner.refund_notify(body).await,
                    Err(error) => {
                        tracing::error!(refund_id = %log_safe(refund_id),
                            error = %log_safe(&error.to_string()),
                            "refund notify could not be routed; WeChat will retry");
                        NotifyReply::failed("temporarily unable to handle the notify")
                    }
                },
                Ok(None) => NotifyReply::refused(
                    RefusalReason::UnknownOrder,
                    format!("refund notify for unknown refund {refund_id}"),
                ),
                Err(error) => {
                    tracing::error!(refund_id = %log_safe(refund_id),
                        error = %log_safe(&error.to_string()),
                        "refund notify could not be routed; WeChat will retry");
                    NotifyReply::failed("temporarily unable to handle the notify")
                }
            };
        }
        if merchants == 0 {
            NotifyReply::refused(
                RefusalReason::WrongMerchant,
                format!(
                    "refund notify for merchant {mch_id} / appid {appid}, which this app does not have"
                ),
            )
        } else {
            NotifyReply::refused(
                RefusalReason::BadSignature,
                format!("refund notify req_info does not decrypt with merchant {mch_id}'s key"),
            )
        }
    }

    /// Handles a V3 payment notify POSTed by `peer` (the request's headers and raw body):
    /// the `Wechatpay-Serial` picks the V3 instances whose keys may verify it, the first
    /// that verifies and decrypts it reveals the order, and the element that owns the order
    /// handles it (checking it against the order, with its own keys). Anything else is
    /// refused, nothing changed; refusals are logged as [`PaySvc::wechat_notify_from`]
    /// logs them.
    pub async fn wechat_notify_v3_from(
        &self,
        request: &NotifyRequest,
        peer: Option<IpAddr>,
    ) -> NotifyReply {
        let reply = match self.open_v3(request).await {
            Ok(opened) => self.route_opened_payment(opened).await,
            Err(refused) => refused,
        };
        self.answered(NotifyKind::Payment, request.body.as_bytes(), reply, peer)
    }

    /// Handles a V3 refund notify POSTed by `peer`: opened as a payment notify is, then
    /// handed to the element that owns the refund.
    pub async fn wechat_refund_notify_v3_from(
        &self,
        request: &NotifyRequest,
        peer: Option<IpAddr>,
    ) -> NotifyReply {
        let reply = match self.open_v3(request).await {
            Ok(opened) => self.route_opened_refund(opened).await,
            Err(refused) => refused,
        };
        self.answered(NotifyKind::Refund, request.body.as_bytes(), reply, peer)
    }

    /// Opens a V3 notify with the first V3 instance whose keys its `Wechatpay-Serial` may
    /// name and that verifies and decrypts it. Refused when it names no instance's key or
    /// none opens it (the first refusal is the answer).
    async fn open_v3(&self, request: &NotifyRequest) -> Result<OpenedNotify, NotifyReply> {
        let serial = request
            .signed_headers()
            .map_err(|error| {
                NotifyReply::refused(
                    RefusalReason::Malformed,
                    format!("V3 notify without its signature: {error}"),
                )
            })?
            .serial;
        let app = self
            .app()
            .map_err(|error| NotifyReply::failed(error.to_string()))?;
        let names: Vec<String> = pay_instances_of(app.definitions(), ApiVersion::V3)
            .map(|chain| chain.element().full_name.to_string())
            .collect();
        let mut first_refusal = None;
        for name in names {
            let pay = match pay_of_element(&app, &name).await {
                Ok(pay) => pay,
                Err(error) => {
                    tracing::error!(element = %name, error = %log_safe(&error.to_string()),
                        "pay element unavailable while routing a V3 notify");
                    continue;
                }
            };
            if !pay.may_verify_serial(&serial) {
                continue;
            }
            match pay.open_notify(request).await {
                Ok(opened) => return Ok(opened),
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                }
            }
        }
        Err(first_refusal.unwrap_or_else(|| {
            NotifyReply::refused(
                RefusalReason::BadSignature,
                format!(
                    "V3 notify: Wechatpay-Serial {serial} names no key of this app's V3 merchants"
                ),
            )
        }))
    }

    /// A verified V3 payment notify, to the element that owns its order.
    async fn route_opened_payment(&self, opened: OpenedNotify) -> NotifyReply {
        let order_id = opened.out_trade_no().to_owned();
        let routed = match self.store.order_facts(&order_id).await {
            Ok(Some(facts)) => self.pay_of_element(&facts.element).await,
            Ok(None) => return unknown_order(&order_id),
            Err(error) => Err(error.into()),
        };
        match routed {
            Ok(pay) => pay.payment_notify_opened(opened).await,
            Err(error) => {
                tracing::error!(order_id = %log_safe(&order_id), error = %log_safe(&error.to_string()),
                    "V3 notify could not be routed; WeChat will retry");
                NotifyReply::failed("temporarily unable to handle the notify")
            }
        }
    }

    /// A verified V3 refund notify, to the element that owns its refund.
    async fn route_opened_refund(&self, opened: OpenedNotify) -> NotifyReply {
        let crate::model::OpenedEvent::Refund(notify) = opened.event() else {
            return NotifyReply::refused(
                RefusalReason::Malformed,
                "a V3 payment notify sent to the refund notify URL",
            );
        };
        let refund_id = notify.refund.out_refund_no.clone();
        let routed = match self.store.find_refund(&refund_id).await {
            Ok(Some(refund)) => self.pay_of_element(&refund.element).await,
            Ok(None) => {
                return NotifyReply::refused(
                    RefusalReason::UnknownOrder,
                    format!("refund notify for unknown refund {refund_id}"),
                );
            }
            Err(error) => Err(error.into()),
        };
        match routed {
            Ok(pay) => pay.refund_notify_opened(opened).await,
            Err(error) => {
                tracing::error!(refund_id = %log_safe(&refund_id), error = %log_safe(&error.to_string()),
                    "V3 refund notify could not be routed; WeChat will retry");
                NotifyReply::failed("temporarily unable to handle the notify")
            }
        }
    }

    async fn route_notify(&self, body: &[u8]) -> NotifyReply {
        // Parsed once and the order looked up once: the owning element gets both. An order
        // this process has seen needs no read: its owner and amount never change.
        let (notify, order_id) = match read_notify(body) {
            Ok(read) => read,
            Err(refused) => return refused,
        };
        let routed = match self.store.order_facts(&order_id).await {
            Ok(Some(facts)) => self
                .pay_of_element(&facts.element)
                .await
                .map(|pay| (pay, facts)),
            Ok(None) => return unknown_order(&order_id),
            Err(error) => Err(error.into()),
        };
        match routed {
            Ok((pay, facts)) => pay.notify_for_order(notify, facts, body).await,
            Err(error) => {
                tracing::error!(order_id = %log_safe(&order_id), error = %log_safe(&error.to_string()),
                    "notify could not be routed; WeChat will retry");
                NotifyReply::failed("temporarily unable to handle the notify")
            }
        }
    }
}

#[async_trait]
impl Element for PaySvc {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        match function {
            "create" => {
                let subject = arg_str(&args, "subject")?;
                let amount = arg_amount(&args)?;
                let order_id = arg_opt_str(&args, "orderId")?.map(str::to_owned);
                let element = arg_opt_str(&args, "element")?;
                to_json(&self.create(element, subject, amount, order_id).await?)
            }
            "getPayUrl" => {
                let order_id = arg_str(&args, "orderId")?;
                let pay_type = arg_pay_type(&args)?;
                let payer = arg_payer(&args)?;
                to_json(&self.get_pay_url(order_id, pay_type, &payer).await?)
            }
            "query" => to_json(&self.query(arg_str(&args, "orderId")?).await?),
            "check" => to_json(&self.check(arg_str(&args, "orderId")?).await?),
            "reconcile" => {
                let date = crate::bills::parse_bill_date(arg_str(&args, "date")?)?;
                let element = arg_opt_str(&args, "element")?;
                to_json(&self.reconcile(date, element).await?)
            }
            "refund" => to_json(&self.refund(arg_refund(&args)?).await?),
            "queryRefund" => to_json(&self.query_refund(arg_str(&args, "refundId")?).await?),
            "listRefunds" => to_json(&self.list_refunds(arg_str(&args, "orderId")?).await?),
            "wechatRefundNotify" => {
                let reply = self
                    .wechat_refund_notify_from(arg_str(&args, "xml")?.as_bytes(), cx.peer)
                    .await;
                Ok(Value::String(reply.xml()))
            }
            "wechatNotifyV3" => {
                let request = arg_notify_request(&args, "request")?;
                let reply = self.wechat_notify_v3_from(&request, cx.peer).await;
                Ok(reply.v3_http())
            }
            "wechatRefundNotifyV3" => {
                let request = arg_notify_request(&args, "request")?;
                let reply = self.wechat_refund_notify_v3_from(&request, cx.peer).await;
                Ok(reply.v3_http())
            }
            "wechatNotify" => {
                let reply = self
                    .wechat_notify_from(arg_str(&args, "xml")?.as_bytes(), cx.peer)
                    .await;
                Ok(Value::String(reply.xml()))
            }
            other => Err(no_such_function(PAY_SVC, other)),
        }
    }
}

/// The loader registered for `pays.services.PaySvc`.
#[derive(Debug, Default)]
pub struct PaySvcLoader;

#[async_trait]
impl Loader for PaySvcLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(PaySvc::new(
            cx.def().clone(),
            cx.app().downgrade(),
            cx.service::<PayStore>()?,
        )))
    }
}
