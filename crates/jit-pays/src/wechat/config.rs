//! An instance's merchant settings (appId, mchId, apiKey): where they are looked up along
//! the chain, and how bad ones are reported.

use jit_runtime::{Chain, ElementDef, ElementError};
use serde_json::Value;
use wechatpay_v2::ApiKey;

/// An instance's merchant settings, resolved along its chain.
#[derive(Clone)]
pub struct WechatPayConfig {
    /// appid.
    pub app_id: String,
    /// mch_id.
    pub mch_id: String,
    /// API key.
    pub api_key: ApiKey,
}

impl std::fmt::Debug for WechatPayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatPayConfig")
            .field("app_id", &self.app_id)
            .field("mch_id", &self.mch_id)
            .field("api_key", &jit_runtime::MASK)
            .finish()
    }
}

/// Looks `key` up along the chain, nearest element first; in each, the config file
/// (`{"config": {…}}`, or flat) before e.json's own keys. So the instance's config file
/// wins over its e.json, which wins over the Type's.
fn chain_setting<'a>(chain: &'a Chain, key: &str) -> Option<(&'a Value, &'a ElementDef)> {
    chain.iter().find_map(|def| {
        let from_config = def.config.as_ref().and_then(|config| {
            config
                .get("config")
                .and_then(|inner| inner.get(key))
                .or_else(|| config.get(key))
        });
        from_config
            .or_else(|| def.extra.get(key))
            .map(|value| (value, def.as_ref()))
    })
}

fn config_file_hint(def: &ElementDef) -> String {
    let name = def.full_name.to_string();
    let last = name.rsplit('.').next().unwrap_or(&name);
    match &def.front_bundle_entry {
        Some(entry) if entry.ends_with(".json") => entry.clone(),
        _ => format!("{last}.json"),
    }
}

impl WechatPayConfig {
    /// Reads appId, mchId and apiKey for the element at the head of `chain`. Errors name
    /// the element's e.json, its config file and the key; never a value of apiKey.
    pub fn from_chain(chain: &Chain) -> Result<Self, ElementError> {
        let element = chain.element();
        let place = format!(
            "{} (e.json: {}, config file: {})",
            element.full_name,
            element.source.display(),
            config_file_hint(element)
        );
        let read = |key: &'static str| -> Result<String, ElementError> {
            match chain_setting(chain, key) {
                None => Err(ElementError::InvalidSetting {
                    key: key.into(),
                    message: format!(
                        "{place}: `{key}` is missing; set it in the config file under \
                         \"config\" (or in e.json)"
                    ),
                }),
                Some((Value::String(text), _)) if !text.trim().is_empty() => {
                    Ok(text.trim().to_owned())
                }
                Some((_, def)) => Err(ElementError::InvalidSetting {
                    key: key.into(),
                    message: format!(
                        "{place}: `{key}` (found in {}) must be a non-empty string",
                        def.source.display()
                    ),
                }),
            }
        };
        let app_id = read("appId")?;
        let mch_id = read("mchId")?;
        let api_key = read("apiKey")?;
        warn_on_overridden_keys(element);
        if !mch_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ElementError::InvalidSetting {
                key: "mchId".into(),
                message: format!("{place}: `mchId` must be digits, got {mch_id:?}"),
            });
        }
        if api_key.len() != 32 || !api_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ElementError::InvalidSetting {
                key: "apiKey".into(),
                message: format!(
                    "{place}: `apiKey` must be the 32 letters and digits of the merchant's \
                     API key (found {} characters; value not shown)",
                    api_key.chars().count()
                ),
            });
        }
        Ok(WechatPayConfig {
            app_id,
            mch_id,
            api_key: ApiKey::new(api_key),
        })
    }
}

/// The seed's own example sets appId, mchId and apiKey both in e.json and in the config
/// file. The config file wins; when the two disagree the e.json value is probably stale,
/// so say so once at build (apiKey without its values).
fn warn_on_overridden_keys(element: &ElementDef) {
    let Some(config) = element.config.as_ref() else {
        return;
    };
    let config = config.get("config").unwrap_or(config);
    for key in ["appId", "mchId", "apiKey"] {
        let (Some(Value::String(in_config)), Some(Value::String(in_e_json))) =
            (config.get(key), element.extra.get(key))
        else {
            continue;
        };
        if in_config.trim() == in_e_json.trim() {
            continue;
        }
        if key == "apiKey" {
            tracing::warn!(
                element = %element.full_name,
                e_json = %element.source.display(),
                "`apiKey` in e.json differs from the config file's; the config file's is used \
                 (values not shown)"
            );
        } else {
            tracing::warn!(
                element = %element.full_name,
                e_json = %element.source.display(),
                "`{key}` in e.json ({in_e_json}) differs from the config file's ({in_config}); \
                 the config file's is used"
            );
        }
    }
}
