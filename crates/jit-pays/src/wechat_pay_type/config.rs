//! A V2 instance's merchant settings (appId, mchId, apiKey, and the optional merchant
//! certificate): which values are acceptable, looked up along the chain as every pay
//! instance's settings are (`crate::merchant_settings`).
//!
//! Everything that needs a V2 instance's merchant reads it here: the element's build
//! ([`WechatPayConfig::from_chain`]), `jit check` and `jit serve` at start (through
//! `crate::instances::check_merchant_settings`), a host registering the merchant with an
//! in-process simulator ([`merchant_settings`]) and `jit show` ([`shown_settings`]). So the
//! merchant the simulator accepts is the one the element signs as, and a value that would
//! fail every call is refused before the first one.
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

use jit_runtime::{
    Chain, Definitions, ElementDef, ElementError, LoadError, LoadErrorKind, LoadErrors, Secret,
};
use serde_json::{Map, Value};
use wechatpay_v2::{ApiKey, ClientIdentity};

use super::WECHAT_PAY_TYPE;
use super::certificate::{CertificateFile, MerchantCertificate};
use crate::db::entity::ApiVersion;
use crate::instances::pay_instances_of;
use crate::merchant_settings::{
    APP_ID_SETTING, MCH_ID_SETTING, SettingRule, SettingSource, app_folder, config_problem,
    find_setting, find_setting_in, invalid_setting, json_kind, resolve, resolve_path,
    show_problems, show_resolved, warn_on_overridden_keys,
};

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

const MERCHANT_SETTINGS: [SettingRule; 3] = [
    APP_ID_SETTING,
    MCH_ID_SETTING,
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
                    "`certP12Path` and the PEM pair ({}) are both set: set one form of the \
                     merchant certificate, the PKCS#12 bundle or `certPath` with `keyPath`",
                    pem.join(", ")
                ),
            ));
        }
    }
    if let (Some(password), None) = (&password, &p12) {
        problems.push(config_problem(
            &password.source,
            "`certP12Password` is set but `certP12Path` is not: the password opens a PKCS#12 \
             bundle (the PEM form is `certPath` with `keyPath`; the value is not shown)"
                .to_owned(),
        ));
    }
    match (&cert, &key) {
        (Some(cert), None) => problems.push(config_problem(
            &cert.source,
            "`certPath` is set but `keyPath` is not: the PEM form needs the certificate and \
             its private key (apiclient_key.pem) beside it"
                .to_owned(),
        )),
        (None, Some(key)) => problems.push(config_problem(
            &key.source,
            "`keyPath` is set but `certPath` is not: the PEM form needs the certificate \
             (apiclient_cert.pem) beside its private key"
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
                        "`{key}` is the relative path {text:?}, but the element that sets it \
                         has no app folder to resolve it in: use an absolute path"
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

impl WechatPayConfig {
    /// The merchant settings of the instance at the head of `chain`, checked; every
    /// problem (missing, not a string, not of the expected shape) is reported, each naming
    /// its file and JSON path, never a secret value.
    ///
    /// The merchant certificate's settings are checked too (which form, which files); its
    /// files are read by [`WechatPayConfig::load_certificate`].
    pub fn resolve(chain: &Chain) -> Result<Self, LoadErrors> {
        let (resolved, mut problems) = resolve(chain, &MERCHANT_SETTINGS);
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
        warn_on_overridden_keys(chain.element(), &MERCHANT_SETTINGS);
        Ok(config)
    }
}

/// Every V2 instance's merchant settings, by fullName; or every problem of every instance
/// (what `jit check` prints and `jit serve` refuses to start with). A configured merchant
/// certificate's files are read and checked here. V3 instances have their own
/// (`crate::wechat_pay_v3_type::v3_merchant_settings`).
///
/// Instances may share a merchant (one `mchId` with several appIds), but a merchant has
/// one API key: two instances naming the same `mchId` with different keys are a problem
/// (one of them would fail every signature), reported at the later one's key.
pub fn merchant_settings(
    definitions: &Definitions,
) -> Result<Vec<(String, WechatPayConfig)>, LoadErrors> {
    let mut settings: Vec<(String, WechatPayConfig)> = Vec::new();
    let mut problems = Vec::new();
    for chain in pay_instances_of(definitions, ApiVersion::V2) {
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

/// The effective merchant settings of a V2 instance for display (`jit show`): each
/// key's value (secrets masked) and where it was found, the certificate's settings when set,
/// and every problem (the certificate's files read and checked). `None` when `chain` is not
/// a WeChat Pay element.
pub(crate) fn shown_settings(chain: &Chain) -> Option<Value> {
    if !chain.contains(WECHAT_PAY_TYPE) || chain.element().full_name.as_str() == WECHAT_PAY_TYPE {
        return None;
    }
    let (resolved, mut problems) = resolve(chain, &MERCHANT_SETTINGS);
    let mut shown = Map::new();
    show_resolved(&mut shown, &MERCHANT_SETTINGS, &resolved);
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
    show_problems(&mut shown, &problems);
    Some(Value::Object(shown))
}
