//! Refund (`POST /v3/refund/domestic/refunds`) and the [`Refund`] it answers, which the
//! refund query answers too.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Call;
use super::query_order::OrderRef;
use super::validate::{amount, check_max_chars, check_merchant_no, check_notify_url, invalid};
use crate::json::{malformed, opt_string, opt_time, read, time};
use crate::types::RefundStatus;
use crate::{Error, Fen};

/// The path refund answers are reported under.
pub const ENDPOINT: &str = "/v3/refund/domestic/refunds";

/// A refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The paid order.
    pub order: OrderRef,
    /// The merchant's refund number: 1 to 64 of digits, letters and `_-|*@`. A retry, and
    /// any later attempt at the same refund, reuses it.
    pub out_refund_no: String,
    /// The amount to refund: positive, at most `total`.
    pub refund: Fen,
    /// The order's total amount.
    pub total: Fen,
    /// Reason shown to the buyer (at most 80 characters).
    pub reason: Option<String>,
    /// Where the refund notify goes: https, no query.
    pub notify_url: Option<String>,
    /// `funds_account`: `AVAILABLE` to refund from the available balance.
    pub funds_account: Option<String>,
}

impl RefundRequest {
    /// A request with the required fields.
    pub fn new(
        order: OrderRef,
        out_refund_no: impl Into<String>,
        refund: Fen,
        total: Fen,
    ) -> RefundRequest {
        RefundRequest {
            order,
            out_refund_no: out_refund_no.into(),
            refund,
            total,
            reason: None,
            notify_url: None,
            funds_account: None,
        }
    }

    /// Checks every field and builds the body.
    pub fn to_body(&self) -> Result<Value, Error> {
        let (order_field, order_value) = self.order.field()?;
        check_merchant_no("out_refund_no", &self.out_refund_no, 1, 64, "_-|*@")?;
        let refund = amount("amount.refund", self.refund)?;
        let total = amount("amount.total", self.total)?;
        if refund > total {
            return Err(invalid(
                "amount.refund",
                format!("{refund} yuan is more than the order's {total} yuan"),
            ));
        }
        let mut body = Map::new();
        body.insert(order_field.into(), order_value.into());
        body.insert("out_refund_no".into(), self.out_refund_no.clone().into());
        if let Some(reason) = self.reason.as_ref().filter(|r| !r.is_empty()) {
            check_max_chars("reason", reason, 80)?;
            body.insert("reason".into(), reason.clone().into());
        }
        if let Some(url) = &self.notify_url {
            check_notify_url("notify_url", url)?;
            body.insert("notify_url".into(), url.clone().into());
        }
        if let Some(account) = &self.funds_account {
            if account != "AVAILABLE" {
                return Err(invalid("funds_account", "the only value is AVAILABLE"));
            }
            body.insert("funds_account".into(), account.clone().into());
        }
        body.insert(
            "amount".into(),
            json!({"refund": refund.get(), "total": total.get(), "currency": "CNY"}),
        );
        Ok(Value::Object(body))
    }

    pub(crate) fn call(&self) -> Result<Call, Error> {
        Ok(Call::post(ENDPOINT, ENDPOINT.to_owned(), &self.to_body()?))
    }
}

/// `amount` of a refund.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundAmount {
    /// The order's total.
    pub total: Fen,
    /// The refunded amount.
    pub refund: Fen,
    /// What the buyer paid.
    #[serde(default)]
    pub payer_total: Option<Fen>,
    /// What the buyer gets back.
    #[serde(default)]
    pub payer_refund: Option<Fen>,
    /// The refund less unsettled coupons.
    #[serde(default)]
    pub settlement_refund: Option<Fen>,
    /// The order less unsettled coupons.
    #[serde(default)]
    pub settlement_total: Option<Fen>,
    /// The coupons refunded.
    #[serde(default)]
    pub discount_refund: Option<Fen>,
    /// `CNY`.
    #[serde(default, deserialize_with = "opt_string")]
    pub currency: Option<String>,
}

/// A refund as WeChat reports it (refund and refund-query answers).
#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    /// WeChat's refund id.
    pub refund_id: String,
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// `ORIGINAL`, `BALANCE`, `OTHER_BALANCE`, `OTHER_BANKCARD`.
    pub channel: Option<String>,
    /// Where the money went, as WeChat describes it.
    pub user_received_account: Option<String>,
    /// When it succeeded.
    pub success_time: Option<DateTime<Utc>>,
    /// When it was accepted.
    pub create_time: DateTime<Utc>,
    /// The state.
    pub status: RefundStatus,
    /// Which funds it came from.
    pub funds_account: Option<String>,
    /// The amounts.
    pub amount: RefundAmount,
    /// The whole answer.
    pub raw: Value,
}

#[derive(Deserialize)]
struct Wire {
    refund_id: String,
    out_refund_no: String,
    transaction_id: String,
    out_trade_no: String,
    #[serde(default, deserialize_with = "opt_string")]
    channel: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    user_received_account: Option<String>,
    #[serde(default, deserialize_with = "opt_time")]
    success_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "time")]
    create_time: DateTime<Utc>,
    status: RefundStatus,
    #[serde(default, deserialize_with = "opt_string")]
    funds_account: Option<String>,
    amount: RefundAmount,
}

impl Refund {
    /// Reads a refund answer; `context` is the call it answers.
    pub(crate) fn read(raw: Value, context: &'static str) -> Result<Refund, Error> {
        let w: Wire = read(&raw, context)?;
        for (field, value) in [
            ("refund_id", &w.refund_id),
            ("out_refund_no", &w.out_refund_no),
            ("transaction_id", &w.transaction_id),
            ("out_trade_no", &w.out_trade_no),
        ] {
            if value.is_empty() {
                return Err(malformed(context, format!("`{field}` is empty")));
            }
        }
        if !w.amount.refund.is_positive() || w.amount.refund > w.amount.total {
            return Err(malformed(
                context,
                "`amount.refund` is not positive or exceeds `amount.total`",
            ));
        }
        if w.status == RefundStatus::Success && w.success_time.is_none() {
            return Err(malformed(
                context,
                "a SUCCESS refund without `success_time`",
            ));
        }
        Ok(Refund {
            refund_id: w.refund_id,
            out_refund_no: w.out_refund_no,
            transaction_id: w.transaction_id,
            out_trade_no: w.out_trade_no,
            channel: w.channel,
            user_received_account: w.user_received_account,
            success_time: w.success_time,
            create_time: w.create_time,
            status: w.status,
            funds_account: w.funds_account,
            amount: w.amount,
            raw,
        })
    }
}

/// Reads a refund answer.
impl TryFrom<Value> for Refund {
    type Error = Error;

    fn try_from(raw: Value) -> Result<Self, Error> {
        Refund::read(raw, ENDPOINT)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The reference's refund answer.
    pub(crate) fn accepted() -> Value {
        json!({
            "refund_id": "50000000382019052709732678859",
            "out_refund_no": "1217752501201407033233368018",
            "transaction_id": "1217752501201407033233368018",
            "out_trade_no": "1217752501201407033233368018",
            "channel": "ORIGINAL",
            "user_received_account": "招商银行信用卡0403",
            "create_time": "2020-12-01T16:18:12+08:00",
            "status": "PROCESSING",
            "funds_account": "UNSETTLED",
            "amount": {
                "total": 100, "refund": 100, "payer_total": 90, "payer_refund": 90,
                "settlement_refund": 100, "settlement_total": 100, "discount_refund": 10,
                "currency": "CNY", "from": [{"account": "AVAILABLE", "amount": 444}]
            },
            "promotion_detail": []
        })
    }

    #[test]
    fn reads_a_refund() {
        let refund = Refund::try_from(accepted()).unwrap();
        assert_eq!(refund.status, RefundStatus::Processing);
        assert_eq!(refund.amount.refund, Fen::new(100));
        assert_eq!(refund.amount.payer_refund, Some(Fen::new(90)));
        assert_eq!(refund.success_time, None);
        assert_eq!(refund.raw["amount"]["from"][0]["amount"], 444);
    }

    /// A field a broken answer names, and how to break it.
    type Case = (&'static str, fn(&mut Value));

    #[test]
    fn refuses_what_is_not_a_refund() {
        let cases: [Case; 5] = [
            ("refund_id", |v| {
                v.as_object_mut().unwrap().remove("refund_id");
            }),
            ("status", |v| {
                v["status"] = json!("REFUNDCLOSE");
            }),
            ("create_time", |v| {
                v["create_time"] = json!("yesterday");
            }),
            ("amount.refund", |v| {
                v["amount"]["refund"] = json!(101);
            }),
            ("success_time", |v| {
                v["status"] = json!("SUCCESS");
            }),
        ];
        for (field, change) in cases {
            let mut answer = accepted();
            change(&mut answer);
            match Refund::try_from(answer) {
                Err(Error::Malformed { reason, .. }) => {
                    assert!(reason.contains(field), "{field}: {reason}")
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_request_refunds_at_most_the_order() {
        let mut request = RefundRequest::new(
            OrderRef::TransactionId("1217752501201407033233368018".into()),
            "R1",
            Fen::new(101),
            Fen::new(100),
        );
        assert!(matches!(
            request.to_body(),
            Err(Error::InvalidRequest {
                field: "amount.refund",
                ..
            })
        ));
        request.refund = Fen::new(100);
        request.reason = Some("商品已售完".into());
        request.notify_url = Some("https://weixin.qq.com".into());
        assert_eq!(
            serde_json::to_string(&request.to_body().unwrap()).unwrap(),
            r#"{"transaction_id":"1217752501201407033233368018","out_refund_no":"R1","reason":"商品已售完","notify_url":"https://weixin.qq.com","amount":{"refund":100,"total":100,"currency":"CNY"}}"#
        );
        request.funds_account = Some("UNSETTLED".into());
        assert!(matches!(
            request.to_body(),
            Err(Error::InvalidRequest {
                field: "funds_account",
                ..
            })
        ));
    }
}
