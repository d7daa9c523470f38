//! A plugin for the host's tests. It declares no overrides, so every call enters it:
//!
//! - `echo(..)` returns the function name, the arguments and the element info it sees;
//! - `forward(function, args)` calls the parent's `function` with `args` and returns what the
//!   parent returned (or its error);
//! - `panic()` panics, to prove the panic is caught inside the library;
//! - the row hooks `onCreate`, `onUpdate`, `onDelete`, `onException` (when
//!   [`HOOK_LOG_VARIABLE`] is set): each call appends one JSON line to that file (the
//!   hook, the element, the order's id and status, the event's type and id, the error of
//!   `onException`); `onCreate` of an order whose subject is [`FAILING_SUBJECT`] fails
//!   with `HOOK_REFUSED`;
//! - `lookup(name)` returns what the app says of element `name` (`get_element`);
//! - `find(selector)` returns the fullNames of the elements `selector` matches
//!   (`find_elements`);
//! - `callElement(element, function, args)` calls `function` of another element of the app
//!   (through the handle `get_element` gives) and returns its result (or its error);
//! - `bounce(to)` calls `bounce` of element `to` with this element as `to`: two elements
//!   bouncing to each other (or one to itself) are a call cycle;
//! - anything else goes to the parent unchanged.
//!
//! It also has an initialiser (see [`INIT_MARKER_VARIABLE`]), which the system's dynamic
//! loader runs when it maps the library.

#![deny(missing_docs)]
// The initialiser is a static in a linker section the dynamic loader runs, which the
// workspace's `unsafe_code` lint denies by default.
#![allow(unsafe_code)]

use jit_plugin_api::{Parent, Plugin, PluginError};
use serde_json::{Value, json};

/// The probe Type.
pub struct ProbePlugin;

impl Plugin for ProbePlugin {
    fn call(&self, function: &str, args: Value, parent: &Parent) -> Result<Value, PluginError> {
        match function {
            "echo" => {
                let element = parent.element()?;
                Ok(json!({
                    "function": function,
                    "args": args,
                    "element": serde_json::to_value(element).map_err(|error| PluginError::new(PluginError::PROTOCOL, error.to_string()))?,
                }))
            }
            "forward" => {
                let target = args
                    .get("function")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        PluginError::bad_arguments("forward: `function` must be a string")
                    })?;
                parent.call(
                    target,
                    args.get("args").cloned().unwrap_or_else(|| json!({})),
                )
            }
            "panic" => panic!("probe plugin panicking on request"),
            "onCreate" | "onUpdate" | "onDelete" | "onException"
                if std::env::var_os(HOOK_LOG_VARIABLE).is_some() =>
            {
                row_hook(function, &args, parent)
            }
            "lookup" => {
                let name = string_arg(&args, function, "name")?;
                let found = parent.app().get_element(name)?;
                serde_json::to_value(found.info())
                    .map_err(|error| PluginError::new(PluginError::PROTOCOL, error.to_string()))
            }
            "find" => {
                let selector = string_arg(&args, function, "selector")?;
                let found = parent.app().find_elements(selector)?;
                Ok(json!(
                    found
                        .into_iter()
                        .map(|info| info.full_name)
                        .collect::<Vec<_>>()
                ))
            }
            "callElement" => {
                let element = string_arg(&args, function, "element")?;
                let target = string_arg(&args, function, "function")?;
                let call_args = args.get("args").cloned().unwrap_or_else(|| json!({}));
                parent.app().get_element(element)?.call(target, call_args)
            }
            "bounce" => {
                let to = string_arg(&args, function, "to")?;
                let me = parent.element()?.full_name;
                parent.app().call(to, "bounce", json!({ "to": me }))
            }
            other => parent.call(other, args),
        }
    }
}

fn string_arg<'a>(args: &'a Value, function: &str, name: &str) -> Result<&'a str, PluginError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| PluginError::bad_arguments(format!("{function}: `{name}` must be a string")))
}

jit_plugin_api::export_plugin!(ProbePlugin);

/// The environment variable naming the file row hook calls are logged to.
pub const HOOK_LOG_VARIABLE: &str = "JIT_TEST_PLUGIN_HOOK_LOG";

/// The order subject whose `onCreate` fails.
pub const FAILING_SUBJECT: &str = "hook refuses";

/// Logs a row hook call (see the crate docs); fails `onCreate` of a [`FAILING_SUBJECT`]
/// order.
fn row_hook(hook: &str, args: &Value, parent: &Parent) -> Result<Value, PluginError> {
    let element = parent.element()?;
    let row = args.get("row").cloned().unwrap_or(Value::Null);
    let line = json!({
        "hook": hook,
        "element": element.full_name,
        "orderId": row.get("orderId"),
        "status": row.get("status"),
        "eventType": args.get("eventType"),
        "eventId": args.get("eventId"),
        "failedHook": args.get("hook"),
        "error": args.get("error"),
    });
    let path = std::env::var_os(HOOK_LOG_VARIABLE).unwrap_or_default();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| PluginError::internal(format!("hook log: {error}")))?;
    std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
        .map_err(|error| PluginError::internal(format!("hook log: {error}")))?;
    if hook == "onCreate" && row.get("subject").and_then(Value::as_str) == Some(FAILING_SUBJECT) {
        return Err(PluginError::new(
            "HOOK_REFUSED",
            "the probe refuses this order",
        ));
    }
    Ok(Value::Null)
}

/// The environment variable naming the file [`mark_loaded`] writes.
pub const INIT_MARKER_VARIABLE: &str = "JIT_TEST_PLUGIN_INIT_MARKER";

/// Runs when the system's dynamic loader maps this library, before the host can read
/// anything of it: writes `test-probe-plugin was loaded` to the file named by [`INIT_MARKER_VARIABLE`], when that
/// is set, so a test can tell whether the library was loaded at all (`jit check` must not
/// load it).
extern "C" fn mark_loaded() {
    if let Some(marker) = std::env::var_os(INIT_MARKER_VARIABLE) {
        let _ = std::fs::write(marker, "test-probe-plugin was loaded");
    }
}

// An initialiser, as a constructor crate would register one.
// SAFETY: the section holds pointers to functions the loader calls once, without arguments
// it requires, while mapping the library; `mark_loaded` is such a function.
#[used]
#[cfg_attr(
    any(target_os = "linux", target_os = "android", target_os = "freebsd"),
    unsafe(link_section = ".init_array")
)]
#[cfg_attr(
    target_vendor = "apple",
    unsafe(link_section = "__DATA,__mod_init_func")
)]
#[cfg_attr(windows, unsafe(link_section = ".CRT$XCU"))]
static MARK_LOADED: extern "C" fn() = mark_loaded;
