//! Errors: loading problems (collected, each with its file), lookups, builds and calls.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// What kind of loading problem a [`LoadError`] is. Stable, for tests and tooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadErrorKind {
    /// app.toml missing, unreadable or malformed.
    Settings,
    /// A file or folder could not be read.
    Io,
    /// An e.json is not valid JSON or has a key of the wrong shape.
    Parse,
    /// A folder name (or a `type` value) breaks the naming rules.
    InvalidName,
    /// Two elements with the same fullName in one layer.
    Duplicate,
    /// A higher layer redefines a `protected` element.
    ProtectedOverride,
    /// An element names as its `type` a `private` element of a lower layer.
    PrivateType,
    /// An element names a `type` that does not exist.
    UnknownType,
    /// `type` references form a cycle.
    Cycle,
    /// The chain reaches an element that is broken (unknown type, cycle, parse error, ...)
    /// further up, so it never ends at a Meta.
    ChainEndsNowhere,
    /// An instance, or an element whose chain declares functions, has no loader registered
    /// anywhere on its chain (checked by `check` and `build`).
    NoLoader,
    /// A Meta or Type of the app says its backend code ships with it (its own e.json names a
    /// `backendBundleEntry`) and no loader is registered for its own fullName, so only a
    /// parent's behaviour could run (checked by `check` and `build`).
    CodeNotInHost,
    /// Code a host registers for an element does not match the app: no element of that
    /// fullName, or functions implemented and declared disagree (checked by the host).
    CodeMismatch,
    /// A `{{VAR}}` placeholder names a variable that is not set.
    MissingVariable,
    /// The config file is missing (when `frontBundleEntry` names it) or not valid JSON.
    Config,
    /// Building an `afterAppInit` element failed (reported by `build`).
    Build,
}

/// One loading problem: the file it is in, where in that file, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// What kind of problem.
    pub kind: LoadErrorKind,
    /// The file as shown to the user (embedded files: `<framework>/...`).
    pub file: PathBuf,
    /// The JSON path inside the file (`functionList[0].args[1].dataType`), when known.
    pub json_path: Option<String>,
    /// What is wrong, never containing a secret value.
    pub message: String,
}

impl LoadError {
    /// A new problem.
    pub fn new(kind: LoadErrorKind, file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            kind,
            file: file.into(),
            json_path: None,
            message: message.into(),
        }
    }

    /// The same problem located at a JSON path.
    pub fn at(mut self, json_path: impl Into<String>) -> Self {
        self.json_path = Some(json_path.into());
        self
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(path) = &self.json_path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// Every problem found while loading an app; Display prints one per line
/// (`file: json.path: message`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    /// The problems, in a stable order (by file, then path).
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.0.iter()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Problems of one kind.
    pub fn of_kind(&self, kind: LoadErrorKind) -> impl Iterator<Item = &LoadError> {
        self.0.iter().filter(move |e| e.kind == kind)
    }
}

impl IntoIterator for LoadErrors {
    type Item = LoadError;
    type IntoIter = std::vec::IntoIter<LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// A `{{VAR}}` placeholder could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: environment variable `{variable}` used by placeholder {{{{{variable}}}}} is not set (in [env] of app.toml or the process environment)", file.display())]
pub struct PlaceholderError {
    /// The variable name.
    pub variable: String,
    /// The file holding the placeholder.
    pub file: PathBuf,
}

/// Why a loader could not build an element. Loaders return it; the runtime wraps it in
/// [`GetError::Build`].
#[derive(Debug, thiserror::Error)]
pub enum ElementError {
    /// A setting the element needs is absent from its chain.
    #[error("missing setting `{key}`")]
    MissingSetting {
        /// The setting key.
        key: String,
    },
    /// A setting has an unusable value. The message must not contain the value if secret.
    #[error("setting `{key}`: {message}")]
    InvalidSetting {
        /// The setting key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A service the loader needs was not provided with `AppBuilder::provide`.
    #[error("service `{0}` was not provided to the app")]
    MissingService(&'static str),
    /// [`crate::LoadContext::load_with_parent`] found no loader above the running one.
    #[error("no parent loader above `{0}` on the chain")]
    NoParentLoader(String),
    /// Getting another element failed.
    #[error(transparent)]
    Get(#[from] Box<GetError>),
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ElementError {
    /// An error with just a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::Other {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and its cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Other {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<GetError> for ElementError {
    fn from(error: GetError) -> Self {
        Self::Get(Box::new(error))
    }
}

/// Why [`crate::App::get_element`] / [`crate::App::get`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GetError {
    /// No element has that fullName.
    #[error("no element `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    NotFound {
        /// The name asked for.
        name: String,
        /// The closest existing name, if any is close.
        suggestion: Option<String>,
    },
    /// No loader is registered on the element's chain.
    #[error("element `{name}` has no loader on its chain {chain}")]
    NoLoader {
        /// The element.
        name: String,
        /// Its chain, `a → b → c`.
        chain: String,
    },
    /// The loader failed; the next call tries again.
    #[error("building element `{name}` failed: {source}")]
    Build {
        /// The element.
        name: String,
        /// The loader's error (shared by every caller that waited for this build).
        source: Arc<ElementError>,
    },
    /// The element does not provide the interface asked for.
    #[error("element `{name}` is not a `{expected}`")]
    WrongKind {
        /// The element.
        name: String,
        /// The Rust type asked for.
        expected: &'static str,
    },
    /// A loader asked, directly or through other elements' loaders, for an element whose
    /// build is waiting on it (`a → b → a`): that would never finish.
    #[error("element `{name}` depends on itself while being built: {path}")]
    BuildCycle {
        /// The element asked for.
        name: String,
        /// The builds in progress, `a → b → a`.
        path: String,
    },
    /// The app was dropped (reached through a [`crate::WeakApp`]).
    #[error("the app is no longer running")]
    AppGone,
}

/// The category of a [`CallError`]: what kind of failure it is, which is all an HTTP host
/// needs to choose a status. The specific reason (an order already paid, an order that does
/// not exist) is the error's optional [`CallError::code`], never part of the category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallErrorKind {
    /// The thing asked for does not exist (an element, or something an element looks up,
    /// such as an order).
    NotFound,
    /// The element declares no such function in its chain's functionList.
    FunctionNotFound,
    /// Arguments are missing, unknown, of the wrong type or out of range.
    BadArguments,
    /// The function requires a logged-in caller.
    Unauthorized,
    /// The call was understood but conflicts with the current state or a rule of the
    /// element (paying a closed order, an order id that is taken, a plugin's refusal).
    Conflict,
    /// A third party failed or answered with an error.
    Upstream,
    /// Anything the caller cannot fix.
    Internal,
}

impl CallErrorKind {
    /// Every category, in declaration order.
    pub const ALL: [CallErrorKind; 7] = [
        CallErrorKind::NotFound,
        CallErrorKind::FunctionNotFound,
        CallErrorKind::BadArguments,
        CallErrorKind::Unauthorized,
        CallErrorKind::Conflict,
        CallErrorKind::Upstream,
        CallErrorKind::Internal,
    ];

    /// The category's own stable code, used when an error carries no specific one:
    /// `NOT_FOUND`, `FUNCTION_NOT_FOUND`, `BAD_ARGUMENTS`, `UNAUTHORIZED`, `CONFLICT`,
    /// `UPSTREAM` or `INTERNAL`.
    pub const fn code(self) -> &'static str {
        match self {
            CallErrorKind::NotFound => "NOT_FOUND",
            CallErrorKind::FunctionNotFound => "FUNCTION_NOT_FOUND",
            CallErrorKind::BadArguments => "BAD_ARGUMENTS",
            CallErrorKind::Unauthorized => "UNAUTHORIZED",
            CallErrorKind::Conflict => "CONFLICT",
            CallErrorKind::Upstream => "UPSTREAM",
            CallErrorKind::Internal => "INTERNAL",
        }
    }

    /// The category whose own code is `code`, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// A failed [`crate::App::call`] / [`crate::Element::call`].
///
/// `kind` says what kind of failure it is; `code` optionally names the precise reason in
/// the element's own vocabulary (`ORDER_PAID` is a [`CallErrorKind::Conflict`],
/// `ORDER_NOT_FOUND` a [`CallErrorKind::NotFound`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", self.code())]
pub struct CallError {
    /// The category.
    pub kind: CallErrorKind,
    /// The element-specific code, if the element gives one; see [`CallError::code`].
    pub specific_code: Option<Cow<'static, str>>,
    /// A human-readable message, never containing a secret.
    pub message: String,
}

impl CallError {
    /// A new error of a category, without a specific code.
    pub fn new(kind: CallErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            specific_code: None,
            message: message.into(),
        }
    }

    /// The same error with an element-specific code (e.g. `ORDER_PAID`).
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.specific_code = Some(code.into());
        self
    }

    /// [`CallErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(CallErrorKind::NotFound, message)
    }

    /// [`CallErrorKind::FunctionNotFound`].
    pub fn function_not_found(message: impl Into<String>) -> Self {
        Self::new(CallErrorKind::FunctionNotFound, message)
    }

    /// [`CallErrorKind::BadArguments`].
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        Self::new(CallErrorKind::BadArguments, message)
    }

    /// [`CallErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(CallErrorKind::Internal, message)
    }

    /// [`CallErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(CallErrorKind::Conflict, message)
    }

    /// [`CallErrorKind::Upstream`].
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(CallErrorKind::Upstream, message)
    }

    /// The stable code a client matches on: the element-specific code if there is one,
    /// otherwise the category's own ([`CallErrorKind::code`]).
    pub fn code(&self) -> &str {
        self.specific_code.as_deref().unwrap_or(self.kind.code())
    }
}

impl From<GetError> for CallError {
    fn from(error: GetError) -> Self {
        let kind = match &error {
            GetError::NotFound { .. } => CallErrorKind::NotFound,
            _ => CallErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_the_specific_code_else_the_category_code() {
        let plain = CallError::conflict("the order is taken");
        assert_eq!(plain.code(), "CONFLICT");
        assert_eq!(plain.to_string(), "CONFLICT: the order is taken");

        let specific = CallError::conflict("order 1 is already paid").with_code("ORDER_PAID");
        assert_eq!(specific.kind, CallErrorKind::Conflict);
        assert_eq!(specific.code(), "ORDER_PAID");
        assert_eq!(specific.to_string(), "ORDER_PAID: order 1 is already paid");
    }

    #[test]
    fn every_category_code_maps_back_to_its_category() {
        for kind in CallErrorKind::ALL {
            assert_eq!(CallErrorKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(CallErrorKind::from_code("ORDER_PAID"), None);
        assert_eq!(CallErrorKind::from_code("not_found"), None);
    }
}
