//! The running app: building elements through loaders, caching them, typed and dynamic access.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use include_dir::Dir;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::arguments::check_call;
use crate::chain::Chain;
use crate::definitions::{self, Definitions};
use crate::element_def::{BackendLoadTime, ElementDef};
use crate::error::{
    CallError, CallErrorKind, ElementError, GetError, LoadError, LoadErrorKind, LoadErrors,
    PlaceholderError,
};
use crate::name::FullName;
use crate::settings::AppSettings;

/// Who is calling and for which request; passed to every [`Element::call`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The host's request id, for logs.
    pub request_id: Option<String>,
    /// Who called; `None` is an anonymous caller, refused by `loginRequired` functions.
    pub principal: Option<String>,
    /// The network peer the request came from, when the host knows it: the source key
    /// for rate-limited refusal logs ([`crate::RefusalLogLimiter`]).
    pub peer: Option<std::net::IpAddr>,
}

impl CallContext {
    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A logged-in caller.
    pub fn principal(principal: impl Into<String>) -> Self {
        Self {
            principal: Some(principal.into()),
            ..Self::default()
        }
    }
}

/// A built element: what [`App::get_element`] hands out.
///
/// Elements that other code uses through a Rust trait list those traits with
/// [`crate::provide_interfaces!`] so that [`App::get`] can hand them out typed.
#[async_trait::async_trait]
pub trait Element: Send + Sync + 'static {
    /// The element's definition (`chain[0]`).
    fn def(&self) -> &Arc<ElementDef>;

    /// Dynamic call of a function declared in the chain's functionList. The runtime has
    /// already checked that the function is declared, the caller is allowed, and the
    /// argument names and types match the declaration.
    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        let _ = (args, cx);
        Err(CallError::new(
            CallErrorKind::FunctionNotFound,
            format!(
                "element `{}` does not implement function `{function}`",
                self.def().full_name
            ),
        ))
    }

    /// onLoad: runs once after the element is built, before any caller receives it. An
    /// error fails the build, which the next [`App::get_element`] tries again.
    ///
    /// An element that wraps another (see [`LoadContext::load_with_parent`]) receives the
    /// hooks in its place, and forwards them when the wrapped element needs them.
    async fn on_load(&self) -> Result<(), ElementError> {
        Ok(())
    }

    /// onCalled: runs each time [`App::get_element`] (and so [`App::get`] and
    /// [`App::call`]) hands the element out. It is on the lookup's fast path: keep it cheap.
    fn on_called(&self) {}

    /// onAppExit: runs once when the app stops ([`App::exit`]), for each element that was
    /// built, the most recently built first (so an element goes before those it used).
    async fn on_app_exit(&self) {}

    /// Typed access: returns `Some(Box::new(self as Arc<dyn Trait>))` when
    /// `iface == TypeId::of::<Arc<dyn Trait>>()`. Write it with
    /// [`crate::provide_interfaces!`]. The default provides only `Arc<Self>`.
    fn interface(self: Arc<Self>, iface: TypeId) -> Option<Box<dyn Any + Send + Sync>> {
        if iface == TypeId::of::<Arc<Self>>() {
            Some(Box::new(self))
        } else {
            None
        }
    }
}

/// Implements [`Element::interface`] for the listed trait objects (and the element's own
/// type), inside an `impl Element for ...` block:
///
/// ```
/// use std::sync::Arc;
/// use jit_runtime::{Element, ElementDef};
///
/// trait Pay: Send + Sync {
///     fn amount_fen(&self) -> i64;
/// }
///
/// struct MyPay {
///     def: Arc<ElementDef>,
/// }
///
/// impl Pay for MyPay {
///     fn amount_fen(&self) -> i64 {
///         9999
///     }
/// }
///
/// #[async_trait::async_trait]
/// impl Element for MyPay {
///     fn def(&self) -> &Arc<ElementDef> {
///         &self.def
///     }
///     jit_runtime::provide_interfaces!(dyn Pay);
/// }
/// ```
#[macro_export]
macro_rules! provide_interfaces {
    ($($iface:ty),* $(,)?) => {
        fn interface(
            self: ::std::sync::Arc<Self>,
            iface: ::std::any::TypeId,
        ) -> ::std::option::Option<::std::boxed::Box<dyn ::std::any::Any + ::std::marker::Send + ::std::marker::Sync>> {
            $(
                if iface == ::std::any::TypeId::of::<::std::sync::Arc<$iface>>() {
                    let typed: ::std::sync::Arc<$iface> = self;
                    return ::std::option::Option::Some(::std::boxed::Box::new(typed));
                }
            )*
            if iface == ::std::any::TypeId::of::<::std::sync::Arc<Self>>() {
                return ::std::option::Option::Some(::std::boxed::Box::new(self));
            }
            ::std::option::Option::None
        }
    };
}

/// Builds the elements of one Meta or Type (and everything below it on chains).
#[async_trait::async_trait]
pub trait Loader: Send + Sync + 'static {
    /// Builds `cx.def()`, the element at the head of `cx.chain()`.
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError>;
}

/// One step of an element's loader plan: a loader and the chain entry it belongs to.
struct PlanStep {
    chain_index: usize,
    def: Arc<ElementDef>,
    loader: Arc<dyn Loader>,
}

/// What a [`Loader`] gets: the app, the element's chain, and its own place on that chain.
pub struct LoadContext {
    app: App,
    chain: Chain,
    plan: Arc<[PlanStep]>,
    position: usize,
}

impl LoadContext {
    /// The app (for services and other elements; keep a [`WeakApp`] in the element).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The chain of the element being built.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The element being built (`chain[0]`).
    pub fn def(&self) -> &Arc<ElementDef> {
        self.chain.element()
    }

    /// Index in the chain of the entry whose loader is running.
    pub fn chain_index(&self) -> usize {
        self.plan[self.position].chain_index
    }

    /// The definition whose loader is running. For a loader that was shadowed by a later
    /// registration for the same fullName, this is the definition the shadowing one
    /// overrides (when the app overrides it), so each loader sees "its" definition.
    pub fn loader_def(&self) -> &Arc<ElementDef> {
        &self.plan[self.position].def
    }

    /// A shared service given to [`AppBuilder::provide`].
    pub fn service<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, ElementError> {
        self.app
            .service::<T>()
            .ok_or(ElementError::MissingService(std::any::type_name::<T>()))
    }

    /// Builds the element with the next loader further up the chain (the overridden
    /// registration of the same fullName, else the parent Type's, else the Meta's), so an
    /// extending or shadowing Type can wrap or delegate.
    pub async fn load_with_parent(&self) -> Result<Arc<dyn Element>, ElementError> {
        let next = self.position + 1;
        let Some(step) = self.plan.get(next) else {
            return Err(ElementError::NoParentLoader(
                self.loader_def().full_name.to_string(),
            ));
        };
        let cx = LoadContext {
            app: self.app.clone(),
            chain: self.chain.clone(),
            plan: self.plan.clone(),
            position: next,
        };
        step.loader.load(cx).await
    }
}

type Loaders = HashMap<String, Vec<Arc<dyn Loader>>>;

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
    pub fn loader(mut self, type_full_name: &str, loader: impl Loader) -> Self {
        self.loaders
            .entry(type_full_name.to_owned())
            .or_default()
            .push(Arc::new(loader));
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
        let mut slots = HashMap::with_capacity(defs.len());
        for chain in defs.iter() {
            let def = chain.element();
            let plan = plan_for(chain, &self.loaders);
            slots.insert(
                def.full_name.clone(),
                Slot {
                    chain: chain.clone(),
                    plan: plan.into(),
                    ready: OnceLock::new(),
                    building: Mutex::new(None),
                },
            );
        }
        let app = App(Arc::new(AppInner {
            defs,
            services: self.services,
            slots,
            attempts: AtomicU64::new(0),
            waits: Arc::new(Mutex::new(WaitGraph::default())),
            built: Mutex::new(Vec::new()),
            exited: std::sync::atomic::AtomicBool::new(false),
        }));
        app.build_elements(BackendLoadTime::AfterAppInit).await?;
        Ok(app)
    }
}

/// An instance sits at least two steps below its Meta (instance → Type → Meta) and is no
/// element's type; Types and Metas without instances need no loader.
fn is_instance(defs: &Definitions, chain: &Chain) -> bool {
    chain.len() >= 3 && !defs.is_used_as_type(chain.element().full_name.as_str())
}

/// Where a host finds out how to build an element that this one cannot.
const EXTENDING_GUIDE: &str = "docs/extending.md";

/// Every element of `defs` this host cannot build, given which fullNames have a loader
/// (the rules are listed on [`AppBuilder::build`]). One owner for `check` and `build`.
fn unbuildable(defs: &Definitions, has_loader: impl Fn(&str) -> bool) -> Vec<LoadError> {
    let mut errors = Vec::new();
    for chain in defs.iter() {
        let def = chain.element();
        let callable = !chain.functions().is_empty();
        let ships_code = def.dir.is_some() && def.backend_bundle_entry.is_some();
        let is_type = def.is_meta() || defs.is_used_as_type(def.full_name.as_str());
        if (is_instance(defs, chain) || callable) && !chain.names().any(&has_loader) {
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
    LoadError::new(
        LoadErrorKind::NoLoader,
        &chain.element().source,
        format!(
            "no loader is registered for any element of its chain {chain} in this host, so \
             {consequence}; a Type written in Rust needs the host binary that registers its \
             loader (see {EXTENDING_GUIDE})"
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

fn plan_for(chain: &Chain, loaders: &Loaders) -> Vec<PlanStep> {
    let mut plan = Vec::new();
    for (chain_index, def) in chain.iter().enumerate() {
        let Some(registered) = loaders.get(def.full_name.as_str()) else {
            continue;
        };
        let mut owner = def.clone();
        for loader in registered.iter().rev() {
            plan.push(PlanStep {
                chain_index,
                def: owner.clone(),
                loader: loader.clone(),
            });
            if let Some(lower) = &owner.overrides {
                owner = lower.clone();
            }
        }
    }
    plan
}

tokio::task_local! {
    /// The elements whose builds enclose the running code, outermost first.
    static BUILDING: Vec<FullName>;
}

type BuildFuture = Shared<BoxFuture<'static, Result<Arc<dyn Element>, GetError>>>;

struct Slot {
    chain: Chain,
    plan: Arc<[PlanStep]>,
    ready: OnceLock<Arc<dyn Element>>,
    /// The build in progress, shared by every caller waiting for it, tagged with its attempt.
    building: Mutex<Option<(u64, BuildFuture)>>,
}

struct AppInner {
    defs: Definitions,
    services: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    slots: HashMap<FullName, Slot>,
    attempts: AtomicU64,
    /// Which builds in progress wait for which, across tasks.
    waits: Arc<Mutex<WaitGraph>>,
    /// The built elements in the order they were built, for [`App::exit`].
    built: Mutex<Vec<Arc<dyn Element>>>,
    /// Set by the first [`App::exit`].
    exited: std::sync::atomic::AtomicBool,
}

/// Builds in progress that wait for other builds: `a → b` while a's loader awaits b.
///
/// The task-local [`BUILDING`] stack sees a cycle only when one chain of builds runs
/// inside one future. Two builds started by two tasks (a by one, b by the other) that
/// then ask for each other would each join the other's shared future and wait forever;
/// the graph sees that wait close a cycle and refuses it instead.
#[derive(Default)]
struct WaitGraph {
    edges: HashMap<FullName, Vec<FullName>>,
}

impl WaitGraph {
    /// The builds from `from` to `to` along waits, both ends included, if any.
    fn path(&self, from: &FullName, to: &FullName) -> Option<Vec<FullName>> {
        let mut parents: HashMap<&FullName, &FullName> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([from]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut path = vec![node.clone()];
                let mut at = node;
                while let Some(parent) = parents.get(at) {
                    path.push((*parent).clone());
                    at = parent;
                }
                path.reverse();
                return Some(path);
            }
            for next in self.edges.get(node).into_iter().flatten() {
                if next != from && !parents.contains_key(next) {
                    parents.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        None
    }

    fn remove(&mut self, waiter: &FullName, awaited: &FullName) {
        if let Some(awaited_by_waiter) = self.edges.get_mut(waiter) {
            if let Some(i) = awaited_by_waiter.iter().position(|n| n == awaited) {
                awaited_by_waiter.swap_remove(i);
            }
            if awaited_by_waiter.is_empty() {
                self.edges.remove(waiter);
            }
        }
    }
}

/// One wait recorded in the [`WaitGraph`], removed when the wait ends or is abandoned.
struct WaitEdge {
    graph: Arc<Mutex<WaitGraph>>,
    waiter: FullName,
    awaited: FullName,
}

impl Drop for WaitEdge {
    fn drop(&mut self) {
        self.graph.lock().remove(&self.waiter, &self.awaited);
    }
}

/// A loaded app. Cheap to clone (shared).
#[derive(Clone)]
pub struct App(Arc<AppInner>);

/// A non-owning handle to an [`App`], for elements that reach other elements (an element
/// holding an `App` would keep the app alive through its own cache).
#[derive(Clone)]
pub struct WeakApp(Weak<AppInner>);

impl WeakApp {
    /// The app, while it is alive.
    pub fn upgrade(&self) -> Option<App> {
        self.0.upgrade().map(App)
    }

    /// [`App::get_element`] through the weak handle.
    pub async fn get_element(&self, name: &str) -> Result<Arc<dyn Element>, GetError> {
        self.upgrade()
            .ok_or(GetError::AppGone)?
            .get_element(name)
            .await
    }

    /// [`App::get`] through the weak handle.
    pub async fn get<T: ?Sized + 'static>(&self, name: &str) -> Result<Arc<T>, GetError> {
        self.upgrade()
            .ok_or(GetError::AppGone)?
            .get::<T>(name)
            .await
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.0.defs.settings().name)
            .field("elements", &self.0.slots.len())
            .finish()
    }
}

impl App {
    /// The app's settings (app.toml).
    pub fn settings(&self) -> &AppSettings {
        self.0.defs.settings()
    }

    /// Every definition, resolved.
    pub fn definitions(&self) -> &Definitions {
        &self.0.defs
    }

    /// The chain of a visible element.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.0.slots.get(name).map(|slot| &slot.chain)
    }

    /// The element named `name` (exact fullName), built on first use by the nearest loader
    /// on its chain and cached. Concurrent callers share one build; a failed build is
    /// returned to every caller that waited for it and tried again on the next call.
    pub async fn get_element(&self, name: &str) -> Result<Arc<dyn Element>, GetError> {
        let Some(slot) = self.0.slots.get(name) else {
            return Err(self.not_found(name));
        };
        let element = match slot.ready.get() {
            Some(element) => element.clone(),
            None => self.build_slot(slot).await?,
        };
        element.on_called();
        Ok(element)
    }

    fn not_found(&self, name: &str) -> GetError {
        GetError::NotFound {
            name: name.to_owned(),
            suggestion: self.0.defs.suggest(name),
        }
    }

    async fn build_slot(&self, slot: &Slot) -> Result<Arc<dyn Element>, GetError> {
        // The builds this task is inside of (a loader asking for other elements).
        let outer: Vec<FullName> = BUILDING.try_with(Clone::clone).unwrap_or_default();
        let name = &slot.chain.element().full_name;
        if outer.contains(name) {
            let mut path: Vec<&str> = outer.iter().map(FullName::as_str).collect();
            path.push(name.as_str());
            return Err(GetError::BuildCycle {
                name: name.to_string(),
                path: path.join(" → "),
            });
        }
        let (attempt, build) = {
            let mut building = slot.building.lock();
            if let Some(element) = slot.ready.get() {
                return Ok(element.clone());
            }
            match &*building {
                Some((attempt, build)) => (*attempt, build.clone()),
                None => {
                    let attempt = self.0.attempts.fetch_add(1, Ordering::Relaxed);
                    let mut inside = outer.clone();
                    inside.push(name.clone());
                    let build = BUILDING
                        .scope(
                            inside,
                            construct(self.downgrade(), slot.chain.clone(), slot.plan.clone()),
                        )
                        .boxed()
                        .shared();
                    *building = Some((attempt, build.clone()));
                    (attempt, build)
                }
            }
        };
        // Inside another build, this one now waits for `name`: unless `name` (through
        // the builds it waits for) already waits for this one.
        let _edge = match outer.last() {
            Some(waiter) => Some(self.record_wait(waiter, name, &outer)?),
            None => None,
        };
        let result = build.await;
        let mut building = slot.building.lock();
        if let Ok(element) = &result {
            // Set before the in-progress build is cleared, so no caller starts another.
            if slot.ready.set(element.clone()).is_ok() {
                self.0.built.lock().push(element.clone());
            }
        }
        if building
            .as_ref()
            .is_some_and(|(current, _)| *current == attempt)
        {
            *building = None;
        }
        drop(building);
        result
    }

    /// Records that the build of `waiter` (innermost of `outer`) waits for `awaited`, or
    /// refuses the wait when `awaited` already waits, directly or not, for `waiter`.
    fn record_wait(
        &self,
        waiter: &FullName,
        awaited: &FullName,
        outer: &[FullName],
    ) -> Result<WaitEdge, GetError> {
        let mut graph = self.0.waits.lock();
        if let Some(back) = graph.path(awaited, waiter) {
            let path: Vec<&str> = outer.iter().chain(&back).map(FullName::as_str).collect();
            return Err(GetError::BuildCycle {
                name: awaited.to_string(),
                path: path.join(" → "),
            });
        }
        graph
            .edges
            .entry(waiter.clone())
            .or_default()
            .push(awaited.clone());
        Ok(WaitEdge {
            graph: self.0.waits.clone(),
            waiter: waiter.clone(),
            awaited: awaited.clone(),
        })
    }

    /// The element named `name` as the Rust type `T` (typically a trait object such as
    /// `dyn Pay`, listed by the element with [`crate::provide_interfaces!`]).
    pub async fn get<T: ?Sized + 'static>(&self, name: &str) -> Result<Arc<T>, GetError> {
        let element = self.get_element(name).await?;
        let wrong_kind = || GetError::WrongKind {
            name: name.to_owned(),
            expected: std::any::type_name::<T>(),
        };
        let provided: Box<dyn Any + Send + Sync> =
            if TypeId::of::<T>() == TypeId::of::<dyn Element>() {
                Box::new(element)
            } else {
                element
                    .interface(TypeId::of::<Arc<T>>())
                    .ok_or_else(wrong_kind)?
            };
        provided
            .downcast::<Arc<T>>()
            .map(|typed| *typed)
            .map_err(|_| wrong_kind())
    }

    /// Calls `function` on element `name`: the function must be declared on the chain
    /// (nearest declaration wins), a `loginRequired` function needs a principal, and the
    /// arguments (a JSON object, or null for none) must match the declared names and types.
    pub async fn call(
        &self,
        name: &str,
        function: &str,
        args: Value,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        let Some(slot) = self.0.slots.get(name) else {
            // No suggestion here: names come from requests, and a miss must stay cheap.
            return Err(CallError::new(
                CallErrorKind::NotFound,
                format!("no element `{name}`"),
            ));
        };
        let args = check_call(&slot.chain, function, args, cx)?;
        let element = self.get_element(name).await?;
        element.call(function, args, cx).await
    }

    /// Stops the app's elements: runs [`Element::on_app_exit`] once for each element built
    /// so far, the most recently built first. Later calls do nothing. A host calls it when
    /// it has stopped taking requests (`jit serve` does, after its last request).
    pub async fn exit(&self) {
        if self.0.exited.swap(true, Ordering::AcqRel) {
            return;
        }
        let built = std::mem::take(&mut *self.0.built.lock());
        for element in built.iter().rev() {
            tracing::debug!(element = %element.def().full_name, "element exiting");
            element.on_app_exit().await;
        }
    }

    /// Every visible element whose chain contains `type_name` (other than itself), sorted
    /// by fullName.
    pub fn find_elements(&self, type_name: &str) -> Vec<&Arc<ElementDef>> {
        self.0.defs.find_elements(type_name)
    }

    /// A service given to [`AppBuilder::provide`].
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0
            .services
            .get(&TypeId::of::<T>())
            .and_then(|service| service.clone().downcast::<T>().ok())
    }

    /// A weak handle, for elements.
    pub fn downgrade(&self) -> WeakApp {
        WeakApp(Arc::downgrade(&self.0))
    }

    /// Fills `{{VAR}}` placeholders (process environment, then [`AppBuilder::env`], then
    /// app.toml `[env]`); the error names the variable and `source`.
    pub fn fill_placeholders(&self, text: &str, source: &Path) -> Result<String, PlaceholderError> {
        self.0.defs.fill_placeholders(text, source)
    }

    /// Builds every element marked with `load_time` (the runtime does `afterAppInit` in
    /// [`AppBuilder::build`]; a host calls this with `beforeHandleRequest` before serving).
    pub async fn build_elements(&self, load_time: BackendLoadTime) -> Result<(), LoadErrors> {
        let mut errors = Vec::new();
        for chain in self.0.defs.iter() {
            let def = chain.element();
            if def.backend_load_time == Some(load_time)
                && let Err(e) = self.get_element(def.full_name.as_str()).await
            {
                errors.push(LoadError::new(
                    LoadErrorKind::Build,
                    &def.source,
                    e.to_string(),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LoadErrors(errors))
        }
    }
}

async fn construct(
    app: WeakApp,
    chain: Chain,
    plan: Arc<[PlanStep]>,
) -> Result<Arc<dyn Element>, GetError> {
    let app = app.upgrade().ok_or(GetError::AppGone)?;
    let name = chain.element().full_name.to_string();
    let Some(first) = plan.first() else {
        return Err(GetError::NoLoader {
            name,
            chain: chain.to_string(),
        });
    };
    let loader = first.loader.clone();
    let cx = LoadContext {
        app,
        chain,
        plan,
        position: 0,
    };
    tracing::debug!(element = %name, "building element");
    let loaded = match loader.load(cx).await {
        Ok(element) => element.on_load().await.map(|()| element),
        Err(error) => Err(error),
    };
    match loaded {
        Ok(element) => Ok(element),
        Err(error) => {
            // Loader errors carry no secret values (see ElementError), so they can be logged.
            tracing::warn!(element = %name, %error, "building element failed");
            Err(GetError::Build {
                name,
                source: Arc::new(error),
            })
        }
    }
}
