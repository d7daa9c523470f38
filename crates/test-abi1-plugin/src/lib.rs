//! A plugin as one built for ABI version 1 is: its header says `abi_version` 1, and it sees
//! the host's callback table as version 1 defined it, two callbacks long ([`HostApiV1`]).
//! A host of a later version must load it and serve it unchanged. It exists for the host's
//! tests only.
//!
//! - `echo(..)` returns the function name, the arguments and the element info
//!   (`element_info`);
//! - anything else goes to the parent unchanged (`call_parent`).

#![deny(missing_docs)]
// Exporting the header by hand (instead of through `export_plugin!`, which writes the
// current version) needs `#[no_mangle]` and `extern "C"` functions, which the workspace's
// `unsafe_code` lint denies by default.
#![allow(unsafe_code)]

use std::ffi::c_void;

use jit_plugin_api::{
    ByteView, HostApi, OutputSink, PluginEntryPoints, PluginError, PluginHeader, STATUS_ERROR,
    STATUS_OK, collect_output, decode_reply, write_output,
};
use serde_json::{Value, json};

/// The ABI version this library is built as.
pub const ABI_VERSION: u32 = 1;

/// The host's callback table as ABI version 1 defined it: what this plugin reads of the
/// table it is lent, and nothing after it.
#[repr(C)]
pub struct HostApiV1 {
    /// Handed back to every callback.
    pub ctx: *const c_void,
    /// Calls the parent Type's implementation.
    pub call_parent: unsafe extern "C" fn(
        ctx: *const c_void,
        function: ByteView,
        args_json: ByteView,
        out: *const OutputSink,
    ) -> u32,
    /// Writes the element info.
    pub element_info: unsafe extern "C" fn(ctx: *const c_void, out: *const OutputSink) -> u32,
}

unsafe extern "C" fn describe(out: *const OutputSink) -> u32 {
    // SAFETY: the host passes a live sink, as the ABI requires.
    unsafe { write_output(out, br#"{"overrides":null}"#) };
    STATUS_OK
}

fn serve(host: &HostApiV1, function: &str, args_json: &[u8]) -> Result<Value, PluginError> {
    match function {
        "echo" => {
            // SAFETY: `ctx` is the host's own pointer, handed back during its call; the sink
            // is the live one `collect_output` lends.
            let (status, bytes) =
                collect_output(|out| unsafe { (host.element_info)(host.ctx, out) });
            let element = decode_reply(status, &bytes)?;
            let args: Value = serde_json::from_slice(args_json)
                .map_err(|error| PluginError::new(PluginError::PROTOCOL, error.to_string()))?;
            Ok(json!({"function": function, "args": args, "element": element, "abi": ABI_VERSION}))
        }
        other => {
            let (status, bytes) = collect_output(|out| {
                // SAFETY: as above; the views borrow this frame's data, alive for the call.
                unsafe {
                    (host.call_parent)(
                        host.ctx,
                        ByteView::of(other.as_bytes()),
                        ByteView::of(args_json),
                        out,
                    )
                }
            });
            decode_reply(status, &bytes)
        }
    }
}

unsafe extern "C" fn call(
    host: *const HostApi,
    function: ByteView,
    args_json: ByteView,
    out: *const OutputSink,
) -> u32 {
    let outcome = std::panic::catch_unwind(|| {
        // SAFETY: the host lends a table valid for this call; a version-1 plugin reads only
        // its version-1 prefix, which is what `HostApiV1` lays out.
        let host = unsafe { &*host.cast::<HostApiV1>() };
        // SAFETY: the host lends the views for the whole call.
        let (function, args_json) = unsafe { (function.as_slice(), args_json.as_slice()) };
        let function = std::str::from_utf8(function)
            .map_err(|error| PluginError::new(PluginError::PROTOCOL, error.to_string()))?;
        serve(host, function, args_json)
    });
    let (status, bytes) = match outcome {
        Ok(result) => jit_plugin_api::encode_reply(result),
        Err(_) => (
            STATUS_ERROR,
            PluginError::internal("test-abi1-plugin panicked").to_wire(),
        ),
    };
    // SAFETY: the host passes a live sink, as the ABI requires.
    unsafe { write_output(out, &bytes) };
    status
}

const fn version_1_header() -> PluginHeader {
    let mut header = PluginHeader::current(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        PluginEntryPoints { describe, call },
    );
    header.prefix.abi_version = ABI_VERSION;
    header
}

/// The header the host reads, with ABI version 1.
#[unsafe(no_mangle)]
pub static JIT_PLUGIN_HEADER: PluginHeader = version_1_header();
