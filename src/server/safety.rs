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
//! - With a gateway that is not on this machine, the public base URL (where WeChat sends
//!   notifies) is set and is not a loopback one.
//! - An app with `loginRequired` functions has at least one bearer token, and with a real
//!   gateway none of them is a token published in this repository's example apps.

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
                    "`{}` (from app.toml, JIT_LISTEN or --listen) is not a loopback address: {demo}",
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

    // WeChat posts payment notifies to the public base URL: a real gateway cannot reach a
    // loopback one (a gateway on this machine, a standalone simulator, can).
    if let Some(GatewayTarget::Remote(gateway)) = &pays.gateway
        && !is_loopback_url(gateway)
    {
        let reach = "WeChat sends payment notifies to {public_base_url}/api/…; set                      `[server] public_base_url` (or JIT_PUBLIC_BASE_URL) to the https://                      address WeChat reaches this shop at";
        match &config.public_base_url {
            None => problems.push(problem(
                "server.public_base_url",
                format!("is not set, and the gateway `{gateway}` is not on this machine: {reach}"),
            )),
            Some(url) if is_loopback_url(url) => problems.push(problem(
                "server.public_base_url",
                format!(
                    "`{url}` is a loopback URL, and the gateway `{gateway}` is not on this machine: {reach}"
                ),
            )),
            Some(_) => {}
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

    #[test]
    fn examples_are_capped() {
        let names: Vec<String> = (1..=5).map(|n| format!("a.f{n}")).collect();
        assert_eq!(examples(&names), "`a.f1`, `a.f2`, `a.f3` and 2 more");
        assert_eq!(examples(&names[..1]), "`a.f1`");
    }
}
