//! The HTTP surface: element functions under `/api/{org}/{app}/…` and `/healthz`.
//!
//! This module owns the route of element functions: [`FUNCTION_ROUTE`] is what the router
//! matches, [`api_base`] and [`function_url`] build the URLs that reach it (the banner's
//! API base, the notify URL handed to the pays family). Nothing else writes `/api/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jit_runtime::log_safe;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::request_id::RequestId;
use super::state::ServerState;

/// The route of element functions: `path` is the element's fullName with `/` for `.`,
/// then `/function`.
pub(crate) const FUNCTION_ROUTE: &str = "/api/{org}/{app}/{*path}";

/// Where the functions of app `org/app` are served: `{public_base_url}/api/{org}/{app}`.
pub fn api_base(public_base_url: &str, org: &str, app: &str) -> String {
    format!("{}/api/{org}/{app}", public_base_url.trim_end_matches('/'))
}

/// The URL of `function` of element `full_name` under an [`api_base`]:
/// `{api_base}/{full name with / for .}/{function}`.
pub fn function_url(api_base: &str, full_name: &str, function: &str) -> String {
    format!("{api_base}/{}/{function}", full_name.replace('.', "/"))
}

/// How a function takes its request and gives its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    /// A JSON object of arguments in, the JSON result out.
    Json,
    /// The raw body as the function's single argument, its string result answered as
    /// `application/xml` (WeChat's callbacks).
    Xml,
}

/// `POST /api/{org}/{app}/{*path}`: calls `function` of element `fullName` where `path` is
/// the fullName with `/` for `.` followed by `/function`.
pub(crate) async fn call_function(
    State(state): State<Arc<ServerState>>,
    Path((org, app, path)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    // Set by the accept loop for every connection.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let (parts, body) = request.into_parts();
    match state.resolve_route(&org, &app, &path) {
        Err(error) => error.into_response(),
        Ok(route) => {
            let format = route.format;
            let outcome = state
                .invoke(route, &parts.headers, body, &request_id, peer)
                .await;
            match (outcome, format) {
                (Ok(response), _) => response,
                (Err(error), BodyFormat::Xml) => error.into_xml_response(),
                (Err(error), BodyFormat::Json) => error.into_response(),
            }
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

/// `GET /healthz`.
pub(crate) async fn healthz(State(state): State<Arc<ServerState>>) -> Response {
    let report = state.health().await;
    let status = if report.get("status").and_then(Value::as_str) == Some("ok") {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// Any other path.
pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(
        "NOT_FOUND",
        format!(
            "no route for {} {}; element functions are at POST /api/{{org}}/{{app}}/{{element path}}/{{function}}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// The JSON 500 answered instead of a panic.
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic)");
    // A panic message may quote what the request carried.
    tracing::error!(panic = %log_safe(detail), "handler panicked");
    ApiError::internal("internal error; see the server log for this request id").into_response()
}

/// The JSON 504 answered when a request outlives its timeout.
pub(crate) fn timeout_error(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "TIMEOUT",
        format!(
            "the request did not finish within {} ms",
            timeout.as_millis()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_urls_follow_the_route() {
        let base = api_base("https://shop.example.com/", "demo", "shop");
        assert_eq!(base, "https://shop.example.com/api/demo/shop");
        assert_eq!(
            function_url(&base, "pays.services.PaySvc", "wechatNotify"),
            "https://shop.example.com/api/demo/shop/pays/services/PaySvc/wechatNotify"
        );
        // The router's pattern is the same shape.
        assert!(FUNCTION_ROUTE.starts_with("/api/{org}/{app}/"));
    }
}
