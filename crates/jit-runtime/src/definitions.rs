//! Loading an app's definitions: walk the layers, parse every e.json and config file,
//! apply overrides, resolve each `type` chain, and collect every problem on the way.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use include_dir::Dir;
use parking_lot::{Condvar, Mutex};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::chain::Chain;
use crate::def::{
    AccessModifier, ArgDecl, BackendLoadTime, ElementDef, FunctionDecl, default_true,
};
use crate::error::{LoadError, LoadErrorKind, LoadErrors, PlaceholderError};
use crate::name::{FullName, is_valid_segment};
use crate::settings::{AppSettings, EnvSource};

/// The layer name of the embedded framework layer.
pub const FRAMEWORK_LAYER: &str = "framework";

/// How embedded framework files are shown in errors and `source`.
pub const FRAMEWORK_PREFIX: &str = "<framework>";

/// Folder names that do not count in a fullName.
const TRANSPARENT_DIRS: [&str; 2] = ["frontend", "backend"];

/// One layer of the app, lowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `"framework"`, an extended app's name, or the app's name.
    pub name: String,
    /// Where its elements live (`<framework>` for the embedded layer).
    pub root: PathBuf,
}

struct Resolved {
    chain: Chain,
    layer_index: usize,
}

/// Every element of an app, with overrides applied and chains resolved. Immutable.
///
/// Produced by [`crate::AppBuilder::load_definitions`] (what `jit check`, `jit ls` and
/// `jit show` need) and held by a built [`crate::App`].
pub struct Definitions {
    settings: AppSettings,
    env: EnvSource,
    layers: Vec<Layer>,
    /// Every effective definition: the visible ones plus private lower-layer ones that a
    /// higher layer's same-named element hides (still on lower-layer chains).
    resolved: Vec<Resolved>,
    /// Visible elements by fullName (what `get_element` sees).
    by_name: HashMap<FullName, usize>,
    /// Visible elements sorted by fullName.
    sorted: Vec<usize>,
    /// fullNames some element names as its `type`.
    used_as_type: HashSet<FullName>,
    /// Visible elements by first name segment, for suggestions.
    families: HashMap<Box<str>, Vec<usize>>,
}

impl std::fmt::Debug for Definitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Definitions")
            .field("app", &self.settings.name)
            .field("layers", &self.layers)
            .field("elements", &self.sorted.len())
            .finish()
    }
}

impl Definitions {
    /// The app's settings (app.toml).
    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    /// The environment used for `{{VAR}}` placeholders.
    pub fn env(&self) -> &EnvSource {
        &self.env
    }

    /// The layers, lowest (framework) first, the app's own last.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The visible definition named `full_name`.
    pub fn get(&self, full_name: &str) -> Option<&Arc<ElementDef>> {
        self.chain(full_name).map(Chain::element)
    }

    /// The chain of the visible element named `full_name`.
    pub fn chain(&self, full_name: &str) -> Option<&Chain> {
        self.by_name
            .get(full_name)
            .map(|&i| &self.resolved[i].chain)
    }

    /// The chains of every visible element, sorted by fullName.
    pub fn iter(&self) -> impl Iterator<Item = &Chain> {
        self.sorted.iter().map(|&i| &self.resolved[i].chain)
    }

    /// The chains of every effective definition, including private lower-layer elements
    /// hidden by a same-named higher-layer element.
    pub fn iter_all(&self) -> impl Iterator<Item = &Chain> {
        self.resolved.iter().map(|r| &r.chain)
    }

    /// Number of visible elements.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the app has no element at all.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The index in [`Definitions::layers`] of the layer a visible element comes from.
    pub fn layer_index(&self, full_name: &str) -> Option<usize> {
        self.by_name
            .get(full_name)
            .map(|&i| self.resolved[i].layer_index)
    }

    /// Whether some element names `full_name` as its `type` (i.e. it acts as a Type or Meta).
    pub fn is_used_as_type(&self, full_name: &str) -> bool {
        self.used_as_type.contains(full_name)
    }

    /// Every visible element whose chain contains `type_name`, other than `type_name`
    /// itself, sorted by fullName.
    pub fn find_elements(&self, type_name: &str) -> Vec<&Arc<ElementDef>> {
        self.iter()
            .filter(|chain| {
                chain.element().full_name.as_str() != type_name && chain.contains(type_name)
            })
            .map(Chain::element)
            .collect()
    }

    /// The visible fullName closest to `name`, if any is close enough to suggest.
    ///
    /// Only names of the same family (first segment) and of similar length are compared,
    /// none when the family is very large: a miss must stay cheap.
    pub fn suggest(&self, name: &str) -> Option<String> {
        const MAX_CANDIDATES: usize = 2_000;
        let family = name.split('.').next().unwrap_or(name);
        let members = self.families.get(family)?;
        if members.len() > MAX_CANDIDATES {
            return None;
        }
        suggest(
            name,
            members
                .iter()
                .map(|&i| self.resolved[i].chain.element().full_name.as_str())
                .filter(|candidate| candidate.len().abs_diff(name.len()) <= 3),
        )
    }

    /// Fills `{{VAR}}` placeholders in `text` (from the process environment, then
    /// [`crate::AppBuilder::env`], then app.toml `[env]`); `source` names the file in errors.
    pub fn fill_placeholders(&self, text: &str, source: &Path) -> Result<String, PlaceholderError> {
        self.env.fill(text, source)
    }
}

pub(crate) fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c.to_owned())
}

/// Where a layer's files come from.
pub(crate) enum LayerSource {
    Embedded(Vec<&'static Dir<'static>>),
    Disk(PathBuf),
}

/// One e.json found by the walk.
struct Found {
    /// Folder path segments relative to the layer root.
    segments: Vec<String>,
    /// The e.json as shown in errors.
    source: PathBuf,
    /// The element folder on disk.
    dir: Option<PathBuf>,
    /// The e.json text, or why it could not be read; taken by `parse_found`.
    text: Result<String, String>,
    /// The element folder in the embedded framework layer.
    embedded_dir: Option<&'static Dir<'static>>,
}

impl Found {
    /// Reads a file of the element folder by relative path (shown path, text); `Ok(None)`
    /// when it does not exist.
    fn read_sibling(&self, relative: &str) -> Result<Option<(PathBuf, String)>, String> {
        let relative = relative.trim_start_matches("./");
        let shown = self
            .source
            .parent()
            .map_or_else(|| PathBuf::from(relative), |p| p.join(relative));
        if let Some(dir) = &self.dir {
            let path = dir.join(relative);
            match read_small_file(&path) {
                Ok(text) => Ok(Some((shown, text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", shown.display())),
            }
        } else if let Some(dir) = self.embedded_dir {
            match dir.get_file(dir.path().join(relative)) {
                Some(file) => match file.contents_utf8() {
                    Some(text) => Ok(Some((shown, text.to_owned()))),
                    None => Err(format!("{} is not UTF-8", shown.display())),
                },
                None => Ok(None),
            }
        } else {
            Ok(None)
        }
    }
}

/// Reads a UTF-8 file. Unlike `fs::read_to_string` it asks for no metadata first: element
/// files are small, and with ten thousand of them the extra system call shows.
fn read_small_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    // Grows to the exact size for files under one chunk; kept texts waste no capacity.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// Folders still to read, shared by the walking threads.
struct WorkQueue {
    /// Folders waiting, and folders waiting or being read (the walk ends at zero).
    state: Mutex<(Vec<PathBuf>, usize)>,
    changed: Condvar,
}

impl WorkQueue {
    fn new(root: PathBuf) -> Self {
        Self {
            state: Mutex::new((vec![root], 1)),
            changed: Condvar::new(),
        }
    }

    /// The next folder to read; `None` once every folder has been read.
    fn next(&self) -> Option<PathBuf> {
        let mut state = self.state.lock();
        loop {
            if let Some(dir) = state.0.pop() {
                return Some(dir);
            }
            if state.1 == 0 {
                return None;
            }
            self.changed.wait(&mut state);
        }
    }

    /// Marks one folder read and queues its subfolders.
    fn finish(&self, subdirs: Vec<PathBuf>) {
        let mut state = self.state.lock();
        state.1 = state.1 + subdirs.len() - 1;
        let wake = !subdirs.is_empty() || state.1 == 0;
        state.0.extend(subdirs);
        drop(state);
        if wake {
            self.changed.notify_all();
        }
    }
}

type ParseOutcome = (Option<FullName>, Option<Parsed>);

/// Walks a layer folder and parses every element in it, on all cores: the work is mostly
/// system calls (one directory read per folder, one file read per e.json and config file),
/// which overlap well. Results come back sorted by e.json path, so output is stable.
fn read_disk_layer(root: &Path, env: &EnvSource, errors: &mut Vec<LoadError>) -> Vec<ParseOutcome> {
    if !root.is_dir() {
        return Vec::new();
    }
    let queue = WorkQueue::new(root.to_path_buf());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut results: Vec<(PathBuf, ParseOutcome)> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut outcomes = Vec::new();
                    let mut problems = Vec::new();
                    while let Some(dir) = queue.next() {
                        let mut subdirs = Vec::new();
                        let mut has_element = false;
                        match std::fs::read_dir(&dir) {
                            Ok(entries) => {
                                for entry in entries {
                                    let entry = match entry {
                                        Ok(entry) => entry,
                                        Err(e) => {
                                            problems.push(LoadError::new(
                                                LoadErrorKind::Io,
                                                &dir,
                                                format!("cannot read folder: {e}"),
                                            ));
                                            continue;
                                        }
                                    };
                                    let name = entry.file_name();
                                    let Ok(kind) = entry.file_type() else {
                                        continue;
                                    };
                                    if kind.is_dir() {
                                        if !name.to_string_lossy().starts_with('.') {
                                            subdirs.push(entry.path());
                                        }
                                    } else if kind.is_file() && name == "e.json" {
                                        has_element = true;
                                    }
                                }
                            }
                            Err(e) => problems.push(LoadError::new(
                                LoadErrorKind::Io,
                                &dir,
                                format!("cannot read folder: {e}"),
                            )),
                        }
                        queue.finish(subdirs);
                        if has_element {
                            let source = dir.join("e.json");
                            let segments = dir
                                .strip_prefix(root)
                                .unwrap_or(&dir)
                                .components()
                                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                                .collect();
                            let found = Found {
                                segments,
                                text: read_small_file(&source)
                                    .map_err(|e| format!("cannot read e.json: {e}")),
                                source: source.clone(),
                                dir: Some(dir),
                                embedded_dir: None,
                            };
                            outcomes.push((source, parse_found(found, env, &mut problems)));
                        }
                    }
                    (outcomes, problems)
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok((outcomes, problems)) => {
                    results.extend(outcomes);
                    errors.extend(problems);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results.into_iter().map(|(_, outcome)| outcome).collect()
}

fn walk_embedded(dir: &'static Dir<'static>, out: &mut Vec<Found>) {
    let e_json = dir.path().join("e.json");
    if let Some(file) = dir.get_file(&e_json) {
        let segments = dir
            .path()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        out.push(Found {
            segments,
            source: Path::new(FRAMEWORK_PREFIX).join(&e_json),
            dir: None,
            text: file
                .contents_utf8()
                .map(str::to_owned)
                .ok_or_else(|| "e.json is not UTF-8".to_owned()),
            embedded_dir: Some(dir),
        });
    }
    let mut subdirs: Vec<_> = dir.dirs().collect();
    subdirs.sort_by_key(|d| d.path());
    for sub in subdirs {
        if !sub
            .path()
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            walk_embedded(sub, out);
        }
    }
}

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
    #[serde(default)]
    function_list: Vec<RawFunction>,
    #[serde(default)]
    secret_keys: Vec<String>,
}

const ELEMENT_KEYS: [&str; 8] = [
    "title",
    "type",
    "backendBundleEntry",
    "frontBundleEntry",
    "backendLoadTime",
    "accessModifier",
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
}

const FUNCTION_KEYS: [&str; 5] = ["name", "title", "args", "returnType", "loginRequired"];

/// An e.json parsed, before overrides are known.
struct Parsed {
    full_name: FullName,
    type_name: Option<FullName>,
    raw: RawElement,
    extra: Map<String, Value>,
    function_extras: Vec<Map<String, Value>>,
    config: Option<Value>,
    found: Found,
}

fn json_path_of(path: &serde_path_to_error::Path) -> Option<String> {
    let text = path.to_string();
    (text != "." && !text.is_empty()).then_some(text)
}

/// Parses one found e.json; problems go to `errors`. Returns the name even when the
/// content is broken, so references to it can say so.
fn parse_found(
    mut found: Found,
    env: &EnvSource,
    errors: &mut Vec<LoadError>,
) -> (Option<FullName>, Option<Parsed>) {
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
        return (None, None);
    }
    if let Some(bad) = segments.iter().find(|s| !is_valid_segment(s)) {
        errors.push(LoadError::new(
            LoadErrorKind::InvalidName,
            &found.source,
            format!(
                "folder name `{bad}` is not a valid element name segment (letters, digits and `_`, not starting with a digit)"
            ),
        ));
        return (None, None);
    }
    let full_name = match FullName::from_segments(&segments) {
        Ok(name) => name,
        Err(e) => {
            errors.push(LoadError::new(
                LoadErrorKind::InvalidName,
                &found.source,
                e.to_string(),
            ));
            return (None, None);
        }
    };
    // The text is only needed here; the parsed definition keeps the values.
    let text = match std::mem::replace(&mut found.text, Ok(String::new())) {
        Ok(text) => text,
        Err(message) => {
            errors.push(LoadError::new(LoadErrorKind::Io, &found.source, message));
            return (Some(full_name), None);
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
            return (Some(full_name), None);
        }
        Err(e) => {
            errors.push(LoadError::new(
                LoadErrorKind::Parse,
                &found.source,
                e.to_string(),
            ));
            return (Some(full_name), None);
        }
    };
    let raw: RawElement = match serde_path_to_error::deserialize(&value) {
        Ok(raw) => raw,
        Err(e) => {
            let mut error =
                LoadError::new(LoadErrorKind::Parse, &found.source, e.inner().to_string());
            error.json_path = json_path_of(e.path());
            errors.push(error);
            return (Some(full_name), None);
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
    let mut seen = HashSet::new();
    for (i, function) in raw.function_list.iter().enumerate() {
        if !seen.insert(function.name.as_str()) {
            errors.push(
                LoadError::new(
                    LoadErrorKind::Parse,
                    &found.source,
                    format!("function `{}` is declared twice", function.name),
                )
                .at(format!("functionList[{i}].name")),
            );
        }
        let mut args = HashSet::new();
        for (j, arg) in function.args.iter().enumerate() {
            if !args.insert(arg.name.as_str()) {
                errors.push(
                    LoadError::new(
                        LoadErrorKind::Parse,
                        &found.source,
                        format!("argument `{}` is declared twice", arg.name),
                    )
                    .at(format!("functionList[{i}].args[{j}].name")),
                );
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
    let parsed = (errors.len() == before).then(|| Parsed {
        full_name: full_name.clone(),
        type_name,
        raw,
        extra: object,
        function_extras,
        config,
        found,
    });
    (Some(full_name), parsed)
}

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
            Ok(Some((shown, text))) => {
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

/// The apps `settings` extends, as layers from the lowest up: each extended app's own
/// `extends` come below it, and an app reached along two paths is one layer, at the place
/// of its first use (apps are told apart by their real paths). Returns each app's name
/// (its folder name when it has no app.toml) and dir. A missing dir and an `extends` cycle
/// are errors naming the app.toml that says so.
fn extended_apps(settings: &AppSettings, errors: &mut Vec<LoadError>) -> Vec<(String, PathBuf)> {
    fn visit(
        app: &AppSettings,
        path: &mut Vec<(PathBuf, PathBuf)>,
        placed: &mut HashSet<PathBuf>,
        out: &mut Vec<(String, PathBuf)>,
        errors: &mut Vec<LoadError>,
    ) {
        let file = app.dir.join("app.toml");
        for (i, dir) in app.extends.iter().enumerate() {
            let at = format!("app.extends[{i}]");
            // The same app can be spelled `.`, `../shop` or a symlink: compare real paths.
            let identity = dir.canonicalize().unwrap_or_else(|_| dir.clone());
            if let Some(start) = path.iter().position(|(seen, _)| *seen == identity) {
                let cycle: Vec<String> = path[start..]
                    .iter()
                    .map(|(_, shown)| shown)
                    .chain([dir])
                    .map(|p| p.display().to_string())
                    .collect();
                errors.push(
                    LoadError::new(
                        LoadErrorKind::Settings,
                        &file,
                        format!("apps extend each other in a cycle: {}", cycle.join(" → ")),
                    )
                    .at(at),
                );
                continue;
            }
            if placed.contains(&identity) {
                continue;
            }
            if !dir.is_dir() {
                errors.push(
                    LoadError::new(
                        LoadErrorKind::Settings,
                        &file,
                        format!("extended app dir {} does not exist", dir.display()),
                    )
                    .at(at),
                );
                continue;
            }
            let name = if dir.join("app.toml").is_file() {
                match AppSettings::load(dir, false) {
                    Ok(extended) => {
                        path.push((identity.clone(), dir.clone()));
                        visit(&extended, path, placed, out, errors);
                        path.pop();
                        extended.name
                    }
                    Err(e) => {
                        errors.extend(e);
                        continue;
                    }
                }
            } else {
                dir.file_name().map_or_else(
                    || dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            };
            placed.insert(identity);
            out.push((name, dir.clone()));
        }
    }
    let mut out = Vec::new();
    let own = settings
        .dir
        .canonicalize()
        .unwrap_or_else(|_| settings.dir.clone());
    visit(
        settings,
        &mut vec![(own, settings.dir.clone())],
        &mut HashSet::new(),
        &mut out,
        errors,
    );
    out
}

/// A run of definitions of one fullName where each overrides the previous; a `private`
/// top ends it and a higher layer's same name starts a new lineage.
struct Lineage {
    base_layer: usize,
    top: Arc<ElementDef>,
    top_layer: usize,
    node: usize,
}

pub(crate) fn load(
    app_dir: &Path,
    framework: &[&'static Dir<'static>],
    builder_env: HashMap<String, String>,
) -> Result<Definitions, LoadErrors> {
    let settings = AppSettings::load(app_dir, true).map_err(LoadErrors)?;
    let env = EnvSource::new(builder_env, settings.env.clone());
    let mut errors = Vec::new();

    let mut layers = vec![(
        Layer {
            name: FRAMEWORK_LAYER.to_owned(),
            root: PathBuf::from(FRAMEWORK_PREFIX),
        },
        LayerSource::Embedded(framework.to_vec()),
    )];
    for (name, dir) in extended_apps(&settings, &mut errors) {
        let root = dir.join("elements");
        layers.push((
            Layer {
                name,
                root: root.clone(),
            },
            LayerSource::Disk(root),
        ));
    }
    let own_root = app_dir.join("elements");
    layers.push((
        Layer {
            name: settings.name.clone(),
            root: own_root.clone(),
        },
        LayerSource::Disk(own_root),
    ));

    let mut lineages: HashMap<FullName, Vec<Lineage>> = HashMap::new();
    let mut nodes: Vec<(Arc<ElementDef>, usize)> = Vec::new();
    let mut broken: HashSet<FullName> = HashSet::new();

    for (layer_index, (layer, source)) in layers.iter().enumerate() {
        let outcomes = match source {
            LayerSource::Embedded(dirs) => {
                let mut found = Vec::new();
                for dir in dirs {
                    walk_embedded(dir, &mut found);
                }
                found
                    .into_iter()
                    .map(|item| parse_found(item, &env, &mut errors))
                    .collect()
            }
            LayerSource::Disk(root) => read_disk_layer(root, &env, &mut errors),
        };
        let mut in_layer: HashMap<FullName, PathBuf> = HashMap::new();
        for (name, parsed) in outcomes {
            let Some(name) = name else { continue };
            let Some(parsed) = parsed else {
                broken.insert(name);
                continue;
            };
            if let Some(first) = in_layer.get(&name) {
                errors.push(LoadError::new(
                    LoadErrorKind::Duplicate,
                    &parsed.found.source,
                    format!(
                        "`{name}` is defined twice in layer `{}` (also in {})",
                        layer.name,
                        first.display()
                    ),
                ));
                continue;
            }
            in_layer.insert(name.clone(), parsed.found.source.clone());
            let stack = lineages.entry(name.clone()).or_default();
            let overrides = match stack.last() {
                None => None,
                Some(last) => match last.top.access_modifier {
                    AccessModifier::Private => None,
                    AccessModifier::Protected => {
                        errors.push(LoadError::new(
                            LoadErrorKind::ProtectedOverride,
                            &parsed.found.source,
                            format!(
                                "`{name}` is protected in layer `{}` ({}) and cannot be overridden",
                                last.top.layer,
                                last.top.source.display()
                            ),
                        ));
                        continue;
                    }
                    AccessModifier::Public => Some(last.top.clone()),
                },
            };
            let def = Arc::new(build_def(parsed, &layer.name, overrides.clone()));
            match (overrides, stack.last_mut()) {
                (Some(_), Some(last)) => {
                    last.top = def.clone();
                    last.top_layer = layer_index;
                    nodes[last.node] = (def, layer_index);
                }
                _ => {
                    stack.push(Lineage {
                        base_layer: layer_index,
                        top: def.clone(),
                        top_layer: layer_index,
                        node: nodes.len(),
                    });
                    nodes.push((def, layer_index));
                }
            }
        }
    }

    let all_names: Vec<&str> = lineages.keys().map(FullName::as_str).collect();
    let layer_name = |i: usize| layers[i].0.name.as_str();

    // Each node's parent: Ok(Some(node)), Ok(None) for a Meta, Err(reason) when broken here.
    let mut used_as_type = HashSet::new();
    let parents: Vec<Result<Option<usize>, String>> = nodes
        .iter()
        .map(|(def, layer)| {
            let Some(type_name) = &def.type_name else {
                return Ok(None);
            };
            used_as_type.insert(type_name.clone());
            let problem = |kind, message: String| {
                LoadError::new(kind, &def.source, message).at("type")
            };
            let stack = lineages.get(type_name);
            let candidate = stack.and_then(|s| s.iter().rev().find(|l| l.base_layer <= *layer));
            match candidate {
                Some(lineage) => {
                    if lineage.top.access_modifier == AccessModifier::Private && lineage.top_layer < *layer {
                        let message = format!(
                            "type `{type_name}` is private to layer `{}` and cannot be used from layer `{}`",
                            layer_name(lineage.top_layer),
                            layer_name(*layer)
                        );
                        errors.push(problem(LoadErrorKind::PrivateType, message));
                        Err(format!("`{}` names the private type `{type_name}`", def.full_name))
                    } else {
                        Ok(Some(lineage.node))
                    }
                }
                None if broken.contains(type_name) => {
                    let message = format!(
                        "chain `{} → {type_name}` ends nowhere: `{type_name}` could not be loaded (see its own errors)",
                        def.full_name
                    );
                    errors.push(problem(LoadErrorKind::ChainEndsNowhere, message));
                    Err(format!("`{type_name}` could not be loaded"))
                }
                None => {
                    let mut message = format!("unknown type `{type_name}`");
                    if stack.is_some() {
                        message.push_str(&format!(
                            " in layer `{}` (it is only defined in a higher layer)",
                            layer_name(*layer)
                        ));
                    } else if let Some(s) = suggest(type_name.as_str(), all_names.iter().copied()) {
                        message.push_str(&format!(" (did you mean `{s}`?)"));
                    }
                    errors.push(problem(LoadErrorKind::UnknownType, message));
                    Err(format!("`{}` has the unknown type `{type_name}`", def.full_name))
                }
            }
        })
        .collect();

    // Walk every node to its Meta, marking cycles and chains that run into a broken node.
    #[derive(Clone)]
    enum State {
        New,
        OnPath,
        Ok,
        Broken { culprit: usize, why: String },
    }
    let mut state = vec![State::New; nodes.len()];
    for start in 0..nodes.len() {
        if !matches!(state[start], State::New) {
            continue;
        }
        let mut path = Vec::new();
        let mut current = start;
        let outcome = loop {
            match &state[current] {
                State::New => {
                    state[current] = State::OnPath;
                    path.push(current);
                    match &parents[current] {
                        Ok(None) => break State::Ok,
                        Ok(Some(parent)) => current = *parent,
                        Err(why) => {
                            path.pop();
                            let broken_state = State::Broken {
                                culprit: current,
                                why: why.clone(),
                            };
                            state[current] = broken_state.clone();
                            break broken_state;
                        }
                    }
                }
                State::OnPath => {
                    let at = path.iter().position(|&n| n == current).unwrap_or(0);
                    let mut cycle: Vec<usize> = path.split_off(at);
                    let first = (0..cycle.len())
                        .min_by(|&a, &b| {
                            nodes[cycle[a]]
                                .0
                                .full_name
                                .cmp(&nodes[cycle[b]].0.full_name)
                        })
                        .unwrap_or(0);
                    cycle.rotate_left(first);
                    let mut text: Vec<&str> = cycle
                        .iter()
                        .map(|&n| nodes[n].0.full_name.as_str())
                        .collect();
                    text.push(text[0]);
                    let text = text.join(" → ");
                    errors.push(
                        LoadError::new(
                            LoadErrorKind::Cycle,
                            &nodes[cycle[0]].0.source,
                            format!("type cycle: {text}"),
                        )
                        .at("type"),
                    );
                    let broken_state = State::Broken {
                        culprit: cycle[0],
                        why: format!("it runs into the type cycle {text}"),
                    };
                    for &n in &cycle {
                        state[n] = broken_state.clone();
                    }
                    break broken_state;
                }
                done @ (State::Ok | State::Broken { .. }) => break done.clone(),
            }
        };
        for &n in &path {
            if let State::Broken { culprit, why } = &outcome {
                let mut names = vec![nodes[n].0.full_name.as_str()];
                let mut walk = n;
                while walk != *culprit {
                    match &parents[walk] {
                        Ok(Some(parent)) => {
                            walk = *parent;
                            names.push(nodes[walk].0.full_name.as_str());
                        }
                        _ => break,
                    }
                }
                errors.push(
                    LoadError::new(
                        LoadErrorKind::ChainEndsNowhere,
                        &nodes[n].0.source,
                        format!("chain `{}` ends nowhere: {why}", names.join(" → ")),
                    )
                    .at("type"),
                );
            }
            state[n] = outcome.clone();
        }
    }

    if !errors.is_empty() {
        errors.sort_by(|a, b| {
            a.file
                .cmp(&b.file)
                .then_with(|| a.json_path.cmp(&b.json_path))
        });
        errors.dedup();
        return Err(LoadErrors(errors));
    }

    let mut resolved = Vec::with_capacity(nodes.len());
    for (i, (def, layer)) in nodes.iter().enumerate() {
        let mut chain = vec![def.clone()];
        let mut current = i;
        while let Ok(Some(parent)) = &parents[current] {
            current = *parent;
            chain.push(nodes[current].0.clone());
        }
        let mut keys: Vec<String> = Vec::new();
        for link in &chain {
            for key in &link.secret_keys {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        let _ = def.chain_secret_keys.set(keys.into());
        resolved.push(Resolved {
            chain: Chain(chain),
            layer_index: *layer,
        });
    }
    let mut by_name = HashMap::with_capacity(lineages.len());
    for (name, stack) in &lineages {
        if let Some(last) = stack.last() {
            by_name.insert(name.clone(), last.node);
        }
    }
    let mut sorted: Vec<usize> = by_name.values().copied().collect();
    sorted.sort_by(|&a, &b| nodes[a].0.full_name.cmp(&nodes[b].0.full_name));

    let mut families: HashMap<Box<str>, Vec<usize>> = HashMap::new();
    for &i in &sorted {
        let name = nodes[i].0.full_name.as_str();
        let family = name.split('.').next().unwrap_or(name);
        families.entry(family.into()).or_default().push(i);
    }

    Ok(Definitions {
        families,
        settings,
        env,
        layers: layers.into_iter().map(|(layer, _)| layer).collect(),
        resolved,
        by_name,
        sorted,
        used_as_type,
    })
}

fn build_def(parsed: Parsed, layer: &str, overrides: Option<Arc<ElementDef>>) -> ElementDef {
    let Parsed {
        full_name,
        type_name,
        raw,
        extra,
        function_extras,
        config,
        found,
    } = parsed;
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
        function_list,
        secret_keys: raw.secret_keys,
        extra,
        config,
        overrides,
        chain_secret_keys: OnceLock::new(),
    }
}
