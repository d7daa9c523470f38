//! `pays.WechatPayType`: the template Type whose instances are WeChat Pay V2 merchants.
//!
//! An instance is configuration only (appId, mchId, apiKey); this module turns it into a
//! [`WechatPay`], which implements [`Pay`](crate::Pay) over the order store and the V2 client. The
//! merchant settings are read in `config` (the merchant certificate in `certificate`).
//! The order and refund flows are the family's ([`crate::gateway`], shared with V3); this
//! Type answers their calls in V2's words, in `impl WechatPay` blocks by concern:
//! `orders` (orderquery, closeorder), `pay_url` (unifiedorder, client pay parameters),
//! `refunds` (refund, refundquery, refund notifies) and `notify` (payment notifies).

use std::sync::Arc;

use async_trait::async_trait;
use jit_runtime::{Element, ElementError, LoadContext, Loader, Secret};
use serde_json::{Map, Value};
use wechatpay_v2::{Client, ClientConfig, RetryPolicy, UnverifiedNotify};

use crate::db::cache::OrderFacts;
use crate::db::entity::{ApiVersion, pay_log, refund};
use crate::db::store::PayStore;
use crate::error::PayError;
use crate::gateway::{
    self, Gateway, PrepayOutcome, QueriedOrder, RefundAtWechat, RefundRequestFailed,
};
use crate::model::{CloseAtWechat, NotifyReply, PayType, Payer};
use crate::pay::PayElement;
use crate::settings::PaysSettings;

mod certificate;
mod config;
mod notify;
mod orders;
mod pay_url;
mod refunds;

pub(crate) use notify::{read_notify, unknown_order};

pub use certificate::{CertificateFile, MerchantCertificate};

pub use crate::merchant_settings::SettingSource;
pub(crate) use config::shown_settings;
pub use config::{WechatPayConfig, merchant_settings};

/// The fullName of the official Type.
pub const WECHAT_PAY_TYPE: &str = "pays.WechatPayType";

/// A WeChat Pay V2 merchant as a [`Pay`](crate::Pay).
pub struct WechatPay {
    full_name: String,
    config: WechatPayConfig,
    masked_config: Value,
    client: Client,
    store: Arc<PayStore>,
    settings: Arc<PaysSettings>,
    notify_url: String,
}

impl std::fmt::Debug for WechatPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatPay")
            .field("full_name", &self.full_name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The configuration as shown (`getProperties`, logs): appId, mchId, the key masked.
pub(crate) fn masked_config(config: &WechatPayConfig) -> Value {
    let mut masked = Map::new();
    masked.insert("appId".into(), Value::String(config.app_id.clone()));
    masked.insert("mchId".into(), Value::String(config.mch_id.clone()));
    masked.insert("apiKey".into(), Value::String(jit_runtime::MASK.into()));
    Value::Object(masked)
}

/// The V2 client of the merchant `config` at the host's gateway: the one every instance
/// signs its calls with (presenting `identity`, the merchant certificate, on refunds), and
/// the one its bills are downloaded with (no certificate needed).
pub(crate) fn gateway_client(
    full_name: &str,
    config: &WechatPayConfig,
    settings: &PaysSettings,
    identity: Option<wechatpay_v2::ClientIdentity>,
) -> Result<Client, ElementError> {
    Client::new(ClientConfig {
        base_url: settings.gateway_base_url.clone(),
        app_id: config.app_id.clone(),
        mch_id: config.mch_id.clone(),
        api_key: config.api_key.clone(),
        request_timeout: settings.gateway_timeout,
        retry: RetryPolicy {
            max_attempts: settings.gateway_attempts.max(1),
            ..RetryPolicy::default()
        },
        identity,
        ..ClientConfig::default()
    })
    .map_err(|e| ElementError::with_source(format!("{full_name}: WeChat Pay client"), e))
}

impl WechatPay {
    /// Builds the pay of `full_name` from its resolved config and the family's services.
    pub fn new(
        full_name: String,
        config: WechatPayConfig,
        masked_config: Value,
        notify_url: String,
        store: Arc<PayStore>,
        settings: Arc<PaysSettings>,
    ) -> Result<Self, ElementError> {
        // Read and checked once, here; refunds present it (`certificate` module).
        let identity = config
            .load_certificate()
            .map_err(crate::merchant_settings::invalid_setting)?;
        let client = gateway_client(&full_name, &config, &settings, identity)?;
        Ok(WechatPay {
            full_name,
            config,
            masked_config,
            client,
            store,
            settings,
            notify_url,
        })
    }

    /// Builds it from a loader context: config from the chain, services from the app.
    pub fn from_load_context(cx: &LoadContext) -> Result<Self, ElementError> {
        let chain = cx.chain();
        let config = WechatPayConfig::from_chain(chain)?;
        let settings = cx.service::<PaysSettings>()?;
        let masked = masked_config(&config);
        WechatPay::new(
            chain.element().full_name.to_string(),
            config,
            masked,
            settings.notify_url.clone(),
            cx.service::<PayStore>()?,
            settings,
        )
    }
}

#[async_trait]
impl Gateway for WechatPay {
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
        ApiVersion::V2
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
        self.unified_order(order, pay_type, payer).await
    }

    async fn client_pay_params(
        &self,
        order_id: &str,
        pay_type: PayType,
        prepay_id: &str,
    ) -> Result<String, PayError> {
        self.client_params(order_id, pay_type, prepay_id).await
    }

    async fn query_order(&self, order_id: &str) -> Result<Option<QueriedOrder>, PayError> {
        self.query_order_at_wechat(order_id).await
    }

    async fn close_order(&self, order_id: &str) -> Result<CloseAtWechat, PayError> {
        self.close_order_at_wechat(order_id).await
    }

    fn refund_ready(&self) -> Result<(), PayError> {
        self.require_merchant_certificate()
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

gateway::impl_pay_through_gateway!(WechatPay {
    fn config(&self) -> Value {
        self.masked_config.clone()
    }

    fn api_key(&self) -> Secret<String> {
        Secret::new(self.config.api_key.expose_secret().to_owned())
    }

    fn get_notify_url(&self) -> String {
        self.notify_url.clone()
    }

    async fn notify(&self, body: &[u8]) -> NotifyReply {
        self.handle_notify(body).await
    }

    async fn notify_for_order(
        &self,
        notify: UnverifiedNotify,
        order: Arc<OrderFacts>,
        body: &[u8],
    ) -> NotifyReply {
        self.handle_routed_notify(notify, order, body).await
    }

    async fn refund_notify(&self, body: &[u8]) -> NotifyReply {
        self.handle_refund_notify(body).await
    }
});

/// The loader registered for `pays.WechatPayType`: builds each instance as a
/// [`PayElement`] over a [`WechatPay`].
#[derive(Debug, Default)]
pub struct WechatPayLoader;

#[async_trait]
impl Loader for WechatPayLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        let pay = WechatPay::from_load_context(&cx)?;
        Ok(Arc::new(PayElement::new(cx.def().clone(), Arc::new(pay))))
    }
}
