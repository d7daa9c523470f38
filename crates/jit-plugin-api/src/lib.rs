//! The stable native-plugin ABI between the jit host and Type plugins loaded with libloading.
//!
//! A native plugin is a `cdylib` that implements one element Type extending another (for
//! example a Type whose `type` is `pays.WechatPayType`). It depends on this crate only, never
//! on the runtime: everything that crosses the library boundary is defined here and is either
//! a `#[repr(C)]` struct, a C function pointer or a byte string holding JSON. No Rust trait
//! object, `String`, `Vec` or other std type crosses it, and no allocation made on one side is
//! freed on the other.
//!
//! # Writing a plugin
//!
//! ```
//! use jit_plugin_api::{Parent, Plugin, PluginError};
//! use serde_json::Value;
//!
//! struct Passthrough;
//!
//! impl Plugin for Passthrough {
//!     fn call(&self, function: &str, args: Value, parent: &Parent) -> Result<Value, PluginError> {
//!         parent.call(function, args)
//!     }
//! }
//!
//! jit_plugin_api::export_plugin!(Passthrough);
//! ```
//!
//! # What the host sees
//!
//! [`export_plugin!`] exports exactly one symbol, the static [`PluginHeader`] named
//! [`HEADER_SYMBOL`]. Its first fields ([`HeaderPrefix`]) are frozen for every ABI version, so
//! a host reads magic, ABI version and header size before trusting anything else, then the
//! version strings, and only when every field matches does it call one of the plugin's entry
//! points ([`PluginEntryPoints`]). Results flow back through an [`OutputSink`]: the caller
//! lends a callback, the callee hands it bytes that live only for the duration of that
//! callback, and the caller copies them into its own memory.
//!
//! This crate must not know about the runtime's Rust types, HTTP, databases or payments.

#![deny(missing_docs)]
// This crate defines a C ABI: raw pointers, `extern "C"` functions and an exported
// `#[no_mangle]` static are the point of it, so the workspace's `unsafe_code = "deny"` is
// lifted here. Every `unsafe` block states the invariant it relies on.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The first eight bytes of every plugin header.
pub const MAGIC: [u8; 8] = *b"JITPLUG\0";

/// The version of this ABI. Bumped whenever anything in [`PluginHeader`] after the
/// [`HeaderPrefix`], in [`PluginEntryPoints`], in [`HostApi`] or in the meaning of a status
/// code changes.
pub const ABI_VERSION: u32 = 1;

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
/// The entry point failed; the sink received a [`PluginError`] as JSON.
pub const STATUS_ERROR: u32 = 1;
/// The entry point panicked and the panic was caught; the sink received a [`PluginError`]
/// (code [`PluginError::PANIC`]) as JSON.
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
    /// name and version. [`export_plugin!`] calls this; plugin authors need not.
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
        // whole call, and `bytes` is valid for the duration of this callback.
        let collector = unsafe { &mut *ctx.cast::<Vec<u8>>() };
        collector.extend_from_slice(unsafe { bytes.as_slice() });
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
    // SAFETY: guaranteed by the caller.
    if let Some(sink) = unsafe { sink.as_ref() } {
        // SAFETY: `ctx` is the sink owner's own pointer, handed back unchanged.
        unsafe { (sink.write)(sink.ctx, ByteView::of(bytes)) }
    }
}

/// The functions a plugin exports through its header.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginEntryPoints {
    /// Writes a [`PluginDescription`] as JSON. Returns a status code.
    pub describe: unsafe extern "C" fn(out: *const OutputSink) -> u32,
    /// Calls `function` (UTF-8) with `args_json` (a JSON object) for the element described by
    /// `host`; writes the JSON result or a [`PluginError`]. Returns a status code.
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
    /// result or a [`PluginError`]. Returns a status code. Never unwinds.
    pub call_parent: unsafe extern "C" fn(
        ctx: *const c_void,
        function: ByteView,
        args_json: ByteView,
        out: *const OutputSink,
    ) -> u32,
    /// Writes an [`ElementInfo`] as JSON. Returns a status code. Never unwinds.
    pub element_info: unsafe extern "C" fn(ctx: *const c_void, out: *const OutputSink) -> u32,
}

/// What a plugin tells the host about itself once its header is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginDescription {
    /// Functions the plugin implements itself; every other function goes straight to the
    /// parent without entering the plugin. `None`: every call enters the plugin.
    pub overrides: Option<Vec<String>>,
}

/// The element a call is made on, as the host describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElementInfo {
    /// The element's fullName, e.g. `pays.myDiscountPay`.
    pub full_name: String,
    /// Its type chain, the element first and its Meta last, e.g. `["pays.myDiscountPay",
    /// "pays.DiscountWechatPayType", "pays.WechatPayType", "pays.Meta"]`.
    pub chain: Vec<String>,
    /// Its settings merged along the chain, nearest first: for each element of the chain its
    /// configuration file, then the keys of its `e.json` the runtime does not know (so a key
    /// such as `discountPercent` set on the plugin's Type applies to every instance unless an
    /// instance sets its own). Values the chain marks secret are masked.
    pub settings: serde_json::Map<String, Value>,
}

/// The category of a [`PluginError`]: what kind of failure it is. The host maps it one to
/// one onto the runtime's call error categories, and an HTTP host answers with the
/// category's status (404, 400, 401, 409, 502, 500). On the wire it is the category's code,
/// the same string as the code of an error that has no more specific one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginErrorKind {
    /// What was asked for does not exist (an order, a record).
    NotFound,
    /// The function is not implemented.
    FunctionNotFound,
    /// Arguments are missing, of the wrong kind or out of range.
    BadArguments,
    /// The function requires a logged-in caller.
    Unauthorized,
    /// The call conflicts with the current state or a rule of the element (a refusal).
    Conflict,
    /// A third party failed or answered with an error.
    Upstream,
    /// Anything the caller cannot fix.
    Internal,
}

impl PluginErrorKind {
    /// Every category, in declaration order.
    pub const ALL: [PluginErrorKind; 7] = [
        PluginErrorKind::NotFound,
        PluginErrorKind::FunctionNotFound,
        PluginErrorKind::BadArguments,
        PluginErrorKind::Unauthorized,
        PluginErrorKind::Conflict,
        PluginErrorKind::Upstream,
        PluginErrorKind::Internal,
    ];

    /// The category's own code (`NOT_FOUND`, `BAD_ARGUMENTS`, ...), its wire form too.
    pub const fn code(self) -> &'static str {
        match self {
            PluginErrorKind::NotFound => "NOT_FOUND",
            PluginErrorKind::FunctionNotFound => "FUNCTION_NOT_FOUND",
            PluginErrorKind::BadArguments => "BAD_ARGUMENTS",
            PluginErrorKind::Unauthorized => "UNAUTHORIZED",
            PluginErrorKind::Conflict => "CONFLICT",
            PluginErrorKind::Upstream => "UPSTREAM",
            PluginErrorKind::Internal => "INTERNAL",
        }
    }

    /// The category whose own code is `code`, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// An error crossing the boundary in either direction, as JSON:
/// `{"code": "...", "message": "...", "kind": "...", "details": ...}`.
///
/// `code` is the stable code a caller matches on; `kind` the category that decides how the
/// failure is treated (an HTTP status, for one). The category is
/// [`category`](Self::category):
///
/// - `kind` when present (`with_kind`, and every helper constructor, set it);
/// - otherwise, when `code` is itself a category's code (`BAD_ARGUMENTS`, `NOT_FOUND`,
///   `FUNCTION_NOT_FOUND`, `UNAUTHORIZED`, `CONFLICT`, `UPSTREAM`, `INTERNAL`), that category;
/// - otherwise [`PANIC`](Self::PANIC) and [`PROTOCOL`](Self::PROTOCOL) are internal, and any
///   other code (such as [`REJECTED`](Self::REJECTED)) is a refusal by the plugin's own rule:
///   [`PluginErrorKind::Conflict`].
///
/// `kind` is optional on the wire, so plugins and hosts built before it existed still
/// understand each other, and a `kind` this side does not know is read as absent. An error
/// the parent returned through [`Parent::call`] carries the parent's own code and category,
/// so `?` propagates it unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginError {
    /// A stable, machine-readable code, e.g. `BAD_ARGUMENTS`, `REJECTED`, `ORDER_NOT_FOUND`.
    pub code: String,
    /// A human-readable message; must not contain secrets.
    pub message: String,
    /// The category, when the code alone does not say it; see [`category`](Self::category).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "known_kind_or_none"
    )]
    pub kind: Option<PluginErrorKind>,
    /// Optional structured detail. Boxed because it is rare and a `Value` is large: every
    /// `Result<_, PluginError>` would otherwise carry its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<Value>>,
}

/// Reads `kind` leniently: a category added by a later version of this crate must not make
/// the whole error undecodable on an older side, which then falls back on the code.
fn known_kind_or_none<'de, D>(deserializer: D) -> Result<Option<PluginErrorKind>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.and_then(|value| serde_json::from_value(value).ok()))
}

impl PluginError {
    /// Arguments missing or of the wrong kind.
    pub const BAD_ARGUMENTS: &'static str = "BAD_ARGUMENTS";
    /// The plugin refuses the call by a rule of its own.
    pub const REJECTED: &'static str = "REJECTED";
    /// The plugin does not know the function.
    pub const FUNCTION_NOT_FOUND: &'static str = "FUNCTION_NOT_FOUND";
    /// Something the caller cannot fix (a misconfigured element, for example).
    pub const INTERNAL: &'static str = "INTERNAL";
    /// A panic was caught at the boundary (in the plugin, or in the host's callback).
    pub const PANIC: &'static str = "PLUGIN_PANIC";
    /// Bytes crossing the boundary were not what the ABI promises (bad UTF-8 or JSON).
    pub const PROTOCOL: &'static str = "PLUGIN_PROTOCOL";

    /// An error with the given code and message, its category left to
    /// [`category`](Self::category)'s rules.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            kind: None,
            details: None,
        }
    }

    /// An error of a category with a code of its own, e.g.
    /// `PluginError::of_kind(PluginErrorKind::NotFound, "COUPON_NOT_FOUND", "...")`.
    pub fn of_kind(
        kind: PluginErrorKind,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(code, message).with_kind(kind)
    }

    /// A [`BAD_ARGUMENTS`](Self::BAD_ARGUMENTS) error.
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        Self::of_kind(PluginErrorKind::BadArguments, Self::BAD_ARGUMENTS, message)
    }

    /// A [`REJECTED`](Self::REJECTED) error, a [`PluginErrorKind::Conflict`].
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::of_kind(PluginErrorKind::Conflict, Self::REJECTED, message)
    }

    /// An [`INTERNAL`](Self::INTERNAL) error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::of_kind(PluginErrorKind::Internal, Self::INTERNAL, message)
    }

    /// A [`FUNCTION_NOT_FOUND`](Self::FUNCTION_NOT_FOUND) error naming `function`.
    pub fn unknown_function(function: &str) -> Self {
        Self::of_kind(
            PluginErrorKind::FunctionNotFound,
            Self::FUNCTION_NOT_FOUND,
            format!("function `{function}` is not implemented by this plugin"),
        )
    }

    /// Sets the category.
    pub fn with_kind(mut self, kind: PluginErrorKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The category: `kind` if set, else the one `code` names, else internal for
    /// [`PANIC`](Self::PANIC) / [`PROTOCOL`](Self::PROTOCOL) and
    /// [`Conflict`](PluginErrorKind::Conflict) (a plugin's refusal) for any other code.
    pub fn category(&self) -> PluginErrorKind {
        if let Some(kind) = self.kind {
            return kind;
        }
        if let Some(kind) = PluginErrorKind::from_code(&self.code) {
            return kind;
        }
        match self.code.as_str() {
            Self::PANIC | Self::PROTOCOL => PluginErrorKind::Internal,
            _ => PluginErrorKind::Conflict,
        }
    }

    /// Adds structured detail.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Decodes an error written by the other side; bytes that are not a `PluginError` become
    /// a [`PROTOCOL`](Self::PROTOCOL) error quoting them (truncated).
    pub fn from_wire(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_else(|decode_error| {
            let text = String::from_utf8_lossy(bytes);
            let excerpt: String = text.chars().take(200).collect();
            Self::new(
                Self::PROTOCOL,
                format!(
                    "undecodable error from across the plugin boundary ({decode_error}): {excerpt}"
                ),
            )
        })
    }

    /// Encodes for the wire.
    pub fn to_wire(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"code":"PLUGIN_PROTOCOL","message":"error not serialisable"}"#.to_vec()
        })
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for PluginError {}

/// A Type implemented by a native plugin.
///
/// One value serves every instance of the Type, from many threads at once; which instance a
/// call is for is told by [`Parent::element`].
pub trait Plugin: Send + Sync + 'static {
    /// Handles `function` with its JSON `args` (an object keyed by argument name). Use
    /// `parent` to delegate to the Type this one extends.
    fn call(&self, function: &str, args: Value, parent: &Parent) -> Result<Value, PluginError>;

    /// The functions [`call`](Self::call) handles itself. The host sends every other function
    /// straight to the parent without entering the plugin. `None` (the default): every call
    /// enters the plugin.
    fn overrides(&self) -> Option<&'static [&'static str]> {
        None
    }
}

/// The host as seen from inside [`Plugin::call`]: the parent Type's implementation and the
/// element the call is for. Only reachable by reference during a call, and neither `Send` nor
/// `Sync`, because the callbacks behind it are valid only there.
pub struct Parent {
    host: *const HostApi,
}

impl Parent {
    /// Calls the parent Type's implementation of `function` with `args` (a JSON object).
    /// A parent's error comes back as the parent reported it.
    pub fn call(&self, function: &str, args: Value) -> Result<Value, PluginError> {
        let args_json = serde_json::to_vec(&args).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("args not serialisable: {error}"),
            )
        })?;
        // SAFETY: `host` was valid when the host entered `call`, and `Parent` is only
        // reachable by reference during that call.
        let host = unsafe { &*self.host };
        let (status, bytes) = collect_output(|out| {
            // SAFETY: the views borrow locals that outlive the callback; `out` is live.
            unsafe {
                (host.call_parent)(
                    host.ctx,
                    ByteView::of(function.as_bytes()),
                    ByteView::of(&args_json),
                    out,
                )
            }
        });
        decode_reply(status, &bytes)
    }

    /// The element this call is for: fullName, type chain and merged settings.
    pub fn element(&self) -> Result<ElementInfo, PluginError> {
        // SAFETY: as in `call`.
        let host = unsafe { &*self.host };
        // SAFETY: `out` is live for the callback.
        let (status, bytes) = collect_output(|out| unsafe { (host.element_info)(host.ctx, out) });
        let value = decode_reply(status, &bytes)?;
        serde_json::from_value(value).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("element info from the host is malformed: {error}"),
            )
        })
    }
}

impl fmt::Debug for Parent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Parent { .. }")
    }
}

/// Turns a status code and the bytes a sink collected into a result.
pub fn decode_reply(status: u32, bytes: &[u8]) -> Result<Value, PluginError> {
    match status {
        STATUS_OK => serde_json::from_slice(bytes).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("result is not valid JSON: {error}"),
            )
        }),
        STATUS_ERROR | STATUS_PANIC => Err(PluginError::from_wire(bytes)),
        other => Err(PluginError::new(
            PluginError::PROTOCOL,
            format!("unknown status code {other} from across the plugin boundary"),
        )),
    }
}

/// Turns a caught panic's payload into a message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The status code and bytes that answer `result` across the boundary: the inverse of
/// [`decode_reply`]. A value that cannot be serialised becomes a
/// [`PROTOCOL`](PluginError::PROTOCOL) error.
pub fn encode_reply(result: Result<Value, PluginError>) -> (u32, Vec<u8>) {
    match result {
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(bytes) => (STATUS_OK, bytes),
            Err(error) => (
                STATUS_ERROR,
                PluginError::new(
                    PluginError::PROTOCOL,
                    format!("result not serialisable: {error}"),
                )
                .to_wire(),
            ),
        },
        Err(error) => (STATUS_ERROR, error.to_wire()),
    }
}

/// Writes `result` to `out` and returns the matching status code.
///
/// # Safety
/// `out` must be null or a live [`OutputSink`].
unsafe fn reply(out: *const OutputSink, result: Result<Value, PluginError>) -> u32 {
    let (status, bytes) = encode_reply(result);
    // SAFETY: guaranteed by the caller.
    unsafe { write_output(out, &bytes) };
    status
}

/// The glue [`export_plugin!`] expands to. Not part of the stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use std::sync::OnceLock;

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
        finish(out, outcome)
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
            // SAFETY: the caller guarantees both views are valid for the call.
            let function =
                std::str::from_utf8(unsafe { function.as_slice() }).map_err(|error| {
                    PluginError::new(
                        PluginError::PROTOCOL,
                        format!("function name is not UTF-8: {error}"),
                    )
                })?;
            let args: Value =
                serde_json::from_slice(unsafe { args_json.as_slice() }).map_err(|error| {
                    PluginError::new(
                        PluginError::PROTOCOL,
                        format!("arguments of `{function}` are not valid JSON: {error}"),
                    )
                })?;
            let parent = Parent { host };
            plugin().call(function, args, &parent)
        }));
        finish(out, outcome)
    }

    fn finish(
        out: *const OutputSink,
        outcome: std::thread::Result<Result<Value, PluginError>>,
    ) -> u32 {
        match outcome {
            // SAFETY: `out` is as the entry point's caller guaranteed.
            Ok(result) => unsafe { reply(out, result) },
            Err(payload) => {
                let error = PluginError::new(
                    PluginError::PANIC,
                    format!("plugin panicked: {}", panic_message(payload.as_ref())),
                );
                // Writing goes through the host's sink, which never unwinds.
                // SAFETY: as above.
                unsafe { write_output(out, &error.to_wire()) };
                STATUS_PANIC
            }
        }
    }
}

/// Exports a [`Plugin`] from a `cdylib`: the header static under [`HEADER_SYMBOL`] and its
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
///         _parent: &jit_plugin_api::Parent,
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
    fn decode_reply_distinguishes_statuses() {
        assert_eq!(decode_reply(STATUS_OK, b"{\"a\":1}").unwrap()["a"], 1);
        let error = decode_reply(STATUS_ERROR, &PluginError::rejected("no").to_wire()).unwrap_err();
        assert_eq!(error, PluginError::rejected("no"));
        let garbled = decode_reply(STATUS_ERROR, b"not json").unwrap_err();
        assert_eq!(garbled.code, PluginError::PROTOCOL);
        assert!(garbled.message.contains("not json"));
        let (status, bytes) = encode_reply(Ok(serde_json::json!({"a": 1})));
        assert_eq!(decode_reply(status, &bytes).unwrap()["a"], 1);
        let (status, bytes) = encode_reply(Err(PluginError::rejected("no")));
        assert_eq!(
            decode_reply(status, &bytes).unwrap_err(),
            PluginError::rejected("no")
        );
        let unknown = decode_reply(7, b"").unwrap_err();
        assert!(unknown.message.contains("unknown status code 7"));
    }

    #[test]
    fn category_comes_from_kind_then_code_then_the_refusal_default() {
        assert_eq!(
            PluginError::rejected("no").category(),
            PluginErrorKind::Conflict
        );
        let explicit = PluginError::of_kind(PluginErrorKind::NotFound, "ORDER_NOT_FOUND", "x");
        assert_eq!(explicit.category(), PluginErrorKind::NotFound);
        assert_eq!(
            PluginError::new("UPSTREAM", "x").category(),
            PluginErrorKind::Upstream
        );
        assert_eq!(
            PluginError::new(PluginError::PANIC, "x").category(),
            PluginErrorKind::Internal
        );
        assert_eq!(
            PluginError::new("ORDER_NOT_FOUND", "x").category(),
            PluginErrorKind::Conflict
        );
    }

    #[test]
    fn kind_is_optional_and_lenient_on_the_wire() {
        let explicit = PluginError::of_kind(PluginErrorKind::NotFound, "ORDER_NOT_FOUND", "x");
        let wire = String::from_utf8(explicit.to_wire()).unwrap();
        assert!(wire.contains(r#""kind":"NOT_FOUND""#), "{wire}");
        assert_eq!(PluginError::from_wire(wire.as_bytes()), explicit);

        // Written before `kind` existed.
        let old = PluginError::from_wire(br#"{"code":"BAD_ARGUMENTS","message":"m"}"#);
        assert_eq!(
            (old.kind, old.category()),
            (None, PluginErrorKind::BadArguments)
        );
        assert!(!String::from_utf8(old.to_wire()).unwrap().contains("kind"));

        // A category this side does not know falls back on the code.
        let newer = PluginError::from_wire(br#"{"code":"SLOW","message":"m","kind":"TIMEOUT"}"#);
        assert_eq!((newer.code.as_str(), newer.kind), ("SLOW", None));
        assert_eq!(newer.category(), PluginErrorKind::Conflict);
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
