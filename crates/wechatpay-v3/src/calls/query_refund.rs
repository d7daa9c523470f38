//! Refund query (`GET /v3/refund/domestic/refunds/{out_refund_no}`), answered with a
//! [`Refund`](super::Refund).

use super::validate::check_merchant_no;
use super::{Call, encode_component};
use crate::Error;

/// The path pattern refund-query answers are reported under.
pub const ENDPOINT: &str = "/v3/refund/domestic/refunds/{out_refund_no}";

/// The query call for a refund number.
pub(crate) fn call(out_refund_no: &str) -> Result<Call, Error> {
    check_merchant_no("out_refund_no", out_refund_no, 1, 64, "_-|*@")?;
    Ok(Call::get(
        ENDPOINT,
        format!(
            "/v3/refund/domestic/refunds/{}",
            encode_component(out_refund_no)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Refund;

    #[test]
    fn the_call_and_its_answer() {
        assert_eq!(
            call("R2026@1").unwrap().path_and_query,
            "/v3/refund/domestic/refunds/R2026%401"
        );
        assert!(call("R 1").is_err());
        let refund = Refund::read(crate::calls::refund::tests::accepted(), ENDPOINT).unwrap();
        assert_eq!(refund.out_refund_no, "1217752501201407033233368018");
        let mut broken = crate::calls::refund::tests::accepted();
        broken["amount"] = serde_json::json!(null);
        match Refund::read(broken, ENDPOINT) {
            Err(Error::Malformed { context, .. }) => assert_eq!(context, ENDPOINT),
            other => panic!("{other:?}"),
        }
    }
}
