//! `closeorder`: closes an unpaid order so it can no longer be paid.

use super::Endpoint;
use super::validate::check_merchant_no;
use crate::fields::Fields;
use crate::{Error, Params};

pub(crate) const ENDPOINT: Endpoint = Endpoint {
    path: "/pay/closeorder",
    needs_merchant_certificate: false,
};

/// The `closeorder` request for an order number.
pub(crate) fn request(out_trade_no: &str) -> Result<Params, Error> {
    check_merchant_no("out_trade_no", out_trade_no, 32)?;
    let mut params = Params::new();
    params.insert("out_trade_no".into(), out_trade_no.into());
    Ok(params)
}

/// The answer to `closeorder`: the order is closed. Refusals (`ORDERPAID`, `ORDERCLOSED`,
/// `ORDERNOTEXIST`, ...) come as [`Error::Business`] instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOrderResponse {
    /// WeChat's `result_msg` (`OK`), when it sends one.
    pub result_msg: Option<String>,
    /// Every field received.
    pub raw: Params,
}

/// Reads a checked answer: nothing beyond `result_code` (checked by the transport) is
/// required.
impl TryFrom<Params> for CloseOrderResponse {
    type Error = Error;

    fn try_from(raw: Params) -> Result<Self, Error> {
        let f = Fields::new(&raw, ENDPOINT.path);
        Ok(CloseOrderResponse {
            result_msg: f.optional("result_msg"),
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::answer;

    #[test]
    fn reads_the_answer_and_keeps_every_field() {
        let closed = CloseOrderResponse::try_from(answer(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("result_msg", "OK"),
            ("appid", "wx1"),
        ]))
        .unwrap();
        assert_eq!(closed.result_msg.as_deref(), Some("OK"));
        assert_eq!(closed.raw["appid"], "wx1");
        let bare = CloseOrderResponse::try_from(answer(&[("result_code", "SUCCESS")])).unwrap();
        assert_eq!(bare.result_msg, None);
    }

    #[test]
    fn the_request_is_checked() {
        assert_eq!(request("T-1").unwrap()["out_trade_no"], "T-1");
        assert!(matches!(
            request(&"9".repeat(33)),
            Err(Error::InvalidRequest {
                field: "out_trade_no",
                ..
            })
        ));
    }
}
