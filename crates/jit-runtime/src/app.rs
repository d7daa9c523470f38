//! The running app: hands out elements (each built once, on first use, by its loader
//! plan, with concurrent callers sharing one build and build cycles refused), typed and
//! dynamic access, services, and the app's exit.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use crate::element_def::{BackendLoadTime, ElementDef};
use crate::error::{
    CallError, CallErrorKind, GetError, LoadError, LoadErrorKind, LoadErrors, PlaceholderError,
};
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

/// One visible element: its chain, its loaders, and the element once built.
struct Slot {
    chain: Chain,
    plan: Arc<[PlanStep]>,
    ready: OnceLock<Arc<dyn Element>>,
    /// The build in progress, shared by every caller waiting for it.
    building: Mutex<Option<BuildInProgress>>,
}

/// A build of one element that callers can join.
struct BuildInProgress {
    /// Which attempt this is, so a caller clears only the build it waited for.
    attempt: u64,
    future: BuildFuture,
}

/// What an [`App`] and its [`WeakApp`]s share.
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
    exited: AtomicBool,
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
    /// An app of `defs` whose elements will be built by `loaders`; nothing is built yet.
    pub(crate) fn new(
        defs: Definitions,
        services: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
        loaders: &Loaders,
    ) -> Self {
        let mut slots = HashMap::with_capacity(defs.len());
        for chain in defs.iter() {
            slots.insert(
                chain.element().full_name.clone(),
                Slot {
                    chain: chain.clone(),
                    plan: plan_for(chain, loaders).into(),
                    ready: OnceLock::new(),
                    building: Mutex::new(None),
                },
            );
        }
        App(Arc::new(AppInner {
            defs,
            services,
            slots,
            attempts: AtomicU64::new(0),
            waits: Arc::new(Mutex::new(WaitGraph::default())),
            built: Mutex::new(Vec::new()),
            exited: AtomicBool::new(false),
        }))
    }

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
                Some(current) => (current.attempt, current.future.clone()),
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
            Some(waiter) => Some(record_wait(&self.0.waits, waiter, name, &outer)?),
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

    /// JitAi's `findElements`: every element the app lists that the selector `selector`
    /// matches, sorted by fullName ([`crate::selector`] describes the language:
    /// `.pays.WechatPayType` for every element of that Type, `pays.*`, `[mchId=1000]`, ...).
    pub fn find_elements(&self, selector: &str) -> Result<Vec<Arc<ElementDef>>, SelectorError> {
        let selector = Selector::parse(selector)?;
        Ok(self
            .0
            .defs
            .select(&selector)
            .into_iter()
            .map(|chain| chain.element().clone())
            .collect())
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
