//! The discount shop's host: the stock `jit` plus the app's Rust code. One place, used by
//! main.rs and by the tests that serve this example's app.

use super::{checkout, discount};

/// The stock host with the Rust Type `pays.MyWechatPayType` and the Rust service
/// `shop.services.CheckoutSvc`.
pub fn host() -> jit::Host {
    jit::Host::new()
        .loader(discount::MY_WECHAT_PAY_TYPE, discount::DiscountPayLoader)
        .service(checkout::CHECKOUT_SVC, checkout::service())
}
