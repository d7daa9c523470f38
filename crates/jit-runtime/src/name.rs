//! Element names: the dotted `fullName` derived from an element's folder path.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A validated element fullName such as `pays.myWechatPay`.
///
/// Every dot-separated segment is identifier-like: it starts with an ASCII letter or `_` and
/// continues with ASCII letters, digits or `_`. Cloning is cheap (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullName(Arc<str>);

/// Why a string is not a valid [`FullName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("the name is empty")]
    Empty,
    /// One dot-separated segment breaks the naming rules.
    #[error(
        "segment `{segment}` of `{name}` is not a valid name segment (letters, digits and `_`, not starting with a digit)"
    )]
    BadSegment {
        /// The whole name.
        name: String,
        /// The offending segment (may be empty, e.g. for `a..b`).
        segment: String,
    },
}

/// Whether `segment` is a valid single name segment (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_valid_segment(segment: &str) -> bool {
    let mut chars = segment.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl FullName {
    /// Validates `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        for segment in name.split('.') {
            if !is_valid_segment(segment) {
                return Err(NameError::BadSegment {
                    name: name.to_owned(),
                    segment: segment.to_owned(),
                });
            }
        }
        Ok(Self(Arc::from(name)))
    }

    /// Builds a name from folder segments (already stripped of `frontend`/`backend`).
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, NameError> {
        let joined = segments
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<_>>()
            .join(".");
        Self::new(&joined)
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (`myWechatPay` for `pays.myWechatPay`): the default config file stem.
    pub fn last_segment(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or(&self.0)
    }

    /// The name with `/` for `.`, as used in HTTP paths (`pays/services/PaySvc`).
    pub fn to_path(&self) -> String {
        self.0.replace('.', "/")
    }
}

impl fmt::Display for FullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for FullName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for FullName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for FullName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl PartialEq<str> for FullName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for FullName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl serde::Serialize for FullName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for FullName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        FullName::new(&s).map_err(serde::de::Error::custom)
    }
}
