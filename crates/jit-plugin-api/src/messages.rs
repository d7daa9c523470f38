//! The JSON documents the ABI carries besides results and errors: what a plugin says about
//! itself, and what the host says about the element a call is for. Both are read leniently
//! (unknown fields ignored, missing ones defaulted) so either side may be newer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin tells the host about itself once its header is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginDescription {
    /// Functions the plugin implements itself; every other function goes straight to the
    /// parent without entering the plugin. `None`: every call enters the plugin.
    pub overrides: Option<Vec<String>>,
}

/// The element a call is made on, as the host describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElementInfo {
    /// The element's fullName, e.g. `pays.myDiscountPay`.
    pub full_name: String,
    /// Its type chain, the element first and its Meta last, e.g. `["pays.myDiscountPay",
    /// "pays.DiscountWechatPayType", "pays.WechatPayType", "pays.Meta"]`.
    pub chain: Vec<String>,
    /// Its settings merged along the chain, nearest first: for each element of the chain its
    /// configuration file, then the keys of its `e.json` the runtime does not know (so a key
    /// such as `discountPercent` set on the plugin's Type applies to every instance unless an
    /// instance sets its own). Values the chain marks secret are masked.
    pub settings: serde_json::Map<String, Value>,
}
