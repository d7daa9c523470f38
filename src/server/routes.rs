//! The HTTP surface: element functions under `/api/{org}/{app}/…`, the app's API
//! description beside them, and `/healthz`.
//!
//! This module owns the routes: [`FUNCTION_ROUTE`] is what the router matches for element
//! functions, [`api_base`] and [`function_url`] build the URLs that reach it (the banner's
//! API base, the notify URL handed to the pays family); [`OPENAPI_ROUTE`] and
//! [`DOCS_ROUTE`] (with [`openapi_url`], [`docs_url`]) are the API description's. Nothing
//! else writes `/api/`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jit_runtime::{BodyFormat, log_safe};
use serde_json::Value;

use super::error::ApiError;
use super::request_id::RequestId;
use super::state::ServerState;

/// The route of element functions: `path` is the element's fullName with `/` for `.`,
/// then `/function`.
pub(crate) const FUNCTION_ROUTE: &str = "/api/{org}/{app}/{*path}";

/// The app's OpenAPI document (`server::openapi`), beside its functions. A function's path
/// has at least two segments after the app (`{element path}/{function}`), so this
/// one-segment path never shadows a function, whatever the element names.
pub(crate) const OPENAPI_ROUTE: &str = "/api/{org}/{app}/openapi.json";

/// The app's API docs page (`server::openapi`); one segment, like [`OPENAPI_ROUTE`].
pub(crate) const DOCS_ROUTE: &str = "/api/{org}/{app}/docs";

/// The health check.
pub(crate) const HEALTH_ROUTE: &str = "/healthz";

/// Where the functions of app `org/app` are served: `{public_base_url}/api/{org}/{app}`.
pub fn api_base(public_base_url: &str, org: &str, app: &str) -> String {
    format!("{}/api/{org}/{app}", public_base_url.trim_end_matches('/'))
}

/// The URL of `function` of element `full_name` under an [`api_base`]:
/// `{api_base}/{full name with / for .}/{function}`.
pub fn function_url(api_base: &str, full_name: &str, function: &str) -> String {
    format!("{api_base}/{}/{function}", full_name.replace('.', "/"))
}

/// The URL of the app's OpenAPI document under an [`api_base`].
pub fn openapi_url(api_base: &str) -> String {
    format!("{api_base}/openapi.json")
}

/// The URL of the app's API docs page under an [`api_base`].
pub fn docs_url(api_base: &str) -> String {
    format!("{api_base}/docs")
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
    match super::dispatch::resolve_route(&state, &org, &app, &path) {
        Err(error) => error.into_response(),
        Ok(route) => {
            let format = route.format;
            let outcome = super::dispatch::invoke(
                &state,
                route,
                &parts.method,
                &parts.headers,
                body,
                &request_id,
                peer,
            )
            .await;
            match (outcome, format) {
                (Ok(response), _) => response,
                (Err(error), BodyFormat::Xml) => error.into_xml_response(),
                (Err(error), BodyFormat::Json | BodyFormat::Http) => error.into_response(),
            }
        }
    }
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
        // The router's patterns are the same shape.
        assert!(FUNCTION_ROUTE.starts_with("/api/{org}/{app}/"));
        assert_eq!(
            openapi_url(&base),
            OPENAPI_ROUTE.replace("/api/{org}/{app}", &base)
        );
        assert_eq!(
            docs_url(&base),
            DOCS_ROUTE.replace("/api/{org}/{app}", &base)
        );
    }
}
