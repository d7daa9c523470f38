//! An example native Type plugin for jit: a Type extending `pays.WechatPayType`.
//!
//! - `create(subject, amount, orderId?)` takes `discountPercent` percent off the amount
//!   (rounded down to the fen, never below one fen) before the parent creates the order, and
//!   reports the discount beside the parent's result.
//! - `cancel(orderId)` first asks the parent for the order (`check`) and refuses to cancel an
//!   order that is already paid; anything else is cancelled by the parent.
//! - Every other function goes straight to the parent: the plugin declares that it overrides
//!   only `create` and `cancel`.
//!
//! `discountPercent` is read from the element's settings, so it can be set once in the Type's
//! `e.json` and overridden per instance. Amounts are yuan as the pays family takes them
//! (`99.99` or `"99.99"`); they are converted to integer fen from their decimal text, so no
//! floating-point arithmetic touches money.
//!
//! The crate depends only on `jit-plugin-api` and `serde_json`: it knows nothing of the
//! runtime, of the pays crate or of WeChat Pay.

#![deny(missing_docs)]

use jit_plugin_api::{Parent, Plugin, PluginError};
use serde_json::{Map, Value, json};

/// The settings key holding the discount, an integer percentage from 0 to 99.
pub const DISCOUNT_SETTING: &str = "discountPercent";

/// The discount Type.
pub struct DiscountPlugin;

impl Plugin for DiscountPlugin {
    fn call(&self, function: &str, args: Value, parent: &Parent) -> Result<Value, PluginError> {
        match function {
            "create" => create(args, parent),
            "cancel" => cancel(args, parent),
            // Not reached while the host honours `overrides`; delegating keeps the plugin
            // correct for a host that sends every call.
            other => parent.call(other, args),
        }
    }

    fn overrides(&self) -> Option<&'static [&'static str]> {
        Some(&["create", "cancel"])
    }
}

jit_plugin_api::export_plugin!(DiscountPlugin);

fn create(args: Value, parent: &Parent) -> Result<Value, PluginError> {
    let mut args = into_object(args, "create")?;
    let element = parent.element()?;
    let percent = discount_percent(element.settings.get(DISCOUNT_SETTING), &element.full_name)?;

    let given = args
        .get("amount")
        .ok_or_else(|| PluginError::bad_arguments("create: missing argument `amount`"))?;
    let original_fen = amount_to_fen(given)
        .map_err(|problem| PluginError::bad_arguments(format!("create: `amount` {problem}")))?;
    let discounted_fen = apply_discount(original_fen, percent);
    let discounted = fen_to_amount_like(discounted_fen, given);
    args.insert("amount".to_owned(), discounted);

    let mut order = parent.call("create", Value::Object(args))?;
    if let Value::Object(fields) = &mut order {
        fields.insert(
            "discount".to_owned(),
            json!({
                "percent": percent,
                "originalAmount": fen_to_text(original_fen),
                "discountedAmount": fen_to_text(discounted_fen),
            }),
        );
    }
    Ok(order)
}

fn cancel(args: Value, parent: &Parent) -> Result<Value, PluginError> {
    let order_id = args
        .get("orderId")
        .and_then(Value::as_str)
        .ok_or_else(|| PluginError::bad_arguments("cancel: `orderId` must be a string"))?
        .to_owned();
    let order = parent.call("check", json!({ "orderId": order_id }))?;
    if order.get("status").and_then(Value::as_str) == Some("success") {
        return Err(PluginError::rejected(format!(
            "order {order_id} is already paid and cannot be cancelled; refund it instead"
        ))
        .with_details(json!({ "orderId": order_id, "status": "success" })));
    }
    parent.call("cancel", args)
}

fn into_object(args: Value, function: &str) -> Result<Map<String, Value>, PluginError> {
    match args {
        Value::Object(fields) => Ok(fields),
        other => Err(PluginError::bad_arguments(format!(
            "{function}: arguments must be a JSON object, found {other}"
        ))),
    }
}

fn discount_percent(setting: Option<&Value>, element: &str) -> Result<u64, PluginError> {
    let value = setting.ok_or_else(|| {
        PluginError::internal(format!(
            "{element}: setting `{DISCOUNT_SETTING}` is missing (an integer from 0 to 99)"
        ))
    })?;
    value.as_u64().filter(|percent| *percent < 100).ok_or_else(|| {
        PluginError::internal(format!(
            "{element}: setting `{DISCOUNT_SETTING}` must be an integer from 0 to 99, found {value}"
        ))
    })
}

/// Takes `percent` off `fen`, rounding down to the fen in the payer's favour, but never below
/// one fen (the smallest amount WeChat Pay accepts).
pub fn apply_discount(fen: u64, percent: u64) -> u64 {
    let kept = u128::from(fen) * u128::from(100 - percent.min(100)) / 100;
    u64::try_from(kept).unwrap_or(u64::MAX).max(1)
}

/// Converts a yuan amount given as a JSON number or string (`99.99`, `"0.29"`, `100`) to
/// fen, exactly, from its decimal text.
pub fn amount_to_fen(amount: &Value) -> Result<u64, String> {
    let text = match amount {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        other => return Err(format!("must be a number of yuan, found {other}")),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || fraction.len() > 2 {
        return Err(format!(
            "must be a non-negative yuan amount with at most two decimals, found {text}"
        ));
    }
    let fraction_fen = match fraction.len() {
        0 => 0,
        1 => u64::from(fraction.as_bytes()[0] - b'0') * 10,
        _ => fraction.parse::<u64>().map_err(|error| error.to_string())?,
    };
    whole
        .parse::<u64>()
        .ok()
        .and_then(|yuan| yuan.checked_mul(100))
        .and_then(|fen| fen.checked_add(fraction_fen))
        .ok_or_else(|| format!("is too large: {text}"))
}

/// `fen` as yuan text with two decimals: `8999` → `"89.99"`.
pub fn fen_to_text(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// `fen` as a yuan amount of the same JSON kind as `like` (string or number).
fn fen_to_amount_like(fen: u64, like: &Value) -> Value {
    let text = fen_to_text(fen);
    match like {
        Value::String(_) => Value::String(text),
        // Parsing the exact decimal text yields the JSON number the caller would have
        // written; no arithmetic is done on it.
        _ => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly() {
        for (given, fen) in [
            (json!(99.99), 9999),
            (json!(0.01), 1),
            (json!(0.29), 29),
            (json!(19.9), 1990),
            (json!(100), 10000),
            (json!("12.30"), 1230),
        ] {
            assert_eq!(amount_to_fen(&given), Ok(fen), "{given}");
        }
        for bad in [
            json!(-1),
            json!("1.234"),
            json!("abc"),
            json!(".5"),
            json!(true),
            json!(1e30),
        ] {
            assert!(amount_to_fen(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn discount_rounds_down_and_keeps_one_fen() {
        assert_eq!(apply_discount(9999, 10), 8999);
        assert_eq!(apply_discount(1, 50), 1);
        assert_eq!(apply_discount(29, 0), 29);
        assert_eq!(apply_discount(1990, 99), 19);
    }

    #[test]
    fn amounts_keep_their_json_kind() {
        assert_eq!(fen_to_amount_like(8999, &json!(99.99)), json!(89.99));
        assert_eq!(fen_to_amount_like(8999, &json!("99.99")), json!("89.99"));
        assert_eq!(fen_to_text(5), "0.05");
    }

    #[test]
    fn discount_setting_is_validated() {
        assert_eq!(discount_percent(Some(&json!(15)), "e"), Ok(15));
        let missing = discount_percent(None, "pays.x").unwrap_err();
        assert!(
            missing
                .message
                .contains("pays.x: setting `discountPercent` is missing")
        );
        let out_of_range = discount_percent(Some(&json!(100)), "pays.x").unwrap_err();
        assert!(out_of_range.message.contains("found 100"), "{out_of_range}");
    }
}
