//! A pay instance's merchant settings, wherever its Type: the one place that knows where a
//! setting is looked up along the chain, how a bad one is reported, and the settings every
//! WeChat Pay Type shares (appId, mchId). Each Type lists its own keys as
//! [`SettingRule`]s and resolves them here; V2's (`crate::wechat_pay_type`) and V3's
//! (`crate::wechat_pay_v3_type`) configurations are built on this.
//!
//! # Where a value comes from
//!
//! Along the chain, nearest element first; in each element, its config file's `config`
//! object (the seed's layout), then the config file's top level, then e.json's own keys. So
//! the instance's config file wins over its e.json, which wins over its Type's. The seed's
//! own example sets the three keys in e.json (with `"apiKey": "your_api_key_here"`) and in
//! the config file; the config file's values are the ones used, and only those are checked.
//!
//! # Files a setting names
//!
//! Key and certificate files (V2's merchant certificate, V3's private key and WeChat Pay
//! public key) are [`SettingFile`]s: a relative path is relative to the app folder (the
//! folder of app.toml) of the layer whose file sets it; [`read_setting_file`] reads one,
//! every problem naming the setting's file and JSON path.

use std::fmt;
use std::path::{Path, PathBuf};

use jit_runtime::{Chain, ElementDef, ElementError, LoadError, LoadErrorKind, LoadErrors};
use serde_json::{Map, Value};

/// One merchant setting whose value is text: its key, whether its value is secret, and
/// what a usable value looks like. Each Type lists its own.
pub(crate) struct SettingRule {
    /// The key (`appId`).
    pub key: &'static str,
    /// Whether its value is secret (never shown).
    pub secret: bool,
    /// `Err(what a usable value is)` when `value` is not one.
    pub accepts: fn(&str) -> Result<(), &'static str>,
}

/// `appId`: the AppID of the WeChat account (every Type's).
pub(crate) const APP_ID_SETTING: SettingRule = SettingRule {
    key: "appId",
    secret: false,
    accepts: |value| {
        let hex = value.strip_prefix("wx").unwrap_or_default();
        if value.len() == 18
            && hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(())
        } else {
            Err(
                "the AppID of the WeChat account: `wx` and 16 lower-case hexadecimal \
                     characters",
            )
        }
    },
};

/// `mchId`: the merchant id (every Type's).
pub(crate) const MCH_ID_SETTING: SettingRule = SettingRule {
    key: "mchId",
    secret: false,
    accepts: |value| {
        if (8..=10).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err("the merchant id: 8 to 10 digits")
        }
    },
};

/// Where an effective setting was found: the file as shown in errors and the JSON path in
/// it (`config.mchId` in the config file, `mchId` in e.json).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingSource {
    /// The config file or e.json.
    pub file: PathBuf,
    /// The JSON path inside it.
    pub json_path: String,
}

impl fmt::Display for SettingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.json_path)
    }
}

/// The config file of `def` as the runtime shows it in errors: `frontBundleEntry` when it
/// names a `.json` file, else `<last segment>.json`, else `config.json` (the runtime's
/// rule, `jit_runtime` docs "Names and layout"; the runtime does not keep the path).
pub(crate) fn config_file(def: &ElementDef) -> PathBuf {
    let named = def
        .front_bundle_entry
        .as_deref()
        .filter(|entry| entry.ends_with(".json"))
        .map(|entry| entry.trim_start_matches("./").to_owned());
    let file = named.unwrap_or_else(|| {
        // Where there is none yet, the name to create is the element's own.
        let own = format!("{}.json", def.full_name.last_segment());
        let exists = |name: &str| def.dir.as_ref().is_some_and(|dir| dir.join(name).is_file());
        if !exists(&own) && exists("config.json") {
            "config.json".to_owned()
        } else {
            own
        }
    });
    def.source
        .parent()
        .map_or_else(|| PathBuf::from(&file), |dir| dir.join(&file))
}

/// The effective value of `key` on `chain` and where it is, nearest element first.
pub(crate) fn find_setting<'a>(chain: &'a Chain, key: &str) -> Option<(&'a Value, SettingSource)> {
    find_setting_in(chain, key).map(|(value, source, _)| (value, source))
}

/// [`find_setting`], with the element whose file sets it.
pub(crate) fn find_setting_in<'a>(
    chain: &'a Chain,
    key: &str,
) -> Option<(&'a Value, SettingSource, &'a ElementDef)> {
    chain.iter().find_map(|def| {
        if let Some(config) = def.config.as_ref() {
            if let Some(value) = config.get("config").and_then(|inner| inner.get(key)) {
                return Some((value, at(config_file(def), format!("config.{key}")), &**def));
            }
            if let Some(value) = config.get(key) {
                return Some((value, at(config_file(def), key.to_owned()), &**def));
            }
        }
        def.extra
            .get(key)
            .map(|value| (value, at(def.source.clone(), key.to_owned()), &**def))
    })
}

/// The app folder (holding app.toml) of the layer `def` comes from: its folder is
/// `<app folder>/elements/<one folder per fullName segment>` (the runtime's layout).
/// `None` for the embedded framework layer, which has no folder.
pub(crate) fn app_folder(def: &ElementDef) -> Option<&Path> {
    let segments = def.full_name.as_str().split('.').count();
    def.dir.as_deref()?.ancestors().nth(segments + 1)
}

fn at(file: PathBuf, json_path: String) -> SettingSource {
    SettingSource { file, json_path }
}

/// One checked setting: its value, where it is, or the problem with it.
pub(crate) struct Resolved<'a> {
    /// The value, when it is a string.
    pub value: Option<&'a str>,
    /// Where it is, when it is set.
    pub source: Option<SettingSource>,
}

/// Resolves and checks each of `rules` for the instance at the head of `chain`, in their
/// order. Each problem names the file and JSON path; a secret value is never shown.
pub(crate) fn resolve<'a>(
    chain: &'a Chain,
    rules: &[SettingRule],
) -> (Vec<Resolved<'a>>, Vec<LoadError>) {
    let element = chain.element();
    let mut resolved = Vec::with_capacity(rules.len());
    let mut problems = Vec::new();
    for rule in rules {
        let key = rule.key;
        let Some((value, source)) = find_setting(chain, key) else {
            problems.push(missing_setting(element, key));
            resolved.push(Resolved {
                value: None,
                source: None,
            });
            continue;
        };
        let problem = match value.as_str() {
            None => Some(format!(
                "`{key}` must be a string, found {}",
                json_kind(value)
            )),
            Some(text) => (rule.accepts)(text).err().map(|expected| {
                let found = if rule.secret {
                    format!(
                        "{} characters; the value is not shown",
                        text.chars().count()
                    )
                } else {
                    format!("{text:?}")
                };
                format!("`{key}` must be {expected} (found {found})")
            }),
        };
        if let Some(message) = problem {
            problems.push(
                LoadError::new(LoadErrorKind::Config, source.file.clone(), message)
                    .at(source.json_path.clone()),
            );
        }
        resolved.push(Resolved {
            value: value.as_str(),
            source: Some(source),
        });
    }
    (resolved, problems)
}

/// The problem of a required setting `key` that `element` (an instance) does not have,
/// at the place to set it.
pub(crate) fn missing_setting(element: &ElementDef, key: &str) -> LoadError {
    let (file, json_path) = where_to_set(element, key);
    LoadError::new(
        LoadErrorKind::Config,
        file,
        format!(
            "`{key}` of WeChat Pay instance `{}` is missing: set it in {} under \"config\" (or \
             in e.json)",
            element.full_name,
            config_file(element)
                .file_name()
                .map_or_else(|| "its config file".into(), |name| name.to_string_lossy()),
        ),
    )
    .at(json_path)
}

/// Where `element` would set `key`: its config file's `config` object when it has a
/// config file, else its e.json.
pub(crate) fn where_to_set(element: &ElementDef, key: &str) -> (PathBuf, String) {
    match element.config {
        Some(_) => (config_file(element), format!("config.{key}")),
        None => (element.source.clone(), key.to_owned()),
    }
}

/// Adds each of `rules` as `jit show` shows a setting, `{"value", "from"}`, a secret's
/// value masked.
pub(crate) fn show_resolved(
    shown: &mut Map<String, Value>,
    rules: &[SettingRule],
    resolved: &[Resolved<'_>],
) {
    for (rule, setting) in rules.iter().zip(resolved) {
        let value = match setting.value {
            Some(_) if rule.secret => Value::String(jit_runtime::MASK.to_owned()),
            Some(text) => Value::String(text.to_owned()),
            None => Value::Null,
        };
        let from = setting
            .source
            .as_ref()
            .map_or(Value::Null, |source| Value::String(source.to_string()));
        shown.insert(
            rule.key.to_owned(),
            serde_json::json!({"value": value, "from": from}),
        );
    }
}

/// Adds `problems` to what `jit show` shows, as `"problems"`.
pub(crate) fn show_problems(shown: &mut Map<String, Value>, problems: &[LoadError]) {
    shown.insert(
        "problems".to_owned(),
        Value::Array(
            problems
                .iter()
                .map(|problem| Value::String(problem.to_string()))
                .collect(),
        ),
    );
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A problem with the setting at `source`.
pub(crate) fn config_problem(source: &SettingSource, message: String) -> LoadError {
    LoadError::new(LoadErrorKind::Config, source.file.clone(), message).at(source.json_path.clone())
}

/// Problems of an instance's settings as one [`ElementError::InvalidSetting`] (an
/// element's build): the keys, and every problem with its file and JSON path.
pub(crate) fn invalid_setting(errors: LoadErrors) -> ElementError {
    let key = errors
        .iter()
        .filter_map(|error| error.json_path.as_deref())
        .map(|path| path.rsplit('.').next().unwrap_or(path).to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    ElementError::InvalidSetting {
        key,
        message: errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Key and certificate files are a few kilobytes; a larger file is not one (and is not
/// read).
const MAX_SETTING_FILE_BYTES: u64 = 1024 * 1024;

/// One file a setting names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingFile {
    /// The setting's key (`certP12Path`, `privateKeyPath`, …).
    pub key: &'static str,
    /// The file: the setting's value, a relative one resolved against the app folder of
    /// the layer whose file sets it.
    pub path: PathBuf,
    /// Where the setting is.
    pub source: SettingSource,
}

/// `path` as given, or relative to `app_folder` when it is relative.
pub(crate) fn resolve_path(path: &str, app_folder: Option<&Path>) -> Option<PathBuf> {
    let path = Path::new(path);
    if path.is_absolute() {
        Some(path.to_owned())
    } else {
        app_folder.map(|folder| folder.join(path))
    }
}

/// The file the path setting `key` of the instance at the head of `chain` names: `None`
/// when it is not set, or the problem (not a string, empty, relative where there is no app
/// folder).
pub(crate) fn setting_file(
    chain: &Chain,
    key: &'static str,
) -> Option<Result<SettingFile, LoadError>> {
    let (value, source, def) = find_setting_in(chain, key)?;
    let text = match value.as_str() {
        Some(text) if !text.trim().is_empty() => text,
        Some(_) => {
            return Some(Err(config_problem(
                &source,
                format!("`{key}` is empty: it must be the path of a file"),
            )));
        }
        None => {
            return Some(Err(config_problem(
                &source,
                format!("`{key}` must be a string, found {}", json_kind(value)),
            )));
        }
    };
    Some(match resolve_path(text, app_folder(def)) {
        Some(path) => Ok(SettingFile { key, path, source }),
        None => Err(config_problem(
            &source,
            format!(
                "`{key}` is the relative path {text:?}, but the element that sets it has no \
                 app folder to resolve it in: use an absolute path"
            ),
        )),
    })
}

/// The bytes of `file`, or why they cannot be had (it does not exist, is no file, is too
/// large for a key or certificate, cannot be read).
pub(crate) fn read_setting_file(file: &SettingFile) -> Result<Vec<u8>, LoadError> {
    let SettingFile { key, path, source } = file;
    let shown = path.display();
    let problem = |message: String| config_problem(source, message);
    let metadata = std::fs::metadata(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "which does not exist".to_owned(),
            _ => format!("which cannot be read: {e}"),
        };
        problem(format!("`{key}` names {shown}, {why}"))
    })?;
    if !metadata.is_file() {
        return Err(problem(format!(
            "`{key}` names {shown}, which is not a file"
        )));
    }
    if metadata.len() > MAX_SETTING_FILE_BYTES {
        return Err(problem(format!(
            "`{key}` names {shown}, which is {} bytes: too large for a key or certificate file",
            metadata.len()
        )));
    }
    std::fs::read(path)
        .map_err(|e| problem(format!("`{key}` names {shown}, which cannot be read: {e}")))
}

/// The seed's own example sets appId, mchId and apiKey both in e.json and in the config
/// file. The config file wins; when the two disagree the e.json value is probably stale,
/// so say so once at build (a secret without its values), for each of `rules`.
pub(crate) fn warn_on_overridden_keys(element: &ElementDef, rules: &[SettingRule]) {
    let Some(config) = element.config.as_ref() else {
        return;
    };
    let config = config.get("config").unwrap_or(config);
    for rule in rules {
        let key = rule.key;
        let (Some(Value::String(in_config)), Some(Value::String(in_e_json))) =
            (config.get(key), element.extra.get(key))
        else {
            continue;
        };
        if in_config == in_e_json {
            continue;
        }
        if rule.secret {
            tracing::warn!(
                element = %element.full_name,
                e_json = %element.source.display(),
                "`{key}` in e.json differs from the config file's; the config file's is used \
                 (values not shown)"
            );
        } else {
            tracing::warn!(
                element = %element.full_name,
                e_json = %element.source.display(),
                "`{key}` in e.json ({}) differs from the config file's ({}); the config \
                 file's is used",
                jit_runtime::log_safe(in_e_json),
                jit_runtime::log_safe(in_config)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_the_app_folders() {
        let app = Path::new("/srv/shop");
        assert_eq!(
            resolve_path("certs/apiclient_cert.p12", Some(app)).unwrap(),
            Path::new("/srv/shop/certs/apiclient_cert.p12")
        );
        assert_eq!(
            resolve_path("/etc/wechat/cert.pem", Some(app)).unwrap(),
            Path::new("/etc/wechat/cert.pem")
        );
        assert!(resolve_path("cert.pem", None).is_none());
    }
}
