//! The merchant API's calls, one module each: the request a call sends (validated before
//! anything is sent) and the typed response read from the answer's fields.
//!
//! Every response type implements `TryFrom<Params>`: it reads the fields of an answer the
//! transport has already checked (HTTP status, strict XML, `return_code`, signature, `appid` /
//! `mch_id`, `result_code`; see [`crate::client`]), so each call's wire format can be read and
//! tested without HTTP. A missing or malformed field is [`Error::Malformed`](crate::Error)
//! naming the call's path and the field.
//!
//! | module | request | response |
//! |---|---|---|
//! | [`unified_order`] | [`UnifiedOrderRequest`] with a [`TradeKind`] | [`UnifiedOrderResponse`] |
//! | [`order_query`] | [`OrderRef`] | [`OrderQueryResponse`] |
//! | [`close_order`] | `out_trade_no` | [`CloseOrderResponse`] |
//! | [`refund`] | [`RefundRequest`] | [`RefundResponse`] |
//! | [`refund_query`] | [`RefundRef`] | [`RefundQueryResponse`] with [`RefundRecord`]s |
//! | [`download_bill`] | `bill_date`, [`BillType`](crate::BillType) | the bill's text |
//! | [`sandbox_sign_key`] | `mch_id` | the sandbox key |

pub mod close_order;
pub mod download_bill;
pub mod order_query;
pub mod refund;
pub mod refund_query;
pub mod sandbox_sign_key;
pub mod unified_order;
mod validate;

pub use close_order::CloseOrderResponse;
pub use order_query::{OrderQueryResponse, OrderRef};
pub use refund::{RefundRequest, RefundResponse};
pub use refund_query::{RefundQueryResponse, RefundRecord, RefundRef};
pub use unified_order::{TradeKind, UnifiedOrderRequest, UnifiedOrderResponse};

/// Where a call goes and what it needs to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The path under the API root (under `/sandboxnew` in sandbox mode); also the context
    /// errors about the answer are reported under.
    pub path: &'static str,
    /// Whether the call must present the merchant certificate (outside the sandbox).
    pub needs_merchant_certificate: bool,
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::Params;

    /// An answer's fields from pairs, as the transport hands them to `TryFrom`.
    pub(crate) fn answer(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// The `Malformed` reason of an error, for assertions.
    pub(crate) fn malformed(error: crate::Error) -> (&'static str, String) {
        match error {
            crate::Error::Malformed { context, reason } => (context, reason),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}
