//! A jit service element written in Rust as a native plugin.
//!
//! `checkout(cartId)` turns a cart into a WeChat Pay order and answers its payment link: it
//! finds the pay element named by the `payElement` setting (`pays.myWechatPay` in the
//! generated e.json) with `host.app().get_element(..)`, calls its `create` with the cart's
//! subject and amount, then its `getPayUrl`. The carts are a demo: they come from the
//! element's `carts` setting; replace `find_cart` with your own store.
//!
//! Functions are declared in the element's e.json (`functionList`); the host checks every
//! call against that declaration before it reaches `call`, and a call this plugin makes to
//! another element is checked the same way, for the same caller (a `loginRequired` function
//! such as `create` needs the HTTP request to carry the app's token).
//!
//! `jit new service` writes this file into a new plugin crate; in the jit repository it is
//! also the source of `crates/example-checkout-plugin`, so it is built and tested there.

use jit_plugin_api::{Host, Plugin, PluginError, PluginErrorKind};
use serde_json::{Value, json};

/// The service. One value serves every call, from many threads at once.
struct CheckoutService;

impl Plugin for CheckoutService {
    fn call(&self, function: &str, args: Value, host: &Host) -> Result<Value, PluginError> {
        match function {
            "checkout" => checkout(&args, host),
            // Declared in e.json but not implemented here.
            other => Err(PluginError::unknown_function(other)),
        }
    }
}

jit_plugin_api::export_plugin!(CheckoutService);

/// A cart to pay for: what the order is called and its amount in yuan (decimal text).
struct Cart {
    subject: Value,
    amount: Value,
}

fn checkout(args: &Value, host: &Host) -> Result<Value, PluginError> {
    let cart_id = args
        .get("cartId")
        .and_then(Value::as_str)
        .ok_or_else(|| PluginError::bad_arguments("checkout: `cartId` must be text"))?;
    // This element's settings: its e.json keys and its configuration file.
    let element = host.element()?;
    let cart = find_cart(&element.settings, cart_id)?;
    let pay_element = element
        .settings
        .get("payElement")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            PluginError::internal(format!(
                "`{}` has no `payElement` setting naming the pay element to use",
                element.full_name
            ))
        })?;

    let pay = host.app().get_element(pay_element)?;
    let order = pay.call(
        "create",
        json!({"subject": cart.subject, "amount": cart.amount}),
    )?;
    let order_id = order.get("orderId").cloned().ok_or_else(|| {
        PluginError::internal(format!("`{pay_element}.create` answered no orderId"))
    })?;
    let link = pay.call("getPayUrl", json!({"orderId": order_id}))?;
    Ok(json!({
        "cartId": cart_id,
        "orderId": order_id,
        "amountYuan": order.get("amountYuan").cloned().unwrap_or(Value::Null),
        "payUrl": link.get("payUrl").cloned().unwrap_or(Value::Null),
    }))
}

/// The cart `cart_id`, from the demo carts of the `carts` setting.
fn find_cart(
    settings: &serde_json::Map<String, Value>,
    cart_id: &str,
) -> Result<Cart, PluginError> {
    let cart = settings
        .get("carts")
        .and_then(|carts| carts.get(cart_id))
        .ok_or_else(|| {
            PluginError::of_kind(
                PluginErrorKind::NotFound,
                "CART_NOT_FOUND",
                format!("no cart `{cart_id}`"),
            )
        })?;
    match (cart.get("subject"), cart.get("amount")) {
        (Some(subject), Some(amount)) => Ok(Cart {
            subject: subject.clone(),
            amount: amount.clone(),
        }),
        _ => Err(PluginError::internal(format!(
            "cart `{cart_id}` needs a `subject` and an `amount`"
        ))),
    }
}
