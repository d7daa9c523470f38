//! The running app: hands out elements (each built once, on first use, by its loader
//! plan, with concurrent callers sharing one build and build cycles refused; `cacheLevel:
//! 1` elements built per request), typed and dynamic access, services, and the app's exit.
//!
//! An app lives in generations ([`crate::generations`] owns replacing one): an [`App`] is
//! one generation, pinned (a request holds one from its start to its end), while a
//! [`WeakApp`] or a [`LiveApp`] reaches whichever generation is current.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use serde_json::Value;

#[cfg(doc)]
use crate::AppBuilder;
use crate::arguments::check_call;
use crate::call_context::CallContext;
use crate::chain::Chain;
use crate::definitions::Definitions;
use crate::element::Element;
use crate::element_def::{BackendLoadTime, CacheLevel, ElementDef};
use crate::error::{
    CallError, CallErrorKind, GetError, LoadError, LoadErrorKind, LoadErrors, PlaceholderError,
};
use crate::generations::Live;
use crate::loader::{Loaders, PlanStep, construct, plan_for};
use crate::name::FullName;
use crate::selector::{Selector, SelectorError};
use crate::settings::AppSettings;
use crate::wait_graph::{WaitGraph, record_wait};

tokio::task_local! {
    /// The elements whose builds enclose the running code, outermost first.
    static BUILDING: Vec<FullName>;
}

type BuildFuture = Shared<BoxFuture<'static, Result<Arc<dyn Element>, GetError>>>;

/// The services given to [`AppBuilder::provide`], by type.
pub(crate) type Services = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// One visible element: its chain, its loaders, and the element once built.
pub(crate) struct Slot {
    pub(crate) chain: Chain,
    pub(crate) plan: Arc<[PlanStep]>,
    pub(crate) ready: OnceLock<Arc<dyn Element>>,
    /// The build in progress, shared by every caller waiting for it.
    building: Mutex<Option<BuildInProgress>>,
}

impl Slot {
    pub(crate) fn new(chain: Chain, plan: Arc<[PlanStep]>) -> Self {
        Self {
            chain,
            plan,
            ready: OnceLock::new(),
            building: Mutex::new(None),
        }
    }
}

/// A build of one element that callers can join.
struct BuildInProgress {
    /// Which attempt this is, so a caller clears only the build it waited for.
    attempt: u64,
    future: BuildFuture,
}

/// The elements a generation built (or carried over), in the order they were built:
/// shared with its retirement, which stops those no later generation kept.
pub(crate) type Built = Arc<Mutex<Vec<Arc<dyn Element>>>>;

/// One generation of an app: the definitions it was built from and its elements.
pub(crate) struct Generation {
    /// 1 for the first build, then one more per generation built beside it.
    pub(crate) id: u64,
    pub(crate) defs: Definitions,
    pub(crate) services: Services,
    pub(crate) slots: HashMap<FullName, Slot>,
    attempts: AtomicU64,
    /// Which builds in progress wait for which, across tasks.
    waits: Arc<Mutex<WaitGraph>>,
    pub(crate) built: Built,
    /// Closed when the generation is dropped (its last holder, such as the last request
    /// pinned to it, is done): its retirement waits for that.
    pub(crate) dropped: tokio::sync::watch::Sender<()>,
}

impl Generation {
    pub(crate) fn new(
        id: u64,
        defs: Definitions,
        services: Services,
        slots: HashMap<FullName, Slot>,
        built: Vec<Arc<dyn Element>>,
    ) -> Self {
        Self {
            id,
            defs,
            services,
            slots,
            attempts: AtomicU64::new(0),
            waits: Arc::new(Mutex::new(WaitGraph::default())),
            built: Arc::new(Mutex::new(built)),
            dropped: tokio::sync::watch::channel(()).0,
        }
    }
}

/// One generation of a loaded app, pinned: everything it answers comes from that
/// generation, also after a newer one replaced it (a request started on it finishes on
/// it). Cheap to clone (shared).
#[derive(Clone)]
pub struct App {
    pub(crate) generation: Arc<Generation>,
    pub(crate) live: Arc<Live>,
}

/// A handle on an app across its generations: [`LiveApp::current`] is always the
/// generation being served. What a server keeps to pin a generation per request.
#[derive(Clone)]
pub struct LiveApp(pub(crate) Arc<Live>);

/// A non-owning handle to an app, for elements and background work that reach other
/// elements (an element holding an `App` would keep the app alive through its own cache).
/// [`WeakApp::upgrade`] gives the generation current at that moment, so a task that
/// upgrades on every pass sees each new generation.
#[derive(Clone)]
pub struct WeakApp(pub(crate) Weak<Live>);

/// A generation held weakly by its own builds (a shared build future is stored in the
/// generation's slot, so it must not own the generation).
pub(crate) struct WeakGeneration {
    generation: Weak<Generation>,
    live: Weak<Live>,
}

impl WeakGeneration {
    pub(crate) fn upgrade(&self) -> Option<App> {
        Some(App {
            generation: self.generation.upgrade()?,
            live: self.live.upgrade()?,
        })
    }
}

impl WeakApp {
    /// The app's current generation, while the app is alive.
    pub fn upgrade(&self) -> Option<App> {
        self.0.upgrade().map(|live| LiveApp(live).current())
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

impl LiveApp {
    /// The generation being served now, pinned.
    pub fn current(&self) -> App {
        App {
            generation: self.0.current(),
            live: self.0.clone(),
        }
    }

    /// A weak handle, for elements and background work.
    pub fn downgrade(&self) -> WeakApp {
        WeakApp(Arc::downgrade(&self.0))
    }

    /// A service given to [`AppBuilder::provide`], from the current generation.
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.current().service::<T>()
    }

    /// [`App::exit`].
    pub async fn exit(&self) {
        self.0.exit().await;
    }
}

impl std::fmt::Debug for LiveApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveApp").field(&self.current()).finish()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.generation.defs.settings().name)
            .field("generation", &self.generation.id)
            .field("elements", &self.generation.slots.len())
            .finish()
    }
}

impl App {
    /// The first generation of an app of `defs` whose elements will be built by
    /// `loaders`; nothing is built yet.
    pub(crate) fn new(defs: Definitions, services: Services, loaders: &Loaders) -> Self {
        let mut slots = HashMap::with_capacity(defs.len());
        for chain in defs.iter() {
            slots.insert(
                chain.element().full_name.clone(),
                Slot::new(chain.clone(), plan_for(chain, loaders).into()),
            );
        }
        let generation = Arc::new(Generation::new(1, defs, services, slots, Vec::new()));
        App {
            live: Arc::new(Live::new(generation.clone())),
            generation,
        }
    }

    /// Which generation this is: 1 for the first build, one more for each generation
    /// built beside it ([`AppBuilder::build_next`]).
    pub fn generation(&self) -> u64 {
        self.generation.id
    }

    /// The app across generations: what a host keeps to serve whichever is current.
    pub fn live(&self) -> LiveApp {
        LiveApp(self.live.clone())
    }

    /// The generation current now (this one, unless a newer one replaced it).
    pub fn current(&self) -> App {
        self.live().current()
    }

    /// Whether this generation is the one being served.
    pub fn is_current(&self) -> bool {
        self.live.current().id == self.generation.id
    }

    /// The app's settings (app.toml).
    pub fn settings(&self) -> &AppSettings {
        self.generation.defs.settings()
    }

    /// Every definition, resolved.
    pub fn definitions(&self) -> &Definitions {
        &self.generation.defs
    }

    /// The chain of a visible element.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.generation.slots.get(name).map(|slot| &slot.chain)
    }

    /// The element named `name` (exact fullName), built on first use by the nearest loader
    /// on its chain and cached. Concurrent callers share one build; a failed build is
    /// returned to every caller that waited for it and tried again on the next call.
    ///
    /// An element with `cacheLevel: 1` is built afresh on every call here (there is no
    /// request to share it with): callers inside a request use
    /// [`App::get_element_in`].
    pub async fn get_element(&self, name: &str) -> Result<Arc<dyn Element>, GetError> {
        self.get_element_with(name, None).await
    }

    /// [`App::get_element`] for a caller inside the request `cx`: an element with
    /// `cacheLevel: 1` is built once for that request (from the cached definition) and
    /// shared by every call the request makes.
    pub async fn get_element_in(
        &self,
        name: &str,
        cx: &CallContext,
    ) -> Result<Arc<dyn Element>, GetError> {
        self.get_element_with(name, Some(cx)).await
    }

    async fn get_element_with(
        &self,
        name: &str,
        cx: Option<&CallContext>,
    ) -> Result<Arc<dyn Element>, GetError> {
        let Some(slot) = self.generation.slots.get(name) else {
            return Err(self.not_found(name));
        };
        let element = match slot.chain.cache_level() {
            CacheLevel::Process => match slot.ready.get() {
                Some(element) => element.clone(),
                None => self.build_slot(slot).await?,
            },
            CacheLevel::Request => self.build_for_request(slot, cx).await?,
        };
        element.on_called();
        Ok(element)
    }

    fn not_found(&self, name: &str) -> GetError {
        GetError::NotFound {
            name: name.to_owned(),
            suggestion: self.generation.defs.suggest(name),
        }
    }

    fn downgrade_generation(&self) -> WeakGeneration {
        WeakGeneration {
            generation: Arc::downgrade(&self.generation),
            live: Arc::downgrade(&self.live),
        }
    }

    /// The builds this task is inside of (a loader asking for other elements), or the
    /// cycle `name` would close.
    fn enclosing_builds(name: &FullName) -> Result<Vec<FullName>, GetError> {
        let outer: Vec<FullName> = BUILDING.try_with(Clone::clone).unwrap_or_default();
        if outer.contains(name) {
            let mut path: Vec<&str> = outer.iter().map(FullName::as_str).collect();
            path.push(name.as_str());
            return Err(GetError::BuildCycle {
                name: name.to_string(),
                path: path.join(" → "),
            });
        }
        Ok(outer)
    }

    /// A `cacheLevel: 1` element: the request's own instance, built on its first use in
    /// the request. It is not kept by the app, so no `onAppExit` runs for it.
    async fn build_for_request(
        &self,
        slot: &Slot,
        cx: Option<&CallContext>,
    ) -> Result<Arc<dyn Element>, GetError> {
        let name = &slot.chain.element().full_name;
        if let Some(element) = cx.and_then(|cx| cx.elements.get(name.as_str())) {
            return Ok(element);
        }
        let outer = Self::enclosing_builds(name)?;
        let element = self.construct_inside(slot, outer).await?;
        Ok(match cx {
            Some(cx) => cx.elements.keep(name.as_str(), element),
            None => element,
        })
    }

    /// Builds `slot`'s element with its loader plan, as a build enclosed by `outer` (the
    /// builds the calling task is inside of), so that a loader asking for an element whose
    /// build encloses it is told of the cycle.
    fn construct_inside(
        &self,
        slot: &Slot,
        mut outer: Vec<FullName>,
    ) -> impl std::future::Future<Output = Result<Arc<dyn Element>, GetError>> + Send + 'static
    {
        outer.push(slot.chain.element().full_name.clone());
        BUILDING.scope(
            outer,
            construct(
                self.downgrade_generation(),
                slot.chain.clone(),
                slot.plan.clone(),
            ),
        )
    }

    async fn build_slot(&self, slot: &Slot) -> Result<Arc<dyn Element>, GetError> {
        let name = &slot.chain.element().full_name;
        let outer = Self::enclosing_builds(name)?;
        let (attempt, build) = {
            let mut building = slot.building.lock();
            if let Some(element) = slot.ready.get() {
                return Ok(element.clone());
            }
            match &*building {
                Some(current) => (current.attempt, current.future.clone()),
                None => {
                    let attempt = self.generation.attempts.fetch_add(1, Ordering::Relaxed);
                    let build = self.construct_inside(slot, outer.clone()).boxed().shared();
                    *building = Some(BuildInProgress {
                        attempt,
                        future: build.clone(),
                    });
                    (attempt, build)
                }
            }
        };
        // Inside another build, this one now waits for `name`: unless `name` (through
        // the builds it waits for) already waits for this one.
        let _edge = match outer.last() {
            Some(waiter) => Some(record_wait(&self.generation.waits, waiter, name, &outer)?),
            None => None,
        };
        let result = build.await;
        let mut building = slot.building.lock();
        if let Ok(element) = &result {
            // Set before the in-progress build is cleared, so no caller starts another.
            if slot.ready.set(element.clone()).is_ok() {
                self.generation.built.lock().push(element.clone());
            }
        }
        if building
            .as_ref()
            .is_some_and(|current| current.attempt == attempt)
        {
            *building = None;
        }
        drop(building);
        result
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
    /// A `cacheLevel: 1` element is the one built for `cx`'s request.
    pub async fn call(
        &self,
        name: &str,
        function: &str,
        args: Value,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        let Some(slot) = self.generation.slots.get(name) else {
            // No suggestion here: names come from requests, and a miss must stay cheap.
            return Err(CallError::new(
                CallErrorKind::NotFound,
                format!("no element `{name}`"),
            ));
        };
        let args = check_call(&slot.chain, function, args, cx)?;
        let element = self.get_element_in(name, cx).await?;
        element.call(function, args, cx).await
    }

    /// Stops the app's elements: runs [`Element::on_app_exit`] once for each element built
    /// so far by any generation not yet retired, the most recently built first. Later
    /// calls do nothing, and no generation replaces this one afterwards. A host calls it
    /// when it has stopped taking requests (`jit serve` does, after its last request).
    pub async fn exit(&self) {
        self.live.exit().await;
    }

    /// JitAi's `findElements`: every element the app lists that the selector `selector`
    /// matches, sorted by fullName ([`crate::selector`] describes the language:
    /// `.pays.WechatPayType` for every element of that Type, `pays.*`, `[mchId=1000]`, ...).
    pub fn find_elements(&self, selector: &str) -> Result<Vec<Arc<ElementDef>>, SelectorError> {
        let selector = Selector::parse(selector)?;
        Ok(self
            .generation
            .defs
            .select(&selector)
            .into_iter()
            .map(|chain| chain.element().clone())
            .collect())
    }

    /// A service given to [`AppBuilder::provide`].
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.generation
            .services
            .get(&TypeId::of::<T>())
            .and_then(|service| service.clone().downcast::<T>().ok())
    }

    /// A weak handle, for elements: it reaches the current generation, not this one.
    pub fn downgrade(&self) -> WeakApp {
        WeakApp(Arc::downgrade(&self.live))
    }

    /// Fills `{{VAR}}` placeholders (process environment, then [`AppBuilder::env`], then
    /// app.toml `[env]`); the error names the variable and `source`.
    pub fn fill_placeholders(&self, text: &str, source: &Path) -> Result<String, PlaceholderError> {
        self.generation.defs.fill_placeholders(text, source)
    }

    /// Builds every element marked with `load_time` (the runtime does `afterAppInit` in
    /// [`AppBuilder::build`]; a host calls this with `beforeHandleRequest` before serving).
    /// `cacheLevel: 1` elements are built per request, never ahead.
    pub async fn build_elements(&self, load_time: BackendLoadTime) -> Result<(), LoadErrors> {
        let mut errors = Vec::new();
        for chain in self.generation.defs.iter() {
            let def = chain.element();
            if def.backend_load_time == Some(load_time)
                && chain.cache_level() == CacheLevel::Process
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
