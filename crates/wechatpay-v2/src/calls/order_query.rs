//! `orderquery`: the state of an order.

use super::Endpoint;
use super::validate::{check_merchant_no, require_non_empty};
use crate::fields::Fields;
use crate::types::{TradeState, TradeType};
use crate::{Error, Fen, Params};

pub(crate) const ENDPOINT: Endpoint = Endpoint {
    path: "/pay/orderquery",
    needs_merchant_certificate: false,
};

/// Which order: by the merchant's number or WeChat's transaction id. Names the order of an
/// `orderquery` and of a `refund`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// The merchant's `out_trade_no`.
    OutTradeNo(String),
    /// WeChat's `transaction_id`.
    TransactionId(String),
}

impl OrderRef {
    /// Checks the reference and adds it to a request.
    pub(crate) fn insert_into(&self, params: &mut Params) -> Result<(), Error> {
        match self {
            OrderRef::OutTradeNo(no) => {
                check_merchant_no("out_trade_no", no, 32)?;
                params.insert("out_trade_no".into(), no.clone());
            }
            OrderRef::TransactionId(id) => {
                require_non_empty("transaction_id", id)?;
                params.insert("transaction_id".into(), id.clone());
            }
        }
        Ok(())
    }

    /// The `orderquery` request for this order.
    pub(crate) fn to_params(&self) -> Result<Params, Error> {
        let mut params = Params::new();
        self.insert_into(&mut params)?;
        Ok(params)
    }
}

/// The answer to `orderquery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQueryResponse {
    /// The state of the order.
    pub trade_state: TradeState,
    /// WeChat's description of the state.
    pub trade_state_desc: Option<String>,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id (once paid).
    pub transaction_id: Option<String>,
    /// The order amount (present once paid; WeChat omits it for some unpaid states).
    pub total_fee: Option<Fen>,
    /// Cash paid.
    pub cash_fee: Option<Fen>,
    /// The buyer's openid.
    pub openid: Option<String>,
    /// How the buyer paid.
    pub trade_type: Option<TradeType>,
    /// Payment time `yyyyMMddHHmmss` (Beijing; [`parse_beijing_time`](crate::time::parse_beijing_time)).
    pub time_end: Option<String>,
    /// The merchant's `attach`.
    pub attach: Option<String>,
    /// Every field received.
    pub raw: Params,
}

/// Reads a checked answer. A paid order (`SUCCESS`, `REFUND`) must carry its
/// `transaction_id` and `total_fee`; an unpaid one may omit them.
impl TryFrom<Params> for OrderQueryResponse {
    type Error = Error;

    fn try_from(raw: Params) -> Result<Self, Error> {
        let f = Fields::new(&raw, ENDPOINT.path);
        let trade_state: TradeState = f.parsed("trade_state")?;
        Ok(OrderQueryResponse {
            trade_state,
            trade_state_desc: f.optional("trade_state_desc"),
            out_trade_no: f.required("out_trade_no")?,
            transaction_id: if trade_state.is_paid() {
                Some(f.required("transaction_id")?)
            } else {
                f.optional("transaction_id")
            },
            total_fee: if trade_state.is_paid() {
                Some(f.fen("total_fee")?)
            } else {
                f.optional_fen("total_fee")?
            },
            cash_fee: f.optional_fen("cash_fee")?,
            openid: f.optional("openid"),
            trade_type: f.optional_parsed("trade_type")?,
            time_end: f.optional("time_end"),
            attach: f.optional("attach"),
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, malformed};

    #[test]
    fn reads_a_paid_order() {
        let paid = OrderQueryResponse::try_from(answer(&[
            ("trade_state", "SUCCESS"),
            ("out_trade_no", "T1"),
            ("transaction_id", "4200000001"),
            ("total_fee", "9999"),
            ("cash_fee", "9900"),
            ("trade_type", "NATIVE"),
            ("time_end", "20260101120000"),
            ("attach", "a"),
        ]))
        .unwrap();
        assert_eq!(paid.trade_state, TradeState::Success);
        assert_eq!(paid.transaction_id.as_deref(), Some("4200000001"));
        assert_eq!(paid.total_fee, Some(Fen::new(9999)));
        assert_eq!(paid.cash_fee, Some(Fen::new(9900)));
        assert_eq!(paid.trade_type, Some(TradeType::Native));
        assert_eq!(paid.time_end.as_deref(), Some("20260101120000"));
    }

    #[test]
    fn an_unpaid_order_may_omit_what_only_payment_brings() {
        let unpaid = OrderQueryResponse::try_from(answer(&[
            ("trade_state", "NOTPAY"),
            ("out_trade_no", "T1"),
            ("trade_state_desc", "订单未支付"),
        ]))
        .unwrap();
        assert_eq!(unpaid.trade_state, TradeState::NotPay);
        assert_eq!((unpaid.transaction_id, unpaid.total_fee), (None, None));
        assert_eq!(unpaid.trade_state_desc.as_deref(), Some("订单未支付"));
    }

    #[test]
    fn refuses_a_paid_order_without_its_facts() {
        for (pairs, field) in [
            (
                &[
                    ("trade_state", "SUCCESS"),
                    ("out_trade_no", "T1"),
                    ("total_fee", "1"),
                ][..],
                "transaction_id",
            ),
            (
                &[
                    ("trade_state", "REFUND"),
                    ("out_trade_no", "T1"),
                    ("transaction_id", "42"),
                ][..],
                "total_fee",
            ),
            (
                &[
                    ("trade_state", "SUCCESS"),
                    ("out_trade_no", "T1"),
                    ("transaction_id", "42"),
                    ("total_fee", "1.00"),
                ][..],
                "total_fee",
            ),
            (
                &[("trade_state", "PAID"), ("out_trade_no", "T1")][..],
                "trade_state",
            ),
            (&[("trade_state", "NOTPAY")][..], "out_trade_no"),
        ] {
            let (context, reason) =
                malformed(OrderQueryResponse::try_from(answer(pairs)).unwrap_err());
            assert_eq!(context, "/pay/orderquery");
            assert!(reason.contains(field), "{field}: {reason}");
        }
    }

    #[test]
    fn the_request_names_one_order() {
        let params = OrderRef::OutTradeNo("T1".into()).to_params().unwrap();
        assert_eq!(params["out_trade_no"], "T1");
        let params = OrderRef::TransactionId("42".into()).to_params().unwrap();
        assert_eq!(params["transaction_id"], "42");
        assert!(matches!(
            OrderRef::OutTradeNo("T 1".into()).to_params(),
            Err(Error::InvalidRequest {
                field: "out_trade_no",
                ..
            })
        ));
    }
}
