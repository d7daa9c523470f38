//! `pays.WechatPayType`: the template Type whose instances are WeChat Pay V2 merchants.
//!
//! An instance is configuration only (appId, mchId, apiKey); this module turns it into a
//! [`WechatPay`], which implements [`Pay`] over the order store and the V2 client.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use jit_runtime::{Element, ElementError, LoadContext, Loader, Secret, log_safe};
use serde_json::{Map, Value, json};
use wechatpay_v2::{
    Client, ClientConfig, ErrCode, Error as WxError, Fen, OrderQueryResponse, OrderRef,
    RetryPolicy, TradeKind, TradeState, UnifiedOrderRequest, UnverifiedNotify, fail_reply,
    success_reply,
};

use crate::db::cache::OrderFacts;
use crate::db::entity::PayStatus;
use crate::db::store::{
    CloseOutcome, NewOrder, PaidOutcome, PayStore, PaymentRecorded, PrepayRecord, StoreError,
    ThirdPartyState, now,
};
use crate::error::PayError;
use crate::events::{PayEvent, PayEventKind, PayEvents};
use crate::model::{
    CancelResult, CloseAtWechat, NotifyOutcome, NotifyReply, PayLog, PayType, PayUrl, Payer,
    WechatRecord,
};
use crate::order_id::{
    generate_order_id, validate_order_id, validate_payer_text, validate_subject,
};
use crate::pay::{Pay, PayElement};
use crate::settings::PaysSettings;

mod config;

pub use config::{
    SettingSource, WechatPayConfig, check_merchant_settings, is_pay_instance, merchant_settings,
    pay_instances, shown_merchant_settings,
};

/// The fullName of the official Type.
pub const WECHAT_PAY_TYPE: &str = "pays.WechatPayType";

/// What a refused notify's sender is told. The same for every refusal, so the reply tells
/// a forger nothing (whether the order exists, which check failed); the log has the reason.
pub(crate) const REFUSED_REPLY_MESSAGE: &str = "notify refused";

/// How long WeChat keeps a prepay id usable.
const PREPAY_LIFETIME: chrono::Duration = chrono::Duration::hours(2);

/// How many generated order ids `create` tries before giving up on collisions.
const GENERATED_ID_ATTEMPTS: usize = 5;

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

fn wechat_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

fn parse_wechat_time(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S").ok()?;
    beijing()
        .from_local_datetime(&naive)
        .single()
        .map(|at| at.with_timezone(&Utc))
}

/// Calls `check` on every string in `value` (object keys included), stopping at the first
/// error.
fn for_each_string<E>(
    value: &Value,
    check: &mut impl FnMut(&str) -> Result<(), E>,
) -> Result<(), E> {
    match value {
        Value::String(text) => check(text),
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| for_each_string(item, check)),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            check(key)?;
            for_each_string(item, check)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// A WeChat Pay V2 merchant as a [`Pay`].
pub struct WechatPay {
    full_name: String,
    config: WechatPayConfig,
    masked_config: Value,
    client: Client,
    store: Arc<PayStore>,
    events: Arc<PayEvents>,
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

impl WechatPay {
    /// Builds the pay of `full_name` from its resolved config and the family's services.
    pub fn new(
        full_name: String,
        config: WechatPayConfig,
        masked_config: Value,
        notify_url: String,
        store: Arc<PayStore>,
        events: Arc<PayEvents>,
        settings: Arc<PaysSettings>,
    ) -> Result<Self, ElementError> {
        let client = Client::new(ClientConfig {
            base_url: settings.gateway_base_url.clone(),
            app_id: config.app_id.clone(),
            mch_id: config.mch_id.clone(),
            api_key: config.api_key.clone(),
            request_timeout: settings.gateway_timeout,
            retry: RetryPolicy {
                max_attempts: settings.gateway_attempts.max(1),
                ..RetryPolicy::default()
            },
            ..ClientConfig::default()
        })
        .map_err(|e| ElementError::with_source(format!("{full_name}: WeChat Pay client"), e))?;
        Ok(WechatPay {
            full_name,
            config,
            masked_config,
            client,
            store,
            events,
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
            cx.service::<PayEvents>()?,
            settings,
        )
    }

    async fn owned_order(
        &self,
        order_id: &str,
    ) -> Result<crate::db::entity::pay_log::Model, PayError> {
        let row = self.store.get_order(order_id).await?;
        if row.element != self.full_name {
            return Err(PayError::WrongElement {
                order_id: order_id.to_owned(),
                owner: row.element,
                this: self.full_name.clone(),
            });
        }
        Ok(row)
    }

    async fn announce(&self, order_id: &str, kind: PayEventKind) {
        match self.store.get_order(order_id).await {
            Ok(row) => self.events.emit(&PayEvent::transition(kind, row.into())),
            Err(error) => tracing::error!(
                %order_id, ?kind, %error,
                "transition committed but the order could not be re-read to announce it"
            ),
        }
    }

    /// Records a payment WeChat vouched for (verified notify or signed query) and announces
    /// it if this caller made the transition.
    async fn record_paid(
        &self,
        order_id: &str,
        transaction_id: Option<&str>,
        time_end: Option<&str>,
    ) -> Result<PaidOutcome, StoreError> {
        let paid_at = time_end.and_then(parse_wechat_time).unwrap_or_else(now);
        let recorded = self
            .store
            .mark_paid(order_id, transaction_id, paid_at)
            .await?;
        let outcome = recorded.outcome;
        self.announce_paid(order_id, recorded, transaction_id).await;
        Ok(outcome)
    }

    /// Announces a recorded payment if this caller made the transition, with the row its
    /// UPDATE returned; or a payment conflict (`reported` is the transaction id of the
    /// payment just recorded) the first time it is recorded.
    async fn announce_paid(
        &self,
        order_id: &str,
        recorded: PaymentRecorded,
        reported: Option<&str>,
    ) {
        let kind = match recorded.outcome {
            PaidOutcome::Paid => {
                tracing::info!(element = %self.full_name, %order_id, "order paid");
                PayEventKind::Paid
            }
            PaidOutcome::PaidAfterClose { previous } => {
                tracing::warn!(
                    %order_id, previous = %previous,
                    "payment arrived for an order closed locally: recorded as paid and flagged"
                );
                PayEventKind::PaidAfterClose
            }
            PaidOutcome::AlreadyPaid => return,
            PaidOutcome::Conflict { first_seen } => {
                let kept = recorded
                    .order
                    .as_ref()
                    .and_then(|order| order.transaction_id.as_deref())
                    .unwrap_or_default();
                let reported = reported.unwrap_or_default();
                if !first_seen {
                    tracing::info!(element = %self.full_name, order_id = %log_safe(order_id),
                        transaction_id = %log_safe(reported),
                        "repeat of a payment conflict already recorded");
                    return;
                }
                tracing::error!(
                    element = %self.full_name,
                    order_id = %log_safe(order_id),
                    order_transaction_id = %log_safe(kept),
                    conflicting_transaction_id = %log_safe(reported),
                    "second payment for an order already paid under another transaction: \
                     kept in pays_payment_conflict, the order keeps its first; refund it"
                );
                if let Some(row) = recorded.order {
                    self.events.emit(&PayEvent {
                        kind: PayEventKind::PaymentConflict,
                        order: row.into(),
                        conflicting_transaction_id: Some(reported.to_owned()),
                    });
                }
                return;
            }
        };
        match recorded.order {
            Some(row) => self.events.emit(&PayEvent::transition(kind, row.into())),
            None => self.announce(order_id, kind).await,
        }
    }

    async fn record_closed(&self, order_id: &str, to: PayStatus) -> Result<CloseOutcome, PayError> {
        let outcome = self.store.close_order(order_id, to).await?;
        if outcome == CloseOutcome::Closed {
            tracing::info!(element = %self.full_name, %order_id, status = %to, "order closed");
            let kind = if to == PayStatus::Timeout {
                PayEventKind::TimedOut
            } else {
                PayEventKind::Closed
            };
            self.announce(order_id, kind).await;
        }
        Ok(outcome)
    }

    /// orderquery → record table. `None` when WeChat has no such order.
    async fn query_wechat(
        &self,
        row: &crate::db::entity::pay_log::Model,
    ) -> Result<Option<OrderQueryResponse>, PayError> {
        let answer = self
            .client
            .order_query(&OrderRef::OutTradeNo(row.order_id.clone()))
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(WxError::Business {
                code: ErrCode::OrderNotExist,
                ..
            }) => return Ok(None),
            Err(source) => {
                return Err(PayError::Gateway {
                    doing: "orderquery",
                    order_id: row.order_id.clone(),
                    source,
                });
            }
        };
        if answer.out_trade_no != row.order_id {
            return Err(PayError::Mismatch {
                doing: "orderquery",
                order_id: row.order_id.clone(),
                message: format!("the answer is about order {}", answer.out_trade_no),
            });
        }
        self.store
            .save_query(ThirdPartyState {
                order_id: row.order_id.clone(),
                appid: self.config.app_id.clone(),
                mch_id: self.config.mch_id.clone(),
                total_fee: answer.total_fee.map_or(row.amount_fen, Fen::get),
                trade_state: Some(answer.trade_state.as_str().to_owned()),
                transaction_id: answer.transaction_id.clone(),
                raw: wechatpay_v2::xml::encode(&answer.raw),
            })
            .await?;
        Ok(Some(answer))
    }

    /// Applies what orderquery said to the pay log.
    async fn apply_query(
        &self,
        row: &crate::db::entity::pay_log::Model,
        answer: &OrderQueryResponse,
    ) -> Result<(), PayError> {
        if answer.trade_state.is_paid() {
            let total = answer.total_fee.map(Fen::get);
            if total != Some(row.amount_fen) {
                tracing::error!(
                    order_id = %row.order_id,
                    expected_fen = row.amount_fen,
                    reported_fen = ?total,
                    "orderquery reports a payment of another amount: order left unchanged"
                );
                return Err(PayError::Mismatch {
                    doing: "orderquery",
                    order_id: row.order_id.clone(),
                    message: format!(
                        "WeChat reports {} fen paid, the order is {} fen",
                        total.map_or("no".into(), |t| t.to_string()),
                        row.amount_fen
                    ),
                });
            }
            self.record_paid(
                &row.order_id,
                answer.transaction_id.as_deref(),
                answer.time_end.as_deref(),
            )
            .await?;
        } else if matches!(answer.trade_state, TradeState::Closed | TradeState::Revoked) {
            self.record_closed(&row.order_id, PayStatus::Close).await?;
        }
        Ok(())
    }

    fn trade_kind(
        &self,
        row: &crate::db::entity::pay_log::Model,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<TradeKind, PayError> {
        Ok(match pay_type {
            PayType::Native => TradeKind::Native {
                product_id: row.order_id.clone(),
            },
            PayType::App => TradeKind::App,
            PayType::Jsapi => TradeKind::Jsapi {
                openid: payer
                    .openid
                    .clone()
                    .filter(|o| !o.trim().is_empty())
                    .ok_or(PayError::Invalid {
                        field: "openid",
                        message: "JSAPI payment needs the payer's openid".into(),
                    })?,
            },
            PayType::Mweb => TradeKind::Mweb {
                scene_info: match &payer.scene_info {
                    Some(scene) => {
                        let parsed = serde_json::from_str::<Value>(scene).map_err(|e| {
                            PayError::Invalid {
                                field: "sceneInfo",
                                message: format!("is not JSON: {e}"),
                            }
                        })?;
                        // The scene's names are shown on the payer's H5 page.
                        for_each_string(&parsed, &mut |text| {
                            validate_payer_text("sceneInfo", text)
                        })?;
                        scene.clone()
                    }
                    None => json!({"h5_info": {
                        "type": "Wap",
                        "wap_url": self.settings.public_base_url,
                        "wap_name": row.subject,
                    }})
                    .to_string(),
                },
            },
        })
    }

    async fn pay_url_from_prepay(
        &self,
        pay_type: PayType,
        prepay_id: &str,
        code_url: Option<&str>,
        mweb_url: Option<&str>,
        order_id: &str,
    ) -> Result<PayUrl, PayError> {
        let gateway = |source| PayError::Gateway {
            doing: "client pay parameters",
            order_id: order_id.to_owned(),
            source,
        };
        let missing = |what: &str| PayError::Mismatch {
            doing: "unifiedorder",
            order_id: order_id.to_owned(),
            message: format!("no {what} for a {pay_type} order"),
        };
        Ok(match pay_type {
            PayType::Native => PayUrl {
                pay_url: code_url.ok_or_else(|| missing("code_url"))?.to_owned(),
                form: String::new(),
            },
            PayType::Mweb => PayUrl {
                pay_url: mweb_url.ok_or_else(|| missing("mweb_url"))?.to_owned(),
                form: String::new(),
            },
            PayType::Jsapi => {
                let params = self
                    .client
                    .jsapi_pay_params(prepay_id)
                    .await
                    .map_err(gateway)?;
                PayUrl {
                    pay_url: format!("prepay_id={prepay_id}"),
                    form: serde_json::to_string(&params).unwrap_or_default(),
                }
            }
            PayType::App => {
                let params = self
                    .client
                    .app_pay_params(prepay_id)
                    .await
                    .map_err(gateway)?;
                PayUrl {
                    pay_url: format!("prepay_id={prepay_id}"),
                    form: serde_json::to_string(&params).unwrap_or_default(),
                }
            }
        })
    }

    /// A refusal: nothing changed, and the sender hears the same FAIL whatever the reason.
    /// The reason (which quotes the unverified notify) goes back in the outcome, not to the
    /// log: the notify's entry point logs it, escaped and rate-limited per sender
    /// ([`crate::PaySvc::wechat_notify_from`]).
    fn reject(&self, reason: String) -> NotifyReply {
        NotifyReply {
            xml: fail_reply(REFUSED_REPLY_MESSAGE),
            outcome: NotifyOutcome::Rejected { reason },
        }
    }

    fn acknowledge(outcome: NotifyOutcome) -> NotifyReply {
        NotifyReply {
            outcome,
            xml: success_reply().to_owned(),
        }
    }

    fn failed(&self, order_id: &str, error: &dyn std::fmt::Display) -> NotifyReply {
        tracing::error!(element = %self.full_name, order_id = %log_safe(order_id),
            error = %log_safe(&error.to_string()),
            "payment notify not committed; WeChat will retry");
        let reason = "temporarily unable to record the payment".to_owned();
        NotifyReply {
            xml: fail_reply(&reason),
            outcome: NotifyOutcome::Failed { reason },
        }
    }
}

#[async_trait]
impl Pay for WechatPay {
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
        validate_subject(subject)?;
        let amount = amount.ensure_total_fee().map_err(|e| PayError::Invalid {
            field: "amount",
            message: e.to_string(),
        })?;
        if let Some(id) = &order_id {
            validate_order_id(id)?;
        }
        let created = now();
        let expiry =
            chrono::Duration::from_std(self.settings.order_expiry).unwrap_or(PREPAY_LIFETIME);
        let first_check = chrono::Duration::from_std(self.settings.reconciler.first_check_after)
            .unwrap_or(chrono::Duration::minutes(1));
        let new_order = |id: String| NewOrder {
            order_id: id,
            subject: subject.to_owned(),
            amount_fen: amount.get(),
            element: self.full_name.clone(),
            expires_at: created + expiry,
            first_check_at: created + first_check,
        };
        let row = match order_id {
            Some(id) => self.store.insert_order(new_order(id)).await?,
            None => {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self
                        .store
                        .insert_order(new_order(generate_order_id()))
                        .await
                    {
                        Err(StoreError::DuplicateOrder { .. })
                            if attempt < GENERATED_ID_ATTEMPTS =>
                        {
                            continue;
                        }
                        other => break other?,
                    }
                }
            }
        };
        Ok(row.into())
    }

    async fn get_pay_url(
        &self,
        order_id: &str,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PayUrl, PayError> {
        let row = self.owned_order(order_id).await?;
        match row.status {
            PayStatus::Wait => {}
            PayStatus::Success => {
                return Err(PayError::OrderPaid {
                    order_id: order_id.to_owned(),
                });
            }
            status @ (PayStatus::Close | PayStatus::Timeout) => {
                return Err(PayError::OrderClosed {
                    order_id: order_id.to_owned(),
                    status,
                });
            }
        }
        if row.expires_at <= now() {
            return Err(PayError::OrderClosed {
                order_id: order_id.to_owned(),
                status: PayStatus::Timeout,
            });
        }
        if let Some(record) = self.store.find_record(order_id).await?
            && let (Some(trade_type), Some(prepay_id)) = (&record.trade_type, &record.prepay_id)
        {
            if trade_type != pay_type.as_str() {
                return Err(PayError::PayTypeChanged {
                    order_id: order_id.to_owned(),
                    existing: trade_type.clone(),
                    requested: pay_type.as_str().to_owned(),
                });
            }
            if record.prepay_expires_at.is_some_and(|until| until > now()) {
                return self
                    .pay_url_from_prepay(
                        pay_type,
                        prepay_id,
                        record.code_url.as_deref(),
                        record.mweb_url.as_deref(),
                        order_id,
                    )
                    .await;
            }
        }
        let kind = self.trade_kind(&row, pay_type, payer)?;
        let client_ip = payer.client_ip.clone().filter(|ip| !ip.trim().is_empty());
        let client_ip = match (pay_type, client_ip) {
            (_, Some(ip)) => ip,
            (PayType::Mweb, None) => {
                return Err(PayError::Invalid {
                    field: "clientIp",
                    message: "MWEB (H5) payment needs the payer's IP address".into(),
                });
            }
            // NATIVE/JSAPI/APP: WeChat takes the server's address when the payer's is unknown.
            (_, None) => "127.0.0.1".to_owned(),
        };
        let mut request = UnifiedOrderRequest::new(
            kind,
            row.subject.clone(),
            row.order_id.clone(),
            Fen::new(row.amount_fen),
            client_ip,
            self.notify_url.clone(),
        );
        // Derived from the stored order, so a repeated call sends identical parameters
        // and WeChat answers with the same prepay order instead of OUT_TRADE_NO_USED.
        request.time_start = Some(wechat_time(row.created_at));
        request.time_expire = Some(wechat_time(row.expires_at));
        let answer = match self.client.unified_order(&request).await {
            Ok(answer) => answer,
            Err(WxError::Business {
                code: ErrCode::OrderPaid,
                ..
            }) => {
                self.check(order_id).await?;
                return Err(PayError::OrderPaid {
                    order_id: order_id.to_owned(),
                });
            }
            Err(WxError::Business {
                code: ErrCode::OrderClosed,
                ..
            }) => {
                self.check(order_id).await?;
                return Err(PayError::OrderClosed {
                    order_id: order_id.to_owned(),
                    status: PayStatus::Close,
                });
            }
            Err(source) => {
                return Err(PayError::Gateway {
                    doing: "unifiedorder",
                    order_id: order_id.to_owned(),
                    source,
                });
            }
        };
        let prepay_expires_at = (now() + PREPAY_LIFETIME).min(row.expires_at);
        self.store
            .save_prepay(PrepayRecord {
                order_id: row.order_id.clone(),
                appid: self.config.app_id.clone(),
                mch_id: self.config.mch_id.clone(),
                trade_type: pay_type.as_str().to_owned(),
                prepay_id: answer.prepay_id.clone(),
                code_url: answer.code_url.clone(),
                mweb_url: answer.mweb_url.clone(),
                prepay_expires_at,
                total_fee: row.amount_fen,
            })
            .await?;
        self.store.set_pay_type(order_id, pay_type.as_str()).await?;
        self.pay_url_from_prepay(
            pay_type,
            &answer.prepay_id,
            answer.code_url.as_deref(),
            answer.mweb_url.as_deref(),
            order_id,
        )
        .await
    }

    async fn get_order(&self, order_id: &str) -> Result<PayLog, PayError> {
        Ok(self.owned_order(order_id).await?.into())
    }

    fn get_notify_url(&self) -> String {
        self.notify_url.clone()
    }

    async fn check(&self, order_id: &str) -> Result<PayLog, PayError> {
        let row = self.owned_order(order_id).await?;
        if row.status == PayStatus::Success {
            return Ok(row.into());
        }
        // Closed orders are queried too: a payment made before the close reached WeChat
        // must be found (and flagged), not left unseen.
        if let Some(answer) = self.query_wechat(&row).await? {
            self.apply_query(&row, &answer).await?;
        }
        Ok(self.store.get_order(order_id).await?.into())
    }

    async fn check_third(&self, pay_log: &PayLog) -> Result<Option<WechatRecord>, PayError> {
        let row = self.owned_order(&pay_log.order_id).await?;
        match self.query_wechat(&row).await? {
            None => Ok(None),
            Some(_) => Ok(self
                .store
                .find_record(&row.order_id)
                .await?
                .map(WechatRecord::from)),
        }
    }

    async fn cancel(&self, order_id: &str) -> Result<CancelResult, PayError> {
        let row = self.owned_order(order_id).await?;
        match row.status {
            PayStatus::Success => {
                return Err(PayError::OrderPaid {
                    order_id: order_id.to_owned(),
                });
            }
            PayStatus::Close | PayStatus::Timeout => {
                return Ok(CancelResult {
                    closed: true,
                    message: format!("order {order_id} was already {}", row.status),
                    order: row.into(),
                });
            }
            PayStatus::Wait => {}
        }
        match self.cancel_third(order_id).await? {
            CloseAtWechat::Paid => {
                let order = self.check(order_id).await?;
                tracing::info!(%order_id, status = %order.status, "cancel found the order paid");
                Err(PayError::OrderPaid {
                    order_id: order_id.to_owned(),
                })
            }
            CloseAtWechat::Closed | CloseAtWechat::NotCreated => {
                match self.record_closed(order_id, PayStatus::Close).await? {
                    CloseOutcome::Closed => Ok(CancelResult {
                        closed: true,
                        message: format!("order {order_id} closed"),
                        order: self.store.get_order(order_id).await?.into(),
                    }),
                    CloseOutcome::AlreadyFinal(PayStatus::Success) => Err(PayError::OrderPaid {
                        order_id: order_id.to_owned(),
                    }),
                    CloseOutcome::AlreadyFinal(status) => Ok(CancelResult {
                        closed: true,
                        message: format!("order {order_id} was already {status}"),
                        order: self.store.get_order(order_id).await?.into(),
                    }),
                }
            }
        }
    }

    async fn cancel_third(&self, order_id: &str) -> Result<CloseAtWechat, PayError> {
        self.owned_order(order_id).await?;
        match self.client.close_order(order_id).await {
            Ok(_) => Ok(CloseAtWechat::Closed),
            Err(WxError::Business {
                code: ErrCode::OrderClosed,
                ..
            }) => Ok(CloseAtWechat::Closed),
            Err(WxError::Business {
                code: ErrCode::OrderNotExist,
                ..
            }) => Ok(CloseAtWechat::NotCreated),
            Err(WxError::Business {
                code: ErrCode::OrderPaid,
                ..
            }) => Ok(CloseAtWechat::Paid),
            Err(source) => Err(PayError::Gateway {
                doing: "closeorder",
                order_id: order_id.to_owned(),
                source,
            }),
        }
    }

    async fn notify(&self, body: &[u8]) -> NotifyReply {
        let unverified = match UnverifiedNotify::parse(body) {
            Ok(notify) => notify,
            Err(error) => return self.reject(format!("unreadable notify: {error}")),
        };
        let Some(order_id) = unverified.unverified_params().get("out_trade_no").cloned() else {
            return self.reject("notify without out_trade_no".into());
        };
        let order = match self.store.order_facts(&order_id).await {
            Ok(Some(order)) => order,
            Ok(None) => return self.reject(format!("notify for unknown order {order_id}")),
            Err(error) => return self.failed(&order_id, &error),
        };
        self.notify_for_order(unverified, order, body).await
    }

    async fn notify_for_order(
        &self,
        unverified: UnverifiedNotify,
        row: Arc<OrderFacts>,
        body: &[u8],
    ) -> NotifyReply {
        let order_id = row.order_id.clone();
        if unverified
            .unverified_params()
            .get("out_trade_no")
            .is_none_or(|named| *named != order_id)
        {
            return self.reject(format!("notify routed to order {order_id} names another"));
        }
        if row.element != self.full_name {
            return self.reject(format!(
                "notify for order {order_id} of another element ({})",
                row.element
            ));
        }
        let notify = match unverified.verify(&self.config.api_key) {
            Ok(notify) => notify,
            Err(error) => {
                return self.reject(format!("notify for order {order_id} refused: {error}"));
            }
        };
        if notify.appid != self.config.app_id || notify.mch_id != self.config.mch_id {
            return self.reject(format!(
                "notify for order {order_id} names appid {} / mch_id {}, not this merchant's",
                notify.appid, notify.mch_id
            ));
        }
        if !notify.is_paid() {
            if let Err(error) = self
                .store
                .save_notify(ThirdPartyState {
                    order_id: order_id.clone(),
                    appid: notify.appid.clone(),
                    mch_id: notify.mch_id.clone(),
                    total_fee: row.amount_fen,
                    trade_state: Some("PAYERROR".into()),
                    transaction_id: notify.transaction_id.clone(),
                    raw: String::from_utf8_lossy(body).into_owned(),
                })
                .await
            {
                return self.failed(&order_id, &error);
            }
            // The record keeps SUCCESS if the order is paid: see `guarded_trade_state`.
            tracing::info!(order_id = %log_safe(&order_id),
                "notify reports a failed payment; order unchanged");
            return Self::acknowledge(NotifyOutcome::NotPaid { order_id });
        }
        if notify.total_fee.get() != row.amount_fen {
            tracing::error!(
                %order_id,
                expected_fen = row.amount_fen,
                notified_fen = notify.total_fee.get(),
                "signed notify with another amount: order left unchanged"
            );
            return self.reject(format!(
                "notify for order {order_id}: total_fee {} does not match the order's {}",
                notify.total_fee.get(),
                row.amount_fen
            ));
        }
        // WeChat repeats notifies until answered: a repeat of the recorded payment is
        // answered without writing anything — and, when this process has committed or read
        // that payment, without reading anything either. That holds with any number of
        // processes on the database: `success` is final, so a payment once seen stays
        // recorded; an order not known here as paid is decided by the database below.
        // The repeat got here only verified with the owner's key and matching the
        // merchant and the amount, exactly as a first notify. A payment under another
        // transaction id is no repeat: the database decides it, and keeps it as a conflict.
        if row.paid_transaction_id.is_some() && row.paid_transaction_id == notify.transaction_id {
            return Self::acknowledge(NotifyOutcome::AlreadyPaid { order_id });
        }
        let paid_at = notify
            .time_end
            .as_deref()
            .and_then(parse_wechat_time)
            .unwrap_or_else(now);
        let recorded = self
            .store
            .record_notified_payment(
                ThirdPartyState {
                    order_id: order_id.clone(),
                    appid: notify.appid.clone(),
                    mch_id: notify.mch_id.clone(),
                    total_fee: notify.total_fee.get(),
                    trade_state: Some(TradeState::Success.as_str().to_owned()),
                    transaction_id: notify.transaction_id.clone(),
                    raw: String::from_utf8_lossy(body).into_owned(),
                },
                paid_at,
            )
            .await;
        match recorded {
            Ok(recorded) => {
                // Committed: only now may WeChat hear SUCCESS, and subscribers of it.
                let outcome = recorded.outcome;
                self.announce_paid(&order_id, recorded, notify.transaction_id.as_deref())
                    .await;
                Self::acknowledge(match outcome {
                    PaidOutcome::Paid => NotifyOutcome::Paid { order_id },
                    PaidOutcome::PaidAfterClose { .. } => {
                        NotifyOutcome::PaidAfterClose { order_id }
                    }
                    PaidOutcome::AlreadyPaid => NotifyOutcome::AlreadyPaid { order_id },
                    // Genuine and kept: acknowledged like any recorded payment, or WeChat
                    // would re-send it for a day (docs/pays.md, "Payment conflicts").
                    PaidOutcome::Conflict { .. } => NotifyOutcome::PaymentConflict {
                        order_id,
                        transaction_id: notify.transaction_id.clone().unwrap_or_default(),
                    },
                })
            }
            Err(error) => self.failed(&order_id, &error),
        }
    }

    async fn reconcile(&self, order_id: &str) -> Result<PayLog, PayError> {
        let row = self.owned_order(order_id).await?;
        if row.status != PayStatus::Wait {
            return Ok(row.into());
        }
        let order = self.check(order_id).await?;
        if order.status != PayStatus::Wait || order.expires_at > now() {
            return Ok(order);
        }
        match self.cancel_third(order_id).await? {
            CloseAtWechat::Paid => self.check(order_id).await,
            CloseAtWechat::Closed | CloseAtWechat::NotCreated => {
                self.record_closed(order_id, PayStatus::Timeout).await?;
                Ok(self.store.get_order(order_id).await?.into())
            }
        }
    }
}

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
