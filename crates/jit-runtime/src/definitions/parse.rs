//! Reading one element: its `e.json` (shape errors carry the JSON path), the names it
//! declares, and its config file with `{{VAR}}` placeholders filled. Every problem is
//! collected; nothing here knows about other elements or layers.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::walk::{Found, SiblingFile};
use crate::element_def::{
    AccessModifier, ArgDecl, BackendLoadTime, BodyFormat, CacheLevel, ElementDef, FunctionDecl,
    default_true,
};
use crate::error::{LoadError, LoadErrorKind};
use crate::name::{FullName, is_valid_segment};
use crate::settings::EnvSource;

/// Folder names that do not count in a fullName.
const TRANSPARENT_DIRS: [&str; 2] = ["frontend", "backend"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawElement {
    title: Option<String>,
    #[serde(rename = "type")]
    type_name: Option<String>,
    backend_bundle_entry: Option<String>,
    front_bundle_entry: Option<String>,
    backend_load_time: Option<BackendLoadTime>,
    #[serde(default)]
    access_modifier: AccessModifier,
    cache_level: Option<CacheLevel>,
    #[serde(default)]
    function_list: Vec<RawFunction>,
    #[serde(default)]
    secret_keys: Vec<String>,
}

const ELEMENT_KEYS: [&str; 9] = [
    "title",
    "type",
    "backendBundleEntry",
    "frontBundleEntry",
    "backendLoadTime",
    "accessModifier",
    "cacheLevel",
    "functionList",
    "secretKeys",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFunction {
    name: String,
    title: Option<String>,
    #[serde(default)]
    args: Vec<ArgDecl>,
    return_type: Option<String>,
    #[serde(default = "default_true")]
    login_required: bool,
    #[serde(default)]
    body_format: BodyFormat,
}

const FUNCTION_KEYS: [&str; 6] = [
    "name",
    "title",
    "args",
    "returnType",
    "loginRequired",
    "bodyFormat",
];

/// An e.json parsed without a problem, before overrides are known.
pub(super) struct Parsed {
    pub(super) full_name: FullName,
    pub(super) type_name: Option<FullName>,
    raw: RawElement,
    extra: Map<String, Value>,
    function_extras: Vec<Map<String, Value>>,
    config: Option<Value>,
    pub(super) found: Found,
}

/// What reading one e.json came to; the problems went to the error list.
pub(super) enum ParseOutcome {
    /// Its folder gives no valid fullName: nothing can refer to it.
    Unnamed,
    /// It has a fullName but its content is broken, so references to it can say so.
    Broken(FullName),
    /// Parsed without a problem (boxed: it is large, and most outcomes are this one).
    Parsed(Box<Parsed>),
}

fn json_path_of(path: &serde_path_to_error::Path) -> Option<String> {
    let text = path.to_string();
    (text != "." && !text.is_empty()).then_some(text)
}

/// Parses one found e.json; problems go to `errors`. Keeps the name even when the
/// content is broken, so references to it can say so.
pub(super) fn parse_found(
    mut found: Found,
    env: &EnvSource,
    errors: &mut Vec<LoadError>,
) -> ParseOutcome {
    let segments: Vec<&str> = found
        .segments
        .iter()
        .map(String::as_str)
        .filter(|s| !TRANSPARENT_DIRS.contains(s))
        .collect();
    if segments.is_empty() {
        errors.push(LoadError::new(
            LoadErrorKind::InvalidName,
            &found.source,
            "an e.json must be inside an element folder, not at the layer root",
        ));
        return ParseOutcome::Unnamed;
    }
    if let Some(bad) = segments.iter().find(|s| !is_valid_segment(s)) {
        errors.push(LoadError::new(
            LoadErrorKind::InvalidName,
            &found.source,
            format!(
                "folder name `{bad}` is not a valid element name segment (letters, digits and `_`, not starting with a digit)"
            ),
        ));
        return ParseOutcome::Unnamed;
    }
    let full_name = match FullName::from_segments(&segments) {
        Ok(name) => name,
        Err(e) => {
            errors.push(LoadError::new(
                LoadErrorKind::InvalidName,
                &found.source,
                e.to_string(),
            ));
            return ParseOutcome::Unnamed;
        }
    };
    // The text is only needed here; the parsed definition keeps the values.
    let text = match std::mem::replace(&mut found.text, Ok(String::new())) {
        Ok(text) => text,
        Err(message) => {
            errors.push(LoadError::new(LoadErrorKind::Io, &found.source, message));
            return ParseOutcome::Broken(full_name);
        }
    };
    // One parse: syntax errors carry line and column; shape errors carry the JSON path.
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            errors.push(LoadError::new(
                LoadErrorKind::Parse,
                &found.source,
                "e.json must hold a JSON object",
            ));
            return ParseOutcome::Broken(full_name);
        }
        Err(e) => {
            errors.push(LoadError::new(
                LoadErrorKind::Parse,
                &found.source,
                e.to_string(),
            ));
            return ParseOutcome::Broken(full_name);
        }
    };
    let raw: RawElement = match serde_path_to_error::deserialize(&value) {
        Ok(raw) => raw,
        Err(e) => {
            let mut error =
                LoadError::new(LoadErrorKind::Parse, &found.source, e.inner().to_string());
            error.json_path = json_path_of(e.path());
            errors.push(error);
            return ParseOutcome::Broken(full_name);
        }
    };
    let before = errors.len();
    let type_name = match raw.type_name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => match FullName::new(t) {
            Ok(name) => Some(name),
            Err(e) => {
                errors.push(
                    LoadError::new(
                        LoadErrorKind::InvalidName,
                        &found.source,
                        format!("invalid type name: {e}"),
                    )
                    .at("type"),
                );
                None
            }
        },
    };
    let declared_twice = |what: &str, name: &str, at: String| {
        LoadError::new(
            LoadErrorKind::Parse,
            &found.source,
            format!("{what} `{name}` is declared twice"),
        )
        .at(at)
    };
    let mut seen = HashSet::new();
    for (i, function) in raw.function_list.iter().enumerate() {
        if !seen.insert(function.name.as_str()) {
            errors.push(declared_twice(
                "function",
                &function.name,
                format!("functionList[{i}].name"),
            ));
        }
        // A raw format hands the whole request to one argument: a second would never be
        // filled, and none would leave the function nothing to read.
        if function.body_format.takes_raw_request() && function.args.len() != 1 {
            errors.push(
                LoadError::new(
                    LoadErrorKind::Parse,
                    &found.source,
                    format!(
                        "function `{}` has `bodyFormat: {}`, which passes the request as one \
                         argument, but declares {} arguments; declare exactly one",
                        function.name,
                        function.body_format.as_str(),
                        function.args.len()
                    ),
                )
                .at(format!("functionList[{i}].args")),
            );
        }
        let mut args = HashSet::new();
        for (j, arg) in function.args.iter().enumerate() {
            if !args.insert(arg.name.as_str()) {
                errors.push(declared_twice(
                    "argument",
                    &arg.name,
                    format!("functionList[{i}].args[{j}].name"),
                ));
            }
        }
    }
    let mut object = match value {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let function_extras = match object.get("functionList") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(map) => map
                    .iter()
                    .filter(|(k, _)| !FUNCTION_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                _ => Map::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    object.retain(|k, _| !ELEMENT_KEYS.contains(&k.as_str()));
    let config = load_config(
        &found,
        &full_name,
        raw.front_bundle_entry.as_deref(),
        env,
        errors,
    );
    if errors.len() != before {
        return ParseOutcome::Broken(full_name);
    }
    ParseOutcome::Parsed(Box::new(Parsed {
        full_name,
        type_name,
        raw,
        extra: object,
        function_extras,
        config,
        found,
    }))
}

/// The element's config file, placeholders filled: the `.json` file `frontBundleEntry` names
/// (an error when missing or outside the folder), else `<lastSegment>.json`, else
/// `config.json`; `None` when there is none or it is broken (the problem goes to `errors`).
fn load_config(
    found: &Found,
    full_name: &FullName,
    front_bundle_entry: Option<&str>,
    env: &EnvSource,
    errors: &mut Vec<LoadError>,
) -> Option<Value> {
    let named = front_bundle_entry.filter(|entry| entry.ends_with(".json"));
    if let Some(entry) = named {
        let path = Path::new(entry);
        let escapes = path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if escapes {
            errors.push(
                LoadError::new(
                    LoadErrorKind::Config,
                    &found.source,
                    format!("config file `{entry}` named by frontBundleEntry must be inside the element folder"),
                )
                .at("frontBundleEntry"),
            );
            return None;
        }
    }
    let candidates: Vec<String> = match named {
        Some(entry) => vec![entry.to_owned()],
        None => vec![
            format!("{}.json", full_name.last_segment()),
            "config.json".to_owned(),
        ],
    };
    for candidate in &candidates {
        match found.read_sibling(candidate) {
            Ok(Some(SiblingFile { shown, text })) => {
                let filled = match env.fill_json(&text, &shown) {
                    Ok(filled) => filled,
                    Err(e) => {
                        errors.push(LoadError::new(
                            LoadErrorKind::MissingVariable,
                            &shown,
                            format!(
                                "environment variable `{}` used by placeholder {{{{{}}}}} is not set (in [env] of app.toml or the process environment)",
                                e.variable, e.variable
                            ),
                        ));
                        return None;
                    }
                };
                return match serde_json::from_str::<Value>(&filled) {
                    Ok(value) => Some(value),
                    Err(e) => {
                        // serde_json's syntax errors carry a position, never the content.
                        errors.push(LoadError::new(
                            LoadErrorKind::Config,
                            &shown,
                            format!("invalid JSON: {e}"),
                        ));
                        None
                    }
                };
            }
            Ok(None) => {}
            Err(message) => {
                errors.push(LoadError::new(LoadErrorKind::Io, &found.source, message));
                return None;
            }
        }
    }
    if let Some(entry) = named {
        errors.push(
            LoadError::new(
                LoadErrorKind::Config,
                &found.source,
                format!("config file `{entry}` named by frontBundleEntry does not exist"),
            )
            .at("frontBundleEntry"),
        );
    }
    None
}

impl Parsed {
    /// The definition, placed in layer `layer` over `overrides` (the lower-layer
    /// definition it replaces, if any).
    pub(super) fn into_def(self, layer: &str, overrides: Option<Arc<ElementDef>>) -> ElementDef {
        let Parsed {
            full_name,
            type_name,
            raw,
            extra,
            function_extras,
            config,
            found,
        } = self;
        let function_list = raw
            .function_list
            .into_iter()
            .zip(
                function_extras
                    .into_iter()
                    .chain(std::iter::repeat_with(Map::new)),
            )
            .map(|(f, extra)| FunctionDecl {
                name: f.name,
                title: f.title,
                args: f.args,
                return_type: f.return_type,
                login_required: f.login_required,
                body_format: f.body_format,
                extra,
            })
            .collect();
        ElementDef {
            full_name,
            type_name,
            title: raw.title,
            layer: layer.to_owned(),
            source: found.source,
            dir: found.dir,
            backend_bundle_entry: raw.backend_bundle_entry,
            front_bundle_entry: raw.front_bundle_entry,
            backend_load_time: raw.backend_load_time,
            access_modifier: raw.access_modifier,
            cache_level: raw.cache_level,
            function_list,
            secret_keys: raw.secret_keys,
            extra,
            config,
            overrides,
            chain_secret_keys: OnceLock::new(),
        }
    }
}
