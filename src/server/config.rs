//! What `jit serve` listens on, stores in and talks to: app.toml's `[server]`, `[database]`,
//! `[gateway]` and `[auth]` tables, overridden by the environment, overridden by the caller.
//!
//! Precedence, highest first: [`Overrides`] (flags, tests) → environment variables →
//! app.toml → defaults. The defaults make an app with no configuration a working shop:
//! SQLite beside app.toml, the in-process simulator as the gateway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::auth::TokenSet;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cap on a JSON request body.
pub const DEFAULT_JSON_BODY_LIMIT: usize = 256 * 1024;
/// Default cap on an XML (WeChat notify) request body: a real notify is under 2 KiB.
pub const DEFAULT_XML_BODY_LIMIT: usize = 64 * 1024;
/// Default time a request may take before it is answered 504.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where payment calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayTarget {
    /// Start the simulator in-process on a loopback port; merchants from the app's
    /// WechatPayType instances.
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
    /// Gateway base URL; `None` keeps the configured one.
    pub gateway: Option<GatewayTarget>,
    /// Bearer tokens, replacing the configured ones.
    pub tokens: Option<Vec<String>>,
    /// Request timeout.
    pub request_timeout: Option<Duration>,
}

/// The resolved configuration of one server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Public base URL; `None` means `http://<bound address>`.
    pub public_base_url: Option<String>,
    /// Database URL.
    pub database_url: String,
    /// PostgreSQL only: the schema the tables live in (created if missing), so several
    /// apps can share one database. `None`: the server's default search path.
    pub database_schema: Option<String>,
    /// Size of the database connection pool; `None`: the pays store's default.
    pub database_max_connections: Option<u32>,
    /// Gateway.
    pub gateway: GatewayTarget,
    /// Accepted bearer tokens.
    pub tokens: TokenSet,
    /// Cap on JSON request bodies, in bytes.
    pub json_body_limit: usize,
    /// Cap on XML request bodies, in bytes.
    pub xml_body_limit: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
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

        let gateway = match &overrides.gateway {
            Some(gateway) => gateway.clone(),
            None => match non_empty(env("JIT_GATEWAY_BASE_URL")).or(non_empty(string_at(
                &tables.gateway,
                "gateway",
                "base_url",
            )?)) {
                Some(url) if url == "simulator" => GatewayTarget::Simulator,
                Some(url) => GatewayTarget::Remote(url.trim_end_matches('/').to_owned()),
                None => GatewayTarget::Simulator,
            },
        };

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

        let size_at = |key: &str, default: usize| -> Result<usize, ConfigError> {
            match tables.server.get(key) {
                None => Ok(default),
                Some(toml::Value::Integer(value)) if *value > 0 => Ok(*value as usize),
                Some(other) => Err(invalid(
                    &format!("server.{key}"),
                    format!("expected a positive integer (bytes), found {other}"),
                )),
            }
        };
        let json_body_limit = size_at("json_body_limit", DEFAULT_JSON_BODY_LIMIT)?;
        let xml_body_limit = size_at("xml_body_limit", DEFAULT_XML_BODY_LIMIT)?;
        let request_timeout = match overrides.request_timeout {
            Some(timeout) => timeout,
            None => match tables.server.get("request_timeout_secs") {
                None => DEFAULT_REQUEST_TIMEOUT,
                Some(toml::Value::Integer(secs)) if *secs > 0 => Duration::from_secs(*secs as u64),
                Some(other) => {
                    return Err(invalid(
                        "server.request_timeout_secs",
                        format!("expected a positive integer, found {other}"),
                    ));
                }
            },
        };

        Ok(Self {
            listen,
            public_base_url,
            database_url,
            database_schema,
            database_max_connections,
            gateway,
            tokens,
            json_body_limit,
            xml_body_limit,
            request_timeout,
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

/// A database URL with any password replaced, safe to log.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
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
    fn defaults_make_an_offline_shop() {
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
        assert_eq!(config.gateway, GatewayTarget::Simulator);
        assert!(config.tokens.is_empty());
        assert_eq!(config.public_base_url, None);
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
            GatewayTarget::Remote("https://api.mch.weixin.qq.com".to_owned())
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
        assert_eq!(config.gateway, GatewayTarget::Simulator);
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

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://jit:secret@db/shop"),
            "postgres://jit:***@db/shop"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
