//! Checks a request's fields before anything is sent, each failure naming the field. The
//! rules V2 shares with V3 live in [`crate::checks`]; here are V2's uses of them and its own.

use crate::checks::{self, InvalidField};
use crate::time::parse_beijing_time;
use crate::{Error, Fen, Params};

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    InvalidField::new(field, reason).into()
}

pub(crate) fn require_non_empty(field: &'static str, value: &str) -> Result<(), Error> {
    Ok(checks::require_non_empty(field, value)?)
}

pub(crate) fn check_max_len(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    Ok(checks::check_max_chars(field, value, max)?)
}

/// `out_trade_no` / `out_refund_no`: digits, letters and `_-|*`, at most `max` characters.
pub(crate) fn check_merchant_no(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    checks::require_non_empty(field, value)?;
    checks::check_max_chars(field, value, max)?;
    Ok(checks::check_charset(field, value, "_-|*")?)
}

/// An optional `yyyyMMddHHmmss` Beijing time: parsed, not merely counted.
pub(crate) fn check_time(field: &'static str, value: &Option<String>) -> Result<(), Error> {
    if let Some(time) = value {
        parse_beijing_time(time).map_err(|error| invalid(field, error.to_string()))?;
    }
    Ok(())
}

pub(crate) fn positive(field: &'static str, fen: Fen) -> Result<Fen, Error> {
    fen.ensure_positive()
        .map_err(|source| Error::Amount { field, source })
}

/// Adds an optional field when it is set and not empty.
pub(crate) fn insert_opt(params: &mut Params, key: &str, value: &Option<String>) {
    if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
        params.insert(key.to_owned(), value.clone());
    }
}
