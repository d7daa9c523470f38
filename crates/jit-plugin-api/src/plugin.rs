//! What a plugin author implements and calls: the [`Plugin`] trait, and [`Host`], the host
//! as seen from inside a call (the parent Type, the element the call is for, and the app's
//! other elements).

use std::fmt;

use serde_json::Value;

use crate::abi::{ByteView, HostApi, collect_output};
use crate::error::PluginError;
use crate::messages::ElementInfo;
use crate::reply::decode_reply;

/// A Type (or a service element) implemented by a native plugin.
///
/// One value serves every element the library implements, from many threads at once; which
/// element a call is for is told by [`Host::element`].
pub trait Plugin: Send + Sync + 'static {
    /// Handles `function` with its JSON `args` (an object keyed by argument name). Use
    /// `host` to delegate to the Type this one extends ([`Host::call`]) or to call other
    /// elements of the app ([`Host::app`]).
    fn call(&self, function: &str, args: Value, host: &Host) -> Result<Value, PluginError>;

    /// The functions [`call`](Self::call) handles itself. The host sends every other function
    /// straight to the parent without entering the plugin. `None` (the default): every call
    /// enters the plugin. An element with no parent Type (a service element) sends every
    /// call to the plugin whatever this says.
    fn overrides(&self) -> Option<&'static [&'static str]> {
        None
    }
}

/// The host as seen from inside [`Plugin::call`]: the parent Type's implementation, the
/// element the call is for, and the app. Only reachable by reference during a call, and
/// neither `Send` nor `Sync`, because the callbacks behind it are valid only there.
pub struct Host {
    host: *const HostApi,
}

/// The name plugins written before [`Host`] had its app calls use; the same type.
pub type Parent = Host;

impl Host {
    /// The host behind the table of the call being served.
    pub(crate) fn new(host: *const HostApi) -> Host {
        Host { host }
    }

    fn table(&self) -> &HostApi {
        // SAFETY: `host` was valid when the host entered `call`, and `Host` is only
        // reachable by reference during that call.
        unsafe { &*self.host }
    }

    /// Calls the parent Type's implementation of `function` with `args` (a JSON object).
    /// A parent's error comes back as the parent reported it. An element without a parent
    /// Type (a service element) answers `FUNCTION_NOT_FOUND`.
    pub fn call(&self, function: &str, args: Value) -> Result<Value, PluginError> {
        let args_json = to_json_bytes(&args)?;
        let host = self.table();
        let (status, bytes) = collect_output(|out| {
            // SAFETY: the views borrow locals that outlive the callback; `out` is live;
            // `ctx` is the host's own pointer, handed back during its call.
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

    /// The same as [`call`](Self::call), named for what it does.
    pub fn call_parent(&self, function: &str, args: Value) -> Result<Value, PluginError> {
        self.call(function, args)
    }

    /// The element this call is for: fullName, type chain, merged settings and functions.
    pub fn element(&self) -> Result<ElementInfo, PluginError> {
        let host = self.table();
        // SAFETY: `out` is the sink `collect_output` lends for this closure; `ctx` is the
        // host's own pointer, handed back unchanged while its call is still running.
        let (status, bytes) = collect_output(|out| unsafe { (host.element_info)(host.ctx, out) });
        element_info(decode_reply(status, &bytes)?)
    }

    /// The app the element belongs to: its other elements, reached as an HTTP caller would
    /// reach them (declared functions only, arguments checked, `loginRequired` honoured with
    /// the identity of the call being served).
    pub fn app(&self) -> App<'_> {
        App { host: self }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Host { .. }")
    }
}

/// The app, as a plugin reaches it during a call ([`Host::app`]).
#[derive(Debug, Clone, Copy)]
pub struct App<'h> {
    host: &'h Host,
}

impl<'h> App<'h> {
    /// The element `full_name` (for example `pays.myWechatPay`), or `NOT_FOUND` when the app
    /// has no such element or it is private to a layer the calling element is not in.
    pub fn get_element(&self, full_name: &str) -> Result<ElementRef<'h>, PluginError> {
        let host = self.host.table();
        let (status, bytes) = collect_output(|out| {
            // SAFETY: the view borrows a local that outlives the callback; `out` is live;
            // `ctx` is the host's own pointer, handed back during its call.
            unsafe { (host.get_element)(host.ctx, ByteView::of(full_name.as_bytes()), out) }
        });
        let info = element_info(decode_reply(status, &bytes)?)?;
        Ok(ElementRef {
            host: self.host,
            info,
        })
    }

    /// Calls `function` on the element `full_name` with `args` (a JSON object), as an HTTP
    /// call would be: the function must be declared, the arguments match its declaration
    /// (else `BAD_ARGUMENTS`), a `loginRequired` function needs the call being served to
    /// have a logged-in caller (else `UNAUTHORIZED`), and a Type or Meta serves no calls
    /// (`NOT_FOUND`). The element's own errors come back with their code and category.
    pub fn call(&self, full_name: &str, function: &str, args: Value) -> Result<Value, PluginError> {
        let args_json = to_json_bytes(&args)?;
        let host = self.host.table();
        let (status, bytes) = collect_output(|out| {
            // SAFETY: the views borrow locals that outlive the callback; `out` is live;
            // `ctx` is the host's own pointer, handed back during its call.
            unsafe {
                (host.call)(
                    host.ctx,
                    ByteView::of(full_name.as_bytes()),
                    ByteView::of(function.as_bytes()),
                    ByteView::of(&args_json),
                    out,
                )
            }
        });
        decode_reply(status, &bytes)
    }
}

impl App<'_> {
    /// JitAi's `findElements`: the elements of the app that `selector` matches, sorted by
    /// fullName, each with its info (fullName, chain, masked settings, functions). The
    /// language is the runtime's: `pays.myWechatPay`, `pays.*`, `.pays.WechatPayType` (every
    /// element of that Type), `[mchId=10000100]`, `pays.services > *`, `a, b`. A selector that
    /// does not parse is `BAD_ARGUMENTS`, naming where; elements private to a layer the
    /// calling element is not in are left out.
    pub fn find_elements(&self, selector: &str) -> Result<Vec<ElementInfo>, PluginError> {
        let host = self.host.table();
        let (status, bytes) = collect_output(|out| {
            // SAFETY: the view borrows a local that outlives the callback; `out` is live;
            // `ctx` is the host's own pointer, handed back during its call.
            unsafe { (host.find_elements)(host.ctx, ByteView::of(selector.as_bytes()), out) }
        });
        serde_json::from_value(decode_reply(status, &bytes)?).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("element list from the host is malformed: {error}"),
            )
        })
    }
}

/// An element of the app found by [`App::get_element`]: what it declares, and calls to it.
#[derive(Debug, Clone)]
pub struct ElementRef<'h> {
    host: &'h Host,
    info: ElementInfo,
}

impl ElementRef<'_> {
    /// Its fullName, chain, masked settings and declared functions.
    pub fn info(&self) -> &ElementInfo {
        &self.info
    }

    /// Its fullName.
    pub fn full_name(&self) -> &str {
        &self.info.full_name
    }

    /// Calls `function` on it with `args`, as [`App::call`] does.
    pub fn call(&self, function: &str, args: Value) -> Result<Value, PluginError> {
        self.host.app().call(&self.info.full_name, function, args)
    }
}

fn to_json_bytes(args: &Value) -> Result<Vec<u8>, PluginError> {
    serde_json::to_vec(args).map_err(|error| {
        PluginError::new(
            PluginError::PROTOCOL,
            format!("args not serialisable: {error}"),
        )
    })
}

fn element_info(value: Value) -> Result<ElementInfo, PluginError> {
    serde_json::from_value(value).map_err(|error| {
        PluginError::new(
            PluginError::PROTOCOL,
            format!("element info from the host is malformed: {error}"),
        )
    })
}
