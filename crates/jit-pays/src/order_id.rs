//! Order numbers (generating them, checking the ones callers bring) and the rules for the
//! text a payer is shown.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use wechatpay_v2::beijing_time;

use crate::error::PayError;

/// WeChat's limit on `out_trade_no`.
pub const MAX_ORDER_ID_LEN: usize = 32;

/// The longest refund number WeChat accepts (`out_refund_no`).
pub const MAX_REFUND_ID_LEN: usize = 64;

/// The longest refund reason WeChat accepts (`refund_desc`, 80 characters).
pub const MAX_REFUND_REASON_CHARS: usize = 80;

/// WeChat's limit on `body`, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

const SEQUENCE_SPACE: u32 = 1_000_000;

/// A process-wide sequence, started at a random point so that two processes starting in
/// the same second are unlikely to collide (and `create` retries when they do).
fn next_sequence() -> u32 {
    static SEQUENCE: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let sequence = SEQUENCE.get_or_init(|| AtomicU32::new(rand::random::<u32>() % SEQUENCE_SPACE));
    sequence.fetch_add(1, Ordering::Relaxed) % SEQUENCE_SPACE
}

/// `"D"` + yyyyMMddHHmmss (Beijing time, as WeChat's times are) + 6 digits.
///
/// The 6 digits come from a process-wide sequence, so one process never repeats a number
/// within a second before issuing a million; across processes the random start makes a
/// clash unlikely and the unique index makes it harmless.
pub fn generate_order_id() -> String {
    format!("D{}{:06}", beijing_time(Utc::now()), next_sequence())
}

/// A fresh refund number: `"R"` + yyyyMMddHHmmss (Beijing) + 6 digits, from the same
/// sequence as order numbers.
pub fn generate_refund_id() -> String {
    format!("R{}{:06}", beijing_time(Utc::now()), next_sequence())
}

/// Checks a caller's order number: 1 to 32 of `[0-9A-Za-z_\-|*]`, as WeChat's
/// `out_trade_no` allows.
pub fn validate_order_id(order_id: &str) -> Result<(), PayError> {
    validate_merchant_no("orderId", order_id, MAX_ORDER_ID_LEN)
}

/// Checks a caller's refund number: 1 to 64 of `[0-9A-Za-z_\-|*]`, as WeChat's
/// `out_refund_no` allows.
pub fn validate_refund_id(refund_id: &str) -> Result<(), PayError> {
    validate_merchant_no("refundId", refund_id, MAX_REFUND_ID_LEN)
}

/// The one rule for the merchant's numbers WeChat keeps (order and refund numbers).
fn validate_merchant_no(field: &'static str, value: &str, max_len: usize) -> Result<(), PayError> {
    if value.is_empty() {
        return Err(PayError::Invalid {
            field,
            message: "must not be empty".into(),
        });
    }
    if value.len() > max_len {
        return Err(PayError::Invalid {
            field,
            message: format!(
                "is {} characters long; WeChat accepts at most {max_len}",
                value.chars().count()
            ),
        });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|' | '*')))
    {
        return Err(PayError::Invalid {
            field,
            message: format!("contains {bad:?}; only digits, letters and _ - | * are allowed"),
        });
    }
    Ok(())
}

/// Checks text a payer is shown (the subject, an H5 scene's names): no control
/// characters and no invisible formatting characters (Unicode category Cf: bidi overrides
/// such as U+202E that make `gnp.exe` read as `exe.png`, zero-width spaces and joiners).
pub fn validate_payer_text(field: &'static str, text: &str) -> Result<(), PayError> {
    match text
        .chars()
        .find(|&c| c.is_control() || jit_runtime::is_format_char(c))
    {
        None => Ok(()),
        Some(bad) => Err(PayError::Invalid {
            field,
            message: format!(
                "must not contain control or invisible formatting characters (found U+{:04X})",
                u32::from(bad)
            ),
        }),
    }
}

/// Checks an order subject (WeChat's `body`): not blank, at most 128 bytes of UTF-8, no
/// control or formatting characters ([`validate_payer_text`]).
pub fn validate_subject(subject: &str) -> Result<(), PayError> {
    if subject.trim().is_empty() {
        return Err(PayError::Invalid {
            field: "subject",
            message: "must not be empty".into(),
        });
    }
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(PayError::Invalid {
            field: "subject",
            message: format!(
                "is {} bytes of UTF-8; WeChat accepts at most {MAX_SUBJECT_BYTES}",
                subject.len()
            ),
        });
    }
    validate_payer_text("subject", subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_have_the_documented_shape_and_are_valid() {
        let id = generate_order_id();
        assert_eq!(id.len(), 21, "{id}");
        assert!(id.starts_with('D'));
        assert!(id[1..].bytes().all(|b| b.is_ascii_digit()), "{id}");
        assert!(id[1..5].parse::<u32>().unwrap() >= 2024);
        validate_order_id(&id).unwrap();
    }

    #[test]
    fn generated_ids_are_unique_across_threads() {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| (0..5000).map(|_| generate_order_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            for id in handle.join().unwrap() {
                assert!(seen.insert(id.clone()), "duplicate {id}");
            }
        }
        assert_eq!(seen.len(), 40_000);
    }

    #[test]
    fn order_id_rules() {
        validate_order_id("CUSTOM20231120001").unwrap();
        validate_order_id("a_b-c|d*e").unwrap();
        validate_order_id(&"x".repeat(32)).unwrap();
        for bad in ["", "has space", "ü", "a/b", "a.b"] {
            let err = validate_order_id(bad).unwrap_err();
            assert!(err.to_string().contains("orderId"), "{err}");
        }
        assert!(
            validate_order_id(&"x".repeat(33))
                .unwrap_err()
                .to_string()
                .contains("32")
        );
    }

    #[test]
    fn subject_rules() {
        validate_subject("Product Purchase").unwrap();
        validate_subject(&"商".repeat(42)).unwrap(); // 126 bytes
        assert!(validate_subject(&"商".repeat(43)).is_err()); // 129 bytes
        assert!(validate_subject("  ").is_err());
        assert!(validate_subject("a\nb").is_err());
    }

    #[test]
    fn payer_text_refuses_bidi_overrides_and_zero_width_characters() {
        for (bad, code) in [
            ("Invoice \u{202E}gnp.exe", "U+202E"),
            ("Zero\u{200B}width", "U+200B"),
            ("Join\u{200D}er", "U+200D"),
            ("\u{FEFF}BOM", "U+FEFF"),
            ("Isolate \u{2066}x\u{2069}", "U+2066"),
            ("Bell\u{7}", "U+0007"),
        ] {
            let error = validate_subject(bad).unwrap_err().to_string();
            assert!(error.contains("subject") && error.contains(code), "{error}");
        }
        validate_subject("商品 Purchase — 99% off!").unwrap();
    }
}
