//! Request and notify signatures (MD5 and HMAC-SHA256) and the secret API key.
//!
//! The signed string covers every non-empty parameter except `sign`, sorted byte-wise by key,
//! joined as `k=v&…&key=<API key>`. Verification covers every field received, including fields
//! unknown today, which is why it works on a [`Params`] map and not on a fixed struct.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Params;

/// The signature algorithms of WeChat Pay V2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignType {
    /// `MD5`, the default when `sign_type` is absent.
    #[default]
    Md5,
    /// `HMAC-SHA256`.
    HmacSha256,
}

impl SignType {
    /// The wire name: `MD5` or `HMAC-SHA256`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// The length of a signature in upper-case hex: 32 for MD5, 64 for HMAC-SHA256.
    pub const fn signature_len(self) -> usize {
        match self {
            SignType::Md5 => 32,
            SignType::HmacSha256 => 64,
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `sign_type` value that is neither `MD5` nor `HMAC-SHA256`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sign_type `{0}` (expected MD5 or HMAC-SHA256)")]
pub struct UnknownSignType(pub String);

impl FromStr for SignType {
    type Err = UnknownSignType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "MD5" => Ok(SignType::Md5),
            "HMAC-SHA256" => Ok(SignType::HmacSha256),
            other => Err(UnknownSignType(other.to_owned())),
        }
    }
}

impl serde::Serialize for SignType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SignType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A merchant API key (32 characters in production). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for signing. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        ApiKey::new(key)
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        ApiKey(key)
    }
}

impl<'de> serde::Deserialize<'de> for ApiKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ApiKey)
    }
}

/// Why a signed document did not verify. Messages never include the key or the expected
/// signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The document has no `sign` field (or an empty one).
    #[error("the document has no `sign` field")]
    MissingSign,
    /// `sign_type` names an algorithm this crate does not know.
    #[error(transparent)]
    UnknownSignType(#[from] UnknownSignType),
    /// No `sign_type` and a signature that is neither 32 (MD5) nor 64 (HMAC-SHA256) long.
    #[error("`sign` is {0} characters long; expected 32 (MD5) or 64 (HMAC-SHA256)")]
    UnrecognizedSignLength(usize),
    /// The signature does not match the document.
    #[error("signature mismatch ({0})")]
    Mismatch(SignType),
}

/// The string that is hashed: `k1=v1&k2=v2…&key=<key>` over the non-empty parameters other
/// than `sign`, sorted byte-wise by key.
fn string_to_sign(params: &Params, api_key: &ApiKey) -> String {
    let mut fields: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.as_str() != "sign")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let capacity = fields
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>()
        + api_key.0.len()
        + 5;
    let mut text = String::with_capacity(capacity);
    for (key, value) in fields {
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('&');
    }
    text.push_str("key=");
    text.push_str(&api_key.0);
    text
}

/// Computes the signature of `params` (upper-case hex) with the given algorithm and key.
/// `sign` itself and empty values are left out; `sign_type`, when present, is included like
/// any other field.
pub fn sign(params: &Params, sign_type: SignType, api_key: &ApiKey) -> String {
    let text = string_to_sign(params, api_key);
    match sign_type {
        SignType::Md5 => hex::encode_upper(Md5::digest(text.as_bytes())),
        SignType::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(api_key.0.as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(text.as_bytes());
            hex::encode_upper(mac.finalize().into_bytes())
        }
    }
}

/// Adds `sign` (and, for HMAC-SHA256, `sign_type`) to `params`, signing every other field.
/// A `sign_type` already present is set to the algorithm used, so the document never
/// announces one algorithm while carrying another's signature.
pub fn sign_params(params: &mut Params, sign_type: SignType, api_key: &ApiKey) {
    params.shift_remove("sign");
    if sign_type == SignType::HmacSha256 || params.contains_key("sign_type") {
        params.insert("sign_type".to_owned(), sign_type.as_str().to_owned());
    }
    let signature = sign(params, sign_type, api_key);
    params.insert("sign".to_owned(), signature);
}

/// The algorithm a received document was signed with: its `sign_type` field when present,
/// otherwise the length of its signature (some HMAC-signed notifies omit `sign_type`).
pub fn detect_sign_type(params: &Params) -> Result<SignType, VerifyError> {
    let signature = params
        .get("sign")
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::MissingSign)?;
    match params.get("sign_type").filter(|s| !s.is_empty()) {
        Some(name) => Ok(name.parse()?),
        None => match signature.len() {
            32 => Ok(SignType::Md5),
            64 => Ok(SignType::HmacSha256),
            other => Err(VerifyError::UnrecognizedSignLength(other)),
        },
    }
}

/// Verifies the `sign` of a received document over all its fields, in constant time.
/// Returns the algorithm that was used.
pub fn verify(params: &Params, api_key: &ApiKey) -> Result<SignType, VerifyError> {
    let sign_type = detect_sign_type(params)?;
    let received = params.get("sign").map(String::as_str).unwrap_or_default();
    let expected = sign(params, sign_type, api_key);
    // Hex case carries no meaning; normalising the received text leaks nothing about the key.
    let mut normalised = [0u8; 64];
    let received = received.as_bytes();
    if received.len() != expected.len() {
        return Err(VerifyError::Mismatch(sign_type));
    }
    for (out, byte) in normalised.iter_mut().zip(received) {
        *out = byte.to_ascii_uppercase();
    }
    if bool::from(expected.as_bytes().ct_eq(&normalised[..received.len()])) {
        Ok(sign_type)
    } else {
        Err(VerifyError::Mismatch(sign_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_values_and_sign_are_left_out() {
        let key = ApiKey::new("k");
        let a = params(&[("b", "2"), ("a", "1"), ("c", ""), ("sign", "X")]);
        assert_eq!(string_to_sign(&a, &key), "a=1&b=2&key=k");
    }

    #[test]
    fn sign_params_keeps_sign_type_truthful() {
        let key = ApiKey::new("k");
        let mut doc = params(&[("a", "1"), ("sign_type", "HMAC-SHA256")]);
        sign_params(&mut doc, SignType::Md5, &key);
        assert_eq!(doc["sign_type"], "MD5");
        assert_eq!(verify(&doc, &key), Ok(SignType::Md5));
        let mut plain = params(&[("a", "1")]);
        sign_params(&mut plain, SignType::Md5, &key);
        assert!(!plain.contains_key("sign_type"));
        sign_params(&mut plain, SignType::HmacSha256, &key);
        assert_eq!(plain["sign_type"], "HMAC-SHA256");
        assert_eq!(verify(&plain, &key), Ok(SignType::HmacSha256));
    }

    #[test]
    fn api_key_is_masked() {
        let key = ApiKey::new("192006250b4c09247ec02edce69f6a2d");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(format!("{key}"), "***");
    }

    #[test]
    fn sign_type_names() {
        assert_eq!("MD5".parse::<SignType>(), Ok(SignType::Md5));
        assert_eq!("HMAC-SHA256".parse::<SignType>(), Ok(SignType::HmacSha256));
        assert!("md5".parse::<SignType>().is_err());
    }
}
