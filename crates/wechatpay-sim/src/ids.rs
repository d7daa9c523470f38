//! Identifiers and timestamps shaped like WeChat's.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, FixedOffset, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;

/// WeChat Pay speaks Beijing time (UTC+8) in every timestamp field.
pub(crate) fn beijing_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&beijing())
}

pub(crate) fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// `yyyyMMddHHmmss` in Beijing time, the format of `time_end`, `time_start`, `time_expire`.
pub(crate) fn compact_time(at: DateTime<FixedOffset>) -> String {
    wechatpay_v2::types::beijing_time(at.with_timezone(&Utc))
}

/// `yyyy-MM-dd HH:mm:ss`, the format of `refund_success_time` and bill rows.
pub(crate) fn readable_time(at: DateTime<FixedOffset>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(crate) fn alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn digits(len: usize) -> String {
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

/// A counter mixed into numeric ids so two ids minted in the same second never collide.
fn sequence() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `wx` + creation time + 20 hex digits, 36 characters like WeChat's prepay ids.
pub(crate) fn prepay_id(at: DateTime<FixedOffset>) -> String {
    format!("wx{}{}", compact_time(at), lower_hex(20))
}

/// 28 digits starting with `42`, like WeChat's transaction ids.
pub(crate) fn transaction_id(at: DateTime<FixedOffset>) -> String {
    format!(
        "4200{:03}{}{:07}{}",
        rand::rng().random_range(0..1000u32),
        at.format("%Y%m%d"),
        sequence() % 10_000_000,
        digits(6)
    )
}

/// 29 digits starting with `50`, like WeChat's refund ids.
pub(crate) fn refund_id(at: DateTime<FixedOffset>) -> String {
    format!(
        "5000{:03}{}{:07}{}",
        rand::rng().random_range(0..1000u32),
        at.format("%Y%m%d"),
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
        let now = beijing_now();
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
