//! What the outbox's dispatcher needs from app.toml: `[events]` (how long a failing
//! delivery is retried, how often each consumer looks for work) and `[[webhooks]]` (the
//! merchant's endpoints), checked so that a mistake is an error at `jit check` and at
//! start, never a webhook that silently goes nowhere.
//!
//! [`EventsConfig::outbox_settings`] is the one place the outbox's settings, and so the
//! consumers new and replayed events are routed to, are made: `jit serve` starts the
//! dispatcher with them and `jit events replay` queues deliveries with their routes.
//!
//! A webhook's secret is never shown: not in an error (which says what is wrong with it,
//! never what it is), not in Debug output ([`WebhookEndpoint`]'s masks it), not in a log.

use std::ops::RangeInclusive;
use std::time::Duration;

use jit_pays::db::outbox::ConsumerRoute;
use jit_pays::db::redact_url;
use jit_pays::{OutboxSettings, PayEventKind, WebhookEndpoint};
use jit_runtime::log_safe;

use crate::server::config::{ConfigError, TableReader, is_loopback_url};

/// How long a failing delivery is retried unless `[events] retry_for_hours` says.
pub const DEFAULT_RETRY_FOR_HOURS: i64 = 24;
/// `retry_for_hours`: an hour to thirty days.
const RETRY_FOR_HOURS: RangeInclusive<i64> = 1..=720;
/// How often each consumer looks for work unless `[events] poll_interval_ms` says.
pub const DEFAULT_POLL_INTERVAL_MS: i64 = 1000;
/// `poll_interval_ms`: fast enough for tests, slow enough not to hammer the database.
const POLL_INTERVAL_MS: RangeInclusive<i64> = 50..=60_000;
/// One webhook attempt's time limit unless its `timeout_ms` says.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: i64 = 10_000;
/// `timeout_ms`: a claim outlives its attempt by 30 s, so a minute keeps claims short.
const WEBHOOK_TIMEOUT_MS: RangeInclusive<i64> = 100..=60_000;
/// The shortest webhook secret: 32 characters, 128 bits of randomness as hex.
pub const MIN_SECRET_CHARS: usize = 32;

/// The keys `[events]` takes.
const EVENTS_KEYS: &[&str] = &["retry_for_hours", "poll_interval_ms"];
/// The keys a `[[webhooks]]` table takes.
const WEBHOOK_KEYS: &[&str] = &["url", "secret", "events", "timeout_ms"];

/// How to make a secret, as the errors about one say.
const MAKE_A_SECRET: &str = "set `secret = \"{{JIT_WEBHOOK_SECRET}}\"` and give the variable a \
random value of at least 32 characters (e.g. `openssl rand -hex 32`)";

/// `[events]` and `[[webhooks]]`, checked.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// A delivery still failing this long after its event was written is dead (the hooks
    /// and every webhook).
    pub retry_for: Duration,
    /// How often each consumer looks for work written by other instances or come due.
    pub poll_interval: Duration,
    /// The merchant's endpoints, in file order (Debug masks their secrets).
    pub webhooks: Vec<WebhookEndpoint>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            retry_for: hours(DEFAULT_RETRY_FOR_HOURS),
            poll_interval: millis(DEFAULT_POLL_INTERVAL_MS),
            webhooks: Vec::new(),
        }
    }
}

impl EventsConfig {
    /// Reads `[events]` (`events`) and the `[[webhooks]]` tables (`webhooks`).
    pub(crate) fn resolve(
        reader: &TableReader,
        events: &toml::Table,
        webhooks: &[toml::Table],
    ) -> Result<Self, ConfigError> {
        reader.check_keys(events, "events", EVENTS_KEYS)?;
        let retry_for = hours(
            reader
                .integer_in(events, "events.retry_for_hours", RETRY_FOR_HOURS, "hours")?
                .unwrap_or(DEFAULT_RETRY_FOR_HOURS),
        );
        let poll_interval = millis(
            reader
                .integer_in(
                    events,
                    "events.poll_interval_ms",
                    POLL_INTERVAL_MS,
                    "milliseconds",
                )?
                .unwrap_or(DEFAULT_POLL_INTERVAL_MS),
        );
        let mut endpoints: Vec<WebhookEndpoint> = Vec::with_capacity(webhooks.len());
        let mut seen: Vec<String> = Vec::with_capacity(webhooks.len());
        for (index, table) in webhooks.iter().enumerate() {
            let endpoint = webhook(reader, index, table, retry_for)?;
            let normalized = normalized_url(&endpoint.url).unwrap_or_default();
            if let Some(first) = seen.iter().position(|known| *known == normalized) {
                return Err(reader.invalid(
                    &format!("webhooks[{index}].url"),
                    format!(
                        "`{}` is also webhooks[{first}].url; configure each endpoint once \
                         (one `events` list takes several types)",
                        redact_url(&endpoint.url)
                    ),
                ));
            }
            seen.push(normalized);
            endpoints.push(endpoint);
        }
        Ok(Self {
            retry_for,
            poll_interval,
            webhooks: endpoints,
        })
    }

    /// The outbox's settings for the instance `instance_id`: the one place they are
    /// made, so `jit events replay` routes events exactly as `jit serve` does
    /// ([`OutboxSettings::routes`]).
    pub fn outbox_settings(&self, instance_id: impl Into<String>) -> OutboxSettings {
        OutboxSettings {
            poll_interval: self.poll_interval,
            hooks_retry_for: self.retry_for,
            webhooks: self.webhooks.clone(),
            ..OutboxSettings::new(instance_id)
        }
    }

    /// The consumers events are routed to (the hooks, then each endpoint): those of
    /// [`EventsConfig::outbox_settings`], which do not depend on the instance.
    pub fn routes(&self) -> Vec<ConsumerRoute> {
        self.outbox_settings(String::new()).routes()
    }

    /// The configured endpoint `url` names (compared as parsed URLs: `HTTPS://Host`
    /// is `https://host/`).
    pub fn webhook(&self, url: &str) -> Option<&WebhookEndpoint> {
        let wanted = normalized_url(url.trim())?;
        self.webhooks
            .iter()
            .find(|endpoint| normalized_url(&endpoint.url).as_deref() == Some(wanted.as_str()))
    }
}

/// `webhooks[index]`, checked.
fn webhook(
    reader: &TableReader,
    index: usize,
    table: &toml::Table,
    retry_for: Duration,
) -> Result<WebhookEndpoint, ConfigError> {
    let key = |name: &str| format!("webhooks[{index}].{name}");
    if let Some(unknown) = table
        .keys()
        .find(|name| !WEBHOOK_KEYS.contains(&name.as_str()))
    {
        return Err(reader.invalid(
            &key(unknown),
            format!(
                "unknown key; a [[webhooks]] table takes {}",
                WEBHOOK_KEYS.join(", ")
            ),
        ));
    }
    let url = match table.get("url") {
        None => {
            return Err(reader.invalid(
                &key("url"),
                "is missing; each [[webhooks]] table names its endpoint: `url = \"https://…\"`"
                    .to_owned(),
            ));
        }
        Some(toml::Value::String(url)) => url.trim().to_owned(),
        Some(other) => {
            return Err(reader.invalid(
                &key("url"),
                format!("expected a string, found {}", other.type_str()),
            ));
        }
    };
    check_url(&url).map_err(|message| reader.invalid(&key("url"), message))?;
    let secret = match table.get("secret") {
        None => return Err(reader.invalid(&key("secret"), format!("is missing; {MAKE_A_SECRET}"))),
        Some(toml::Value::String(secret)) => secret.clone(),
        // The type only: the value may be the secret itself.
        Some(other) => {
            return Err(reader.invalid(
                &key("secret"),
                format!("expected a string, found {}", other.type_str()),
            ));
        }
    };
    check_secret(&secret).map_err(|message| reader.invalid(&key("secret"), message))?;
    let kinds = match table.get("events") {
        None => None,
        Some(toml::Value::Array(names)) => Some(event_kinds(reader, index, names)?),
        Some(other) => {
            return Err(reader.invalid(
                &key("events"),
                format!(
                    "expected an array of event types, found {}; known types: {}",
                    other.type_str(),
                    known_kinds()
                ),
            ));
        }
    };
    let timeout = millis(
        reader
            .integer_in(
                table,
                &key("timeout_ms"),
                WEBHOOK_TIMEOUT_MS,
                "milliseconds",
            )?
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT_MS),
    );
    Ok(WebhookEndpoint {
        url,
        secret,
        kinds,
        timeout,
        retry_for,
    })
}

/// A webhook URL is http(s) with a host and no credentials, and https unless the host is
/// this machine. What is wrong, the URL shown redacted.
fn check_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    if url.is_empty() {
        return Err("is empty; each [[webhooks]] table names its endpoint".to_owned());
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|err| format!("`{shown}` is not a URL: {err}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "`{shown}` is not an http:// or https:// URL with a host"
        ));
    }
    // The URL names the endpoint in every delivery row and in `jit events`: a password
    // there would be copied into the database for every event.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "`{shown}` carries credentials; a webhook URL carries none (the `Jit-Signature` \
             header, made with the secret, authenticates each request)"
        ));
    }
    if parsed.scheme() == "http" && !is_loopback_url(url) {
        return Err(format!(
            "`{shown}` is plain http:// to a host that is not this machine: events carry \
             orders and the signature does not hide them; use https://"
        ));
    }
    Ok(())
}

/// What is wrong with a secret, never the secret.
fn check_secret(secret: &str) -> Result<(), String> {
    if secret.trim().is_empty() {
        return Err(format!("is empty; {MAKE_A_SECRET}"));
    }
    // A placeholder the host could not fill (`{{ not-a-name }}`), or a variable whose value
    // is itself a placeholder: either way not the secret meant.
    if secret.contains("{{") || secret.contains("}}") {
        return Err(format!(
            "holds a `{{{{…}}}}` placeholder that was not filled (a variable name is letters, \
             digits and `_`); {MAKE_A_SECRET}"
        ));
    }
    if secret.chars().count() < MIN_SECRET_CHARS {
        return Err(format!(
            "is shorter than {MIN_SECRET_CHARS} characters; {MAKE_A_SECRET}"
        ));
    }
    Ok(())
}

/// `webhooks[index].events`: at least one known type, none twice.
fn event_kinds(
    reader: &TableReader,
    index: usize,
    names: &[toml::Value],
) -> Result<Vec<PayEventKind>, ConfigError> {
    if names.is_empty() {
        return Err(reader.invalid(
            &format!("webhooks[{index}].events"),
            format!(
                "is empty; leave `events` out to receive every type, or list some of: {}",
                known_kinds()
            ),
        ));
    }
    let mut kinds = Vec::with_capacity(names.len());
    for (position, name) in names.iter().enumerate() {
        let key = format!("webhooks[{index}].events[{position}]");
        let toml::Value::String(name) = name else {
            return Err(reader.invalid(
                &key,
                format!("expected a string, found {}", name.type_str()),
            ));
        };
        let Some(kind) = PayEventKind::from_name(name) else {
            return Err(reader.invalid(
                &key,
                format!(
                    "unknown event type `{}`; known types: {}",
                    log_safe(name),
                    known_kinds()
                ),
            ));
        };
        if kinds.contains(&kind) {
            return Err(reader.invalid(&key, format!("`{kind}` is listed twice")));
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

/// `order.paid, order.paid_after_close, ...`
fn known_kinds() -> String {
    PayEventKind::ALL
        .iter()
        .map(|kind| kind.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The URL as the parser writes it, for comparing two spellings of one endpoint.
fn normalized_url(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().map(String::from)
}

fn hours(count: i64) -> Duration {
    Duration::from_secs(count.unsigned_abs() * 3600)
}

fn millis(count: i64) -> Duration {
    Duration::from_millis(count.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::server::config::RawTables;

    /// 40 characters; appears in no message.
    const SECRET: &str = "whsec-0123456789abcdef0123456789abcdef01";

    fn resolve(source: &str) -> Result<EventsConfig, String> {
        let tables = RawTables::parse(source);
        EventsConfig::resolve(
            &TableReader::new(Path::new("app.toml")),
            &tables.events,
            &tables.webhooks,
        )
        .map_err(|err| err.to_string())
    }

    /// `[[webhooks]]` with `url` and the test secret, then `extra` lines.
    fn hook(url: &str, extra: &str) -> String {
        format!("[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{extra}\n")
    }

    #[test]
    fn defaults_without_tables() {
        let config = resolve("").unwrap();
        assert_eq!(config.retry_for, Duration::from_secs(24 * 3600));
        assert_eq!(config.poll_interval, Duration::from_secs(1));
        assert!(config.webhooks.is_empty());
    }

    #[test]
    fn a_full_configuration() {
        let source = format!(
            "[events]\nretry_for_hours = 48\npoll_interval_ms = 250\n{}{}",
            hook(
                "https://erp.example.com/jit/events",
                "events = [\"order.paid\", \"order.paid_after_close\"]\ntimeout_ms = 2500"
            ),
            hook("http://127.0.0.1:9000/hook", ""),
        );
        let config = resolve(&source).unwrap();
        assert_eq!(config.retry_for, Duration::from_secs(48 * 3600));
        assert_eq!(config.poll_interval, Duration::from_millis(250));
        let [erp, local] = config.webhooks.as_slice() else {
            panic!("two endpoints: {config:?}");
        };
        assert_eq!(erp.url, "https://erp.example.com/jit/events");
        assert_eq!(erp.secret, SECRET);
        assert_eq!(
            erp.kinds,
            Some(vec![PayEventKind::Paid, PayEventKind::PaidAfterClose])
        );
        assert_eq!(erp.timeout, Duration::from_millis(2500));
        assert_eq!(erp.retry_for, config.retry_for);
        assert_eq!(local.kinds, None, "no `events`: every type");
        assert_eq!(local.timeout, Duration::from_secs(10));

        let settings = config.outbox_settings("shop-1");
        assert_eq!(settings.instance_id, "shop-1");
        assert_eq!(settings.poll_interval, Duration::from_millis(250));
        assert_eq!(settings.hooks_retry_for, Duration::from_secs(48 * 3600));
        let routes = settings.routes();
        let names: Vec<&str> = routes.iter().map(|route| route.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hooks",
                "https://erp.example.com/jit/events",
                "http://127.0.0.1:9000/hook"
            ]
        );
        assert!(!routes[1].takes(PayEventKind::Closed));
        assert!(routes[2].takes(PayEventKind::Closed));

        assert_eq!(
            config
                .webhook("HTTPS://ERP.example.com:443/jit/events")
                .map(|endpoint| endpoint.url.as_str()),
            Some("https://erp.example.com/jit/events")
        );
        assert!(config.webhook("https://erp.example.com/other").is_none());
        assert!(config.webhook("hooks").is_none());
    }

    /// Each broken configuration is refused with the file, the key and what is wrong.
    #[test]
    fn every_rule_names_its_key() {
        let known = known_kinds();
        let cases: Vec<(String, &str)> = vec![
            ("[events]\nretry_for = 3\n".into(), "app.toml: events.retry_for: unknown key; [events] takes retry_for_hours, poll_interval_ms"),
            ("[events]\nretry_for_hours = 0\n".into(), "app.toml: events.retry_for_hours: expected an integer from 1 to 720 (hours), found 0"),
            ("[events]\nretry_for_hours = 721\n".into(), "app.toml: events.retry_for_hours: expected an integer from 1 to 720 (hours), found 721"),
            ("[events]\nretry_for_hours = \"24\"\n".into(), "app.toml: events.retry_for_hours: expected an integer from 1 to 720 (hours), found \"24\""),
            ("[events]\npoll_interval_ms = 49\n".into(), "app.toml: events.poll_interval_ms: expected an integer from 50 to 60000 (milliseconds), found 49"),
            ("[events]\npoll_interval_ms = 1.5\n".into(), "app.toml: events.poll_interval_ms: expected an integer from 50 to 60000"),
            (hook("https://a.example/h", "retries = 3"), "app.toml: webhooks[0].retries: unknown key; a [[webhooks]] table takes url, secret, events, timeout_ms"),
            (format!("[[webhooks]]\nsecret = \"{SECRET}\"\n"), "app.toml: webhooks[0].url: is missing"),
            (hook("", ""), "app.toml: webhooks[0].url: is empty"),
            (format!("[[webhooks]]\nurl = 3\nsecret = \"{SECRET}\"\n"), "app.toml: webhooks[0].url: expected a string, found integer"),
            (hook("not a url", ""), "app.toml: webhooks[0].url: `***` is not a URL"),
            (hook("ftp://files.example/x", ""), "app.toml: webhooks[0].url: `ftp://files.example/x` is not an http:// or https:// URL"),
            (hook("http://erp.example.com/hook", ""), "app.toml: webhooks[0].url: `http://erp.example.com/hook` is plain http:// to a host that is not this machine"),
            (hook("https://erp:pw@erp.example.com/hook", ""), "app.toml: webhooks[0].url: `https://erp:***@erp.example.com/hook` carries credentials"),
            (format!("{}{}", hook("https://a.example/h", ""), hook("https://A.EXAMPLE:443/h", "")), "app.toml: webhooks[1].url: `https://A.EXAMPLE:443/h` is also webhooks[0].url"),
            ("[[webhooks]]\nurl = \"https://a.example/h\"\n".into(), "app.toml: webhooks[0].secret: is missing; set `secret = \"{{JIT_WEBHOOK_SECRET}}\"`"),
            ("[[webhooks]]\nurl = \"https://a.example/h\"\nsecret = \"\"\n".into(), "app.toml: webhooks[0].secret: is empty"),
            ("[[webhooks]]\nurl = \"https://a.example/h\"\nsecret = 1234567890123456789\n".into(), "app.toml: webhooks[0].secret: expected a string, found integer"),
            ("[[webhooks]]\nurl = \"https://a.example/h\"\nsecret = \"{{ JIT-WEBHOOK-SECRET-ABCDEFGHIJKLMNOP }}\"\n".into(), "app.toml: webhooks[0].secret: holds a `{{…}}` placeholder that was not filled"),
            ("[[webhooks]]\nurl = \"https://a.example/h\"\nsecret = \"0123456789abcdef0123456789abcde\"\n".into(), "app.toml: webhooks[0].secret: is shorter than 32 characters"),
            (hook("https://a.example/h", "events = []"), "app.toml: webhooks[0].events: is empty; leave `events` out to receive every type"),
            (hook("https://a.example/h", "events = \"order.paid\""), "app.toml: webhooks[0].events: expected an array of event types, found string"),
            (hook("https://a.example/h", "events = [\"order.paid\", 3]"), "app.toml: webhooks[0].events[1]: expected a string, found integer"),
            (hook("https://a.example/h", "events = [\"order.paid\", \"order.refunded\"]"), "app.toml: webhooks[0].events[1]: unknown event type `order.refunded`; known types: "),
            (hook("https://a.example/h", "events = [\"order.paid\", \"order.closed\", \"order.paid\"]"), "app.toml: webhooks[0].events[2]: `order.paid` is listed twice"),
            (hook("https://a.example/h", "timeout_ms = 99"), "app.toml: webhooks[0].timeout_ms: expected an integer from 100 to 60000 (milliseconds), found 99"),
            (hook("https://a.example/h", "timeout_ms = 60001"), "app.toml: webhooks[0].timeout_ms: expected an integer from 100 to 60000"),
            (hook("https://a.example/h", "timeout_ms = \"10s\""), "app.toml: webhooks[0].timeout_ms: expected an integer from 100 to 60000"),
        ];
        for (source, expected) in cases {
            let err = resolve(&source).expect_err(&source);
            assert!(
                err.starts_with(expected),
                "{source}\n  gave: {err}\n  want: {expected}"
            );
            assert!(!err.contains(SECRET), "the secret leaked: {err}");
            assert!(!err.contains("0123456789abcdef"), "a secret leaked: {err}");
        }
        let err = resolve(&hook(
            "https://a.example/h",
            "events = [\"order.refunded\"]",
        ))
        .unwrap_err();
        assert!(err.ends_with(&known), "{err}");
        assert!(known.contains("order.paid") && known.contains("order.payment_conflict"));
    }

    #[test]
    fn loopback_endpoints_may_be_plain_http() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:9000/",
        ] {
            assert!(resolve(&hook(url, "")).is_ok(), "{url}");
        }
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let config = resolve(&hook("https://a.example/h?token=t0ps3cr3t", "")).unwrap();
        let printed = format!("{config:?} {:?}", config.outbox_settings("x"));
        assert!(!printed.contains(SECRET), "{printed}");
        assert!(!printed.contains("t0ps3cr3t"), "{printed}");
    }
}
