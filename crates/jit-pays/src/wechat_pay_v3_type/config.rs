//! A V3 instance's merchant settings: appId and mchId (as V2's), the APIv3 key, the
//! merchant private key (`apiclient_key.pem`) and its certificate's serial, and how WeChat's
//! signatures are verified. Looked up along the chain as every pay instance's settings are
//! (`crate::merchant_settings`), files read and keys parsed here, every problem naming its
//! file and JSON path and none showing key material.
//!
//! | key | what | checked |
//! |---|---|---|
//! | `appId`, `mchId` | as V2's | their shape |
//! | `apiV3Key` (secret) | the APIv3 key set in the merchant platform | exactly 32 ASCII characters |
//! | `privateKeyPath` | `apiclient_key.pem`, PKCS#8 or PKCS#1 | a readable file holding an unencrypted RSA key of at least 2048 bits |
//! | `merchantSerialNo` | the serial of `apiclient_cert.pem` | hexadecimal |
//! | `wechatpayPublicKeyId`, `wechatpayPublicKeyPath` | the WeChat Pay public key and its id | `PUB_KEY_ID_` and letters or digits; a readable `PUBLIC KEY` PEM of at least 2048 bits; both or neither |
//! | `platformCertificates` | `true`: verify with platform certificates, downloaded from `/v3/certificates` | a boolean |
//!
//! Verification: the public key alone, platform certificates alone, or both (a
//! switchover, each notify's `Wechatpay-Serial` picking the key). Neither is allowed only
//! while the gateway is the host's simulator, whose keys the instance then trusts
//! (`PaysSettings::simulator`); with a real gateway `jit check` refuses it
//! ([`live_gateway_problems`]), and refuses the example app's demo private key too.

use std::fmt;

use jit_runtime::{Chain, Definitions, ElementError, LoadError, LoadErrors};
use serde_json::{Map, Value};
use wechatpay_v3::keys::{is_public_key_id, normalize_serial};
use wechatpay_v3::{
    ApiV3Key, KeyError, MerchantPrivateKey, MerchantPublicKey, Verification, WechatPayPublicKey,
};

use super::WECHAT_PAY_V3_TYPE;
use crate::db::entity::ApiVersion;
use crate::instances::pay_instances_of;
use crate::merchant_settings::{
    APP_ID_SETTING, MCH_ID_SETTING, SettingFile, SettingRule, SettingSource, config_problem,
    find_setting, invalid_setting, json_kind, missing_setting, read_setting_file, resolve,
    setting_file, show_problems, show_resolved, warn_on_overridden_keys, where_to_set,
};

/// `privateKeyPath`: the merchant private key file.
const PRIVATE_KEY_PATH: &str = "privateKeyPath";
/// `wechatpayPublicKeyId`: the WeChat Pay public key's id.
const PUBLIC_KEY_ID: &str = "wechatpayPublicKeyId";
/// `wechatpayPublicKeyPath`: the WeChat Pay public key file.
const PUBLIC_KEY_PATH: &str = "wechatpayPublicKeyPath";
/// `platformCertificates`: verify with platform certificates.
const PLATFORM_CERTIFICATES: &str = "platformCertificates";

/// The settings whose value is text, in order: appId, mchId, apiV3Key, merchantSerialNo.
const TEXT_SETTINGS: [SettingRule; 4] = [
    APP_ID_SETTING,
    MCH_ID_SETTING,
    SettingRule {
        key: "apiV3Key",
        secret: true,
        accepts: |value| {
            if value.len() == 32 && value.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(())
            } else {
                Err(
                    "the APIv3 key set in the merchant platform: exactly 32 ASCII characters \
                     (it is not the V2 API key)",
                )
            }
        },
    },
    SettingRule {
        key: "merchantSerialNo",
        secret: false,
        accepts: |value| {
            normalize_serial("merchantSerialNo", value)
                .map(|_| ())
                .map_err(|_| {
                    "the serial number of the merchant certificate (apiclient_cert.pem), in \
                     hexadecimal"
                })
        },
    },
];

/// The public half of the demo merchant key the example app commits for the simulator
/// (`elements/pays/myWechatPayV3/demo_apiclient_key.simulator-only.pem`): anyone can read
/// its private half, so a real gateway never sees it ([`live_gateway_problems`]).
const DEMO_MERCHANT_PUBLIC_KEY_PEM: &str = include_str!("demo_merchant_public_key.pem");

/// How an instance verifies WeChat's signatures, as configured.
#[derive(Clone)]
pub enum WechatVerification {
    /// The WeChat Pay public key only.
    PublicKey(WechatPayPublicKey),
    /// Platform certificates only, downloaded from `/v3/certificates`.
    PlatformCertificates,
    /// Both, during a switchover.
    Switchover(WechatPayPublicKey),
}

impl WechatVerification {
    /// The protocol client's verification.
    pub fn to_client(&self) -> Verification {
        match self {
            WechatVerification::PublicKey(key) => Verification::PublicKey(key.clone()),
            WechatVerification::PlatformCertificates => {
                Verification::PlatformCertificates(Vec::new())
            }
            WechatVerification::Switchover(key) => Verification::Switchover {
                public_key: key.clone(),
                certificates: Vec::new(),
            },
        }
    }

    /// `public key PUB_KEY_ID_…`, `platform certificates`, or both.
    pub fn describe(&self) -> String {
        match self {
            WechatVerification::PublicKey(key) => format!("the WeChat Pay public key {}", key.id()),
            WechatVerification::PlatformCertificates => "platform certificates".to_owned(),
            WechatVerification::Switchover(key) => format!(
                "the WeChat Pay public key {} and platform certificates (a switchover)",
                key.id()
            ),
        }
    }
}

impl fmt::Debug for WechatVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A V3 instance's merchant settings, resolved along its chain, files read and keys
/// parsed.
#[derive(Clone)]
pub struct WechatPayV3Config {
    /// appid.
    pub app_id: String,
    /// mchid.
    pub mch_id: String,
    /// The APIv3 key.
    pub api_v3_key: ApiV3Key,
    /// The merchant certificate's serial, upper-case hexadecimal.
    pub merchant_serial_no: String,
    /// The merchant private key.
    pub private_key: MerchantPrivateKey,
    /// Where the private key is (`privateKeyPath`).
    pub private_key_file: SettingFile,
    /// How WeChat is verified; `None`: not configured (allowed only with the host's
    /// simulator as the gateway).
    pub verification: Option<WechatVerification>,
}

impl fmt::Debug for WechatPayV3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPayV3Config")
            .field("app_id", &self.app_id)
            .field("mch_id", &self.mch_id)
            .field("api_v3_key", &jit_runtime::MASK)
            .field("merchant_serial_no", &self.merchant_serial_no)
            .field("private_key_file", &self.private_key_file.path)
            .field("verification", &self.verification)
            .finish()
    }
}

/// A key setting's problem: the file and JSON path of the setting, what is wrong with which
/// file ([`KeyError`] never holds key material).
fn key_problem(file: &SettingFile, error: &KeyError) -> LoadError {
    config_problem(
        &file.source,
        format!("`{}` names {}: {error}", file.key, file.path.display()),
    )
}

/// A file setting's text: read, and UTF-8 (PEM is ASCII).
fn read_pem(file: &SettingFile) -> Result<String, LoadError> {
    let bytes = read_setting_file(file)?;
    String::from_utf8(bytes).map_err(|_| {
        config_problem(
            &file.source,
            format!(
                "`{}` names {}, which is not PEM text",
                file.key,
                file.path.display()
            ),
        )
    })
}

/// The merchant private key `privateKeyPath` names, or the problem.
fn private_key(chain: &Chain) -> Result<(MerchantPrivateKey, SettingFile), LoadError> {
    let file = setting_file(chain, PRIVATE_KEY_PATH)
        .unwrap_or_else(|| Err(missing_setting(chain.element(), PRIVATE_KEY_PATH)))?;
    let pem = read_pem(&file)?;
    let key = MerchantPrivateKey::from_pem(&pem).map_err(|error| key_problem(&file, &error))?;
    Ok((key, file))
}

/// How the instance verifies WeChat (`None`: not configured), or every problem.
fn verification(chain: &Chain) -> Result<Option<WechatVerification>, Vec<LoadError>> {
    let mut problems = Vec::new();
    let id = find_setting(chain, PUBLIC_KEY_ID);
    let file = setting_file(chain, PUBLIC_KEY_PATH);
    let public_key = match (id, file) {
        (None, None) => None,
        (Some((_, source)), None) => {
            problems.push(config_problem(
                &source,
                format!(
                    "`{PUBLIC_KEY_ID}` is set but `{PUBLIC_KEY_PATH}` is not: the WeChat Pay \
                     public key is its id and its file (pub_key.pem)"
                ),
            ));
            None
        }
        (None, Some(file)) => {
            let source = match &file {
                Ok(file) => file.source.clone(),
                Err(error) => SettingSource {
                    file: error.file.clone(),
                    json_path: error.json_path.clone().unwrap_or_default(),
                },
            };
            problems.push(config_problem(
                &source,
                format!(
                    "`{PUBLIC_KEY_PATH}` is set but `{PUBLIC_KEY_ID}` is not: set the key's id \
                     (PUB_KEY_ID_…) shown beside it in the merchant platform"
                ),
            ));
            None
        }
        (Some((id, id_source)), Some(file)) => {
            let id = match id.as_str() {
                Some(id) if is_public_key_id(id) => Some(id),
                Some(id) => {
                    problems.push(config_problem(
                        &id_source,
                        format!(
                            "`{PUBLIC_KEY_ID}` must be `PUB_KEY_ID_` followed by letters or \
                             digits (found {id:?})"
                        ),
                    ));
                    None
                }
                None => {
                    problems.push(config_problem(
                        &id_source,
                        format!(
                            "`{PUBLIC_KEY_ID}` must be a string, found {}",
                            json_kind(id)
                        ),
                    ));
                    None
                }
            };
            let key = file.and_then(|file| {
                let pem = read_pem(&file)?;
                Ok((pem, file))
            });
            match (id, key) {
                (Some(id), Ok((pem, file))) => match WechatPayPublicKey::from_pem(id, &pem) {
                    Ok(key) => Some(key),
                    Err(error) => {
                        problems.push(key_problem(&file, &error));
                        None
                    }
                },
                (_, Err(problem)) => {
                    problems.push(problem);
                    None
                }
                (None, Ok(_)) => None,
            }
        }
    };
    let certificates = match find_setting(chain, PLATFORM_CERTIFICATES) {
        None => false,
        Some((Value::Bool(enabled), _)) => *enabled,
        Some((other, source)) => {
            problems.push(config_problem(
                &source,
                format!(
                    "`{PLATFORM_CERTIFICATES}` must be true or false, found {}",
                    json_kind(other)
                ),
            ));
            false
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(match (public_key, certificates) {
        (None, false) => None,
        (None, true) => Some(WechatVerification::PlatformCertificates),
        (Some(key), false) => Some(WechatVerification::PublicKey(key)),
        (Some(key), true) => Some(WechatVerification::Switchover(key)),
    })
}

impl WechatPayV3Config {
    /// The merchant settings of the V3 instance at the head of `chain`: every problem
    /// (missing, not of the expected shape, a file that cannot be read, a key that does
    /// not parse) is reported, each naming its file and JSON path, never a secret.
    pub fn resolve(chain: &Chain) -> Result<Self, LoadErrors> {
        let (resolved, mut problems) = resolve(chain, &TEXT_SETTINGS);
        let key = private_key(chain).map_err(|problem| problems.push(problem));
        let verification = verification(chain).map_err(|found| problems.extend(found));
        let (Ok((private_key, private_key_file)), Ok(verification), true) =
            (key, verification, problems.is_empty())
        else {
            return Err(LoadErrors(problems));
        };
        let value = |index: usize| resolved[index].value.unwrap_or_default();
        let api_v3_key = ApiV3Key::new(value(2)).map_err(|error| {
            LoadErrors(vec![config_problem(
                resolved[2]
                    .source
                    .as_ref()
                    .expect("a resolved setting has a source"),
                error.to_string(),
            )])
        })?;
        Ok(WechatPayV3Config {
            app_id: value(0).to_owned(),
            mch_id: value(1).to_owned(),
            api_v3_key,
            merchant_serial_no: value(3).to_ascii_uppercase(),
            private_key,
            private_key_file,
            verification,
        })
    }

    /// [`WechatPayV3Config::resolve`] for an element's build: the problems as one
    /// [`ElementError::InvalidSetting`].
    pub fn from_chain(chain: &Chain) -> Result<Self, ElementError> {
        let config = Self::resolve(chain).map_err(invalid_setting)?;
        warn_on_overridden_keys(chain.element(), &TEXT_SETTINGS);
        Ok(config)
    }

    /// The merchant's public key, derived from its private key: what WeChat (or the
    /// simulator) checks its requests with.
    pub fn merchant_public_key(&self) -> MerchantPublicKey {
        self.private_key.public_key()
    }

    /// Whether the private key is the example app's demo key, published in this
    /// repository.
    pub fn uses_demo_key(&self) -> bool {
        MerchantPublicKey::from_pem(DEMO_MERCHANT_PUBLIC_KEY_PEM)
            .is_ok_and(|demo| demo == self.merchant_public_key())
    }
}

/// Every V3 instance's merchant settings, by fullName; or every problem of every instance.
///
/// Instances may share a merchant (one `mchId` with several appIds), but a merchant has one
/// APIv3 key and one certificate serial: two instances of the same `mchId` that differ in
/// either are a problem (one of them would fail every call), reported at the later one.
pub fn v3_merchant_settings(
    definitions: &Definitions,
) -> Result<Vec<(String, WechatPayV3Config)>, LoadErrors> {
    let mut settings: Vec<(String, WechatPayV3Config)> = Vec::new();
    let mut problems = Vec::new();
    for chain in pay_instances_of(definitions, ApiVersion::V3) {
        let config = match WechatPayV3Config::resolve(chain) {
            Ok(config) => config,
            Err(errors) => {
                problems.extend(errors);
                continue;
            }
        };
        let same_merchant = settings
            .iter()
            .find(|(_, known)| known.mch_id == config.mch_id);
        if let Some((other, known)) = same_merchant {
            let differs = if known.api_v3_key != config.api_v3_key {
                Some("apiV3Key")
            } else if known.merchant_serial_no != config.merchant_serial_no
                || known.merchant_public_key() != config.merchant_public_key()
            {
                Some("merchantSerialNo")
            } else {
                None
            };
            if let Some(key) = differs
                && let Some((_, source)) = find_setting(chain, key)
            {
                problems.push(config_problem(
                    &source,
                    format!(
                        "`{key}` (or the private key) differs from `{other}`'s, which has the \
                         same mchId {}: a merchant has one APIv3 key and one API certificate \
                         (values not shown)",
                        config.mch_id
                    ),
                ));
                continue;
            }
        }
        settings.push((chain.element().full_name.to_string(), config));
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(LoadErrors(problems))
    }
}

/// What a real gateway (not the host's simulator) cannot take from the V3 instances: an
/// instance that does not say how to verify WeChat, and one signing with the example app's
/// published demo key. `jit check` reports these with the other start-up rules, and
/// `jit serve` refuses to start on them. Instances whose settings do not resolve are
/// reported by [`v3_merchant_settings`] already.
pub fn live_gateway_problems(definitions: &Definitions) -> Vec<LoadError> {
    let mut problems = Vec::new();
    for chain in pay_instances_of(definitions, ApiVersion::V3) {
        let Ok(config) = WechatPayV3Config::resolve(chain) else {
            continue;
        };
        let element = chain.element();
        if config.verification.is_none() {
            let (file, json_path) = where_to_set(element, PUBLIC_KEY_ID);
            problems.push(config_problem(
                &SettingSource { file, json_path },
                format!(
                    "`{}` does not say how to verify WeChat's signatures, and the gateway is \
                     not the simulator: set `{PUBLIC_KEY_ID}` and `{PUBLIC_KEY_PATH}` (the \
                     WeChat Pay public key), or `\"{PLATFORM_CERTIFICATES}\": true`, or both \
                     during a switchover",
                    element.full_name
                ),
            ));
        }
        if config.uses_demo_key() {
            problems.push(config_problem(
                &config.private_key_file.source,
                format!(
                    "`{PRIVATE_KEY_PATH}` names {}, the example app's demo key, published in \
                     this repository for the simulator only: with a real gateway use the \
                     merchant's own apiclient_key.pem",
                    config.private_key_file.path.display()
                ),
            ));
        }
    }
    problems
}

/// The effective merchant settings of a V3 instance for display (`jit show`): each key's
/// value (the APIv3 key masked; files by path) and where it was found, and every problem.
pub(crate) fn shown_settings(chain: &Chain) -> Option<Value> {
    if chain.element().full_name.as_str() == WECHAT_PAY_V3_TYPE {
        return None;
    }
    let (resolved, mut problems) = resolve(chain, &TEXT_SETTINGS);
    let mut shown = Map::new();
    show_resolved(&mut shown, &TEXT_SETTINGS, &resolved);
    for key in [
        PRIVATE_KEY_PATH,
        PUBLIC_KEY_ID,
        PUBLIC_KEY_PATH,
        PLATFORM_CERTIFICATES,
    ] {
        if let Some((value, source)) = find_setting(chain, key) {
            shown.insert(
                key.to_owned(),
                serde_json::json!({"value": value, "from": source.to_string()}),
            );
        }
    }
    if let Err(problem) = private_key(chain) {
        problems.push(problem);
    }
    match verification(chain) {
        Ok(Some(verification)) => {
            shown.insert(
                "verification".to_owned(),
                Value::String(verification.describe()),
            );
        }
        Ok(None) => {
            shown.insert(
                "verification".to_owned(),
                Value::String("the simulator's keys (only with the simulator as gateway)".into()),
            );
        }
        Err(found) => problems.extend(found),
    }
    show_problems(&mut shown, &problems);
    Some(Value::Object(shown))
}
