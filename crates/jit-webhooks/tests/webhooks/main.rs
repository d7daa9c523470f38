//! The webhook signature's tests, one binary: each module is one concern.

mod documented;
mod properties;
mod signature;

/// The secret most tests sign with.
pub const SECRET: &[u8] = b"whsec_7f3c2a9d41e8b6051c2d";

/// A body shaped like an event.
pub const BODY: &[u8] =
    br#"{"id":"0190b4c2-7f3e-7000-8000-000000000001","type":"order.paid","version":1}"#;

/// A fixed "now" for tests that pass the clock.
pub const NOW: i64 = 1_760_000_000;
