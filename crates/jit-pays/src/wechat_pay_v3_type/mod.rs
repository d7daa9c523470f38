//! `pays.WechatPayV3Type`: the template Type whose instances are WeChat Pay API v3
//! merchants, beside `pays.WechatPayType` (V2).
//!
//! An instance is configuration only (`config`: appId, mchId, apiV3Key, the merchant
//! private key and its certificate serial, how WeChat is verified); this module turns it
//! into a [`WechatPayV3`], a [`Pay`](crate::Pay) over the same order store, state machine, outbox and
//! `PaySvc` as V2, and the `wechatpay-v3` client. The order and refund flows are the
//! family's ([`crate::gateway`]); this Type answers their calls in V3's words (`calls`)
//! and verifies and decrypts V3's notifies (`notify`).

use std::sync::Arc;

use async_trait::async_trait;
use jit_runtime::{Element, ElementError, LoadContext, Loader, Secret};
use serde_json::{Map, Value};
use wechatpay_v3::{Client, ClientConfig, RetryPolicy, Verification};

use crate::db::entity::{ApiVersion, pay_log, refund};
use crate::db::store::PayStore;
use crate::error::PayError;
use crate::gateway::{
    self, Gateway, PrepayOutcome, QueriedOrder, RefundAtWechat, RefundRequestFailed,
};
use crate::model::{
    CloseAtWechat, NotifyReply, NotifyRequest, OpenedNotify, PayType, Payer, RefusalReason,
};
use crate::pay::PayElement;
use crate::settings::PaysSettings;

mod calls;
mod config;
mod notify;

pub(crate) use config::shown_settings;
pub use config::{
    WechatPayV3Config, WechatVerification, live_gateway_problems, v3_merchant_settings,
};

/// The fullName of the official Type.
pub const WECHAT_PAY_V3_TYPE: &str = "pays.WechatPayV3Type";

/// A WeChat Pay API v3 merchant as a [`Pay`](crate::Pay).
pub struct WechatPayV3 {
    full_name: String,
    config: WechatPayV3Config,
    masked_config: Value,
    client: Client,
    store: Arc<PayStore>,
    settings: Arc<PaysSettings>,
    notify_url: String,
    refund_notify_url: String,
}

impl std::fmt::Debug for WechatPayV3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatPayV3")
            .field("full_name", &self.full_name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The configuration as shown (`getProperties`, logs): appId, mchId, the serial, how
/// WeChat is verified, the APIv3 key masked.
fn masked_config(config: &WechatPayV3Config) -> Value {
    let mut masked = Map::new();
    masked.insert("appId".into(), Value::String(config.app_id.clone()));
    masked.insert("mchId".into(), Value::String(config.mch_id.clone()));
    masked.insert("apiV3Key".into(), Value::String(jit_runtime::MASK.into()));
    masked.insert(
        "merchantSerialNo".into(),
        Value::String(config.merchant_serial_no.clone()),
    );
    masked.insert(
        "verification".into(),
        Value::String(config.verification.as_ref().map_or_else(
            || "the simulator's keys".to_owned(),
            WechatVerification::describe,
        )),
    );
    Value::Object(masked)
}

/// How the instance of `full_name` verifies WeChat: the host's simulator's keys when the
/// simulator is the gateway (it *is* WeChat then), else the configured ones.
fn verification(
    full_name: &str,
    config: &WechatPayV3Config,
    settings: &PaysSettings,
) -> Result<Verification, ElementError> {
    if let Some(simulator) = &settings.simulator {
        let keys = simulator.wechat_v3_keys().map_err(|error| {
            ElementError::with_source(
                format!("{full_name}: the simulator's WeChat Pay V3 keys"),
                std::io::Error::other(error),
            )
        })?;
        return keys.verification().map_err(|error| {
            ElementError::with_source(
                format!("{full_name}: the simulator's WeChat Pay V3 keys"),
                error,
            )
        });
    }
    config
        .verification
        .as_ref()
        .map(WechatVerification::to_client)
        .ok_or_else(|| ElementError::InvalidSetting {
            key: "wechatpayPublicKeyId".to_owned(),
            message: format!(
                "`{full_name}` does not say how to verify WeChat's signatures: set \
                 `wechatpayPublicKeyId` and `wechatpayPublicKeyPath`, or \
                 `\"platformCertificates\": true` (only the simulator as gateway needs neither)"
            ),
        })
}

/// The V3 client of the merchant `config` at the host's gateway: the one the instance
/// signs its calls with, and its bills are downloaded with.
pub(crate) fn gateway_client(
    full_name: &str,
    config: &WechatPayV3Config,
    settings: &PaysSettings,
) -> Result<Client, ElementError> {
    let mut client_config = ClientConfig::new(
        config.app_id.clone(),
        config.mch_id.clone(),
        config.merchant_serial_no.clone(),
        config.private_key.clone(),
        config.api_v3_key.clone(),
        verification(full_name, config, settings)?,
    );
    client_config.base_url = settings.gateway_base_url.clone();
    client_config.request_timeout = settings.gateway_timeout;
    client_config.retry = RetryPolicy {
        max_attempts: settings.gateway_attempts.max(1),
        ..RetryPolicy::default()
    };
    Client::new(client_config)
        .map_err(|e| ElementError::with_source(format!("{full_name}: WeChat Pay V3 client"), e))
}

impl WechatPayV3 {
    /// Builds the pay of `full_name` from its resolved config and the family's services.
    pub fn new(
        full_name: String,
        config: WechatPayV3Config,
        store: Arc<PayStore>,
        settings: Arc<PaysSettings>,
    ) -> Result<Self, ElementError> {
        let missing_url = |what: &str| ElementError::InvalidSetting {
            key: "notify_url".to_owned(),
            message: format!(
                "`{full_name}`: the host gave no {what} URL for V3 notifies \
                 (PaysSettings::with_v3_notify_urls)"
            ),
        };
        let notify_url = settings
            .v3_notify_url
            .clone()
            .ok_or_else(|| missing_url("payment notify"))?;
        let refund_notify_url = settings
            .v3_refund_notify_url
            .clone()
            .ok_or_else(|| missing_url("refund notify"))?;
        let client = gateway_client(&full_name, &config, &settings)?;
        Ok(WechatPayV3 {
            masked_config: masked_config(&config),
            full_name,
            config,
            client,
            store,
            settings,
            notify_url,
            refund_notify_url,
        })
    }

    /// Builds it from a loader context: config from the chain, services from the app.
    pub fn from_load_context(cx: &LoadContext) -> Result<Self, ElementError> {
        let chain = cx.chain();
        WechatPayV3::new(
            chain.element().full_name.to_string(),
            WechatPayV3Config::from_chain(chain)?,
            cx.service::<PayStore>()?,
            cx.service::<PaysSettings>()?,
        )
    }
}

#[async_trait]
impl Gateway for WechatPayV3 {
    fn full_name(&self) -> &str {
        &self.full_name
    }

    fn app_id(&self) -> &str {
        &self.config.app_id
    }

    fn mch_id(&self) -> &str {
        &self.config.mch_id
    }

    fn api_version(&self) -> ApiVersion {
        ApiVersion::V3
    }

    fn store(&self) -> &PayStore {
        &self.store
    }

    fn settings(&self) -> &PaysSettings {
        &self.settings
    }

    async fn prepay(
        &self,
        order: &pay_log::Model,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PrepayOutcome, PayError> {
        self.prepay_at_wechat(order, pay_type, payer).await
    }

    async fn client_pay_params(
        &self,
        order_id: &str,
        pay_type: PayType,
        prepay_id: &str,
    ) -> Result<String, PayError> {
        self.client_params(order_id, pay_type, prepay_id)
    }

    async fn query_order(&self, order_id: &str) -> Result<Option<QueriedOrder>, PayError> {
        self.query_order_at_wechat(order_id).await
    }

    async fn close_order(&self, order_id: &str) -> Result<CloseAtWechat, PayError> {
        self.close_order_at_wechat(order_id).await
    }

    async fn request_refund(
        &self,
        refund: &refund::Model,
        total_fen: i64,
    ) -> Result<RefundAtWechat, RefundRequestFailed> {
        self.request_refund_at_wechat(refund, total_fen).await
    }

    async fn query_refund(
        &self,
        refund: &refund::Model,
    ) -> Result<Option<RefundAtWechat>, PayError> {
        self.query_refund_at_wechat(refund).await
    }
}

gateway::impl_pay_through_gateway!(WechatPayV3 {
    fn config(&self) -> Value {
        self.masked_config.clone()
    }

    /// Empty: a V3 merchant has no V2 API key (its APIv3 key never leaves the element).
    fn api_key(&self) -> Secret<String> {
        Secret::new(String::new())
    }

    fn get_notify_url(&self) -> String {
        self.notify_url.clone()
    }

    /// A bare body cannot be a V3 notify (its signature is in the request's headers): a
    /// V2 notify that reached this V3 element, refused.
    async fn notify(&self, _body: &[u8]) -> NotifyReply {
        NotifyReply::refused(
            RefusalReason::Misrouted,
            format!(
                "`{}` speaks WeChat Pay V3: a notify needs the request's headers (PaySvc's \
                 wechatNotifyV3, or this element's notify with the request)",
                self.full_name
            ),
        )
    }

    /// As `notify`: a V3 refund notify needs its headers.
    async fn refund_notify(&self, body: &[u8]) -> NotifyReply {
        self.notify(body).await
    }

    fn may_verify_serial(&self, serial: &str) -> bool {
        self.may_verify(serial)
    }

    async fn open_notify(&self, request: &NotifyRequest) -> Result<OpenedNotify, NotifyReply> {
        self.open(request).await
    }

    async fn payment_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        self.handle_payment(opened).await
    }

    async fn refund_notify_opened(&self, opened: OpenedNotify) -> NotifyReply {
        self.handle_refund(opened).await
    }
});

/// The loader registered for `pays.WechatPayV3Type`: builds each instance as a
/// [`PayElement`] over a [`WechatPayV3`].
#[derive(Debug, Default)]
pub struct WechatPayV3Loader;

#[async_trait]
impl Loader for WechatPayV3Loader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        let pay = WechatPayV3::from_load_context(&cx)?;
        Ok(Arc::new(PayElement::new(cx.def().clone(), Arc::new(pay))))
    }
}
