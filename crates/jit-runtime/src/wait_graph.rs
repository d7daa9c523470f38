//! Build cycles across tasks: which builds in progress wait for which, so a wait that
//! would close a cycle is refused instead of hanging.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::GetError;
use crate::name::FullName;

/// Builds in progress that wait for other builds: `a → b` while a's loader awaits b.
///
/// The task-local `BUILDING` stack sees a cycle only when one chain of builds runs
/// inside one future. Two builds started by two tasks (a by one, b by the other) that
/// then ask for each other would each join the other's shared future and wait forever;
/// the graph sees that wait close a cycle and refuses it instead.
#[derive(Default)]
pub(crate) struct WaitGraph {
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
pub(crate) struct WaitEdge {
    graph: Arc<Mutex<WaitGraph>>,
    waiter: FullName,
    awaited: FullName,
}

impl Drop for WaitEdge {
    fn drop(&mut self) {
        self.graph.lock().remove(&self.waiter, &self.awaited);
    }
}

/// Records that the build of `waiter` (innermost of `outer`) waits for `awaited`, or
/// refuses the wait when `awaited` already waits, directly or not, for `waiter`.
pub(crate) fn record_wait(
    graph: &Arc<Mutex<WaitGraph>>,
    waiter: &FullName,
    awaited: &FullName,
    outer: &[FullName],
) -> Result<WaitEdge, GetError> {
    let mut waits = graph.lock();
    if let Some(back) = waits.path(awaited, waiter) {
        let path: Vec<&str> = outer.iter().chain(&back).map(FullName::as_str).collect();
        return Err(GetError::BuildCycle {
            name: awaited.to_string(),
            path: path.join(" → "),
        });
    }
    waits
        .edges
        .entry(waiter.clone())
        .or_default()
        .push(awaited.clone());
    Ok(WaitEdge {
        graph: graph.clone(),
        waiter: waiter.clone(),
        awaited: awaited.clone(),
    })
}
