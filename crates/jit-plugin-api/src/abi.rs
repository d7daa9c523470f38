//! The frozen C ABI: everything that crosses the library boundary, as the host and a plugin
//! see it in memory. An ABI review reads this file alone.
//!
//! Only `#[repr(C)]` structs, C function pointers, integers and borrowed bytes appear here.
//! [`HeaderPrefix`] never changes; anything else in [`PluginHeader`], [`PluginEntryPoints`],
//! [`HostApi`] or the meaning of a status code changing bumps [`ABI_VERSION`]. The bytes are
//! JSON whose shapes the other modules define ([`PluginError`](crate::PluginError),
//! [`PluginDescription`](crate::PluginDescription), [`ElementInfo`](crate::ElementInfo)); a
//! result or error travels back through an [`OutputSink`] the caller lends, so nothing
//! allocated on one side is freed on the other.

use std::ffi::c_void;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The first eight bytes of every plugin header.
pub const MAGIC: [u8; 8] = *b"JITPLUG\0";

/// The version of this ABI. Bumped whenever anything in [`PluginHeader`] after the
/// [`HeaderPrefix`], in [`PluginEntryPoints`], in [`HostApi`] or in the meaning of a status
/// code changes.
///
/// - 1: the plugin may call its parent and read its element (`call_parent`,
///   `element_info`).
/// - 2: [`HostApi`] gains `get_element`, `call` (any element of the app) and
///   `find_elements` (JitAi's selector query), appended after the version-1 callbacks;
///   nothing else changed.
pub const ABI_VERSION: u32 = 2;

/// The oldest ABI version a host built with this crate still loads. [`HostApi`] only ever
/// grows at its end, so the table a host lends serves plugins of every version from this
/// one to [`ABI_VERSION`]: an older plugin reads only the callbacks it knows.
pub const OLDEST_ABI_VERSION: u32 = 1;

/// The `header_size` a plugin of ABI `version` writes, for the versions a host built with
/// this crate loads ([`OLDEST_ABI_VERSION`]..=[`ABI_VERSION`]); `None` for any other.
/// Versions 1 and 2 differ only in [`HostApi`], so their headers are the same size.
pub const fn header_size_of_abi(version: u32) -> Option<usize> {
    match version {
        1 | 2 => Some(size_of::<PluginHeader>()),
        _ => None,
    }
}

/// The version of this crate, written into every plugin header.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `rustc -V` of the compiler this crate (and so the plugin or host using it) was built with.
pub const RUSTC_VERSION: &str = env!("JIT_PLUGIN_API_RUSTC_VERSION");

/// The target triple this crate (and so the plugin or host using it) was built for.
pub const TARGET_TRIPLE: &str = env!("JIT_PLUGIN_API_TARGET");

/// The name of the exported header static, NUL-terminated as `dlsym` wants it.
pub const HEADER_SYMBOL: &[u8] = b"JIT_PLUGIN_HEADER\0";

/// How many bytes of text a [`HeaderString`] holds.
pub const HEADER_STRING_CAPACITY: usize = 124;

/// The entry point returned normally; the sink received the result as JSON.
pub const STATUS_OK: u32 = 0;
/// The entry point failed; the sink received a [`PluginError`](crate::PluginError) as JSON.
pub const STATUS_ERROR: u32 = 1;
/// The entry point panicked and the panic was caught; the sink received a [`PluginError`](crate::PluginError)
/// (code [`PluginError::PANIC`](crate::PluginError::PANIC)) as JSON.
pub const STATUS_PANIC: u32 = 2;

/// A string stored inline in the header: no pointer, so reading it runs nothing and needs no
/// relocation.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HeaderString {
    len: u32,
    bytes: [u8; HEADER_STRING_CAPACITY],
}

impl HeaderString {
    /// Stores `text`; fails to compile (in const context) when it exceeds
    /// [`HEADER_STRING_CAPACITY`] bytes.
    pub const fn new(text: &str) -> Self {
        let source = text.as_bytes();
        assert!(
            source.len() <= HEADER_STRING_CAPACITY,
            "header string longer than HEADER_STRING_CAPACITY"
        );
        let mut bytes = [0u8; HEADER_STRING_CAPACITY];
        let mut index = 0;
        while index < source.len() {
            bytes[index] = source[index];
            index += 1;
        }
        Self {
            len: source.len() as u32,
            bytes,
        }
    }

    /// The stored text, or a description of why the bytes are not valid text (a corrupt or
    /// foreign header).
    pub fn to_text(&self) -> Result<&str, String> {
        let len = self.len as usize;
        let bytes = self.bytes.get(..len).ok_or_else(|| {
            format!("<invalid: length {len} exceeds capacity {HEADER_STRING_CAPACITY}>")
        })?;
        std::str::from_utf8(bytes).map_err(|error| format!("<invalid UTF-8: {error}>"))
    }

    /// The stored text, or a placeholder describing why it is unreadable. For messages.
    pub fn display_text(&self) -> String {
        match self.to_text() {
            Ok(text) => text.to_owned(),
            Err(problem) => problem,
        }
    }
}

impl fmt::Debug for HeaderString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.display_text(), formatter)
    }
}

/// The leading fields of [`PluginHeader`], identical in every ABI version. A host reads only
/// these until they match its expectations.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HeaderPrefix {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// The plugin's [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<PluginHeader>()` as the plugin saw it.
    pub header_size: u32,
}

/// The static every plugin exports under [`HEADER_SYMBOL`].
#[repr(C)]
#[derive(Debug)]
pub struct PluginHeader {
    /// Frozen leading fields: magic, ABI version, header size.
    pub prefix: HeaderPrefix,
    /// [`API_VERSION`] of the `jit-plugin-api` the plugin was built against.
    pub api_version: HeaderString,
    /// [`RUSTC_VERSION`] of the compiler that built the plugin.
    pub rustc_version: HeaderString,
    /// [`TARGET_TRIPLE`] the plugin was built for.
    pub target_triple: HeaderString,
    /// The plugin package's name (`CARGO_PKG_NAME`), for messages.
    pub plugin_name: HeaderString,
    /// The plugin package's version (`CARGO_PKG_VERSION`), for messages.
    pub plugin_version: HeaderString,
    /// What the host may call once the header is accepted.
    pub entry_points: PluginEntryPoints,
}

impl PluginHeader {
    /// A header describing this build of the API crate, for a plugin with the given package
    /// name and version. [`export_plugin!`](crate::export_plugin!) calls this; plugin authors need not.
    pub const fn current(
        plugin_name: &str,
        plugin_version: &str,
        entry_points: PluginEntryPoints,
    ) -> Self {
        Self {
            prefix: HeaderPrefix {
                magic: MAGIC,
                abi_version: ABI_VERSION,
                header_size: size_of::<PluginHeader>() as u32,
            },
            api_version: HeaderString::new(API_VERSION),
            rustc_version: HeaderString::new(RUSTC_VERSION),
            target_triple: HeaderString::new(TARGET_TRIPLE),
            plugin_name: HeaderString::new(plugin_name),
            plugin_version: HeaderString::new(plugin_version),
            entry_points,
        }
    }
}

/// Borrowed bytes: valid only for the duration of the call they are passed to.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ByteView {
    /// Start of the bytes; may be null when `len` is zero.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl ByteView {
    /// Views `bytes` for the duration of a call.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The viewed bytes.
    ///
    /// # Safety
    /// `ptr` must point at `len` initialised bytes that stay valid and unmodified for `'a`
    /// (or `len` must be zero).
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees `ptr..ptr+len` is valid for 'a.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// Where a callee puts its result: it calls `write` with bytes that need only live until
/// `write` returns, and the caller copies them. Nothing allocated by one side is ever freed by
/// the other.
#[repr(C)]
#[derive(Debug)]
pub struct OutputSink {
    /// Opaque to the callee; the caller's collector.
    pub ctx: *mut c_void,
    /// Appends `bytes` to the caller's collector. Never unwinds.
    pub write: unsafe extern "C" fn(ctx: *mut c_void, bytes: ByteView),
}

unsafe extern "C" fn append_to_vec(ctx: *mut c_void, bytes: ByteView) {
    // A panic (allocation failure aside, which aborts anyway) must not unwind into the
    // other side's frames.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `&mut Vec<u8>` set up by `collect_output`, alive for the
        // whole call and not otherwise borrowed while the callee runs.
        let collector = unsafe { &mut *ctx.cast::<Vec<u8>>() };
        // SAFETY: the callee lends `bytes` for the duration of this callback, and they are
        // copied before it returns.
        let bytes = unsafe { bytes.as_slice() };
        collector.extend_from_slice(bytes);
    }));
}

/// Runs `call` with a sink that collects into a `Vec` owned by this side, and returns the
/// status `call` returned with the collected bytes.
pub fn collect_output(call: impl FnOnce(*const OutputSink) -> u32) -> (u32, Vec<u8>) {
    let mut collected = Vec::new();
    let sink = OutputSink {
        ctx: (&mut collected as *mut Vec<u8>).cast(),
        write: append_to_vec,
    };
    let status = call(&sink);
    (status, collected)
}

/// Hands `bytes` to `sink`.
///
/// # Safety
/// `sink` must be null or point at a live [`OutputSink`] whose `write` honours its contract.
pub unsafe fn write_output(sink: *const OutputSink, bytes: &[u8]) {
    // SAFETY: the caller guarantees `sink` is null (`as_ref` gives `None`) or points at a
    // live `OutputSink`.
    if let Some(sink) = unsafe { sink.as_ref() } {
        // SAFETY: `write` honours the sink contract (the caller's guarantee); `ctx` is the
        // sink owner's own pointer, handed back unchanged; `bytes` outlives the callback.
        unsafe { (sink.write)(sink.ctx, ByteView::of(bytes)) }
    }
}

/// The functions a plugin exports through its header.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginEntryPoints {
    /// Writes a [`PluginDescription`](crate::PluginDescription) as JSON. Returns a status code.
    pub describe: unsafe extern "C" fn(out: *const OutputSink) -> u32,
    /// Calls `function` (UTF-8) with `args_json` (a JSON object) for the element described by
    /// `host`; writes the JSON result or a [`PluginError`](crate::PluginError). Returns a status code.
    pub call: unsafe extern "C" fn(
        host: *const HostApi,
        function: ByteView,
        args_json: ByteView,
        out: *const OutputSink,
    ) -> u32,
}

/// The table of host callbacks lent to the plugin for one call. Valid only until that call
/// returns, on the thread it was made on.
#[repr(C)]
#[derive(Debug)]
pub struct HostApi {
    /// Opaque to the plugin; handed back unchanged to every callback.
    pub ctx: *const c_void,
    /// Calls the parent Type's implementation of `function` with `args_json`; writes the JSON
    /// result or a [`PluginError`](crate::PluginError). Returns a status code. Never unwinds.
    pub call_parent: unsafe extern "C" fn(
        ctx: *const c_void,
        function: ByteView,
        args_json: ByteView,
        out: *const OutputSink,
    ) -> u32,
    /// Writes an [`ElementInfo`](crate::ElementInfo) as JSON. Returns a status code. Never unwinds.
    pub element_info: unsafe extern "C" fn(ctx: *const c_void, out: *const OutputSink) -> u32,

    // ABI version 2. A plugin of version 1 never reads past this point. Later versions
    // append their callbacks after these.
    /// Looks up the element `full_name` (UTF-8) of the app, as the caller may see it; writes
    /// its [`ElementInfo`](crate::ElementInfo) as JSON, or a `NOT_FOUND`
    /// [`PluginError`](crate::PluginError). Returns a status code. Never unwinds.
    pub get_element: unsafe extern "C" fn(
        ctx: *const c_void,
        full_name: ByteView,
        out: *const OutputSink,
    ) -> u32,
    /// Calls `function` on the element `full_name` of the app with `args_json` (a JSON
    /// object), under the checks and access rules of an HTTP call and with the identity of
    /// the call being served; writes the JSON result or a [`PluginError`](crate::PluginError).
    /// Returns a status code. Never unwinds.
    pub call: unsafe extern "C" fn(
        ctx: *const c_void,
        full_name: ByteView,
        function: ByteView,
        args_json: ByteView,
        out: *const OutputSink,
    ) -> u32,
    /// Finds the elements of the app the selector `selector` (UTF-8, JitAi's `findElements`
    /// language, e.g. `.pays.WechatPayType`) matches, as the caller may see them; writes a
    /// JSON array of [`ElementInfo`](crate::ElementInfo) sorted by fullName, or a
    /// `BAD_ARGUMENTS` [`PluginError`](crate::PluginError) naming where the selector is
    /// wrong. Returns a status code. Never unwinds.
    pub find_elements:
        unsafe extern "C" fn(ctx: *const c_void, selector: ByteView, out: *const OutputSink) -> u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_string_round_trips_and_reports_corruption() {
        let stored = HeaderString::new("rustc 1.95.0 (59807616e 2026-04-14)");
        assert_eq!(
            stored.to_text().unwrap(),
            "rustc 1.95.0 (59807616e 2026-04-14)"
        );

        let mut corrupt = stored;
        corrupt.len = 500;
        assert!(corrupt.to_text().unwrap_err().contains("exceeds capacity"));

        let mut not_utf8 = HeaderString::new("ab");
        not_utf8.bytes[0] = 0xff;
        assert!(not_utf8.display_text().contains("invalid UTF-8"));
    }

    #[test]
    fn build_facts_are_captured() {
        assert!(RUSTC_VERSION.starts_with("rustc "), "{RUSTC_VERSION}");
        assert!(TARGET_TRIPLE.contains('-'), "{TARGET_TRIPLE}");
        assert_eq!(API_VERSION, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn prefix_layout_is_frozen() {
        assert_eq!(size_of::<HeaderPrefix>(), 16);
        assert_eq!(std::mem::offset_of!(PluginHeader, prefix), 0);
        assert_eq!(size_of::<HeaderString>(), 128);
    }

    #[test]
    fn the_host_table_only_grows_at_its_end() {
        // Where an ABI-1 plugin reads its two callbacks must never move.
        let pointer = size_of::<*const c_void>();
        assert_eq!(std::mem::offset_of!(HostApi, ctx), 0);
        assert_eq!(std::mem::offset_of!(HostApi, call_parent), pointer);
        assert_eq!(std::mem::offset_of!(HostApi, element_info), 2 * pointer);
        assert_eq!(std::mem::offset_of!(HostApi, get_element), 3 * pointer);
        assert_eq!(std::mem::offset_of!(HostApi, call), 4 * pointer);
        assert_eq!(std::mem::offset_of!(HostApi, find_elements), 5 * pointer);
    }

    #[test]
    fn every_loadable_version_has_a_header_size() {
        for version in OLDEST_ABI_VERSION..=ABI_VERSION {
            assert_eq!(header_size_of_abi(version), Some(size_of::<PluginHeader>()));
        }
        assert_eq!(header_size_of_abi(0), None);
        assert_eq!(header_size_of_abi(ABI_VERSION + 1), None);
    }

    #[test]
    fn collect_output_gathers_every_write() {
        let (status, bytes) = collect_output(|out| {
            // SAFETY: `out` is the live sink `collect_output` lent us.
            unsafe {
                write_output(out, b"ab");
                write_output(out, b"cd");
            }
            STATUS_OK
        });
        assert_eq!((status, bytes.as_slice()), (STATUS_OK, &b"abcd"[..]));
    }
}
