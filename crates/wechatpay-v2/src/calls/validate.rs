//! Checks a request's fields before anything is sent, each failure naming the field.

use crate::time::parse_beijing_time;
use crate::{Error, Fen, Params};

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidRequest {
        field,
        reason: reason.into(),
    }
}

pub(crate) fn require_non_empty(field: &'static str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

pub(crate) fn check_max_len(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.chars().count() > max {
        Err(invalid(field, format!("longer than {max} characters")))
    } else {
        Ok(())
    }
}

/// `out_trade_no` / `out_refund_no`: digits, letters and `_-|*`, at most `max` long.
pub(crate) fn check_merchant_no(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    require_non_empty(field, value)?;
    check_max_len(field, value, max)?;
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-|*".contains(*c)))
    {
        return Err(invalid(
            field,
            format!("character {bad:?} not allowed (digits, letters and _-|* only)"),
        ));
    }
    Ok(())
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
