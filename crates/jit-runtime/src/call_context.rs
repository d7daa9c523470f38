//! Who is calling: the context a host passes with every call of an element's function
//! (request id, principal, network peer). Checking a call against its declaration is
//! [`crate::arguments`]'s.

/// Who is calling and for which request; passed to every [`crate::Element::call`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The host's request id, for logs.
    pub request_id: Option<String>,
    /// Who called; `None` is an anonymous caller, refused by `loginRequired` functions.
    pub principal: Option<String>,
    /// The network peer the request came from, when the host knows it: the source key
    /// for rate-limited refusal logs ([`crate::RefusalLogLimiter`]).
    pub peer: Option<std::net::IpAddr>,
}

impl CallContext {
    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A logged-in caller.
    pub fn principal(principal: impl Into<String>) -> Self {
        Self {
            principal: Some(principal.into()),
            ..Self::default()
        }
    }
}
