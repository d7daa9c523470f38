//! `jit serve`: the HTTP host over axum.
//!
//! It owns the HTTP concerns only — connections and their limits, routing, bearer tokens,
//! body limits, timeouts, request ids, panics, health, graceful shutdown, and the start-up
//! rules that keep a careless configuration from exposing a shop — and hands every call to
//! the runtime's `App::call`. It knows nothing of what an element does with a call.

pub mod auth;
pub(crate) mod body;
pub mod config;
pub(crate) mod dispatch;
pub mod error;
pub(crate) mod listener;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub mod request_id;
pub(crate) mod routes;
pub mod safety;
pub mod shutdown;
pub(crate) mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jit_runtime::log_safe;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Level;

use self::error::ApiError;
use self::request_id::RequestId;
use self::shutdown::ShutdownSignal;
use self::state::ServerState;

/// Builds the router over a prepared state.
///
/// Nothing else is routed: in particular the simulator's payer side (`/sim/pay`...) is
/// only on the simulator's own loopback listener, never on the shop's.
pub(crate) fn router(state: Arc<ServerState>) -> Router {
    let timeout = state.config.request_timeout;
    // The merchant's console: /admin/{org}/{app}/ (src/web/console).
    let console = crate::web::console::router(Arc::clone(&state));
    let tracked = middleware::from_fn_with_state(Arc::clone(&state), metrics::track);
    Router::new()
        .route(routes::FUNCTION_ROUTE, post(routes::call_function))
        .route(routes::OPENAPI_ROUTE, get(openapi::document))
        .route(routes::DOCS_ROUTE, get(openapi::docs_page))
        .route(routes::HEALTH_ROUTE, get(routes::healthz))
        // The payer's checkout page (no token: see src/web/checkout.rs).
        .merge(crate::web::checkout::routes())
        .merge(console)
        .merge(metrics::routes())
        .fallback(routes::not_found)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(request_id::assign))
                .layer(tracked)
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            // Only the method, the path and the id: headers carry tokens and
                            // bodies carry signed payment data. Method and path are the
                            // client's text, escaped like any value from outside.
                            let id = request
                                .extensions()
                                .get::<RequestId>()
                                .map(|id| id.0.as_str())
                                .unwrap_or("");
                            tracing::info_span!(
                                "request",
                                request_id = %id,
                                method = %log_safe(request.method().as_str()),
                                path = %log_safe(request.uri().path()),
                            )
                        })
                        .on_request(())
                        .on_response(
                            tower_http::trace::DefaultOnResponse::new()
                                .level(Level::INFO)
                                .latency_unit(tower_http::LatencyUnit::Micros),
                        ),
                )
                .layer(CatchPanicLayer::custom(routes::panic_response))
                .layer(middleware::from_fn(move |request: Request, next: Next| {
                    enforce_timeout(timeout, request, next)
                })),
        )
}

async fn enforce_timeout(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout(timeout).into_response(),
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    base_url: String,
    shutdown: ShutdownSignal,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    extra_info: Vec<(String, String)>,
    app: jit_runtime::LiveApp,
    reload: crate::reload::ReloadHandle,
}

impl ServerHandle {
    pub(crate) fn new(
        local_addr: SocketAddr,
        shutdown: ShutdownSignal,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
        extra_info: Vec<(String, String)>,
        app: jit_runtime::LiveApp,
        reload: crate::reload::ReloadHandle,
    ) -> Self {
        Self {
            app,
            reload,
            local_addr,
            base_url: format!("http://{local_addr}"),
            shutdown,
            task,
            extra_info,
        }
    }

    /// The app generation being served now, for hosted code and tests (services, hooks,
    /// elements). After a reload, call it again for the new generation.
    pub fn app(&self) -> jit_runtime::App {
        self.app.current()
    }

    /// Reloads the app now, as a change on disk, SIGHUP or `jit reload` do, and returns
    /// what came of it (see `docs/operations.md`, "Reload").
    pub async fn reload(&self) -> crate::reload::ReloadOutcome {
        self.reload.reload_now().await
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<bound address>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Named facts about the running server (e.g. `simulator` → its base URL).
    pub fn info(&self, key: &str) -> Option<&str> {
        self.extra_info
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The signal that stops this server; clones can be handed to other tasks.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.shutdown.clone()
    }

    /// Stops accepting connections, lets in-flight requests finish, stops background
    /// tasks, and returns once everything is down.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.shutdown.trigger();
        self.wait().await
    }

    /// Waits until the server stops (after SIGINT/SIGTERM or a trigger elsewhere).
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(join_error) => Err(std::io::Error::other(join_error)),
        }
    }
}
