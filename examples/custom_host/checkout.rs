//! `shop.services.CheckoutSvc`: a service element of the app whose code is Rust. Its one
//! function, `checkout`, creates the cart's order on `pays.myDiscountPay` and returns the
//! payment link, calling both functions through the app as any caller would (declared
//! functions, checked arguments), with the HTTP caller's context passed on.

use jit_runtime::{CallContext, CallError};
use jit_services::ServiceFunctions;
use serde_json::{Map, Value, json};

/// The service element's fullName (its folder: app/elements/shop/services/CheckoutSvc/).
pub const CHECKOUT_SVC: &str = "shop.services.CheckoutSvc";

/// The pay element the shop takes payments with.
const PAY_ELEMENT: &str = "pays.myDiscountPay";

/// The service's functions.
pub fn service() -> ServiceFunctions {
    ServiceFunctions::new().function("checkout", checkout)
}

async fn checkout(
    app: jit_runtime::App,
    args: Map<String, Value>,
    cx: CallContext,
) -> Result<Value, CallError> {
    // Declared as Stext and Numeric: the runtime has checked both are there and typed.
    let cart_id = args["cartId"].as_str().unwrap_or_default();
    let order = app
        .call(
            PAY_ELEMENT,
            "create",
            json!({"subject": format!("Cart {cart_id}"), "amount": args["amount"]}),
            &cx,
        )
        .await?;
    let order_id = order["orderId"].clone();
    let link = app
        .call(
            PAY_ELEMENT,
            "getPayUrl",
            json!({"orderId": order_id, "payType": "NATIVE"}),
            &cx,
        )
        .await?;
    Ok(json!({
        "cartId": cart_id,
        "orderId": order_id,
        "amountFen": order["amountFen"],
        "payUrl": link["payUrl"],
    }))
}
