//! Starting `jit serve`: check the start-up rules, bind, set up what the official families
//! need, build the app, start the reloader (`crate::reload`), serve until shutdown, then
//! stop background work.

use std::path::Path;
use std::sync::Arc;

use jit_runtime::{AppSettings, LoadErrors};
use serde_json::json;

use crate::error::HostError;
use crate::host::Host;
use crate::official::Official;
use crate::server::ServerHandle;
use jit_pays::WebhookEndpoint;
use jit_pays::db::redact_url;

use crate::official::config::PaysConfig;
use crate::server::config::ServeConfig;
use crate::server::shutdown::ShutdownSignal;
use crate::server::state::ServerState;
use crate::simulator_file::SimulatorFile;

/// What the banner and the log say when the simulator is the gateway.
pub(crate) const SIMULATED_PAYMENTS: &str =
    "SIMULATED PAYMENTS: the gateway is the built-in simulator; no money moves";

/// How `jit serve` runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// The `jit serve` command: the banner, SIGHUP reloads, `.jit/serve.json`.
    pub(crate) interactive: bool,
    /// Reload on changes in `elements/` and app.toml.
    pub(crate) watch: bool,
}

pub(crate) async fn start(
    host: &Host,
    app_dir: &Path,
    settings: AppSettings,
    config: ServeConfig,
    pays: PaysConfig,
    shutdown: ShutdownSignal,
    mode: Mode,
) -> Result<ServerHandle, HostError> {
    let interactive = mode.interactive;
    // What a reload may not change, as applied now.
    let fixed_sections = crate::reload::fixed_sections(&settings, app_dir)?;
    // Before anything records: everything from here on is counted.
    crate::server::metrics::install();
    let definitions = host.load_definitions(app_dir)?;
    // Before anything listens: a configuration that would expose the shop does not start.
    let problems = crate::server::safety::problems(
        &app_dir.join("app.toml"),
        &config,
        &pays,
        &definitions,
        host.has_official_families(),
    );
    if !problems.is_empty() {
        return Err(HostError::StartupRules(problems));
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| HostError::Bind {
            address: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr()?;
    let metrics_listener = crate::server::metrics::bind_open(config.metrics.listen).await?;
    let metrics_addr = match &metrics_listener {
        Some(bound) => Some(bound.local_addr()?),
        None => None,
    };
    let public_base_url = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{local_addr}"));

    // Headers are validated before anything in a library runs; every refusal is reported.
    let plugins = jit_plugin_host::load_plugins(&definitions).map_err(LoadErrors::from)?;
    // What `jit check` refuses (an element this binary cannot build) is refused here too,
    // before the database or the simulator is set up, so a refused app leaves nothing
    // behind (no SQLite file, no simulator file).
    let definitions = jit_plugin_host::expect_plugin_loaders(
        host.definitions_builder(app_dir),
        plugins.iter().map(|(spec, _)| spec),
    )
    .definitions(definitions)
    .check()?;
    let registered = host.registration_problems(&definitions);
    if !registered.is_empty() {
        return Err(LoadErrors(registered).into());
    }
    let api_base = crate::server::routes::api_base(&public_base_url, &settings.org, &settings.name);
    // Shared with the reloader (new merchants, the families' services); stopped last.
    let official = if host.has_official_families() {
        Some(Arc::new(
            Official::prepare(&definitions, &pays, &public_base_url, &api_base).await?,
        ))
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
            stop_official(official).await;
            return Err(err);
        }
    };

    let (probes, gateway_description, mut info) = match &official {
        Some(official) => (
            official.health_probes(&pays.database_url),
            official.gateway_description(),
            official.info(),
        ),
        None => (
            Vec::new(),
            json!({"status": "ok", "detail": "no payment family in this host"}),
            Vec::new(),
        ),
    };
    let simulator_url = official
        .as_ref()
        .and_then(|official| official.simulator_url());
    let simulated = simulator_url.is_some();
    let instance_id = config.instance_id_for(local_addr.port());
    let webhooks: Vec<String> = pays
        .events
        .webhooks
        .iter()
        .map(WebhookEndpoint::shown_url)
        .collect();
    let started = match &official {
        Some(official) => {
            let outbox = pays.events.outbox_settings(instance_id.clone());
            official.start_background(&app, outbox).await
        }
        None => Ok(Vec::new()),
    };
    let background = match started {
        Ok(background) => background,
        Err(err) => {
            stop_official(official).await;
            return Err(err);
        }
    };
    if official.is_some() {
        info.push(("instance".to_owned(), instance_id.clone()));
        info.push((
            "webhooks".to_owned(),
            if webhooks.is_empty() {
                "none (add [[webhooks]] tables to app.toml)".to_owned()
            } else {
                webhooks.join(", ")
            },
        ));
    }
    // `jit sim pay` in the app folder finds the simulator through this file.
    let simulator_file = match &simulator_url {
        Some(url) => {
            let record = SimulatorFile {
                url: url.clone(),
                shop: format!("http://{local_addr}"),
                pid: std::process::id(),
            };
            match record.write(app_dir) {
                Ok(written) => Some(written),
                Err(err) => {
                    tracing::warn!(
                        file = %crate::simulator_file::path(app_dir).display(),
                        error = %err,
                        "cannot record the simulator's address; `jit sim pay` needs --sim {url}"
                    );
                    None
                }
            }
        }
        None => None,
    };

    // From here on the server holds the app across generations; `app` (the first
    // generation, pinned) is dropped below, so a reload can retire it.
    let live = app.live();
    let reloader = crate::reload::Reloader {
        host: host.clone(),
        app_dir: app_dir.to_path_buf(),
        live: live.clone(),
        official: official.clone(),
        // A request that started on a replaced generation ends within the request timeout.
        grace: config.request_timeout + std::time::Duration::from_secs(1),
        fixed_sections,
    };
    let (reload, reloader_task) = reloader.start(
        shutdown.clone(),
        mode.interactive && mode.watch,
        mode.interactive,
    );
    let serve_record = if interactive {
        let record = crate::reload::ServeRecord {
            pid: std::process::id(),
            url: format!("http://{local_addr}"),
        };
        match record.write(app_dir) {
            Ok(written) => Some(written),
            Err(err) => {
                tracing::warn!(
                    file = %app_dir.join(crate::reload::SERVE_FILE).display(),
                    error = %err,
                    "cannot record this server for `jit reload`; send it SIGHUP to reload"
                );
                None
            }
        }
    } else {
        None
    };
    if interactive && !mode.watch {
        tracing::info!(
            "not watching elements/ and app.toml (--no-watch); SIGHUP or `jit reload` reloads"
        );
    }
    let state = Arc::new(ServerState {
        org: settings.org.clone(),
        app_name: settings.name.clone(),
        app: live.clone(),
        config: config.clone(),
        gateway_description,
        simulated_payments: simulated,
        probes,
        internals: crate::server::state::Internals::new(app_dir, &pays, simulator_url.as_deref()),
    });
    let router = crate::server::router(state);

    if simulated {
        tracing::warn!("{SIMULATED_PAYMENTS}");
    }
    tracing::info!(
        listen = %local_addr,
        public_base_url = %public_base_url,
        database = %redact_url(&pays.database_url),
        tokens = config.tokens.len(),
        simulated_payments = simulated,
        instance = %instance_id,
        webhooks = %webhooks.join(", "),
        "jit serve: app {}/{} ready",
        settings.org,
        settings.name
    );
    if interactive {
        println!(
            "jit serve: app {}/{} listening on http://{local_addr}",
            settings.org, settings.name
        );
        if simulated {
            println!();
            println!("  *** {SIMULATED_PAYMENTS} ***");
            println!();
        }
        println!("  element functions: POST {api_base}/{{element path}}/{{function}}");
        println!(
            "  API docs: {}   (OpenAPI: {})",
            crate::server::routes::docs_url(&api_base),
            crate::server::routes::openapi_url(&api_base)
        );
        println!("  database: {}", redact_url(&pays.database_url));
        for (name, value) in info.iter().filter(|(name, _)| name != "simulator") {
            println!("  {name}: {value}");
        }
        match metrics_addr {
            Some(address) => println!(
                "  metrics: GET http://{local_addr}/metrics (bearer token), GET http://{address}/metrics"
            ),
            None => println!("  metrics: GET http://{local_addr}/metrics (bearer token)"),
        }
        println!("  health: GET http://{local_addr}/healthz   (Ctrl-C stops)");
    }
    info.push(("api".to_owned(), api_base));
    if let Some(address) = metrics_addr {
        info.push(("metrics".to_owned(), format!("http://{address}/metrics")));
    }

    let server_shutdown = shutdown.clone();
    let exiting = live.clone();
    drop(app);
    let limits = config.connections;
    // `[server] metrics_listen`: `/metrics` alone, no token, stopped with the server.
    let metrics_task = metrics_listener.map(|bound| {
        tokio::spawn(crate::server::metrics::serve_open(
            bound,
            live.clone(),
            limits,
            shutdown.clone(),
        ))
    });
    // User code that asked for the app (`Host::on_ready`), before the first request.
    let ready_tasks: Vec<tokio::task::JoinHandle<()>> = host
        .ready_hooks()
        .iter()
        .map(|hook| tokio::spawn(hook(live.clone())))
        .collect();
    let task = tokio::spawn(async move {
        let served =
            crate::server::listener::serve(listener, router, limits, server_shutdown).await;
        for ready in ready_tasks {
            ready.abort();
            let _ = ready.await;
        }
        if let Some(metrics_task) = metrics_task {
            let _ = metrics_task.await;
        }
        // No reload starts any more (the reloader ends on the same signal).
        let _ = reloader_task.await;
        if let Some(written) = serve_record {
            written.remove();
        }
        // Requests are done (or cut at the deadline): the elements' onAppExit hooks run
        // while what they may use (database, gateway) is still there, then the background
        // work stops.
        exiting.exit().await;
        for stop in background {
            stop.await;
        }
        if let Some(written) = simulator_file {
            written.remove();
        }
        stop_official(official).await;
        tracing::info!("jit serve: stopped");
        served
    });
    Ok(ServerHandle::new(
        local_addr, shutdown, task, info, live, reload,
    ))
}

/// Stops the official families' services (the simulator) once nothing else holds them.
async fn stop_official(official: Option<Arc<Official>>) {
    let Some(official) = official else { return };
    match Arc::try_unwrap(official) {
        Ok(official) => official.stop().await,
        // Only the reloader shares it, and it has ended: not reached, but never a panic.
        Err(_) => tracing::warn!("the official families are still in use; not stopped"),
    }
}
