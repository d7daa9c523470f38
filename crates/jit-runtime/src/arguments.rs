//! Call arguments: reading them from JSON text and checking them against a function's
//! declaration. The one owner of both rules: [`crate::App::call`], an HTTP host and the
//! plugin host all go through here.
//!
//! Reading is exact. `serde_json` holds a JSON number with a fraction, or an integer beyond
//! 64 bits, as the nearest `f64`, so `1234567890123456.78` would reach an element as
//! `1234567890123456.8`. [`parse_arguments`] refuses, naming the argument, every number
//! whose value would change that way (the decimal text an element reads back from the
//! number is compared with the text that was sent), and says to send it as a decimal
//! string, which `Numeric` accepts. Numbers of up to 15 significant digits always pass.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::call_context::CallContext;
use crate::chain::Chain;
use crate::element_def::{DataType, FunctionDecl};
use crate::error::{CallError, CallErrorKind};

/// The error code of a body that is not JSON at all (its category is `BAD_ARGUMENTS`).
pub const INVALID_JSON: &str = "INVALID_JSON";

/// Reads the arguments of a call from JSON text: an object of named arguments, or an empty
/// text or `null` for none. Every number in it, at any depth, must be read exactly (see
/// the module documentation). Errors name the argument and the JSON path, never a value
/// (a value may be a secret): `INVALID_JSON` when the text is not JSON, `BAD_ARGUMENTS`
/// otherwise.
pub fn parse_arguments(text: &[u8]) -> Result<Map<String, Value>, CallError> {
    let text = std::str::from_utf8(text).map_err(|error| {
        CallError::bad_arguments(format!("the arguments are not UTF-8 text: {error}"))
            .with_code(INVALID_JSON)
    })?;
    if text.trim_matches(is_json_whitespace).is_empty() {
        return Ok(Map::new());
    }
    let invalid = |error: serde_json::Error| {
        CallError::bad_arguments(format!("the arguments are not valid JSON: {error}"))
            .with_code(INVALID_JSON)
    };
    let whole: &RawValue = serde_json::from_str(text).map_err(invalid)?;
    let raw_arguments: IndexMap<String, &RawValue> = match whole.get().as_bytes().first() {
        Some(b'{') => serde_json::from_str(whole.get()).map_err(invalid)?,
        Some(b'n') => return Ok(Map::new()),
        _ => {
            let value: Value = serde_json::from_str(whole.get()).map_err(invalid)?;
            return Err(CallError::bad_arguments(format!(
                "the arguments must be a JSON object, found {}",
                json_kind(&value)
            )));
        }
    };
    let mut arguments = Map::with_capacity(raw_arguments.len());
    for (name, raw) in raw_arguments {
        let mut path = name.clone();
        if !numbers_are_exact(raw, &mut path).map_err(invalid)? {
            return Err(inexact_number(&name, &path));
        }
        let value = serde_json::from_str(raw.get()).map_err(invalid)?;
        arguments.insert(name, value);
    }
    Ok(arguments)
}

fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn inexact_number(name: &str, path: &str) -> CallError {
    let location = if path == name {
        String::new()
    } else {
        format!(" at `{path}`")
    };
    CallError::bad_arguments(format!(
        "argument `{name}`: the number{location} cannot be read exactly (a JSON number is \
         read as a 64-bit float, exact to 15 significant digits); send it as a decimal string \
         such as \"12.34\" instead"
    ))
}

/// Whether every number in `raw` keeps its value when read; on `false`, `path` is the JSON
/// path of the first one that does not (it starts as the argument's name).
fn numbers_are_exact(raw: &RawValue, path: &mut String) -> Result<bool, serde_json::Error> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            let fields: IndexMap<String, &RawValue> = serde_json::from_str(text)?;
            let depth = path.len();
            for (key, value) in fields {
                let _ = write!(path, ".{key}");
                if !numbers_are_exact(value, path)? {
                    return Ok(false);
                }
                path.truncate(depth);
            }
            Ok(true)
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            let depth = path.len();
            for (index, item) in items.into_iter().enumerate() {
                let _ = write!(path, "[{index}]");
                if !numbers_are_exact(item, path)? {
                    return Ok(false);
                }
                path.truncate(depth);
            }
            Ok(true)
        }
        Some(b'-' | b'0'..=b'9') => {
            let number: Number = serde_json::from_str(text)?;
            let sent = Decimal::parse(text);
            Ok(sent.is_some() && sent == Decimal::parse(&number.to_string()))
        }
        _ => Ok(true),
    }
}

/// The value of a decimal number's text, normalised so that equal values compare equal:
/// `1.50`, `15e-1` and `1.5` are one value; every zero is one value.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    /// Significant digits, without leading or trailing zeros; empty for zero.
    digits: String,
    /// The power of ten of the last digit.
    exponent: i128,
}

impl Decimal {
    /// Reads JSON's number syntax (`-12.5e3`); `None` for anything else.
    fn parse(text: &str) -> Option<Self> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => {
                let exponent = &unsigned[at + 1..];
                let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
                (&unsigned[..at], exponent.parse::<i128>().ok()?)
            }
            None => (unsigned, 0),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if integer.is_empty()
            || !(integer.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let all_digits = format!("{integer}{fraction}");
        let significant = all_digits.trim_start_matches('0');
        let digits = significant.trim_end_matches('0');
        let trailing_zeros = (significant.len() - digits.len()) as i128;
        if digits.is_empty() {
            return Some(Self {
                negative: false,
                digits: String::new(),
                exponent: 0,
            });
        }
        Some(Self {
            negative,
            digits: digits.to_owned(),
            exponent: exponent - fraction.len() as i128 + trailing_zeros,
        })
    }
}

/// `null`, `boolean`, `integer`, `number`, `string`, `array` or `object`, for messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The declaration of `function` on the chain (the nearest wins), or the `FUNCTION_NOT_FOUND`
/// error listing what the element declares.
pub fn declared_function<'c>(
    chain: &'c Chain,
    function: &str,
) -> Result<&'c FunctionDecl, CallError> {
    chain.function(function).ok_or_else(|| {
        let available: Vec<&str> = chain.functions().iter().map(|f| f.name.as_str()).collect();
        CallError::new(
            CallErrorKind::FunctionNotFound,
            format!(
                "element `{}` declares no function `{function}` (declared: {})",
                chain.element().full_name,
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
        )
    })
}

/// Every way `args` differs from the declaration's arguments (unknown names, missing
/// required ones, values of the wrong type), one message each; empty when they match.
/// Messages name arguments and types, never values (a value may be a secret).
pub fn argument_problems(declaration: &FunctionDecl, args: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for key in args.keys() {
        if !declaration.args.iter().any(|a| &a.name == key) {
            let declared: Vec<&str> = declaration.args.iter().map(|a| a.name.as_str()).collect();
            problems.push(format!(
                "unknown argument `{key}` (declared: {})",
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ));
        }
    }
    for arg in &declaration.args {
        match args.get(&arg.name) {
            None | Some(Value::Null) if arg.required => problems.push(format!(
                "missing required argument `{}` ({})",
                arg.name, arg.data_type
            )),
            None | Some(Value::Null) => {}
            Some(value) if !arg.data_type.accepts(value) => problems.push(format!(
                "argument `{}` must be {}, got {}",
                arg.name,
                expectation(arg.data_type),
                json_kind(value)
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The type an argument must have, with the accepted forms where the name alone does not
/// say them.
fn expectation(data_type: DataType) -> String {
    match data_type {
        DataType::Numeric => {
            "Numeric (a JSON number, or a decimal string such as \"12.34\")".into()
        }
        DataType::Date => "Date (a string YYYY-MM-DD)".into(),
        DataType::Datetime => "Datetime (a string YYYY-MM-DD HH:MM:SS)".into(),
        other => other.as_str().into(),
    }
}

/// Checks a call against the chain's declaration; returns the arguments as a map.
/// Messages name arguments and types, never values (a value may be a secret).
pub fn check_call(
    chain: &Chain,
    function: &str,
    args: Value,
    cx: &CallContext,
) -> Result<Map<String, Value>, CallError> {
    let element = &chain.element().full_name;
    let decl = declared_function(chain, function)?;
    if decl.login_required && cx.principal.is_none() {
        return Err(CallError::new(
            CallErrorKind::Unauthorized,
            format!("`{element}.{function}` requires a logged-in caller"),
        ));
    }
    let args = match args {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        other => {
            return Err(CallError::bad_arguments(format!(
                "arguments of `{element}.{function}` must be a JSON object, got {}",
                json_kind(&other)
            )));
        }
    };
    let problems = argument_problems(decl, &args);
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(CallError::bad_arguments(format!(
            "`{element}.{function}`: {}",
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Map<String, Value>, CallError> {
        parse_arguments(text.as_bytes())
    }

    fn refusal(text: &str) -> CallError {
        parsed(text).expect_err(text)
    }

    #[test]
    fn numbers_that_survive_reading_pass_unchanged() {
        for (text, shown) in [
            (r#"{"amount": 99.99}"#, "99.99"),
            (r#"{"amount": 0.29}"#, "0.29"),
            (r#"{"amount": 5}"#, "5"),
            (r#"{"amount": -0}"#, "-0.0"),
            (r#"{"amount": 1.50}"#, "1.5"),
            (r#"{"amount": 1.5e2}"#, "150.0"),
            // 17 significant digits that happen to be the shortest text of their double.
            (r#"{"amount": 123456789012345.67}"#, "123456789012345.67"),
            // The largest values a 64-bit integer holds are exact.
            (
                r#"{"amount": 18446744073709551615}"#,
                "18446744073709551615",
            ),
            (
                r#"{"amount": -9223372036854775808}"#,
                "-9223372036854775808",
            ),
            (r#"{"amount": 0.30000000000000004}"#, "0.30000000000000004"),
        ] {
            let arguments = parsed(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(arguments["amount"].to_string(), shown, "{text}");
        }
    }

    #[test]
    fn a_number_that_would_change_is_refused_naming_the_argument_and_never_the_value() {
        for (text, argument, location) in [
            (r#"{"amount": 1234567890123456.78}"#, "amount", None),
            (r#"{"amount": 0.12345678901234567891}"#, "amount", None),
            // Beyond 64 bits an integer becomes a float.
            (r#"{"amount": 123456789012345678901}"#, "amount", None),
            (r#"{"amount": 18446744073709551616}"#, "amount", None),
            // Below the smallest double it would become zero.
            (r#"{"amount": 1e-400}"#, "amount", None),
            (
                r#"{"subject": "x", "items": [{"price": 1}, {"price": 9007199254740993.5}]}"#,
                "items",
                Some("items[1].price"),
            ),
        ] {
            let error = refusal(text);
            assert_eq!(error.kind, CallErrorKind::BadArguments, "{text}");
            assert_eq!(error.code(), "BAD_ARGUMENTS", "{text}");
            assert!(
                error
                    .message
                    .starts_with(&format!("argument `{argument}`: the number")),
                "{text}: {error}"
            );
            if let Some(location) = location {
                assert!(
                    error.message.contains(&format!("at `{location}`")),
                    "{error}"
                );
            }
            assert!(
                error.message.contains("send it as a decimal string"),
                "{error}"
            );
            for digits in ["123456", "901234567", "9007199254740993"] {
                assert!(!error.message.contains(digits), "{error}");
            }
        }
    }

    #[test]
    fn empty_and_null_are_no_arguments_and_other_shapes_are_refused() {
        assert!(parsed("").unwrap().is_empty());
        assert!(parsed(" \n\t").unwrap().is_empty());
        assert!(parsed("null").unwrap().is_empty());
        let error = refusal("[1, 2]");
        assert_eq!(error.code(), "BAD_ARGUMENTS");
        assert_eq!(
            error.message,
            "the arguments must be a JSON object, found array"
        );
        let error = refusal(r#"{"text": "#);
        assert_eq!(error.code(), INVALID_JSON);
        assert_eq!(error.kind, CallErrorKind::BadArguments);
        assert!(
            error
                .message
                .starts_with("the arguments are not valid JSON: "),
            "{error}"
        );
        let error = parse_arguments(b"{\"text\": \"\xff\"}").unwrap_err();
        assert_eq!(error.code(), INVALID_JSON);
        let error = refusal(r#"{"a": 1} {"b": 2}"#);
        assert_eq!(error.code(), INVALID_JSON);
    }

    #[test]
    fn values_keep_their_order_and_shape() {
        let arguments =
            parsed(r#"{"z": {"b": [1, "two", null, true]}, "a": "text", "m": 2.5}"#).unwrap();
        assert_eq!(arguments.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
        assert_eq!(
            Value::Object(arguments),
            serde_json::json!({"z": {"b": [1, "two", null, true]}, "a": "text", "m": 2.5})
        );
    }

    fn declaration(data_type: DataType) -> FunctionDecl {
        FunctionDecl {
            name: "create".into(),
            title: None,
            args: vec![crate::element_def::ArgDecl {
                name: "amount".into(),
                title: None,
                data_type,
                required: true,
            }],
            return_type: None,
            login_required: false,
            body_format: Default::default(),
            extra: Map::new(),
        }
    }

    #[test]
    fn numeric_takes_a_json_number_or_a_decimal_string() {
        let create = declaration(DataType::Numeric);
        // What a refused number's message advises is accepted.
        let advised = refusal(r#"{"amount": 1234567890123456.78}"#);
        assert!(advised.message.contains("decimal string"), "{advised}");
        for text in [
            r#"{"amount": 12.34}"#,
            r#"{"amount": "1234567890123456.78"}"#,
            r#"{"amount": "12.34"}"#,
            r#"{"amount": "-5"}"#,
            r#"{"amount": "007"}"#,
        ] {
            let arguments = parsed(text).unwrap();
            assert_eq!(
                argument_problems(&create, &arguments),
                Vec::<String>::new(),
                "{text}"
            );
        }
        for text in [
            r#"{"amount": "12,34"}"#,
            r#"{"amount": "1e3"}"#,
            r#"{"amount": "12."}"#,
            r#"{"amount": ".5"}"#,
            r#"{"amount": "+5"}"#,
            r#"{"amount": " 5"}"#,
            r#"{"amount": ""}"#,
            r#"{"amount": true}"#,
        ] {
            let arguments = parsed(text).unwrap();
            assert_eq!(
                argument_problems(&create, &arguments),
                [format!(
                    "argument `amount` must be Numeric (a JSON number, or a decimal string such \
                     as \"12.34\"), got {}",
                    json_kind(&arguments["amount"])
                )],
                "{text}"
            );
        }
    }

    #[test]
    fn decimals_compare_by_value() {
        let value = |text| Decimal::parse(text).expect(text);
        assert_eq!(value("1.50"), value("1.5"));
        assert_eq!(value("150"), value("1.5e2"));
        assert_eq!(value("150.0"), value("15E+1"));
        assert_eq!(value("0.001"), value("1e-3"));
        assert_eq!(value("-0.0"), value("0"));
        assert_ne!(value("-1"), value("1"));
        assert_ne!(value("1234567890123456.78"), value("1234567890123456.8"));
        assert_eq!(Decimal::parse("1.2.3"), None);
        assert_eq!(Decimal::parse("abc"), None);
    }
}
