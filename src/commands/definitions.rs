//! `jit check`, `jit ls`, `jit show`: definitions only, no database, no network.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use jit_runtime::{Chain, Definitions, Selector};

use crate::cli::LsArgs;
use crate::error::HostError;
use crate::host::{Host, display_dir};

/// `jit check`: every problem on its own line, non-zero exit when there is any.
///
/// Definitions (every e.json, config file and placeholder), native plugin headers, the
/// server configuration in app.toml (its placeholders included) and the start-up rules of
/// `jit serve` (`server::safety`) are all checked.
pub(crate) fn check(host: &Host, app_dir: &Path) -> Result<ExitCode, HostError> {
    let (problems, definitions) = check_app(host, app_dir);
    match definitions {
        Some(definitions) if problems.is_empty() => {
            let instances = definitions
                .iter()
                .filter(|chain| definitions.is_instance(chain))
                .count();
            let layers: Vec<&str> = definitions
                .layers()
                .iter()
                .map(|layer| layer.name.as_str())
                .collect();
            let settings = definitions.settings();
            println!(
                "ok: app {}/{} at {}: {} elements ({} instances) in {} layers ({})",
                settings.org,
                settings.name,
                display_dir(app_dir).display(),
                definitions.len(),
                instances,
                layers.len(),
                layers.join(" < "),
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            for problem in &problems {
                writeln!(stdout, "{problem}")?;
            }
            stdout.flush()?;
            eprintln!("error: {} problem(s) found", problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Every check `jit check` runs (the list is on [`check`]), each problem as `jit check`
/// prints it (`file: JSON path: message`), and the definitions when they loaded. The one
/// owner of those checks: `jit serve`'s reload runs exactly these on the new tree.
pub(crate) fn check_app(host: &Host, app_dir: &Path) -> (Vec<String>, Option<Definitions>) {
    let mut problems: Vec<String> = Vec::new();
    let definitions = match host.load_definitions(app_dir) {
        Ok(definitions) => {
            // What `serve` refuses to start with: merchant settings WeChat would refuse on
            // every call.
            if host.has_official_families()
                && let Err(errors) = jit_pays::check_merchant_settings(&definitions)
            {
                problems.extend(errors.iter().map(ToString::to_string));
            }
            // Native plugins' headers are read from their files: no library is loaded, so
            // none of their code runs, not even their initialisers (`jit serve` loads them).
            let plugins = match jit_plugin_host::inspect_plugins(&definitions) {
                Ok(plugins) => plugins,
                Err(errors) => {
                    let errors: jit_runtime::LoadErrors = errors.into();
                    problems.extend(errors.iter().map(ToString::to_string));
                    Vec::new()
                }
            };
            // What `serve` would refuse: an element nothing in this host can build. The
            // runtime decides (`AppBuilder::build` lists the rules), with every loader
            // `serve` registers.
            // Native plugins are expected loaders: `check` does not load their libraries.
            let builder = jit_plugin_host::expect_plugin_loaders(
                host.definitions_builder(app_dir),
                plugins.iter().map(|(spec, _)| spec),
            );
            // What this host's own registrations (Rust services) say about the app.
            problems.extend(
                host.registration_problems(&definitions)
                    .iter()
                    .map(ToString::to_string),
            );
            match builder.definitions(definitions).check() {
                Ok(definitions) => Some(definitions),
                Err(errors) => {
                    problems.extend(errors.iter().map(ToString::to_string));
                    None
                }
            }
        }
        Err(errors) => {
            problems.extend(errors.iter().map(ToString::to_string));
            None
        }
    };
    match host.resolve_serve_config(app_dir, &Default::default()) {
        // The rules `serve` refuses to start on (gateway, loopback, tokens).
        Ok((_, config, pays)) => {
            if let Some(definitions) = &definitions {
                let broken = crate::server::safety::problems(
                    &app_dir.join("app.toml"),
                    &config,
                    &pays,
                    definitions,
                    host.has_official_families(),
                );
                problems.extend(broken.iter().map(ToString::to_string));
            }
        }
        // An unreadable or malformed app.toml is already reported with the definitions.
        Err(HostError::Load(_)) => {}
        Err(err) => problems.push(err.to_string()),
    }
    (problems, definitions)
}

/// `jit ls`: the element tree, each element with its chain and layer; with `--find`, only
/// the elements the selector matches (and the folders above them).
pub(crate) fn ls(host: &Host, args: &LsArgs) -> Result<ExitCode, HostError> {
    let definitions = host.load_definitions(&args.app.app)?;
    let shown: Vec<&Chain> = match &args.find {
        None => definitions.listed().collect(),
        Some(text) => {
            let selector = Selector::parse(text)
                .map_err(|err| HostError::command(format!("--find {text:?}: {err}")))?;
            let found = definitions.select(&selector);
            if found.is_empty() {
                eprintln!("no element matches {text:?}");
            }
            found
        }
    };
    print!("{}", render_tree(&definitions, &shown));
    Ok(ExitCode::SUCCESS)
}

/// `jit show FULLNAME`: the resolved definition as pretty JSON, secrets masked.
pub(crate) fn show(host: &Host, app_dir: &Path, full_name: &str) -> Result<ExitCode, HostError> {
    let definitions = host.load_definitions(app_dir)?;
    let Some(chain) = definitions.chain(full_name) else {
        let hint = definitions
            .suggest(full_name)
            .map(|name| format!(" (did you mean `{name}`?)"))
            .unwrap_or_default();
        return Err(HostError::command(format!(
            "no element `{full_name}` in the app{hint}; `jit ls` lists them"
        )));
    };
    let mut shown = chain.to_json_masked();
    // A pay instance's merchant as its element resolves it (key masked), and where each
    // value comes from: e.json and the config file may both set it.
    if host.has_official_families()
        && let (Some(merchant), Some(object)) = (
            jit_pays::shown_merchant_settings(chain),
            shown.as_object_mut(),
        )
    {
        object.insert("merchantSettings".to_owned(), merchant);
    }
    let text = serde_json::to_string_pretty(&shown)
        .map_err(|err| HostError::command_caused("cannot print the definition", err))?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// One line per folder and element of `shown` (listed chains, sorted by fullName), indented
/// by depth; an element above a shown one that is not shown itself prints as a folder:
///
/// ```text
/// pays
///   Meta              pays.Meta                                          [framework]
///   myWechatPay       pays.myWechatPay → pays.WechatPayType → pays.Meta  [shop]
/// ```
pub(crate) fn render_tree(definitions: &Definitions, shown: &[&Chain]) -> String {
    struct Row {
        label: String,
        chain: String,
        layer: String,
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let shown_names: std::collections::HashSet<&str> = shown
        .iter()
        .map(|chain| chain.element().full_name.as_str())
        .collect();
    for chain in shown {
        let def = chain.element();
        let segments: Vec<&str> = def.full_name.as_str().split('.').collect();
        let (leaf, parents) = segments.split_last().expect("a fullName has a segment");
        // Folders already printed that are a prefix of this name stay open.
        let common = open
            .iter()
            .zip(parents.iter())
            .take_while(|(open, segment)| open == segment)
            .count();
        open.truncate(common);
        for (depth, segment) in parents.iter().enumerate().skip(common) {
            // A folder that is itself an element prints as that element below; otherwise
            // as a plain folder row.
            let prefix = parents[..=depth].join(".");
            if !shown_names.contains(prefix.as_str()) {
                rows.push(Row {
                    label: format!("{}{segment}", "  ".repeat(depth)),
                    chain: String::new(),
                    layer: String::new(),
                });
            }
            open.push((*segment).to_owned());
        }
        let mut layer = def.layer.clone();
        if let Some(overridden) = &def.overrides {
            layer.push_str(&format!(", overrides {}", overridden.layer));
        }
        let kind = definitions.kind(chain).label();
        rows.push(Row {
            label: format!("{}{leaf}", "  ".repeat(parents.len())),
            chain: chain.to_string(),
            layer: format!("[{kind}; {layer}]"),
        });
    }
    let label_width = rows
        .iter()
        .map(|row| row.label.chars().count())
        .max()
        .unwrap_or(0);
    let chain_width = rows
        .iter()
        .map(|row| row.chain.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for row in rows {
        if row.chain.is_empty() {
            out.push_str(&row.label);
        } else {
            let label_pad = label_width - row.label.chars().count();
            let chain_pad = chain_width - row.chain.chars().count();
            out.push_str(&format!(
                "{}{}  {}{}  {}",
                row.label,
                " ".repeat(label_pad),
                row.chain,
                " ".repeat(chain_pad),
                row.layer
            ));
        }
        out.push('\n');
    }
    out
}
