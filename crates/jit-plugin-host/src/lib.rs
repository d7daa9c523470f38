//! The host side of native Type plugins: finding them in an app, validating and loading them
//! with libloading, and adapting them to the runtime's [`Loader`](jit_runtime::Loader).
//!
//! A plugin is a `cdylib` built against `jit-plugin-api`, placed in a Type element's folder
//! and named by that element's `backendBundleEntry` (any entry ending in `.so`, `.dylib` or
//! `.dll`; a path relative to the element's folder and inside it). For each such Type,
//! [`register_plugins`] opens the library, checks its header ([`open_plugin`]) and registers
//! a [`PluginLoader`] under the Type's fullName. An instance of that Type is then built by
//! the parent Type's loader ([`jit_runtime::LoadContext::load_with_parent`]) and wrapped in a
//! [`PluginElement`]: calls of the functions the plugin overrides enter the plugin, which may
//! call back into the parent; every other call goes straight to the parent.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jit_runtime::AppBuilder;
//!
//! let definitions = AppBuilder::new("examples/shop").load_definitions()?;
//! let builder = AppBuilder::new("examples/shop"); // plus framework layers and loaders
//! let app = jit_plugin_host::register_plugins(builder, &definitions)?.build().await?;
//! # let _ = app; Ok(()) }
//! ```
//!
//! Refusals are precise: a file that is missing or not a library, a library without the
//! header symbol, and every header field that differs from this host's build (magic, ABI
//! version, header size, target triple, rustc version, plugin-API version) are each reported
//! with the e.json, the library path, and for a header field its expected and found values.
//! Nothing of a refused plugin is called.
//!
//! This crate knows nothing of payments, HTTP or databases, and plugins know nothing of it:
//! only `jit-plugin-api`'s `repr(C)` types and JSON cross the boundary.

#![deny(missing_docs)]
// Loading libraries, reading their exported header static and calling their `extern "C"`
// entry points is unsafe by nature and is this crate's purpose, so the workspace's
// `unsafe_code = "deny"` is lifted here. Every `unsafe` block states what it relies on.
#![allow(unsafe_code)]

mod element;
mod header;
mod library;

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use jit_runtime::{AppBuilder, Definitions, ElementDef, LoadError, LoadErrorKind, LoadErrors};

pub use element::{PluginElement, PluginLoader};
pub use header::HeaderMismatch;
pub use library::{LoadedPlugin, OpenError, open_plugin};

/// File name endings that make a `backendBundleEntry` a native plugin library.
pub const LIBRARY_SUFFIXES: [&str; 3] = [".so", ".dylib", ".dll"];

/// Whether a `backendBundleEntry` names a native plugin library (rather than `.` or a bundle
/// the runtime handles itself).
pub fn is_library_entry(entry: &str) -> bool {
    LIBRARY_SUFFIXES
        .iter()
        .any(|suffix| entry.ends_with(suffix))
}

/// A Type whose `backendBundleEntry` names a plugin library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The Type's fullName, under which its loader is registered.
    pub type_name: String,
    /// Its e.json, as shown in errors.
    pub source: PathBuf,
    /// `backendBundleEntry` as written.
    pub entry: String,
    /// The library file: the entry resolved against the element's folder.
    pub library: PathBuf,
}

/// Why a plugin Type of the app cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginProblem {
    /// The Type comes from the embedded framework layer, which has no files to load.
    #[error(
        "a native plugin must be a file in an app's elements folder; this element is embedded in the framework layer"
    )]
    EmbeddedElement,
    /// A Meta names a library.
    #[error("a Meta cannot be a native plugin: a plugin implements a Type that extends another")]
    Meta,
    /// The entry is absolute or leaves the element's folder.
    #[error("`{entry}` must be a path relative to the element's folder and inside it")]
    PathOutsideElement {
        /// The entry as written.
        entry: String,
    },
    /// The library could not be opened, or was refused.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// A plugin problem located in the app: the element and its e.json.
#[derive(Debug, Clone)]
pub struct PluginLoadError {
    /// The element's fullName.
    pub element: String,
    /// Its e.json, as shown in errors.
    pub source: PathBuf,
    /// What is wrong.
    pub problem: PluginProblem,
}

impl PluginLoadError {
    /// The JSON path every plugin problem is located at.
    pub const JSON_PATH: &'static str = "backendBundleEntry";

    /// The problem in the runtime's format, for `jit check` and the like.
    pub fn to_load_error(&self) -> LoadError {
        LoadError::new(
            LoadErrorKind::Build,
            &self.source,
            format!("{}: {}", self.element, self.problem),
        )
        .at(Self::JSON_PATH)
    }
}

impl fmt::Display for PluginLoadError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_load_error(), formatter)
    }
}

impl std::error::Error for PluginLoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

/// Every plugin problem of an app; Display prints one per line.
#[derive(Debug, Clone, Default)]
pub struct PluginLoadErrors(pub Vec<PluginLoadError>);

impl fmt::Display for PluginLoadErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("\n")?;
            }
            write!(formatter, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginLoadErrors {}

impl From<PluginLoadErrors> for LoadErrors {
    fn from(errors: PluginLoadErrors) -> Self {
        LoadErrors(
            errors
                .0
                .iter()
                .map(PluginLoadError::to_load_error)
                .collect(),
        )
    }
}

/// The Types of the app whose `backendBundleEntry` names a library, sorted by fullName, or
/// every problem of placement (embedded element, Meta, path outside the element's folder).
/// Opens nothing.
pub fn find_plugins(definitions: &Definitions) -> Result<Vec<PluginSpec>, PluginLoadErrors> {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for chain in definitions.iter() {
        let def = chain.element();
        let Some(entry) = def
            .backend_bundle_entry
            .as_deref()
            .filter(|e| is_library_entry(e))
        else {
            continue;
        };
        match locate(def, entry) {
            Ok(library) => specs.push(PluginSpec {
                type_name: def.full_name.to_string(),
                source: def.source.clone(),
                entry: entry.to_owned(),
                library,
            }),
            Err(problem) => errors.push(PluginLoadError {
                element: def.full_name.to_string(),
                source: def.source.clone(),
                problem,
            }),
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(PluginLoadErrors(errors))
    }
}

fn locate(def: &ElementDef, entry: &str) -> Result<PathBuf, PluginProblem> {
    if def.is_meta() {
        return Err(PluginProblem::Meta);
    }
    let Some(dir) = &def.dir else {
        return Err(PluginProblem::EmbeddedElement);
    };
    let relative = Path::new(entry);
    let stays_inside = relative
        .components()
        .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
    if !stays_inside {
        return Err(PluginProblem::PathOutsideElement {
            entry: entry.to_owned(),
        });
    }
    Ok(dir.join(relative))
}

/// Finds every plugin Type of the app and opens its library ([`open_plugin`]): the header is
/// validated before anything in the library is called. Reports every problem at once.
pub fn load_plugins(
    definitions: &Definitions,
) -> Result<Vec<(PluginSpec, Arc<LoadedPlugin>)>, PluginLoadErrors> {
    let specs = find_plugins(definitions)?;
    let mut loaded = Vec::with_capacity(specs.len());
    let mut errors = Vec::new();
    for spec in specs {
        match open_plugin(&spec.library) {
            Ok(plugin) => {
                tracing::info!(
                    element = %spec.type_name,
                    library = %plugin.path().display(),
                    plugin = %plugin.name(),
                    version = %plugin.version(),
                    "native plugin loaded"
                );
                loaded.push((spec, plugin));
            }
            Err(error) => errors.push(PluginLoadError {
                element: spec.type_name.clone(),
                source: spec.source.clone(),
                problem: error.into(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(PluginLoadErrors(errors))
    }
}

/// Loads every plugin Type of the app ([`load_plugins`]) and registers a [`PluginLoader`] for
/// each on `builder`, under the Type's fullName. The plugin's elements are first built by the
/// loaders of its parent Types, so register those (the framework families) on the builder
/// **before** calling this: when an app shadows an official Type with a plugin (the same
/// fullName), the later registration wins and the official loader becomes its parent.
///
/// `definitions` is the same app loaded with [`AppBuilder::load_definitions`] (a builder with
/// the same app dir and framework layers).
pub fn register_plugins(
    builder: AppBuilder,
    definitions: &Definitions,
) -> Result<AppBuilder, PluginLoadErrors> {
    Ok(add_plugin_loaders(builder, load_plugins(definitions)?))
}

/// Registers a [`PluginLoader`] for each plugin [`load_plugins`] loaded, under its Type's
/// fullName. For a host that loads the plugins first and registers them later, after the
/// loaders of their parent Types (see [`register_plugins`]).
pub fn add_plugin_loaders(
    builder: AppBuilder,
    plugins: impl IntoIterator<Item = (PluginSpec, Arc<LoadedPlugin>)>,
) -> AppBuilder {
    plugins
        .into_iter()
        .fold(builder, |builder, (spec, plugin)| {
            builder.loader(&spec.type_name, PluginLoader::new(plugin))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_entries_are_recognised_by_suffix() {
        assert!(is_library_entry("libexample_discount_plugin.so"));
        assert!(is_library_entry("lib/plugin.dylib"));
        assert!(is_library_entry("plugin.dll"));
        assert!(!is_library_entry("."));
        assert!(!is_library_entry("backend/main.py"));
    }
}
