//! Reading the arguments of the family's functions (JSON in) and writing their answers
//! (JSON out): one place for what a bad argument is told, shared by the pay elements,
//! `PayLogModel` and `PaySvc`.

use jit_runtime::{CallError, CallErrorKind};
use serde_json::{Map, Value};
use wechatpay_v2::Fen;

use crate::model::{NotifyRequest, PayType, Payer, RefundArgs};

/// Reads a required string argument.
pub(crate) fn arg_str<'a>(
    args: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, CallError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::bad_arguments(format!("argument `{name}` must be a string")))
}

/// Reads an optional string argument (absent or null → `None`).
pub(crate) fn arg_opt_str<'a>(
    args: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, CallError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(CallError::bad_arguments(format!(
            "argument `{name}` must be a string"
        ))),
    }
}

/// Reads `amount` in yuan (JSON number or decimal string) as exact fen, refusing what
/// WeChat Pay cannot take as a `total_fee` (not positive, above 21,474,836.47 yuan).
pub(crate) fn arg_amount(args: &Map<String, Value>) -> Result<Fen, CallError> {
    let value = args
        .get("amount")
        .ok_or_else(|| CallError::bad_arguments("missing required argument `amount`"))?;
    Fen::from_yuan_json(value)
        .and_then(Fen::ensure_total_fee)
        .map_err(|e| CallError::bad_arguments(format!("argument `amount` (yuan): {e}")))
}

/// Reads `refund`'s arguments: `orderId`, and the optional `amount` (yuan, as
/// [`arg_amount`]), `reason` and `refundId`.
pub(crate) fn arg_refund(args: &Map<String, Value>) -> Result<RefundArgs, CallError> {
    Ok(RefundArgs {
        order_id: arg_str(args, "orderId")?.to_owned(),
        amount: match args.get("amount") {
            None | Some(Value::Null) => None,
            Some(_) => Some(arg_amount(args)?),
        },
        reason: arg_opt_str(args, "reason")?.map(str::to_owned),
        refund_id: arg_opt_str(args, "refundId")?.map(str::to_owned),
    })
}

/// Reads `payType` (default NATIVE).
pub(crate) fn arg_pay_type(args: &Map<String, Value>) -> Result<PayType, CallError> {
    match arg_opt_str(args, "payType")? {
        None => Ok(PayType::Native),
        Some(text) => PayType::parse(text).ok_or_else(|| {
            CallError::bad_arguments(format!(
                "argument `payType`: {text:?} is not one of NATIVE, MWEB, JSAPI, APP"
            ))
        }),
    }
}

/// Reads the payer fields of getPayUrl.
pub(crate) fn arg_payer(args: &Map<String, Value>) -> Result<Payer, CallError> {
    Ok(Payer {
        openid: arg_opt_str(args, "openid")?.map(str::to_owned),
        client_ip: arg_opt_str(args, "clientIp")?.map(str::to_owned),
        scene_info: match args.get("sceneInfo") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(object @ Value::Object(_)) => Some(object.to_string()),
            Some(_) => {
                return Err(CallError::bad_arguments(
                    "argument `sceneInfo` must be a JSON object or its text",
                ));
            }
        },
    })
}

/// Reads a request in the host's `http` body format, `{"method", "headers", "body"}`
/// (headers an object of strings, body the raw text), as a V3 notify.
pub(crate) fn arg_notify_request(
    args: &Map<String, Value>,
    name: &'static str,
) -> Result<NotifyRequest, CallError> {
    let bad = |what: &str| CallError::bad_arguments(format!("argument `{name}`: {what}"));
    let request = args
        .get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| bad("must be the HTTP request: {\"method\", \"headers\", \"body\"}"))?;
    let headers = match request.get("headers") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(headers)) => headers.clone(),
        Some(_) => return Err(bad("`headers` must be an object of strings")),
    };
    let mut pairs = Vec::with_capacity(headers.len());
    for (header, value) in &headers {
        let value = value
            .as_str()
            .ok_or_else(|| bad(&format!("header `{header}` must be a string")))?;
        pairs.push((header.as_str(), value));
    }
    let body = match request.get("body") {
        Some(Value::String(body)) => body.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => return Err(bad("`body` must be the raw body as text")),
    };
    Ok(NotifyRequest::new(pairs, body))
}

/// `value` as the JSON a function answers.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, CallError> {
    serde_json::to_value(value).map_err(|e| CallError::internal(format!("serialising: {e}")))
}

/// The answer to a call of a function `element` does not have.
pub(crate) fn no_such_function(element: &str, function: &str) -> CallError {
    CallError::new(
        CallErrorKind::FunctionNotFound,
        format!("`{element}` has no function `{function}`"),
    )
}
