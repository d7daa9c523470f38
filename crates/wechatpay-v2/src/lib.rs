//! A strict WeChat Pay V2 (XML) merchant API client.
//!
//! This crate owns the WeChat Pay V2 protocol: money in fen, MD5/HMAC-SHA256 signatures,
//! the flat XML documents, the typed API calls, client-side pay parameters and notifies.
//! It knows nothing of elements, HTTP servers or databases: callers hand it keys, requests
//! and received bodies, and get typed results back.
//!
//! # API in brief
//! - Money: [`Fen`] (i64 fen; [`Fen::from_yuan_str`], [`Fen::from_yuan_json`],
//!   [`Fen::from_fen_str`]; `Display` as yuan `"99.99"`; serde as integer fen), [`AmountError`].
//! - Parameters: [`Params`] = `IndexMap<String, String>`, ordered as received.
//! - Signatures: [`SignType`] (`Md5`/`HmacSha256`, parsed from `"MD5"`/`"HMAC-SHA256"`),
//!   [`ApiKey`] (masked in `Debug`/`Display`), [`sign()`], [`sign_params`], [`verify()`]
//!   (algorithm from `sign_type`, else from the signature length; constant-time),
//!   [`detect_sign_type`], [`VerifyError`].
//! - XML: [`xml::encode`], [`xml::encode_with_root`], [`xml::decode`],
//!   [`xml::decode_with_limit`] (refuses DOCTYPE, entities, PIs, nesting, duplicates,
//!   oversize, non-UTF-8, trailing content, each as its own [`XmlError`] variant).
//! - Errors: [`Error`] (Transport / Protocol / Business / InvalidSignature / Malformed / ...)
//!   with [`Error::is_retryable`], [`ErrCode`] with the reference's retry table.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod error;
pub mod money;
pub mod sign;
pub mod xml;

pub use error::{ErrCode, Error, RetryAdvice, TransportError};
pub use indexmap::IndexMap;
pub use money::{AmountError, Fen};
pub use sign::{
    ApiKey, SignType, UnknownSignType, VerifyError, detect_sign_type, sign, sign_params, verify,
};
pub use xml::{DEFAULT_MAX_XML_BYTES, XmlError};

/// A document's parameters in the order they were received or inserted.
pub type Params = IndexMap<String, String>;

/// A random 32-character alphanumeric `nonce_str`.
pub fn nonce_str() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}
