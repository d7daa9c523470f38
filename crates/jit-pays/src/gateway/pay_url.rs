//! `getPayUrl`, for either API: the prepay order at WeChat (reused while it is valid) and
//! what the payer needs from it for each trade type.

use serde_json::Value;

use super::orders::{PREPAY_LIFETIME, check_order, owned_order};
use super::{Gateway, Prepay, PrepayOutcome};
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

/// The payer's `sceneInfo` (MWEB) read as JSON, every text in it acceptable on the
/// payer's H5 page; `None` when none was given.
pub(crate) fn scene_info(payer: &Payer) -> Result<Option<Value>, PayError> {
    let Some(scene) = &payer.scene_info else {
        return Ok(None);
    };
    let parsed = serde_json::from_str::<Value>(scene).map_err(|e| PayError::Invalid {
        field: "sceneInfo",
        message: format!("is not JSON: {e}"),
    })?;
    // The scene's names are shown on the payer's H5 page.
    for_each_string(&parsed, &mut |text| validate_payer_text("sceneInfo", text))?;
    Ok(Some(parsed))
}

/// The payer's IP address for the prepay call: the one given, required for MWEB (H5),
/// else the server's loopback (WeChat takes the server's address when the payer's is
/// unknown).
pub(crate) fn client_ip(pay_type: PayType, payer: &Payer) -> Result<String, PayError> {
    match payer.client_ip.as_deref().map(str::trim) {
        Some(ip) if !ip.is_empty() => Ok(ip.to_owned()),
        _ if pay_type == PayType::Mweb => Err(PayError::Invalid {
            field: "clientIp",
            message: "MWEB (H5) payment needs the payer's IP address".into(),
        }),
        _ => Ok("127.0.0.1".to_owned()),
    }
}

/// The payer's openid, required for JSAPI.
pub(crate) fn jsapi_openid(payer: &Payer) -> Result<String, PayError> {
    payer
        .openid
        .clone()
        .filter(|openid| !openid.trim().is_empty())
        .ok_or(PayError::Invalid {
            field: "openid",
            message: "JSAPI payment needs the payer's openid".into(),
        })
}

/// An order that can still be paid, or why not.
fn ensure_payable(row: &pay_log::Model) -> Result<(), PayError> {
    match row.status {
        PayStatus::Wait if row.expires_at <= now() => Err(PayError::OrderClosed {
            order_id: row.order_id.clone(),
            status: PayStatus::Timeout,
        }),
        PayStatus::Wait => Ok(()),
        PayStatus::Success => Err(PayError::OrderPaid {
            order_id: row.order_id.clone(),
        }),
        status @ (PayStatus::Close | PayStatus::Timeout) => Err(PayError::OrderClosed {
            order_id: row.order_id.clone(),
            status,
        }),
    }
}

/// `getPayUrl`: creates (or reuses) the prepay order at WeChat and returns what the payer
/// needs.
pub(crate) async fn pay_url(
    gateway: &dyn Gateway,
    order_id: &str,
    pay_type: PayType,
    payer: &Payer,
) -> Result<PayUrl, PayError> {
    let row = owned_order(gateway, order_id).await?;
    ensure_payable(&row)?;
    let store = gateway.store();
    if let Some(record) = store.find_record(order_id).await?
        && let Some(trade_type) = &record.trade_type
    {
        if trade_type != pay_type.as_str() {
            return Err(PayError::PayTypeChanged {
                order_id: order_id.to_owned(),
                existing: trade_type.clone(),
                requested: pay_type.as_str().to_owned(),
            });
        }
        if record.prepay_expires_at.is_some_and(|until| until > now()) {
            let prepay = Prepay {
                prepay_id: record.prepay_id,
                code_url: record.code_url,
                mweb_url: record.mweb_url,
            };
            return payer_side(gateway, pay_type, &prepay, order_id).await;
        }
    }
    let prepay = match gateway.prepay(&row, pay_type, payer).await? {
        PrepayOutcome::Made(prepay) => prepay,
        PrepayOutcome::OrderPaid => {
            check_order(gateway, order_id).await?;
            return Err(PayError::OrderPaid {
                order_id: order_id.to_owned(),
            });
        }
        PrepayOutcome::OrderClosed => {
            check_order(gateway, order_id).await?;
            return Err(PayError::OrderClosed {
                order_id: order_id.to_owned(),
                status: PayStatus::Close,
            });
        }
    };
    let prepay_expires_at = (now() + PREPAY_LIFETIME).min(row.expires_at);
    store
        .save_prepay(PrepayRecord {
            order_id: row.order_id.clone(),
            appid: gateway.app_id().to_owned(),
            mch_id: gateway.mch_id().to_owned(),
            trade_type: pay_type.as_str().to_owned(),
            prepay_id: prepay.prepay_id.clone(),
            code_url: prepay.code_url.clone(),
            mweb_url: prepay.mweb_url.clone(),
            prepay_expires_at,
            total_fee: row.amount_fen,
            api_version: gateway.api_version(),
        })
        .await?;
    store.set_pay_type(order_id, pay_type.as_str()).await?;
    payer_side(gateway, pay_type, &prepay, order_id).await
}

/// What the payer needs of a prepay order: NATIVE the code URL, MWEB the H5 URL, JSAPI
/// and APP `prepay_id=…` with the signed client parameters as JSON text.
async fn payer_side(
    gateway: &dyn Gateway,
    pay_type: PayType,
    prepay: &Prepay,
    order_id: &str,
) -> Result<PayUrl, PayError> {
    let missing = |what: &str| PayError::Mismatch {
        doing: "prepay",
        order_id: order_id.to_owned(),
        message: format!("no {what} for a {pay_type} order"),
    };
    Ok(match pay_type {
        PayType::Native => PayUrl {
            pay_url: prepay.code_url.clone().ok_or_else(|| missing("code_url"))?,
            form: String::new(),
        },
        PayType::Mweb => PayUrl {
            pay_url: prepay.mweb_url.clone().ok_or_else(|| missing("mweb_url"))?,
            form: String::new(),
        },
        PayType::Jsapi | PayType::App => {
            let prepay_id = prepay
                .prepay_id
                .as_deref()
                .ok_or_else(|| missing("prepay_id"))?;
            PayUrl {
                pay_url: format!("prepay_id={prepay_id}"),
                form: gateway
                    .client_pay_params(order_id, pay_type, prepay_id)
                    .await?,
            }
        }
    })
}
