//! Setting up an app: [`AppBuilder`] (app folder, framework layers, loaders, services,
//! placeholder variables) and the rules for what this host can build, which `check` and
//! `build` share.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use include_dir::Dir;

#[cfg(doc)]
use crate::LoadContext;
use crate::app::App;
use crate::chain::Chain;
use crate::definitions::{self, Definitions};
use crate::element_def::BackendLoadTime;
use crate::error::{LoadError, LoadErrorKind, LoadErrors};
use crate::generations::{NextGeneration, next_generation};
use crate::loader::{Loader, Loaders};

/// Sets up an app: where it lives, the embedded framework layer, loaders and services.
pub struct AppBuilder {
    app_dir: PathBuf,
    framework: Vec<&'static Dir<'static>>,
    loaders: Loaders,
    services: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    env: HashMap<String, String>,
    preloaded: Option<Definitions>,
    /// Loaders [`AppBuilder::check`] counts without their being registered here.
    expected_loaders: HashSet<String>,
}

impl AppBuilder {
    /// An app whose app.toml and elements/ are in `app_dir`.
    pub fn new(app_dir: impl Into<PathBuf>) -> Self {
        Self {
            app_dir: app_dir.into(),
            framework: Vec::new(),
            loaders: HashMap::new(),
            services: HashMap::new(),
            env: HashMap::new(),
            preloaded: None,
            expected_loaders: HashSet::new(),
        }
    }

    /// Uses definitions already loaded by [`AppBuilder::load_definitions`] instead of
    /// walking the tree again in [`AppBuilder::check`] or [`AppBuilder::build`]. A host
    /// that reads the definitions first (to find plugins or merchants) and then builds
    /// saves the second walk. They must come from a builder for the same app folder with
    /// the same framework layers and `env`.
    pub fn definitions(mut self, definitions: Definitions) -> Self {
        self.preloaded = Some(definitions);
        self
    }

    /// The preloaded definitions, or a fresh walk of the tree.
    fn take_definitions(&mut self) -> Result<Definitions, LoadErrors> {
        match self.preloaded.take() {
            Some(defs) => Ok(defs),
            None => definitions::load(
                &self.app_dir,
                &self.framework,
                std::mem::take(&mut self.env),
            ),
        }
    }

    /// Adds an embedded element tree (one element family, rooted like `elements/`) to the
    /// framework layer. Called several times, the trees merge; a fullName twice is an error.
    pub fn framework_layer(mut self, dir: &'static Dir<'static>) -> Self {
        self.framework.push(dir);
        self
    }

    /// Registers the loader of a Meta or Type fullName. Registering again for the same
    /// fullName shadows the earlier loader, which becomes its parent for
    /// [`LoadContext::load_with_parent`] (an app overriding an official Type can delegate).
    pub fn loader(self, type_full_name: &str, loader: impl Loader) -> Self {
        self.shared_loader(type_full_name, crate::loader::shared(loader))
    }

    /// [`AppBuilder::loader`] with a loader the caller shares: builders given the same
    /// `Arc` register the same loader, so [`AppBuilder::build_next`] can keep the elements
    /// it built. (A loader without state, a zero-sized type, is shared by
    /// [`AppBuilder::loader`] already.)
    pub fn shared_loader(mut self, type_full_name: &str, loader: Arc<dyn Loader>) -> Self {
        self.loaders
            .entry(type_full_name.to_owned())
            .or_default()
            .push(loader);
        self
    }

    /// Tells [`AppBuilder::check`] that the host registers a loader for `type_full_name`
    /// when it builds the app, without creating it now: a native plugin, whose library
    /// `jit check` validates from the file but must not load (loading runs its code).
    /// [`AppBuilder::build`] ignores it: there, only a registered loader counts.
    pub fn expect_loader(mut self, type_full_name: &str) -> Self {
        self.expected_loaders.insert(type_full_name.to_owned());
        self
    }

    /// Provides a shared service to loaders and elements ([`App::service`]).
    pub fn provide<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.services.insert(TypeId::of::<T>(), value);
        self
    }

    /// Extra variables for `{{VAR}}` placeholders, above app.toml `[env]`; the process
    /// environment still wins.
    pub fn env(mut self, vars: HashMap<String, String>) -> Self {
        self.env.extend(vars);
        self
    }

    /// Walks, parses and resolves the app's elements without building any (no loader is
    /// needed). Every problem is reported.
    pub fn load_definitions(self) -> Result<Definitions, LoadErrors> {
        definitions::load(&self.app_dir, &self.framework, self.env)
    }

    /// Everything [`AppBuilder::build`] checks, without building any element (so without
    /// touching databases or gateways): the definitions, and that this host can build
    /// every element that needs building ([`AppBuilder::build`] lists the rules), counting
    /// the loaders given to [`AppBuilder::expect_loader`]. What `jit check` runs when the
    /// host's loaders are registered.
    pub fn check(mut self) -> Result<Definitions, LoadErrors> {
        let defs = self.take_definitions()?;
        let errors = unbuildable(&defs, |name| {
            self.loaders.contains_key(name) || self.expected_loaders.contains(name)
        });
        if errors.is_empty() {
            Ok(defs)
        } else {
            Err(LoadErrors(errors))
        }
    }

    /// Loads the definitions, checks that this host can build every element that needs
    /// building, and builds the `afterAppInit` elements. Every problem is reported.
    ///
    /// What this host cannot build, each a [`LoadError`] on the element's e.json:
    /// - an instance, or any element whose chain declares functions (so callable), with no
    ///   loader registered for any element of its chain ([`LoadErrorKind::NoLoader`]);
    /// - a Meta or Type of the app (on disk) whose own e.json names a `backendBundleEntry`,
    ///   saying its code ships with it, with no loader registered for its own fullName
    ///   ([`LoadErrorKind::CodeNotInHost`]): a parent's loader would build its elements
    ///   with the parent's behaviour and none of its own.
    pub async fn build(mut self) -> Result<App, LoadErrors> {
        let defs = self.take_definitions()?;
        let errors = unbuildable(&defs, |name| self.loaders.contains_key(name));
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let app = App::new(defs, self.services, &self.loaders);
        app.build_elements(BackendLoadTime::AfterAppInit).await?;
        Ok(app)
    }
}

impl AppBuilder {
    /// Builds a new generation of `running`'s app beside it, from this builder's
    /// definitions (fresh from disk unless preloaded), services and loaders, with the same
    /// checks as [`AppBuilder::build`]; the running generation is not touched, and keeps
    /// serving when this fails. Every element whose whole chain of definitions (config
    /// files and overridden definitions included) and loader plan (the same loaders, see
    /// [`AppBuilder::shared_loader`]) are unchanged keeps its built instance; the others
    /// are built afresh, the `afterAppInit` ones here. Serve the result with
    /// [`NextGeneration::make_current`].
    pub async fn build_next(mut self, running: &App) -> Result<NextGeneration, LoadErrors> {
        let defs = self.take_definitions()?;
        let errors = unbuildable(&defs, |name| self.loaders.contains_key(name));
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let next = next_generation(running, defs, self.services, &self.loaders);
        if let Err(errors) = next.app.build_elements(BackendLoadTime::AfterAppInit).await {
            next.abandon().await;
            return Err(errors);
        }
        Ok(next)
    }
}

/// Where a host finds out how to build an element that this one cannot.
const EXTENDING_GUIDE: &str = "docs/extending.md";

/// Where an app finds out how to give an element code as a native plugin.
const PLUGINS_GUIDE: &str = "docs/plugins.md";

/// Every element of `defs` this host cannot build, given which fullNames have a loader
/// (the rules are listed on [`AppBuilder::build`]). One owner for `check` and `build`.
fn unbuildable(defs: &Definitions, has_loader: impl Fn(&str) -> bool) -> Vec<LoadError> {
    let mut errors = Vec::new();
    for chain in defs.iter() {
        let def = chain.element();
        let callable = !chain.functions().is_empty();
        let ships_code = def.dir.is_some() && def.backend_bundle_entry.is_some();
        let is_type = !defs.is_instance(chain);
        if (defs.is_instance(chain) || callable) && !chain.names().any(&has_loader) {
            errors.push(no_loader(chain, callable));
        } else if ships_code && is_type && !has_loader(def.full_name.as_str()) {
            errors.push(code_not_in_host(chain));
        }
    }
    errors
}

fn no_loader(chain: &Chain, callable: bool) -> LoadError {
    let consequence = if callable {
        "every call of its functions would fail"
    } else {
        "it cannot be built"
    };
    let def = chain.element();
    // An element in an app's folder can bring its own code; say how.
    let own_code = if def.dir.is_some() {
        format!(
            "; give `{name}` code of its own: a native plugin library in its folder named by \
             its backendBundleEntry (`jit new service {name}` writes one to start from, see \
             {PLUGINS_GUIDE})",
            name = def.full_name
        )
    } else {
        String::new()
    };
    LoadError::new(
        LoadErrorKind::NoLoader,
        &def.source,
        format!(
            "no loader is registered for any element of its chain {chain} in this host, so \
             {consequence}; a Type written in Rust needs the host binary that registers its \
             loader (see {EXTENDING_GUIDE}){own_code}"
        ),
    )
}

fn code_not_in_host(chain: &Chain) -> LoadError {
    let def = chain.element();
    let entry = def.backend_bundle_entry.as_deref().unwrap_or_default();
    let behaviour = match chain.defs().get(1) {
        Some(parent) => format!(
            "with the behaviour of `{}` and none of its own",
            parent.full_name
        ),
        None => "without any of its code".to_owned(),
    };
    LoadError::new(
        LoadErrorKind::CodeNotInHost,
        &def.source,
        format!(
            "`{name}` says its backend code ships with it (backendBundleEntry {entry:?}), but \
             this host has no loader for `{name}`: its elements would run {behaviour}. \
             Serve it with a host binary that registers a Rust loader for `{name}`, or name a \
             native plugin library in backendBundleEntry, or remove backendBundleEntry if \
             `{name}` has no code of its own (see {EXTENDING_GUIDE})",
            name = def.full_name,
        ),
    )
    .at("backendBundleEntry")
}
