//! Client-side pay parameters: what the merchant's page or app hands WeChat's JS API or APP
//! SDK to open the payment sheet for a prepay id, RSA-signed with the merchant key.
//!
//! | for | signed message | fields |
//! |---|---|---|
//! | JSAPI (`WeixinJSBridge`, `wx.requestPayment`) | `appId\ntimeStamp\nnonceStr\npackage\n` | `appId`, `timeStamp`, `nonceStr`, `package` = `prepay_id=…`, `signType` = `RSA`, `paySign` |
//! | APP | `appid\ntimestamp\nnoncestr\nprepayid\n` | `appid`, `partnerid`, `prepayid`, `package` = `Sign=WXPay`, `noncestr`, `timestamp`, `sign` |
//!
//! [`AppPayParams`] is wechatpay-v2's: the APP SDK's `PayReq` has the same fields under
//! both protocols; only what `sign` signs, and how, differs.
//!
//! The functions take the timestamp and nonce, so they are deterministic (PKCS#1 v1.5
//! signatures are); [`Client::jsapi_pay_params`](crate::Client::jsapi_pay_params) and
//! [`Client::app_pay_params`](crate::Client::app_pay_params) fill in now and a fresh nonce.

use serde::Serialize;

pub use wechatpay_v2::AppPayParams;
use wechatpay_v2::pay_params::{APP_PACKAGE, jsapi_package};

use crate::keys::{KeyError, MerchantPrivateKey};
use crate::sign::signed_lines;

/// JSAPI pay parameters, serialised with the exact names the JS API expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsapiPayParams {
    /// `appId`.
    #[serde(rename = "appId")]
    pub app_id: String,
    /// `timeStamp` (capital S), unix seconds.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// `nonceStr`.
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    /// `package`: `prepay_id=…`.
    pub package: String,
    /// `signType`: `RSA`.
    #[serde(rename = "signType")]
    pub sign_type: String,
    /// `paySign`.
    #[serde(rename = "paySign")]
    pub pay_sign: String,
}

/// Builds JSAPI pay parameters with a given timestamp and nonce.
pub fn jsapi_pay_params(
    app_id: &str,
    prepay_id: &str,
    key: &MerchantPrivateKey,
    time_stamp: &str,
    nonce_str: &str,
) -> Result<JsapiPayParams, KeyError> {
    let package = jsapi_package(prepay_id);
    let message = signed_lines(&[
        app_id.as_bytes(),
        time_stamp.as_bytes(),
        nonce_str.as_bytes(),
        package.as_bytes(),
    ]);
    Ok(JsapiPayParams {
        app_id: app_id.to_owned(),
        time_stamp: time_stamp.to_owned(),
        nonce_str: nonce_str.to_owned(),
        package,
        sign_type: "RSA".to_owned(),
        pay_sign: key.sign(&message)?,
    })
}

/// Builds APP pay parameters with a given timestamp and nonce.
pub fn app_pay_params(
    app_id: &str,
    mch_id: &str,
    prepay_id: &str,
    key: &MerchantPrivateKey,
    timestamp: &str,
    nonce_str: &str,
) -> Result<AppPayParams, KeyError> {
    let message = signed_lines(&[
        app_id.as_bytes(),
        timestamp.as_bytes(),
        nonce_str.as_bytes(),
        prepay_id.as_bytes(),
    ]);
    Ok(AppPayParams {
        appid: app_id.to_owned(),
        partnerid: mch_id.to_owned(),
        prepayid: prepay_id.to_owned(),
        package: APP_PACKAGE.to_owned(),
        noncestr: nonce_str.to_owned(),
        timestamp: timestamp.to_owned(),
        sign: key.sign(&message)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::tests::merchant_key;

    #[test]
    fn jsapi_parameters_sign_the_four_lines() {
        let key = merchant_key();
        let params = jsapi_pay_params(
            "wx8888888888888888",
            "wx201410272009395522657a690389285100",
            key,
            "1414561699",
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        )
        .unwrap();
        assert_eq!(
            params.package,
            "prepay_id=wx201410272009395522657a690389285100"
        );
        let message = b"wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n";
        key.public_key().verify(message, &params.pay_sign).unwrap();
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(json["signType"], "RSA");
        assert!(json.get("timeStamp").is_some() && json.get("paySign").is_some());
    }

    #[test]
    fn app_parameters_sign_the_four_lines() {
        let key = merchant_key();
        let params = app_pay_params(
            "wx8888888888888888",
            "1900000109",
            "WX1217752501201407033233368018",
            key,
            "1412000000",
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        )
        .unwrap();
        let message = b"wx8888888888888888\n1412000000\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nWX1217752501201407033233368018\n";
        key.public_key().verify(message, &params.sign).unwrap();
        assert_eq!(params.package, "Sign=WXPay");
        assert_eq!(params.partnerid, "1900000109");
    }
}
