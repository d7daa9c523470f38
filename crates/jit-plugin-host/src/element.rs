//! The runtime side of a plugin: a [`Loader`] that wraps the parent Type's element, and the
//! element whose calls enter the plugin.
//!
//! # Calling an async parent from a C callback
//!
//! A plugin's `call` is synchronous C code, but the parent element it delegates to is async.
//! So a call that enters the plugin runs on tokio's blocking pool (`spawn_blocking`), and the
//! `call_parent` callback drives the parent's future to completion with the runtime
//! [`Handle`] captured before leaving async code (`Handle::block_on`). This is sound because:
//!
//! - a blocking-pool thread is not an async worker, so blocking it starves no task, and
//!   `Handle::block_on` is allowed there (it panics only inside an async context);
//! - the parent's future runs on that thread while its I/O and timers are driven by the
//!   runtime as usual (a multi-thread runtime's workers, or a current-thread runtime's
//!   `block_on` thread, which is parked awaiting the blocking task, not blocked);
//! - everything the callbacks use is owned by the blocking task (no borrow of the async
//!   caller's stack), so an abandoned caller leaves nothing dangling; the plugin call then
//!   simply runs to completion.
//!
//! Each call in flight inside a plugin holds one blocking-pool thread (tokio's default cap
//! is 512), plus one more per nested plugin Type on the chain and per plugin element a
//! plugin's call to the app enters.
//!
//! # Calls from a plugin to the app
//!
//! The `get_element` and `call` callbacks (ABI version 2) reach any element of the app the
//! calling element may see, through [`App::call`]: the same declaration, `loginRequired` and
//! argument checks as an HTTP call, with the [`CallContext`] of the call being served (the
//! plugin acts for its caller). The target may itself be a plugin element (another, or the
//! same): its call enters its plugin on another blocking-pool thread while this one waits in
//! `Handle::block_on`, so plugins may call each other freely. What cannot be allowed is a
//! cycle without end, which would take a thread per level until the pool is exhausted: the
//! enclosing app calls travel with the call (a task-local, [`APP_CALLS`]) and a call nested
//! [`MAX_NESTED_APP_CALLS`] deep is refused with the path it took.
//!
//! # Elements without a parent
//!
//! A service element (a `services.NormalType` instance whose own `backendBundleEntry` names
//! the library) has no loader above its plugin: it is built with no parent, every call enters
//! the plugin, and the plugin's parent calls answer `FUNCTION_NOT_FOUND`.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use jit_plugin_api::{
    ArgInfo, ByteView, ElementInfo, FunctionInfo, HostApi, OutputSink, PluginError,
    PluginErrorKind, STATUS_PANIC, collect_output, decode_reply, encode_reply, panic_message,
    write_output,
};
use jit_runtime::{
    App, CallContext, CallError, CallErrorKind, Chain, Element, ElementDef, ElementError,
    LoadContext, Loader, WeakApp,
};
use serde_json::{Map, Value};
use tokio::runtime::Handle;

use crate::library::LoadedPlugin;

/// How deep calls from plugins to the app may nest (a plugin calling an element whose plugin
/// calls another, ...). Deeper is taken for a call cycle and refused.
pub const MAX_NESTED_APP_CALLS: usize = 16;

/// The code of the error a call nested deeper than [`MAX_NESTED_APP_CALLS`] gets.
pub const CALL_DEPTH_EXCEEDED: &str = "CALL_DEPTH_EXCEEDED";

tokio::task_local! {
    /// The app calls made by plugins that enclose the running code, outermost first
    /// (`element.function`). Set around each call a plugin makes, read by a plugin element
    /// that the call enters.
    static APP_CALLS: Arc<[String]>;
}

/// Builds the elements of a plugin Type (or service element): the parent Type's loader
/// builds the element first ([`LoadContext::load_with_parent`]), then the plugin wraps it;
/// with no loader above this one, the element is the plugin alone.
#[derive(Debug, Clone)]
pub struct PluginLoader {
    plugin: Arc<LoadedPlugin>,
}

impl PluginLoader {
    /// A loader for the Type implemented by `plugin`.
    pub fn new(plugin: Arc<LoadedPlugin>) -> Self {
        Self { plugin }
    }

    /// The plugin this loader wraps elements with.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }
}

#[jit_runtime::async_trait]
impl Loader for PluginLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        let plugin_type = cx.loader_def().full_name.to_string();
        // No loader above this one (a service element): the plugin is the whole element.
        let parent = match cx.load_with_parent().await {
            Ok(parent) => Some(parent),
            Err(ElementError::NoParentLoader(name)) if name == plugin_type => None,
            Err(error) => {
                return Err(ElementError::with_source(
                    format!(
                        "native plugin `{}` implementing `{plugin_type}` needs its parent Type's element",
                        self.plugin.path().display()
                    ),
                    error,
                ));
            }
        };
        let chain = cx.chain();
        let info_json = serde_json::to_vec(&info_of(chain))
            .map_err(|error| ElementError::with_source("element info not serialisable", error))?;
        if let Some(overrides) = self.plugin.overrides().filter(|_| parent.is_some()) {
            for function in overrides
                .iter()
                .filter(|name| chain.function(name).is_none())
            {
                tracing::warn!(
                    element = %cx.def().full_name,
                    plugin = %self.plugin.path().display(),
                    function = %function,
                    "the plugin overrides a function no element of the chain declares; \
                     it can only be reached by another plugin"
                );
            }
        }
        // What a call to the parent is checked against, in the order the parent loaders are
        // found: the lower-layer definition this plugin's Type shadows (when an app shadows
        // an official Type with a plugin), then the Types above it on the chain.
        let parent_defs: Vec<Arc<ElementDef>> = cx
            .loader_def()
            .overrides
            .iter()
            .cloned()
            .chain(chain.defs()[cx.chain_index() + 1..].iter().cloned())
            .collect();
        Ok(Arc::new(PluginElement {
            def: cx.def().clone(),
            shared: Arc::new(Shared {
                plugin: self.plugin.clone(),
                parent,
                parent_defs,
                info_json: info_json.into(),
                app: cx.app().downgrade(),
            }),
        }))
    }
}

/// An element of a plugin Type: calls the plugin overrides enter it, every other call goes
/// to the parent element.
///
/// It provides no typed interfaces ([`jit_runtime::App::get`]): handing out the parent's
/// would let typed callers bypass the plugin's overrides. Reach it through dynamic calls.
pub struct PluginElement {
    def: Arc<ElementDef>,
    shared: Arc<Shared>,
}

struct Shared {
    plugin: Arc<LoadedPlugin>,
    /// `None` for an element with no loader above its plugin (a service element).
    parent: Option<Arc<dyn Element>>,
    parent_defs: Vec<Arc<ElementDef>>,
    info_json: Arc<[u8]>,
    /// Weak: the app holds this element in its cache.
    app: WeakApp,
}

impl PluginElement {
    /// The plugin this element calls into.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.shared.plugin
    }

    /// The parent Type's element it delegates to; `None` for an element with no loader
    /// above its plugin (a service element), whose every call enters the plugin.
    pub fn parent(&self) -> Option<&Arc<dyn Element>> {
        self.shared.parent.as_ref()
    }
}

/// What the plugin is told about an element: [`ElementInfo`] from its chain, secrets masked.
fn info_of(chain: &Chain) -> ElementInfo {
    ElementInfo {
        full_name: chain.element().full_name.to_string(),
        chain: chain.names().map(str::to_owned).collect(),
        settings: chain.settings_masked(),
        functions: chain
            .functions()
            .into_iter()
            .map(|function| FunctionInfo {
                name: function.name.clone(),
                title: function.title.clone(),
                args: function
                    .args
                    .iter()
                    .map(|arg| ArgInfo {
                        name: arg.name.clone(),
                        title: arg.title.clone(),
                        data_type: arg.data_type.as_str().to_owned(),
                        required: arg.required,
                    })
                    .collect(),
                return_type: function.return_type.clone(),
                login_required: function.login_required,
            })
            .collect(),
    }
}

#[jit_runtime::async_trait]
impl Element for PluginElement {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        let shared = &self.shared;
        if let Some(parent) = &shared.parent
            && !shared.plugin.handles(function)
        {
            return parent.call(function, args, cx).await;
        }
        let args_json = serde_json::to_vec(&Value::Object(args))
            .map_err(|error| CallError::internal(format!("arguments not serialisable: {error}")))?;
        let handle = Handle::try_current().map_err(|error| {
            CallError::internal(format!(
                "`{}.{function}` is implemented by a native plugin, which must be called from \
                 within a tokio runtime: {error}",
                self.def.full_name
            ))
        })?;
        let call = HostCall {
            handle,
            shared: shared.clone(),
            element: self.def.full_name.to_string(),
            cx: cx.clone(),
            enclosing: APP_CALLS
                .try_with(Arc::clone)
                .unwrap_or_else(|_| Arc::from([])),
        };
        let function_name = function.to_owned();
        let (status, bytes) =
            tokio::task::spawn_blocking(move || call.enter_plugin(&function_name, &args_json))
                .await
                .map_err(|error| {
                    CallError::internal(format!(
                        "calling native plugin `{}` for `{}.{function}` failed: {error}",
                        shared.plugin.name(),
                        self.def.full_name
                    ))
                })?;
        decode_reply(status, &bytes).map_err(|error| {
            call_error_from_plugin(error, &shared.plugin, &self.def.full_name, function)
        })
    }
}

/// Everything one call into the plugin needs, owned by the blocking task that makes it. Its
/// address is the `ctx` of the [`HostApi`] the plugin gets.
struct HostCall {
    handle: Handle,
    shared: Arc<Shared>,
    element: String,
    cx: CallContext,
    /// The app calls by plugins this call is nested in ([`APP_CALLS`] when it began).
    enclosing: Arc<[String]>,
}

impl HostCall {
    fn enter_plugin(&self, function: &str, args_json: &[u8]) -> (u32, Vec<u8>) {
        // The newest table: a plugin of an older ABI version reads only its prefix.
        let host = HostApi {
            ctx: (self as *const HostCall).cast(),
            call_parent,
            element_info,
            get_element,
            call: call_element,
            find_elements,
        };
        let entry_points = self.shared.plugin.entry_points();
        collect_output(|out| {
            // SAFETY: the plugin's header matched this host's ABI version and build, so `call`
            // has this signature and contract; `host` (and the `HostCall` its `ctx` points
            // at), the byte views and `out` are borrowed from this frame and so outlive the
            // call, and the library is never unloaded.
            unsafe {
                (entry_points.call)(
                    &host,
                    ByteView::of(function.as_bytes()),
                    ByteView::of(args_json),
                    out,
                )
            }
        })
    }

    fn call_parent(&self, function: &str, args_json: &[u8]) -> Result<Value, PluginError> {
        let Some(parent) = &self.shared.parent else {
            return Err(PluginError::of_kind(
                PluginErrorKind::FunctionNotFound,
                PluginErrorKind::FunctionNotFound.code(),
                format!(
                    "`{}` has no parent Type implementing `{function}`",
                    self.element
                ),
            ));
        };
        let args = read_arguments(args_json, &format!("the parent's `{function}`"))?;
        self.check_parent_args(function, &args)?;
        // A parent that is itself a plugin element is still inside the same app calls.
        let call = APP_CALLS.scope(
            self.enclosing.clone(),
            parent.call(function, args, &self.cx),
        );
        self.handle.block_on(call).map_err(plugin_error_from_call)
    }

    fn app(&self) -> Result<App, PluginError> {
        self.shared.app.upgrade().ok_or_else(|| {
            PluginError::internal(format!("the app of `{}` has been shut down", self.element))
        })
    }

    /// The chain of `full_name` if the calling element may see it: it exists, and it is not
    /// `private` to another layer than the caller's. Both misses are the same `NOT_FOUND`, so
    /// a private element's existence does not show.
    fn visible_chain<'a>(&self, app: &'a App, full_name: &str) -> Result<&'a Chain, PluginError> {
        let definitions = app.definitions();
        let caller_layer = definitions.layer_index(&self.element);
        let visible = app
            .chain(full_name)
            .filter(|chain| definitions.is_visible_to_layer(chain, caller_layer));
        visible.ok_or_else(|| {
            PluginError::of_kind(
                PluginErrorKind::NotFound,
                PluginErrorKind::NotFound.code(),
                format!("no element `{full_name}`"),
            )
        })
    }

    /// The elements `selector` matches that the calling element may see, as
    /// [`Self::get_element`] would describe each.
    fn find_elements(&self, selector: &str) -> Result<Value, PluginError> {
        let app = self.app()?;
        let found = app
            .find_elements(selector)
            .map_err(|error| PluginError::bad_arguments(format!("selector: {error}")))?;
        let infos: Vec<ElementInfo> = found
            .iter()
            .filter_map(|def| self.visible_chain(&app, def.full_name.as_str()).ok())
            .map(info_of)
            .collect();
        serde_json::to_value(infos)
            .map_err(|error| PluginError::internal(format!("element info: {error}")))
    }

    fn get_element(&self, full_name: &str) -> Result<Value, PluginError> {
        let app = self.app()?;
        let chain = self.visible_chain(&app, full_name)?;
        serde_json::to_value(info_of(chain))
            .map_err(|error| PluginError::internal(format!("element info: {error}")))
    }

    /// `function` of `full_name` as an HTTP call would reach it, for the caller of the call
    /// being served.
    fn call_element(
        &self,
        full_name: &str,
        function: &str,
        args_json: &[u8],
    ) -> Result<Value, PluginError> {
        let target = format!("{full_name}.{function}");
        if self.enclosing.len() >= MAX_NESTED_APP_CALLS {
            let path: Vec<&str> = self
                .enclosing
                .iter()
                .map(String::as_str)
                .chain([target.as_str()])
                .collect();
            return Err(PluginError::of_kind(
                PluginErrorKind::Internal,
                CALL_DEPTH_EXCEEDED,
                format!(
                    "`{target}` not called: calls between plugins nest deeper than \
                     {MAX_NESTED_APP_CALLS} ({}); is there a call cycle?",
                    path.join(" → ")
                ),
            ));
        }
        let app = self.app()?;
        let chain = self.visible_chain(&app, full_name)?;
        // A Type or a Meta declares functions for its instances and serves none, as HTTP
        // dispatch refuses it (the runtime's one rule of what an instance is).
        if let Some(refusal) = app.definitions().serves_no_calls(chain) {
            return Err(PluginError::of_kind(
                PluginErrorKind::NotFound,
                PluginErrorKind::NotFound.code(),
                refusal,
            ));
        }
        let args = read_arguments(args_json, &format!("`{target}`"))?;
        let calls: Arc<[String]> = self.enclosing.iter().cloned().chain([target]).collect();
        let call = APP_CALLS.scope(
            calls,
            app.call(full_name, function, Value::Object(args), &self.cx),
        );
        self.handle.block_on(call).map_err(plugin_error_from_call)
    }

    /// The parent's contract is that its `call` sees arguments already checked against its
    /// declaration, as a call through the runtime would be. A function the parent does not
    /// declare is passed through unchecked (it may be internal to the parent).
    fn check_parent_args(
        &self,
        function: &str,
        args: &Map<String, Value>,
    ) -> Result<(), PluginError> {
        let Some(declaration) = self
            .shared
            .parent_defs
            .iter()
            .find_map(|def| def.function(function))
        else {
            return Ok(());
        };
        let problems = jit_runtime::argument_problems(declaration, args);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PluginError::bad_arguments(format!(
                "call from plugin `{}` to the parent's `{}.{function}`: {}",
                self.shared.plugin.name(),
                self.element,
                problems.join("; ")
            )))
        }
    }
}

/// Reads arguments a plugin passes like a request body: no number changes on the way.
fn read_arguments(args_json: &[u8], callee: &str) -> Result<Map<String, Value>, PluginError> {
    jit_runtime::parse_arguments(args_json).map_err(|error| {
        let message = format!("arguments for {callee}: {}", error.message);
        if error.code() == jit_runtime::INVALID_JSON {
            PluginError::new(PluginError::PROTOCOL, message)
        } else {
            PluginError::bad_arguments(message)
        }
    })
}

/// Writes `result` for the plugin and returns its status.
///
/// # Safety
/// `out` must be null or a live sink.
unsafe fn answer(
    out: *const OutputSink,
    result: std::thread::Result<Result<Value, PluginError>>,
) -> u32 {
    let (status, bytes) = match result {
        Ok(result) => encode_reply(result),
        Err(payload) => (
            STATUS_PANIC,
            PluginError::new(
                PluginError::PANIC,
                format!(
                    "the host panicked serving the plugin: {}",
                    panic_message(payload.as_ref())
                ),
            )
            .to_wire(),
        ),
    };
    // SAFETY: `write_output` needs `out` null or a live sink, which this function's own
    // contract requires of its caller.
    unsafe { write_output(out, &bytes) };
    status
}

unsafe extern "C" fn call_parent(
    ctx: *const c_void,
    function: ByteView,
    args_json: ByteView,
    out: *const OutputSink,
) -> u32 {
    // No panic may unwind into the plugin's frames: the parent's code runs in here.
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the plugin hands back the `ctx` of the `HostApi` that `enter_plugin` lent
        // it, which is a `&HostCall` alive until that call returns; the ABI allows callbacks
        // only during that call, on its thread, so the `HostCall` is alive and only shared.
        let call = unsafe { &*ctx.cast::<HostCall>() };
        // SAFETY: the ABI requires the plugin to pass views of initialised bytes that stay
        // valid and unchanged until this callback returns; the slice is not kept beyond it
        // (the name is only borrowed for the call below).
        let function = unsafe { function.as_slice() };
        let function = std::str::from_utf8(function).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("function name is not UTF-8: {error}"),
            )
        })?;
        // SAFETY: as for `function`: the plugin lends the argument bytes until this callback
        // returns, and `call_parent` parses them into owned values before it does.
        let args_json = unsafe { args_json.as_slice() };
        call.call_parent(function, args_json)
    }));
    // SAFETY: `out` is the sink the plugin passed for this callback, which the ABI requires
    // to be null or live until the callback returns: what `answer` needs.
    unsafe { answer(out, result) }
}

unsafe extern "C" fn element_info(ctx: *const c_void, out: *const OutputSink) -> u32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `&HostCall` that `enter_plugin` lent in the `HostApi` of the
        // plugin call now in progress on this thread (see `call_parent`): alive, only shared.
        let call = unsafe { &*ctx.cast::<HostCall>() };
        serde_json::from_slice::<Value>(&call.shared.info_json)
            .map_err(|error| PluginError::new(PluginError::PROTOCOL, error.to_string()))
    }));
    // SAFETY: `out` is the sink the plugin passed for this callback, which the ABI requires
    // to be null or live until the callback returns: what `answer` needs.
    unsafe { answer(out, result) }
}

/// Reads a name the plugin lends as UTF-8 text.
///
/// # Safety
/// `view` must be a view the plugin lends for the callback in progress (valid until it
/// returns); the text is not kept beyond it.
unsafe fn lent_text<'a>(view: ByteView, what: &str) -> Result<&'a str, PluginError> {
    // SAFETY: the caller guarantees the view is valid for the callback in progress.
    let bytes = unsafe { view.as_slice() };
    std::str::from_utf8(bytes).map_err(|error| {
        PluginError::new(
            PluginError::PROTOCOL,
            format!("{what} is not UTF-8: {error}"),
        )
    })
}

unsafe extern "C" fn get_element(
    ctx: *const c_void,
    full_name: ByteView,
    out: *const OutputSink,
) -> u32 {
    // SAFETY: this callback's contract (the ABI's) is `answer_with_text`'s.
    unsafe { answer_with_text(ctx, full_name, "element name", out, HostCall::get_element) }
}

unsafe extern "C" fn find_elements(
    ctx: *const c_void,
    selector: ByteView,
    out: *const OutputSink,
) -> u32 {
    // SAFETY: this callback's contract (the ABI's) is `answer_with_text`'s.
    unsafe { answer_with_text(ctx, selector, "selector", out, HostCall::find_elements) }
}

/// The body of a callback that takes one text (`what`, for messages): `serve` answers it
/// for the plugin call in progress, and no panic unwinds into the plugin.
///
/// # Safety
/// `ctx` must be the `HostApi` context `enter_plugin` lent for the plugin call in progress
/// on this thread, `text` a view the plugin lends until this returns, and `out` null or a
/// live sink: what the ABI requires of every callback.
unsafe fn answer_with_text(
    ctx: *const c_void,
    text: ByteView,
    what: &str,
    out: *const OutputSink,
    serve: fn(&HostCall, &str) -> Result<Value, PluginError>,
) -> u32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `&HostCall` that `enter_plugin` lent in the `HostApi` of the
        // plugin call now in progress on this thread (see `call_parent`): alive, only shared.
        let call = unsafe { &*ctx.cast::<HostCall>() };
        // SAFETY: the ABI requires the plugin to lend the text until this callback returns.
        let text = unsafe { lent_text(text, what) }?;
        serve(call, text)
    }));
    // SAFETY: `out` is the sink the plugin passed for this callback, which the ABI requires
    // to be null or live until the callback returns: what `answer` needs.
    unsafe { answer(out, result) }
}

unsafe extern "C" fn call_element(
    ctx: *const c_void,
    full_name: ByteView,
    function: ByteView,
    args_json: ByteView,
    out: *const OutputSink,
) -> u32 {
    // No panic may unwind into the plugin's frames: other elements' code runs in here.
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `&HostCall` that `enter_plugin` lent in the `HostApi` of the
        // plugin call now in progress on this thread (see `call_parent`): alive, only shared.
        let call = unsafe { &*ctx.cast::<HostCall>() };
        // SAFETY: the ABI requires the plugin to lend the views until this callback returns;
        // the texts are only borrowed for the call below, and the arguments parsed into
        // owned values before it returns.
        let (full_name, function, args_json) = unsafe {
            (
                lent_text(full_name, "element name")?,
                lent_text(function, "function name")?,
                args_json.as_slice(),
            )
        };
        call.call_element(full_name, function, args_json)
    }));
    // SAFETY: `out` is the sink the plugin passed for this callback, which the ABI requires
    // to be null or live until the callback returns: what `answer` needs.
    unsafe { answer(out, result) }
}

/// Maps a plugin's error to the runtime's: its category ([`PluginError::category`]: the
/// declared `kind`, else the one its code names, else a refusal) and its code, kept as the
/// specific code unless it is just the category's own. A panic or a protocol fault is
/// internal and names the plugin.
fn call_error_from_plugin(
    error: PluginError,
    plugin: &LoadedPlugin,
    element: &impl std::fmt::Display,
    function: &str,
) -> CallError {
    if matches!(
        error.code.as_str(),
        PluginError::PANIC | PluginError::PROTOCOL
    ) {
        return CallError::internal(format!(
            "native plugin `{}` ({}) failed in `{element}.{function}`: {}",
            plugin.name(),
            plugin.path().display(),
            error.message
        ));
    }
    let kind = call_error_kind(error.category());
    let call_error = CallError::new(kind, error.message);
    if error.code == kind.code() {
        call_error
    } else {
        call_error.with_code(error.code)
    }
}

/// A runtime call error as the plugin sees it (a parent's answer): its code and category
/// both cross, so a plugin propagating it with `?` changes neither.
fn plugin_error_from_call(error: CallError) -> PluginError {
    let code = error.code().to_owned();
    PluginError::of_kind(plugin_error_kind(error.kind), code, error.message)
}

fn call_error_kind(kind: PluginErrorKind) -> CallErrorKind {
    match kind {
        PluginErrorKind::NotFound => CallErrorKind::NotFound,
        PluginErrorKind::FunctionNotFound => CallErrorKind::FunctionNotFound,
        PluginErrorKind::BadArguments => CallErrorKind::BadArguments,
        PluginErrorKind::Unauthorized => CallErrorKind::Unauthorized,
        PluginErrorKind::Conflict => CallErrorKind::Conflict,
        PluginErrorKind::Upstream => CallErrorKind::Upstream,
        PluginErrorKind::Internal => CallErrorKind::Internal,
    }
}

fn plugin_error_kind(kind: CallErrorKind) -> PluginErrorKind {
    match kind {
        CallErrorKind::NotFound => PluginErrorKind::NotFound,
        CallErrorKind::FunctionNotFound => PluginErrorKind::FunctionNotFound,
        CallErrorKind::BadArguments => PluginErrorKind::BadArguments,
        CallErrorKind::Unauthorized => PluginErrorKind::Unauthorized,
        CallErrorKind::Conflict => PluginErrorKind::Conflict,
        CallErrorKind::Upstream => PluginErrorKind::Upstream,
        CallErrorKind::Internal => PluginErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_map_one_to_one_with_the_same_codes() {
        for kind in PluginErrorKind::ALL {
            let call_kind = call_error_kind(kind);
            assert_eq!(plugin_error_kind(call_kind), kind);
            assert_eq!(call_kind.code(), kind.code());
        }
    }

    #[test]
    fn a_parent_error_crosses_with_its_code_and_category() {
        let parent = CallError::not_found("no order 7").with_code("ORDER_NOT_FOUND");
        let crossed = plugin_error_from_call(parent);
        assert_eq!(crossed.code, "ORDER_NOT_FOUND");
        assert_eq!(crossed.category(), PluginErrorKind::NotFound);
    }
}
