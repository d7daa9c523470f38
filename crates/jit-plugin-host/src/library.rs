//! Loading a plugin library: its header checked in the file, then in the loaded library,
//! then its description. Libraries are loaded from content-addressed copies
//! ([`crate::copies`]) and never unloaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use jit_plugin_api::{
    HEADER_SYMBOL, HeaderPrefix, PluginDescription, PluginEntryPoints, PluginError, PluginHeader,
    collect_output, decode_reply,
};
use parking_lot::Mutex;

use crate::copies::LibraryContent;
use crate::file::{InspectedPlugin, canonical_file, inspect_bytes};
use crate::header::{BuildFacts, HeaderMismatch, check_build, check_prefix};

/// Why a file could not be used as a plugin. Every variant names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    /// No file at the path.
    #[error("plugin library `{}` does not exist ({reason})", path.display())]
    Missing {
        /// The path looked at.
        path: PathBuf,
        /// What the file system said.
        reason: String,
    },
    /// The file is not a shared library (as a file, or to the dynamic loader).
    #[error("`{}` is not a loadable library: {reason}", path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// Why: what the file is, or the dynamic loader's message.
        reason: String,
    },
    /// The library does not export the header symbol.
    #[error("`{}` is not a jit plugin: it exports no `JIT_PLUGIN_HEADER` symbol ({reason})", path.display())]
    NoHeader {
        /// The library.
        path: PathBuf,
        /// Where it was looked for: the file's export table, or the dynamic loader's message.
        reason: String,
    },
    /// The header symbol is not where a header can be.
    #[error("`{}` is not a jit plugin: its `JIT_PLUGIN_HEADER` symbol is {problem}", path.display())]
    BadHeaderAddress {
        /// The library.
        path: PathBuf,
        /// Null, misaligned, or not backed by the file's data.
        problem: &'static str,
    },
    /// A header field differs from what this host was built with; nothing of the plugin ran.
    #[error("plugin `{}` refused: {mismatch}", path.display())]
    Refused {
        /// The library.
        path: PathBuf,
        /// The field, the expected and the found value.
        mismatch: HeaderMismatch,
    },
    /// The copy the library is loaded from could not be written.
    #[error("plugin `{}` cannot be copied to `{}` to be loaded: {reason}", path.display(), copy.display())]
    Copy {
        /// The library.
        path: PathBuf,
        /// The copy it was to be loaded from.
        copy: PathBuf,
        /// What the file system said.
        reason: String,
    },
    /// The plugin's `describe` entry point failed.
    #[error("plugin `{}` could not describe itself: {error}", path.display())]
    Describe {
        /// The library.
        path: PathBuf,
        /// What it reported.
        error: Box<PluginError>,
    },
}

/// A plugin library whose header was accepted. Lives for the rest of the process.
#[derive(Debug)]
pub struct LoadedPlugin {
    /// Which library it is and what its header says it is.
    identity: InspectedPlugin,
    /// The content-addressed copy the dynamic loader mapped.
    copy: PathBuf,
    entry_points: PluginEntryPoints,
    overrides: Option<Vec<String>>,
}

impl LoadedPlugin {
    /// The library file (canonical path).
    pub fn path(&self) -> &Path {
        self.identity.path()
    }

    /// The plugin package's name, from its header.
    pub fn name(&self) -> &str {
        self.identity.name()
    }

    /// The copy of the library that was loaded (`<app>/.jit/plugins/<sha256>-<file name>`).
    pub fn loaded_from(&self) -> &Path {
        &self.copy
    }

    /// The plugin package's version, from its header.
    pub fn version(&self) -> &str {
        self.identity.version()
    }

    /// The functions the plugin implements itself; `None` when every call enters it.
    pub fn overrides(&self) -> Option<&[String]> {
        self.overrides.as_deref()
    }

    /// Whether a call of `function` enters the plugin (rather than going to the parent).
    pub fn handles(&self, function: &str) -> bool {
        self.overrides
            .as_ref()
            .is_none_or(|names| names.iter().any(|name| name == function))
    }

    pub(crate) fn entry_points(&self) -> &PluginEntryPoints {
        &self.entry_points
    }
}

/// Libraries opened so far, by canonical path and content. Entries are never removed: a
/// plugin's code must stay mapped as long as any element built from it may run, which is
/// the whole process.
type Registry = HashMap<(PathBuf, String), Arc<LoadedPlugin>>;

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Opens the plugin library at `path`, validates its header and asks it which functions it
/// overrides. The library is read once and loaded from a copy named after its content in
/// `copies` ([`crate::copies`]): opening a file whose content did not change returns the
/// plugin opened before; a changed file is a new plugin, loaded beside the old one.
///
/// The header is read from the bytes first ([`crate::inspect_plugin`]'s checks): a library
/// refused there is never loaded, so none of its code runs. An accepted library is then
/// loaded with the system's dynamic loader, which runs the library's initialisers (ELF
/// `.init_array`, Mach-O initialisers, `DllMain`) while mapping it; a Rust `cdylib` has
/// none unless it uses a constructor crate. The header of the loaded library is checked
/// again (it is what the host calls through) before any function of the library is called.
pub fn open_plugin(path: &Path, copies: &Path) -> Result<Arc<LoadedPlugin>, OpenError> {
    let canonical = canonical_file(path)?;
    let content = LibraryContent::read(&canonical)?;
    let key = (canonical.clone(), content.sha256.clone());
    // Held across the open so two elements naming one library never load it twice at once.
    let mut opened = registry().lock();
    if let Some(plugin) = opened.get(&key) {
        return Ok(plugin.clone());
    }
    inspect_bytes(canonical.clone(), &content.bytes)?;
    let copy = content.copy_into(&canonical, copies)?;
    // SAFETY: loading a library runs its initialisers; see this function's documentation.
    // The library is leaked below, so nothing obtained from it can outlive it. The copy
    // holds the bytes whose header was just checked; nothing of this host writes it again.
    let library =
        unsafe { libloading::Library::new(&copy) }.map_err(|error| OpenError::NotALibrary {
            path: canonical.clone(),
            reason: error.to_string(),
        })?;
    // Never unloaded, whether accepted or refused: unloading runs the library's finalisers,
    // and an accepted plugin's code must stay mapped while elements built from it live.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    let plugin = Arc::new(read_plugin(library, &canonical, copy)?);
    opened.insert(key, plugin.clone());
    Ok(plugin)
}

/// The loader of `plugin`'s Type, one value per loaded plugin: an app built again with the
/// same library gets the same loader, so its elements are kept across a reload
/// (`jit_runtime::AppBuilder::build_next`).
pub(crate) fn shared_loader(plugin: &Arc<LoadedPlugin>) -> Arc<dyn jit_runtime::Loader> {
    static LOADERS: OnceLock<Mutex<HashMap<usize, Arc<dyn jit_runtime::Loader>>>> = OnceLock::new();
    // Loaded plugins are never dropped (the registry keeps them), so the address is theirs.
    let key = Arc::as_ptr(plugin) as usize;
    LOADERS
        .get_or_init(Default::default)
        .lock()
        .entry(key)
        .or_insert_with(|| Arc::new(crate::PluginLoader::new(plugin.clone())))
        .clone()
}

fn read_plugin(
    library: &'static libloading::Library,
    path: &Path,
    copy: PathBuf,
) -> Result<LoadedPlugin, OpenError> {
    // SAFETY: the symbol is a data symbol; we take its address and never call through it.
    let symbol = unsafe { library.get::<*const HeaderPrefix>(HEADER_SYMBOL) }.map_err(|error| {
        OpenError::NoHeader {
            path: path.to_owned(),
            reason: error.to_string(),
        }
    })?;
    let address: *const HeaderPrefix = *symbol;
    if address.is_null() {
        return Err(OpenError::BadHeaderAddress {
            path: path.to_owned(),
            problem: "null",
        });
    }
    // SAFETY: the symbol names at least the frozen prefix in any library claiming to be a
    // plugin; an unaligned read makes no assumption about a foreign symbol's alignment.
    let prefix = unsafe { address.read_unaligned() };
    let refused = |mismatch| OpenError::Refused {
        path: path.to_owned(),
        mismatch,
    };
    check_prefix(&prefix).map_err(refused)?;
    let header = address.cast::<PluginHeader>();
    if !header.is_aligned() {
        return Err(OpenError::BadHeaderAddress {
            path: path.to_owned(),
            problem: "misaligned",
        });
    }
    // SAFETY: magic, ABI version and size match this host's, so the static has exactly the
    // layout of `PluginHeader`; it lives as long as the leaked library.
    let header: &'static PluginHeader = unsafe { &*header };
    check_build(&BuildFacts::of(header)).map_err(refused)?;

    let entry_points = header.entry_points;
    // The first call into the plugin, only now that every header field matched.
    // SAFETY: `describe` is the plugin's entry point of this ABI version; the sink is live.
    let (status, bytes) = collect_output(|out| unsafe { (entry_points.describe)(out) });
    let describe_error = |error| OpenError::Describe {
        path: path.to_owned(),
        error: Box::new(error),
    };
    let description: PluginDescription = decode_reply(status, &bytes)
        .and_then(|value| {
            serde_json::from_value(value).map_err(|error| {
                PluginError::new(
                    PluginError::PROTOCOL,
                    format!("malformed description: {error}"),
                )
            })
        })
        .map_err(describe_error)?;
    Ok(LoadedPlugin {
        identity: InspectedPlugin {
            path: path.to_owned(),
            name: header.plugin_name.display_text(),
            version: header.plugin_version.display_text(),
        },
        copy,
        entry_points,
        overrides: description.overrides,
    })
}
