//! A host binary of your own: the stock `jit` plus Rust code of the app's.
//!
//! - a Rust Type, `pays.MyWechatPayType`, that extends the official `pays.WechatPayType`
//!   (a discount applied in `create`, a rule before `cancel`) and delegates everything else
//!   to it (discount.rs);
//! - a service element, `shop.services.CheckoutSvc`, whose function is a Rust closure that
//!   calls the pay element (checkout.rs);
//! - code that receives the built app when `jit serve` starts (`on_ready`).
//!
//! ```text
//! cargo run --example custom_host -- ls --app examples/custom_host/app
//! cargo run --example custom_host -- serve --app examples/custom_host/app
//! ```
//!
//! Every `jit` subcommand is kept; only the extra code is new.

mod checkout;
mod discount;
mod shop;

fn main() -> std::process::ExitCode {
    shop::host()
        .on_ready(|app| async move {
            // The app as user code gets it: any element, typed or by call.
            match app
                .current()
                .get::<dyn jit_pays::Pay>("pays.myDiscountPay")
                .await
            {
                Ok(pay) => tracing::info!(mch_id = %pay.mch_id(), "the discount shop is ready"),
                Err(error) => tracing::error!(%error, "the discount shop's pay element"),
            }
        })
        .run_cli()
}
