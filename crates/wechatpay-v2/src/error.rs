//! Errors of the client, and WeChat's business error codes with their retry rules.
//!
//! [`TransportError`] and [`RetryAdvice`] are shared with wechatpay-v3: a failed HTTP
//! exchange, which of those may be retried, and how long each kind of advice waits, are the
//! same for both protocols. Each protocol keeps its own codes and its own retry table.

use std::time::Duration;

use crate::checks::InvalidField;
use crate::money::AmountError;
use crate::sign::VerifyError;
use crate::xml::XmlError;

crate::wire_codes! {
    /// A business error code (`err_code`) returned with `result_code=FAIL`.
    /// Codes unknown to this crate are kept verbatim in [`ErrCode::Other`].
    ErrCode {
    /// Temporary system error: retry with the same parameters.
    SystemError = "SYSTEMERROR",
    /// Refund needs a retry with the same out_refund_no.
    BizErrNeedRetry = "BIZERR_NEED_RETRY",
    /// Too many requests: back off.
    InvalidReqTooMuch = "INVALID_REQ_TOO_MUCH",
    /// Rate limited: back off.
    FrequencyLimited = "FREQUENCY_LIMITED",
    /// The user is entering the password: poll.
    UserPaying = "USERPAYING",
    /// The order is already paid.
    OrderPaid = "ORDERPAID",
    /// The order is closed.
    OrderClosed = "ORDERCLOSED",
    /// out_trade_no already used with different parameters.
    OutTradeNoUsed = "OUT_TRADE_NO_USED",
    /// No such order.
    OrderNotExist = "ORDERNOTEXIST",
    /// Bad signature.
    SignError = "SIGNERROR",
    /// Required parameter missing.
    LackParams = "LACK_PARAMS",
    /// Bad parameter.
    ParamError = "PARAM_ERROR",
    /// Unknown appid.
    AppIdNotExist = "APPID_NOT_EXIST",
    /// Unknown mch_id.
    MchIdNotExist = "MCHID_NOT_EXIST",
    /// appid and mch_id do not belong together.
    AppIdMchIdNotMatch = "APPID_MCHID_NOT_MATCH",
    /// The merchant lacks the permission.
    NoAuth = "NOAUTH",
    /// Bad XML.
    XmlFormatError = "XML_FORMAT_ERROR",
    /// Body not UTF-8.
    NotUtf8 = "NOT_UTF8",
    /// Not enough balance (refunds).
    NotEnough = "NOTENOUGH",
    /// The order is too old to refund.
    TradeOverdue = "TRADE_OVERDUE",
    /// No such refund.
    RefundNotExist = "REFUNDNOTEXIST",
    /// The request was not a POST.
    RequirePostMethod = "REQUIRE_POST_METHOD",
    /// The request body was empty.
    PostDataEmpty = "POST_DATA_EMPTY",
    /// The transaction_id is not valid.
    InvalidTransactionId = "INVALID_TRANSACTIONID",
    }
}

/// What the caller should do about a business error (V2's `err_code`, V3's error `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAdvice {
    /// Retry now with exactly the same parameters (the same body).
    RetrySame,
    /// Retry later, after backing off.
    BackOff,
    /// Query again later (the user is still paying; V2's `USERPAYING`).
    Poll,
    /// Retrying cannot help.
    Never,
}

impl RetryAdvice {
    /// The suggested pause before acting on the advice; `None` for [`RetryAdvice::Never`].
    /// A retryable transport failure waits as [`RetryAdvice::RetrySame`] does.
    pub const fn delay_hint(self) -> Option<Duration> {
        match self {
            RetryAdvice::RetrySame => Some(Duration::from_millis(200)),
            RetryAdvice::BackOff => Some(Duration::from_secs(1)),
            RetryAdvice::Poll => Some(Duration::from_secs(5)),
            RetryAdvice::Never => None,
        }
    }
}

impl ErrCode {
    /// The reference's retry table. Unknown codes are not retried: retrying blindly is how
    /// duplicate charges and refund storms happen.
    pub fn retry_advice(&self) -> RetryAdvice {
        match self {
            ErrCode::SystemError | ErrCode::BizErrNeedRetry => RetryAdvice::RetrySame,
            ErrCode::InvalidReqTooMuch | ErrCode::FrequencyLimited => RetryAdvice::BackOff,
            ErrCode::UserPaying => RetryAdvice::Poll,
            _ => RetryAdvice::Never,
        }
    }

    /// `true` for the codes the reference says may be retried (same parameters, back-off or
    /// poll).
    pub fn is_retryable(&self) -> bool {
        self.retry_advice() != RetryAdvice::Never
    }
}

/// What went wrong on the way to or from WeChat Pay, below the business layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connecting failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL called.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// Connect or read timeout.
    #[error("timed out calling {url}")]
    Timeout {
        /// The URL called.
        url: String,
    },
    /// A non-2xx HTTP status (in API v3: one without a V3 error body, such as a proxy's 502
    /// or an HTML page).
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL called.
        url: String,
        /// The status.
        status: u16,
    },
    /// Any other HTTP failure (TLS, body read, redirect loop...).
    #[error("HTTP error calling {url}: {source}")]
    Http {
        /// The URL called.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

impl TransportError {
    /// Sorts a failure of reqwest's calling `url` into a timeout, a connect error or any
    /// other HTTP error. `url` is what the error shows: the caller strips what must not be
    /// shown (a download token in the query).
    pub fn from_reqwest(url: String, error: reqwest::Error) -> TransportError {
        if error.is_timeout() {
            TransportError::Timeout { url }
        } else if error.is_connect() {
            TransportError::Connect { url, source: error }
        } else {
            TransportError::Http { url, source: error }
        }
    }

    /// `true` when the same request may be sent again: timeouts, connection and other HTTP
    /// failures, and the statuses that say "later" (5xx, 429); not other statuses.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => true,
        }
    }
}

/// The errors of this crate's calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request never got a usable HTTP answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// `return_code=FAIL`: WeChat refused the request at protocol level (bad sign, bad XML,
    /// missing parameter...).
    #[error("{endpoint}: return_code FAIL: {return_msg}{}", err_code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Protocol {
        /// The endpoint path.
        endpoint: &'static str,
        /// WeChat's `return_msg`.
        return_msg: String,
        /// The `err_code` some protocol refusals carry (e.g. `SIGNERROR`), so callers need
        /// not match on the wording of `return_msg`.
        err_code: Option<ErrCode>,
    },
    /// `result_code=FAIL`: a business error.
    #[error("{endpoint}: {code}: {description}")]
    Business {
        /// The endpoint path.
        endpoint: &'static str,
        /// `err_code`.
        code: ErrCode,
        /// `err_code_des`.
        description: String,
    },
    /// A response or notify whose signature does not verify.
    #[error("{context}: invalid signature: {source}")]
    InvalidSignature {
        /// Which document.
        context: &'static str,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// A response or notify that is not what the protocol promises.
    #[error("{context}: {reason}")]
    Malformed {
        /// Which document.
        context: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A response or notify that is not acceptable XML.
    #[error("{context}: {source}")]
    Xml {
        /// Which document.
        context: &'static str,
        /// The XML problem.
        #[source]
        source: XmlError,
    },
    /// A request refused before sending because a field is missing or invalid.
    #[error("invalid request: field `{field}`: {reason}")]
    InvalidRequest {
        /// The field.
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
    /// A daily bill whose text is not a bill [`crate::bill`] can vouch for.
    #[error("/pay/downloadbill: {0}")]
    Bill(#[from] crate::bill::BillError),
    /// Client configuration problem (certificate, TLS set-up).
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
    /// connection errors, 5xx and 429 statuses) and the business codes the reference lists as
    /// retryable. Never for signature, protocol or validation errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(transport) => transport.is_retryable(),
            Error::Business { code, .. } => code.is_retryable(),
            _ => false,
        }
    }

    /// WeChat's error code: a business error's, or the one a protocol refusal carried.
    pub fn err_code(&self) -> Option<&ErrCode> {
        match self {
            Error::Business { code, .. } => Some(code),
            Error::Protocol { err_code, .. } => err_code.as_ref(),
            _ => None,
        }
    }

    /// A suggested pause before retrying, when retrying makes sense.
    pub fn retry_delay_hint(&self) -> Option<Duration> {
        match self {
            Error::Business { code, .. } => code.retry_advice().delay_hint(),
            e if e.is_retryable() => RetryAdvice::RetrySame.delay_hint(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_table_follows_the_reference() {
        for code in ["SYSTEMERROR", "BIZERR_NEED_RETRY"] {
            assert_eq!(ErrCode::parse(code).retry_advice(), RetryAdvice::RetrySame);
        }
        for code in ["INVALID_REQ_TOO_MUCH", "FREQUENCY_LIMITED"] {
            assert_eq!(ErrCode::parse(code).retry_advice(), RetryAdvice::BackOff);
        }
        assert_eq!(
            ErrCode::parse("USERPAYING").retry_advice(),
            RetryAdvice::Poll
        );
        for code in [
            "ORDERPAID",
            "ORDERCLOSED",
            "OUT_TRADE_NO_USED",
            "ORDERNOTEXIST",
            "SIGNERROR",
            "LACK_PARAMS",
            "PARAM_ERROR",
            "APPID_NOT_EXIST",
            "MCHID_NOT_EXIST",
            "APPID_MCHID_NOT_MATCH",
            "NOAUTH",
            "XML_FORMAT_ERROR",
            "NOT_UTF8",
            "NOTENOUGH",
            "TRADE_OVERDUE",
            "REFUNDNOTEXIST",
            "SOMETHING_NEW",
        ] {
            let parsed = ErrCode::parse(code);
            assert!(!parsed.is_retryable(), "{code}");
            assert_eq!(parsed.as_str(), code);
        }
    }

    #[test]
    fn delay_hints_follow_the_advice_and_transport_failures_wait_as_retry_same() {
        let business = |code: &str| Error::Business {
            endpoint: "/pay/orderquery",
            code: ErrCode::parse(code),
            description: "d".into(),
        };
        assert_eq!(
            business("SYSTEMERROR").retry_delay_hint(),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            business("FREQUENCY_LIMITED").retry_delay_hint(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            business("USERPAYING").retry_delay_hint(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(business("ORDERPAID").retry_delay_hint(), None);
        let status = |status| {
            Error::Transport(TransportError::Status {
                url: "u".into(),
                status,
            })
        };
        assert_eq!(
            status(503).retry_delay_hint(),
            Some(Duration::from_millis(200))
        );
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert_eq!(status(404).retry_delay_hint(), None);
    }
}
