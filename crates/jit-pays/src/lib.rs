//! The pays element family: `pays.Meta`, `pays.WechatPayType` (WeChat Pay V2),
//! `pays.WechatPayV3Type` (WeChat Pay API v3), `pays.models.PayLogModel` and
//! `pays.services.PaySvc`, as official elements of the framework layer.
//!
//! This crate owns the family's element folders (embedded), the order tables and their
//! state machine (sea-orm, SQLite or PostgreSQL), the WeChat Pay Types' behaviour (create,
//! getPayUrl, check, cancel, notify, refunds: one set of flows over each API's calls,
//! [`gateway`](crate::gateway) being crate-private), the reconciler and the hooks hosted
//! code subscribes to, fed by the event outbox written with every transition ([`outbox`]).
//! It knows nothing of HTTP serving (the host calls [`PaySvc::wechat_notify`],
//! [`PaySvc::wechat_notify_v3_from`] or the functionList functions) and nothing of the wire
//! protocols' details (the `wechatpay-v2` and `wechatpay-v3` crates sign, verify, parse and
//! call).
//!
//! # Where things are
//!
//! Each element of the family has the module of its name:
//!
//! | element | module |
//! |---|---|
//! | `pays.Meta` | [`meta`]: the element folders, [`register`], the shared services |
//! | `pays.WechatPayType` | [`wechat_pay_type`]: V2 merchant settings, V2 calls, notify |
//! | `pays.WechatPayV3Type` | [`wechat_pay_v3_type`]: V3 merchant settings, V3 calls, V3 notifies |
//! | `pays.models.PayLogModel` | [`models::pay_log_model`]; its row hooks: [`models::row_hooks`] |
//! | `pays.services.PaySvc` | [`services::pay_svc`] |
//!
//! Beside them: which elements are pay instances, of which API ([`instances`]), how their
//! settings are looked up ([`merchant_settings`]), the [`Pay`] trait and its element
//! ([`pay`]), a `Pay` over an element's functions ([`element_pay`]), the values
//! ([`model`]), the order tables ([`db`]), the
//! [`reconciler`], WeChat's daily bills and reconciliation against them ([`bills`]), the
//! hooks ([`events`]) and the errors ([`error`]).
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
//! )
//! // And its V3 callbacks, for `pays.WechatPayV3Type` instances.
//! .with_v3_notify_urls(
//!     "https://shop.example.com/api/demo/shop/pays/services/PaySvc/wechatNotifyV3",
//!     "https://shop.example.com/api/demo/shop/pays/services/PaySvc/wechatRefundNotifyV3",
//! );
//! let builder = jit_runtime::AppBuilder::new("examples/shop");
//! let app = jit_pays::register(builder, store, settings).build().await?;
//! let reconciler = jit_pays::start_reconciler(&app)?;
//!
//! let events = app.service::<jit_pays::PayEvents>().expect("registered");
//! events.on_paid(|event| println!("paid: {} (event {})", event.order_id, event.id));
//! // After subscribing: delivers every event written, now and after a restart.
//! let outbox = jit_pays::start_outbox(&app, jit_pays::OutboxSettings::new("shop-1")).await?;
//!
//! let pay: Arc<dyn Pay> = app.get::<dyn Pay>("pays.myWechatPay").await?;
//! let order = pay.create("Product Purchase", wechatpay_v2::Fen::from_yuan_str("99.99")?, None).await?;
//! # let _ = order; reconciler.stop().await; outbox.stop().await; Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod args;
pub mod bills;
pub mod db;
pub mod element_pay;
pub mod error;
pub mod events;
pub(crate) mod gateway;
pub mod instances;
pub mod merchant_settings;
pub mod meta;
pub mod metrics;
pub mod model;
pub mod models;
pub mod order_id;
pub mod outbox;
pub mod pay;
pub mod reconciler;
pub mod services;
pub mod settings;
mod transitions;
pub mod wechat_pay_type;
pub mod wechat_pay_v3_type;

pub use bills::{
    BillSchedule, BillsError, DownloadedDay, Mismatch, MismatchKind, ReconcileDay, download_bills,
    reconcile_days, start_bill_schedule,
};
pub use db::PayStore;
pub use db::entity::{ApiVersion, OrderRefundStatus, PayStatus, RefundStatus};
pub use element_pay::{ElementPay, pay_of_element};
pub use error::PayError;
pub use events::{EVENT_VERSION, PayEvent, PayEventKind, PayEvents};
pub use instances::{
    check_merchant_settings, is_pay_instance, pay_api_version, pay_instances, pay_instances_of,
    shown_merchant_settings,
};
pub use meta::{ELEMENTS, PAYS_META, register, register_loaders};
pub use model::{
    CancelResult, CloseAtWechat, NotifyOutcome, NotifyReply, NotifyRequest, OpenedEvent,
    OpenedNotify, PayLog, PayType, PayUrl, Payer, Refund, RefundArgs, RefusalReason, WechatRecord,
};
pub use models::{
    PAY_LOG_MODEL, PayLogHooks, PayLogModel, PayLogQuery, RowEvent, RowHookFailure,
    pay_log_hooks_loader,
};
pub use outbox::{OutboxHandle, OutboxSettings, WebhookEndpoint, start_outbox};
pub use pay::{Pay, PayElement, PayExtension, call_pay, pay_of};
pub use reconciler::{ReconcileReport, ReconcilerHandle, reconcile_due, start_reconciler};
pub use services::{OrderSummary, PAY_SVC, PaySvc};
pub use settings::{PaysSettings, ReconcilerSettings, SimulatedWechat, SimulatorV3Keys};
pub use wechat_pay_type::{
    CertificateFile, MerchantCertificate, SettingSource, WECHAT_PAY_TYPE, WechatPay,
    WechatPayConfig, WechatPayLoader, merchant_settings,
};
pub use wechat_pay_v3_type::{
    WECHAT_PAY_V3_TYPE, WechatPayV3, WechatPayV3Config, WechatPayV3Loader, WechatVerification,
    live_gateway_problems, v3_merchant_settings,
};

// The modules under the names they had before each took its element's place.
pub use models::pay_log_model;
pub use services::pay_svc;
pub use wechat_pay_type as wechat;
