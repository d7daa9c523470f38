//! Checks a request's fields before anything is sent, each failure naming the field. The
//! rules V3 shares with V2 live in `wechatpay_v2::checks`; V3's own are its byte lengths, its
//! merchant-number length range, its 32-bit amounts, notify URLs and IPs.

use wechatpay_v2::checks::{self, InvalidField};

use crate::{Error, Fen};

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    InvalidField::new(field, reason).into()
}

pub(crate) fn require_non_empty(field: &'static str, value: &str) -> Result<(), Error> {
    Ok(checks::require_non_empty(field, value)?)
}

pub(crate) fn check_max_chars(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    Ok(checks::check_max_chars(field, value, max)?)
}

pub(crate) fn check_max_bytes(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.len() > max {
        Err(invalid(field, format!("longer than {max} bytes (UTF-8)")))
    } else {
        Ok(())
    }
}

/// A merchant number (`out_trade_no`, `out_refund_no`): `min..=max` of digits, letters and
/// `extra` punctuation.
pub(crate) fn check_merchant_no(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
    extra: &str,
) -> Result<(), Error> {
    require_non_empty(field, value)?;
    if value.len() < min || value.len() > max {
        return Err(invalid(
            field,
            format!("must be {min} to {max} characters long"),
        ));
    }
    Ok(checks::check_charset(field, value, extra)?)
}

/// Digits and letters only (transaction ids, openids may also have `-` and `_`).
pub(crate) fn check_token(
    field: &'static str,
    value: &str,
    max: usize,
    extra: &str,
) -> Result<(), Error> {
    check_merchant_no(field, value, 1, max, extra)
}

/// A positive amount that fits WeChat's 32-bit `int` fields.
pub(crate) fn amount(field: &'static str, fen: Fen) -> Result<Fen, Error> {
    let fen = fen
        .ensure_positive()
        .map_err(|source| Error::Amount { field, source })?;
    if fen.get() > i64::from(i32::MAX) {
        return Err(invalid(
            field,
            format!("{fen} yuan is more than WeChat's largest amount"),
        ));
    }
    Ok(fen)
}

/// A notify URL: https without query or fragment, at most 256 characters. Plain http is
/// taken only for a loopback host (a simulator on this machine): WeChat itself calls only
/// https.
pub(crate) fn check_notify_url(field: &'static str, value: &str) -> Result<(), Error> {
    require_non_empty(field, value)?;
    check_max_chars(field, value, 256)?;
    let url = reqwest::Url::parse(value).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid(field, "must be an https:// URL")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(field, "must not carry a query or fragment"));
    }
    Ok(())
}

/// An IP address (IPv4 or IPv6).
pub(crate) fn check_ip(field: &'static str, value: &str) -> Result<(), Error> {
    value
        .parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| invalid(field, format!("`{value}` is not an IP address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_urls_are_https_without_query() {
        for good in [
            "https://shop.example/wxpay/notify",
            "http://127.0.0.1:8080/pays/notify",
            "http://localhost/notify",
            "http://[::1]:9/notify",
        ] {
            check_notify_url("notify_url", good).unwrap();
        }
        for bad in [
            "http://shop.example/notify",
            "https://shop.example/notify?order=1",
            "https://shop.example/notify#x",
            "ftp://shop.example/notify",
            "shop.example/notify",
            "",
        ] {
            assert!(check_notify_url("notify_url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_are_positive_and_fit_an_int() {
        assert!(amount("amount.total", Fen::new(1)).is_ok());
        assert!(amount("amount.total", Fen::new(i64::from(i32::MAX))).is_ok());
        for bad in [0, -1, i64::from(i32::MAX) + 1] {
            assert!(amount("amount.total", Fen::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn merchant_numbers() {
        check_merchant_no("out_trade_no", "T2026-01|*_x", 6, 32, "_-|*").unwrap();
        for bad in ["T1", "T2026 0101", "订单号123456", &"9".repeat(33)] {
            assert!(
                check_merchant_no("out_trade_no", bad, 6, 32, "_-|*").is_err(),
                "{bad}"
            );
        }
    }
}
