//! `getPayUrl`: the prepay order at WeChat (`unifiedorder`, reused while it is valid) and
//! what the payer needs from it for each trade type.

use serde_json::{Value, json};
use wechatpay_v2::{ErrCode, Error as WxError, Fen, TradeKind, UnifiedOrderRequest, beijing_time};

use super::WechatPay;
use super::orders::PREPAY_LIFETIME;
use crate::db::entity::{PayStatus, pay_log};
use crate::db::store::{PrepayRecord, now};
use crate::error::PayError;
use crate::model::{PayType, PayUrl, Payer};
use crate::order_id::validate_payer_text;

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

impl WechatPay {
    /// `getPayUrl`: creates (or reuses) the prepay order at WeChat and returns what the
    /// payer needs.
    pub(super) async fn pay_url(
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
        request.time_start = Some(beijing_time(row.created_at));
        request.time_expire = Some(beijing_time(row.expires_at));
        let answer =
            match crate::metrics::gateway_call("unifiedorder", self.client.unified_order(&request))
                .await
            {
                Ok(answer) => answer,
                Err(WxError::Business {
                    code: ErrCode::OrderPaid,
                    ..
                }) => {
                    self.check_order(order_id).await?;
                    return Err(PayError::OrderPaid {
                        order_id: order_id.to_owned(),
                    });
                }
                Err(WxError::Business {
                    code: ErrCode::OrderClosed,
                    ..
                }) => {
                    self.check_order(order_id).await?;
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

    fn trade_kind(
        &self,
        row: &pay_log::Model,
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
            PayType::Jsapi => client_pay_url(
                prepay_id,
                &self
                    .client
                    .jsapi_pay_params(prepay_id)
                    .await
                    .map_err(gateway)?,
            ),
            PayType::App => client_pay_url(
                prepay_id,
                &self
                    .client
                    .app_pay_params(prepay_id)
                    .await
                    .map_err(gateway)?,
            ),
        })
    }
}

/// What JSAPI and APP payers need: `prepay_id=…`, and the client pay parameters (signed)
/// as JSON text for the page or the app to hand to WeChat.
fn client_pay_url(prepay_id: &str, params: &impl serde::Serialize) -> PayUrl {
    PayUrl {
        pay_url: format!("prepay_id={prepay_id}"),
        form: serde_json::to_string(params).unwrap_or_default(),
    }
}
