//! The host side of native Type plugins: finding them in an app, validating and loading them
//! with libloading, and adapting them to the runtime's [`Loader`](jit_runtime::Loader).
//!
//! A plugin is a `cdylib` built against `jit-plugin-api`, placed in a Type element's folder
//! and named by that element's `backendBundleEntry` (any entry ending in `.so`, `.dylib` or
//! `.dll`; a path relative to the element's folder that stays inside it once symbolic links
//! are resolved). For each such Type, [`register_plugins`] opens the library, checks its
//! header ([`open_plugin`]) and registers a [`PluginLoader`] under the Type's fullName.
//! [`inspect_plugins`] checks the same headers from the files alone, loading nothing: what
//! `jit check` does. An instance of that Type is then built by
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
//! The header is read from the file before the library is loaded, so nothing of a refused
//! plugin runs, not even its initialisers.
//!
//! This crate knows nothing of payments, HTTP or databases, and plugins know nothing of it:
//! only `jit-plugin-api`'s `repr(C)` types and JSON cross the boundary.

#![deny(missing_docs)]
// Loading libraries, reading their exported header static and calling their `extern "C"`
// entry points is unsafe by nature and is this crate's purpose, so the workspace's
// `unsafe_code = "deny"` is lifted here, and every `unsafe` block must state, in its own
// `// SAFETY:` comment, why it is sound.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod copies;
mod element;
mod file;
mod header;
mod library;

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use jit_runtime::{AppBuilder, Definitions, ElementDef, LoadError, LoadErrorKind, LoadErrors};

pub use copies::copies_dir;
pub use element::{CALL_DEPTH_EXCEEDED, MAX_NESTED_APP_CALLS, PluginElement, PluginLoader};
pub use file::{InspectedPlugin, inspect_plugin};
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
    /// The library file: the entry resolved against the element's folder, symbolic links
    /// followed (canonical) when the file exists.
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
    /// The entry stays inside the element's folder as written, but a symbolic link on the
    /// way leads out of it.
    #[error(
        "`{entry}` resolves to `{}`, outside the element's folder `{}` (symbolic links are \
         followed): a plugin library must be inside its element's folder",
        resolved.display(),
        folder.display()
    )]
    LinksOutsideElement {
        /// The entry as written.
        entry: String,
        /// Where it leads, every symbolic link resolved.
        resolved: PathBuf,
        /// The element's folder, every symbolic link resolved.
        folder: PathBuf,
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
    let library = dir.join(relative);
    // The components alone prove nothing: `lib.so` may be a link to any file. Both sides
    // are resolved and compared. A file that does not exist is reported when it is opened.
    let (Ok(folder), Ok(resolved)) = (dir.canonicalize(), library.canonicalize()) else {
        return Ok(library);
    };
    if !resolved.starts_with(&folder) {
        return Err(PluginProblem::LinksOutsideElement {
            entry: entry.to_owned(),
            resolved,
            folder,
        });
    }
    Ok(resolved)
}

/// Finds every plugin Type of the app and opens its library ([`open_plugin`], from a copy
/// in the app's [`copies_dir`]): the header is validated, from the file and then in the
/// loaded library, before anything in the library is called. Reports every problem at once.
pub fn load_plugins(
    definitions: &Definitions,
) -> Result<Vec<(PluginSpec, Arc<LoadedPlugin>)>, PluginLoadErrors> {
    let copies = copies_dir(&definitions.settings().dir);
    let loaded = each_plugin(definitions, |path| open_plugin(path, &copies))?;
    for (spec, plugin) in &loaded {
        tracing::info!(
            element = %spec.type_name,
            library = %plugin.path().display(),
            plugin = %plugin.name(),
            version = %plugin.version(),
            "native plugin loaded"
        );
    }
    Ok(loaded)
}

/// Finds every plugin Type of the app and checks its library's header from the file
/// ([`inspect_plugin`]), loading nothing: no code of any library runs. Reports every problem
/// at once, as [`load_plugins`] would. What `jit check` does.
pub fn inspect_plugins(
    definitions: &Definitions,
) -> Result<Vec<(PluginSpec, InspectedPlugin)>, PluginLoadErrors> {
    each_plugin(definitions, inspect_plugin)
}

/// [`find_plugins`], then `open` for each library; every problem of either kind.
fn each_plugin<T>(
    definitions: &Definitions,
    open: impl Fn(&Path) -> Result<T, OpenError>,
) -> Result<Vec<(PluginSpec, T)>, PluginLoadErrors> {
    let specs = find_plugins(definitions)?;
    let mut opened = Vec::with_capacity(specs.len());
    let mut errors = Vec::new();
    for spec in specs {
        match open(&spec.library) {
            Ok(plugin) => opened.push((spec, plugin)),
            Err(error) => errors.push(PluginLoadError {
                element: spec.type_name.clone(),
                source: spec.source.clone(),
                problem: error.into(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(opened)
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
            builder.shared_loader(&spec.type_name, library::shared_loader(&plugin))
        })
}

/// Tells `builder` that a [`PluginLoader`] will be registered for each of `plugins` when the
/// app is built ([`AppBuilder::expect_loader`]), so that [`AppBuilder::check`] counts the
/// plugins inspected by [`inspect_plugins`] without their libraries being loaded.
pub fn expect_plugin_loaders<'a>(
    builder: AppBuilder,
    plugins: impl IntoIterator<Item = &'a PluginSpec>,
) -> AppBuilder {
    plugins.into_iter().fold(builder, |builder, spec| {
        builder.expect_loader(&spec.type_name)
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
