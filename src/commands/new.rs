//! `jit new service FULLNAME`: a service element whose code is a native plugin, from the
//! template in `templates/service-plugin/` (embedded in the binary): the element's folder
//! with its e.json (a `services.NormalType` instance whose `backendBundleEntry` names the
//! library), and a plugin crate that builds that library. Nothing existing is overwritten.
//!
//! The template's `src/lib.rs` is also the source of the workspace crate
//! `crates/example-checkout-plugin`, so what this command writes is compiled and linted with
//! the workspace.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jit_runtime::FullName;

use crate::cli::{NewArgs, NewCommand, NewServiceArgs};
use crate::error::HostError;
use crate::host::{Host, display_dir};

/// The template's files, as `jit new service` renders them.
const CARGO_TOML: &str = include_str!("../../templates/service-plugin/Cargo.toml.in");
const E_JSON: &str = include_str!("../../templates/service-plugin/e.json.in");
const LIB_RS: &str = include_str!("../../templates/service-plugin/src/lib.rs");
const GITIGNORE: &str = include_str!("../../templates/service-plugin/.gitignore");

/// The jit source tree this binary was built from: its `crates/jit-plugin-api` is what a
/// plugin for this binary depends on, when the tree is still there.
const BUILT_FROM: &str = env!("CARGO_MANIFEST_DIR");

/// `jit new ...`.
pub(crate) fn new(host: &Host, args: NewArgs) -> Result<ExitCode, HostError> {
    match args.what {
        NewCommand::Service(args) => new_service(host, &args),
    }
}

/// How the plugin crate depends on `jit-plugin-api`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiSource {
    /// A jit source tree on disk (the crate is `<tree>/crates/jit-plugin-api`).
    Path(PathBuf),
    /// A git repository, at a revision when one is given.
    Git { url: String, rev: Option<String> },
}

impl ApiSource {
    /// From the command line: `--jit-git`, else `--jit-source`, else `built_from` (the tree
    /// this binary was built from) if it still exists.
    fn choose(args: &NewServiceArgs, built_from: &Path) -> Result<Self, HostError> {
        if let Some(url) = &args.jit_git {
            return Ok(Self::Git {
                url: url.clone(),
                rev: args.jit_rev.clone(),
            });
        }
        let (tree, given) = match &args.jit_source {
            Some(tree) => (tree.clone(), true),
            None => (built_from.to_path_buf(), false),
        };
        if tree.join("crates/jit-plugin-api/Cargo.toml").is_file() {
            return Ok(Self::Path(tree.canonicalize()?));
        }
        Err(HostError::command(if given {
            format!(
                "--jit-source {}: no jit source tree there (it has no crates/jit-plugin-api/Cargo.toml)",
                tree.display()
            )
        } else {
            format!(
                "the jit source tree this binary was built from ({}) is not there any more: \
                 give --jit-source PATH (a checkout of the same jit revision) or --jit-git URL \
                 [--jit-rev REV] for the plugin crate's jit-plugin-api dependency",
                tree.display()
            )
        }))
    }

    /// The dependency line of the crate's Cargo.toml.
    fn dependency_line(&self) -> String {
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        match self {
            Self::Path(tree) => format!(
                "jit-plugin-api = {{ path = {} }}",
                quoted(&tree.join("crates/jit-plugin-api").to_string_lossy())
            ),
            Self::Git { url, rev: None } => {
                format!("jit-plugin-api = {{ git = {} }}", quoted(url))
            }
            Self::Git {
                url,
                rev: Some(rev),
            } => format!(
                "jit-plugin-api = {{ git = {}, rev = {} }}",
                quoted(url),
                quoted(rev)
            ),
        }
    }
}

/// What `jit new service` writes, before anything is written.
#[derive(Debug)]
struct ServicePlan {
    full_name: FullName,
    crate_name: String,
    library: String,
    element_dir: PathBuf,
    crate_dir: PathBuf,
    files: Vec<(PathBuf, String)>,
}

fn new_service(host: &Host, args: &NewServiceArgs) -> Result<ExitCode, HostError> {
    let app_dir = &args.app.app;
    let full_name = FullName::new(&args.full_name).map_err(|error| {
        HostError::command(format!(
            "`{}` is not an element fullName: {error}",
            args.full_name
        ))
    })?;
    if !app_dir.join("app.toml").is_file() {
        return Err(HostError::command(format!(
            "{} is not an app: it has no app.toml (give --app DIR)",
            display_dir(app_dir).display()
        )));
    }
    // The name must be free in the app as it stands (its own elements, the layers it
    // extends, the host's framework layer).
    let definitions = host.load_definitions(app_dir).map_err(|errors| {
        HostError::command(format!(
            "the app in {} does not load, so `{full_name}` cannot be checked against it; fix \
             these first (`jit check`):\n{errors}",
            display_dir(app_dir).display()
        ))
    })?;
    if let Some(existing) = definitions.get(full_name.as_str()) {
        return Err(HostError::command(format!(
            "the app already has an element `{full_name}` ({})",
            existing.source.display()
        )));
    }
    let api = ApiSource::choose(args, Path::new(BUILT_FROM))?;
    let plan = plan_service(app_dir, full_name, args.crate_dir.as_deref(), &api);
    let existing: Vec<String> = plan
        .files
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(HostError::command(format!(
            "not overwriting what is there: {}",
            existing.join(", ")
        )));
    }
    for (path, content) in &plan.files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, content)?;
    }
    print!("{}", next_steps(&plan, app_dir));
    Ok(ExitCode::SUCCESS)
}

/// The files for `full_name`: the element's e.json under `<app>/elements/`, and the crate
/// in `crate_dir` (default `<app>/plugins/<crate name>`).
fn plan_service(
    app_dir: &Path,
    full_name: FullName,
    crate_dir: Option<&Path>,
    api: &ApiSource,
) -> ServicePlan {
    let crate_name = crate_name_for(full_name.last_segment());
    let library = format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let element_dir = full_name
        .as_str()
        .split('.')
        .fold(app_dir.join("elements"), |dir, segment| dir.join(segment));
    let crate_dir = crate_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| app_dir.join("plugins").join(&crate_name));
    let render = |template: &str| {
        template
            .replace("{{crate_name}}", &crate_name)
            .replace("{{full_name}}", full_name.as_str())
            .replace("{{title}}", full_name.last_segment())
            .replace("{{library}}", &library)
            .replace("{{jit_plugin_api}}", &api.dependency_line())
    };
    let files = vec![
        (element_dir.join("e.json"), render(E_JSON)),
        (crate_dir.join("Cargo.toml"), render(CARGO_TOML)),
        (crate_dir.join("src/lib.rs"), LIB_RS.to_owned()),
        (crate_dir.join(".gitignore"), GITIGNORE.to_owned()),
    ];
    ServicePlan {
        full_name,
        crate_name,
        library,
        element_dir,
        crate_dir,
        files,
    }
}

/// A Cargo package (and library) name for an element's last segment: `CheckoutSvc` →
/// `checkout_svc`. Segments are `[A-Za-z_][A-Za-z0-9_]*`, so the result is a valid name once
/// names Rust or Cargo reserve are avoided.
fn crate_name_for(segment: &str) -> String {
    let mut name = String::with_capacity(segment.len() + 4);
    let mut previous_lower = false;
    for character in segment.chars() {
        if character.is_ascii_uppercase() && previous_lower {
            name.push('_');
        }
        previous_lower = character.is_ascii_lowercase() || character.is_ascii_digit();
        name.push(character.to_ascii_lowercase());
    }
    const RESERVED: [&str; 8] = [
        "std",
        "core",
        "alloc",
        "test",
        "proc_macro",
        "self",
        "crate",
        "super",
    ];
    if RESERVED.contains(&name.as_str()) || name.starts_with('_') {
        name = format!("{}_plugin", name.trim_start_matches('_'));
    }
    name
}

/// What the command prints once the files are written.
fn next_steps(plan: &ServicePlan, app_dir: &Path) -> String {
    let shown = |path: &Path| {
        path.strip_prefix(app_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    };
    let element_dir = shown(&plan.element_dir);
    let crate_dir = shown(&plan.crate_dir);
    let full_name = &plan.full_name;
    format!(
        "Created the service element `{full_name}`: {element_dir}/e.json\n\
         and its plugin crate `{crate_name}`: {crate_dir}/ (Cargo.toml, src/lib.rs)\n\
         \n\
         Next, from the app's folder ({app}):\n\
         \x20 1. build the plugin, with the same Rust compiler as this jit:\n\
         \x20      cargo build --release --manifest-path {crate_dir}/Cargo.toml\n\
         \x20 2. put the library into the element's folder:\n\
         \x20      cp {crate_dir}/target/release/{library} {element_dir}/\n\
         \x20    (or from $CARGO_TARGET_DIR/release/ when that is set)\n\
         \x20 3. check and serve:\n\
         \x20      jit check && jit serve\n\
         \x20 4. call it (a loginRequired function: send the app's token):\n\
         \x20      curl -X POST http://127.0.0.1:8080/api/<org>/<app>/{path}/checkout \\\n\
         \x20        -H 'Authorization: Bearer <token>' -H 'Content-Type: application/json' \\\n\
         \x20        -d '{{\"cartId\": \"demo-cart\"}}'\n\
         \n\
         Edit {crate_dir}/src/lib.rs for its code and {element_dir}/e.json for its functions\n\
         and settings (see docs/plugins.md).\n",
        crate_name = plan.crate_name,
        app = display_dir(app_dir).display(),
        library = plan.library,
        path = full_name.to_path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ServicePlan {
        plan_service(
            Path::new("/apps/shop"),
            FullName::new("shop.services.CheckoutSvc").expect("name"),
            None,
            &ApiSource::Path(PathBuf::from("/src/jit")),
        )
    }

    fn file<'p>(plan: &'p ServicePlan, relative: &str) -> &'p str {
        plan.files
            .iter()
            .find(|(path, _)| path.ends_with(relative))
            .map(|(_, content)| content.as_str())
            .unwrap_or_else(|| panic!("no {relative} planned"))
    }

    #[test]
    fn crate_names_follow_the_last_segment() {
        assert_eq!(crate_name_for("CheckoutSvc"), "checkout_svc");
        assert_eq!(crate_name_for("mySvc2Go"), "my_svc2_go");
        assert_eq!(crate_name_for("HTTPSvc"), "httpsvc");
        assert_eq!(crate_name_for("Test"), "test_plugin");
        assert_eq!(crate_name_for("_private"), "private_plugin");
    }

    #[test]
    fn the_element_and_the_crate_go_where_the_name_says() {
        let plan = plan();
        let paths: Vec<&Path> = plan.files.iter().map(|(path, _)| path.as_path()).collect();
        assert_eq!(
            paths,
            [
                Path::new("/apps/shop/elements/shop/services/CheckoutSvc/e.json"),
                Path::new("/apps/shop/plugins/checkout_svc/Cargo.toml"),
                Path::new("/apps/shop/plugins/checkout_svc/src/lib.rs"),
                Path::new("/apps/shop/plugins/checkout_svc/.gitignore"),
            ]
        );
        let elsewhere = plan_service(
            Path::new("/apps/shop"),
            FullName::new("shop.services.CheckoutSvc").expect("name"),
            Some(Path::new("/work/checkout")),
            &ApiSource::Path(PathBuf::from("/src/jit")),
        );
        assert_eq!(elsewhere.files[1].0, Path::new("/work/checkout/Cargo.toml"));
    }

    #[test]
    fn the_e_json_is_a_service_instance_naming_the_library() {
        let plan = plan();
        let e_json: serde_json::Value =
            serde_json::from_str(file(&plan, "e.json")).expect("e.json is JSON");
        assert_eq!(e_json["type"], "services.NormalType");
        assert_eq!(e_json["title"], "CheckoutSvc");
        assert_eq!(e_json["backendBundleEntry"], plan.library);
        assert!(jit_plugin_host::is_library_entry(&plan.library));
        assert!(plan.library.contains("checkout_svc"));
        assert_eq!(e_json["functionList"][0]["name"], "checkout");
        assert_eq!(e_json["functionList"][0]["args"][0]["name"], "cartId");
        for (path, content) in &plan.files {
            assert!(
                !content.contains("{{"),
                "{} left a placeholder",
                path.display()
            );
        }
    }

    fn args(jit_source: Option<&Path>, jit_git: Option<&str>) -> NewServiceArgs {
        NewServiceArgs {
            full_name: "shop.services.CheckoutSvc".into(),
            app: crate::cli::AppArg { app: ".".into() },
            crate_dir: None,
            jit_source: jit_source.map(Path::to_path_buf),
            jit_git: jit_git.map(str::to_owned),
            jit_rev: None,
        }
    }

    #[test]
    fn the_api_comes_from_the_source_tree_or_git_and_a_missing_tree_is_named() {
        let tree = Path::new(BUILT_FROM);
        let nowhere = Path::new("/nonexistent/jit");
        assert_eq!(
            ApiSource::choose(&args(None, None), tree).expect("the build tree"),
            ApiSource::Path(tree.canonicalize().expect("canonical"))
        );
        assert_eq!(
            ApiSource::choose(&args(Some(tree), None), nowhere).expect("--jit-source"),
            ApiSource::Path(tree.canonicalize().expect("canonical"))
        );
        assert_eq!(
            ApiSource::choose(&args(None, Some("https://example.com/jit")), nowhere)
                .expect("--jit-git"),
            ApiSource::Git {
                url: "https://example.com/jit".into(),
                rev: None
            }
        );
        let gone = ApiSource::choose(&args(None, None), nowhere)
            .expect_err("no tree")
            .to_string();
        assert!(
            gone.contains("(/nonexistent/jit) is not there any more: give --jit-source PATH"),
            "{gone}"
        );
        let wrong = ApiSource::choose(&args(Some(nowhere), None), tree)
            .expect_err("not a tree")
            .to_string();
        assert_eq!(
            wrong,
            "--jit-source /nonexistent/jit: no jit source tree there (it has no \
             crates/jit-plugin-api/Cargo.toml)"
        );
    }

    #[test]
    fn the_cargo_toml_builds_a_cdylib_against_the_chosen_api() {
        let plan = plan();
        let manifest: toml::Table = file(&plan, "Cargo.toml").parse().expect("TOML");
        assert_eq!(manifest["package"]["name"].as_str(), Some("checkout_svc"));
        assert_eq!(
            manifest["lib"]["crate-type"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(
            manifest["dependencies"]["jit-plugin-api"]["path"].as_str(),
            Some("/src/jit/crates/jit-plugin-api")
        );
        assert!(manifest.contains_key("workspace"), "a workspace of its own");
        assert_eq!(file(&plan, "src/lib.rs"), LIB_RS);

        let git = ApiSource::Git {
            url: "https://github.com/jit-elements/jit".into(),
            rev: Some("v0.1.0".into()),
        };
        let line: toml::Table = git.dependency_line().parse().expect("TOML");
        assert_eq!(
            line["jit-plugin-api"]["git"].as_str(),
            Some("https://github.com/jit-elements/jit")
        );
        assert_eq!(line["jit-plugin-api"]["rev"].as_str(), Some("v0.1.0"));
    }
}
