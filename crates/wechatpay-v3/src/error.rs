//! Errors of the client, and WeChat's V3 error codes with their retry rules.
//!
//! [`TransportError`] and [`RetryAdvice`] are wechatpay-v2's: a failed HTTP exchange and the
//! pause each advice suggests are the same in both protocols. V3 never advises
//! [`RetryAdvice::Poll`]; its codes and retry table are its own.

use std::time::Duration;

use crate::aead::AeadError;
use crate::keys::KeyError;
use crate::verify::VerifyError;
use wechatpay_v2::AmountError;
use wechatpay_v2::checks::InvalidField;
pub use wechatpay_v2::{RetryAdvice, TransportError};

wechatpay_v2::wire_codes! {
    /// The `code` of a V3 error answer (`{"code": "…", "message": "…"}`). Codes unknown to
    /// this crate are kept verbatim in [`ErrorCode::Other`].
    ErrorCode {
    /// A parameter is wrong (400).
    ParamError = "PARAM_ERROR",
    /// The request is not acceptable in the resource's state (400).
    InvalidRequest = "INVALID_REQUEST",
    /// The request's signature does not verify (401).
    SignError = "SIGN_ERROR",
    /// The merchant lacks the permission (403).
    NoAuth = "NOAUTH",
    /// No such order (404).
    OrderNotExist = "ORDER_NOT_EXIST",
    /// No such resource (404; refunds, bills).
    ResourceNotExists = "RESOURCE_NOT_EXISTS",
    /// The order is closed.
    OrderClosed = "ORDER_CLOSED",
    /// out_trade_no already used with other parameters.
    OutTradeNoUsed = "OUT_TRADE_NO_USED",
    /// appid and mchid do not belong together.
    AppidMchidNotMatch = "APPID_MCHID_NOT_MATCH",
    /// Unknown merchant.
    MchNotExists = "MCH_NOT_EXISTS",
    /// Not enough balance to refund.
    NotEnough = "NOT_ENOUGH",
    /// Rate limited (429): back off.
    FrequencyLimited = "FREQUENCY_LIMITED",
    /// Temporary system error (500): retry with the same body.
    SystemError = "SYSTEM_ERROR",
    /// Temporary bank error: retry with the same body.
    BankError = "BANK_ERROR",
    }
}

impl ErrorCode {
    /// The reference's retry table: `SYSTEM_ERROR` and `BANK_ERROR` retry the same body,
    /// `FREQUENCY_LIMITED` backs off, nothing else is retried; unknown codes included, since
    /// retrying blindly is how duplicate charges and refund storms happen.
    pub fn retry_advice(&self) -> RetryAdvice {
        match self {
            ErrorCode::SystemError | ErrorCode::BankError => RetryAdvice::RetrySame,
            ErrorCode::FrequencyLimited => RetryAdvice::BackOff,
            _ => RetryAdvice::Never,
        }
    }

    /// `true` for the codes that may be retried.
    pub fn is_retryable(&self) -> bool {
        self.retry_advice() != RetryAdvice::Never
    }
}

/// The errors of this crate's calls and notifies.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request never got a usable HTTP answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// WeChat refused the request: an HTTP error status with a V3 error body.
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Api {
        /// The call (its path pattern).
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// `code`.
        code: ErrorCode,
        /// `message`.
        message: String,
        /// `detail`, when sent (boxed: it is rare and large).
        detail: Option<Box<serde_json::Value>>,
    },
    /// A response or notify that is not signed by WeChat as it must be.
    #[error("{context}: not verified: {source}")]
    InvalidSignature {
        /// Which document.
        context: &'static str,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// An encrypted resource that does not decrypt.
    #[error("{context}: {source}")]
    Decrypt {
        /// Which document.
        context: &'static str,
        /// Why.
        #[source]
        source: AeadError,
    },
    /// A response or notify that is not what the protocol promises.
    #[error("{context}: {reason}")]
    Malformed {
        /// Which document (a call's path pattern, or which notify).
        context: &'static str,
        /// What was wrong, naming the JSON path.
        reason: String,
    },
    /// A downloaded bill whose SHA1 is not the one announced.
    #[error("the downloaded bill's SHA1 is {actual}, the bill URL announced {expected}")]
    BillDigest {
        /// `hash_value` of the bill URL answer.
        expected: String,
        /// The SHA1 of what was downloaded.
        actual: String,
    },
    /// A request refused before sending because a field is missing or invalid.
    #[error("invalid request: field `{field}`: {reason}")]
    InvalidRequest {
        /// The field (its JSON path).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// An amount that cannot be used.
    #[error("field `{field}`: {source}")]
    Amount {
        /// The field.
        field: &'static str,
        /// The amount problem.
        #[source]
        source: AmountError,
    },
    /// A key that cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Client configuration problem.
    #[error("client configuration: {0}")]
    Config(String),
}

impl From<InvalidField> for Error {
    fn from(invalid: InvalidField) -> Error {
        Error::InvalidRequest {
            field: invalid.field,
            reason: invalid.reason,
        }
    }
}

impl Error {
    /// `true` when the same request may be sent again: transport failures (timeouts,
    /// connection errors, 5xx and 429 statuses without a V3 error body) and the codes the
    /// reference lists as retryable (`SYSTEM_ERROR`, `BANK_ERROR`, `FREQUENCY_LIMITED`).
    /// Never for signature, decryption, validation or any other refusal.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(transport) => transport.is_retryable(),
            Error::Api { code, .. } => code.is_retryable(),
            _ => false,
        }
    }

    /// WeChat's error code, for an API refusal.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// `true` for a `WECHATPAY/SIGNTEST/` probe (see [`VerifyError::is_probe`]).
    pub fn is_signtest_probe(&self) -> bool {
        matches!(self, Error::InvalidSignature { source, .. } if source.is_probe())
    }

    /// A suggested pause before retrying, when retrying makes sense.
    pub fn retry_delay_hint(&self) -> Option<Duration> {
        match self {
            Error::Api { code, .. } => code.retry_advice().delay_hint(),
            e if e.is_retryable() => RetryAdvice::RetrySame.delay_hint(),
            _ => None,
        }
    }

    /// A short label for logs, made only of this crate's words and WeChat's known codes:
    /// never a message or URL that came from outside.
    pub fn log_label(&self) -> String {
        match self {
            Error::Transport(TransportError::Connect { .. }) => "connect error".into(),
            Error::Transport(TransportError::Timeout { .. }) => "timeout".into(),
            Error::Transport(TransportError::Status { status, .. }) => format!("HTTP {status}"),
            Error::Transport(TransportError::Http { .. }) => "HTTP error".into(),
            Error::Api { status, code, .. } => match code {
                ErrorCode::Other(_) => format!("HTTP {status} (unknown code)"),
                known => format!("HTTP {status} {known}"),
            },
            Error::InvalidSignature { .. } => "invalid signature".into(),
            Error::Decrypt { .. } => "decryption failed".into(),
            Error::Malformed { .. } => "malformed answer".into(),
            Error::BillDigest { .. } => "bill digest mismatch".into(),
            Error::InvalidRequest { .. } | Error::Amount { .. } => "invalid request".into(),
            Error::Key(_) => "key error".into(),
            Error::Config(_) => "configuration error".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> Error {
        Error::Api {
            endpoint: "/v3/pay/transactions/native",
            status,
            code: ErrorCode::parse(code),
            message: "m".into(),
            detail: None,
        }
    }

    #[test]
    fn retry_table_follows_the_reference() {
        for code in ["SYSTEM_ERROR", "BANK_ERROR"] {
            assert_eq!(
                ErrorCode::parse(code).retry_advice(),
                RetryAdvice::RetrySame
            );
            assert!(api(500, code).is_retryable());
        }
        assert_eq!(
            ErrorCode::parse("FREQUENCY_LIMITED").retry_advice(),
            RetryAdvice::BackOff
        );
        assert!(api(429, "FREQUENCY_LIMITED").is_retryable());
        for code in [
            "PARAM_ERROR",
            "INVALID_REQUEST",
            "SIGN_ERROR",
            "NOAUTH",
            "ORDER_NOT_EXIST",
            "ORDER_CLOSED",
            "OUT_TRADE_NO_USED",
            "NOT_ENOUGH",
            "RESOURCE_NOT_EXISTS",
            "MCH_NOT_EXISTS",
            "SOMETHING_NEW",
        ] {
            let parsed = ErrorCode::parse(code);
            assert_eq!(parsed.as_str(), code);
            assert!(!api(500, code).is_retryable(), "{code}");
        }
        assert_eq!(
            ErrorCode::parse("SOMETHING_NEW"),
            ErrorCode::Other("SOMETHING_NEW".into())
        );
    }

    #[test]
    fn statuses_without_a_v3_body_follow_http() {
        let status = |status| {
            Error::Transport(TransportError::Status {
                url: "u".into(),
                status,
            })
        };
        assert!(status(502).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!Error::Config("x".into()).is_retryable());
    }

    #[test]
    fn log_labels_carry_nothing_from_outside() {
        let error = Error::Api {
            endpoint: "/v3/refund/domestic/refunds",
            status: 500,
            code: ErrorCode::Other("EVIL\ncode".into()),
            message: "<script>".into(),
            detail: None,
        };
        assert_eq!(error.log_label(), "HTTP 500 (unknown code)");
        assert_eq!(
            api(500, "SYSTEM_ERROR").log_label(),
            "HTTP 500 SYSTEM_ERROR"
        );
    }
}
