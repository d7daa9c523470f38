//! A plugin for the host's tests. It declares no overrides, so every call enters it:
//!
//! - `echo(..)` returns the function name, the arguments and the element info it sees;
//! - `forward(function, args)` calls the parent's `function` with `args` and returns what the
//!   parent returned (or its error);
//! - `panic()` panics, to prove the panic is caught inside the library;
//! - anything else goes to the parent unchanged.

#![deny(missing_docs)]

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
            other => parent.call(other, args),
        }
    }
}

jit_plugin_api::export_plugin!(ProbePlugin);
