//! Request and answer bodies of element functions, by the declaration's `bodyFormat`:
//! reading a body within its limit, a JSON body's arguments, the request of an `http`
//! function and its answer, an XML answer.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jit_runtime::FunctionDecl;
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// For the raw formats (`bodyFormat: xml` or `http`): the argument that receives the
/// request, the declaration's one argument (the runtime refuses any other count).
pub(crate) fn body_argument(function: &FunctionDecl) -> Option<&str> {
    if !function.body_format.takes_raw_request() {
        return None;
    }
    function.args.first().map(|arg| arg.name.as_str())
}

/// Request headers a function never sees through `bodyFormat: http`: the caller's
/// credentials are the host's business, not the callback's.
const WITHHELD_HEADERS: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// The argument of a `bodyFormat: http` function: `{"method", "headers", "body"}`, header
/// names lower-case (as `HeaderMap` keeps them), a repeated header's values joined by
/// `, ` (RFC 9110's list form), the body as text.
pub(crate) fn http_request_argument(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let body = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("BAD_REQUEST", "the request body is not UTF-8"))?;
    let mut fields: Map<String, Value> = Map::new();
    for name in headers.keys() {
        if WITHHELD_HEADERS.contains(name) {
            continue;
        }
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if !values.is_empty() {
            fields.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
        }
    }
    Ok(json!({
        "method": method.as_str(),
        "headers": fields,
        "body": body,
    }))
}

/// The answer of a `bodyFormat: http` function, from its result `{"status", "body"}`:
/// that status, and the body as JSON (`null` or absent: no body). `None` when the result
/// is not of that shape; the caller logs and answers 500.
pub(crate) fn http_response(result: &Value) -> Option<Response> {
    let object = result.as_object()?;
    if object.keys().any(|key| key != "status" && key != "body") {
        return None;
    }
    let status = object
        .get("status")?
        .as_u64()
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())?;
    Some(match object.get("body") {
        None | Some(Value::Null) => status.into_response(),
        Some(body) => (status, axum::Json(body)).into_response(),
    })
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
