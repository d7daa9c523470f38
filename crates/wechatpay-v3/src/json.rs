//! Reading received JSON into typed answers, with errors that name the JSON path.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::Error;
use crate::time::parse_rfc3339;

/// Parses a received body as one JSON object (`context`: the call or notify, for errors).
pub(crate) fn parse_object(body: &[u8], context: &'static str) -> Result<Value, Error> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Error::Malformed {
        context,
        reason: format!("not JSON: {e}"),
    })?;
    if !value.is_object() {
        return Err(Error::Malformed {
            context,
            reason: "the body is not a JSON object".into(),
        });
    }
    Ok(value)
}

/// Reads a typed view of a JSON value; a mismatch names its path (`amount.total: …`).
pub(crate) fn read<T: DeserializeOwned>(value: &Value, context: &'static str) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        Error::Malformed {
            context,
            reason: if path == "." {
                error.into_inner().to_string()
            } else {
                format!("`{path}`: {}", error.into_inner())
            },
        }
    })
}

/// A `Malformed` error about one field.
pub(crate) fn malformed(context: &'static str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        context,
        reason: reason.into(),
    }
}

/// Serde helper: an optional string where WeChat's empty string means absent.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// Serde helper: a required RFC 3339 instant.
pub(crate) fn time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    parse_rfc3339(&text).map_err(serde::de::Error::custom)
}

/// Serde helper: an optional RFC 3339 instant (empty means absent).
pub(crate) fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    opt_string(d)?
        .map(|text| parse_rfc3339(&text).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Amount {
        #[allow(dead_code)]
        total: i64,
    }

    #[derive(Debug, Deserialize)]
    struct Answer {
        #[allow(dead_code)]
        amount: Amount,
    }

    #[test]
    fn errors_name_the_path() {
        let value = parse_object(br#"{"amount":{"total":"1"}}"#, "/v3/x").unwrap();
        match read::<Answer>(&value, "/v3/x") {
            Err(Error::Malformed { context, reason }) => {
                assert_eq!(context, "/v3/x");
                assert!(
                    reason.starts_with("`amount.total`: invalid type"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let value = parse_object(br#"{}"#, "/v3/x").unwrap();
        let error = read::<Answer>(&value, "/v3/x").unwrap_err();
        assert!(
            error.to_string().contains("missing field `amount`"),
            "{error}"
        );
        assert!(parse_object(b"[1]", "/v3/x").is_err());
        assert!(parse_object(b"{", "/v3/x").is_err());
    }
}
