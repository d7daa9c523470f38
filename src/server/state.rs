//! What every request handler shares: the app, the configuration, the services the
//! health check looks at, and what an error body must never show.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jit_runtime::log_safe;
use serde_json::{Value, json};

use jit_pays::db::{redact_url, scrub_database_url};

use super::config::{GatewayTarget, ServeConfig};
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
    /// The simulator is the gateway: `/healthz` says so loudly.
    pub(crate) simulated_payments: bool,
    pub(crate) probes: Vec<(String, HealthProbe)>,
    pub(crate) internals: Internals,
}

/// Text an API caller must never see in an error body: the app folder's absolute path
/// (where every e.json and configuration file lives), the database URL in any form, the
/// gateway's and the simulator's URLs.
///
/// An element's error that carries one of them is a fault of the configuration or of the
/// server, never of the caller: [`Internals::guard`] answers it as a 5xx with a generic
/// message and logs the original. This is the host's last line; elements should not put
/// such text in their errors in the first place.
pub(crate) struct Internals {
    needles: Vec<String>,
    database_url: String,
}

/// URL beginnings that are internal wherever they appear: database URLs and loopback.
const INTERNAL_URL_MARKS: &[&str] = &[
    "postgres://",
    "postgresql://",
    "sqlite:",
    "mysql://",
    "://127.",
    "://localhost",
    "://[::1]",
];

impl Internals {
    pub(crate) fn new(app_dir: &Path, config: &ServeConfig, simulator_url: Option<&str>) -> Self {
        let mut needles: Vec<String> = Vec::new();
        let mut dirs = vec![std::path::absolute(app_dir).unwrap_or_else(|_| app_dir.to_path_buf())];
        if let Ok(canonical) = std::fs::canonicalize(app_dir) {
            dirs.push(canonical);
        }
        for dir in dirs {
            let shown = dir.display().to_string();
            // `/` alone would match every path-like word.
            if shown.trim_end_matches('/').len() > 1 {
                needles.push(shown.trim_end_matches('/').to_owned());
            }
        }
        needles.push(config.database_url.clone());
        needles.push(redact_url(&config.database_url));
        if let Some(GatewayTarget::Remote(url)) = &config.gateway {
            needles.push(url.clone());
        }
        if let Some(url) = simulator_url {
            needles.push(url.to_owned());
        }
        needles.retain(|needle| needle.len() > 3);
        Self {
            needles,
            database_url: config.database_url.clone(),
        }
    }

    /// Whether `text` shows something internal.
    fn leaks(&self, text: &str) -> bool {
        self.needles
            .iter()
            .any(|needle| text.contains(needle.as_str()))
            || INTERNAL_URL_MARKS.iter().any(|mark| text.contains(mark))
    }

    /// `text` with the database URL's secrets hidden, for the log.
    fn for_log(&self, text: &str) -> String {
        scrub_database_url(text, &self.database_url)
    }

    /// `error` as the caller may see it: unchanged, or — when it shows something internal —
    /// a 5xx (a 4xx becomes 500: the caller did nothing wrong) with a generic message, the
    /// original logged.
    pub(crate) fn guard(&self, error: ApiError) -> ApiError {
        if !self.leaks(error.message()) {
            return error;
        }
        tracing::error!(
            status = error.status().as_u16(),
            code = %log_safe(error.code()),
            message = %log_safe(&self.for_log(error.message())),
            "an element's error names a file, a database or an internal URL; the caller gets a generic answer"
        );
        let (status, code) = if error.status().is_server_error() {
            (error.status(), error.code().to_owned())
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL".to_owned())
        };
        ApiError::new(
            status,
            code,
            "the server could not do this; see the server log for this request id",
        )
    }

    /// An element's call error as the caller may see it (the log gets the database URL
    /// hidden).
    pub(crate) fn answer(&self, mut error: jit_runtime::CallError) -> ApiError {
        error.message = self.for_log(&error.message);
        self.guard(ApiError::from(error))
    }
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
        peer: Option<IpAddr>,
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
            peer,
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
            .map_err(|error| self.internals.answer(error))?;
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
        let mut report = json!({
            "status": if healthy { "ok" } else { "error" },
            "app": format!("{}/{}", self.org, self.app_name),
            "checks": checks,
        });
        if self.simulated_payments {
            report["payments"] = json!(crate::serve::SIMULATED_PAYMENTS);
        }
        report
    }
}
