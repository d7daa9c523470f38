//! The start-up rules that keep a careless configuration from failing open.
//!
//! Each rule turns a setting that would quietly expose a shop into a problem: `jit check`
//! prints it, `jit serve` refuses to start on it. They live here once, and both commands
//! call [`problems`].
//!
//! - A host that takes payments needs an explicit gateway (`[gateway] simulator = true` or
//!   `base_url`): an app never lands on the simulator by omission.
//! - With the simulator as the gateway, payments are simulated: the shop listens on
//!   loopback and its public base URL is a loopback one, unless
//!   `[gateway] simulator_public = true` says a shared demo is meant.
//! - With the simulator as the gateway, every webhook endpoint is on this machine:
//!   simulated payments never reach a real merchant system (which would ship the goods),
//!   not even in a shared demo.
//! - With the simulator as the gateway, `[server] metrics_listen` (the token-less metrics
//!   listener) is a loopback address, even with `metrics_listen_public = true`.
//! - With a gateway that is not on this machine, the public base URL (where WeChat sends
//!   notifies) is set and is not a loopback one.
//! - An app with `loginRequired` functions has at least one bearer token, and with a real
//!   gateway none of them is a token published in this repository's example apps.
//! - With a gateway that is not the simulator, every WeChat Pay V3 instance says how it
//!   verifies WeChat (the WeChat Pay public key, platform certificates, or both), and none
//!   signs with the example app's published demo key (`jit_pays::live_gateway_problems`):
//!   only the simulator, whose keys its instances trust, needs neither.

use std::path::Path;

use jit_runtime::Definitions;

use super::config::{ConfigError, ServeConfig, is_loopback_url};
use crate::official::config::{GATEWAY_CHOICES, GatewayTarget, PaysConfig};

/// Bearer tokens printed in this repository (its example apps' app.toml files and the
/// README): anyone can read them, so they never guard a real shop. A test keeps this list
/// in step with the example apps.
pub const PUBLISHED_TOKENS: &[&str] = &["demo-token"];

/// Every rule `config` breaks for the app whose definitions are `definitions`.
/// `takes_payments`: the host carries the payment families, so a gateway must be chosen.
pub fn problems(
    app_toml: &Path,
    config: &ServeConfig,
    pays: &PaysConfig,
    definitions: &Definitions,
    takes_payments: bool,
) -> Vec<ConfigError> {
    let file = app_toml.display().to_string();
    let problem = |key: &str, message: String| ConfigError::Invalid {
        file: file.clone(),
        key: key.to_owned(),
        message,
    };
    let mut problems = Vec::new();

    if takes_payments && pays.gateway.is_none() {
        problems.push(problem(
            "gateway",
            format!("no payment gateway is chosen; {GATEWAY_CHOICES}"),
        ));
    }

    if pays.gateway == Some(GatewayTarget::Simulator) && !pays.simulator_public {
        let demo = "payments are SIMULATED (the gateway is the built-in simulator), so the \
                    shop stays on this machine; listen on 127.0.0.1, choose a real gateway, \
                    or set `[gateway] simulator_public = true` for a shared demo";
        if !config.listen.ip().is_loopback() {
            problems.push(problem(
                "server.listen",
                format!(
                    "`{}` (from app.toml, JIT_LISTEN or --listen) is not a loopback address: \
                     {demo}",
                    config.listen
                ),
            ));
        }
        if let Some(url) = &config.public_base_url
            && !is_loopback_url(url)
        {
            problems.push(problem(
                "server.public_base_url",
                format!(
                    "`{url}` (from app.toml or JIT_PUBLIC_BASE_URL) is not a loopback URL: {demo}"
                ),
            ));
        }
    }

    // Metrics of a simulated shop stay on this machine, even in a shared demo: the
    // second listener has no token.
    if pays.gateway == Some(GatewayTarget::Simulator)
        && let Some(address) = config.metrics.listen
        && !address.ip().is_loopback()
    {
        problems.push(problem(
            "server.metrics_listen",
            format!(
                "`{address}` is not a loopback address, and payments are SIMULATED (the \
                 gateway is the built-in simulator): its metrics listener stays on this \
                 machine; listen on 127.0.0.1, or scrape /metrics on the main listener with \
                 a token"
            ),
        ));
    }

    if pays.gateway == Some(GatewayTarget::Simulator) {
        for (index, endpoint) in pays.events.webhooks.iter().enumerate() {
            if !is_loopback_url(&endpoint.url) {
                problems.push(problem(
                    &format!("webhooks[{index}].url"),
                    format!(
                        "`{}` is not on this machine, and payments are SIMULATED (the \
                         gateway is the built-in simulator): a simulated payment must never \
                         reach a real endpoint; point it at 127.0.0.1 or localhost, or \
                         choose a real gateway",
                        endpoint.shown_url()
                    ),
                ));
            }
        }
    }

    // WeChat posts payment notifies to the public base URL: a real gateway cannot reach a
    // loopback one (a gateway on this machine, a standalone simulator, can).
    if let Some(GatewayTarget::Remote(gateway)) = &pays.gateway
        && !is_loopback_url(gateway)
    {
        let reach = "WeChat sends payment notifies to {public_base_url}/api/…; set `[server] \
                     public_base_url` (or JIT_PUBLIC_BASE_URL) to the https:// address \
                     WeChat reaches this shop at";
        match &config.public_base_url {
            None => problems.push(problem(
                "server.public_base_url",
                format!("is not set, and the gateway `{gateway}` is not on this machine: {reach}"),
            )),
            Some(url) if is_loopback_url(url) => problems.push(problem(
                "server.public_base_url",
                format!(
                    "`{url}` is a loopback URL, and the gateway `{gateway}` is not on this \
                     machine: {reach}"
                ),
            )),
            Some(_) => {}
        }
    }

    // V3 instances verify a real WeChat with their own keys, and sign with their own.
    if let Some(GatewayTarget::Remote(_)) = &pays.gateway {
        for error in jit_pays::live_gateway_problems(definitions) {
            problems.push(ConfigError::Invalid {
                file: error.file.display().to_string(),
                key: error.json_path.unwrap_or_default(),
                message: error.message,
            });
        }
    }

    let login_functions = login_required_functions(definitions);
    if !login_functions.is_empty() && config.tokens.is_empty() {
        problems.push(problem(
            "auth.tokens",
            format!(
                "no bearer token is configured, yet {} function(s) require a login ({}); set \
                 `[auth] tokens = [\"{{{{JIT_API_TOKEN}}}}\"]` or JIT_API_TOKENS",
                login_functions.len(),
                examples(&login_functions),
            ),
        ));
    }

    if pays.gateway != Some(GatewayTarget::Simulator) {
        for published in PUBLISHED_TOKENS {
            if config.tokens.accepts(published) {
                problems.push(problem(
                    "auth.tokens",
                    format!(
                        "the token `{published}` is published in jit's example apps and is \
                         refused unless the gateway is the simulator; generate a secret one \
                         (e.g. `openssl rand -hex 32`) and pass it through JIT_API_TOKEN or \
                         JIT_API_TOKENS"
                    ),
                ));
            }
        }
    }
    problems
}

/// `element.function` for every function that requires a login, in tree order.
fn login_required_functions(definitions: &Definitions) -> Vec<String> {
    definitions
        .iter()
        .flat_map(|chain| {
            let element = chain.element().full_name.as_str().to_owned();
            chain
                .functions()
                .iter()
                .filter(|function| function.login_required)
                .map(move |function| format!("{element}.{}", function.name))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The first few names, and how many more.
fn examples(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token the repository's example apps publish (`[auth] tokens` and `*TOKEN*`
    /// values of `[env]`) is in [`PUBLISHED_TOKENS`].
    #[test]
    fn the_published_list_covers_the_example_apps() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("app.toml")];
        let mut pending = vec![root.join("examples")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.file_name().is_some_and(|name| name == "app.toml") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 2, "{files:?}");
        for file in files {
            let table: toml::Table = std::fs::read_to_string(&file).unwrap().parse().unwrap();
            let env = table.get("env").and_then(toml::Value::as_table);
            let fill = |value: &str| -> String {
                let mut filled = value.to_owned();
                for (name, known) in env.into_iter().flatten() {
                    if let Some(known) = known.as_str() {
                        filled = filled.replace(&format!("{{{{{name}}}}}"), known);
                    }
                }
                filled
            };
            let mut tokens: Vec<String> = env
                .into_iter()
                .flatten()
                .filter(|(name, _)| name.contains("TOKEN"))
                .filter_map(|(_, value)| value.as_str().map(fill))
                .collect();
            if let Some(listed) = table
                .get("auth")
                .and_then(|auth| auth.get("tokens"))
                .and_then(toml::Value::as_array)
            {
                tokens.extend(listed.iter().filter_map(toml::Value::as_str).map(fill));
            }
            for token in tokens {
                assert!(
                    PUBLISHED_TOKENS.contains(&token.as_str()),
                    "{}: token `{token}` is published but not in PUBLISHED_TOKENS",
                    file.display()
                );
            }
        }
    }

    /// The problems of app.toml text `source` (an app with no element), on the example
    /// app's gateway choice unless `source` makes one.
    fn problems_of(source: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.toml"),
            format!("[app]\norg = \"acme\"\nname = \"shop\"\n{source}"),
        )
        .unwrap();
        let host = crate::Host::bare();
        let definitions = host.load_definitions(dir.path()).unwrap();
        let (_, config, pays) = host
            .resolve_serve_config(dir.path(), &Default::default())
            .unwrap();
        problems(Path::new("app.toml"), &config, &pays, &definitions, true)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-hook";

    #[test]
    fn a_simulated_shop_sends_webhooks_to_this_machine_only() {
        let hooks = format!(
            "[[webhooks]]\nurl = \"http://127.0.0.1:9000/hook\"\nsecret = \"{SECRET}\"\n\
             [[webhooks]]\nurl = \"https://erp.example.com/jit?token=abc123\"\nsecret = \"{SECRET}\"\n"
        );
        let simulated = problems_of(&format!("[gateway]\nsimulator = true\n{hooks}"));
        assert_eq!(simulated.len(), 1, "{simulated:?}");
        assert!(
            simulated[0].starts_with(
                "app.toml: webhooks[1].url: `https://erp.example.com/jit?token=***` is not on \
                 this machine, and payments are SIMULATED"
            ),
            "{simulated:?}"
        );
        // Not even a shared demo sends simulated payments out.
        let demo = problems_of(&format!(
            "[gateway]\nsimulator = true\nsimulator_public = true\n{hooks}"
        ));
        assert_eq!(demo.len(), 1, "{demo:?}");
        assert!(demo[0].contains("webhooks[1].url"), "{demo:?}");
        // A real gateway may notify a real endpoint.
        let real = problems_of(&format!(
            "[server]\npublic_base_url = \"https://shop.example.com\"\n\
             [gateway]\nbase_url = \"https://api.mch.weixin.qq.com\"\n{hooks}"
        ));
        assert!(real.is_empty(), "{real:?}");
        for problem in simulated.iter().chain(&demo) {
            assert!(
                !problem.contains(SECRET) && !problem.contains("abc123"),
                "{problem}"
            );
            // One sentence, as written: no run of blanks from a broken line continuation.
            assert!(!problem.contains("  "), "{problem}");
        }
    }

    #[test]
    fn a_simulated_shop_keeps_its_metrics_listener_on_this_machine() {
        let public = "[server]\nmetrics_listen = \"0.0.0.0:9090\"\nmetrics_listen_public = true\n";
        let simulated = problems_of(&format!("{public}[gateway]\nsimulator = true\n"));
        assert_eq!(simulated.len(), 1, "{simulated:?}");
        assert!(
            simulated[0].starts_with(
                "app.toml: server.metrics_listen: `0.0.0.0:9090` is not a loopback address, \
                 and payments are SIMULATED"
            ),
            "{simulated:?}"
        );
        let loopback = problems_of(
            "[server]\nmetrics_listen = \"127.0.0.1:9090\"\n[gateway]\nsimulator = true\n",
        );
        assert!(loopback.is_empty(), "{loopback:?}");
        let real = problems_of(&format!(
            "{public}public_base_url = \"https://shop.example.com\"\n\
             [gateway]\nbase_url = \"https://api.mch.weixin.qq.com\"\n"
        ));
        assert!(real.is_empty(), "{real:?}");
    }

    #[test]
    fn a_remote_gateway_needs_a_public_base_url_it_can_reach() {
        let gateway = "[gateway]\nbase_url = \"https://api.mch.weixin.qq.com\"\n";
        let unset = problems_of(gateway);
        let loopback = problems_of(&format!(
            "[server]\npublic_base_url = \"http://127.0.0.1:8080\"\n{gateway}"
        ));
        for (found, start) in [
            (&unset, "app.toml: server.public_base_url: is not set"),
            (
                &loopback,
                "app.toml: server.public_base_url: `http://127.0.0.1:8080` is a loopback URL",
            ),
        ] {
            let problem = found
                .iter()
                .find(|problem| problem.contains("public_base_url"))
                .unwrap_or_else(|| panic!("{found:?}"));
            assert!(problem.starts_with(start), "{problem}");
            assert!(
                problem.ends_with(
                    "set `[server] public_base_url` (or JIT_PUBLIC_BASE_URL) to the https:// \
                     address WeChat reaches this shop at"
                ),
                "{problem}"
            );
        }
    }

    #[test]
    fn examples_are_capped() {
        let names: Vec<String> = (1..=5).map(|n| format!("a.f{n}")).collect();
        assert_eq!(examples(&names), "`a.f1`, `a.f2`, `a.f3` and 2 more");
        assert_eq!(examples(&names[..1]), "`a.f1`");
    }
}
