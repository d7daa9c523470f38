//! `GET /metrics`: the process's metrics in Prometheus' text format.
//!
//! This module owns the exporter (the `metrics` facade's Prometheus recorder, installed
//! once per process, rendered here and nowhere else: no listener of the exporter's own),
//! the HTTP request metrics the host records itself ([`track`]), and the two ways in:
//!
//! - on the main listener, behind a bearer token: `[server] metrics_token` or any
//!   `[auth]` token; with neither configured it answers 401;
//! - on `[server] metrics_listen`, a listener of its own serving `/metrics` alone, with
//!   no token (config.rs and safety.rs keep it on loopback unless told otherwise).
//!
//! The libraries record through the facade (`jit_pays::metrics` names what the pays family
//! records); the gauges that describe the database are computed when scraped, at most once
//! per [`STORE_GAUGES_INTERVAL`]. docs/operations.md explains every metric.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jit_pays::PayStore;
use jit_pays::metrics::StoreGauges;
use jit_runtime::log_safe;
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::config::ConnectionLimits;
use super::error::ApiError;
use super::routes::FUNCTION_ROUTE;
use super::shutdown::ShutdownSignal;
use super::state::ServerState;

/// Where the metrics are served, on either listener.
pub(crate) const METRICS_ROUTE: &str = "/metrics";

/// HTTP requests answered, by `route` (the route template), `function` (the element
/// function a `/api/…` request named, when it is a declared one), `method` and `status`.
pub const HTTP_REQUESTS: &str = "jit_http_requests_total";
/// How long answering took, by `route`, `function` and `method`.
pub const HTTP_REQUEST_SECONDS: &str = "jit_http_request_duration_seconds";

/// The gauges read from the database are refreshed at most this often, however often
/// `/metrics` is scraped.
pub const STORE_GAUGES_INTERVAL: Duration = Duration::from_secs(10);

/// How often histogram samples are folded into their buckets between scrapes (each
/// scrape folds them too), so memory stays bounded when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The text format's content type (version 0.0.4).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// HTTP latency buckets, in seconds: from a cached notify to a slow gateway call.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's recorder and what scrapes share.
pub(crate) struct Exporter {
    handle: PrometheusHandle,
    store_gauges: StoreGauges,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once (later calls
/// return the same exporter): `jit serve` calls it before building the app, so everything
/// from the first request on is counted.
pub(crate) fn install() -> &'static Exporter {
    EXPORTER.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        let buckets = [(HTTP_REQUEST_SECONDS, HTTP_BUCKETS)]
            .into_iter()
            .chain(jit_pays::metrics::HISTOGRAM_BUCKETS.iter().copied());
        for (name, bounds) in buckets {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), bounds)
                .expect("bucket lists are not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // A host embedding this crate installed its own: /metrics then shows nothing
            // of what is recorded, and says so in the log rather than failing to start.
            tracing::warn!(
                "another metrics recorder is installed in this process; /metrics stays empty"
            );
        }
        describe_counter!(
            HTTP_REQUESTS,
            "HTTP requests answered, by route template, element function, method and status."
        );
        describe_histogram!(
            HTTP_REQUEST_SECONDS,
            Unit::Seconds,
            "Time to answer an HTTP request, by route template, element function and method."
        );
        describe_counter!(
            crate::reload::RELOADS,
            "Reloads of the app by `jit serve`, by outcome: applied, unchanged, refused, restart_required."
        );
        for outcome in crate::reload::OUTCOME_LABELS {
            counter!(crate::reload::RELOADS, "outcome" => outcome).absolute(0);
        }
        jit_pays::metrics::describe();
        let upkeep = handle.clone();
        // A plain thread: it outlives any one tokio runtime (tests start several).
        let _ = std::thread::Builder::new()
            .name("jit-metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        Exporter {
            handle,
            store_gauges: StoreGauges::new(STORE_GAUGES_INTERVAL),
        }
    })
}

/// The route of the main listener: `/metrics` behind a token.
pub(crate) fn routes() -> Router<Arc<ServerState>> {
    Router::new().route(METRICS_ROUTE, get(scrape_with_token))
}

async fn scrape_with_token(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize(&state, &headers) {
        return refused.into_response();
    }
    scrape(&state.app()).await
}

/// Any `[auth]` token or the `[server] metrics_token`; nothing configured opens nothing.
fn authorize(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    let api_tokens = &state.config.tokens;
    let dedicated = &state.config.metrics.token;
    if api_tokens.is_empty() && dedicated.is_empty() {
        return Err(ApiError::unauthorized(
            "METRICS_TOKEN_NOT_CONFIGURED",
            "/metrics needs a bearer token and none is configured: set `[server] \
             metrics_token` or `[auth] tokens` (or scrape `[server] metrics_listen`)",
        ));
    }
    match api_tokens.authorize(headers) {
        Ok(()) => Ok(()),
        Err(refused) => dedicated.authorize(headers).map_err(|_| refused),
    }
}

/// The text of every metric, the database gauges refreshed first when due.
async fn scrape(app: &jit_runtime::App) -> Response {
    let exporter = install();
    if let Some(store) = app.service::<PayStore>()
        && let Err(error) = exporter.store_gauges.refresh(&store).await
    {
        // The counters are still worth serving; the gauges keep their last values.
        tracing::warn!(error = %log_safe(&error.to_string()),
            "metrics: the database gauges could not be read");
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        exporter.handle.render(),
    )
        .into_response()
}

/// Counts and times every request by its route template — never the raw path, which
/// carries order ids — and, for element functions, by the declared function it named.
pub(crate) async fn track(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let route = if matched == FUNCTION_ROUTE {
        // The notify path's route, written once.
        static FUNCTION_ROUTE_LABEL: LazyLock<String> =
            LazyLock::new(|| route_label(FUNCTION_ROUTE));
        FUNCTION_ROUTE_LABEL.clone()
    } else {
        route_label(matched)
    };
    let function = if matched == FUNCTION_ROUTE {
        declared_function(&state, request.uri().path())
    } else {
        String::new()
    };
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!(HTTP_REQUEST_SECONDS, "route" => route.clone(), "function" => function.clone(),
        "method" => method)
    .record(started.elapsed().as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route, "function" => function, "method" => method,
        "status" => status)
    .increment(1);
    response
}

/// A route template as a label, its parameters written `:name` and `*name` instead of
/// `{name}` and `{*name}` (`/api/:org/:app/*path`): braces inside label values trip some
/// text-format parsers, and the template is just as recognisable.
fn route_label(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            match segment
                .strip_prefix('{')
                .and_then(|name| name.strip_suffix('}'))
            {
                Some(name) if name.starts_with('*') => name.to_owned(),
                Some(name) => format!(":{name}"),
                None => segment.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `element.function` when `path` names a function the app declares, else `unknown`: a
/// label takes only values from the app's own tree.
fn declared_function(state: &ServerState, path: &str) -> String {
    let mut parts = path.trim_start_matches('/').splitn(4, '/');
    let (Some("api"), Some(org), Some(app), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return "unknown".to_owned();
    };
    match super::dispatch::resolve_route(state, org, app, rest) {
        Ok(route) => format!("{}.{}", route.full_name, route.function),
        Err(_) => "unknown".to_owned(),
    }
}

/// The method as a label: the standard ones, everything else `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Serves `/metrics` alone, without a token, on `listener` (`[server] metrics_listen`)
/// until `shutdown` fires.
pub(crate) async fn serve_open(
    listener: tokio::net::TcpListener,
    app: jit_runtime::LiveApp,
    limits: ConnectionLimits,
    shutdown: ShutdownSignal,
) -> std::io::Result<()> {
    let router =
        Router::new()
            .route(
                METRICS_ROUTE,
                get(|State(app): State<jit_runtime::LiveApp>| async move {
                    scrape(&app.current()).await
                }),
            )
            .fallback(|| async {
                ApiError::not_found("NOT_FOUND", "this listener serves GET /metrics only")
            })
            .with_state(app);
    super::listener::serve(listener, router, limits, shutdown).await
}

/// Binds `[server] metrics_listen`, if set.
pub(crate) async fn bind_open(
    address: Option<SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, crate::error::HostError> {
    match address {
        None => Ok(None),
        Some(address) => tokio::net::TcpListener::bind(address)
            .await
            .map(Some)
            .map_err(|source| crate::error::HostError::Bind { address, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_keep_the_template_without_braces() {
        assert_eq!(route_label(FUNCTION_ROUTE), "/api/:org/:app/*path");
        assert_eq!(route_label("/healthz"), "/healthz");
        assert_eq!(route_label("unmatched"), "unmatched");
        assert_eq!(
            route_label("/pay/{org}/{app}/{orderId}"),
            "/pay/:org/:app/:orderId"
        );
    }
}
