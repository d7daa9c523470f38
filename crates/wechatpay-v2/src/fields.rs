//! Reading typed fields out of a received document, with errors naming the field.

use std::fmt::Display;
use std::str::FromStr;

use crate::{ErrCode, Error, Fen, Params, xml};

/// Decodes a received XML document strictly ([`xml::decode`]); a refusal is
/// [`Error::Xml`] reported under `context` (the call's path, or which notify).
pub(crate) fn decode_document(body: &[u8], context: &'static str) -> Result<Params, Error> {
    xml::decode(body).map_err(|source| Error::Xml { context, source })
}

/// A received document and the name it is reported under in errors.
pub(crate) struct Fields<'a> {
    pub(crate) params: &'a Params,
    pub(crate) context: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(params: &'a Params, context: &'static str) -> Self {
        Fields { params, context }
    }

    fn malformed(&self, reason: String) -> Error {
        Error::Malformed {
            context: self.context,
            reason,
        }
    }

    /// A field that may be absent; an empty value counts as absent.
    pub(crate) fn optional(&self, key: &str) -> Option<String> {
        self.params.get(key).filter(|v| !v.is_empty()).cloned()
    }

    /// Checks `return_code`: anything but SUCCESS is a protocol refusal, reported with
    /// its `return_msg` and, when present, its `err_code`.
    pub(crate) fn ensure_return_success(&self) -> Result<(), Error> {
        if self.required("return_code")? == "SUCCESS" {
            return Ok(());
        }
        Err(Error::Protocol {
            endpoint: self.context,
            return_msg: self.optional("return_msg").unwrap_or_default(),
            err_code: self.optional("err_code").map(|code| ErrCode::parse(&code)),
        })
    }

    /// A field that must be present and non-empty.
    pub(crate) fn required(&self, key: &str) -> Result<String, Error> {
        self.optional(key)
            .ok_or_else(|| self.malformed(format!("missing field `{key}`")))
    }

    /// A required integer-fen amount.
    pub(crate) fn fen(&self, key: &str) -> Result<Fen, Error> {
        let text = self.required(key)?;
        Fen::from_fen_str(&text).map_err(|e| self.malformed(format!("field `{key}`: {e}")))
    }

    /// An optional integer-fen amount.
    pub(crate) fn optional_fen(&self, key: &str) -> Result<Option<Fen>, Error> {
        self.optional(key)
            .map(|text| {
                Fen::from_fen_str(&text).map_err(|e| self.malformed(format!("field `{key}`: {e}")))
            })
            .transpose()
    }

    /// A required field parsed with `FromStr`.
    pub(crate) fn parsed<T>(&self, key: &str) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: Display,
    {
        let text = self.required(key)?;
        text.parse()
            .map_err(|e: T::Err| self.malformed(format!("field `{key}`: {e}")))
    }

    /// An optional field parsed with `FromStr`.
    pub(crate) fn optional_parsed<T>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.optional(key)
            .map(|text| {
                text.parse()
                    .map_err(|e: T::Err| self.malformed(format!("field `{key}`: {e}")))
            })
            .transpose()
    }
}
