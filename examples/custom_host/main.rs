//! A host binary of your own: the stock `jit` plus a Rust Type, `pays.MyWechatPayType`,
//! that extends the official `pays.WechatPayType` (a discount applied in `create`, a rule
//! before `cancel`) and delegates everything else to it.
//!
//! ```text
//! cargo run --example custom_host -- ls --app examples/custom_host/app
//! cargo run --example custom_host -- serve --app examples/custom_host/app
//! ```
//!
//! Every `jit` subcommand is kept; only the extra loader is new.

mod discount;

fn main() -> std::process::ExitCode {
    jit::Host::new()
        .loader(discount::MY_WECHAT_PAY_TYPE, discount::DiscountPayLoader)
        .run_cli()
}
