//! Client-side pay parameters: what the merchant's page or app hands WeChat's JS API or APP
//! SDK to open the payment sheet for a prepay id, signed with the merchant key.
//!
//! The functions here take the timestamp and nonce, so they are deterministic (the
//! reference's vectors and wechatpy's output are compared with them);
//! [`Client::jsapi_pay_params`](crate::Client::jsapi_pay_params) and
//! [`Client::app_pay_params`](crate::Client::app_pay_params) fill in the current time and a
//! fresh nonce.

use crate::{ApiKey, Params, SignType, sign};

/// The APP SDK's `package`: always `Sign=WXPay` (both protocols).
pub const APP_PACKAGE: &str = "Sign=WXPay";

/// The JS API's `package` for a prepay id: `prepay_id=…` (both protocols).
pub fn jsapi_package(prepay_id: &str) -> String {
    format!("prepay_id={prepay_id}")
}

/// Parameters for `wx.chooseWXPay` / `WeixinJSBridge.invoke('getBrandWCPayRequest')`.
/// Serialises with the exact key names the JS API expects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JsapiPayParams {
    /// `appId`.
    #[serde(rename = "appId")]
    pub app_id: String,
    /// `timeStamp` (capital S), seconds.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// `nonceStr`.
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    /// `package`: `prepay_id=…`.
    pub package: String,
    /// `signType`.
    #[serde(rename = "signType")]
    pub sign_type: SignType,
    /// `paySign`.
    #[serde(rename = "paySign")]
    pub pay_sign: String,
}

/// Builds JSAPI pay parameters with a given timestamp and nonce (deterministic; see
/// [`Client::jsapi_pay_params`](crate::Client::jsapi_pay_params) for the everyday form).
pub fn jsapi_pay_params(
    app_id: &str,
    prepay_id: &str,
    sign_type: SignType,
    api_key: &ApiKey,
    time_stamp: &str,
    nonce: &str,
) -> JsapiPayParams {
    let package = jsapi_package(prepay_id);
    let mut params = Params::new();
    params.insert("appId".into(), app_id.into());
    params.insert("timeStamp".into(), time_stamp.into());
    params.insert("nonceStr".into(), nonce.into());
    params.insert("package".into(), package.clone());
    params.insert("signType".into(), sign_type.as_str().into());
    JsapiPayParams {
        app_id: app_id.into(),
        time_stamp: time_stamp.into(),
        nonce_str: nonce.into(),
        package,
        sign_type,
        pay_sign: sign(&params, sign_type, api_key),
    }
}

/// Parameters for the APP SDK's `PayReq`. Serialises with the exact key names. The same
/// struct serves wechatpay-v3, where `sign` is the RSA signature of the four signed lines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppPayParams {
    /// `appid` (open-platform).
    pub appid: String,
    /// `partnerid`: the mch_id.
    pub partnerid: String,
    /// `prepayid`.
    pub prepayid: String,
    /// `package`: always `Sign=WXPay`.
    pub package: String,
    /// `noncestr`.
    pub noncestr: String,
    /// `timestamp`, seconds.
    pub timestamp: String,
    /// `sign`: here the MD5/HMAC-SHA256 signature of the other fields.
    pub sign: String,
}

/// Builds APP pay parameters with a given timestamp and nonce.
pub fn app_pay_params(
    app_id: &str,
    mch_id: &str,
    prepay_id: &str,
    sign_type: SignType,
    api_key: &ApiKey,
    timestamp: &str,
    nonce: &str,
) -> AppPayParams {
    let mut params = Params::new();
    params.insert("appid".into(), app_id.into());
    params.insert("partnerid".into(), mch_id.into());
    params.insert("prepayid".into(), prepay_id.into());
    params.insert("package".into(), APP_PACKAGE.into());
    params.insert("noncestr".into(), nonce.into());
    params.insert("timestamp".into(), timestamp.into());
    AppPayParams {
        sign: sign(&params, sign_type, api_key),
        appid: app_id.into(),
        partnerid: mch_id.into(),
        prepayid: prepay_id.into(),
        package: APP_PACKAGE.into(),
        noncestr: nonce.into(),
        timestamp: timestamp.into(),
    }
}
