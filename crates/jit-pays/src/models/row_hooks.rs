//! `pays.models.PayLogModel`'s row hooks: JitAi's model Type hooks `onCreate`, `onUpdate`,
//! `onDelete` and `onException`, called with the order row after its change is committed.
//!
//! This module owns which hook an event calls ([`RowHook::of`]), where the hooks are
//! looked for (`RowHooks::find`), how one committed event is handed to them
//! (`RowHooks::deliver`, run by the outbox's `hooks` consumer), and the typed Rust way
//! to write them ([`PayLogHooks`] and [`pay_log_hooks_loader`]).
//!
//! # Where hooks live
//!
//! A hook is a function named `onCreate`, `onUpdate`, `onDelete` or `onException`,
//! reached by a dynamic [`Element::call`] (not [`jit_runtime::App::call`]: hooks are not
//! HTTP functions and need no `functionList` entry), of:
//!
//! - `pays.models.PayLogModel` itself, when the app shadows it: a Rust loader stacked on the
//!   official one ([`pay_log_hooks_loader`], or any loader using
//!   [`LoadContext::load_with_parent`]), or a native plugin named by the app's own
//!   `pays/models/PayLogModel/e.json` `backendBundleEntry` that handles those names;
//! - every instance whose chain contains it (`.pays.models.PayLogModel[kind=instance]` as a
//!   selector), sorted by fullName.
//!
//! A call answered `FUNCTION_NOT_FOUND` means "no such hook". The hooks are found once,
//! when the outbox starts ([`crate::start_outbox`]); with none, nothing changes: no
//! `order.created` event is written and the hooks consumer takes events only for
//! [`crate::PayEvents`] subscribers.
//!
//! # What a hook gets
//!
//! One JSON object: `row` (the order as [`PayLog`] JSON, as the change committed it),
//! `eventId` (the event's id: the same on a repeat), `eventType` (`order.created`,
//! `order.paid`, ...) and `orderSeq`. `onException` gets the same plus `hook` (the hook that
//! failed) and `error` (`{"code", "message"}`).
//!
//! # When
//!
//! After the change's commit, on the outbox's dispatcher (never on the task of the request
//! that made the change), at least once, in commit order per order:
//!
//! - `onCreate`: `order.created`, written in the order's insert transaction only while some
//!   hook is present;
//! - `onUpdate`: every change of the row's status (`order.paid`, `order.paid_after_close`,
//!   `order.closed`, `order.timeout`) or refund totals (`refund.requested` reserves,
//!   `refund.succeeded` and `refund.failed` settle, `refund.abnormal` changes the refund's
//!   state under the same reservation);
//! - `onDelete`: never: pays never deletes an order row (the table is the shop's books).
//!   The hook exists so a model Type's hook set is complete;
//! - `onException`: when `onCreate`/`onUpdate`/`onDelete` of an element fails (an error
//!   other than `FUNCTION_NOT_FOUND`, or a panic), with that failure. The delivery then
//!   counts as failed and the outbox retries the event by its rules (back-off, the hooks'
//!   retry window, then dead), calling every target's hook again: a hook must tolerate a
//!   repeat (`eventId`). What `onException` itself answers changes nothing (a failure of it
//!   is logged).

use std::any::TypeId;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use jit_runtime::{
    App, CallContext, CallError, CallErrorKind, Element, ElementDef, ElementError, LoadContext,
    Loader, Selector, WeakApp, log_safe,
};
use serde_json::{Map, Value, json};

use super::pay_log_model::{PAY_LOG_MODEL, PayLogModel};
use crate::events::{PayEvent, PayEventKind};
use crate::model::PayLog;

/// `onCreate`.
pub const ON_CREATE: &str = "onCreate";
/// `onUpdate`.
pub const ON_UPDATE: &str = "onUpdate";
/// `onDelete` (never called by pays: it deletes no order row).
pub const ON_DELETE: &str = "onDelete";
/// `onException`.
pub const ON_EXCEPTION: &str = "onException";

/// A row hook an event calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowHook {
    /// `onCreate`.
    Create,
    /// `onUpdate`.
    Update,
    /// `onDelete`.
    Delete,
}

impl RowHook {
    /// The function name.
    pub fn name(self) -> &'static str {
        match self {
            RowHook::Create => ON_CREATE,
            RowHook::Update => ON_UPDATE,
            RowHook::Delete => ON_DELETE,
        }
    }

    /// The hook an event of `kind` calls: `None` for the events that change no order row
    /// (`order.payment_conflict`, `reconcile.mismatch`).
    pub fn of(kind: PayEventKind) -> Option<RowHook> {
        match kind {
            PayEventKind::OrderCreated => Some(RowHook::Create),
            PayEventKind::Paid
            | PayEventKind::PaidAfterClose
            | PayEventKind::Closed
            | PayEventKind::TimedOut
            | PayEventKind::RefundRequested
            | PayEventKind::RefundSucceeded
            | PayEventKind::RefundAbnormal
            | PayEventKind::RefundFailed => Some(RowHook::Update),
            PayEventKind::PaymentConflict | PayEventKind::ReconcileMismatch => None,
        }
    }
}

/// The elements that may have row hooks, found when the outbox starts.
pub(crate) struct RowHooks {
    app: WeakApp,
    /// fullNames, `pays.models.PayLogModel` first when it is shadowed, then by fullName.
    targets: Vec<String>,
}

impl std::fmt::Debug for RowHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowHooks")
            .field("targets", &self.targets)
            .finish()
    }
}

impl RowHooks {
    /// The elements of `app` that may have row hooks (see the module docs), or `None`
    /// when there is none: `pays.models.PayLogModel` is the official element itself and no
    /// element's chain contains it. Builds `pays.models.PayLogModel` to tell.
    pub(crate) async fn find(app: &App) -> Result<Option<RowHooks>, ElementError> {
        let mut targets = Vec::new();
        if app.definitions().get(PAY_LOG_MODEL).is_some() {
            let model = app.get_element(PAY_LOG_MODEL).await.map_err(|error| {
                ElementError::with_source(
                    format!("row hooks: `{PAY_LOG_MODEL}` cannot be built"),
                    error,
                )
            })?;
            if !is_official_model(&model) {
                targets.push(PAY_LOG_MODEL.to_owned());
            }
        }
        let instances_below = Selector::parse(&format!(".{PAY_LOG_MODEL}[kind=instance]"))
            .expect("a fullName is a valid type selector");
        targets.extend(
            app.definitions()
                .select(&instances_below)
                .into_iter()
                .map(|chain| chain.element().full_name.to_string()),
        );
        Ok((!targets.is_empty()).then(|| RowHooks {
            app: app.downgrade(),
            targets,
        }))
    }

    /// The elements asked, in the order they are asked.
    pub(crate) fn targets(&self) -> &[String] {
        &self.targets
    }

    /// Hands `event` to every target's hook (see the module docs). `Err` says which
    /// targets failed (each already told through `onException`): the delivery is retried.
    pub(crate) async fn deliver(&self, event: &PayEvent) -> Result<(), String> {
        let (Some(hook), Some(row)) = (RowHook::of(event.kind), &event.order) else {
            return Ok(());
        };
        let Some(app) = self.app.upgrade() else {
            return Err("the app is gone".to_owned());
        };
        let row = serde_json::to_value(row)
            .map_err(|error| format!("the order row does not serialise: {error}"))?;
        let mut args = Map::new();
        args.insert("row".into(), row);
        args.insert("eventId".into(), Value::from(event.id.as_str()));
        args.insert("eventType".into(), Value::from(event.kind.name()));
        args.insert("orderSeq".into(), Value::from(event.order_seq));
        let cx = CallContext {
            request_id: Some(format!("event-{}", event.id)),
            ..CallContext::default()
        };
        let mut failures = Vec::new();
        for target in &self.targets {
            let element = match app.get_element(target).await {
                Ok(element) => element,
                Err(error) => {
                    failures.push(format!("`{target}` cannot be built: {error}"));
                    continue;
                }
            };
            let Err(error) = call_hook(&element, hook.name(), args.clone(), &cx).await else {
                continue;
            };
            tracing::warn!(
                element = %target,
                hook = hook.name(),
                event_id = %event.id,
                code = %error.code(),
                error = %log_safe(&error.message),
                "a row hook failed; the event is handed over again later"
            );
            let mut exception = args.clone();
            exception.insert("hook".into(), Value::from(hook.name()));
            exception.insert(
                "error".into(),
                json!({"code": error.code(), "message": error.message}),
            );
            match call_hook(&element, ON_EXCEPTION, exception, &cx).await {
                Ok(_) => {}
                Err(failed) if failed.kind == CallErrorKind::FunctionNotFound => {}
                Err(failed) => tracing::warn!(
                    element = %target,
                    event_id = %event.id,
                    code = %failed.code(),
                    error = %log_safe(&failed.message),
                    "onException failed too"
                ),
            }
            failures.push(format!(
                "`{target}.{}` failed: {}: {}",
                hook.name(),
                error.code(),
                error.message
            ));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

/// Calls `hook` on `element`: `Ok` when it returned or has no such hook, the error (a
/// panic as an internal error) otherwise.
async fn call_hook(
    element: &Arc<dyn Element>,
    hook: &str,
    args: Map<String, Value>,
    cx: &CallContext,
) -> Result<(), CallError> {
    match AssertUnwindSafe(element.call(hook, args, cx))
        .catch_unwind()
        .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) if error.kind == CallErrorKind::FunctionNotFound => Ok(()),
        Ok(Err(error)) => Err(error),
        Err(panic) => Err(CallError::internal(format!(
            "the hook panicked: {}",
            panic_text(&panic)
        ))),
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Whether `element` is the official model itself (not an element wrapping it, which may
/// still hand out the official one typed).
fn is_official_model(element: &Arc<dyn Element>) -> bool {
    let Some(typed) = element.clone().interface(TypeId::of::<Arc<PayLogModel>>()) else {
        return false;
    };
    let Ok(model) = typed.downcast::<Arc<PayLogModel>>() else {
        return false;
    };
    std::ptr::addr_eq(Arc::as_ptr(&model), Arc::as_ptr(element))
}

/// The event a row hook is called for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowEvent {
    /// The event's id (the same on a repeat).
    pub id: String,
    /// Its wire name (`order.created`, `order.paid`, ...).
    pub kind: String,
    /// The order's event number (0 for `order.created`).
    pub order_seq: i64,
}

/// A failed hook, as `onException` gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowHookFailure {
    /// The hook that failed (`onCreate`, `onUpdate`, `onDelete`).
    pub hook: String,
    /// Its error code (`INTERNAL`, or the element's own).
    pub code: String,
    /// Its message.
    pub message: String,
}

/// Row hooks written in Rust, typed: implement the hooks you need (each defaults to doing
/// nothing) and register [`pay_log_hooks_loader`] for `pays.models.PayLogModel` (or for an
/// element of that Type). An `Err` from `on_create`/`on_update`/`on_delete` makes the
/// outbox call `on_exception` and retry the event later.
#[async_trait]
pub trait PayLogHooks: Send + Sync + 'static {
    /// A new order was committed (`order.created`).
    async fn on_create(&self, row: &PayLog, event: &RowEvent) -> Result<(), CallError> {
        let _ = (row, event);
        Ok(())
    }

    /// The order's status or refund totals changed.
    async fn on_update(&self, row: &PayLog, event: &RowEvent) -> Result<(), CallError> {
        let _ = (row, event);
        Ok(())
    }

    /// Never called by pays, which deletes no order row.
    async fn on_delete(&self, row: &PayLog, event: &RowEvent) -> Result<(), CallError> {
        let _ = (row, event);
        Ok(())
    }

    /// A hook of this element failed with `failure`; the event comes again later.
    async fn on_exception(&self, row: &PayLog, event: &RowEvent, failure: &RowHookFailure) {
        let _ = (row, event, failure);
    }
}

/// A loader that builds the element below it on the chain (the official
/// `pays.models.PayLogModel`'s loader, when registered for that fullName) and wraps it
/// with `hooks`: the four hook names go to `hooks`, every other call and every typed
/// interface to the wrapped element.
///
/// ```no_run
/// # fn host(builder: jit_runtime::AppBuilder) -> jit_runtime::AppBuilder {
/// use jit_pays::models::row_hooks::{PayLogHooks, RowEvent, pay_log_hooks_loader};
///
/// struct Audit;
///
/// #[jit_runtime::async_trait]
/// impl PayLogHooks for Audit {
///     async fn on_update(&self, row: &jit_pays::PayLog, event: &RowEvent)
///         -> Result<(), jit_runtime::CallError> {
///         println!("{} is now {:?} ({})", row.order_id, row.status, event.kind);
///         Ok(())
///     }
/// }
///
/// builder.loader(jit_pays::PAY_LOG_MODEL, pay_log_hooks_loader(Audit))
/// # }
/// ```
pub fn pay_log_hooks_loader(hooks: impl PayLogHooks) -> PayLogHooksLoader {
    PayLogHooksLoader {
        hooks: Arc::new(hooks),
    }
}

/// See [`pay_log_hooks_loader`].
pub struct PayLogHooksLoader {
    hooks: Arc<dyn PayLogHooks>,
}

impl std::fmt::Debug for PayLogHooksLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PayLogHooksLoader")
    }
}

#[async_trait]
impl Loader for PayLogHooksLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        let parent = cx.load_with_parent().await?;
        Ok(Arc::new(PayLogHooksElement {
            def: cx.def().clone(),
            parent,
            hooks: Arc::clone(&self.hooks),
        }))
    }
}

/// The element [`pay_log_hooks_loader`] builds.
pub struct PayLogHooksElement {
    def: Arc<ElementDef>,
    parent: Arc<dyn Element>,
    hooks: Arc<dyn PayLogHooks>,
}

/// The `row` and event of a hook call's arguments.
fn hook_args(args: &Map<String, Value>) -> Result<(PayLog, RowEvent), CallError> {
    let row = args
        .get("row")
        .cloned()
        .ok_or_else(|| CallError::bad_arguments("a row hook needs `row`"))?;
    let row: PayLog = serde_json::from_value(row)
        .map_err(|error| CallError::bad_arguments(format!("`row` is not an order row: {error}")))?;
    let text = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let event = RowEvent {
        id: text("eventId"),
        kind: text("eventType"),
        order_seq: args.get("orderSeq").and_then(Value::as_i64).unwrap_or(0),
    };
    Ok((row, event))
}

#[async_trait]
impl Element for PayLogHooksElement {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        function: &str,
        args: Map<String, Value>,
        cx: &CallContext,
    ) -> Result<Value, CallError> {
        let hook = match function {
            ON_CREATE => RowHook::Create,
            ON_UPDATE => RowHook::Update,
            ON_DELETE => RowHook::Delete,
            ON_EXCEPTION => {
                let (row, event) = hook_args(&args)?;
                let error = args.get("error");
                let field = |key: &str| {
                    error
                        .and_then(|e| e.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let failure = RowHookFailure {
                    hook: args
                        .get("hook")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    code: field("code"),
                    message: field("message"),
                };
                self.hooks.on_exception(&row, &event, &failure).await;
                return Ok(Value::Null);
            }
            _ => return self.parent.call(function, args, cx).await,
        };
        let (row, event) = hook_args(&args)?;
        match hook {
            RowHook::Create => self.hooks.on_create(&row, &event).await,
            RowHook::Update => self.hooks.on_update(&row, &event).await,
            RowHook::Delete => self.hooks.on_delete(&row, &event).await,
        }?;
        Ok(Value::Null)
    }

    async fn on_load(&self) -> Result<(), ElementError> {
        self.parent.on_load().await
    }

    async fn on_app_exit(&self) {
        self.parent.on_app_exit().await;
    }

    fn interface(self: Arc<Self>, iface: TypeId) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        if iface == TypeId::of::<Arc<Self>>() {
            return Some(Box::new(self));
        }
        Arc::clone(&self.parent).interface(iface)
    }
}
