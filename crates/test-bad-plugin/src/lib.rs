//! A plugin the host must refuse: its header is well-formed but claims ABI version 999.
//!
//! Its entry points leave a trace (they create `jit-bad-plugin-<pid>-ran` in the temporary
//! directory, `<pid>` being the loading process's) so tests can prove the host never called
//! them. It exists for the host's tests only.

#![deny(missing_docs)]
// Exporting the header by hand (instead of through `export_plugin!`) needs `#[no_mangle]`
// and `extern "C"` functions, which the workspace's `unsafe_code` lint denies by default.
#![allow(unsafe_code)]

use jit_plugin_api::{OutputSink, PluginEntryPoints, PluginHeader};

/// The ABI version this library claims.
pub const CLAIMED_ABI_VERSION: u32 = 999;

fn leave_trace() -> u32 {
    let trace = std::env::temp_dir().join(format!("jit-bad-plugin-{}-ran", std::process::id()));
    let _ = std::fs::write(trace, b"an entry point of test-bad-plugin ran");
    jit_plugin_api::STATUS_ERROR
}

unsafe extern "C" fn describe(_out: *const OutputSink) -> u32 {
    leave_trace()
}

unsafe extern "C" fn call(
    _host: *const jit_plugin_api::HostApi,
    _function: jit_plugin_api::ByteView,
    _args_json: jit_plugin_api::ByteView,
    _out: *const OutputSink,
) -> u32 {
    leave_trace()
}

const fn header_with_wrong_abi() -> PluginHeader {
    let mut header = PluginHeader::current(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        PluginEntryPoints { describe, call },
    );
    header.prefix.abi_version = CLAIMED_ABI_VERSION;
    header
}

/// The header the host reads, with ABI version 999.
#[unsafe(no_mangle)]
pub static JIT_PLUGIN_HEADER: PluginHeader = header_with_wrong_abi();
