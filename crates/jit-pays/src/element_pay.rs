//! A [`Pay`] over an element reached only through [`Element::call`] — the reverse of
//! [`crate::call_pay`].
//!
//! An element whose chain contains `pays.WechatPayType` need not hand out a typed
//! `dyn Pay`: a plugin's Type that extends it deliberately offers none (handing out its
//! parent's would bypass the plugin's overrides). Such an element still answers the
//! Type's functionList (`create`, `getPayUrl`, `check`, `notify`, …), so `PaySvc` and the
//! reconciler use it through those functions, and whatever the element overrides stays
//! in force. Properties come from the element's resolved configuration (the chain), as
//! for any WeChat Pay element.

use std::sync::Arc;

use async_trait::async_trait;
use jit_runtime::{App, CallContext, CallError, Element, GetError, Secret, log_safe};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use wechatpay_v2::Fen;

use crate::db::PayStore;
use crate::error::PayError;
use crate::meta::service;
use crate::model::{
    CancelResult, CloseAtWechat, NotifyOutcome, NotifyReply, PayLog, PayType, PayUrl, Payer,
    Refund, RefundArgs, RefusalReason, WechatRecord,
};
use crate::pay::Pay;
use crate::services::PAY_SVC;
use crate::settings::PaysSettings;
use crate::wechat_pay_type::{WECHAT_PAY_TYPE, WechatPayConfig, masked_config};

/// The pay element `name` of `app`: its typed `dyn Pay` when it offers one, else — when
/// its chain contains `pays.WechatPayType` — an [`ElementPay`] calling its functions.
pub async fn pay_of_element(app: &App, name: &str) -> Result<Arc<dyn Pay>, PayError> {
    match app.get::<dyn Pay>(name).await {
        Ok(pay) => Ok(pay),
        Err(GetError::WrongKind { .. }) => Ok(Arc::new(ElementPay::of(app, name).await?)),
        Err(error) => Err(PayError::unavailable_because(
            format!("pay element `{name}`"),
            error,
        )),
    }
}

/// A pay element used through its functions.
pub struct ElementPay {
    element: Arc<dyn Element>,
    full_name: String,
    config: WechatPayConfig,
    masked_config: Value,
    notify_url: String,
    store: Arc<PayStore>,
}

impl std::fmt::Debug for ElementPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementPay")
            .field("full_name", &self.full_name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ElementPay {
    /// Wraps element `name` of `app`, which must have `pays.WechatPayType` in its chain.
    pub async fn of(app: &App, name: &str) -> Result<Self, PayError> {
        let chain = app
            .definitions()
            .chain(name)
            .ok_or_else(|| PayError::unavailable(format!("no element `{name}`")))?;
        if !chain.contains(WECHAT_PAY_TYPE) {
            return Err(PayError::unavailable(format!(
                "element `{name}` is not a pay element: its chain ({}) does not contain \
                 {WECHAT_PAY_TYPE}",
                chain.names().collect::<Vec<_>>().join(" → ")
            )));
        }
        let config = WechatPayConfig::from_chain(chain)
            .map_err(|e| PayError::unavailable_because(format!("element `{name}`"), e))?;
        let settings = service::<PaysSettings>(app, "PaysSettings")?;
        let element = app
            .get::<dyn Element>(name)
            .await
            .map_err(|e| PayError::unavailable_because(format!("pay element `{name}`"), e))?;
        Ok(ElementPay {
            element,
            full_name: name.to_owned(),
            masked_config: masked_config(&config),
            config,
            notify_url: settings.notify_url.clone(),
            store: service::<PayStore>(app, "PayStore")?,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        function: &'static str,
        args: Map<String, Value>,
    ) -> Result<T, PayError> {
        let answer = self
            .element
            .call(function, args, &CallContext::principal(PAY_SVC))
            .await
            .map_err(|source| self.call_error(function, source))?;
        serde_json::from_value(answer).map_err(|e| {
            PayError::unavailable_because(
                format!(
                    "`{}`.{function} answered something other than the pays Type's result",
                    self.full_name
                ),
                e,
            )
        })
    }

    /// Hands a notify body (`what`: "payment notify", "refund notify") to the element's
    /// `function` and replies with the outcome it reports.
    async fn notify_through(&self, function: &'static str, what: &str, body: &[u8]) -> NotifyReply {
        let Ok(xml) = std::str::from_utf8(body) else {
            // Refused like any other notify: the entry point logs the reason.
            return NotifyReply::refused(
                RefusalReason::Malformed,
                format!("{what} body is not UTF-8"),
            );
        };
        /// The element's answer: what happened. Its `reply` is not read: the XML WeChat
        /// hears is derived from the outcome, so it cannot contradict it.
        #[derive(serde::Deserialize)]
        struct Answer {
            outcome: NotifyOutcome,
        }
        match self
            .call::<Answer>(function, args([("xml", json!(xml))]))
            .await
        {
            Ok(answer) => NotifyReply::new(answer.outcome),
            Err(error) => {
                let reason = error.to_string();
                tracing::error!(element = %self.full_name, reason = %log_safe(&reason),
                    "{what} could not be handed to the element; WeChat will retry");
                NotifyReply::failed(reason)
            }
        }
    }

    fn call_error(&self, function: &'static str, source: CallError) -> PayError {
        PayError::Element {
            element: self.full_name.clone(),
            function,
            source,
        }
    }
}

/// `amount` as `create` declares it: a JSON number of yuan (`Numeric`; a plugin's host
/// checks the type before the call reaches its parent). The number is read from the
/// amount's exact decimal text, so it prints as the same decimal (`99.99`, `100.0`) and
/// `Fen::from_yuan_json` reads back the same fen: every amount up to
/// [`Fen::MAX_TOTAL_FEE`] has at most ten significant digits, which a JSON number keeps.
fn yuan_number(amount: Fen) -> Value {
    let text = amount.to_string();
    serde_json::from_str::<Value>(&text)
        .ok()
        .filter(Value::is_number)
        .unwrap_or(Value::String(text))
}

/// A function's arguments.
fn args<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

#[async_trait]
impl Pay for ElementPay {
    fn full_name(&self) -> &str {
        &self.full_name
    }

    fn config(&self) -> Value {
        self.masked_config.clone()
    }

    fn app_id(&self) -> &str {
        &self.config.app_id
    }

    fn mch_id(&self) -> &str {
        &self.config.mch_id
    }

    fn api_key(&self) -> Secret<String> {
        Secret::new(self.config.api_key.expose_secret().to_owned())
    }

    async fn create(
        &self,
        subject: &str,
        amount: Fen,
        order_id: Option<String>,
    ) -> Result<PayLog, PayError> {
        self.call(
            "create",
            args([
                ("subject", json!(subject)),
                ("amount", yuan_number(amount)),
                ("orderId", json!(order_id)),
            ]),
        )
        .await
    }

    async fn get_pay_url(
        &self,
        order_id: &str,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PayUrl, PayError> {
        self.call(
            "getPayUrl",
            args([
                ("orderId", json!(order_id)),
                ("payType", json!(pay_type.as_str())),
                ("openid", json!(payer.openid)),
                ("clientIp", json!(payer.client_ip)),
                ("sceneInfo", json!(payer.scene_info)),
            ]),
        )
        .await
    }

    async fn get_order(&self, order_id: &str) -> Result<PayLog, PayError> {
        self.call("getOrder", args([("orderId", json!(order_id))]))
            .await
    }

    fn get_notify_url(&self) -> String {
        self.notify_url.clone()
    }

    async fn check(&self, order_id: &str) -> Result<PayLog, PayError> {
        self.call("check", args([("orderId", json!(order_id))]))
            .await
    }

    async fn check_third(&self, pay_log: &PayLog) -> Result<Option<WechatRecord>, PayError> {
        self.call(
            "checkThird",
            args([("payLog", json!({"orderId": pay_log.order_id}))]),
        )
        .await
    }

    async fn cancel(&self, order_id: &str) -> Result<CancelResult, PayError> {
        self.call("cancel", args([("orderId", json!(order_id))]))
            .await
    }

    async fn cancel_third(&self, order_id: &str) -> Result<CloseAtWechat, PayError> {
        self.call("cancelThird", args([("orderId", json!(order_id))]))
            .await
    }

    async fn notify(&self, body: &[u8]) -> NotifyReply {
        self.notify_through("notify", "payment notify", body).await
    }

    async fn reconcile(&self, order_id: &str) -> Result<PayLog, PayError> {
        // `reconcile` is no function of the Type: it is composed of the element's own
        // getOrder, check and cancelThird, and the local `wait → timeout`.
        crate::reconciler::reconcile_order(self, &self.store, order_id).await
    }

    async fn refund(&self, request: RefundArgs) -> Result<Refund, PayError> {
        self.call(
            "refund",
            args([
                ("orderId", json!(request.order_id)),
                ("amount", request.amount.map_or(Value::Null, yuan_number)),
                ("reason", json!(request.reason)),
                ("refundId", json!(request.refund_id)),
            ]),
        )
        .await
    }

    async fn query_refund(&self, refund_id: &str) -> Result<Refund, PayError> {
        self.call("queryRefund", args([("refundId", json!(refund_id))]))
            .await
    }

    async fn list_refunds(&self, order_id: &str) -> Result<Vec<Refund>, PayError> {
        self.call("listRefunds", args([("orderId", json!(order_id))]))
            .await
    }

    async fn refund_notify(&self, body: &[u8]) -> NotifyReply {
        self.notify_through("refundNotify", "refund notify", body)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_travel_as_json_numbers_that_read_back_exactly() {
        for fen in [
            1,
            29,
            980,
            1990,
            9999,
            10_000,
            123_456_789,
            Fen::MAX_TOTAL_FEE.get(),
        ] {
            let number = yuan_number(Fen::new(fen));
            assert!(number.is_number(), "{fen}: {number}");
            assert_eq!(Fen::from_yuan_json(&number), Ok(Fen::new(fen)), "{number}");
        }
    }
}
