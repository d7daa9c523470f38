//! `refundquery`: the refunds of an order, or one refund.

use super::Endpoint;
use super::validate::require_non_empty;
use crate::fields::Fields;
use crate::types::RefundStatus;
use crate::{Error, Fen, Params};

pub(crate) const ENDPOINT: Endpoint = Endpoint {
    path: "/pay/refundquery",
    needs_merchant_certificate: false,
};

/// More refunds than WeChat ever lists for one order; a larger `refund_count` is malformed.
const MAX_REFUND_COUNT: usize = 100;

/// Which refunds `refundquery` asks about; WeChat uses the first of these in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRef {
    /// WeChat's refund id.
    RefundId(String),
    /// The merchant's refund number.
    OutRefundNo(String),
    /// All refunds of a transaction.
    TransactionId(String),
    /// All refunds of an order.
    OutTradeNo(String),
}

impl RefundRef {
    /// The `refundquery` request for these refunds.
    pub(crate) fn to_params(&self) -> Result<Params, Error> {
        let (key, value) = match self {
            RefundRef::RefundId(v) => ("refund_id", v),
            RefundRef::OutRefundNo(v) => ("out_refund_no", v),
            RefundRef::TransactionId(v) => ("transaction_id", v),
            RefundRef::OutTradeNo(v) => ("out_trade_no", v),
        };
        require_non_empty(key, value)?;
        let mut params = Params::new();
        params.insert(key.into(), value.clone());
        Ok(params)
    }
}

/// One refund in a `refundquery` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// WeChat's refund id.
    pub refund_id: String,
    /// The amount.
    pub refund_fee: Fen,
    /// The state.
    pub refund_status: RefundStatus,
    /// When it succeeded.
    pub refund_success_time: Option<String>,
    /// Where the money went.
    pub refund_recv_account: Option<String>,
}

/// The answer to `refundquery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundQueryResponse {
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The order amount.
    pub total_fee: Fen,
    /// The refunds, `_0` first.
    pub refunds: Vec<RefundRecord>,
    /// Every field received.
    pub raw: Params,
}

/// Reads a checked answer: `refund_count` refunds, each from its `_$n` fields.
impl TryFrom<Params> for RefundQueryResponse {
    type Error = Error;

    fn try_from(raw: Params) -> Result<Self, Error> {
        let f = Fields::new(&raw, ENDPOINT.path);
        let count: usize = f.parsed("refund_count")?;
        if count > MAX_REFUND_COUNT {
            return Err(Error::Malformed {
                context: ENDPOINT.path,
                reason: format!("refund_count {count} is beyond what WeChat returns"),
            });
        }
        let mut refunds = Vec::with_capacity(count);
        for n in 0..count {
            refunds.push(RefundRecord {
                out_refund_no: f.required(&format!("out_refund_no_{n}"))?,
                refund_id: f.required(&format!("refund_id_{n}"))?,
                refund_fee: f.fen(&format!("refund_fee_{n}"))?,
                refund_status: f.parsed(&format!("refund_status_{n}"))?,
                refund_success_time: f.optional(&format!("refund_success_time_{n}")),
                // WeChat's own spelling of the field.
                refund_recv_account: f.optional(&format!("refund_recv_accout_{n}")),
            });
        }
        Ok(RefundQueryResponse {
            out_trade_no: f.required("out_trade_no")?,
            transaction_id: f.required("transaction_id")?,
            total_fee: f.fen("total_fee")?,
            refunds,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, malformed};

    #[test]
    fn reads_every_numbered_refund() {
        let answer = RefundQueryResponse::try_from(answer(&[
            ("out_trade_no", "T1"),
            ("transaction_id", "4200000001"),
            ("total_fee", "9999"),
            ("refund_count", "2"),
            ("out_refund_no_0", "R1"),
            ("refund_id_0", "5001"),
            ("refund_fee_0", "100"),
            ("refund_status_0", "SUCCESS"),
            ("refund_success_time_0", "2026-01-01 12:00:00"),
            ("refund_recv_accout_0", "支付用户的零钱"),
            ("out_refund_no_1", "R2"),
            ("refund_id_1", "5002"),
            ("refund_fee_1", "200"),
            ("refund_status_1", "PROCESSING"),
        ]))
        .unwrap();
        assert_eq!(answer.total_fee, Fen::new(9999));
        assert_eq!(answer.refunds.len(), 2);
        assert_eq!(answer.refunds[0].refund_status, RefundStatus::Success);
        assert_eq!(
            answer.refunds[0].refund_recv_account.as_deref(),
            Some("支付用户的零钱")
        );
        assert_eq!(answer.refunds[1].refund_status, RefundStatus::Processing);
        assert_eq!(answer.refunds[1].refund_success_time, None);
    }

    #[test]
    fn refuses_a_missing_refund_or_an_absurd_count() {
        let head = [
            ("out_trade_no", "T1"),
            ("transaction_id", "42"),
            ("total_fee", "1"),
        ];
        let mut pairs = head.to_vec();
        pairs.push(("refund_count", "1"));
        let (context, reason) =
            malformed(RefundQueryResponse::try_from(answer(&pairs)).unwrap_err());
        assert_eq!(context, "/pay/refundquery");
        assert!(reason.contains("out_refund_no_0"), "{reason}");

        let mut pairs = head.to_vec();
        pairs.push(("refund_count", "101"));
        let (_, reason) = malformed(RefundQueryResponse::try_from(answer(&pairs)).unwrap_err());
        assert!(reason.contains("refund_count 101"), "{reason}");

        let (_, reason) = malformed(RefundQueryResponse::try_from(answer(&head)).unwrap_err());
        assert!(reason.contains("refund_count"), "{reason}");
    }

    #[test]
    fn the_request_names_one_reference() {
        let params = RefundRef::OutRefundNo("R1".into()).to_params().unwrap();
        assert_eq!(params.len(), 1);
        assert_eq!(params["out_refund_no"], "R1");
        assert!(matches!(
            RefundRef::RefundId(" ".into()).to_params(),
            Err(Error::InvalidRequest {
                field: "refund_id",
                ..
            })
        ));
    }
}
