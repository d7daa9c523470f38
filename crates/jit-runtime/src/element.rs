//! What a built element is: the [`Element`] trait (its definition, dynamic calls,
//! lifecycle hooks, typed interfaces) and the [`crate::provide_interfaces!`] macro that
//! writes the typed access.

use std::any::{Any, TypeId};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::call_context::CallContext;
use crate::element_def::ElementDef;
use crate::error::{CallError, CallErrorKind, ElementError};
#[cfg(doc)]
use crate::{App, LoadContext};

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
