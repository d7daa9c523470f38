//! The prepay order in V2's words (`unifiedorder`) and the client pay parameters, for the
//! shared getPayUrl flow ([`crate::gateway::pay_url`]).

use serde_json::json;
use wechatpay_v2::{ErrCode, Error as WxError, Fen, TradeKind, UnifiedOrderRequest, beijing_time};

use super::WechatPay;
use crate::db::entity::pay_log;
use crate::error::PayError;
use crate::gateway::pay_url::{client_ip, jsapi_openid, scene_info};
use crate::gateway::{Prepay, PrepayOutcome};
use crate::model::{PayType, Payer};

impl WechatPay {
    /// `unifiedorder` for `row`.
    pub(super) async fn unified_order(
        &self,
        row: &pay_log::Model,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PrepayOutcome, PayError> {
        let kind = self.trade_kind(row, pay_type, payer)?;
        let mut request = UnifiedOrderRequest::new(
            kind,
            row.subject.clone(),
            row.order_id.clone(),
            Fen::new(row.amount_fen),
            client_ip(pay_type, payer)?,
            self.notify_url.clone(),
        );
        // Derived from the stored order, so a repeated call sends identical parameters
        // and WeChat answers with the same prepay order instead of OUT_TRADE_NO_USED.
        request.time_start = Some(beijing_time(row.created_at));
        request.time_expire = Some(beijing_time(row.expires_at));
        match crate::metrics::gateway_call("unifiedorder", self.client.unified_order(&request))
            .await
        {
            Ok(answer) => Ok(PrepayOutcome::Made(Prepay {
                prepay_id: Some(answer.prepay_id),
                code_url: answer.code_url,
                mweb_url: answer.mweb_url,
            })),
            Err(WxError::Business {
                code: ErrCode::OrderPaid,
                ..
            }) => Ok(PrepayOutcome::OrderPaid),
            Err(WxError::Business {
                code: ErrCode::OrderClosed,
                ..
            }) => Ok(PrepayOutcome::OrderClosed),
            Err(source) => Err(PayError::Gateway {
                doing: "unifiedorder",
                order_id: row.order_id.clone(),
                source,
            }),
        }
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
                openid: jsapi_openid(payer)?,
            },
            PayType::Mweb => TradeKind::Mweb {
                scene_info: match scene_info(payer)? {
                    Some(_) => payer.scene_info.clone().unwrap_or_default(),
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

    /// The signed JSAPI or APP parameters of `prepay_id` (of `order_id`), as JSON text.
    pub(super) async fn client_params(
        &self,
        order_id: &str,
        pay_type: PayType,
        prepay_id: &str,
    ) -> Result<String, PayError> {
        let gateway = |source| PayError::Gateway {
            doing: "client pay parameters",
            order_id: order_id.to_owned(),
            source,
        };
        let params = match pay_type {
            PayType::App => serde_json::to_string(
                &self
                    .client
                    .app_pay_params(prepay_id)
                    .await
                    .map_err(gateway)?,
            ),
            _ => serde_json::to_string(
                &self
                    .client
                    .jsapi_pay_params(prepay_id)
                    .await
                    .map_err(gateway)?,
            ),
        };
        Ok(params.unwrap_or_default())
    }
}
