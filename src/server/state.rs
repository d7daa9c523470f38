//! What every request handler shares: the app, the configuration and the services the
//! health check looks at.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::config::ServeConfig;
use super::error::ApiError;
use super::routes::{BodyFormat, json_arguments, read_body, timeout_error, xml_response};

/// A probe the health check runs (database ping, ...): `Ok(detail)` or `Err(reason)`.
pub type HealthProbe =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// Shared by all handlers.
pub(crate) struct ServerState {
    pub(crate) app: jit_runtime::App,
    pub(crate) org: String,
    pub(crate) app_name: String,
    pub(crate) config: ServeConfig,
    pub(crate) gateway_description: Value,
    pub(crate) probes: Vec<(String, HealthProbe)>,
}

/// A request path resolved to a declared function.
pub(crate) struct Route {
    pub(crate) full_name: String,
    pub(crate) function: String,
    pub(crate) login_required: bool,
    pub(crate) format: BodyFormat,
    /// For XML functions: the argument that receives the raw body.
    pub(crate) body_argument: Option<String>,
}

impl ServerState {
    /// Maps `org`, `app` and `element/path/function` to a declared function, or the 404
    /// that says which part is unknown.
    pub(crate) fn resolve_route(
        &self,
        org: &str,
        app: &str,
        path: &str,
    ) -> Result<Route, ApiError> {
        if org != self.org || app != self.app_name {
            return Err(ApiError::not_found(
                "NOT_FOUND",
                format!(
                    "no app `{org}/{app}` here; this server hosts `{}/{}`",
                    self.org, self.app_name
                ),
            ));
        }
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
        let Some(chain) = self.app.chain(&full_name) else {
            let hint = self
                .app
                .definitions()
                .suggest(&full_name)
                .map(|name| format!(" (did you mean `{name}`?)"))
                .unwrap_or_default();
            return Err(ApiError::not_found(
                "NOT_FOUND",
                format!("no element `{full_name}`{hint}"),
            ));
        };
        let declaration = jit_runtime::declared_function(chain, function)?;
        let format = match declaration.extra.get("bodyFormat").and_then(Value::as_str) {
            Some("xml") => BodyFormat::Xml,
            _ => BodyFormat::Json,
        };
        let body_argument = match format {
            BodyFormat::Xml => declaration.args.first().map(|arg| arg.name.clone()),
            BodyFormat::Json => None,
        };
        Ok(Route {
            full_name,
            function: function.to_owned(),
            login_required: declaration.login_required,
            format,
            body_argument,
        })
    }

    /// Authorizes, reads the body, calls the element and shapes its answer.
    pub(crate) async fn invoke(
        &self,
        route: Route,
        headers: &HeaderMap,
        body: Body,
        request_id: &str,
    ) -> Result<Response, ApiError> {
        if route.login_required {
            self.config.tokens.authorize(headers)?;
        }
        let (limit, format) = match route.format {
            BodyFormat::Json => (self.config.json_body_limit, BodyFormat::Json),
            BodyFormat::Xml => (self.config.xml_body_limit, BodyFormat::Xml),
        };
        let bytes = read_body(body, limit).await?;
        let arguments = match format {
            BodyFormat::Json => json_arguments(headers, &bytes)?,
            BodyFormat::Xml => {
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    ApiError::bad_request("BAD_REQUEST", "the request body is not UTF-8")
                })?;
                let mut arguments = serde_json::Map::new();
                if let Some(name) = &route.body_argument {
                    arguments.insert(name.clone(), Value::String(text.to_owned()));
                }
                arguments
            }
        };
        let context = jit_runtime::CallContext {
            request_id: Some(request_id.to_owned()),
            // Tokens are shared secrets, not identities: an authorized caller is "bearer".
            principal: route.login_required.then(|| "bearer".to_owned()),
            peer: None,
        };
        let call = self.app.call(
            &route.full_name,
            &route.function,
            Value::Object(arguments),
            &context,
        );
        let result = tokio::time::timeout(self.config.request_timeout, call)
            .await
            .map_err(|_| timeout_error(self.config.request_timeout))?
            .map_err(ApiError::from)?;
        Ok(match format {
            BodyFormat::Json => axum::Json(result).into_response(),
            BodyFormat::Xml => match result {
                Value::String(xml) => xml_response(StatusCode::OK, xml),
                other => {
                    tracing::error!(
                        element = %route.full_name,
                        function = %route.function,
                        "XML function returned {} instead of a string",
                        if other.is_object() { "an object" } else { "a non-string value" }
                    );
                    return Err(ApiError::internal("the function returned no XML"));
                }
            },
        })
    }

    /// `/healthz`: every probe plus the gateway in use.
    pub(crate) async fn health(&self) -> Value {
        let mut healthy = true;
        let mut checks = serde_json::Map::new();
        for (name, probe) in &self.probes {
            let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), probe()).await;
            let entry = match outcome {
                Ok(Ok(detail)) => json!({"status": "ok", "detail": detail}),
                Ok(Err(reason)) => {
                    healthy = false;
                    json!({"status": "error", "detail": reason})
                }
                Err(_) => {
                    healthy = false;
                    json!({"status": "error", "detail": "no answer within 5 s"})
                }
            };
            checks.insert(name.clone(), entry);
        }
        checks.insert("gateway".into(), self.gateway_description.clone());
        json!({
            "status": if healthy { "ok" } else { "error" },
            "app": format!("{}/{}", self.org, self.app_name),
            "checks": checks,
        })
    }
}
