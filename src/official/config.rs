//! What the official families need to serve, from app.toml's `[database]`, `[gateway]`,
//! `[reconciler]` and `[bills]` tables, and `[events]` and `[[webhooks]]` through
//! [`crate::official::events`] (the same raw tables [`crate::server::config`] reads
//! `[server]` and `[auth]` from), overridden by the environment, overridden by the caller.
//!
//! Precedence, highest first: [`Overrides`] (flags, tests) → environment variables →
//! app.toml → defaults. The database defaults to SQLite beside app.toml; the payment
//! gateway has no default. app.toml says `[gateway] simulator = true` or
//! `[gateway] base_url = "…"`, so a shop can never take real orders on the simulator by
//! omission ([`crate::server::safety`] enforces the choice).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jit_pays::ReconcilerSettings;
use jit_pays::db::redact_url;

use super::events::EventsConfig;
use crate::server::config::{ConfigError, Overrides, RawTables, TableReader, non_empty};

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

/// The settings of the official families: their database and their gateway.
#[derive(Clone)]
pub struct PaysConfig {
    /// Database URL. May hold a password: show it only through
    /// [`jit_pays::db::redact_url`].
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
    /// `[reconciler]`: when waiting orders are queried at WeChat.
    pub reconciler: ReconcilerSettings,
    /// `[events]` and `[[webhooks]]`: who is told of payment events, and how.
    pub events: EventsConfig,
    /// `[bills]`: the daily bill download and reconciliation.
    pub bills: BillsConfig,
}

/// `[bills]`: when `jit serve` downloads the day before's bills and reconciles them.
///
/// ```toml
/// [bills]
/// download_at = "10:00"   # Beijing time, HH:MM; the default (WeChat's bills are ready)
/// enabled = true          # false: no scheduled download (`jit bills download` still works)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillsConfig {
    /// Whether `jit serve` schedules the daily download.
    pub enabled: bool,
    /// Beijing time of day after which the day before is downloaded.
    pub download_at: chrono::NaiveTime,
}

impl Default for BillsConfig {
    fn default() -> Self {
        BillsConfig {
            enabled: true,
            download_at: jit_pays::BillSchedule::DEFAULT_DOWNLOAD_AT,
        }
    }
}

impl std::fmt::Debug for PaysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaysConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_schema", &self.database_schema)
            .field("database_max_connections", &self.database_max_connections)
            .field("gateway", &self.gateway)
            .field("simulator_public", &self.simulator_public)
            .field("reconciler", &self.reconciler)
            .field("events", &self.events)
            .field("bills", &self.bills)
            .finish()
    }
}

/// The keys each table may hold; anything else is a typo that would otherwise be ignored.
const KNOWN_KEYS: [(&str, &[&str]); 4] = [
    ("bills", &["download_at", "enabled"]),
    ("database", &["url", "schema", "max_connections"]),
    ("gateway", &["simulator", "base_url", "simulator_public"]),
    (
        "reconciler",
        &[
            "first_check_after_secs",
            "max_backoff_secs",
            "scan_interval_ms",
            "batch_size",
            "claim_lease_secs",
        ],
    ),
];

impl PaysConfig {
    /// Resolves the settings of the app whose app.toml is `app_toml`.
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
        let reader = TableReader::new(app_toml);
        for (section, known) in KNOWN_KEYS {
            let table = match section {
                "database" => &tables.database,
                "gateway" => &tables.gateway,
                "bills" => &tables.bills,
                _ => &tables.reconciler,
            };
            reader.check_keys(table, section, known)?;
        }

        let database_url = match &overrides.database_url {
            Some(url) => url.clone(),
            None => match non_empty(env("JIT_DATABASE_URL"))
                .or_else(|| non_empty(env("DATABASE_URL")))
            {
                Some(url) => url,
                None => match non_empty(reader.string_at(&tables.database, "database", "url")?) {
                    Some(url) => url,
                    None => default_sqlite_url(app_toml, app_name),
                },
            },
        };

        let database_schema = match &overrides.database_schema {
            Some(schema) => Some(schema.clone()),
            None => match non_empty(env("JIT_DATABASE_SCHEMA")) {
                Some(schema) => Some(schema),
                None => non_empty(reader.string_at(&tables.database, "database", "schema")?),
            },
        };
        if database_schema.is_some() && !database_url.starts_with("postgres") {
            return Err(reader.invalid(
                "database.schema",
                "a schema applies to PostgreSQL only; the database URL is not postgres://"
                    .to_owned(),
            ));
        }

        let database_max_connections = match tables.database.get("max_connections") {
            None => None,
            Some(toml::Value::Integer(count)) if (1..=1000).contains(count) => Some(*count as u32),
            Some(other) => {
                return Err(reader.invalid(
                    "database.max_connections",
                    format!("expected an integer from 1 to 1000, found {other}"),
                ));
            }
        };

        let (gateway, simulator_public) = resolve_gateway(&tables.gateway, env, overrides)
            .map_err(|(key, message)| match key {
                GatewayKey::File(key) => reader.invalid(key, message),
                GatewayKey::Env(name) => TableReader::env_invalid(name, message),
            })?;

        let reconciler = resolve_reconciler(&reader, &tables.reconciler)?;
        let events = EventsConfig::resolve(&reader, &tables.events, &tables.webhooks)?;
        let bills = resolve_bills(&reader, &tables.bills)?;

        Ok(Self {
            database_url,
            database_schema,
            database_max_connections,
            gateway,
            simulator_public,
            reconciler,
            events,
            bills,
        })
    }
}

/// `[bills]`: each key optional ([`BillsConfig::default`]); an odd value is an error.
fn resolve_bills(reader: &TableReader, table: &toml::Table) -> Result<BillsConfig, ConfigError> {
    let defaults = BillsConfig::default();
    let enabled = match table.get("enabled") {
        None => defaults.enabled,
        Some(toml::Value::Boolean(value)) => *value,
        Some(other) => {
            return Err(reader.invalid(
                "bills.enabled",
                format!("expected true or false, found {other}"),
            ));
        }
    };
    let download_at = match table.get("download_at") {
        None => defaults.download_at,
        Some(toml::Value::String(text)) => parse_clock_time(text).ok_or_else(|| {
            reader.invalid(
                "bills.download_at",
                format!("{text:?} is not a time of day: write HH:MM, Beijing time (\"10:00\")"),
            )
        })?,
        Some(other) => {
            return Err(reader.invalid(
                "bills.download_at",
                format!(
                    "expected a string HH:MM (Beijing time), found {}",
                    other.type_str()
                ),
            ));
        }
    };
    Ok(BillsConfig {
        enabled,
        download_at,
    })
}

/// `HH:MM`, exactly: two digits each, 00:00 to 23:59.
fn parse_clock_time(text: &str) -> Option<chrono::NaiveTime> {
    let time = chrono::NaiveTime::parse_from_str(text, "%H:%M").ok()?;
    (time.format("%H:%M").to_string() == text).then_some(time)
}

/// `[reconciler]`: each key optional, its default [`ReconcilerSettings::default`]'s.
fn resolve_reconciler(
    reader: &TableReader,
    table: &toml::Table,
) -> Result<ReconcilerSettings, ConfigError> {
    let defaults = ReconcilerSettings::default();
    let secs = |key: &str, most: i64, default: Duration| -> Result<Duration, ConfigError> {
        Ok(reader
            .integer_in(table, &format!("reconciler.{key}"), 1..=most, "seconds")?
            .map_or(default, |secs| Duration::from_secs(secs.unsigned_abs())))
    };
    const DAY: i64 = 24 * 3600;
    let first_check_after = secs("first_check_after_secs", DAY, defaults.first_check_after)?;
    let max_backoff = secs("max_backoff_secs", DAY, defaults.max_backoff)?;
    if max_backoff < first_check_after {
        return Err(reader.invalid(
            "reconciler.max_backoff_secs",
            format!(
                "is {} s, less than first_check_after_secs ({} s): the back-off starts at \
                 first_check_after_secs and doubles up to max_backoff_secs",
                max_backoff.as_secs(),
                first_check_after.as_secs()
            ),
        ));
    }
    let scan_interval = reader
        .integer_in(
            table,
            "reconciler.scan_interval_ms",
            50..=3_600_000,
            "milliseconds",
        )?
        .map_or(defaults.scan_interval, |ms| {
            Duration::from_millis(ms.unsigned_abs())
        });
    let batch_size = reader
        .integer_in(table, "reconciler.batch_size", 1..=10_000, "orders")?
        .map_or(defaults.batch_size, i64::unsigned_abs);
    let claim_lease = secs("claim_lease_secs", 3600, defaults.claim_lease)?;
    Ok(ReconcilerSettings {
        first_check_after,
        max_backoff,
        scan_interval,
        batch_size,
        claim_lease,
    })
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
                        "both `simulator = true` and a base_url (from {key}) are set; choose \
                         one: {GATEWAY_CHOICES}"
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
            "`simulator` is not a URL: the simulator is chosen with `[gateway] simulator = \
             true`; {GATEWAY_CHOICES}"
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
        return Err(
            "a gateway URL carries no credentials (WeChat Pay signs each request with \
                    the merchant key)"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(source: &str) -> RawTables {
        RawTables::parse(source)
    }

    /// `raw` resolved for app `shop` with no environment and no flags.
    fn resolve_alone(raw: &RawTables) -> Result<PaysConfig, ConfigError> {
        PaysConfig::resolve(
            Path::new("app.toml"),
            "shop",
            raw,
            &|_| None,
            &Overrides::default(),
        )
    }

    #[test]
    fn bills_download_at_ten_by_default_and_odd_values_are_refused() {
        let config = resolve_alone(&RawTables::default()).unwrap();
        assert_eq!(config.bills, BillsConfig::default());
        assert_eq!(config.bills.download_at.to_string(), "10:00:00");
        let config = resolve_alone(&tables(
            "[bills]\ndownload_at = \"09:30\"\nenabled = false\n",
        ))
        .unwrap();
        assert_eq!(config.bills.download_at.to_string(), "09:30:00");
        assert!(!config.bills.enabled);
        for bad in [
            "download_at = \"9:30\"",
            "download_at = \"24:00\"",
            "download_at = \"10:00:00\"",
            "download_at = \"ten\"",
            "download_at = 10",
            "enabled = \"yes\"",
            "download = \"10:00\"",
        ] {
            let err = resolve_alone(&tables(&format!("[bills]\n{bad}\n")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("bills"), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_are_sqlite_beside_app_toml_and_no_gateway() {
        let config = PaysConfig::resolve(
            Path::new("/srv/shop/app.toml"),
            "shop",
            &RawTables::default(),
            &|_| None,
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.database_url, "sqlite:///srv/shop/shop.db");
        assert_eq!(config.gateway, None);
        assert!(!config.simulator_public);
    }

    #[test]
    fn environment_beats_file_and_overrides_beat_environment() {
        let raw = tables(
            "[database]\nurl = \"sqlite://file.db\"\n\
             [gateway]\nbase_url = \"https://api.mch.weixin.qq.com\"\n",
        );
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://u:p@db/x".to_owned()),
            _ => None,
        };
        let config = PaysConfig::resolve(
            Path::new("app.toml"),
            "shop",
            &raw,
            &env,
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.database_url, "postgres://u:p@db/x");
        assert_eq!(
            config.gateway,
            Some(GatewayTarget::Remote(
                "https://api.mch.weixin.qq.com".to_owned()
            ))
        );
        let overrides = Overrides {
            database_url: Some("sqlite::memory:".to_owned()),
            gateway: Some(GatewayTarget::Simulator),
            ..Overrides::default()
        };
        let config =
            PaysConfig::resolve(Path::new("app.toml"), "shop", &raw, &env, &overrides).unwrap();
        assert_eq!(config.database_url, "sqlite::memory:");
        assert_eq!(config.gateway, Some(GatewayTarget::Simulator));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = resolve_alone(&tables("[database]\nulr = \"x\"\n")).unwrap_err();
        assert!(
            err.to_string().contains("database.ulr: unknown key"),
            "{err}"
        );
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
        PaysConfig::resolve(
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
                "app.toml: gateway: both `simulator = true` and a base_url (from app.toml's \
                 gateway.base_url)",
                true,
            ),
            (
                "[gateway]\nsimulator = true\n",
                Some("https://api.mch.weixin.qq.com"),
                "app.toml: gateway: both `simulator = true` and a base_url (from the \
                 JIT_GATEWAY_BASE_URL variable)",
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
                "app.toml: gateway.simulater: unknown key; [gateway] takes simulator, \
                 base_url, simulator_public",
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
    fn the_reconciler_table_sets_each_timing() {
        let config = resolve_alone(&RawTables::default()).unwrap();
        let defaults = ReconcilerSettings::default();
        assert_eq!(
            config.reconciler.first_check_after,
            defaults.first_check_after
        );
        assert_eq!(config.reconciler.max_backoff, defaults.max_backoff);
        assert_eq!(config.reconciler.scan_interval, defaults.scan_interval);
        assert_eq!(config.reconciler.batch_size, defaults.batch_size);
        assert_eq!(config.reconciler.claim_lease, defaults.claim_lease);

        let raw = tables(
            "[reconciler]\nfirst_check_after_secs = 1\nmax_backoff_secs = 3600\n\
             scan_interval_ms = 200\nbatch_size = 7\nclaim_lease_secs = 30\n",
        );
        let reconciler = resolve_alone(&raw).unwrap().reconciler;
        assert_eq!(reconciler.first_check_after, Duration::from_secs(1));
        assert_eq!(reconciler.max_backoff, Duration::from_secs(3600));
        assert_eq!(reconciler.scan_interval, Duration::from_millis(200));
        assert_eq!(reconciler.batch_size, 7);
        assert_eq!(reconciler.claim_lease, Duration::from_secs(30));
    }

    #[test]
    fn odd_reconciler_settings_are_refused() {
        for (raw, expected) in [
            (
                "[reconciler]\nfirst_check_afer_secs = 1\n",
                "app.toml: reconciler.first_check_afer_secs: unknown key; [reconciler] takes \
                 first_check_after_secs, max_backoff_secs, scan_interval_ms, batch_size, claim_lease_secs",
            ),
            (
                "[reconciler]\nfirst_check_after_secs = 0\n",
                "app.toml: reconciler.first_check_after_secs: expected an integer from 1 to \
                 86400 (seconds), found 0",
            ),
            (
                "[reconciler]\nmax_backoff_secs = \"15m\"\n",
                "app.toml: reconciler.max_backoff_secs: expected an integer from 1 to 86400 (seconds), found \"15m\"",
            ),
            (
                "[reconciler]\nfirst_check_after_secs = 1200\n",
                "app.toml: reconciler.max_backoff_secs: is 900 s, less than \
                 first_check_after_secs (1200 s)",
            ),
            (
                "[reconciler]\nscan_interval_ms = 10\n",
                "app.toml: reconciler.scan_interval_ms: expected an integer from 50 to \
                 3600000 (milliseconds), found 10",
            ),
            (
                "[reconciler]\nbatch_size = -1\n",
                "app.toml: reconciler.batch_size: expected an integer from 1 to 10000 \
                 (orders), found -1",
            ),
            (
                "[reconciler]\nclaim_lease_secs = 3601\n",
                "app.toml: reconciler.claim_lease_secs: expected an integer from 1 to 3600 \
                 (seconds), found 3601",
            ),
        ] {
            let err = resolve_alone(&tables(raw)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{raw}\n  gave: {err}");
        }
    }

    #[test]
    fn events_and_webhooks_are_part_of_the_settings() {
        let raw = tables(
            "[events]\npoll_interval_ms = 100\n\
             [[webhooks]]\nurl = \"https://erp.example.com/jit\"\n\
             secret = \"s3cret-s3cret-s3cret-s3cret-s3cret\"\n",
        );
        let config = resolve_alone(&raw).unwrap();
        assert_eq!(config.events.poll_interval, Duration::from_millis(100));
        assert_eq!(config.events.webhooks.len(), 1);
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("https://erp.example.com/jit"), "{printed}");
        // A webhook error stops the resolution, naming its key.
        let raw = tables("[[webhooks]]\nurl = \"https://erp.example.com/jit\"\n");
        let err = resolve_alone(&raw).unwrap_err().to_string();
        assert!(
            err.starts_with("app.toml: webhooks[0].secret: is missing"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_the_database_password() {
        let raw = tables("[database]\nurl = \"postgres://jit:hunter22@db/shop\"\n");
        let printed = format!("{:?}", resolve_alone(&raw).unwrap());
        assert!(!printed.contains("hunter22"), "{printed}");
        assert!(printed.contains("postgres://jit:***@db/shop"), "{printed}");
    }
}
