//! The field rules both protocol crates check a request against before sending it: present,
//! not too many characters, only digits, letters and a call's own punctuation. Each failure
//! names the field; each crate turns an [`InvalidField`] into its own
//! `Error::InvalidRequest`. Rules that differ between V2 and V3 (V3's byte lengths and
//! minimum lengths, its 32-bit amounts, its notify URLs) stay in that crate.

/// A request field that breaks a rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: field `{field}`: {reason}")]
pub struct InvalidField {
    /// The field (V3: its JSON path).
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl InvalidField {
    /// A refusal of `field` for `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> InvalidField {
        InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// The field must hold something other than white space.
pub fn require_non_empty(field: &'static str, value: &str) -> Result<(), InvalidField> {
    if value.trim().is_empty() {
        Err(InvalidField::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// The field must be at most `max` characters (not bytes) long.
pub fn check_max_chars(field: &'static str, value: &str, max: usize) -> Result<(), InvalidField> {
    if value.chars().count() > max {
        Err(InvalidField::new(
            field,
            format!("longer than {max} characters"),
        ))
    } else {
        Ok(())
    }
}

/// The field may hold only ASCII digits, ASCII letters and the characters of `extra`; the
/// refusal names the first other character.
pub fn check_charset(field: &'static str, value: &str, extra: &str) -> Result<(), InvalidField> {
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(*c)))
    {
        Some(bad) => Err(InvalidField::new(
            field,
            format!("character {bad:?} not allowed (digits, letters and {extra} only)"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_the_field_and_the_problem() {
        assert!(require_non_empty("openid", "o1").is_ok());
        assert_eq!(
            require_non_empty("openid", " \t").unwrap_err(),
            InvalidField::new("openid", "must not be empty")
        );
        assert!(check_max_chars("body", "订单", 2).is_ok());
        assert_eq!(
            check_max_chars("body", "订单号", 2)
                .unwrap_err()
                .to_string(),
            "invalid request: field `body`: longer than 2 characters"
        );
        assert!(check_charset("out_trade_no", "T-1|*_x", "_-|*").is_ok());
        assert_eq!(
            check_charset("out_trade_no", "T 1", "_-|*")
                .unwrap_err()
                .reason,
            "character ' ' not allowed (digits, letters and _-|* only)"
        );
        assert!(check_charset("out_trade_no", "单1", "_-|*").is_err());
    }
}
