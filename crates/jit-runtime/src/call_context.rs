//! Who is calling: the context a host passes with every call of an element's function
//! (request id, principal, network peer), and the request's own element cache
//! (`cacheLevel: 1`). Checking a call against its declaration is [`crate::arguments`]'s.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::element::Element;

/// Who is calling and for which request; passed to every [`crate::Element::call`].
///
/// A host makes one per request: its clones share the request's element cache, so the
/// `cacheLevel: 1` elements a request uses are built once for that request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The host's request id, for logs.
    pub request_id: Option<String>,
    /// Who called; `None` is an anonymous caller, refused by `loginRequired` functions.
    pub principal: Option<String>,
    /// The network peer the request came from, when the host knows it: the source key
    /// for rate-limited refusal logs ([`crate::RefusalLogLimiter`]).
    pub peer: Option<std::net::IpAddr>,
    /// The `cacheLevel: 1` elements built for this request (see [`crate::App::call`]).
    pub elements: RequestElements,
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

/// The elements with `cacheLevel: 1` built for one request, by fullName. Clones share
/// the cache; a new one (`Default`) is empty. Two contexts are equal when they share it.
#[derive(Clone, Default)]
pub struct RequestElements(Arc<Mutex<HashMap<String, Arc<dyn Element>>>>);

impl RequestElements {
    /// The element built for this request under `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn Element>> {
        self.0.lock().get(name).cloned()
    }

    /// Keeps `element` for the rest of the request, unless another call of the same
    /// request kept one first: the one kept is returned, so the request sees one instance.
    pub(crate) fn keep(&self, name: &str, element: Arc<dyn Element>) -> Arc<dyn Element> {
        self.0
            .lock()
            .entry(name.to_owned())
            .or_insert(element)
            .clone()
    }

    /// How many elements this request has built.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// Whether this request has built none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for RequestElements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.lock().keys().cloned().collect();
        f.debug_tuple("RequestElements").field(&names).finish()
    }
}

impl PartialEq for RequestElements {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RequestElements {}
