//! The calls of the shared order and refund flows ([`crate::gateway`]) in V3's words:
//! prepay (`/v3/pay/transactions/{jsapi|app|h5|native}`), the client pay parameters, the
//! order query and close, the refund and its query.

use serde_json::Value;
use wechatpay_v2::Fen;
use wechatpay_v3::{
    Error as V3Error, ErrorCode, H5Scene, OrderRef, PrepayKind, PrepayRequest, RefundRequest,
};

use super::WechatPayV3;
use crate::db::entity::{RefundStatus, pay_log, refund};
use crate::error::PayError;
use crate::gateway::pay_url::{client_ip, jsapi_openid, scene_info};
use crate::gateway::{Prepay, PrepayOutcome, QueriedOrder, RefundAtWechat, RefundRequestFailed};
use crate::model::{CloseAtWechat, PayType, Payer};

/// The code V3 answers a prepay or close of a paid order with.
const ORDER_PAID: &str = "ORDERPAID";

/// Whether `error` is WeChat's refusal with `code`.
fn refused_with(error: &V3Error, code: &str) -> bool {
    error.code().is_some_and(|known| known.as_str() == code)
}

/// Whether a failed refund request certainly did not reach WeChat as a refund: WeChat
/// refused it with a code retrying will not change, or it was never sent. Anything else
/// (no answer, an answer that cannot be trusted, a retryable refusal) leaves the outcome
/// unknown, for a query to settle.
fn refused_for_good(error: &V3Error) -> bool {
    match error {
        V3Error::Api { .. } => !error.is_retryable(),
        V3Error::InvalidRequest { .. }
        | V3Error::Amount { .. }
        | V3Error::Key(_)
        | V3Error::Config(_) => true,
        _ => false,
    }
}

/// The H5 scene of a MWEB order: the payer's IP, and `h5_info` (`type`, `app_name`,
/// `app_url`) from the payer's `sceneInfo` when given (a mobile web page, `Wap`, else).
fn h5_scene(payer: &Payer) -> Result<H5Scene, PayError> {
    let mut scene = H5Scene::wap(client_ip(PayType::Mweb, payer)?);
    if let Some(given) = scene_info(payer)? {
        let info = given.get("h5_info").unwrap_or(&given);
        let text = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(kind) = text("type") {
            scene.h5_type = kind;
        }
        scene.app_name = text("app_name");
        scene.app_url = text("app_url");
    }
    Ok(scene)
}

impl WechatPayV3 {
    fn gateway_error(&self, doing: &'static str, order_id: &str, source: V3Error) -> PayError {
        PayError::GatewayV3 {
            doing,
            order_id: order_id.to_owned(),
            source: Box::new(source),
        }
    }

    /// The prepay order of `row`.
    pub(super) async fn prepay_at_wechat(
        &self,
        row: &pay_log::Model,
        pay_type: PayType,
        payer: &Payer,
    ) -> Result<PrepayOutcome, PayError> {
        let kind = match pay_type {
            PayType::Native => PrepayKind::Native,
            PayType::App => PrepayKind::App,
            PayType::Jsapi => PrepayKind::Jsapi {
                openid: jsapi_openid(payer)?,
            },
            PayType::Mweb => PrepayKind::H5(h5_scene(payer)?),
        };
        let mut request = PrepayRequest::new(
            kind,
            row.subject.clone(),
            row.order_id.clone(),
            Fen::new(row.amount_fen),
            self.notify_url.clone(),
        );
        // Derived from the stored order, so a repeated call sends identical parameters
        // and WeChat answers with the same prepay order.
        request.time_expire = Some(row.expires_at);
        match crate::metrics::gateway_call("v3_prepay", self.client.prepay(&request)).await {
            Ok(answer) => Ok(PrepayOutcome::Made(Prepay {
                prepay_id: answer.prepay_id,
                code_url: answer.code_url,
                mweb_url: answer.h5_url,
            })),
            Err(error) if refused_with(&error, ORDER_PAID) => Ok(PrepayOutcome::OrderPaid),
            Err(error) if matches!(error.code(), Some(ErrorCode::OrderClosed)) => {
                Ok(PrepayOutcome::OrderClosed)
            }
            Err(error) => Err(self.gateway_error("prepay", &row.order_id, error)),
        }
    }

    /// The signed JSAPI or APP parameters of `prepay_id`, as JSON text.
    pub(super) fn client_params(
        &self,
        order_id: &str,
        pay_type: PayType,
        prepay_id: &str,
    ) -> Result<String, PayError> {
        let failed = |error| self.gateway_error("client pay parameters", order_id, error);
        let params = match pay_type {
            PayType::App => {
                serde_json::to_string(&self.client.app_pay_params(prepay_id).map_err(failed)?)
            }
            _ => serde_json::to_string(&self.client.jsapi_pay_params(prepay_id).map_err(failed)?),
        };
        Ok(params.unwrap_or_default())
    }

    /// The order query by `out_trade_no`; `None` when WeChat has no such order.
    pub(super) async fn query_order_at_wechat(
        &self,
        order_id: &str,
    ) -> Result<Option<QueriedOrder>, PayError> {
        let answer = crate::metrics::gateway_call(
            "v3_query",
            self.client
                .query_order(&OrderRef::OutTradeNo(order_id.to_owned())),
        )
        .await;
        let transaction = match answer {
            Ok(transaction) => transaction,
            Err(error) if matches!(error.code(), Some(ErrorCode::OrderNotExist)) => {
                return Ok(None);
            }
            Err(error) => return Err(self.gateway_error("query", order_id, error)),
        };
        Ok(Some(QueriedOrder {
            out_trade_no: transaction.out_trade_no.clone(),
            trade_state: transaction.trade_state,
            transaction_id: transaction.transaction_id.clone(),
            total_fen: Some(transaction.amount.total.get()),
            paid_at: transaction.success_time,
            raw: transaction.raw.to_string(),
        }))
    }

    /// The close of an unpaid order.
    pub(super) async fn close_order_at_wechat(
        &self,
        order_id: &str,
    ) -> Result<CloseAtWechat, PayError> {
        match crate::metrics::gateway_call("v3_close", self.client.close_order(order_id)).await {
            Ok(()) => Ok(CloseAtWechat::Closed),
            Err(error) => match error.code() {
                Some(ErrorCode::OrderClosed) => Ok(CloseAtWechat::Closed),
                Some(ErrorCode::OrderNotExist) => Ok(CloseAtWechat::NotCreated),
                _ if refused_with(&error, ORDER_PAID) => Ok(CloseAtWechat::Paid),
                _ => Err(self.gateway_error("close", order_id, error)),
            },
        }
    }

    /// The refund request of `refund`, of an order of `total_fen`.
    pub(super) async fn request_refund_at_wechat(
        &self,
        refund: &refund::Model,
        total_fen: i64,
    ) -> Result<RefundAtWechat, RefundRequestFailed> {
        let mut request = RefundRequest::new(
            OrderRef::OutTradeNo(refund.order_id.clone()),
            refund.refund_id.clone(),
            Fen::new(refund.amount_fen),
            Fen::new(total_fen),
        );
        request.reason = refund.reason.clone();
        request.notify_url = Some(self.refund_notify_url.clone());
        match crate::metrics::gateway_call("v3_refund", self.client.refund(&request)).await {
            Ok(answer) => Ok(refund_at_wechat(answer)),
            Err(source) => {
                let refused = refused_for_good(&source);
                let failure = source.to_string();
                let error = self.gateway_error("refund", &refund.order_id, source);
                Err(RefundRequestFailed::new(refused, failure, error))
            }
        }
    }

    /// The refund query by `out_refund_no`; `None` when WeChat has no such refund.
    pub(super) async fn query_refund_at_wechat(
        &self,
        refund: &refund::Model,
    ) -> Result<Option<RefundAtWechat>, PayError> {
        match crate::metrics::gateway_call(
            "v3_refund_query",
            self.client.query_refund(&refund.refund_id),
        )
        .await
        {
            Ok(answer) => Ok(Some(refund_at_wechat(answer))),
            Err(error) if matches!(error.code(), Some(ErrorCode::ResourceNotExists)) => Ok(None),
            Err(error) => Err(self.gateway_error("refund query", &refund.order_id, error)),
        }
    }
}

/// A V3 refund answer in the flows' words.
fn refund_at_wechat(answer: wechatpay_v3::Refund) -> RefundAtWechat {
    RefundAtWechat {
        out_refund_no: answer.out_refund_no,
        out_trade_no: answer.out_trade_no,
        refund_fen: answer.amount.refund.get(),
        wechat_refund_id: answer.refund_id,
        status: Some(RefundStatus::of_wechat_v3(answer.status)),
        account: answer.user_received_account,
        succeeded_at: answer.success_time,
    }
}
