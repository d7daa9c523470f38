//! What `jit serve` listens on, stores in and talks to: app.toml's `[server]`, `[database]`,
//! `[gateway]` and `[auth]` tables, overridden by the environment, overridden by the caller.
//!
//! Precedence, highest first: [`Overrides`] (flags, tests) → environment variables →
//! app.toml → defaults. The defaults make an app with little configuration a working shop
//! (SQLite beside app.toml, limits a public shop can use), with one exception: the payment
//! gateway has no default. app.toml says `[gateway] simulator = true` or
//! `[gateway] base_url = "…"`, so a shop can never take real orders on the simulator by
//! omission ([`crate::server::safety`] enforces the choice).
//!
//! A database URL is shown only through [`jit_pays::db::redact_url`], the one rule.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jit_pays::db::redact_url;

use super::auth::TokenSet;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cap on a JSON request body.
pub const DEFAULT_JSON_BODY_LIMIT: usize = 256 * 1024;
/// Default cap on an XML (WeChat notify) request body: a real notify is under 2 KiB.
pub const DEFAULT_XML_BODY_LIMIT: usize = 64 * 1024;
/// Default time a request may take before it is answered 504.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a connection has to deliver a complete request head, from its first byte
/// (or from its opening, for a new connection).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a kept-alive connection may wait, idle, for its next request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on connections open at once; further clients wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default time requests in flight get to finish after SIGTERM before their connections
/// are closed anyway.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The two ways to choose a gateway, as an error message says them.
pub const GATEWAY_CHOICES: &str = "set `[gateway] simulator = true` for the built-in simulator \
(simulated payments: no money moves), or `[gateway] base_url = \"https://api.mch.weixin.qq.com\"` \
(or the JIT_GATEWAY_BASE_URL variable) for real payments";

/// Where payment calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayTarget {
    /// `[gateway] simulator = true`: start the simulator in-process on a loopback port;
    /// merchants from the app's WechatPayType instances. Payments are simulated.
    Simulator,
    /// A real (or external) gateway at this base URL, e.g. `https://api.mch.weixin.qq.com`.
    Remote(String),
}

/// Values the caller sets explicitly; each wins over the environment and app.toml.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Listen address (`127.0.0.1:0` for a random port).
    pub listen: Option<SocketAddr>,
    /// Public base URL used in notify URLs.
    pub public_base_url: Option<String>,
    /// Database URL (`sqlite://…` or `postgres://…`).
    pub database_url: Option<String>,
    /// PostgreSQL schema to create (if missing) and use.
    pub database_schema: Option<String>,
    /// The gateway; `None` keeps the configured one.
    pub gateway: Option<GatewayTarget>,
    /// Bearer tokens, replacing the configured ones.
    pub tokens: Option<Vec<String>>,
    /// Request timeout.
    pub request_timeout: Option<Duration>,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Option<Duration>,
}

/// How `jit serve` bounds its connections in time and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head must be complete this long after its first byte arrived (for a new
    /// connection: after it opened). Slow-header clients are cut off.
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Connections open at once; the next client waits in the listen backlog.
    pub max_connections: usize,
    /// After SIGTERM, requests in flight get this long; then every connection is closed.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// The resolved configuration of one server.
#[derive(Clone)]
pub struct ServeConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Public base URL; `None` means `http://<bound address>`.
    pub public_base_url: Option<String>,
    /// Database URL. May hold a password: show it only through [`redact_url`].
    pub database_url: String,
    /// PostgreSQL only: the schema the tables live in (created if missing), so several
    /// apps can share one database. `None`: the server's default search path.
    pub database_schema: Option<String>,
    /// Size of the database connection pool; `None`: the pays store's default.
    pub database_max_connections: Option<u32>,
    /// The gateway app.toml (or the environment, or the caller) chose; `None` when none
    /// is chosen, which a host carrying the payment families refuses.
    pub gateway: Option<GatewayTarget>,
    /// `[gateway] simulator_public = true`: the operator means to expose a simulated shop
    /// beyond loopback (a shared demo).
    pub simulator_public: bool,
    /// Accepted bearer tokens.
    pub tokens: TokenSet,
    /// Cap on JSON request bodies, in bytes.
    pub json_body_limit: usize,
    /// Cap on XML request bodies, in bytes.
    pub xml_body_limit: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Connection timeouts, cap and shutdown deadline.
    pub connections: ConnectionLimits,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("public_base_url", &self.public_base_url)
            .field("database_url", &redact_url(&self.database_url))
            .field("database_schema", &self.database_schema)
            .field("database_max_connections", &self.database_max_connections)
            .field("gateway", &self.gateway)
            .field("simulator_public", &self.simulator_public)
            .field("tokens", &self.tokens)
            .field("json_body_limit", &self.json_body_limit)
            .field("xml_body_limit", &self.xml_body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("connections", &self.connections)
            .finish()
    }
}

/// A configuration value that is present but wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong TOML type or cannot be parsed.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The file or variable the value came from.
        file: String,
        /// The key (`server.listen`) or variable name.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The four raw tables of app.toml this module reads, placeholders already filled.
#[derive(Debug, Clone, Default)]
pub struct RawTables {
    /// `[server]`.
    pub server: toml::Table,
    /// `[database]`.
    pub database: toml::Table,
    /// `[gateway]`.
    pub gateway: toml::Table,
    /// `[auth]`.
    pub auth: toml::Table,
}

/// The keys each table may hold; anything else is a typo that would otherwise be ignored.
const KNOWN_KEYS: [(&str, &[&str]); 4] = [
    (
        "server",
        &[
            "listen",
            "public_base_url",
            "json_body_limit",
            "xml_body_limit",
            "request_timeout_secs",
            "header_read_timeout_secs",
            "idle_timeout_secs",
            "max_connections",
            "shutdown_timeout_secs",
        ],
    ),
    ("database", &["url", "schema", "max_connections"]),
    ("gateway", &["simulator", "base_url", "simulator_public"]),
    ("auth", &["tokens"]),
];

impl ServeConfig {
    /// Resolves the configuration of the app whose app.toml is `app_toml`.
    ///
    /// `env` looks up a process environment variable (a parameter so tests need not touch
    /// the real environment).
    pub fn resolve(
        app_toml: &Path,
        app_name: &str,
        tables: &RawTables,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let file = app_toml.display().to_string();
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.clone(),
            key: key.to_owned(),
            message,
        };
        let env_invalid = |key: &str, message: String| ConfigError::Invalid {
            file: "environment".to_owned(),
            key: key.to_owned(),
            message,
        };
        let string_at = |table: &toml::Table, section: &str, key: &str| match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(value)) => Ok(Some(value.clone())),
            Some(other) => Err(invalid(
                &format!("{section}.{key}"),
                format!("expected a string, found {}", other.type_str()),
            )),
        };
        let non_empty = |value: Option<String>| value.filter(|value| !value.trim().is_empty());

        for (section, known) in KNOWN_KEYS {
            let table = match section {
                "server" => &tables.server,
                "database" => &tables.database,
                "gateway" => &tables.gateway,
                _ => &tables.auth,
            };
            if let Some(unknown) = table.keys().find(|key| !known.contains(&key.as_str())) {
                return Err(invalid(
                    &format!("{section}.{unknown}"),
                    format!("unknown key; [{section}] takes {}", known.join(", ")),
                ));
            }
        }

        let listen = match overrides.listen {
            Some(listen) => listen,
            None => match non_empty(env("JIT_LISTEN")) {
                Some(value) => value
                    .parse()
                    .map_err(|err| env_invalid("JIT_LISTEN", format!("`{value}`: {err}")))?,
                None => {
                    let value = string_at(&tables.server, "server", "listen")?
                        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
                    value
                        .parse()
                        .map_err(|err| invalid("server.listen", format!("`{value}`: {err}")))?
                }
            },
        };

        let public_base_url = match &overrides.public_base_url {
            Some(url) => Some(url.clone()),
            None => match non_empty(env("JIT_PUBLIC_BASE_URL")) {
                Some(url) => Some(url),
                None => non_empty(string_at(&tables.server, "server", "public_base_url")?),
            },
        }
        .map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &public_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "server.public_base_url",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }

        let database_url = match &overrides.database_url {
            Some(url) => url.clone(),
            None => match non_empty(env("JIT_DATABASE_URL"))
                .or_else(|| non_empty(env("DATABASE_URL")))
            {
                Some(url) => url,
                None => match non_empty(string_at(&tables.database, "database", "url")?) {
                    Some(url) => url,
                    None => default_sqlite_url(app_toml, app_name),
                },
            },
        };

        let database_schema = match &overrides.database_schema {
            Some(schema) => Some(schema.clone()),
            None => match non_empty(env("JIT_DATABASE_SCHEMA")) {
                Some(schema) => Some(schema),
                None => non_empty(string_at(&tables.database, "database", "schema")?),
            },
        };
        if database_schema.is_some() && !database_url.starts_with("postgres") {
            return Err(invalid(
                "database.schema",
                "a schema applies to PostgreSQL only; the database URL is not postgres://"
                    .to_owned(),
            ));
        }

        let database_max_connections = match tables.database.get("max_connections") {
            None => None,
            Some(toml::Value::Integer(count)) if (1..=1000).contains(count) => Some(*count as u32),
            Some(other) => {
                return Err(invalid(
                    "database.max_connections",
                    format!("expected an integer from 1 to 1000, found {other}"),
                ));
            }
        };

        let (gateway, simulator_public) = resolve_gateway(&tables.gateway, env, overrides)
            .map_err(|(key, message)| match key {
                GatewayKey::File(key) => invalid(key, message),
                GatewayKey::Env(name) => env_invalid(name, message),
            })?;

        let tokens = match &overrides.tokens {
            Some(tokens) => TokenSet::new(tokens),
            None => match non_empty(env("JIT_API_TOKENS")) {
                Some(list) => TokenSet::new(list.split(',').map(str::trim)),
                None => match tables.auth.get("tokens") {
                    None => TokenSet::default(),
                    Some(toml::Value::Array(items)) => {
                        let mut tokens = Vec::with_capacity(items.len());
                        for (index, item) in items.iter().enumerate() {
                            match item {
                                toml::Value::String(token) => tokens.push(token.as_str()),
                                other => {
                                    return Err(invalid(
                                        &format!("auth.tokens[{index}]"),
                                        format!("expected a string, found {}", other.type_str()),
                                    ));
                                }
                            }
                        }
                        TokenSet::new(tokens)
                    }
                    Some(other) => {
                        return Err(invalid(
                            "auth.tokens",
                            format!("expected an array of strings, found {}", other.type_str()),
                        ));
                    }
                },
            },
        };

        let positive_at = |key: &str, unit: &str| -> Result<Option<u64>, ConfigError> {
            match tables.server.get(key) {
                None => Ok(None),
                Some(toml::Value::Integer(value)) if *value > 0 => Ok(Some(*value as u64)),
                Some(other) => Err(invalid(
                    &format!("server.{key}"),
                    format!("expected a positive integer ({unit}), found {other}"),
                )),
            }
        };
        let bytes_at = |key: &str, default: usize| -> Result<usize, ConfigError> {
            Ok(positive_at(key, "bytes")?.map_or(default, |bytes| bytes as usize))
        };
        let secs_at = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            Ok(positive_at(key, "seconds")?.map_or(default, Duration::from_secs))
        };
        let json_body_limit = bytes_at("json_body_limit", DEFAULT_JSON_BODY_LIMIT)?;
        let xml_body_limit = bytes_at("xml_body_limit", DEFAULT_XML_BODY_LIMIT)?;
        let request_timeout = match overrides.request_timeout {
            Some(timeout) => timeout,
            None => secs_at("request_timeout_secs", DEFAULT_REQUEST_TIMEOUT)?,
        };
        let connections = ConnectionLimits {
            header_read_timeout: secs_at("header_read_timeout_secs", DEFAULT_HEADER_READ_TIMEOUT)?,
            idle_timeout: secs_at("idle_timeout_secs", DEFAULT_IDLE_TIMEOUT)?,
            max_connections: match positive_at("max_connections", "connections")? {
                None => DEFAULT_MAX_CONNECTIONS,
                Some(count) if count <= 1_000_000 => count as usize,
                Some(count) => {
                    return Err(invalid(
                        "server.max_connections",
                        format!("{count} is more than a process can hold open; at most 1000000"),
                    ));
                }
            },
            shutdown_timeout: match overrides.shutdown_timeout {
                Some(timeout) => timeout,
                None => secs_at("shutdown_timeout_secs", DEFAULT_SHUTDOWN_TIMEOUT)?,
            },
        };

        Ok(Self {
            listen,
            public_base_url,
            database_url,
            database_schema,
            database_max_connections,
            gateway,
            simulator_public,
            tokens,
            json_body_limit,
            xml_body_limit,
            request_timeout,
            connections,
        })
    }
}

/// `sqlite://<dir of app.toml>/<app name>.db`.
pub fn default_sqlite_url(app_toml: &Path, app_name: &str) -> String {
    let dir = app_toml
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    format!("sqlite://{}", dir.join(format!("{app_name}.db")).display())
}

/// Where a gateway setting came from, for its error message.
#[derive(Debug, Clone, Copy)]
enum GatewayKey {
    /// A key of app.toml (`gateway.base_url`).
    File(&'static str),
    /// An environment variable.
    Env(&'static str),
}

impl std::fmt::Display for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(key) => write!(f, "app.toml's {key}"),
            Self::Env(name) => write!(f, "the {name} variable"),
        }
    }
}

/// app.toml's `[gateway]` choice, the `JIT_GATEWAY_BASE_URL` variable (which replaces
/// `base_url`) and the caller's override: the gateway (`None` when nothing chooses one)
/// and `simulator_public`. Both choices at once, or an empty one, is an error.
fn resolve_gateway(
    table: &toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &Overrides,
) -> Result<(Option<GatewayTarget>, bool), (GatewayKey, String)> {
    use GatewayKey::{Env, File};
    let bool_at = |key: &'static str| match table.get(key) {
        None => Ok(None),
        Some(toml::Value::Boolean(value)) => Ok(Some(*value)),
        Some(other) => Err((
            File(match key {
                "simulator" => "gateway.simulator",
                _ => "gateway.simulator_public",
            }),
            format!("expected true or false, found {other}"),
        )),
    };
    let simulator = bool_at("simulator")?;
    let simulator_public = bool_at("simulator_public")?.unwrap_or(false);
    // Set but empty is an odd setting, refused rather than read as "not set".
    let base_url = match env("JIT_GATEWAY_BASE_URL") {
        Some(value) if value.trim().is_empty() => {
            return Err((
                Env("JIT_GATEWAY_BASE_URL"),
                format!(
                    "is set but empty; unset it to use app.toml's [gateway], or {GATEWAY_CHOICES}"
                ),
            ));
        }
        Some(value) => Some((value.trim().to_owned(), Env("JIT_GATEWAY_BASE_URL"))),
        None => match table.get("base_url") {
            None => None,
            Some(toml::Value::String(value)) if value.trim().is_empty() => {
                return Err((
                    File("gateway.base_url"),
                    format!("is empty; {GATEWAY_CHOICES}"),
                ));
            }
            Some(toml::Value::String(value)) => {
                Some((value.trim().to_owned(), File("gateway.base_url")))
            }
            Some(other) => {
                return Err((
                    File("gateway.base_url"),
                    format!("expected a string, found {}", other.type_str()),
                ));
            }
        },
    };
    if let Some((url, key)) = &base_url {
        check_gateway_url(url).map_err(|message| (*key, message))?;
    }
    let gateway = match &overrides.gateway {
        Some(gateway) => Some(gateway.clone()),
        None => match (simulator, base_url) {
            (Some(true), Some((_, key))) => {
                return Err((
                    File("gateway"),
                    format!(
                        "both `simulator = true` and a base_url (from {key}) are set; choose one: {GATEWAY_CHOICES}"
                    ),
                ));
            }
            (Some(true), None) => Some(GatewayTarget::Simulator),
            (_, Some((url, _))) => {
                Some(GatewayTarget::Remote(url.trim_end_matches('/').to_owned()))
            }
            (_, None) => None,
        },
    };
    if simulator_public && gateway != Some(GatewayTarget::Simulator) {
        return Err((
            File("gateway.simulator_public"),
            "applies to the simulator only, and the simulator is not the gateway".to_owned(),
        ));
    }
    Ok((gateway, simulator_public))
}

/// A gateway base URL is an http(s) URL with a host and no credentials.
fn check_gateway_url(url: &str) -> Result<(), String> {
    if url.eq_ignore_ascii_case("simulator") {
        return Err(format!(
            "`simulator` is not a URL: the simulator is chosen with `[gateway] simulator = true`; {GATEWAY_CHOICES}"
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|err| format!("`{}` is not a URL: {err}", redact_url(url)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "`{}` is not an http:// or https:// URL with a host",
            redact_url(url)
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a gateway URL carries no credentials (WeChat Pay signs each request with the merchant key)".to_owned());
    }
    Ok(())
}

/// Whether `url` (a public base URL) names this machine: `localhost` or a loopback address.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let domain = host.trim_end_matches('.').to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(source: &str) -> RawTables {
        let mut table: toml::Table = source.parse().unwrap();
        let mut take = |name: &str| match table.remove(name) {
            Some(toml::Value::Table(table)) => table,
            _ => toml::Table::new(),
        };
        RawTables {
            server: take("server"),
            database: take("database"),
            gateway: take("gateway"),
            auth: take("auth"),
        }
    }

    /// `raw` resolved for app `shop` with no environment and no flags.
    fn resolve_alone(raw: &RawTables) -> Result<ServeConfig, ConfigError> {
        ServeConfig::resolve(
            Path::new("app.toml"),
            "shop",
            raw,
            &|_| None,
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_make_a_shop_with_no_gateway_chosen() {
        let config = ServeConfig::resolve(
            Path::new("/srv/shop/app.toml"),
            "shop",
            &RawTables::default(),
            &|_| None,
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.database_url, "sqlite:///srv/shop/shop.db");
        assert_eq!(
            config.gateway, None,
            "no gateway unless app.toml chooses one"
        );
        assert!(!config.simulator_public);
        assert!(config.tokens.is_empty());
        assert_eq!(config.public_base_url, None);
        assert_eq!(config.connections, ConnectionLimits::default());
    }

    #[test]
    fn environment_beats_file_and_overrides_beat_environment() {
        let raw = tables(
            r#"
            [server]
            listen = "0.0.0.0:9000"
            public_base_url = "https://file.example/"
            [database]
            url = "sqlite://file.db"
            [gateway]
            base_url = "https://api.mch.weixin.qq.com"
            [auth]
            tokens = ["from-file"]
            "#,
        );
        let env = |name: &str| match name {
            "JIT_LISTEN" => Some("127.0.0.1:7000".to_owned()),
            "DATABASE_URL" => Some("postgres://u:p@db/x".to_owned()),
            "JIT_API_TOKENS" => Some("a, b".to_owned()),
            _ => None,
        };
        let config = ServeConfig::resolve(
            Path::new("app.toml"),
            "shop",
            &raw,
            &env,
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(
            config.public_base_url.as_deref(),
            Some("https://file.example")
        );
        assert_eq!(config.database_url, "postgres://u:p@db/x");
        assert_eq!(
            config.gateway,
            Some(GatewayTarget::Remote(
                "https://api.mch.weixin.qq.com".to_owned()
            ))
        );
        assert!(config.tokens.accepts("a") && config.tokens.accepts("b"));
        assert!(!config.tokens.accepts("from-file"));

        let overrides = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            database_url: Some("sqlite::memory:".to_owned()),
            gateway: Some(GatewayTarget::Simulator),
            ..Overrides::default()
        };
        let config =
            ServeConfig::resolve(Path::new("app.toml"), "shop", &raw, &env, &overrides).unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.database_url, "sqlite::memory:");
        assert_eq!(config.gateway, Some(GatewayTarget::Simulator));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let raw = tables("[server]\nlisten = 8080\n");
        let err = resolve_alone(&raw).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app.toml: server.listen: expected a string, found integer"
        );
        let raw = tables("[auth]\ntokens = [\"a\", 3]\n");
        let err = resolve_alone(&raw).unwrap_err();
        assert!(err.to_string().contains("auth.tokens[1]"), "{err}");
    }

    #[test]
    fn a_schema_needs_postgres() {
        let raw = tables("[database]\nschema = \"shop\"\n");
        let err = resolve_alone(&raw).unwrap_err();
        assert!(err.to_string().contains("database.schema"), "{err}");
        let raw = tables("[database]\nurl = \"postgres://db/x\"\nschema = \"shop\"\n");
        let config = resolve_alone(&raw).unwrap();
        assert_eq!(config.database_schema.as_deref(), Some("shop"));
    }

    /// The gateway as `raw` and `env` choose it, or the error's text.
    fn gateway_of(raw: &str, env: &[(&str, &str)]) -> Result<Option<GatewayTarget>, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        ServeConfig::resolve(
            Path::new("app.toml"),
            "shop",
            &tables(raw),
            &|name| {
                env.iter()
                    .find(|(known, _)| known == name)
                    .map(|(_, value)| value.clone())
            },
            &Overrides::default(),
        )
        .map(|config| config.gateway)
        .map_err(|err| err.to_string())
    }

    #[test]
    fn the_gateway_is_chosen_explicitly() {
        assert_eq!(
            gateway_of("[gateway]\nsimulator = true\n", &[]),
            Ok(Some(GatewayTarget::Simulator))
        );
        assert_eq!(
            gateway_of(
                "[gateway]\nbase_url = \"https://api.mch.weixin.qq.com/\"\n",
                &[]
            ),
            Ok(Some(GatewayTarget::Remote(
                "https://api.mch.weixin.qq.com".to_owned()
            )))
        );
        // The variable replaces the file's base_url.
        assert_eq!(
            gateway_of(
                "[gateway]\nbase_url = \"https://a.example\"\n",
                &[("JIT_GATEWAY_BASE_URL", "https://b.example")]
            ),
            Ok(Some(GatewayTarget::Remote("https://b.example".to_owned())))
        );
        assert_eq!(
            gateway_of("", &[("JIT_GATEWAY_BASE_URL", "https://b.example")]),
            Ok(Some(GatewayTarget::Remote("https://b.example".to_owned())))
        );
        // Neither: no gateway (the start-up checks refuse it with the two choices).
        assert_eq!(gateway_of("", &[]), Ok(None));
        assert_eq!(gateway_of("[gateway]\nsimulator = false\n", &[]), Ok(None));
    }

    #[test]
    fn both_empty_or_odd_gateway_choices_are_refused() {
        // (app.toml, JIT_GATEWAY_BASE_URL, expected text, whether the two choices are named)
        let cases: [(&str, Option<&str>, &str, bool); 10] = [
            (
                "[gateway]\nsimulator = true\nbase_url = \"https://api.mch.weixin.qq.com\"\n",
                None,
                "app.toml: gateway: both `simulator = true` and a base_url (from app.toml's gateway.base_url)",
                true,
            ),
            (
                "[gateway]\nsimulator = true\n",
                Some("https://api.mch.weixin.qq.com"),
                "app.toml: gateway: both `simulator = true` and a base_url (from the JIT_GATEWAY_BASE_URL variable)",
                true,
            ),
            (
                "[gateway]\nsimulator = true\n",
                Some(""),
                "environment: JIT_GATEWAY_BASE_URL: is set but empty",
                true,
            ),
            (
                "",
                Some("  "),
                "environment: JIT_GATEWAY_BASE_URL: is set but empty",
                true,
            ),
            (
                "[gateway]\nbase_url = \"\"\n",
                None,
                "app.toml: gateway.base_url: is empty",
                true,
            ),
            (
                "[gateway]\nbase_url = \"simulator\"\n",
                None,
                "app.toml: gateway.base_url: `simulator` is not a URL",
                true,
            ),
            (
                "[gateway]\nbase_url = \"ftp://x.example\"\n",
                None,
                "app.toml: gateway.base_url: `ftp://x.example` is not an http:// or https:// URL",
                false,
            ),
            (
                "[gateway]\nsimulator = \"yes\"\n",
                None,
                "app.toml: gateway.simulator: expected true or false",
                false,
            ),
            (
                "[gateway]\nbase_url = \"https://a.example\"\nsimulator_public = true\n",
                None,
                "app.toml: gateway.simulator_public: applies to the simulator only",
                false,
            ),
            (
                "[gateway]\nsimulater = true\n",
                None,
                "app.toml: gateway.simulater: unknown key; [gateway] takes simulator, base_url, simulator_public",
                false,
            ),
        ];
        for (raw, variable, expected, names_the_choices) in cases {
            let env: Vec<(&str, &str)> = variable
                .map(|value| vec![("JIT_GATEWAY_BASE_URL", value)])
                .unwrap_or_default();
            let err = gateway_of(raw, &env).expect_err(raw);
            assert!(err.starts_with(expected), "{raw} {env:?}: {err}");
            if names_the_choices {
                assert!(err.contains(GATEWAY_CHOICES), "{err}");
            }
        }
    }

    #[test]
    fn connection_limits_come_from_the_server_table() {
        let raw = tables(
            "[server]\nheader_read_timeout_secs = 2\nidle_timeout_secs = 3\nmax_connections = 4\nshutdown_timeout_secs = 5\n",
        );
        let config = resolve_alone(&raw).unwrap();
        assert_eq!(
            config.connections,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(3),
                max_connections: 4,
                shutdown_timeout: Duration::from_secs(5),
            }
        );
        for bad in [
            "header_read_timeout_secs = 0",
            "idle_timeout_secs = -1",
            "max_connections = \"many\"",
            "shutdown_timeout_secs = 1.5",
        ] {
            let key = bad.split(' ').next().unwrap();
            let err = resolve_alone(&tables(&format!("[server]\n{bad}\n"))).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!(
                    "app.toml: server.{key}: expected a positive integer"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn loopback_urls() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "https://LOCALHOST",
            "http://[::1]:8080",
            "http://127.1.2.3",
            "http://shop.localhost",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://shop.example.com",
            "http://0.0.0.0:8080",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::]:8080",
            "not a url",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn debug_hides_the_database_password() {
        let raw = tables("[database]\nurl = \"postgres://jit:hunter22@db/shop\"\n");
        let printed = format!("{:?}", resolve_alone(&raw).unwrap());
        assert!(!printed.contains("hunter22"), "{printed}");
        assert!(printed.contains("postgres://jit:***@db/shop"), "{printed}");
    }
}
