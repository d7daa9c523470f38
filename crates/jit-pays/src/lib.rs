//! The pays element family: `pays.Meta`, `pays.WechatPayType`, `pays.models.PayLogModel`
//! and `pays.services.PaySvc`, as official elements of the framework layer.
//!
//! This crate owns the family's element folders (embedded), the order tables and their
//! state machine (sea-orm, SQLite or PostgreSQL), the WeChat Pay Type's behaviour (create,
//! getPayUrl, check, cancel, notify), the reconciler and the hooks hosted code subscribes
//! to. It knows nothing of HTTP serving (the host calls [`pay_svc::PaySvc::wechat_notify`]
//! or the functionList functions) and nothing of the wire protocol's details (the
//! `wechatpay-v2` crate signs, parses and calls).
//!
//! # Wiring it into a host
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use jit_pays::{Pay, PaysSettings, db};
//!
//! let store = db::connect(&db::DbConfig::new("sqlite://examples/shop/shop.db")).await?;
//! let settings = PaysSettings::new(
//!     "https://shop.example.com",
//!     // Where the host serves `pays.services.PaySvc`'s `wechatNotify`.
//!     "https://shop.example.com/api/demo/shop/pays/services/PaySvc/wechatNotify",
//!     "https://api.mch.weixin.qq.com",
//! );
//! let builder = jit_runtime::AppBuilder::new("examples/shop");
//! let app = jit_pays::register(builder, store, settings).build().await?;
//! let reconciler = jit_pays::start_reconciler(&app)?;
//!
//! let events = app.service::<jit_pays::PayEvents>().expect("registered");
//! events.on_paid(|event| println!("paid: {}", event.order.order_id));
//!
//! let pay: Arc<dyn Pay> = app.get::<dyn Pay>("pays.myWechatPay").await?;
//! let order = pay.create("Product Purchase", wechatpay_v2::Fen::from_yuan_str("99.99")?, None).await?;
//! # let _ = order; reconciler.stop().await; Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::sync::Arc;

use include_dir::{Dir, include_dir};
use jit_runtime::AppBuilder;

pub mod db;
pub mod element_pay;
pub mod error;
pub mod events;
pub mod model;
pub mod order_id;
pub mod pay;
pub mod pay_log_model;
pub mod pay_svc;
pub mod reconciler;
pub mod settings;
pub mod wechat;

pub use db::PayStore;
pub use db::entity::PayStatus;
pub use element_pay::{ElementPay, pay_of_element};
pub use error::PayError;
pub use events::{PayEvent, PayEventKind, PayEvents};
pub use model::{
    CancelResult, CloseAtWechat, NotifyOutcome, NotifyReply, PayLog, PayType, PayUrl, Payer,
    WechatRecord,
};
pub use pay::{Pay, PayElement, call_pay, pay_of};
pub use pay_log_model::{PAY_LOG_MODEL, PayLogModel, PayLogQuery};
pub use pay_svc::{OrderSummary, PAY_SVC, PaySvc};
pub use reconciler::{ReconcileReport, ReconcilerHandle, reconcile_due, start_reconciler};
pub use settings::{PaysSettings, ReconcilerSettings};
pub use wechat::{
    SettingSource, WECHAT_PAY_TYPE, WechatPay, WechatPayConfig, WechatPayLoader,
    check_merchant_settings, is_pay_instance, merchant_settings, pay_instances,
    shown_merchant_settings,
};

/// The family's element folders (`pays/Meta`, `pays/WechatPayType`,
/// `pays/models/PayLogModel`, `pays/services/PaySvc`), rooted like an app's `elements/`.
pub static ELEMENTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/elements");

/// Adds the family to an app: its elements to the framework layer, its loaders, and the
/// services its elements use — the order store, the host settings, and a fresh
/// [`PayEvents`] (hosted code subscribes through `app.service::<PayEvents>()`).
pub fn register(builder: AppBuilder, store: PayStore, settings: PaysSettings) -> AppBuilder {
    store.set_order_cache_capacity(settings.order_cache_capacity);
    register_loaders(builder)
        .provide(Arc::new(store))
        .provide(Arc::new(settings))
        .provide(Arc::new(PayEvents::new()))
}

/// Adds the family's elements and loaders but none of the services they need: enough for
/// [`AppBuilder::check`] (which instances have a loader) without a database. An app built
/// from it fails at the first pay element, naming the missing service.
pub fn register_loaders(builder: AppBuilder) -> AppBuilder {
    builder
        .framework_layer(&ELEMENTS)
        .loader(WECHAT_PAY_TYPE, WechatPayLoader)
        .loader(PAY_LOG_MODEL, pay_log_model::PayLogModelLoader)
        .loader(PAY_SVC, pay_svc::PaySvcLoader)
}
