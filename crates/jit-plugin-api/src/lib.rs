//! The stable native-plugin ABI between the jit host and Type plugins loaded with libloading.
//!
//! A native plugin is a `cdylib` that implements one element Type extending another (for
//! example a Type whose `type` is `pays.WechatPayType`). It depends on this crate only, never
//! on the runtime: everything that crosses the library boundary is defined here and is either
//! a `#[repr(C)]` struct, a C function pointer or a byte string holding JSON. No Rust trait
//! object, `String`, `Vec` or other std type crosses it, and no allocation made on one side is
//! freed on the other.
//!
//! # Writing a plugin
//!
//! ```
//! use jit_plugin_api::{Host, Plugin, PluginError};
//! use serde_json::Value;
//!
//! struct Passthrough;
//!
//! impl Plugin for Passthrough {
//!     fn call(&self, function: &str, args: Value, host: &Host) -> Result<Value, PluginError> {
//!         host.call_parent(function, args)
//!     }
//! }
//!
//! jit_plugin_api::export_plugin!(Passthrough);
//! ```
//!
//! A plugin reaches the rest of the app through [`Host::app`]:
//!
//! ```
//! # use jit_plugin_api::{Host, PluginError};
//! # use serde_json::{Value, json};
//! fn pay(host: &Host, amount: Value) -> Result<Value, PluginError> {
//!     let pay = host.app().get_element("pays.myWechatPay")?;
//!     let order = pay.call("create", json!({"subject": "Cart", "amount": amount}))?;
//!     pay.call("getPayUrl", json!({"orderId": order["orderId"]}))
//! }
//! ```
//!
//! # What the host sees
//!
//! [`export_plugin!`] exports exactly one symbol, the static [`PluginHeader`] named
//! [`HEADER_SYMBOL`]. Its first fields ([`HeaderPrefix`]) are frozen for every ABI version, so
//! a host reads magic, ABI version and header size before trusting anything else, then the
//! version strings, and only when every field matches does it call one of the plugin's entry
//! points ([`PluginEntryPoints`]). Results flow back through an [`OutputSink`]: the caller
//! lends a callback, the callee hands it bytes that live only for the duration of that
//! callback, and the caller copies them into its own memory.
//!
//! This crate must not know about the runtime's Rust types, HTTP, databases or payments.

#![deny(missing_docs)]
// This crate defines a C ABI: raw pointers, `extern "C"` functions and an exported
// `#[no_mangle]` static are the point of it, so the workspace's `unsafe_code = "deny"` is
// lifted here, and every `unsafe` block must state the invariant it relies on.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
mod error;
mod export;
mod messages;
mod plugin;
mod reply;

pub use abi::{
    ABI_VERSION, API_VERSION, ByteView, HEADER_STRING_CAPACITY, HEADER_SYMBOL, HeaderPrefix,
    HeaderString, HostApi, MAGIC, OLDEST_ABI_VERSION, OutputSink, PluginEntryPoints, PluginHeader,
    RUSTC_VERSION, STATUS_ERROR, STATUS_OK, STATUS_PANIC, TARGET_TRIPLE, collect_output,
    header_size_of_abi, write_output,
};
pub use error::{PluginError, PluginErrorKind};
pub use messages::{ArgInfo, ElementInfo, FunctionInfo, PluginDescription};
pub use plugin::{App, ElementRef, Host, Parent, Plugin};
pub use reply::{decode_reply, encode_reply, panic_message};

/// The glue [`export_plugin!`] expands to. Not part of the stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{call, describe};
    pub use std::sync::OnceLock;
}
