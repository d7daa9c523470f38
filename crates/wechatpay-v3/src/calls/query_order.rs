//! Order query (`GET /v3/pay/transactions/out-trade-no/{no}?mchid=…` or
//! `…/id/{transaction_id}?mchid=…`) and the [`Transaction`] it answers, which is also the
//! plaintext of a payment notify.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::validate::{check_merchant_no, check_token};
use super::{Call, encode_component};
use crate::json::{malformed, opt_string, opt_time, read};
use crate::types::{TradeState, TradeType};
use crate::{Error, Fen};

/// The path pattern query answers are reported under.
pub const ENDPOINT: &str = "/v3/pay/transactions/{out-trade-no|id}";

/// Which order: by the merchant's number or WeChat's transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// `out_trade_no`.
    OutTradeNo(String),
    /// WeChat's `transaction_id`.
    TransactionId(String),
}

impl OrderRef {
    /// Checks the number and returns the body field it is sent as (refunds).
    pub(crate) fn field(&self) -> Result<(&'static str, &str), Error> {
        match self {
            OrderRef::OutTradeNo(no) => {
                check_merchant_no("out_trade_no", no, 6, 32, "_-|*")?;
                Ok(("out_trade_no", no))
            }
            OrderRef::TransactionId(id) => {
                check_token("transaction_id", id, 32, "")?;
                Ok(("transaction_id", id))
            }
        }
    }

    /// The query call.
    pub(crate) fn call(&self, mch_id: &str) -> Result<Call, Error> {
        let (field, value) = self.field()?;
        let segment = if field == "out_trade_no" {
            "out-trade-no"
        } else {
            "id"
        };
        Ok(Call::get(
            ENDPOINT,
            format!(
                "/v3/pay/transactions/{segment}/{}?mchid={}",
                encode_component(value),
                encode_component(mch_id)
            ),
        ))
    }
}

/// The buyer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Payer {
    /// The buyer's openid under the appid.
    #[serde(default, deserialize_with = "opt_string")]
    pub openid: Option<String>,
}

/// `amount` of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransactionAmount {
    /// The order amount.
    pub total: Fen,
    /// What the buyer paid (after coupons); present once paid.
    #[serde(default)]
    pub payer_total: Option<Fen>,
    /// `CNY`.
    #[serde(default, deserialize_with = "opt_string")]
    pub currency: Option<String>,
    /// The buyer's currency.
    #[serde(default, deserialize_with = "opt_string")]
    pub payer_currency: Option<String>,
}

/// An order as WeChat reports it (query answer, payment notify plaintext).
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The appid.
    pub appid: String,
    /// The merchant id.
    pub mchid: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id; present once paid.
    pub transaction_id: Option<String>,
    /// How it was paid; present once paid.
    pub trade_type: Option<TradeType>,
    /// The state.
    pub trade_state: TradeState,
    /// WeChat's description of the state.
    pub trade_state_desc: Option<String>,
    /// The buyer's bank.
    pub bank_type: Option<String>,
    /// The merchant data sent with the order.
    pub attach: Option<String>,
    /// When it was paid.
    pub success_time: Option<DateTime<Utc>>,
    /// The buyer.
    pub payer: Option<Payer>,
    /// The amounts.
    pub amount: TransactionAmount,
    /// The whole document (promotion details, scene info, fields unknown today).
    pub raw: Value,
}

#[derive(Deserialize)]
struct Wire {
    appid: String,
    mchid: String,
    out_trade_no: String,
    #[serde(default, deserialize_with = "opt_string")]
    transaction_id: Option<String>,
    #[serde(default)]
    trade_type: Option<TradeType>,
    trade_state: TradeState,
    #[serde(default, deserialize_with = "opt_string")]
    trade_state_desc: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    bank_type: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    attach: Option<String>,
    #[serde(default, deserialize_with = "opt_time")]
    success_time: Option<DateTime<Utc>>,
    #[serde(default)]
    payer: Option<Payer>,
    amount: TransactionAmount,
}

impl Transaction {
    /// Reads a transaction; `context` names the document in errors (the query call or the
    /// payment notify). A paid one must carry its transaction id and time, and amounts are
    /// never negative.
    pub(crate) fn read(raw: Value, context: &'static str) -> Result<Transaction, Error> {
        let w: Wire = read(&raw, context)?;
        for (field, value) in [
            ("appid", &w.appid),
            ("mchid", &w.mchid),
            ("out_trade_no", &w.out_trade_no),
        ] {
            if value.is_empty() {
                return Err(malformed(context, format!("`{field}` is empty")));
            }
        }
        if !w.amount.total.is_positive() {
            return Err(malformed(context, "`amount.total` is not positive"));
        }
        if w.amount.payer_total.is_some_and(|fen| fen.get() < 0) {
            return Err(malformed(context, "`amount.payer_total` is negative"));
        }
        if w.trade_state.is_paid() {
            if w.transaction_id.is_none() {
                return Err(malformed(
                    context,
                    format!("a {} order without `transaction_id`", w.trade_state),
                ));
            }
            if w.success_time.is_none() {
                return Err(malformed(
                    context,
                    format!("a {} order without `success_time`", w.trade_state),
                ));
            }
        }
        Ok(Transaction {
            appid: w.appid,
            mchid: w.mchid,
            out_trade_no: w.out_trade_no,
            transaction_id: w.transaction_id,
            trade_type: w.trade_type,
            trade_state: w.trade_state,
            trade_state_desc: w.trade_state_desc,
            bank_type: w.bank_type,
            attach: w.attach,
            success_time: w.success_time,
            payer: w.payer,
            amount: w.amount,
            raw,
        })
    }
}

/// Reads a query answer: a paid order must carry its transaction id and time, and amounts
/// are never negative.
impl TryFrom<Value> for Transaction {
    type Error = Error;

    fn try_from(raw: Value) -> Result<Self, Error> {
        Transaction::read(raw, ENDPOINT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The reference's query answer for a paid order.
    pub(crate) fn paid() -> Value {
        json!({
            "amount": {"currency": "CNY", "payer_currency": "CNY", "payer_total": 1, "total": 1},
            "appid": "wxdace645e0bc2cXXX",
            "attach": "",
            "bank_type": "OTHERS",
            "mchid": "1900006XXX",
            "out_trade_no": "44_2126281063_5504",
            "payer": {"openid": "o4GgauJP_mgWEWictzA15WT15XXX"},
            "promotion_detail": [],
            "success_time": "2021-03-22T10:29:05+08:00",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "trade_type": "JSAPI",
            "transaction_id": "4200000891202103228088184743"
        })
    }

    #[test]
    fn reads_a_paid_order() {
        let t = Transaction::try_from(paid()).unwrap();
        assert_eq!(t.trade_state, TradeState::Success);
        assert_eq!(t.trade_type, Some(TradeType::Jsapi));
        assert_eq!(t.amount.total, Fen::new(1));
        assert_eq!(t.amount.payer_total, Some(Fen::new(1)));
        assert_eq!(t.attach, None);
        assert_eq!(
            t.success_time.unwrap().to_rfc3339(),
            "2021-03-22T02:29:05+00:00"
        );
        assert_eq!(t.raw["promotion_detail"], json!([]));
    }

    #[test]
    fn reads_an_unpaid_order() {
        let t = Transaction::try_from(json!({
            "amount": {"currency": "CNY", "payer_currency": "CNY", "total": 1},
            "appid": "wx1", "mchid": "1", "out_trade_no": "T000001",
            "trade_state": "NOTPAY", "trade_state_desc": "订单未支付"
        }))
        .unwrap();
        assert_eq!(t.trade_state, TradeState::NotPay);
        assert_eq!(t.transaction_id, None);
    }

    /// A field a broken answer names, and how to break it.
    type Case = (&'static str, fn(&mut Value));

    #[test]
    fn refuses_what_is_not_a_transaction() {
        let cases: [Case; 7] = [
            ("transaction_id", |v| {
                v.as_object_mut().unwrap().remove("transaction_id");
            }),
            ("success_time", |v| {
                v["success_time"] = json!("2021-03-22 10:29:05");
            }),
            ("amount.total", |v| {
                v["amount"]["total"] = json!("1");
            }),
            ("amount.total", |v| {
                v["amount"]["total"] = json!(0);
            }),
            ("amount.payer_total", |v| {
                v["amount"]["payer_total"] = json!(-1);
            }),
            ("trade_state", |v| {
                v["trade_state"] = json!("PAID");
            }),
            ("mchid", |v| {
                v.as_object_mut().unwrap().remove("mchid");
            }),
        ];
        for (field, change) in cases {
            let mut answer = paid();
            change(&mut answer);
            match Transaction::try_from(answer) {
                Err(Error::Malformed { context, reason }) => {
                    assert_eq!(context, ENDPOINT);
                    assert!(reason.contains(field), "{field}: {reason}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_call_encodes_its_path() {
        let call = OrderRef::OutTradeNo("T2026|0001".into())
            .call("1230000109")
            .unwrap();
        assert_eq!(
            call.path_and_query,
            "/v3/pay/transactions/out-trade-no/T2026%7C0001?mchid=1230000109"
        );
        let call = OrderRef::TransactionId("4200000891202103228088184743".into())
            .call("1230000109")
            .unwrap();
        assert_eq!(
            call.path_and_query,
            "/v3/pay/transactions/id/4200000891202103228088184743?mchid=1230000109"
        );
        assert!(OrderRef::TransactionId("42/../x".into()).call("1").is_err());
        assert!(
            OrderRef::OutTradeNo("../../v3/refund".into())
                .call("1")
                .is_err()
        );
    }
}
