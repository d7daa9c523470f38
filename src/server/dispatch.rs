//! Request dispatch: a request path resolved to a declared function ([`resolve_route`]),
//! then the call itself ([`invoke`]): authorization, the body read in its format, the
//! runtime's `App::call` within the request timeout, and the answer shaped.

use std::net::IpAddr;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jit_runtime::log_safe;
use serde_json::Value;

use axum::http::Method;
use jit_runtime::BodyFormat;

use super::body::{
    body_argument, http_request_argument, http_response, json_arguments, read_body, xml_response,
};
use super::error::ApiError;
use super::state::ServerState;

/// A request path resolved to a declared function, in the app generation the request
/// pinned when it started: the call runs on the generation its route was resolved in.
pub(crate) struct Route {
    pub(crate) app: jit_runtime::App,
    pub(crate) full_name: String,
    pub(crate) function: String,
    pub(crate) login_required: bool,
    pub(crate) format: BodyFormat,
    /// For the raw formats (XML, HTTP): the argument that receives the request.
    pub(crate) body_argument: Option<String>,
}

/// `Ok` when `org/app` is the app this server hosts, else the 404 that names the one it does.
pub(crate) fn hosted_app(state: &ServerState, org: &str, app: &str) -> Result<(), ApiError> {
    if org != state.org || app != state.app_name {
        return Err(ApiError::not_found(
            "NOT_FOUND",
            format!(
                "no app `{org}/{app}` here; this server hosts `{}/{}`",
                state.org, state.app_name
            ),
        ));
    }
    Ok(())
}

/// Maps `org`, `app` and `element/path/function` to a declared function, or the 404
/// that says which part is unknown.
pub(crate) fn resolve_route(
    state: &ServerState,
    org: &str,
    app: &str,
    path: &str,
) -> Result<Route, ApiError> {
    hosted_app(state, org, app)?;
    let path = path.trim_end_matches('/');
    let Some((element_path, function)) = path.rsplit_once('/') else {
        return Err(ApiError::not_found(
            "NOT_FOUND",
            format!("`{path}` names no element: expected {{element path}}/{{function}}"),
        ));
    };
    if element_path
        .split('/')
        .any(|segment| segment.is_empty() || segment.contains('.'))
    {
        return Err(ApiError::not_found(
            "NOT_FOUND",
            format!("`{element_path}` is not an element path (segments joined by `/`)"),
        ));
    }
    let full_name = element_path.replace('/', ".");
    let app = state.app();
    let Some(chain) = app.chain(&full_name) else {
        let hint = app
            .definitions()
            .suggest(&full_name)
            .map(|name| format!(" (did you mean `{name}`?)"))
            .unwrap_or_default();
        return Err(ApiError::not_found(
            "NOT_FOUND",
            format!("no element `{full_name}`{hint}"),
        ));
    };
    // A Type or a Meta declares functions for its instances; it builds nothing that could
    // answer them (the same rule `jit check` counts instances by, and OpenAPI lists by).
    if let Some(refusal) = app.definitions().serves_no_calls(chain) {
        return Err(ApiError::not_found("NOT_FOUND", refusal));
    }
    let declaration = jit_runtime::declared_function(chain, function)?;
    let format = declaration.body_format;
    let body_argument = body_argument(declaration).map(str::to_owned);
    Ok(Route {
        app: app.clone(),
        full_name,
        function: function.to_owned(),
        login_required: declaration.login_required,
        format,
        body_argument,
    })
}

/// Authorizes, reads the body, calls the element and shapes its answer.
pub(crate) async fn invoke(
    state: &ServerState,
    route: Route,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    peer: Option<IpAddr>,
) -> Result<Response, ApiError> {
    if route.login_required {
        state.config.tokens.authorize(headers)?;
    }
    let format = route.format;
    let limit = match format {
        // An `http` callback's body is JSON text (WeChat Pay V3's are): JSON's cap.
        BodyFormat::Json | BodyFormat::Http => state.config.json_body_limit,
        BodyFormat::Xml => state.config.xml_body_limit,
    };
    let bytes = read_body(body, limit).await?;
    let arguments = match format {
        BodyFormat::Json => json_arguments(headers, &bytes)?,
        BodyFormat::Xml => {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                ApiError::bad_request("BAD_REQUEST", "the request body is not UTF-8")
            })?;
            raw_argument(&route, Value::String(text.to_owned()))
        }
        BodyFormat::Http => raw_argument(&route, http_request_argument(method, headers, &bytes)?),
    };
    let context = jit_runtime::CallContext {
        request_id: Some(request_id.to_owned()),
        // Tokens are shared secrets, not identities: an authorized caller is "bearer".
        principal: route.login_required.then(|| "bearer".to_owned()),
        peer,
        // A new request: its own `cacheLevel: 1` elements.
        ..Default::default()
    };
    let call = route.app.call(
        &route.full_name,
        &route.function,
        Value::Object(arguments),
        &context,
    );
    let result = tokio::time::timeout(state.config.request_timeout, call)
        .await
        .map_err(|_| ApiError::timeout(state.config.request_timeout))?
        .map_err(|error| state.internals.answer(error))?;
    Ok(match format {
        BodyFormat::Json => axum::Json(result).into_response(),
        BodyFormat::Xml => match result {
            Value::String(xml) => xml_response(StatusCode::OK, xml),
            other => {
                tracing::error!(
                    element = %log_safe(&route.full_name),
                    function = %log_safe(&route.function),
                    "XML function returned {} instead of a string",
                    if other.is_object() { "an object" } else { "a non-string value" }
                );
                return Err(ApiError::internal("the function returned no XML"));
            }
        },
        BodyFormat::Http => match http_response(&result) {
            Some(response) => response,
            None => {
                tracing::error!(
                    element = %log_safe(&route.full_name),
                    function = %log_safe(&route.function),
                    "HTTP function returned something other than {{\"status\": 200..=599, \"body\": …}}"
                );
                return Err(ApiError::internal("the function returned no HTTP answer"));
            }
        },
    })
}

/// The arguments of a raw-format call: the request under the declaration's one argument.
fn raw_argument(route: &Route, request: Value) -> serde_json::Map<String, Value> {
    let mut arguments = serde_json::Map::new();
    if let Some(name) = &route.body_argument {
        arguments.insert(name.clone(), request);
    }
    arguments
}
