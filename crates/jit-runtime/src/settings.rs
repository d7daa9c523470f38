//! app.toml and `{{VAR}}` placeholders.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{LoadError, LoadErrorKind, PlaceholderError};

/// The app's `app.toml`:
///
/// ```toml
/// [app]
/// name = "shop"          # required
/// org = "acme"           # required for the app itself; optional in extended apps
/// extends = ["../base"]  # app dirs whose elements/ (and their own extends) form the
///                        # layers below this app's
///
/// [env]                  # values for {{VAR}} placeholders (the process environment wins)
/// WECHAT_MCH_ID = "1900000109"
///
/// [server]               # any other table is kept in `raw` for the host
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AppSettings {
    /// `[app] name`.
    pub name: String,
    /// `[app] org` (empty when an extended app leaves it out).
    pub org: String,
    /// `[app] extends`, resolved against the app dir, in order (lowest layer first).
    pub extends: Vec<PathBuf>,
    /// `[env]`.
    pub env: BTreeMap<String, String>,
    /// The app dir (holding app.toml and elements/).
    pub dir: PathBuf,
    /// The whole file, for tables the runtime does not read (`[server]`, `[database]`, ...).
    pub raw: toml::Table,
}

impl AppSettings {
    /// Reads `<dir>/app.toml`. `require_org`: the app itself must name its org; extended
    /// apps need not.
    pub fn load(dir: &Path, require_org: bool) -> Result<Self, Vec<LoadError>> {
        let file = dir.join("app.toml");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            vec![LoadError::new(
                LoadErrorKind::Settings,
                &file,
                format!("cannot read app.toml: {e}"),
            )]
        })?;
        Self::parse(&text, dir, &file, require_org)
    }

    /// Parses app.toml text; `file` is only used in errors.
    pub fn parse(
        text: &str,
        dir: &Path,
        file: &Path,
        require_org: bool,
    ) -> Result<Self, Vec<LoadError>> {
        let raw: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            vec![LoadError::new(
                LoadErrorKind::Settings,
                file,
                format!("invalid TOML: {}", e.message()),
            )]
        })?;
        let mut errors = Vec::new();
        let err = |path: &str, message: String| {
            LoadError::new(LoadErrorKind::Settings, file, message).at(path)
        };
        let app = match raw.get("app") {
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => {
                errors.push(err("app", "must be a table".into()));
                None
            }
            None => {
                errors.push(err("app", "missing [app] table".into()));
                None
            }
        };
        let string_key = |key: &str, required: bool, errors: &mut Vec<LoadError>| -> String {
            match app.and_then(|t| t.get(key)) {
                Some(toml::Value::String(s)) if !s.trim().is_empty() => s.clone(),
                Some(toml::Value::String(_)) | None if !required => String::new(),
                Some(toml::Value::String(_)) => {
                    errors.push(err(&format!("app.{key}"), "must not be empty".into()));
                    String::new()
                }
                Some(_) => {
                    errors.push(err(&format!("app.{key}"), "must be a string".into()));
                    String::new()
                }
                None => {
                    if app.is_some() {
                        errors.push(err(&format!("app.{key}"), "missing".into()));
                    }
                    String::new()
                }
            }
        };
        let name = string_key("name", true, &mut errors);
        let org = string_key("org", require_org, &mut errors);
        let mut extends = Vec::new();
        match app.and_then(|t| t.get("extends")) {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        toml::Value::String(s) => extends.push(normalize(&dir.join(s))),
                        _ => errors.push(err(
                            &format!("app.extends[{i}]"),
                            "must be a string (an app dir)".into(),
                        )),
                    }
                }
            }
            Some(_) => errors.push(err("app.extends", "must be an array of app dirs".into())),
        }
        let mut env = BTreeMap::new();
        match raw.get("env") {
            None => {}
            Some(toml::Value::Table(t)) => {
                for (key, value) in t {
                    match value {
                        toml::Value::String(s) => {
                            env.insert(key.clone(), s.clone());
                        }
                        toml::Value::Integer(i) => {
                            env.insert(key.clone(), i.to_string());
                        }
                        toml::Value::Boolean(b) => {
                            env.insert(key.clone(), b.to_string());
                        }
                        _ => errors.push(err(
                            &format!("env.{key}"),
                            "must be a string, integer or boolean".into(),
                        )),
                    }
                }
            }
            Some(_) => errors.push(err("env", "must be a table".into())),
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            name,
            org,
            extends,
            env,
            dir: dir.to_path_buf(),
            raw,
        })
    }
}

/// Removes `.` and `a/..` from a path without touching the file system, so paths in
/// messages read `/apps/base/...` rather than `/apps/shop/../base/...`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Where `{{VAR}}` values come from: the process environment first, then values given to
/// [`crate::AppBuilder::env`], then app.toml `[env]`.
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    builder: HashMap<String, String>,
    file: BTreeMap<String, String>,
}

impl EnvSource {
    /// A source over builder-given vars and app.toml `[env]`.
    pub fn new(builder: HashMap<String, String>, file: BTreeMap<String, String>) -> Self {
        Self { builder, file }
    }

    /// The value of `name`, if set anywhere.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.builder.get(name).cloned())
            .or_else(|| self.file.get(name).cloned())
    }

    /// Fills every `{{VAR}}` in `text` (spaces inside the braces are allowed; `VAR` is
    /// `[A-Za-z_][A-Za-z0-9_]*`, anything else is left as written). The error names the
    /// variable and `source`, never a value.
    pub fn fill(&self, text: &str, source: &Path) -> Result<String, PlaceholderError> {
        fill_placeholders(text, source, |name| self.get(name), |v| v.to_owned())
    }

    /// Like [`EnvSource::fill`], but escapes each value for use inside a JSON string, so a
    /// secret holding `"` or `\` cannot break (or inject into) a JSON config file.
    pub fn fill_json(&self, text: &str, source: &Path) -> Result<String, PlaceholderError> {
        fill_placeholders(text, source, |name| self.get(name), escape_json_str)
    }

    /// Every variable name referenced by a placeholder in `text`.
    pub fn placeholders(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        for_each_placeholder(text, |_, name| names.push(name.to_owned()));
        names
    }
}

fn escape_json_str(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Calls `f(range, name)` for each well-formed placeholder.
fn for_each_placeholder(text: &str, mut f: impl FnMut(std::ops::Range<usize>, &str)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = text[i..].find("{{") {
        let start = i + offset;
        let Some(close) = text[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + close + 2;
        let name = text[start + 2..start + 2 + close].trim();
        if crate::name::is_valid_segment(name) {
            f(start..end, name);
            i = end;
        } else {
            i = start + 1;
        }
        if i >= bytes.len() {
            break;
        }
    }
}

/// Fills `{{VAR}}` placeholders in `text` with `lookup(VAR)` passed through `encode`.
/// The first missing variable is an error naming it and `source`.
pub fn fill_placeholders(
    text: &str,
    source: &Path,
    lookup: impl Fn(&str) -> Option<String>,
    encode: impl Fn(&str) -> String,
) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut missing = None;
    for_each_placeholder(text, |range, name| {
        if missing.is_some() {
            return;
        }
        match lookup(name) {
            Some(value) => {
                out.push_str(&text[last..range.start]);
                out.push_str(&encode(&value));
                last = range.end;
            }
            None => missing = Some(name.to_owned()),
        }
    });
    if let Some(variable) = missing {
        return Err(PlaceholderError {
            variable,
            file: source.to_path_buf(),
        });
    }
    out.push_str(&text[last..]);
    Ok(out)
}
