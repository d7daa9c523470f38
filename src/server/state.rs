//! What every request handler shares: the app, the configuration, the services the
//! health check looks at, and what an error body must never show.

use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use jit_runtime::log_safe;
use serde_json::{Value, json};

use jit_pays::db::{redact_url, scrub_database_url};

use super::config::ServeConfig;
use super::error::ApiError;
use crate::official::config::{GatewayTarget, PaysConfig};

/// A probe the health check runs (database ping, ...): `Ok(detail)` or `Err(reason)`.
pub type HealthProbe =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// Shared by all handlers.
pub(crate) struct ServerState {
    /// The app across reloads: a request pins the generation current when it starts
    /// ([`ServerState::app`]) and finishes on it.
    pub(crate) app: jit_runtime::LiveApp,
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
    pub(crate) fn new(app_dir: &Path, config: &PaysConfig, simulator_url: Option<&str>) -> Self {
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

impl ServerState {
    /// The app generation being served now, pinned for the caller (one request).
    pub(crate) fn app(&self) -> jit_runtime::App {
        self.app.current()
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
