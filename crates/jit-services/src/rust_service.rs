//! Service elements whose code is Rust: the [`Service`] trait, [`ServiceFunctions`] (one
//! closure per function), and the [`ServiceLoader`] that builds a [`ServiceElement`] for
//! the instance it is registered under.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use jit_runtime::{
    App, CallContext, CallError, Element, ElementDef, ElementError, LoadContext, Loader, WeakApp,
};
use serde_json::{Map, Value};

/// A service element's code. The runtime has already checked each call against the
/// element's `functionList` (the function is declared, `loginRequired` holds, the arguments
/// have the declared names and types), as for any element.
#[async_trait::async_trait]
pub trait Service: Send + Sync + 'static {
    /// Runs `function` with `args` for the caller `cx`; `app` is the running app, for
    /// `get_element` and `call` on other elements (pass `cx` on, so the caller's identity
    /// and request id follow the call).
    async fn call(
        &self,
        app: &App,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError>;

    /// The functions this code implements, when it knows them, so that `jit check` can
    /// compare them with the element's `functionList` both ways. `None` (the default) for
    /// code that dispatches dynamically.
    fn functions(&self) -> Option<Vec<String>> {
        None
    }
}

type Function = Arc<
    dyn Fn(App, Map<String, Value>, CallContext) -> BoxFuture<'static, Result<Value, CallError>>
        + Send
        + Sync,
>;

/// A [`Service`] made of one async closure per function.
#[derive(Clone, Default)]
pub struct ServiceFunctions {
    functions: BTreeMap<String, Function>,
}

impl std::fmt::Debug for ServiceFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceFunctions")
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ServiceFunctions {
    /// No function yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Implements `name` with `function`, which gets the running app, the checked
    /// arguments (a JSON object keyed by argument name) and the caller's context. A second
    /// closure for the same name replaces the first.
    pub fn function<F, Fut>(mut self, name: &str, function: F) -> Self
    where
        F: Fn(App, Map<String, Value>, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, CallError>> + Send + 'static,
    {
        let function: Function =
            Arc::new(move |app, args, cx| Box::pin(function(app, args, cx)) as BoxFuture<'_, _>);
        self.functions.insert(name.to_owned(), function);
        self
    }

    /// The names of the functions implemented, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
}

#[async_trait::async_trait]
impl Service for ServiceFunctions {
    async fn call(
        &self,
        app: &App,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        let Some(implementation) = self.functions.get(function) else {
            return Err(CallError::function_not_found(format!(
                "function `{function}` is declared but this service's Rust code does not \
                 implement it"
            )));
        };
        implementation(app.clone(), args, cx.clone()).await
    }

    fn functions(&self) -> Option<Vec<String>> {
        Some(self.functions.keys().cloned().collect())
    }
}

/// Builds the [`ServiceElement`] of the instance it is registered under.
#[derive(Clone)]
pub struct ServiceLoader {
    service: Arc<dyn Service>,
}

impl std::fmt::Debug for ServiceLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceLoader")
            .field("functions", &self.service.functions())
            .finish()
    }
}

impl ServiceLoader {
    /// A loader whose elements run `service`.
    pub fn new(service: impl Service) -> Self {
        Self {
            service: Arc::new(service),
        }
    }

    /// The code this loader's elements run.
    pub fn service(&self) -> &Arc<dyn Service> {
        &self.service
    }
}

#[async_trait::async_trait]
impl Loader for ServiceLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(ServiceElement {
            def: cx.def().clone(),
            // Weak: an element holding its app would keep the app alive through its cache.
            app: cx.app().downgrade(),
            service: self.service.clone(),
        }))
    }
}

/// A service element whose functions are Rust code.
pub struct ServiceElement {
    def: Arc<ElementDef>,
    app: WeakApp,
    service: Arc<dyn Service>,
}

#[async_trait::async_trait]
impl Element for ServiceElement {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        let app = self.app.upgrade().ok_or_else(|| {
            CallError::internal(format!(
                "`{}.{function}` was called after its app stopped",
                self.def.full_name
            ))
        })?;
        self.service.call(&app, function, args, cx).await
    }
}
