//! A WeChat Pay instance's merchant settings (appId, mchId, apiKey, and the optional
//! merchant certificate): the one place that knows where they are looked up along the
//! chain, which values are acceptable, and how a bad one is reported.
//!
//! Everything that needs an instance's merchant reads it here: the element's build
//! ([`WechatPayConfig::from_chain`]), `jit check` and `jit serve` at start
//! ([`check_merchant_settings`]), a host registering the merchant with an in-process
//! simulator ([`merchant_settings`]) and `jit show` ([`shown_merchant_settings`]). So the
//! merchant the simulator accepts is the one the element signs as, and a value that would
//! fail every call is refused before the first one.
//!
//! # Where a value comes from
//!
//! Along the chain, nearest element first; in each element, its config file's `config`
//! object (the seed's layout), then the config file's top level, then e.json's own keys. So
//! the instance's config file wins over its e.json, which wins over its Type's. The seed's
//! own example sets the three keys in e.json (with `"apiKey": "your_api_key_here"`) and in
//! the config file; the config file's values are the ones used, and only those are checked.
//!
//! # The merchant certificate
//!
//! Refunds (`/secapi/pay/refund`) need the merchant's API certificate; everything else
//! works without one, so it is optional. It is set either as the PKCS#12 bundle WeChat
//! issues, `certP12Path` (with `certP12Password` when its password is not the mchId), or as
//! the PEM pair `certPath` and `keyPath`; looked up like the other settings, `{{VAR}}`
//! placeholders filled by the runtime. A relative path is relative to the app folder (the
//! folder of app.toml) of the layer whose file sets it. Setting both forms, a password
//! without a bundle, or half a PEM pair is a problem here; what the files must hold is
//! `certificate`'s ([`MerchantCertificate::load`]), checked by [`merchant_settings`] and
//! when the element is built.

use std::fmt;
use std::path::{Path, PathBuf};

use jit_runtime::{
    Chain, Definitions, ElementDef, ElementError, LoadError, LoadErrorKind, LoadErrors, Secret,
};
use serde_json::{Map, Value};
use wechatpay_v2::{ApiKey, ClientIdentity};

use super::WECHAT_PAY_TYPE;
use super::certificate::{CertificateFile, MerchantCertificate, resolve_path};

/// An instance's merchant settings, resolved along its chain and validated.
#[derive(Clone)]
pub struct WechatPayConfig {
    /// appid: `wx` and 16 lower-case hexadecimal characters.
    pub app_id: String,
    /// mch_id: 8 to 10 digits.
    pub mch_id: String,
    /// API key: 32 letters and digits.
    pub api_key: ApiKey,
    /// The merchant certificate's settings (files not read yet:
    /// [`WechatPayConfig::load_certificate`]); `None` when the instance has none, so it
    /// cannot refund.
    pub certificate: Option<MerchantCertificate>,
}

impl fmt::Debug for WechatPayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPayConfig")
            .field("app_id", &self.app_id)
            .field("mch_id", &self.mch_id)
            .field("api_key", &jit_runtime::MASK)
            .field("certificate", &self.certificate)
            .finish()
    }
}

/// One merchant setting: its key, whether its value is secret, and what a usable value
/// looks like. A later setting is one more entry of [`MERCHANT_SETTINGS`].
struct SettingRule {
    key: &'static str,
    secret: bool,
    /// `Err(what a usable value is)` when `value` is not one.
    accepts: fn(&str) -> Result<(), &'static str>,
}

const MERCHANT_SETTINGS: [SettingRule; 3] = [
    SettingRule {
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
    },
    SettingRule {
        key: "mchId",
        secret: false,
        accepts: |value| {
            if (8..=10).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err("the merchant id: 8 to 10 digits")
            }
        },
    },
    SettingRule {
        key: "apiKey",
        secret: true,
        accepts: |value| {
            if value.len() == 32 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(())
            } else {
                Err("the merchant's API key: exactly 32 letters and digits")
            }
        },
    },
];

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
fn config_file(def: &ElementDef) -> PathBuf {
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
fn find_setting<'a>(chain: &'a Chain, key: &str) -> Option<(&'a Value, SettingSource)> {
    find_setting_in(chain, key).map(|(value, source, _)| (value, source))
}

/// [`find_setting`], with the element whose file sets it.
fn find_setting_in<'a>(
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
fn app_folder(def: &ElementDef) -> Option<&Path> {
    let segments = def.full_name.as_str().split('.').count();
    def.dir.as_deref()?.ancestors().nth(segments + 1)
}

fn at(file: PathBuf, json_path: String) -> SettingSource {
    SettingSource { file, json_path }
}

/// One checked setting: its value, where it is, or the problem with it.
struct Resolved<'a> {
    value: Option<&'a str>,
    source: Option<SettingSource>,
}

/// Resolves and checks every merchant setting of the instance at the head of `chain`.
/// Each problem names the file and JSON path; a secret value is never shown.
fn resolve<'a>(chain: &'a Chain) -> (Vec<Resolved<'a>>, Vec<LoadError>) {
    let element = chain.element();
    let mut resolved = Vec::with_capacity(MERCHANT_SETTINGS.len());
    let mut problems = Vec::new();
    for rule in &MERCHANT_SETTINGS {
        let key = rule.key;
        let Some((value, source)) = find_setting(chain, key) else {
            let file = match element.config {
                Some(_) => config_file(element),
                None => element.source.clone(),
            };
            let json_path = match element.config {
                Some(_) => format!("config.{key}"),
                None => key.to_owned(),
            };
            problems.push(
                LoadError::new(
                    LoadErrorKind::Config,
                    file,
                    format!(
                        "`{key}` of WeChat Pay instance `{}` is missing: set it in {} under \
                         \"config\" (or in e.json)",
                        element.full_name,
                        config_file(element).file_name().map_or_else(
                            || "its config file".into(),
                            |name| name.to_string_lossy()
                        ),
                    ),
                )
                .at(json_path),
            );
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

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The merchant certificate's settings: the PKCS#12 form, its password, the PEM form.
const CERT_P12_PATH: &str = "certP12Path";
const CERT_P12_PASSWORD: &str = "certP12Password";
const CERT_PATH: &str = "certPath";
const KEY_PATH: &str = "keyPath";

/// Every certificate setting, and whether its value is secret.
const CERTIFICATE_SETTINGS: [(&str, bool); 4] = [
    (CERT_P12_PATH, false),
    (CERT_P12_PASSWORD, true),
    (CERT_PATH, false),
    (KEY_PATH, false),
];

/// A certificate setting that is set: where, and its value when it is usable (a string;
/// for a path, a non-empty one).
struct CertificateSetting<'a> {
    source: SettingSource,
    usable: Option<(&'a str, &'a ElementDef)>,
}

/// A problem with the setting at `source`.
pub(super) fn config_problem(source: &SettingSource, message: String) -> LoadError {
    LoadError::new(LoadErrorKind::Config, source.file.clone(), message).at(source.json_path.clone())
}

/// The certificate settings of the instance at the head of `chain`: which form and which
/// files (none read), or every problem with them. A path that is relative is the app
/// folder's ([`app_folder`]).
fn resolve_certificate(chain: &Chain) -> (Option<MerchantCertificate>, Vec<LoadError>) {
    let mut problems = Vec::new();
    let mut find = |key: &'static str| {
        let (value, source, def) = find_setting_in(chain, key)?;
        let usable = match value.as_str() {
            // A bundle's password may be empty; a path may not.
            Some(text) if key == CERT_P12_PASSWORD || !text.trim().is_empty() => Some((text, def)),
            Some(_) => {
                problems.push(config_problem(
                    &source,
                    format!("`{key}` is empty: it must be the path of a file"),
                ));
                None
            }
            None => {
                problems.push(config_problem(
                    &source,
                    format!("`{key}` must be a string, found {}", json_kind(value)),
                ));
                None
            }
        };
        Some(CertificateSetting { source, usable })
    };
    let p12 = find(CERT_P12_PATH);
    let password = find(CERT_P12_PASSWORD);
    let cert = find(CERT_PATH);
    let key = find(KEY_PATH);

    if let Some(p12) = &p12 {
        let pem: Vec<String> = [&cert, &key]
            .into_iter()
            .flatten()
            .map(|setting| setting.source.to_string())
            .collect();
        if !pem.is_empty() {
            problems.push(config_problem(
                &p12.source,
                format!(
                    "`certP12Path` and the PEM pair ({}) are both set: set one form of the                      merchant certificate, the PKCS#12 bundle or `certPath` with `keyPath`",
                    pem.join(", ")
                ),
            ));
        }
    }
    if let (Some(password), None) = (&password, &p12) {
        problems.push(config_problem(
            &password.source,
            "`certP12Password` is set but `certP12Path` is not: the password opens a PKCS#12              bundle (the PEM form is `certPath` with `keyPath`; the value is not shown)"
                .to_owned(),
        ));
    }
    match (&cert, &key) {
        (Some(cert), None) => problems.push(config_problem(
            &cert.source,
            "`certPath` is set but `keyPath` is not: the PEM form needs the certificate and              its private key (apiclient_key.pem) beside it"
                .to_owned(),
        )),
        (None, Some(key)) => problems.push(config_problem(
            &key.source,
            "`keyPath` is set but `certPath` is not: the PEM form needs the certificate              (apiclient_cert.pem) beside its private key"
                .to_owned(),
        )),
        _ => {}
    }

    let mut file = |setting: &Option<CertificateSetting<'_>>, key: &'static str| {
        let setting = setting.as_ref()?;
        let (text, def) = setting.usable?;
        match resolve_path(text, app_folder(def)) {
            Some(path) => Some(CertificateFile {
                key,
                path,
                source: setting.source.clone(),
            }),
            None => {
                problems.push(config_problem(
                    &setting.source,
                    format!(
                        "`{key}` is the relative path {text:?}, but the element that sets it                          has no app folder to resolve it in: use an absolute path"
                    ),
                ));
                None
            }
        }
    };
    let bundle = file(&p12, CERT_P12_PATH);
    let pem = (file(&cert, CERT_PATH), file(&key, KEY_PATH));
    if !problems.is_empty() {
        return (None, problems);
    }
    let certificate = match (bundle, pem) {
        (Some(bundle), _) => Some(MerchantCertificate::Pkcs12 {
            bundle,
            password: password.and_then(|setting| {
                let (text, _) = setting.usable?;
                Some((Secret::new(text.to_owned()), setting.source))
            }),
        }),
        (None, (Some(cert), Some(key))) => Some(MerchantCertificate::Pem { cert, key }),
        _ => None,
    };
    (certificate, problems)
}

/// Problems of an instance's settings as one [`ElementError::InvalidSetting`] (an
/// element's build): the keys, and every problem with its file and JSON path.
pub(super) fn invalid_setting(errors: LoadErrors) -> ElementError {
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

impl WechatPayConfig {
    /// The merchant settings of the instance at the head of `chain`, checked; every
    /// problem (missing, not a string, not of the expected shape) is reported, each naming
    /// its file and JSON path, never a secret value.
    ///
    /// The merchant certificate's settings are checked too (which form, which files); its
    /// files are read by [`WechatPayConfig::load_certificate`].
    pub fn resolve(chain: &Chain) -> Result<Self, LoadErrors> {
        let (resolved, mut problems) = resolve(chain);
        let (certificate, certificate_problems) = resolve_certificate(chain);
        problems.extend(certificate_problems);
        if !problems.is_empty() {
            return Err(LoadErrors(problems));
        }
        let value = |index: usize| resolved[index].value.unwrap_or_default().to_owned();
        Ok(WechatPayConfig {
            app_id: value(0),
            mch_id: value(1),
            api_key: ApiKey::new(value(2)),
            certificate,
        })
    }

    /// Reads and checks the merchant certificate's files (that they parse, that the key is
    /// the certificate's, that the certificate is valid and its CN is the mchId): the
    /// identity the protocol client presents on `/secapi/` calls, `None` when no
    /// certificate is configured, or every problem (file and JSON path of the setting, no
    /// key material, no password).
    pub fn load_certificate(&self) -> Result<Option<ClientIdentity>, LoadErrors> {
        self.certificate
            .as_ref()
            .map(|certificate| certificate.load(&self.mch_id))
            .transpose()
    }

    /// [`WechatPayConfig::resolve`] for an element's build: the problems as one
    /// [`ElementError::InvalidSetting`]. When e.json and the config file disagree, the
    /// build logs which key (the config file's is used).
    pub fn from_chain(chain: &Chain) -> Result<Self, ElementError> {
        let config = Self::resolve(chain).map_err(invalid_setting)?;
        warn_on_overridden_keys(chain.element());
        Ok(config)
    }
}

/// The WeChat Pay instances of an app: every visible instance ([`Definitions::is_instance`],
/// the runtime's one rule) whose chain contains `pays.WechatPayType`, by fullName. These are
/// the elements `PaySvc` routes to and whose merchant settings must hold.
pub fn pay_instances(definitions: &Definitions) -> impl Iterator<Item = &Chain> {
    definitions
        .iter()
        .filter(|chain| is_pay_instance(definitions, chain))
}

/// Whether `chain` is a WeChat Pay instance of the app ([`pay_instances`]).
pub fn is_pay_instance(definitions: &Definitions, chain: &Chain) -> bool {
    chain.contains(WECHAT_PAY_TYPE) && definitions.is_instance(chain)
}

/// Every WeChat Pay instance's merchant settings, by fullName; or every problem of every
/// instance (what `jit check` prints and `jit serve` refuses to start with). A configured
/// merchant certificate's files are read and checked here.
///
/// Instances may share a merchant (one `mchId` with several appIds), but a merchant has
/// one API key: two instances naming the same `mchId` with different keys are a problem
/// (one of them would fail every signature), reported at the later one's key.
pub fn merchant_settings(
    definitions: &Definitions,
) -> Result<Vec<(String, WechatPayConfig)>, LoadErrors> {
    let mut settings: Vec<(String, WechatPayConfig)> = Vec::new();
    let mut problems = Vec::new();
    for chain in pay_instances(definitions) {
        let name = chain.element().full_name.to_string();
        let config = match WechatPayConfig::resolve(chain) {
            Ok(config) => config,
            Err(errors) => {
                problems.extend(errors);
                continue;
            }
        };
        if let Err(errors) = config.load_certificate() {
            problems.extend(errors);
            continue;
        }
        let same_merchant = settings
            .iter()
            .find(|(_, known)| known.mch_id == config.mch_id);
        if let Some((other, known)) = same_merchant
            && known.api_key.expose_secret() != config.api_key.expose_secret()
            && let Some((_, source)) = find_setting(chain, "apiKey")
        {
            problems.push(
                LoadError::new(
                    LoadErrorKind::Config,
                    source.file,
                    format!(
                        "`apiKey` differs from the key of `{other}`, which has the same mchId \
                         {}: a merchant has one API key (values not shown)",
                        config.mch_id
                    ),
                )
                .at(source.json_path),
            );
            continue;
        }
        settings.push((name, config));
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(LoadErrors(problems))
    }
}

/// Checks the merchant settings of every WeChat Pay instance of the app: what `jit check`
/// reports and what `jit serve` refuses to start with. A setting that WeChat would refuse on
/// every call (`WECHAT_MCH_ID=12ab`) is found here, not by the first payer.
pub fn check_merchant_settings(definitions: &Definitions) -> Result<(), LoadErrors> {
    merchant_settings(definitions).map(|_| ())
}

/// The effective merchant settings of a WeChat Pay instance for display (`jit show`): each
/// key's value (secrets masked) and where it was found, the certificate's settings when set,
/// and every problem (the certificate's files read and checked). `None` when `chain` is not
/// a WeChat Pay element.
pub fn shown_merchant_settings(chain: &Chain) -> Option<Value> {
    if !chain.contains(WECHAT_PAY_TYPE) || chain.element().full_name.as_str() == WECHAT_PAY_TYPE {
        return None;
    }
    let (resolved, mut problems) = resolve(chain);
    let mut shown = Map::new();
    for (rule, setting) in MERCHANT_SETTINGS.iter().zip(&resolved) {
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
    for (key, secret) in CERTIFICATE_SETTINGS {
        if let Some((value, source)) = find_setting(chain, key) {
            let value = if secret {
                Value::String(jit_runtime::MASK.to_owned())
            } else {
                value.clone()
            };
            shown.insert(
                key.to_owned(),
                serde_json::json!({"value": value, "from": source.to_string()}),
            );
        }
    }
    let (certificate, certificate_problems) = resolve_certificate(chain);
    problems.extend(certificate_problems);
    if let (Some(certificate), Some(mch_id)) = (certificate, resolved[1].value) {
        problems.extend(certificate.load(mch_id).err().into_iter().flatten());
    }
    shown.insert(
        "problems".to_owned(),
        Value::Array(
            problems
                .iter()
                .map(|problem| Value::String(problem.to_string()))
                .collect(),
        ),
    );
    Some(Value::Object(shown))
}

/// The seed's own example sets appId, mchId and apiKey both in e.json and in the config
/// file. The config file wins; when the two disagree the e.json value is probably stale,
/// so say so once at build (apiKey without its values).
fn warn_on_overridden_keys(element: &ElementDef) {
    let Some(config) = element.config.as_ref() else {
        return;
    };
    let config = config.get("config").unwrap_or(config);
    for rule in &MERCHANT_SETTINGS {
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
