//! [`Host`]: which element families and loaders a host binary carries, and how it starts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use jit_runtime::include_dir::Dir;
use jit_runtime::{
    AppBuilder, AppSettings, BackendLoadTime, Definitions, EnvSource, LoadError, LoadErrorKind,
    LoadErrors, Loader,
};

use crate::cli::{Cli, Command};
use crate::error::HostError;
use crate::official::config::PaysConfig;
use crate::server::ServerHandle;
use crate::server::config::{ConfigError, Overrides, RawTables, ServeConfig};
use crate::server::shutdown::ShutdownSignal;

type Customizer = Arc<dyn Fn(AppBuilder) -> AppBuilder + Send + Sync>;

/// User code `jit serve` hands the built app to ([`Host::on_ready`]).
pub(crate) type ReadyHook =
    Arc<dyn Fn(jit_runtime::LiveApp) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A Rust service registered with [`Host::service`]: its element and the functions its
/// code implements, when it lists them.
#[derive(Clone)]
struct RegisteredService {
    full_name: String,
    functions: Option<Vec<String>>,
}

/// The set of element families and loaders a host binary carries.
///
/// `Host::new()` is the stock `jit`: every official family (pays) and native plugins.
/// Add your own Types with [`Host::loader`], your own embedded elements with
/// [`Host::framework_layer`], then [`Host::run_cli`].
#[derive(Clone)]
pub struct Host {
    official_families: bool,
    framework: Vec<&'static Dir<'static>>,
    loaders: Vec<(String, Arc<dyn Loader>)>,
    customizers: Vec<Customizer>,
    services: Vec<RegisteredService>,
    ready_hooks: Vec<ReadyHook>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("official_families", &self.official_families)
            .field("framework_layers", &self.framework.len())
            .field(
                "loaders",
                &self
                    .loaders
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|service| &service.full_name)
                    .collect::<Vec<_>>(),
            )
            .field("ready_hooks", &self.ready_hooks.len())
            .finish()
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    /// The stock host: the official element families and native plugin loading.
    pub fn new() -> Self {
        Self {
            official_families: true,
            framework: Vec::new(),
            loaders: Vec::new(),
            customizers: Vec::new(),
            services: Vec::new(),
            ready_hooks: Vec::new(),
        }
    }

    /// A host with no official family: only what is added to it (fixture families in
    /// tests, or an app that wants none of the official elements).
    pub fn bare() -> Self {
        Self {
            official_families: false,
            ..Self::new()
        }
    }

    /// Adds an embedded element tree (rooted like `elements/`) to the framework layer.
    pub fn framework_layer(mut self, dir: &'static Dir<'static>) -> Self {
        self.framework.push(dir);
        self
    }

    /// Registers the loader of a Meta or Type. Registered after the official families, so
    /// a loader for an official Type's fullName overrides it and reaches the official one
    /// through `LoadContext::load_with_parent`.
    pub fn loader(mut self, type_full_name: &str, loader: impl Loader) -> Self {
        self.loaders
            .push((type_full_name.to_owned(), Arc::new(loader)));
        self
    }

    /// Gives the service element `full_name` (an element of the app, typically
    /// `"type": "services.NormalType"` with a `functionList`) its code in Rust: a
    /// [`jit_services::ServiceFunctions`] (one async closure per function) or any
    /// [`jit_services::Service`]. Each function gets the running app (to `get_element` and
    /// `call` other elements) and the caller's context.
    ///
    /// `jit check` and `jit serve` refuse an app without an element `full_name`, and, when
    /// the code lists its functions, any function declared and not implemented or
    /// implemented and not declared.
    pub fn service(mut self, full_name: &str, service: impl jit_services::Service) -> Self {
        let loader = jit_services::ServiceLoader::new(service);
        self.services.push(RegisteredService {
            full_name: full_name.to_owned(),
            functions: loader.service().functions(),
        });
        self.loader(full_name, loader)
    }

    /// Runs `hook` with the app once `jit serve` (or [`Host::serve_in_process`]) has built
    /// it and its background work started: the place for user code that needs the app
    /// (subscribing to events, a job of its own that calls elements). It gets the app
    /// across reloads ([`jit_runtime::LiveApp`]): take [`jit_runtime::LiveApp::current`]
    /// for each piece of work, so the work sees the generation being served then and does
    /// not hold an old one alive. The future runs as its own task until it ends or the
    /// server stops; it is cancelled after the last request and before the elements'
    /// `onAppExit`.
    pub fn on_ready<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(jit_runtime::LiveApp) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.ready_hooks
            .push(Arc::new(move |app| Box::pin(hook(app))));
        self
    }

    /// The hooks given to [`Host::on_ready`].
    pub(crate) fn ready_hooks(&self) -> &[ReadyHook] {
        &self.ready_hooks
    }

    /// What this host's own registrations say is wrong with an app: a Rust service
    /// ([`Host::service`]) for an element the app does not have, or whose functions and the
    /// element's `functionList` disagree. `jit check` prints these; `jit serve` refuses to
    /// start on them.
    pub(crate) fn registration_problems(&self, definitions: &Definitions) -> Vec<LoadError> {
        let mut problems = Vec::new();
        for service in &self.services {
            let Some(chain) = definitions.chain(&service.full_name) else {
                let hint = definitions
                    .suggest(&service.full_name)
                    .map(|name| format!(" (did you mean `{name}`?)"))
                    .unwrap_or_default();
                problems.push(LoadError::new(
                    LoadErrorKind::CodeMismatch,
                    definitions.settings().dir.join("app.toml"),
                    format!(
                        "this host registers a Rust service for `{}`, but the app has no such \
                                 element{hint}: add its folder with an e.json (`\"type\": \"{}\"` and a \
                                 functionList)",
                        service.full_name,
                        jit_services::NORMAL_TYPE
                    ),
                ));
                continue;
            };
            let Some(implemented) = &service.functions else {
                continue;
            };
            let source = &chain.element().source;
            for declared in chain.functions() {
                if !implemented.contains(&declared.name) {
                    problems.push(
                        LoadError::new(
                            LoadErrorKind::CodeMismatch,
                            source,
                            format!(
                                "`{}` declares function `{}`, which its Rust service does not \
                                 implement (it implements: {}); every call would fail",
                                service.full_name,
                                declared.name,
                                implemented.join(", ")
                            ),
                        )
                        .at("functionList"),
                    );
                }
            }
            for function in implemented {
                if chain.function(function).is_none() {
                    problems.push(
                        LoadError::new(
                            LoadErrorKind::CodeMismatch,
                            source,
                            format!(
                                "the Rust service of `{}` implements `{function}`, which its \
                                 functionList does not declare, so nothing can call it: declare \
                                 it (with its args) or remove it from the code",
                                service.full_name
                            ),
                        )
                        .at("functionList"),
                    );
                }
            }
        }
        problems
    }

    /// Adjusts every app builder this host makes (e.g. to `provide` a service your
    /// loaders need), after the official families and loaders are registered.
    pub fn configure(
        mut self,
        customize: impl Fn(AppBuilder) -> AppBuilder + Send + Sync + 'static,
    ) -> Self {
        self.customizers.push(Arc::new(customize));
        self
    }

    /// Parses the process's arguments, runs the subcommand, and returns its exit code.
    pub fn run_cli(self) -> ExitCode {
        self.run_cli_from(std::env::args_os())
    }

    /// Like [`Host::run_cli`] with explicit arguments (the first is the program name).
    pub fn run_cli_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(err) => {
                let _ = err.print();
                return if err.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
        };
        crate::logging::init(crate::logging::LogFormat::from_flag_and_env(cli.log_json));
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                eprintln!("error: cannot start the async runtime: {err}");
                return ExitCode::FAILURE;
            }
        };
        let outcome = runtime.block_on(self.run_command(cli.command));
        match outcome {
            Ok(code) => code,
            Err(err) => {
                eprintln!("error: {err}");
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
                ExitCode::FAILURE
            }
        }
    }

    async fn run_command(&self, command: Command) -> Result<ExitCode, HostError> {
        match command {
            Command::Check(args) => crate::commands::check(self, &args.app),
            Command::Ls(args) => crate::commands::ls(self, &args),
            Command::Show { full_name, app } => crate::commands::show(self, &app.app, &full_name),
            Command::Sim(args) => crate::commands::sim(args).await,
            Command::Events(args) => crate::commands::events(self, args).await,
            Command::Bills(args) => crate::commands::bills(self, args).await,
            Command::Reconcile(args) => crate::commands::reconcile(self, args).await,
            Command::Openapi(args) => crate::commands::openapi(self, &args.app),
            Command::New(args) => crate::commands::new(self, args),
            Command::Reload(args) => {
                println!("{}", crate::reload::signal_server(&args.app)?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Serve(args) => {
                let overrides = Overrides {
                    listen: args.listen,
                    ..Overrides::default()
                };
                let handle = self
                    .start(&args.app.app, overrides, true, !args.no_watch)
                    .await?;
                handle.wait().await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }

    /// An app builder with every layer and loader this host carries (official families,
    /// framework layers, [`Host::loader`], customizers) but no service: enough for
    /// definitions (`check`, `ls`, `show`), and the same definitions `serve` then builds
    /// (a customizer's `env` included).
    pub fn definitions_builder(&self, app_dir: &Path) -> AppBuilder {
        self.app_builder(app_dir, crate::official::loaders)
    }

    /// Loads and resolves the app's definitions, reporting every problem.
    pub fn load_definitions(&self, app_dir: &Path) -> Result<Definitions, LoadErrors> {
        self.definitions_builder(app_dir).load_definitions()
    }

    /// Starts the HTTP server for the app in `app_dir` on this process's async runtime,
    /// without OS signal handling: stop it with [`ServerHandle::shutdown`]. `overrides`
    /// win over the environment and app.toml (tests set `listen` to `127.0.0.1:0`).
    pub async fn serve_in_process(
        &self,
        app_dir: impl AsRef<Path>,
        overrides: Overrides,
    ) -> Result<ServerHandle, HostError> {
        self.start(app_dir.as_ref(), overrides, false, false).await
    }

    /// app.toml's settings, the server configuration `jit serve` would use and the
    /// official families' settings: the environment and `overrides` applied, placeholders
    /// filled.
    pub fn resolve_serve_config(
        &self,
        app_dir: &Path,
        overrides: &Overrides,
    ) -> Result<(AppSettings, ServeConfig, PaysConfig), HostError> {
        let settings = AppSettings::load(app_dir, true).map_err(LoadErrors)?;
        let app_toml = app_dir.join("app.toml");
        let tables = raw_tables(&settings, &app_toml)?;
        let env = |name: &str| std::env::var(name).ok();
        let config = ServeConfig::resolve(&app_toml, &tables, &env, overrides)?;
        let pays = PaysConfig::resolve(&app_toml, &settings.name, &tables, &env, overrides)?;
        Ok((settings, config, pays))
    }

    /// `interactive`: the `jit serve` command (OS signals, SIGHUP reloads, the banner,
    /// `.jit/serve.json`); `watch`: reload on changes in `elements/` and app.toml.
    async fn start(
        &self,
        app_dir: &Path,
        overrides: Overrides,
        interactive: bool,
        watch: bool,
    ) -> Result<ServerHandle, HostError> {
        let (settings, config, pays) = self.resolve_serve_config(app_dir, &overrides)?;
        let shutdown = ShutdownSignal::new();
        if interactive {
            shutdown.trigger_on_os_signals();
        }
        let mode = crate::serve::Mode { interactive, watch };
        crate::serve::start(self, app_dir, settings, config, pays, shutdown, mode).await
    }

    /// The one place a host's builder is layered: the official families (through
    /// `official`: their loaders alone, or with the services they serve with), the
    /// framework layers, the registered loaders, then the customizers.
    pub(crate) fn app_builder(
        &self,
        app_dir: &Path,
        official: impl FnOnce(AppBuilder) -> AppBuilder,
    ) -> AppBuilder {
        let mut builder = AppBuilder::new(app_dir);
        if self.official_families {
            builder = official(builder);
        }
        for dir in &self.framework {
            builder = builder.framework_layer(dir);
        }
        // The same loader values for every builder (every `serve_in_process` call and
        // every reload builds one): a reload keeps the elements they built.
        for (name, loader) in &self.loaders {
            builder = builder.shared_loader(name, loader.clone());
        }
        for customize in &self.customizers {
            builder = customize(builder);
        }
        builder
    }

    /// Whether the official families are included.
    pub(crate) fn has_official_families(&self) -> bool {
        self.official_families
    }

    /// Builds the app and its `beforeHandleRequest` elements.
    pub(crate) async fn build_app(builder: AppBuilder) -> Result<jit_runtime::App, HostError> {
        let app = builder.build().await?;
        app.build_elements(BackendLoadTime::BeforeHandleRequest)
            .await?;
        Ok(app)
    }
}

/// app.toml's `[server]`, `[database]`, `[gateway]`, `[auth]`, `[reconciler]`, `[events]`, `[bills]`
/// and `[[webhooks]]`, with `{{VAR}}` placeholders in their strings filled.
fn raw_tables(settings: &AppSettings, app_toml: &Path) -> Result<RawTables, HostError> {
    let env = EnvSource::new(Default::default(), settings.env.clone());
    let take = |name: &str| -> Result<toml::Table, HostError> {
        match settings.raw.get(name) {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(table)) => {
                let mut table = table.clone();
                fill_table(&mut table, &env, app_toml)?;
                Ok(table)
            }
            Some(other) => Err(HostError::Config(ConfigError::Invalid {
                file: app_toml.display().to_string(),
                key: name.to_owned(),
                message: format!("expected a table, found {}", other.type_str()),
            })),
        }
    };
    let webhooks = match settings.raw.get("webhooks") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => {
            let mut tables = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let toml::Value::Table(table) = item else {
                    return Err(HostError::Config(ConfigError::Invalid {
                        file: app_toml.display().to_string(),
                        key: format!("webhooks[{index}]"),
                        message: format!(
                            "expected a table (write each endpoint as a [[webhooks]] table), found {}",
                            item.type_str()
                        ),
                    }));
                };
                let mut table = table.clone();
                fill_table(&mut table, &env, app_toml)?;
                tables.push(table);
            }
            tables
        }
        Some(other) => {
            return Err(HostError::Config(ConfigError::Invalid {
                file: app_toml.display().to_string(),
                key: "webhooks".to_owned(),
                message: format!(
                    "expected an array of tables (write each endpoint as a [[webhooks]] table), found {}",
                    other.type_str()
                ),
            }));
        }
    };
    Ok(RawTables {
        server: take("server")?,
        database: take("database")?,
        gateway: take("gateway")?,
        auth: take("auth")?,
        reconciler: take("reconciler")?,
        events: take("events")?,
        bills: take("bills")?,
        webhooks,
    })
}

fn fill_table(table: &mut toml::Table, env: &EnvSource, file: &Path) -> Result<(), HostError> {
    for (_, value) in table.iter_mut() {
        fill_value(value, env, file)?;
    }
    Ok(())
}

/// Fills the `{{VAR}}` placeholders in every string of `value` (app.toml's tables).
pub(crate) fn fill_value(
    value: &mut toml::Value,
    env: &EnvSource,
    file: &Path,
) -> Result<(), HostError> {
    match value {
        toml::Value::String(text) => *text = env.fill(text, file)?,
        toml::Value::Array(items) => {
            for item in items {
                fill_value(item, env, file)?;
            }
        }
        toml::Value::Table(table) => fill_table(table, env, file)?,
        _ => {}
    }
    Ok(())
}

/// The directory an app path names (for messages).
pub(crate) fn display_dir(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
