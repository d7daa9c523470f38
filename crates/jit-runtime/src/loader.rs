//! Building one element: the [`Loader`] trait a Meta or Type registers, the plan of
//! loaders along an element's chain, and the [`LoadContext`] a loader receives (which
//! can hand the build on to the next loader up the chain).

use std::collections::HashMap;
use std::sync::Arc;

#[cfg(doc)]
use crate::AppBuilder;
use crate::app::{App, WeakGeneration};
use crate::chain::Chain;
use crate::element::Element;
use crate::element_def::ElementDef;
use crate::error::{ElementError, GetError};

/// Builds the elements of one Meta or Type (and everything below it on chains).
#[async_trait::async_trait]
pub trait Loader: Send + Sync + 'static {
    /// Builds `cx.def()`, the element at the head of `cx.chain()`.
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError>;
}

/// One step of an element's loader plan: a loader and the chain entry it belongs to.
pub(crate) struct PlanStep {
    chain_index: usize,
    def: Arc<ElementDef>,
    loader: Arc<dyn Loader>,
}

/// What a [`Loader`] gets: the app, the element's chain, and its own place on that chain.
pub struct LoadContext {
    app: App,
    chain: Chain,
    plan: Arc<[PlanStep]>,
    /// The plan step whose loader is running.
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

/// The loaders registered per Meta or Type fullName, oldest first.
pub(crate) type Loaders = HashMap<String, Vec<Arc<dyn Loader>>>;

/// `loader` shared: a loader without state (a zero-sized type) is one shared value per
/// type for the whole process, so two builders registering `MyLoader` register the same
/// loader and a reload can tell an element's loader plan did not change
/// ([`crate::AppBuilder::build_next`]). A loader with state is its own value.
pub(crate) fn shared<L: Loader>(loader: L) -> Arc<dyn Loader> {
    use std::any::TypeId;
    use std::sync::OnceLock;

    use parking_lot::Mutex;

    static STATELESS: OnceLock<Mutex<HashMap<TypeId, Arc<dyn Loader>>>> = OnceLock::new();
    if std::mem::size_of::<L>() != 0 {
        return Arc::new(loader);
    }
    STATELESS
        .get_or_init(Default::default)
        .lock()
        .entry(TypeId::of::<L>())
        .or_insert_with(|| Arc::new(loader))
        .clone()
}

/// Whether two loader plans build the same way: the same loaders (the same shared
/// values, `Arc::ptr_eq`) for the same chain entries and definitions, in the same order.
pub(crate) fn same_plan(a: &[PlanStep], b: &[PlanStep]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.chain_index == b.chain_index
                && Arc::ptr_eq(&a.loader, &b.loader)
                && (Arc::ptr_eq(&a.def, &b.def) || a.def.same_definition(&b.def))
        })
}

/// The loaders that can build the element at the head of `chain`, nearest first: for
/// each chain entry, its registrations newest first, each paired with the definition it
/// was registered for (a shadowed registration gets the definition the app overrides).
pub(crate) fn plan_for(chain: &Chain, loaders: &Loaders) -> Vec<PlanStep> {
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

/// Builds the element at the head of `chain` with the first loader of its `plan`, then
/// runs its `on_load`. Failures are logged (they carry no secret) and returned.
pub(crate) async fn construct(
    app: WeakGeneration,
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
