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
//!
//! # Where calls go
//! Each call module names its live path (its `ENDPOINT`); this module owns where the
//! sandbox puts them: every live path below `/xdc/apiv2sandbox`, and the sandbox key's call
//! at `/xdc/apiv2getsignkey/sign/getsignkey` (`SANDBOX_ROOT`, `SANDBOX_SIGN_KEY_PATH`).
//! `Endpoint::path_in` is the one place a call's path is chosen.

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

/// The root of WeChat's V2 sandbox (its "simulation test system") under the API root: it
/// takes every live path below it, e.g. `/xdc/apiv2sandbox/pay/unifiedorder`. WeChat moved
/// the sandbox here from `/sandboxnew`, which it no longer serves (reported to wechatpy in
/// 2023, its issue 770).
pub(crate) const SANDBOX_ROOT: &str = "/xdc/apiv2sandbox";

/// The sandbox key's call (see [`sandbox_sign_key`]): beside the sandbox root, not below it,
/// since it moved with the sandbox (it was `/sandboxnew/pay/getsignkey`).
pub(crate) const SANDBOX_SIGN_KEY_PATH: &str = "/xdc/apiv2getsignkey/sign/getsignkey";

/// Where a call goes and what it needs to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The live path under the API root; also the context errors about the answer are
    /// reported under.
    pub path: &'static str,
    /// Whether the call must present the merchant certificate (outside the sandbox).
    pub needs_merchant_certificate: bool,
}

impl Endpoint {
    /// The path the call is sent to under the API root: its live path, or in sandbox mode
    /// that path below [`SANDBOX_ROOT`].
    pub(crate) fn path_in(self, sandbox: bool) -> String {
        if sandbox {
            format!("{SANDBOX_ROOT}{}", self.path)
        } else {
            self.path.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_calls_go_below_the_moved_sandbox_root() {
        let refund = refund::ENDPOINT;
        assert_eq!(refund.path_in(false), "/secapi/pay/refund");
        assert_eq!(refund.path_in(true), "/xdc/apiv2sandbox/secapi/pay/refund");
        assert_eq!(
            unified_order::ENDPOINT.path_in(true),
            "/xdc/apiv2sandbox/pay/unifiedorder"
        );
        assert_eq!(
            SANDBOX_SIGN_KEY_PATH,
            "/xdc/apiv2getsignkey/sign/getsignkey"
        );
    }
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
