//! The element runtime: loads an app's element tree, resolves Meta → Type → Instance
//! chains and serves elements to hosted code.
//!
//! This crate owns the JitAi element model: `e.json` parsing, fullNames, app layers
//! (embedded framework < extended apps < the app's own `elements/`), overriding and
//! `accessModifier`, `type` chain resolution, config files with `{{VAR}}` placeholders,
//! secret masking, loaders and the element cache. It knows nothing of HTTP, databases or
//! payments: those live in the host and in element families, which plug in through
//! [`Loader`], [`Element`] and [`AppBuilder::provide`].
//!
//! # Using it
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jit_runtime::{AppBuilder, CallContext};
//! static PAYS: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/tests/fixtures/framework");
//!
//! // `jit check` / `jit ls` / `jit show`: no loaders needed.
//! let defs = AppBuilder::new("examples/shop").framework_layer(&PAYS).load_definitions()?;
//! for chain in defs.iter() {
//!     println!("{chain}  [{}]", chain.element().layer);
//! }
//!
//! // A host: register loaders, build, then get or call elements.
//! let app = AppBuilder::new("examples/shop").framework_layer(&PAYS).build().await?;
//! let result = app
//!     .call("pays.myPay", "create", serde_json::json!({"amount": 1}), &CallContext::principal("u1"))
//!     .await?;
//! # let _ = result; Ok(()) }
//! ```
//!
//! # Names and layout
//!
//! An element is a folder holding `e.json`; its fullName is the folder path below the
//! layer root joined with dots, `frontend`/`backend` folders left out. Every segment is
//! `[A-Za-z_][A-Za-z0-9_]*`. The config file is the `.json` file `frontBundleEntry`
//! names (an error when missing), else `<lastSegment>.json`, else `config.json`.
//!
//! # Layers and overriding
//!
//! A higher layer's element with the same fullName overrides the lower one
//! ([`ElementDef::overrides`] keeps the lower definition). `protected` elements cannot be
//! overridden. `private` elements cannot be used as a `type` from a higher layer, and a
//! higher layer's same-named element is a new element (its `overrides` is `None`);
//! lower-layer chains keep using the private one. `get_element` sees the highest definition.
//!
//! # Loaders
//!
//! An element is built by the nearest loader on its chain (its own fullName first, then
//! its Type, ..., then its Meta). Registering a loader again for a fullName stacks it on
//! the earlier one, which [`LoadContext::load_with_parent`] reaches first, before the
//! loaders of the parent Types. `check` and `build` refuse an app with an element this host
//! cannot build: an instance ([`Definitions::kind`] owns the rule) or an element whose
//! chain declares functions, with no loader anywhere on its chain; and a Meta or Type of the app (on disk)
//! whose own e.json names a `backendBundleEntry` (its code ships with it) with no loader
//! registered for its own fullName, which a parent's loader would build with the parent's
//! behaviour alone. An instance's `backendBundleEntry` (JitAi's default is `"."`) names no
//! code of its own: its Type's loader builds it.
//! An element's lifecycle hooks are [`Element`] methods with empty defaults: `on_load`
//! (once, after the build, before anyone receives the element; an error fails the build),
//! `on_called` (each time [`App::get_element`] hands it out) and `on_app_exit` (once, from
//! [`App::exit`], the most recently built element first).
//!
//! A loader that asks (directly or through other loaders) for an element whose build it is
//! inside of gets [`GetError::BuildCycle`] instead of waiting forever, also when the
//! builds of the cycle were started by different tasks.
//!
//! # Generations and cache levels
//!
//! An [`App`] is one *generation* of the app, pinned: a host pins one per request (through
//! [`LiveApp::current`]) and the request finishes on it. [`AppBuilder::build_next`] builds
//! the next generation beside the running one, keeping the built instance of every element
//! whose chain of definitions and loader plan did not change ([`GenerationChanges`]);
//! [`NextGeneration::make_current`] swaps it in atomically, and the old generation is
//! retired (its elements no later generation kept get `on_app_exit`) once nothing holds it
//! or after a grace period. A [`WeakApp`] always upgrades to the current generation.
//!
//! `cacheLevel` ([`CacheLevel`], nearest on the chain): `0` (default) builds an element
//! once per generation; `1` builds it afresh per request, from the cached definition, and
//! shares it between the calls of that request through the [`CallContext`]
//! ([`App::get_element_in`]). Any other value is a load error at `cacheLevel`.
//!
//! # Arguments
//!
//! [`App::call`] checks a call against the nearest declaration on the chain
//! ([`check_call`]): the function is declared, a `loginRequired` function has a principal,
//! and the arguments have the declared names and `dataType`s. A host that receives
//! arguments as JSON text reads them with [`parse_arguments`], which refuses any number a
//! 64-bit float would change (`1234567890123456.78`) and tells the caller to send it as a
//! decimal string; `Numeric` takes a JSON number or a decimal string (`"12.34"`).
//!
//! # Tools (`jit check`, `jit ls`, `jit show`)
//!
//! - check: [`AppBuilder::load_definitions`] returns every problem as [`LoadErrors`]
//!   (each [`LoadError`] has `file`, `json_path`, `message`, `kind`; Display prints
//!   `file: path: message`, one per line). [`AppBuilder::check`] adds the loader checks
//!   without building anything (counting loaders announced with
//!   [`AppBuilder::expect_loader`]); [`AppBuilder::build`] also builds `afterAppInit`
//!   elements.
//! - ls: [`Definitions::listed`] yields each element the app lists (visible, and not
//!   `private` to a lower layer) as its [`Chain`], sorted by fullName; [`Definitions::kind`]
//!   says Meta, Type or instance; [`Definitions::select`] filters by a [`Selector`];
//!   `chain.to_string()` is `a → b → c`, `chain.element().layer` its layer,
//!   [`Definitions::layers`] the layer order.
//! - show: [`Chain::to_json_masked`] is the resolved definition as JSON (own keys, chain,
//!   merged settings, functions) with secrets replaced by [`MASK`].
//!
//! # Additions to the agreed shapes
//!
//! - [`ElementDef::overrides`] (the lower-layer definition a shadowing one replaces);
//!   [`LoadErrorKind`] on every [`LoadError`]; [`Definitions`] accessors (`get`, `chain`,
//!   `iter`, `iter_all`, `listed`, `is_listed`, `layers`, `layer_index`, `select`, `kind`,
//!   `is_instance`, `suggest`, `is_used_as_type`, `fill_placeholders`); [`App::chain`];
//! - [`Selector`] (JitAi's `findElements` selectors, [`selector`] has the grammar):
//!   [`Definitions::select`] and [`App::find_elements`]; [`ElementKind`] (Meta, Type,
//!   instance), the one rule for "is this an instance".
//!   [`App::build_elements`] for `beforeHandleRequest`.
//! - [`LoadContext::loader_def`], [`LoadContext::chain_index`], [`LoadContext::service`].
//! - [`Chain`] helpers: `setting_str`, `secret`, `secret_str`, `settings_masked`,
//!   `function` (nearest declaration wins), `functions`, `is_secret`, `secret_keys`.
//! - [`Element::call`] has a default answering `FUNCTION_NOT_FOUND`; the
//!   [`provide_interfaces!`] macro writes [`Element::interface`].
//! - [`App::fill_placeholders`] returns [`PlaceholderError`]; [`EnvSource`] does the
//!   filling for any text.
//! - [`check_call`] is public so a host can validate a call before routing it;
//!   [`declared_function`] and [`argument_problems`] are its parts, for a host that routes
//!   by declaration or checks a call of its own.
//! - [`parse_arguments`] reads a call's arguments from JSON text (a request body) without
//!   changing any number on the way: a number a 64-bit float cannot carry is refused.
//! - [`WeakApp`] has `get_element` and `get`; [`GetError::AppGone`] when the app is gone.
//! - A [`CallError`] has a category ([`CallErrorKind`]: `NOT_FOUND`, `FUNCTION_NOT_FOUND`,
//!   `BAD_ARGUMENTS`, `UNAUTHORIZED`, `CONFLICT`, `UPSTREAM`, `INTERNAL`) and optionally an
//!   element-specific code ([`CallError::with_code`]); [`CallError::code`] is the specific
//!   code if there is one, else the category's.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod app;
mod arguments;
mod builder;
mod call_context;
mod chain;
mod definitions;
mod element;
mod element_def;
mod error;
mod generations;
mod loader;
mod log_safe;
mod name;
mod secret;
pub mod selector;
mod settings;
mod wait_graph;

pub use app::{App, LiveApp, WeakApp};
pub use arguments::{
    INVALID_JSON, argument_problems, check_call, declared_function, parse_arguments,
};
pub use builder::AppBuilder;
pub use call_context::{CallContext, RequestElements};
pub use chain::Chain;
pub use definitions::{Definitions, ElementKind, FRAMEWORK_LAYER, FRAMEWORK_PREFIX, Layer};
pub use element::Element;
pub use element_def::{
    AccessModifier, ArgDecl, BackendLoadTime, BodyFormat, CacheLevel, DataType, ElementDef,
    FunctionDecl,
};
pub use error::{
    CallError, CallErrorKind, ElementError, GetError, LoadError, LoadErrorKind, LoadErrors,
    PlaceholderError,
};
pub use generations::{GenerationChanges, NextGeneration, ReplaceError};
pub use loader::{LoadContext, Loader};
pub use log_safe::{
    LOG_TEXT_LIMIT, LogAdmission, LogSafe, RefusalLogLimiter, is_format_char, log_safe,
};
pub use name::{FullName, NameError, is_valid_segment};
pub use secret::{MASK, Secret, mask_json};
pub use selector::{Selector, SelectorError};
pub use settings::{AppSettings, EnvSource, fill_placeholders};

/// Re-exported so element families need not depend on these directly.
pub use async_trait::async_trait;
pub use include_dir;
