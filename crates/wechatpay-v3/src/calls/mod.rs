//! The merchant API's calls, one module each: the request a call sends (validated before
//! anything is sent) and the typed answer read from the verified body.
//!
//! Every answer type is read from the answer's JSON with `TryFrom<serde_json::Value>` after
//! the transport has checked the HTTP status and WeChat's signature (see [`crate::client`]),
//! so each call's wire format can be read and tested without HTTP. A missing or malformed
//! field is [`Error::Malformed`](crate::Error) naming the call and the JSON path.
//!
//! | module | request | answer |
//! |---|---|---|
//! | [`prepay`] | [`PrepayRequest`] with a [`PrepayKind`] (JSAPI, APP, H5, NATIVE) | [`PrepayResponse`] |
//! | [`query_order`] | [`OrderRef`] (out_trade_no or transaction id) | [`Transaction`] |
//! | [`close_order`] | `out_trade_no` | nothing (204) |
//! | [`refund`] | [`RefundRequest`] | [`Refund`] |
//! | [`query_refund`] | `out_refund_no` | [`Refund`] |
//! | [`bill`] | [`TradeBillRequest`], [`FundFlowBillRequest`] | [`BillDownload`], then the bill |
//! | [`certificates`] | — | [`CertificateList`], decrypted into platform certificates |

pub mod bill;
pub mod certificates;
pub mod close_order;
pub mod prepay;
pub mod query_order;
pub mod query_refund;
pub mod refund;
mod validate;

pub use bill::{BillDownload, FundFlowBillRequest, TradeBillRequest};
pub use certificates::CertificateList;
pub use prepay::{H5Scene, PrepayKind, PrepayRequest, PrepayResponse};
pub use query_order::{OrderRef, Payer, Transaction, TransactionAmount};
pub use refund::{Refund, RefundAmount, RefundRequest};

/// A request ready to sign and send: method, the path with its query exactly as it will be
/// sent and signed, and the body bytes (fixed once, so retries re-send them unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// The path pattern, the context errors about the answer are reported under.
    pub endpoint: &'static str,
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// The path and query under the API root, percent-encoded.
    pub path_and_query: String,
    /// The JSON body of a POST.
    pub body: Option<Vec<u8>>,
}

impl Call {
    pub(crate) fn get(endpoint: &'static str, path_and_query: String) -> Call {
        Call {
            endpoint,
            method: reqwest::Method::GET,
            path_and_query,
            body: None,
        }
    }

    pub(crate) fn post(
        endpoint: &'static str,
        path_and_query: String,
        body: &serde_json::Value,
    ) -> Call {
        Call {
            endpoint,
            method: reqwest::Method::POST,
            path_and_query,
            body: Some(serde_json::to_vec(body).expect("a JSON value always serialises")),
        }
    }
}

/// Percent-encodes one path segment or query value: everything but letters, digits and
/// `-._~*` (so `|`, allowed in merchant numbers, travels as `%7C`, and what is signed is
/// what is sent).
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~*".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_encoded_for_the_path() {
        assert_eq!(encode_component("T-1_2*3|4"), "T-1_2*3%7C4");
        assert_eq!(encode_component("a b/é"), "a%20b%2F%C3%A9");
    }
}
