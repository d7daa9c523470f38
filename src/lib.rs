//! The jit host: the `jit` command line, the HTTP server and the host builder.
//!
//! This crate is glue. It owns the command line (`check`, `ls`, `show`, `sim`, `serve`),
//! the HTTP surface of `jit serve` (connections, routing, tokens, limits, request ids,
//! health, graceful shutdown, the start-up rules that keep a shop from failing open) and
//! [`Host`], the builder an app with its own Rust code uses to make
//! its own host binary. It knows nothing of what elements do: it hands calls to
//! [`jit_runtime::App::call`], and it knows the WeChat Pay protocol only as far as the
//! in-process simulator needs merchants.
//!
//! # A host of your own
//!
//! An app that adds a Rust Type (say `pays.MyWechatPayType`, extending
//! `pays.WechatPayType`) registers its loader and keeps every `jit` subcommand:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use jit_runtime::{Element, ElementError, LoadContext, Loader};
//! struct MyWechatPayLoader;
//!
//! #[jit_runtime::async_trait]
//! impl Loader for MyWechatPayLoader {
//!     async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
//!         // Build the official element, then wrap it (see examples/custom_host.rs).
//!         cx.load_with_parent().await
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     jit::Host::new()
//!         .loader("pays.MyWechatPayType", MyWechatPayLoader)
//!         .run_cli()
//! }
//! ```
//!
//! Tests start the real server in-process with [`Host::serve_in_process`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
mod commands;
mod error;
mod host;
pub mod logging;
mod official;
mod reload;
mod serve;
pub mod server;
mod simulator_file;
mod web;

pub use error::HostError;
pub use host::Host;
pub use official::config::{GatewayTarget, PaysConfig};
pub use reload::ReloadOutcome;
pub use server::ServerHandle;
pub use server::config::{ConnectionLimits, Overrides, ServeConfig};
