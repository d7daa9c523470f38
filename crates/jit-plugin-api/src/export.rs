//! The glue that makes a [`Plugin`] a loadable library: [`export_plugin!`](crate::export_plugin!)
//! and the entry-point bodies it expands to, which catch every panic before it can unwind
//! into the host. Not part of the stable API: the macro reaches these through
//! `__private`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;

use crate::abi::{ByteView, HostApi, OutputSink, STATUS_PANIC, write_output};
use crate::error::PluginError;
use crate::messages::PluginDescription;
use crate::plugin::{Host, Plugin};
use crate::reply::{panic_message, write_reply};

/// Body of the exported `describe` entry point.
///
/// # Safety
/// `out` must be null or a live [`OutputSink`].
pub unsafe fn describe(plugin: fn() -> &'static dyn Plugin, out: *const OutputSink) -> u32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let description = PluginDescription {
            overrides: plugin()
                .overrides()
                .map(|names| names.iter().map(|name| (*name).to_owned()).collect()),
        };
        serde_json::to_value(description)
            .map_err(|error| PluginError::new(PluginError::PROTOCOL, error.to_string()))
    }));
    // SAFETY: `out` is null or a live sink, as this entry point's caller guarantees.
    unsafe { finish(out, outcome) }
}

/// Body of the exported `call` entry point.
///
/// # Safety
/// `host` must point at a [`HostApi`] valid for the whole call, the views must be valid
/// for the whole call, and `out` must be null or a live [`OutputSink`].
pub unsafe fn call(
    plugin: fn() -> &'static dyn Plugin,
    host: *const HostApi,
    function: ByteView,
    args_json: ByteView,
    out: *const OutputSink,
) -> u32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if host.is_null() {
            return Err(PluginError::new(
                PluginError::PROTOCOL,
                "host table is null",
            ));
        }
        // SAFETY: the caller guarantees `function` is valid for the whole call.
        let function = unsafe { function.as_slice() };
        // SAFETY: the caller guarantees `args_json` is valid for the whole call.
        let args_json = unsafe { args_json.as_slice() };
        let function = std::str::from_utf8(function).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("function name is not UTF-8: {error}"),
            )
        })?;
        let args: Value = serde_json::from_slice(args_json).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("arguments of `{function}` are not valid JSON: {error}"),
            )
        })?;
        let host = Host::new(host);
        plugin().call(function, args, &host)
    }));
    // SAFETY: `out` is null or a live sink, as this entry point's caller guarantees.
    unsafe { finish(out, outcome) }
}

/// Writes an entry point's outcome to `out`: its result, or a caught panic as an error.
///
/// # Safety
/// `out` must be null or a live [`OutputSink`].
unsafe fn finish(
    out: *const OutputSink,
    outcome: std::thread::Result<Result<Value, PluginError>>,
) -> u32 {
    match outcome {
        // SAFETY: `out` is null or a live sink, as this function's caller guarantees.
        Ok(result) => unsafe { write_reply(out, result) },
        Err(payload) => {
            let error = PluginError::new(
                PluginError::PANIC,
                format!("plugin panicked: {}", panic_message(payload.as_ref())),
            );
            // Writing goes through the host's sink, which never unwinds.
            // SAFETY: `out` is null or a live sink, as this function's caller guarantees.
            unsafe { write_output(out, &error.to_wire()) };
            STATUS_PANIC
        }
    }
}

/// Exports a [`Plugin`] from a `cdylib`: the header static under [`HEADER_SYMBOL`](crate::HEADER_SYMBOL) and its
/// entry points, each of which catches panics.
///
/// The argument is an expression building the plugin; it is evaluated once, on first use (not
/// when the library is loaded), inside the panic guard.
///
/// ```
/// struct Noop;
/// impl jit_plugin_api::Plugin for Noop {
///     fn call(
///         &self,
///         function: &str,
///         _args: serde_json::Value,
///         _host: &jit_plugin_api::Host,
///     ) -> Result<serde_json::Value, jit_plugin_api::PluginError> {
///         Err(jit_plugin_api::PluginError::unknown_function(function))
///     }
/// }
/// jit_plugin_api::export_plugin!(Noop);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:expr) => {
        const _: () = {
            fn __jit_plugin_instance() -> &'static dyn $crate::Plugin {
                static INSTANCE: $crate::__private::OnceLock<
                    ::std::boxed::Box<dyn $crate::Plugin>,
                > = $crate::__private::OnceLock::new();
                INSTANCE
                    .get_or_init(|| ::std::boxed::Box::new($plugin))
                    .as_ref()
            }

            unsafe extern "C" fn __jit_plugin_describe(out: *const $crate::OutputSink) -> u32 {
                // SAFETY: the host passes a live sink, as the ABI requires.
                unsafe { $crate::__private::describe(__jit_plugin_instance, out) }
            }

            unsafe extern "C" fn __jit_plugin_call(
                host: *const $crate::HostApi,
                function: $crate::ByteView,
                args_json: $crate::ByteView,
                out: *const $crate::OutputSink,
            ) -> u32 {
                // SAFETY: the host passes pointers valid for the call, as the ABI requires.
                unsafe {
                    $crate::__private::call(__jit_plugin_instance, host, function, args_json, out)
                }
            }

            #[unsafe(no_mangle)]
            #[allow(non_upper_case_globals)]
            pub static JIT_PLUGIN_HEADER: $crate::PluginHeader = $crate::PluginHeader::current(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
                $crate::PluginEntryPoints {
                    describe: __jit_plugin_describe,
                    call: __jit_plugin_call,
                },
            );
        };
    };
}
