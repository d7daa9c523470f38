//! Replacing a running app by a newer generation, and retiring the old one.
//!
//! The live cell ([`Live`]) holds the generation being served. A newer generation is built
//! beside it from fresh definitions ([`crate::AppBuilder::build_next`]), carrying over the
//! built element of every element whose whole chain of definitions and loader plan did
//! not change, then swapped in at once ([`NextGeneration::make_current`]). Requests
//! already running keep the generation they pinned; new ones get the new one. The old
//! generation is retired after its last holder lets go (or after a grace period): its
//! elements that no later generation kept get their `onAppExit`, each exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::app::{App, Built, Generation, Services, Slot};
use crate::definitions::Definitions;
use crate::element::Element;
use crate::loader::{Loaders, PlanStep, plan_for, same_plan};
use crate::name::FullName;

/// The app across its generations: which one is served, which are retiring.
pub(crate) struct Live {
    current: RwLock<Arc<Generation>>,
    /// Replaced generations not yet retired: their elements may still be in use by a
    /// request pinned to them.
    retiring: Mutex<Vec<Retiring>>,
    /// Set by the first [`crate::App::exit`]: no generation replaces the current one after.
    exited: AtomicBool,
    /// The id the next generation built beside the current one gets.
    next_id: AtomicU64,
}

/// A replaced generation waiting to be retired.
struct Retiring {
    id: u64,
    built: Built,
}

/// The identity of a built element, for "is it the same instance".
fn identity(element: &Arc<dyn Element>) -> usize {
    Arc::as_ptr(element) as *const () as usize
}

impl Live {
    pub(crate) fn new(first: Arc<Generation>) -> Self {
        Self {
            next_id: AtomicU64::new(first.id + 1),
            current: RwLock::new(first),
            retiring: Mutex::new(Vec::new()),
            exited: AtomicBool::new(false),
        }
    }

    /// The generation being served.
    pub(crate) fn current(&self) -> Arc<Generation> {
        self.current.read().clone()
    }

    /// Runs `onAppExit` once for every element of the current generation and of those
    /// still retiring, the most recently built first; later calls do nothing.
    pub(crate) async fn exit(&self) {
        if self.exited.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut elements: Vec<Arc<dyn Element>> = Vec::new();
        for retiring in std::mem::take(&mut *self.retiring.lock()) {
            elements.append(&mut *retiring.built.lock());
        }
        elements.append(&mut *self.current().built.lock());
        let mut seen = HashSet::new();
        // An element carried over sits in several generations' lists: stopped once, at
        // the place it was first built.
        elements.retain(|element| seen.insert(identity(element)));
        for element in elements.iter().rev() {
            tracing::debug!(element = %element.def().full_name, "element exiting");
            element.on_app_exit().await;
        }
    }

    /// The elements of every generation still in use (`current` and `retiring`), by
    /// identity. (`current` is read before `retiring` is locked: `make_current` takes the
    /// two locks in that order.)
    fn in_use(current: &Generation, retiring: &[Retiring]) -> HashSet<usize> {
        let mut in_use: HashSet<usize> = current.built.lock().iter().map(identity).collect();
        for generation in retiring {
            in_use.extend(generation.built.lock().iter().map(identity));
        }
        in_use
    }

    /// Retires generation `id`: stops its elements that no generation still in use holds.
    async fn retire(&self, id: u64) {
        let current = self.current();
        let stopping: Vec<Arc<dyn Element>> = {
            let mut retiring = self.retiring.lock();
            let Some(position) = retiring.iter().position(|r| r.id == id) else {
                return;
            };
            let retired = retiring.swap_remove(position);
            if self.exited.load(Ordering::Acquire) {
                return;
            }
            let in_use = Self::in_use(&current, &retiring);
            let built = std::mem::take(&mut *retired.built.lock());
            built
                .into_iter()
                .filter(|element| !in_use.contains(&identity(element)))
                .collect()
        };
        tracing::info!(
            generation = id,
            stopped = stopping.len(),
            "app generation retired"
        );
        for element in stopping.iter().rev() {
            tracing::debug!(element = %element.def().full_name, "element exiting");
            element.on_app_exit().await;
        }
    }
}

/// What a new generation changes, by fullName (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerationChanges {
    /// Elements the running generation does not have.
    pub added: Vec<String>,
    /// Elements of the running generation that are gone.
    pub removed: Vec<String>,
    /// Elements in both whose chain of definitions or loader plan changed: built afresh
    /// on first use (or at start, for `afterAppInit`).
    pub changed: Vec<String>,
    /// Elements in both, unchanged, whose built instance (and so its caches) is carried over.
    pub kept: Vec<String>,
}

impl GenerationChanges {
    /// Whether no element was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Why a generation could not be made current.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    /// The app was stopped ([`crate::App::exit`]) after the generation was built.
    #[error("the app has stopped; generation {0} is not served")]
    Exited(u64),
    /// Another generation replaced the one this was built beside.
    #[error(
        "generation {next} was built beside generation {based_on}, but generation {current} is served now; build again"
    )]
    Stale {
        /// The generation built.
        next: u64,
        /// The generation it was built beside.
        based_on: u64,
        /// The generation served now.
        current: u64,
    },
}

/// A generation built beside the running one, not served yet: make it current, or
/// abandon it.
#[must_use = "a next generation is served only once made current"]
pub struct NextGeneration {
    /// The new generation (its `afterAppInit` elements built). A host builds what else it
    /// needs before serving (`beforeHandleRequest`) through it.
    pub app: App,
    /// What it changes compared with the generation it was built beside.
    pub changes: GenerationChanges,
    based_on: u64,
}

impl NextGeneration {
    /// Serves this generation from now on: new requests (and every [`crate::WeakApp`])
    /// get it, requests already running finish on the old one. The old generation is
    /// retired once nothing holds it any more, or after `grace` at the latest: its
    /// elements not carried over get their `onAppExit` then. Call it inside a Tokio
    /// runtime (the retirement waits on a task).
    pub fn make_current(self, grace: Duration) -> Result<GenerationChanges, ReplaceError> {
        let live = self.app.live.clone();
        let old = {
            let mut current = live.current.write();
            if live.exited.load(Ordering::Acquire) {
                return Err(ReplaceError::Exited(self.app.generation.id));
            }
            if current.id != self.based_on {
                return Err(ReplaceError::Stale {
                    next: self.app.generation.id,
                    based_on: self.based_on,
                    current: current.id,
                });
            }
            let old = std::mem::replace(&mut *current, self.app.generation.clone());
            live.retiring.lock().push(Retiring {
                id: old.id,
                built: old.built.clone(),
            });
            old
        };
        let mut dropped = old.dropped.subscribe();
        let old_id = old.id;
        drop(old);
        tracing::info!(
            generation = self.app.generation.id,
            replaced = old_id,
            "app generation is current"
        );
        let weak = Arc::downgrade(&live);
        drop(live);
        tokio::spawn(async move {
            // `changed` ends with an error once the generation is dropped; nothing sends.
            let _ = tokio::time::timeout(grace, dropped.changed()).await;
            if let Some(live) = weak.upgrade() {
                live.retire(old_id).await;
            }
        });
        Ok(self.changes)
    }

    /// Drops this generation without serving it: its own elements (those not carried
    /// over from a generation in use) get their `onAppExit`.
    pub async fn abandon(self) {
        let live = self.app.live.clone();
        let current = live.current();
        let stopping: Vec<Arc<dyn Element>> = {
            let retiring = live.retiring.lock();
            let in_use = Live::in_use(&current, &retiring);
            let built = std::mem::take(&mut *self.app.generation.built.lock());
            built
                .into_iter()
                .filter(|element| !in_use.contains(&identity(element)))
                .collect()
        };
        for element in stopping.iter().rev() {
            element.on_app_exit().await;
        }
    }
}

/// A generation of `defs` beside the one `running` belongs to, carrying over the built
/// element of every slot whose chain of definitions and loader plan are the same as in
/// the generation being served. Nothing new is built yet.
pub(crate) fn next_generation(
    running: &App,
    defs: Definitions,
    services: Services,
    loaders: &Loaders,
) -> NextGeneration {
    let live = running.live.clone();
    let current = live.current();
    let mut changes = GenerationChanges::default();
    let mut carried = HashSet::new();
    let mut slots: HashMap<FullName, Slot> = HashMap::with_capacity(defs.len());
    for chain in defs.iter() {
        let name = chain.element().full_name.clone();
        let plan: Arc<[PlanStep]> = plan_for(chain, loaders).into();
        let slot = Slot::new(chain.clone(), plan);
        match current.slots.get(&name) {
            None => changes.added.push(name.to_string()),
            Some(old) if old.chain.same_definitions(chain) && same_plan(&old.plan, &slot.plan) => {
                if let Some(element) = old.ready.get() {
                    carried.insert(identity(element));
                    let _ = slot.ready.set(element.clone());
                    changes.kept.push(name.to_string());
                }
            }
            Some(_) => changes.changed.push(name.to_string()),
        }
        slots.insert(name, slot);
    }
    changes.removed = current
        .slots
        .keys()
        .filter(|name| !slots.contains_key(*name))
        .map(ToString::to_string)
        .collect();
    for list in [
        &mut changes.added,
        &mut changes.removed,
        &mut changes.changed,
        &mut changes.kept,
    ] {
        list.sort();
    }
    // Carried elements keep their place in the build order, for exit.
    let built: Vec<Arc<dyn Element>> = current
        .built
        .lock()
        .iter()
        .filter(|element| carried.contains(&identity(element)))
        .cloned()
        .collect();
    let id = live.next_id.fetch_add(1, Ordering::Relaxed);
    let generation = Arc::new(Generation::new(id, defs, services, slots, built));
    NextGeneration {
        app: App { generation, live },
        changes,
        based_on: current.id,
    }
}
