//! Masking of secret values (`apiKey`, ...) in Debug, Display, logs and display JSON.

use std::fmt;

use serde_json::Value;

/// The text every masked value is shown as.
pub const MASK: &str = "******";

/// A value that must never be printed: Debug and Display show [`MASK`].
///
/// Use [`Secret::expose`] at the single point where the real value is needed (signing a
/// request, for example).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The real value. Never log or format it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the real value.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Maps the inner value, staying secret.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Secret<U> {
        Secret(f(self.0))
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Serializes as [`MASK`], so a secret that ends up in display JSON stays hidden.
impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

/// Returns a copy of `value` where every object entry whose key is in `secret_keys`
/// (at any depth) has its value replaced by [`MASK`].
pub fn mask_json<S: AsRef<str>>(value: &Value, secret_keys: &[S]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if secret_keys.iter().any(|s| s.as_ref() == k) {
                        (k.clone(), Value::String(MASK.to_owned()))
                    } else {
                        (k.clone(), mask_json(v, secret_keys))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| mask_json(v, secret_keys)).collect())
        }
        other => other.clone(),
    }
}

/// Returns a copy of `value` with every scalar replaced by [`MASK`] (keys and shape kept).
/// Used when the secret keys of a definition are not known yet.
pub(crate) fn mask_all(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), mask_all(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(mask_all).collect()),
        Value::Null => Value::Null,
        _ => Value::String(MASK.to_owned()),
    }
}
