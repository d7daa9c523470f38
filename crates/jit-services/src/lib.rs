//! The `services` element family, as JitAi has it: `services.Meta` and
//! `services.NormalType`, the Type of an app's own service elements.
//!
//! A service element is a folder `elements/<path>/` whose e.json names
//! `"type": "services.NormalType"` and declares a `functionList`. The family ships no code
//! of its own: each instance's functions are its own code, either a native plugin library
//! named by the instance's `backendBundleEntry` (`jit-plugin-host` registers a loader for
//! it) or Rust functions a host registers for the instance's fullName. An instance with
//! neither is refused by `jit check` and at start, like any element this host cannot build.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use include_dir::{Dir, include_dir};
use jit_runtime::AppBuilder;

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
