//! Close (`POST /v3/pay/transactions/out-trade-no/{no}/close` with `{"mchid"}`): closes an
//! unpaid order. Answered with 204 and no body.

use serde_json::json;

use super::validate::check_merchant_no;
use super::{Call, encode_component};
use crate::Error;
use crate::json::malformed;

/// The path pattern close answers are reported under.
pub const ENDPOINT: &str = "/v3/pay/transactions/out-trade-no/{no}/close";

/// The close call for an order number.
pub(crate) fn call(out_trade_no: &str, mch_id: &str) -> Result<Call, Error> {
    check_merchant_no("out_trade_no", out_trade_no, 6, 32, "_-|*")?;
    Ok(Call::post(
        ENDPOINT,
        format!(
            "/v3/pay/transactions/out-trade-no/{}/close",
            encode_component(out_trade_no)
        ),
        &json!({ "mchid": mch_id }),
    ))
}

/// Checks a verified answer: 204, or 200 with an empty body.
pub(crate) fn read_answer(status: u16, body: &[u8]) -> Result<(), Error> {
    match status {
        204 => Ok(()),
        200 if body.trim_ascii().is_empty() => Ok(()),
        other => Err(malformed(
            ENDPOINT,
            format!("expected 204 No Content, got HTTP {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_sends_the_mchid() {
        let call = call("T20260101|1", "1230000109").unwrap();
        assert_eq!(
            call.path_and_query,
            "/v3/pay/transactions/out-trade-no/T20260101%7C1/close"
        );
        assert_eq!(
            call.body.as_deref(),
            Some(&br#"{"mchid":"1230000109"}"#[..])
        );
        assert!(super::call("T1", "1").is_err());
    }

    #[test]
    fn only_an_empty_success_closes() {
        assert!(read_answer(204, b"").is_ok());
        assert!(read_answer(200, b"").is_ok());
        assert!(read_answer(200, b"{\"code\":\"x\"}").is_err());
        assert!(read_answer(202, b"").is_err());
    }
}
