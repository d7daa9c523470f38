//! A plugin the host must refuse: its header is well-formed but claims ABI version 999.
//!
//! Its entry points leave a trace (they create `jit-bad-plugin-<pid>-ran` in the temporary
//! directory, `<pid>` being the loading process's) so tests can prove the host never called
//! them, and its initialiser (see [`INIT_MARKER_VARIABLE`]) shows whether the library was
//! loaded at all: a refused header must be read from the file alone. It exists for the
//! host's tests only.

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

/// The environment variable naming the file [`mark_loaded`] writes.
pub const INIT_MARKER_VARIABLE: &str = "JIT_TEST_PLUGIN_INIT_MARKER";

/// Runs when the system's dynamic loader maps this library, before the host can read
/// anything of it: writes `test-bad-plugin was loaded` to the file named by [`INIT_MARKER_VARIABLE`], when that
/// is set, so a test can tell whether the library was loaded at all (`jit check` must not
/// load it).
extern "C" fn mark_loaded() {
    if let Some(marker) = std::env::var_os(INIT_MARKER_VARIABLE) {
        let _ = std::fs::write(marker, "test-bad-plugin was loaded");
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
