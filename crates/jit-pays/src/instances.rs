//! Which elements of an app are pay instances, and which WeChat Pay API each speaks: the
//! one owner of "is a pay instance", for both Types.
//!
//! A pay instance is a visible instance ([`Definitions::is_instance`], the runtime's one
//! rule) whose chain contains `pays.WechatPayType` (it speaks V2) or
//! `pays.WechatPayV3Type` (V3). `PaySvc`'s routing, the reconciler, the bills, `jit check`
//! and the host's simulator all ask here.

use jit_runtime::{Chain, Definitions, LoadErrors};
use serde_json::Value;

use crate::db::entity::ApiVersion;
use crate::wechat_pay_type::{self, WECHAT_PAY_TYPE};
use crate::wechat_pay_v3_type::{self, WECHAT_PAY_V3_TYPE};

/// The pay Type at the root of `chain`'s payments, if it has one: `pays.WechatPayType`
/// (V2) or `pays.WechatPayV3Type` (V3). A Type itself answers too: use
/// [`is_pay_instance`] for the elements that take orders.
pub fn pay_api_version(chain: &Chain) -> Option<ApiVersion> {
    if chain.contains(WECHAT_PAY_V3_TYPE) {
        Some(ApiVersion::V3)
    } else if chain.contains(WECHAT_PAY_TYPE) {
        Some(ApiVersion::V2)
    } else {
        None
    }
}

/// The fullName of the official Type of `version`.
pub fn pay_type_name(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V2 => WECHAT_PAY_TYPE,
        ApiVersion::V3 => WECHAT_PAY_V3_TYPE,
    }
}

/// Whether `chain` is a pay instance of the app, of either API.
pub fn is_pay_instance(definitions: &Definitions, chain: &Chain) -> bool {
    pay_api_version(chain).is_some() && definitions.is_instance(chain)
}

/// The pay instances of an app, of either API, by fullName: the elements `PaySvc` routes
/// to and whose merchant settings must hold.
pub fn pay_instances(definitions: &Definitions) -> impl Iterator<Item = &Chain> {
    definitions
        .iter()
        .filter(|chain| is_pay_instance(definitions, chain))
}

/// The pay instances that speak `version`, by fullName.
pub fn pay_instances_of(
    definitions: &Definitions,
    version: ApiVersion,
) -> impl Iterator<Item = &Chain> {
    pay_instances(definitions).filter(move |chain| pay_api_version(chain) == Some(version))
}

/// Checks the merchant settings of every pay instance of the app, V2 and V3: what `jit
/// check` reports and what `jit serve` refuses to start with. A setting that WeChat would
/// refuse on every call (`WECHAT_MCH_ID=12ab`, a key file that does not parse) is found
/// here, not by the first payer.
pub fn check_merchant_settings(definitions: &Definitions) -> Result<(), LoadErrors> {
    let mut problems = Vec::new();
    if let Err(errors) = wechat_pay_type::merchant_settings(definitions) {
        problems.extend(errors);
    }
    if let Err(errors) = wechat_pay_v3_type::v3_merchant_settings(definitions) {
        problems.extend(errors);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LoadErrors(problems))
    }
}

/// The effective merchant settings of a pay element for display (`jit show`), as its
/// Type reads them: each key's value (secrets masked) and where it was found, and every
/// problem. `None` when `chain` is no pay element (or is one of the official Types).
pub fn shown_merchant_settings(chain: &Chain) -> Option<Value> {
    match pay_api_version(chain)? {
        ApiVersion::V2 => wechat_pay_type::shown_settings(chain),
        ApiVersion::V3 => wechat_pay_v3_type::shown_settings(chain),
    }
}
