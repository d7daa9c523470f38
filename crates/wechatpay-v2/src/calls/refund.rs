//! `refund` (`/secapi/pay/refund`): asks for a refund, with the merchant certificate.

use super::Endpoint;
use super::order_query::OrderRef;
use super::validate::{check_merchant_no, insert_opt, invalid, positive};
use crate::fields::Fields;
use crate::{Error, Fen, Params};

pub(crate) const ENDPOINT: Endpoint = Endpoint {
    path: "/secapi/pay/refund",
    needs_merchant_certificate: true,
};

/// A `refund` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The paid order.
    pub order: OrderRef,
    /// The merchant's refund number (≤ 64 of digits, letters, `_-|*`); retries reuse it.
    pub out_refund_no: String,
    /// The order's total amount.
    pub total_fee: Fen,
    /// The amount to refund (positive, at most `total_fee`).
    pub refund_fee: Fen,
    /// Reason shown to the buyer.
    pub refund_desc: Option<String>,
    /// Where the refund notify goes.
    pub notify_url: Option<String>,
}

impl RefundRequest {
    /// Checks every field and builds the parameters (without appid, mch_id, nonce, sign).
    pub fn to_params(&self) -> Result<Params, Error> {
        let mut params = Params::new();
        self.order.insert_into(&mut params)?;
        check_merchant_no("out_refund_no", &self.out_refund_no, 64)?;
        let total_fee = positive("total_fee", self.total_fee)?;
        let refund_fee = positive("refund_fee", self.refund_fee)?;
        if refund_fee > total_fee {
            return Err(invalid(
                "refund_fee",
                format!("{refund_fee} yuan is more than total_fee {total_fee} yuan"),
            ));
        }
        params.insert("out_refund_no".into(), self.out_refund_no.clone());
        params.insert("total_fee".into(), total_fee.to_fen_string());
        params.insert("refund_fee".into(), refund_fee.to_fen_string());
        insert_opt(&mut params, "refund_desc", &self.refund_desc);
        insert_opt(&mut params, "notify_url", &self.notify_url);
        Ok(params)
    }
}

/// The answer to `refund` (accepted; the outcome comes by notify or `refundquery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResponse {
    /// WeChat's refund id.
    pub refund_id: String,
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat's transaction id.
    pub transaction_id: String,
    /// The refunded amount.
    pub refund_fee: Fen,
    /// The order amount.
    pub total_fee: Fen,
    /// Every field received.
    pub raw: Params,
}

/// Reads a checked answer; every field of the struct is required.
impl TryFrom<Params> for RefundResponse {
    type Error = Error;

    fn try_from(raw: Params) -> Result<Self, Error> {
        let f = Fields::new(&raw, ENDPOINT.path);
        Ok(RefundResponse {
            refund_id: f.required("refund_id")?,
            out_refund_no: f.required("out_refund_no")?,
            out_trade_no: f.required("out_trade_no")?,
            transaction_id: f.required("transaction_id")?,
            refund_fee: f.fen("refund_fee")?,
            total_fee: f.fen("total_fee")?,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, malformed};

    const ACCEPTED: &[(&str, &str)] = &[
        ("refund_id", "50000001"),
        ("out_refund_no", "R1"),
        ("out_trade_no", "T1"),
        ("transaction_id", "4200000001"),
        ("refund_fee", "100"),
        ("total_fee", "9999"),
    ];

    #[test]
    fn reads_an_accepted_refund() {
        let refund = RefundResponse::try_from(answer(ACCEPTED)).unwrap();
        assert_eq!(refund.refund_id, "50000001");
        assert_eq!(refund.refund_fee, Fen::new(100));
        assert_eq!(refund.total_fee, Fen::new(9999));
    }

    #[test]
    fn every_field_is_required() {
        for (missing, _) in ACCEPTED {
            let pairs: Vec<_> = ACCEPTED
                .iter()
                .copied()
                .filter(|(key, _)| key != missing)
                .collect();
            let (context, reason) =
                malformed(RefundResponse::try_from(answer(&pairs)).unwrap_err());
            assert_eq!(context, "/secapi/pay/refund");
            assert!(reason.contains(missing), "{reason}");
        }
        let mut pairs = ACCEPTED.to_vec();
        pairs[4] = ("refund_fee", "-1");
        let (_, reason) = malformed(RefundResponse::try_from(answer(&pairs)).unwrap_err());
        assert!(reason.contains("refund_fee"), "{reason}");
    }

    #[test]
    fn the_request_refunds_at_most_the_order() {
        let mut request = RefundRequest {
            order: OrderRef::OutTradeNo("T1".into()),
            out_refund_no: "R1".into(),
            total_fee: Fen::new(100),
            refund_fee: Fen::new(101),
            refund_desc: Some(String::new()),
            notify_url: None,
        };
        assert!(matches!(
            request.to_params(),
            Err(Error::InvalidRequest {
                field: "refund_fee",
                ..
            })
        ));
        request.refund_fee = Fen::new(100);
        let params = request.to_params().unwrap();
        let keys: Vec<&str> = params.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["out_trade_no", "out_refund_no", "total_fee", "refund_fee"]
        );
    }
}
