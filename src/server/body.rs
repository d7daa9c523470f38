//! Request and answer bodies of element functions: how a function takes its request
//! ([`BodyFormat`]), reading a body within its limit, a JSON body's arguments, an XML answer.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::ApiError;

/// How a function takes its request and gives its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    /// A JSON object of arguments in, the JSON result out.
    Json,
    /// The raw body as the function's single argument, its string result answered as
    /// `application/xml` (WeChat's callbacks).
    Xml,
}

impl BodyFormat {
    /// How `function` takes its request: `"bodyFormat": "xml"` in its declaration, JSON
    /// otherwise.
    pub(crate) fn of(function: &jit_runtime::FunctionDecl) -> Self {
        match function.extra.get("bodyFormat").and_then(Value::as_str) {
            Some("xml") => BodyFormat::Xml,
            _ => BodyFormat::Json,
        }
    }

    /// For [`BodyFormat::Xml`]: the argument that receives the raw body (the first one).
    pub(crate) fn body_argument(self, function: &jit_runtime::FunctionDecl) -> Option<&str> {
        match self {
            BodyFormat::Xml => function.args.first().map(|arg| arg.name.as_str()),
            BodyFormat::Json => None,
        }
    }
}

/// Reads at most `limit` bytes of body; more is a 413 naming the limit.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let too_large =
            std::iter::successors(std::error::Error::source(&err), |source| source.source())
                .any(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("request body larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request("BAD_REQUEST", format!("cannot read request body: {err}"))
        }
    })
}

/// The arguments of a JSON body, read by the runtime (exactly: a number that would change
/// on the way is refused); an empty body means no arguments.
pub(crate) fn json_arguments(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE)
        && !content_type.to_str().is_ok_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "element functions take `Content-Type: application/json`",
        ));
    }
    jit_runtime::parse_arguments(body).map_err(ApiError::from)
}

/// An XML answer.
pub(crate) fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    response
}
