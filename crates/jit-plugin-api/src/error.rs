//! [`PluginError`], the error that crosses the boundary in either direction as JSON, and its
//! category [`PluginErrorKind`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
/// the parent returned through [`Host::call`](crate::Host::call) carries the parent's own code and category,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
