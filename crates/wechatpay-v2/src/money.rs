//! Money as integer fen.
//!
//! WeChat Pay counts in fen (1 yuan = 100 fen). Amounts enter the system as yuan written by
//! people ("99.99") and leave it as fen integers (`total_fee=9999`). The conversion is done on
//! the decimal digits themselves: a float never touches an amount, so the classic SDK bugs
//! (9.8 × 100 = 980.0000000000001, 19.9 → 1989) cannot happen here.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in fen (0.01 yuan), the unit of every WeChat Pay amount field.
///
/// Serialises as an integer number of fen; [`Display`](fmt::Display) writes yuan with two
/// decimals (`9999` fen → `"99.99"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fen(i64);

/// Why a text or number could not be read as an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Nothing was given.
    #[error("amount is empty")]
    Empty,
    /// A minus sign: amounts handled here are never negative.
    #[error("amount `{0}` is negative")]
    Negative(String),
    /// The amount is zero where a positive amount is required.
    #[error("amount must be greater than zero")]
    Zero,
    /// More than two digits after the decimal point (fen is the smallest unit).
    #[error("amount `{0}` has more than two decimals")]
    TooManyDecimals(String),
    /// The amount does not fit in an `i64` number of fen.
    #[error("amount `{0}` is too large")]
    Overflow(String),
    /// Not a plain decimal number (letters, NaN, infinity, several points, ...).
    #[error("amount `{0}` is not a decimal number")]
    NotANumber(String),
    /// A JSON value that is neither a number nor a string.
    #[error("amount must be a JSON number or string, found {0}")]
    WrongJsonType(&'static str),
    /// More than WeChat Pay's amount fields take ([`Fen::MAX_TOTAL_FEE`]).
    #[error(
        "amount {0} yuan is above WeChat Pay's limit of 21474836.47 yuan \
         (total_fee is at most 2147483647 fen)"
    )]
    AboveTotalFeeLimit(String),
}

impl Fen {
    /// Zero fen.
    pub const ZERO: Fen = Fen(0);
    /// The largest representable amount.
    pub const MAX: Fen = Fen(i64::MAX);
    /// The largest amount WeChat Pay takes: `total_fee` (and every other fen field) is a
    /// 32-bit signed integer, so 2,147,483,647 fen (21,474,836.47 yuan).
    pub const MAX_TOTAL_FEE: Fen = Fen(i32::MAX as i64);

    /// An amount of `fen` fen.
    pub const fn new(fen: i64) -> Self {
        Fen(fen)
    }

    /// The amount in fen.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// `true` when the amount is strictly positive.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The amount itself when it is strictly positive, [`AmountError::Zero`] or
    /// [`AmountError::Negative`] otherwise.
    pub fn ensure_positive(self) -> Result<Fen, AmountError> {
        match self.0 {
            0 => Err(AmountError::Zero),
            n if n < 0 => Err(AmountError::Negative(self.to_string())),
            _ => Ok(self),
        }
    }

    /// The amount itself when WeChat Pay can take it as a `total_fee`: strictly positive and
    /// at most [`Fen::MAX_TOTAL_FEE`]. Check it where an amount enters, before anything is
    /// stored under it.
    pub fn ensure_total_fee(self) -> Result<Fen, AmountError> {
        let positive = self.ensure_positive()?;
        if positive > Fen::MAX_TOTAL_FEE {
            return Err(AmountError::AboveTotalFeeLimit(positive.to_string()));
        }
        Ok(positive)
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    /// Difference, or `None` on overflow.
    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    /// Parses a yuan amount written in decimal: `"99.99"` → 9999 fen, `"19.9"` → 1990,
    /// `"5"` → 500, `"0.29"` → 29. At most two decimals; no sign, no exponent, no spaces.
    /// Zero is accepted (use [`Fen::ensure_positive`] where a payment needs more).
    pub fn from_yuan_str(text: &str) -> Result<Fen, AmountError> {
        parse_decimal_yuan(text, text)
    }

    /// Parses a yuan amount given as a JSON number (`99.99`, `5`).
    ///
    /// Integers are exact. A JSON number with a fraction is held by `serde_json` as the
    /// nearest `f64`; its shortest round-trip decimal form (which for any amount written with
    /// at most 15 significant digits is the text that was written) is read digit by digit, so
    /// no float arithmetic happens on the amount.
    pub fn from_yuan_json_number(number: &serde_json::Number) -> Result<Fen, AmountError> {
        let text = number.to_string();
        let digits = expand_exponent(&text).ok_or_else(|| AmountError::NotANumber(text.clone()))?;
        parse_decimal_yuan(&digits, &text)
    }

    /// Parses a yuan amount from a JSON value that is a number or a decimal string.
    pub fn from_yuan_json(value: &serde_json::Value) -> Result<Fen, AmountError> {
        match value {
            serde_json::Value::Number(n) => Fen::from_yuan_json_number(n),
            serde_json::Value::String(s) => Fen::from_yuan_str(s),
            serde_json::Value::Null => Err(AmountError::WrongJsonType("null")),
            serde_json::Value::Bool(_) => Err(AmountError::WrongJsonType("a boolean")),
            serde_json::Value::Array(_) => Err(AmountError::WrongJsonType("an array")),
            serde_json::Value::Object(_) => Err(AmountError::WrongJsonType("an object")),
        }
    }

    /// Parses an integer count of fen as WeChat writes it in `total_fee` and friends
    /// (`"9999"`). Digits only.
    pub fn from_fen_str(text: &str) -> Result<Fen, AmountError> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        if text.starts_with('-') {
            return Err(AmountError::Negative(text.to_owned()));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotANumber(text.to_owned()));
        }
        text.parse::<i64>()
            .map(Fen)
            .map_err(|_| AmountError::Overflow(text.to_owned()))
    }

    /// The amount as WeChat's integer-fen text (`9999`).
    pub fn to_fen_string(self) -> String {
        self.0.to_string()
    }
}

/// Turns `1.5e2` into `150` and `1e-2` into `0.01` by moving the decimal point in the text.
/// Plain decimals are returned unchanged. `None` for anything that is not a finite decimal.
fn expand_exponent(text: &str) -> Option<String> {
    let Some((mantissa, exponent)) = text.split_once(['e', 'E']) else {
        return Some(text.to_owned());
    };
    let exponent: i32 = exponent
        .strip_prefix('+')
        .unwrap_or(exponent)
        .parse()
        .ok()?;
    // A yuan amount that fits in i64 fen has at most 17 integer digits; anything further
    // out is an overflow or a sub-fen fraction, reported by the decimal parser.
    if !(-40..=40).contains(&exponent) {
        return None;
    }
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: String = format!("{int_part}{frac_part}");
    let point = int_part.len() as i32 + exponent;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    Some(out)
}

fn parse_decimal_yuan(text: &str, original: &str) -> Result<Fen, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if text.starts_with('-') {
        return Err(AmountError::Negative(original.to_owned()));
    }
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let frac = frac_part.unwrap_or("");
    if int_part.is_empty() || !is_digits(int_part) || !is_digits(frac) || frac_part == Some("") {
        return Err(AmountError::NotANumber(original.to_owned()));
    }
    // Trailing zeros beyond the fen do not change the amount ("1.500" is 1.50 yuan).
    let significant_frac = frac.trim_end_matches('0');
    if significant_frac.len() > 2 {
        return Err(AmountError::TooManyDecimals(original.to_owned()));
    }
    let overflow = || AmountError::Overflow(original.to_owned());
    let mut fen: i64 = 0;
    for digit in int_part.bytes() {
        fen = fen
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or_else(overflow)?;
    }
    fen = fen.checked_mul(100).ok_or_else(overflow)?;
    let mut frac_digits = significant_frac.bytes();
    let tenths = frac_digits.next().map_or(0, |d| i64::from(d - b'0'));
    let hundredths = frac_digits.next().map_or(0, |d| i64::from(d - b'0'));
    fen.checked_add(tenths * 10 + hundredths)
        .map(Fen)
        .ok_or_else(overflow)
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Fen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Fen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        i64::deserialize(deserializer).map(Fen)
    }
}

impl From<Fen> for i64 {
    fn from(fen: Fen) -> i64 {
        fen.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_strings_become_exact_fen() {
        for (text, fen) in [
            ("99.99", 9999),
            ("0.29", 29),
            ("19.9", 1990),
            ("9.8", 980),
            ("5", 500),
            ("0", 0),
            ("0.01", 1),
            ("1.500", 150),
            ("92233720368547758.07", i64::MAX),
        ] {
            assert_eq!(Fen::from_yuan_str(text), Ok(Fen(fen)), "{text}");
        }
    }

    #[test]
    fn bad_yuan_strings_are_refused_with_their_reason() {
        use AmountError::*;
        assert_eq!(Fen::from_yuan_str(""), Err(Empty));
        assert!(matches!(Fen::from_yuan_str("-1"), Err(Negative(_))));
        assert!(matches!(
            Fen::from_yuan_str("0.001"),
            Err(TooManyDecimals(_))
        ));
        assert!(matches!(
            Fen::from_yuan_str("1.234"),
            Err(TooManyDecimals(_))
        ));
        assert!(matches!(
            Fen::from_yuan_str("92233720368547758.08"),
            Err(Overflow(_))
        ));
        for bad in [
            "NaN", "inf", "Infinity", "1e2", "1.", ".5", "1.2.3", " 1", "+1", "1,5",
        ] {
            assert!(
                matches!(Fen::from_yuan_str(bad), Err(NotANumber(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Fen::from_yuan_str("0").unwrap().ensure_positive(),
            Err(Zero)
        );
    }

    #[test]
    fn json_numbers_become_exact_fen() {
        let value: serde_json::Value =
            serde_json::from_str(r#"[99.99, 0.29, 19.9, 9.8, 5, 1e2, 1.5e1, 0.1e1]"#).unwrap();
        let got: Vec<i64> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Fen::from_yuan_json(v).unwrap().get())
            .collect();
        assert_eq!(got, vec![9999, 29, 1990, 980, 500, 10000, 1500, 100]);
        let bad: serde_json::Value = serde_json::from_str("[-1, 0.001, 1e30, true, null]").unwrap();
        for v in bad.as_array().unwrap() {
            assert!(Fen::from_yuan_json(v).is_err(), "{v}");
        }
        assert_eq!(
            Fen::from_yuan_json(&serde_json::json!("12.34")),
            Ok(Fen(1234))
        );
    }

    #[test]
    fn total_fee_takes_positive_amounts_up_to_the_32_bit_limit() {
        assert_eq!(Fen::MAX_TOTAL_FEE.get(), 2_147_483_647);
        for ok in ["0.01", "21474836.47"] {
            let fen = Fen::from_yuan_str(ok).unwrap();
            assert_eq!(fen.ensure_total_fee(), Ok(fen), "{ok}");
        }
        let above = Fen::from_yuan_str("21474836.48").unwrap();
        let error = above.ensure_total_fee().unwrap_err();
        assert_eq!(error, AmountError::AboveTotalFeeLimit("21474836.48".into()));
        assert!(error.to_string().contains("21474836.47 yuan"), "{error}");
        assert_eq!(Fen::ZERO.ensure_total_fee(), Err(AmountError::Zero));
        assert!(matches!(
            Fen(-1).ensure_total_fee(),
            Err(AmountError::Negative(_))
        ));
    }

    #[test]
    fn display_is_yuan_and_serde_is_fen() {
        assert_eq!(Fen(9999).to_string(), "99.99");
        assert_eq!(Fen(5).to_string(), "0.05");
        assert_eq!(Fen(-120).to_string(), "-1.20");
        assert_eq!(Fen(i64::MIN).to_string(), "-92233720368547758.08");
        assert_eq!(serde_json::to_string(&Fen(9999)).unwrap(), "9999");
        assert_eq!(serde_json::from_str::<Fen>("29").unwrap(), Fen(29));
        assert_eq!(Fen::from_fen_str("9999"), Ok(Fen(9999)));
        assert!(Fen::from_fen_str("99.99").is_err());
        assert!(Fen::from_fen_str("-1").is_err());
    }
}
