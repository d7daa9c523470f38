//! Starting `jit serve`: bind, set up what the official families need, build the app,
//! serve until shutdown, then stop background work.

use std::path::Path;
use std::sync::Arc;

use jit_runtime::{AppSettings, LoadErrors};
use serde_json::json;

use crate::host::{Host, HostError};
use crate::official::Official;
use crate::server::ServerHandle;
use crate::server::config::{ServeConfig, redact_url};
use crate::server::shutdown::ShutdownSignal;
use crate::server::state::ServerState;

pub(crate) async fn start(
    host: &Host,
    app_dir: &Path,
    settings: AppSettings,
    config: ServeConfig,
    shutdown: ShutdownSignal,
    interactive: bool,
) -> Result<ServerHandle, HostError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| HostError::Bind {
            address: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr()?;
    let public_base_url = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{local_addr}"));

    let definitions = host.load_definitions(app_dir)?;
    // Headers are validated before anything in a library runs; every refusal is reported.
    let plugins = jit_plugin_host::load_plugins(&definitions).map_err(LoadErrors::from)?;
    let official = if host.has_official_families() {
        Some(Official::prepare(&definitions, &config, &public_base_url).await?)
    } else {
        None
    };
    let builder = host.app_builder(app_dir, |builder| match &official {
        Some(official) => official.register(builder),
        None => builder,
    });
    // The definitions just read are the ones built: the tree is walked once.
    let builder = jit_plugin_host::add_plugin_loaders(builder, plugins).definitions(definitions);
    let app = match Host::build_app(builder).await {
        Ok(app) => app,
        Err(err) => {
            if let Some(official) = official {
                official.stop().await;
            }
            return Err(err);
        }
    };

    let (probes, gateway_description, extra_router, mut info) = match &official {
        Some(official) => (
            official.health_probes(),
            official.gateway_description(),
            official.extra_routes(),
            official.info(),
        ),
        None => (
            Vec::new(),
            json!({"status": "ok", "detail": "no payment family in this host"}),
            None,
            Vec::new(),
        ),
    };
    let background = match &official {
        Some(official) => official.start_background(&app)?,
        None => Vec::new(),
    };

    let state = Arc::new(ServerState {
        org: settings.org.clone(),
        app_name: settings.name.clone(),
        app: app.clone(),
        config: config.clone(),
        gateway_description,
        probes,
    });
    let router = crate::server::router(state, extra_router);

    let api_base = format!("{public_base_url}/api/{}/{}", settings.org, settings.name);
    tracing::info!(
        listen = %local_addr,
        public_base_url = %public_base_url,
        database = %redact_url(&config.database_url),
        tokens = config.tokens.len(),
        "jit serve: app {}/{} ready",
        settings.org,
        settings.name
    );
    if interactive {
        println!(
            "jit serve: app {}/{} listening on http://{local_addr}",
            settings.org, settings.name
        );
        println!("  element functions: POST {api_base}/{{element path}}/{{function}}");
        println!("  database: {}", redact_url(&config.database_url));
        for (name, value) in info.iter().filter(|(name, _)| name != "simulator") {
            println!("  {name}: {value}");
        }
        println!("  health: GET http://{local_addr}/healthz   (Ctrl-C stops)");
    }
    info.push(("api".to_owned(), api_base));

    let server_shutdown = shutdown.clone();
    let exiting = app.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { server_shutdown.fired().await })
            .await;
        // In-flight requests are done: the elements' onAppExit hooks run while what they
        // may use (database, gateway) is still there, then the background work stops.
        exiting.exit().await;
        for stop in background {
            stop.await;
        }
        if let Some(official) = official {
            official.stop().await;
        }
        tracing::info!("jit serve: stopped");
        served
    });
    Ok(ServerHandle::new(local_addr, shutdown, task, info, app))
}
