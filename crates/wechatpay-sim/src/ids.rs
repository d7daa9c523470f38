//! Identifiers shaped like WeChat's (their dates and times come from `wechatpay_v2::time`).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, FixedOffset};
use rand::Rng;
use rand::distr::Alphanumeric;
use wechatpay_v2::time::{beijing_date, beijing_time, format_date};

pub(crate) fn alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub(crate) fn digits(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn lower_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

/// Upper-case hexadecimal starting with 1 to 7: a certificate serial that stays positive
/// and keeps its length in DER.
pub(crate) fn upper_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|position| {
            let digit = if position == 0 {
                rng.random_range(1..8u32)
            } else {
                rng.random_range(0..16u32)
            };
            char::from_digit(digit, 16)
                .unwrap_or('0')
                .to_ascii_uppercase()
        })
        .collect()
}

/// A counter mixed into numeric ids so two ids minted in the same second never collide.
fn sequence() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `wx` + creation time + 20 hex digits, 36 characters like WeChat's prepay ids.
pub(crate) fn prepay_id(at: DateTime<FixedOffset>) -> String {
    format!("wx{}{}", beijing_time(at), lower_hex(20))
}

/// 28 digits starting with `42`, like WeChat's transaction ids.
pub(crate) fn transaction_id(at: DateTime<FixedOffset>) -> String {
    format!(
        "4200{:03}{}{:07}{}",
        rand::rng().random_range(0..1000u32),
        format_date(beijing_date(at)),
        sequence() % 10_000_000,
        digits(6)
    )
}

/// 29 digits starting with `50`, like WeChat's refund ids.
pub(crate) fn refund_id(at: DateTime<FixedOffset>) -> String {
    format!(
        "5000{:03}{}{:07}{}",
        rand::rng().random_range(0..1000u32),
        format_date(beijing_date(at)),
        sequence() % 10_000_000,
        digits(7)
    )
}

/// The `pr` code of a NATIVE order's `code_url`.
pub(crate) fn qr_code() -> String {
    alphanumeric(7)
}

/// The `package` of an MWEB order's `mweb_url`.
pub(crate) fn mweb_package() -> String {
    digits(10)
}

/// A payer's openid when the order did not name one (28 characters, as WeChat's).
pub(crate) fn openid() -> String {
    format!("o{}", alphanumeric(27))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_wechat_shapes() {
        let now = wechatpay_v2::time::beijing_now();
        let prepay = prepay_id(now);
        assert_eq!(prepay.len(), 36);
        assert!(prepay.starts_with("wx"));
        let transaction = transaction_id(now);
        assert_eq!(transaction.len(), 28, "{transaction}");
        assert!(transaction.bytes().all(|b| b.is_ascii_digit()));
        let refund = refund_id(now);
        assert_eq!(refund.len(), 29, "{refund}");
        assert_eq!(openid().len(), 28);
        assert_ne!(transaction_id(now), transaction_id(now));
    }
}
