//! What `jit serve` listens on, whom it lets in and what it is called: app.toml's
//! `[server]` and `[auth]` tables, overridden by the environment, overridden by the
//! caller; and [`RawTables`], app.toml's tables as read, with the [`TableReader`] every
//! resolver reads them through. The official families resolve their `[database]`,
//! `[gateway]`, `[reconciler]`, `[events]` and `[[webhooks]]` from the same tables
//! (`crate::official::config`, `crate::official::events`).
//!
//! Precedence, highest first: [`Overrides`] (flags, tests) → environment variables →
//! app.toml → defaults. The defaults make an app with little configuration a working shop
//! (limits a public shop can use).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use super::auth::TokenSet;
use crate::official::config::GatewayTarget;

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
/// The longest instance id: it is written into every claim (`lease_owner`) and attempt.
pub const MAX_INSTANCE_ID_CHARS: usize = 128;

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
    /// This instance's name among the instances sharing a database.
    pub instance_id: Option<String>,
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
    /// This instance's name among the instances sharing a database (its claims on
    /// event deliveries carry it); `None`: `<hostname>:<port>`, made by
    /// [`ServeConfig::instance_id_for`] once the port is bound.
    pub instance_id: Option<String>,
    /// `GET /metrics` on the main listener: who may scrape it.
    pub metrics: MetricsAccess,
}

/// Who may read `GET /metrics`, and where: `[server] metrics_token`, `metrics_listen`
/// and `metrics_listen_public`.
#[derive(Clone, Debug, Default)]
pub struct MetricsAccess {
    /// The dedicated scrape token (`[server] metrics_token`); any API token
    /// ([`ServeConfig::tokens`]) is accepted too. With neither, `/metrics` on the main
    /// listener answers 401.
    pub token: TokenSet,
    /// A second listener serving `/metrics` alone, without a token.
    pub listen: Option<SocketAddr>,
    /// `metrics_listen` may be an address that is not loopback (the operator says the
    /// network in front of it is private).
    pub listen_public: bool,
}

/// The shortest `[server] metrics_token`: a scrape token is a secret like any other.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("public_base_url", &self.public_base_url)
            .field("tokens", &self.tokens)
            .field("json_body_limit", &self.json_body_limit)
            .field("xml_body_limit", &self.xml_body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("connections", &self.connections)
            .field("instance_id", &self.instance_id)
            .field("metrics", &self.metrics)
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

/// The raw tables of app.toml the host reads, placeholders already filled.
#[derive(Clone, Default)]
pub struct RawTables {
    /// `[server]`.
    pub server: toml::Table,
    /// `[database]`.
    pub database: toml::Table,
    /// `[gateway]`.
    pub gateway: toml::Table,
    /// `[auth]`.
    pub auth: toml::Table,
    /// `[reconciler]`.
    pub reconciler: toml::Table,
    /// `[events]`.
    pub events: toml::Table,
    /// `[bills]`.
    pub bills: toml::Table,
    /// Each `[[webhooks]]` table, in file order (they hold secrets).
    pub webhooks: Vec<toml::Table>,
}

/// Nothing of the tables' contents: they hold secrets (webhook secrets, database passwords).
impl std::fmt::Debug for RawTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTables")
            .field("webhooks", &self.webhooks.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl RawTables {
    /// The tables of app.toml text (tests; placeholders are not filled).
    pub(crate) fn parse(source: &str) -> Self {
        let mut table: toml::Table = source.parse().expect("TOML");
        let webhooks = match table.remove("webhooks") {
            Some(toml::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::Table(table) => table,
                    other => panic!("[[webhooks]] holds {other}"),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut take = |name: &str| match table.remove(name) {
            Some(toml::Value::Table(table)) => table,
            _ => toml::Table::new(),
        };
        Self {
            server: take("server"),
            database: take("database"),
            gateway: take("gateway"),
            auth: take("auth"),
            reconciler: take("reconciler"),
            events: take("events"),
            bills: take("bills"),
            webhooks,
        }
    }
}

/// The keys each table may hold; anything else is a typo that would otherwise be ignored.
const KNOWN_KEYS: [(&str, &[&str]); 2] = [
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
            "instance_id",
            "metrics_token",
            "metrics_listen",
            "metrics_listen_public",
        ],
    ),
    ("auth", &["tokens"]),
];

impl ServeConfig {
    /// Resolves the configuration of the app whose app.toml is `app_toml`.
    ///
    /// `env` looks up a process environment variable (a parameter so tests need not touch
    /// the real environment).
    pub fn resolve(
        app_toml: &Path,
        tables: &RawTables,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let reader = TableReader::new(app_toml);
        let invalid = |key: &str, message: String| reader.invalid(key, message);
        let env_invalid = TableReader::env_invalid;
        let string_at =
            |table: &toml::Table, section: &str, key: &str| reader.string_at(table, section, key);
        for (section, known) in KNOWN_KEYS {
            let table = match section {
                "server" => &tables.server,
                _ => &tables.auth,
            };
            reader.check_keys(table, section, known)?;
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

        let instance_id = match &overrides.instance_id {
            Some(id) => Some(id.clone()),
            None => match non_empty(env("JIT_INSTANCE_ID")) {
                Some(id) => Some(
                    check_instance_id(&id)
                        .map_err(|message| env_invalid("JIT_INSTANCE_ID", message))?,
                ),
                None => match string_at(&tables.server, "server", "instance_id")? {
                    Some(id) => Some(
                        check_instance_id(&id)
                            .map_err(|message| invalid("server.instance_id", message))?,
                    ),
                    None => None,
                },
            },
        };

        let metrics = resolve_metrics(&reader, &tables.server, listen)?;

        Ok(Self {
            listen,
            public_base_url,
            tokens,
            json_body_limit,
            xml_body_limit,
            request_timeout,
            connections,
            instance_id,
            metrics,
        })
    }

    /// This instance's id: the configured one, or `<hostname>:<port>` with the port the
    /// server is bound to, which is the same across restarts of one deployment (a
    /// restarted instance then takes back its own claims at once) and differs between
    /// instances on one machine.
    pub fn instance_id_for(&self, bound_port: u16) -> String {
        match &self.instance_id {
            Some(id) => id.clone(),
            None => default_instance_id(&gethostname::gethostname().to_string_lossy(), bound_port),
        }
    }
}

/// `[server] metrics_token`, `metrics_listen` and `metrics_listen_public`, checked: a token
/// that is empty, padded or short, a `metrics_listen` that is not an address, is the main
/// listener's, or is not loopback without `metrics_listen_public = true`, is an error.
fn resolve_metrics(
    reader: &TableReader,
    server: &toml::Table,
    listen: SocketAddr,
) -> Result<MetricsAccess, ConfigError> {
    let token = match reader.string_at(server, "server", "metrics_token")? {
        None => TokenSet::default(),
        Some(token) => {
            let problem = if token.trim().is_empty() {
                Some("is empty; leave it out to scrape /metrics with an [auth] token".to_owned())
            } else if token.trim() != token {
                Some("has spaces at an end".to_owned())
            } else if token.chars().count() < MIN_METRICS_TOKEN_CHARS {
                Some(format!(
                    "is shorter than {MIN_METRICS_TOKEN_CHARS} characters; generate one \
                     (e.g. `openssl rand -hex 32`) and pass it as {{{{JIT_METRICS_TOKEN}}}}"
                ))
            } else {
                None
            };
            // The value is a secret: the message never quotes it.
            if let Some(problem) = problem {
                return Err(reader.invalid("server.metrics_token", problem));
            }
            TokenSet::new([token])
        }
    };
    let listen_public = match server.get("metrics_listen_public") {
        None => false,
        Some(toml::Value::Boolean(public)) => *public,
        Some(other) => {
            return Err(reader.invalid(
                "server.metrics_listen_public",
                format!("expected true or false, found {}", other.type_str()),
            ));
        }
    };
    let metrics_listen = match reader.string_at(server, "server", "metrics_listen")? {
        None => None,
        Some(text) => {
            let address: SocketAddr = text.parse().map_err(|err| {
                reader.invalid("server.metrics_listen", format!("`{text}`: {err}"))
            })?;
            if address.port() != 0 && address.port() == listen.port() && address.ip() == listen.ip()
            {
                return Err(reader.invalid(
                    "server.metrics_listen",
                    format!("`{address}` is the main listener's address; choose another port"),
                ));
            }
            if !address.ip().is_loopback() && !listen_public {
                return Err(reader.invalid(
                    "server.metrics_listen",
                    format!(
                        "`{address}` is not a loopback address, and /metrics there needs no \
                         token; listen on 127.0.0.1, or set `metrics_listen_public = true` \
                         when only your monitoring network reaches it"
                    ),
                ));
            }
            Some(address)
        }
    };
    Ok(MetricsAccess {
        token,
        listen: metrics_listen,
        listen_public,
    })
}

/// `<hostname>:<port>`, or `localhost:<port>` when the machine has no usable name.
fn default_instance_id(hostname: &str, port: u16) -> String {
    let hostname: String = hostname.chars().filter(|c| !c.is_control()).collect();
    let hostname = hostname.trim();
    let hostname = if hostname.is_empty() {
        "localhost"
    } else {
        hostname
    };
    let id = format!("{hostname}:{port}");
    if id.chars().count() > MAX_INSTANCE_ID_CHARS {
        let keep = MAX_INSTANCE_ID_CHARS - format!(":{port}").len();
        format!("{}:{port}", hostname.chars().take(keep).collect::<String>())
    } else {
        id
    }
}

/// An instance id is printable text of 1 to [`MAX_INSTANCE_ID_CHARS`] characters, without
/// spaces at either end (it is matched exactly across restarts).
fn check_instance_id(id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("is empty; leave it out for the default `<hostname>:<port>`".to_owned());
    }
    if id.trim() != id {
        return Err("has spaces at an end; an instance id is matched exactly".to_owned());
    }
    if id.chars().any(char::is_control) {
        return Err("holds a control character".to_owned());
    }
    if id.chars().count() > MAX_INSTANCE_ID_CHARS {
        return Err(format!("is longer than {MAX_INSTANCE_ID_CHARS} characters"));
    }
    Ok(id.to_owned())
}

/// Reads typed values out of app.toml's tables; every error names the file and the key.
pub(crate) struct TableReader {
    file: String,
}

impl TableReader {
    pub(crate) fn new(app_toml: &Path) -> Self {
        Self {
            file: app_toml.display().to_string(),
        }
    }

    /// `key` (`server.listen`) of app.toml is wrong.
    pub(crate) fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            key: key.to_owned(),
            message,
        }
    }

    /// The environment variable `name` is wrong.
    pub(crate) fn env_invalid(name: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: "environment".to_owned(),
            key: name.to_owned(),
            message,
        }
    }

    /// `[section] key` as a string, if present.
    pub(crate) fn string_at(
        &self,
        table: &toml::Table,
        section: &str,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(value)) => Ok(Some(value.clone())),
            Some(other) => Err(self.invalid(
                &format!("{section}.{key}"),
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    /// `key` (a full path, `events.poll_interval_ms`) of `table` as an integer within
    /// `range`, if present; `unit` says what it counts in the error.
    pub(crate) fn integer_in(
        &self,
        table: &toml::Table,
        key: &str,
        range: RangeInclusive<i64>,
        unit: &str,
    ) -> Result<Option<i64>, ConfigError> {
        let name = key.rsplit('.').next().unwrap_or(key);
        match table.get(name) {
            None => Ok(None),
            Some(toml::Value::Integer(value)) if range.contains(value) => Ok(Some(*value)),
            Some(other) => Err(self.invalid(
                key,
                format!(
                    "expected an integer from {} to {} ({unit}), found {other}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// Refuses a key `[section]` does not take: a typo would otherwise be ignored.
    pub(crate) fn check_keys(
        &self,
        table: &toml::Table,
        section: &str,
        known: &[&str],
    ) -> Result<(), ConfigError> {
        match table.keys().find(|key| !known.contains(&key.as_str())) {
            Some(unknown) => Err(self.invalid(
                &format!("{section}.{unknown}"),
                format!("unknown key; [{section}] takes {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }
}

/// A value set to blanks counts as not set.
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
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
        RawTables::parse(source)
    }

    /// `raw` resolved for app `shop` with no environment and no flags.
    fn resolve_alone(raw: &RawTables) -> Result<ServeConfig, ConfigError> {
        ServeConfig::resolve(Path::new("app.toml"), raw, &|_| None, &Overrides::default())
    }

    #[test]
    fn defaults_make_a_working_shop() {
        let config = ServeConfig::resolve(
            Path::new("/srv/shop/app.toml"),
            &RawTables::default(),
            &|_| None,
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
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
            "JIT_API_TOKENS" => Some("a, b".to_owned()),
            _ => None,
        };
        let config =
            ServeConfig::resolve(Path::new("app.toml"), &raw, &env, &Overrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(
            config.public_base_url.as_deref(),
            Some("https://file.example")
        );
        assert!(config.tokens.accepts("a") && config.tokens.accepts("b"));
        assert!(!config.tokens.accepts("from-file"));

        let overrides = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Overrides::default()
        };
        let config = ServeConfig::resolve(Path::new("app.toml"), &raw, &env, &overrides).unwrap();
        assert_eq!(config.listen.port(), 0);
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
    fn the_instance_id_comes_from_the_caller_the_environment_or_the_file() {
        let raw = tables("[server]\ninstance_id = \"shop-1\"\n");
        assert_eq!(
            resolve_alone(&raw).unwrap().instance_id.as_deref(),
            Some("shop-1")
        );
        let env = |name: &str| (name == "JIT_INSTANCE_ID").then(|| "shop-2".to_owned());
        let config =
            ServeConfig::resolve(Path::new("app.toml"), &raw, &env, &Overrides::default()).unwrap();
        assert_eq!(config.instance_id.as_deref(), Some("shop-2"));
        assert_eq!(config.instance_id_for(8080), "shop-2");
        let overrides = Overrides {
            instance_id: Some("shop-3".to_owned()),
            ..Overrides::default()
        };
        let config = ServeConfig::resolve(Path::new("app.toml"), &raw, &env, &overrides).unwrap();
        assert_eq!(config.instance_id.as_deref(), Some("shop-3"));

        // None: the host's name and the bound port.
        let config = resolve_alone(&RawTables::default()).unwrap();
        assert_eq!(config.instance_id, None);
        let id = config.instance_id_for(8123);
        assert!(id.ends_with(":8123") && id.len() > ":8123".len(), "{id}");
        assert_eq!(default_instance_id("web-7", 80), "web-7:80");
        assert_eq!(default_instance_id(" \n", 80), "localhost:80");
        let long = default_instance_id(&"h".repeat(300), 65535);
        assert_eq!(long.chars().count(), MAX_INSTANCE_ID_CHARS);
        assert!(long.ends_with(":65535"), "{long}");
    }

    #[test]
    fn odd_instance_ids_are_refused() {
        for (raw, expected) in [
            (
                "[server]\ninstance_id = \"\"\n",
                "app.toml: server.instance_id: is empty",
            ),
            (
                "[server]\ninstance_id = \" shop-1\"\n",
                "app.toml: server.instance_id: has spaces at an end",
            ),
            (
                "[server]\ninstance_id = \"shop\\n1\"\n",
                "app.toml: server.instance_id: holds a control character",
            ),
            (
                "[server]\ninstance_id = 1\n",
                "app.toml: server.instance_id: expected a string, found integer",
            ),
        ] {
            let err = resolve_alone(&tables(raw)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{raw}: {err}");
        }
        let raw = tables(&format!(
            "[server]\ninstance_id = \"{}\"\n",
            "x".repeat(129)
        ));
        let err = resolve_alone(&raw).unwrap_err().to_string();
        assert!(err.contains("longer than 128 characters"), "{err}");
        let env = |name: &str| (name == "JIT_INSTANCE_ID").then(|| "a\tb".to_owned());
        let err = ServeConfig::resolve(
            Path::new("app.toml"),
            &RawTables::default(),
            &env,
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("environment: JIT_INSTANCE_ID: holds a control character"),
            "{err}"
        );
    }

    #[test]
    fn metrics_settings_are_checked() {
        let token = "0123456789abcdef-scrape";
        let raw = tables(&format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\nmetrics_token = \"{token}\"\nmetrics_listen = \"127.0.0.1:9090\"\n"
        ));
        let config = resolve_alone(&raw).unwrap();
        assert!(config.metrics.token.accepts(token));
        assert!(!config.metrics.token.accepts("0123456789abcdef"));
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert!(!format!("{config:?}").contains(token));
        let config = resolve_alone(&RawTables::default()).unwrap();
        assert!(config.metrics.token.is_empty());
        assert_eq!(config.metrics.listen, None);

        for (source, expected) in [
            (
                "metrics_token = \"\"",
                "app.toml: server.metrics_token: is empty",
            ),
            (
                "metrics_token = \"short-secret\"",
                "app.toml: server.metrics_token: is shorter than 16",
            ),
            (
                "metrics_token = \" 0123456789abcdef-scrape\"",
                "app.toml: server.metrics_token: has spaces",
            ),
            (
                "metrics_token = 12",
                "app.toml: server.metrics_token: expected a string",
            ),
            (
                "metrics_listen = \"nowhere\"",
                "app.toml: server.metrics_listen: `nowhere`",
            ),
            (
                "metrics_listen = \"0.0.0.0:9090\"",
                "app.toml: server.metrics_listen: `0.0.0.0:9090` is not a loopback address",
            ),
            (
                "metrics_listen = \"127.0.0.1:8080\"",
                "app.toml: server.metrics_listen: `127.0.0.1:8080` is the main listener's",
            ),
            (
                "metrics_listen_public = \"yes\"",
                "app.toml: server.metrics_listen_public: expected true or false",
            ),
        ] {
            let raw = tables(&format!(
                "[server]\nlisten = \"127.0.0.1:8080\"\n{source}\n"
            ));
            let err = resolve_alone(&raw).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{source}: {err}");
            assert!(
                !err.contains("short-secret") && !err.contains("abcdef-scrape"),
                "{err}"
            );
        }
        // Said explicitly, a non-loopback address is taken.
        let raw =
            tables("[server]\nmetrics_listen = \"0.0.0.0:9090\"\nmetrics_listen_public = true\n");
        let config = resolve_alone(&raw).unwrap();
        assert!(config.metrics.listen_public);
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
}
