//! The signature of jit's merchant webhooks, for both ends of the wire.
//!
//! jit POSTs every payment event as JSON to the merchant's endpoints with three headers:
//! [`EVENT_ID_HEADER`] (`Jit-Event-Id`), [`EVENT_TYPE_HEADER`] (`Jit-Event-Type`) and
//! [`SIGNATURE_HEADER`]:
//!
//! ```text
//! Jit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>
//! ```
//!
//! (the scheme Stripe uses). This crate owns that scheme: jit signs with [`sign`], and a
//! merchant's receiver written in Rust checks with [`verify`] or [`verify_now`]. It holds no
//! HTTP, runtime or JSON code, so a receiver depends on it cheaply.
//!
//! Verifying refuses, each with its own [`VerifyError`]: a header that is not a list of
//! `name=value` items, a missing or repeated `t`, no `v1`, a `v1` that is not 64 hex digits,
//! a signature no `v1` matches, and a timestamp further than the tolerance from now (so a
//! captured request cannot be replayed later). Several `v1` are allowed, for rotating a
//! secret: one match is enough. Schemes other than `v1` (`v0=`, a future `v2=`) are
//! skipped. Comparisons are constant-time, and no error repeats the secret or the
//! expected signature.
//!
//! # A receiver verifying a webhook
//! Verify the raw body bytes as received, before parsing them: re-serialised JSON is not
//! the text that was signed.
//!
//! ```rust
//! use jit_webhooks::{SIGNATURE_HEADER, VerifyError, verify_now};
//!
//! /// Whether a webhook request comes from jit and is fresh (`raw_body`: the bytes as received).
//! fn verify_webhook(secret: &[u8], headers: &http::HeaderMap, raw_body: &[u8]) -> Result<(), VerifyError> {
//!     let signature = headers.get(SIGNATURE_HEADER).and_then(|value| value.to_str().ok());
//!     verify_now(secret, signature.unwrap_or_default(), raw_body)
//! }
//! # let secret = b"whsec_2b7e151628aed2a6abf71588";
//! # let body = br#"{"id":"0190b4c2-7f3e-7000-8000-000000000001","type":"order.paid"}"#;
//! # let now = std::time::SystemTime::now()
//! #     .duration_since(std::time::UNIX_EPOCH)
//! #     .unwrap()
//! #     .as_secs() as i64;
//! # let name = http::HeaderName::from_bytes(SIGNATURE_HEADER.as_bytes()).unwrap();
//! # let mut headers = http::HeaderMap::new();
//! # headers.insert(name.clone(), jit_webhooks::sign(secret, now, body).parse().unwrap());
//! # assert_eq!(verify_webhook(secret, &headers, body), Ok(()));
//! # assert_eq!(verify_webhook(secret, &headers, b"{}"), Err(VerifyError::Mismatch));
//! # assert_eq!(verify_webhook(b"another secret", &headers, body), Err(VerifyError::Mismatch));
//! # assert_eq!(verify_webhook(secret, &http::HeaderMap::new(), body), Err(VerifyError::EmptyHeader));
//! # let stale = jit_webhooks::sign(secret, now - 3600, body);
//! # headers.insert(name, stale.parse().unwrap());
//! # assert!(matches!(
//! #     verify_webhook(secret, &headers, body),
//! #     Err(VerifyError::TooOld { .. })
//! # ));
//! ```
//!
//! docs/events.md ("Verifying a webhook") shows this same code, a Python equivalent, and
//! why each rule is there.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// The header carrying the event's id: the same on every delivery of the event, so a
/// receiver can ignore the ones it already handled.
pub const EVENT_ID_HEADER: &str = "Jit-Event-Id";

/// The header carrying the event's type (`order.paid`, ...).
pub const EVENT_TYPE_HEADER: &str = "Jit-Event-Type";

/// The header carrying the signature, `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Jit-Signature";

/// How far, in seconds, a signature's timestamp may be from the receiver's clock: five
/// minutes either way, Stripe's default.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The length of an HMAC-SHA256, in bytes.
const SIGNATURE_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook's signature was refused. The messages name what was wrong (and where in
/// the header), never the secret or the signature that was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The secret to verify with is empty: every forger knows it, so nothing signed with
    /// it can be trusted.
    #[error("the webhook secret is empty: configure the endpoint's secret")]
    EmptySecret,
    /// The tolerance asked for is negative, which would refuse every webhook.
    #[error("the timestamp tolerance must not be negative (got {0} s)")]
    NegativeTolerance(i64),
    /// The header is missing or holds only whitespace.
    #[error("the Jit-Signature header is missing or empty")]
    EmptyHeader,
    /// An item of the header is not `name=value`.
    #[error("item {position} of the Jit-Signature header is not `name=value`")]
    MalformedItem {
        /// Which item, counting from 1.
        position: usize,
    },
    /// The header has no `t=` item.
    #[error("the Jit-Signature header has no timestamp (`t=`)")]
    MissingTimestamp,
    /// The header has more than one `t=` item.
    #[error("the Jit-Signature header has more than one timestamp (`t=`)")]
    DuplicateTimestamp,
    /// The `t=` item is not a whole number of Unix seconds.
    #[error(
        "the timestamp (`t=`) of the Jit-Signature header is not a whole number of Unix seconds"
    )]
    MalformedTimestamp,
    /// The header has no `v1=` item.
    #[error("the Jit-Signature header has no `v1=` signature")]
    NoSignature,
    /// A `v1=` item is not 64 hexadecimal digits.
    #[error("item {position} of the Jit-Signature header (`v1=`) is not 64 hexadecimal digits")]
    MalformedSignature {
        /// Which item, counting from 1.
        position: usize,
    },
    /// No `v1=` signature matches the body and timestamp with this secret: another
    /// secret signed it, or the body or the timestamp changed since.
    #[error(
        "no `v1=` signature of the Jit-Signature header matches this body and timestamp with this secret"
    )]
    Mismatch,
    /// The signature is authentic but older than the tolerance: a replay, or a slow clock
    /// on one side.
    #[error("the signature is {age_secs} s old, more than the {tolerance_secs} s tolerated")]
    TooOld {
        /// How old it is, in seconds.
        age_secs: i64,
        /// The tolerance, in seconds.
        tolerance_secs: i64,
    },
    /// The signature is authentic but dated further in the future than the tolerance: the
    /// clocks of jit and the receiver disagree.
    #[error(
        "the signature is dated {ahead_secs} s in the future, more than the {tolerance_secs} s tolerated"
    )]
    TooNew {
        /// How far ahead it is, in seconds.
        ahead_secs: i64,
        /// The tolerance, in seconds.
        tolerance_secs: i64,
    },
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<64 lowercase hex digits>`.
///
/// jit refuses an empty secret in its configuration, and [`verify`] refuses one too.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let signature = hex::encode(signature(secret, &timestamp, body));
    format!("t={timestamp},v1={signature}")
}

/// Checks a [`SIGNATURE_HEADER`] value against the raw `body` and `secret`, at `now` (Unix
/// seconds), accepting timestamps at most `tolerance_secs` away from `now`.
///
/// The signature is checked before the timestamp, so [`VerifyError::TooOld`] and
/// [`VerifyError::TooNew`] only ever describe headers jit really signed; anything forged
/// or altered is a [`VerifyError::Mismatch`].
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    if tolerance_secs < 0 {
        return Err(VerifyError::NegativeTolerance(tolerance_secs));
    }
    let header = SignatureHeader::parse(header)?;
    // The timestamp is signed as the text the header carries, as any other verifier
    // (docs/events.md) reads it.
    let expected = signature(secret, header.timestamp_text, body);
    // Every candidate is compared, without stopping at the first match, so the time taken
    // says nothing about which one matched or how much of it did.
    let matched = header
        .signatures
        .iter()
        .fold(Choice::from(0), |matched, candidate| {
            matched | candidate.ct_eq(&expected)
        });
    if !bool::from(matched) {
        return Err(VerifyError::Mismatch);
    }
    let age_secs = now.saturating_sub(header.timestamp);
    if age_secs > tolerance_secs {
        return Err(VerifyError::TooOld {
            age_secs,
            tolerance_secs,
        });
    }
    let ahead_secs = header.timestamp.saturating_sub(now);
    if ahead_secs > tolerance_secs {
        return Err(VerifyError::TooNew {
            ahead_secs,
            tolerance_secs,
        });
    }
    Ok(())
}

/// [`verify`] at the system clock's time with [`DEFAULT_TOLERANCE_SECS`].
pub fn verify_now(secret: &[u8], header: &str, body: &[u8]) -> Result<(), VerifyError> {
    verify(secret, header, body, unix_now(), DEFAULT_TOLERANCE_SECS)
}

/// The system clock in Unix seconds (negative before 1970, saturating far beyond).
fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |secs| -secs),
    }
}

/// HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`.
fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .expect("HMAC takes keys of any length (long ones are hashed first)");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// A [`SIGNATURE_HEADER`] value, taken apart.
struct SignatureHeader<'a> {
    /// The `t=` value as written: it is what was signed.
    timestamp_text: &'a str,
    timestamp: i64,
    /// Every `v1=` signature, in order.
    signatures: Vec<[u8; SIGNATURE_LEN]>,
}

impl<'a> SignatureHeader<'a> {
    /// Reads comma-separated `name=value` items, with whitespace around items allowed.
    fn parse(header: &'a str) -> Result<Self, VerifyError> {
        if header.trim().is_empty() {
            return Err(VerifyError::EmptyHeader);
        }
        let mut timestamp_text = None;
        let mut signatures = Vec::new();
        for (index, item) in header.split(',').enumerate() {
            let position = index + 1;
            let (name, value) = item
                .trim()
                .split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .ok_or(VerifyError::MalformedItem { position })?;
            match name {
                "t" if timestamp_text.is_some() => return Err(VerifyError::DuplicateTimestamp),
                "t" => timestamp_text = Some(value),
                "v1" => signatures.push(
                    decode_signature(value).ok_or(VerifyError::MalformedSignature { position })?,
                ),
                // Other schemes (Stripe's test-mode `v0`, a later `v2`) are for other
                // verifiers: skipping them lets jit add one without breaking this one.
                _ => {}
            }
        }
        let timestamp_text = timestamp_text.ok_or(VerifyError::MissingTimestamp)?;
        let timestamp = parse_timestamp(timestamp_text).ok_or(VerifyError::MalformedTimestamp)?;
        if signatures.is_empty() {
            return Err(VerifyError::NoSignature);
        }
        Ok(SignatureHeader {
            timestamp_text,
            timestamp,
            signatures,
        })
    }
}

/// Unix seconds written as an optional `-` and decimal digits (no `+`, no spaces, no `_`).
fn parse_timestamp(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn decode_signature(text: &str) -> Option<[u8; SIGNATURE_LEN]> {
    let mut signature = [0; SIGNATURE_LEN];
    hex::decode_to_slice(text, &mut signature).ok()?;
    Some(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_text_is_the_timestamp_a_dot_and_the_body() {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"key").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            sign(b"key", 1_700_000_000, b"{\"a\":1}"),
            format!("t=1700000000,v1={expected}")
        );
    }

    #[test]
    fn a_known_vector_stays_the_same() {
        // Fixed so that a change of the signed text or the encoding cannot pass unnoticed
        // (computed with Python: hmac.new(b"secret", b"0.", hashlib.sha256).hexdigest()).
        assert_eq!(
            sign(b"secret", 0, b""),
            "t=0,v1=3445798a051818ef95def46c2eb62b43d377ce6e3c29b4d0aec3da0e59577f79"
        );
    }

    #[test]
    fn timestamps_are_plain_decimal_integers() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_timestamp("-5"), Some(-5));
        for bad in [
            "",
            "-",
            "+5",
            " 5",
            "5 ",
            "1_000",
            "1.5",
            "1e9",
            "99999999999999999999",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_clock_reads_after_2020() {
        assert!(unix_now() > 1_577_836_800);
    }
}
