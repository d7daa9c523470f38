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
    /// The functions callable on it, nearest declaration on the chain winning, its own
    /// first. Absent from hosts of ABI version 1, which read as empty.
    #[serde(default)]
    pub functions: Vec<FunctionInfo>,
}

impl ElementInfo {
    /// The declaration of `name` among [`functions`](Self::functions).
    pub fn function(&self, name: &str) -> Option<&FunctionInfo> {
        self.functions.iter().find(|function| function.name == name)
    }
}

/// One declared function of an element, in e.json's `functionList` shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionInfo {
    /// The function's name, as used in calls.
    pub name: String,
    /// Its `title`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its arguments, in declaration order.
    #[serde(default)]
    pub args: Vec<ArgInfo>,
    /// Its `returnType` as written, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_type: Option<String>,
    /// Whether a call needs a logged-in caller (`loginRequired`, true when unset).
    #[serde(default = "default_true")]
    pub login_required: bool,
}

/// One argument of a [`FunctionInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgInfo {
    /// The argument's name, its key in the arguments object.
    pub name: String,
    /// Its `title`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its JitAi `dataType` (`Stext`, `Numeric`, `JSON`, ...).
    #[serde(default)]
    pub data_type: String,
    /// Whether it must be given (`required`, true when unset).
    #[serde(default = "default_true")]
    pub required: bool,
}

fn default_true() -> bool {
    true
}
