//! The `services` element family, as JitAi has it: `services.Meta` and
//! `services.NormalType`, the Type of an app's own service elements.
//!
//! A service element is a folder `elements/<path>/` whose e.json names
//! `"type": "services.NormalType"` and declares a `functionList`. The family ships no code
//! of its own: each instance's functions are its own code, either a native plugin library
//! named by the instance's `backendBundleEntry` (`jit-plugin-host` registers a loader for
//! it) or Rust functions a host registers for the instance's fullName. An instance with
//! neither is refused by `jit check` and at start, like any element this host cannot build.
//!
//! # Service elements in Rust
//!
//! [`ServiceFunctions`] names a Rust closure per function; [`Service`] is the trait for an
//! implementation that dispatches itself. Either becomes the element's code through a
//! [`ServiceLoader`] registered under the instance's fullName (`jit::Host::service` does
//! that). Each function receives the running [`App`], so it can `get_element` and `call`
//! other elements, and the caller's [`CallContext`], which it passes on:
//!
//! ```
//! use jit_runtime::CallError;
//! use jit_services::ServiceFunctions;
//! use serde_json::json;
//!
//! let checkout = ServiceFunctions::new().function("checkout", |app, args, cx| async move {
//!     let cart = args.get("cartId").and_then(|id| id.as_str()).unwrap_or_default().to_owned();
//!     let order = app
//!         .call("pays.myWechatPay", "create", json!({"subject": cart, "amount": "9.90"}), &cx)
//!         .await?;
//!     Ok::<_, CallError>(order)
//! });
//! assert_eq!(checkout.names().collect::<Vec<_>>(), ["checkout"]);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod rust_service;

pub use rust_service::{Service, ServiceElement, ServiceFunctions, ServiceLoader};

use include_dir::{Dir, include_dir};
use jit_runtime::AppBuilder;
#[cfg(doc)]
use jit_runtime::{App, CallContext};

/// The family's element tree, rooted like an app's `elements/`.
pub static ELEMENTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/elements");

/// The family's Meta.
pub const SERVICES_META: &str = "services.Meta";

/// The Type of service elements.
pub const NORMAL_TYPE: &str = "services.NormalType";

/// Adds the family's definitions to the framework layer.
pub fn register(builder: AppBuilder) -> AppBuilder {
    builder.framework_layer(&ELEMENTS)
}
