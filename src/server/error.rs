//! The one error type every HTTP handler returns, and its JSON (or WeChat XML) form.
//!
//! Codes are part of the API: clients match on `error.code`, never on the message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jit_runtime::{CallError, CallErrorKind};
use serde_json::json;

/// An error answered to an HTTP client as `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    /// An error with an explicit status, stable code and human-readable message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 404: no element or no function at this path.
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 400: the request's arguments are not what the function declares.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no bearer token, or one that is not configured.
    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 500: something failed on our side; the message must not leak internals.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    /// 504: the request outlived its timeout.
    pub fn timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TIMEOUT",
            format!(
                "the request did not finish within {} ms",
                timeout.as_millis()
            ),
        )
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body of this error.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }

    /// The same error in WeChat's reply format, for endpoints that speak XML.
    ///
    /// WeChat only looks at `return_code`; the message is kept short and never echoes the
    /// request body.
    pub fn into_xml_response(self) -> Response {
        let body = wechatpay_v2::fail_reply(&format!("{}: {}", self.code, self.message));
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.to_json())).into_response()
    }
}

/// Maps a runtime call error's category to the HTTP status it is answered with.
///
/// Only the category decides: an element's specific code (`ORDER_PAID`, `ORDER_NOT_FOUND`)
/// refines what the client reads in `error.code`, never the status.
pub(crate) fn status_for_call_error(kind: CallErrorKind) -> StatusCode {
    match kind {
        CallErrorKind::NotFound | CallErrorKind::FunctionNotFound => StatusCode::NOT_FOUND,
        CallErrorKind::BadArguments => StatusCode::BAD_REQUEST,
        CallErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        CallErrorKind::Conflict => StatusCode::CONFLICT,
        CallErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        CallErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        let status = status_for_call_error(error.kind);
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Internal messages may name files or queries; the log has them, the client a
            // pointer to the log line.
            // The message may quote what the request carried.
            tracing::error!(
                code = %jit_runtime::log_safe(error.code()),
                message = %jit_runtime::log_safe(&error.message),
                "element call failed"
            );
            "internal error; see the server log for this request id".to_owned()
        } else {
            error.message.clone()
        };
        Self::new(status, error.code(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FAIL reply is the protocol crate's: a message holding `]]>` or a control
    /// character still gives well-formed XML carrying the message (the host's own copy
    /// rewrote `]]>` and let control characters through, which no XML parser accepts).
    #[tokio::test]
    async fn xml_errors_are_wechat_fail_replies_for_any_message() {
        let error = ApiError::bad_request("BAD_REQUEST", "odd ]]> text\u{1}");
        let response = error.into_xml_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/xml; charset=utf-8"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let params = wechatpay_v2::xml::decode(&body).expect("well-formed XML");
        assert_eq!(params["return_code"], "FAIL");
        assert_eq!(params["return_msg"], "BAD_REQUEST: odd ]]> text\u{FFFD}");
    }
}
