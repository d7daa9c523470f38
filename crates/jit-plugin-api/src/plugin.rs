//! What a plugin author implements and calls: the [`Plugin`] trait, and [`Parent`], the
//! host as seen from inside a call.

use std::fmt;

use serde_json::Value;

use crate::abi::{ByteView, HostApi, collect_output};
use crate::error::PluginError;
use crate::messages::ElementInfo;
use crate::reply::decode_reply;

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
    /// The parent behind the host table of the call being served.
    pub(crate) fn new(host: *const HostApi) -> Parent {
        Parent { host }
    }

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
        // SAFETY: `host` was valid when the host entered `call`, and `Parent` is only
        // reachable by reference during that call.
        let host = unsafe { &*self.host };
        // SAFETY: `out` is the sink `collect_output` lends for this closure; `ctx` is the
        // host's own pointer, handed back unchanged while its call is still running.
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
