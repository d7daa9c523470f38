//! Prepay (`POST /v3/pay/transactions/{jsapi|app|h5|native}`): creates the order a buyer
//! pays, answered with a `prepay_id` (JSAPI, APP), an `h5_url` or a `code_url` (NATIVE).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Call;
use super::validate::{
    amount, check_ip, check_max_bytes, check_max_chars, check_merchant_no, check_notify_url,
    check_token, invalid, require_non_empty,
};
use crate::json::{malformed, opt_string, read};
use crate::time::rfc3339_beijing;
use crate::{Error, Fen};

/// The path pattern prepay answers are reported under.
pub const ENDPOINT: &str = "/v3/pay/transactions/{type}";

/// How the buyer pays, with what that way requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepayKind {
    /// In WeChat (official account page, mini program): the buyer's openid under the appid.
    Jsapi {
        /// `payer.openid`.
        openid: String,
    },
    /// A native app (the client's appid must be the open-platform one).
    App,
    /// A mobile browser outside WeChat.
    H5(H5Scene),
    /// A QR code the merchant shows.
    Native,
}

impl PrepayKind {
    /// The path segment and `trade_type`-like name: `jsapi`, `app`, `h5`, `native`.
    pub fn path_segment(&self) -> &'static str {
        match self {
            PrepayKind::Jsapi { .. } => "jsapi",
            PrepayKind::App => "app",
            PrepayKind::H5(_) => "h5",
            PrepayKind::Native => "native",
        }
    }
}

/// `scene_info` of an H5 order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H5Scene {
    /// The buyer's IP address (`scene_info.payer_client_ip`).
    pub payer_client_ip: String,
    /// `scene_info.h5_info.type`: `Wap`, `iOS` or `Android`.
    pub h5_type: String,
    /// `h5_info.app_name`.
    pub app_name: Option<String>,
    /// `h5_info.app_url`.
    pub app_url: Option<String>,
}

impl H5Scene {
    /// A mobile-web (`Wap`) scene for a buyer's IP.
    pub fn wap(payer_client_ip: impl Into<String>) -> H5Scene {
        H5Scene {
            payer_client_ip: payer_client_ip.into(),
            h5_type: "Wap".into(),
            app_name: None,
            app_url: None,
        }
    }
}

/// A prepay request.
#[derive(Debug, Clone, PartialEq)]
pub struct PrepayRequest {
    /// How the buyer pays.
    pub kind: PrepayKind,
    /// What is bought, shown to the buyer (at most 127 bytes of UTF-8).
    pub description: String,
    /// The merchant's order number: 6 to 32 of digits, letters and `_-|*`.
    pub out_trade_no: String,
    /// `amount.total`, positive (currency CNY).
    pub amount: Fen,
    /// Where the payment notify goes: https, no query.
    pub notify_url: String,
    /// When the order stops being payable (`time_expire`, written in Beijing time).
    pub time_expire: Option<DateTime<Utc>>,
    /// Merchant data echoed in queries and notifies (at most 128 characters).
    pub attach: Option<String>,
    /// Coupon tag.
    pub goods_tag: Option<String>,
    /// Further top-level fields sent as they are (`detail`, `settle_info`, …); a key the
    /// request already writes is refused.
    pub extra: Map<String, Value>,
}

impl PrepayRequest {
    /// A request with the required fields; the optional ones are `None`.
    pub fn new(
        kind: PrepayKind,
        description: impl Into<String>,
        out_trade_no: impl Into<String>,
        amount: Fen,
        notify_url: impl Into<String>,
    ) -> PrepayRequest {
        PrepayRequest {
            kind,
            description: description.into(),
            out_trade_no: out_trade_no.into(),
            amount,
            notify_url: notify_url.into(),
            time_expire: None,
            attach: None,
            goods_tag: None,
            extra: Map::new(),
        }
    }

    /// Checks every field and builds the body, with the client's appid and mchid.
    pub fn to_body(&self, app_id: &str, mch_id: &str) -> Result<Value, Error> {
        require_non_empty("description", &self.description)?;
        check_max_bytes("description", &self.description, 127)?;
        check_merchant_no("out_trade_no", &self.out_trade_no, 6, 32, "_-|*")?;
        let total = amount("amount.total", self.amount)?;
        check_notify_url("notify_url", &self.notify_url)?;

        let mut body = Map::new();
        body.insert("appid".into(), app_id.into());
        body.insert("mchid".into(), mch_id.into());
        body.insert("description".into(), self.description.clone().into());
        body.insert("out_trade_no".into(), self.out_trade_no.clone().into());
        if let Some(expire) = self.time_expire {
            body.insert("time_expire".into(), rfc3339_beijing(expire).into());
        }
        if let Some(attach) = &self.attach {
            check_max_chars("attach", attach, 128)?;
            body.insert("attach".into(), attach.clone().into());
        }
        body.insert("notify_url".into(), self.notify_url.clone().into());
        if let Some(tag) = &self.goods_tag {
            check_max_chars("goods_tag", tag, 32)?;
            body.insert("goods_tag".into(), tag.clone().into());
        }
        body.insert(
            "amount".into(),
            json!({"total": total.get(), "currency": "CNY"}),
        );
        match &self.kind {
            PrepayKind::Jsapi { openid } => {
                check_token("payer.openid", openid, 128, "-_")?;
                body.insert("payer".into(), json!({ "openid": openid }));
            }
            PrepayKind::H5(scene) => {
                check_ip("scene_info.payer_client_ip", &scene.payer_client_ip)?;
                if !["Wap", "iOS", "Android"].contains(&scene.h5_type.as_str()) {
                    return Err(invalid(
                        "scene_info.h5_info.type",
                        "must be Wap, iOS or Android",
                    ));
                }
                let mut h5_info = Map::new();
                h5_info.insert("type".into(), scene.h5_type.clone().into());
                for (key, value) in [("app_name", &scene.app_name), ("app_url", &scene.app_url)] {
                    if let Some(value) = value {
                        h5_info.insert(key.into(), value.clone().into());
                    }
                }
                body.insert(
                    "scene_info".into(),
                    json!({"payer_client_ip": scene.payer_client_ip, "h5_info": h5_info}),
                );
            }
            PrepayKind::App | PrepayKind::Native => {}
        }
        for (key, value) in &self.extra {
            if body.contains_key(key) {
                return Err(invalid(
                    "extra",
                    format!("`{key}` is written by the request itself"),
                ));
            }
            body.insert(key.clone(), value.clone());
        }
        Ok(Value::Object(body))
    }

    /// The call: `POST /v3/pay/transactions/{type}` with the checked body.
    pub(crate) fn call(&self, app_id: &str, mch_id: &str) -> Result<Call, Error> {
        let body = self.to_body(app_id, mch_id)?;
        Ok(Call::post(
            ENDPOINT,
            format!("/v3/pay/transactions/{}", self.kind.path_segment()),
            &body,
        ))
    }
}

/// The answer to a prepay: exactly one of its three fields, the one the kind asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PrepayResponse {
    /// JSAPI and APP: the prepay id (valid two hours).
    pub prepay_id: Option<String>,
    /// H5: the page to send the buyer to.
    pub h5_url: Option<String>,
    /// NATIVE: the QR code's content.
    pub code_url: Option<String>,
    /// The whole answer.
    pub raw: Value,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default, deserialize_with = "opt_string")]
    prepay_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    h5_url: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    code_url: Option<String>,
}

/// Reads an answer with exactly one of `prepay_id`, `h5_url`, `code_url`.
impl TryFrom<Value> for PrepayResponse {
    type Error = Error;

    fn try_from(raw: Value) -> Result<Self, Error> {
        let wire: Wire = read(&raw, ENDPOINT)?;
        let present = [&wire.prepay_id, &wire.h5_url, &wire.code_url]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if present != 1 {
            return Err(malformed(
                ENDPOINT,
                "expected exactly one of `prepay_id`, `h5_url`, `code_url`",
            ));
        }
        Ok(PrepayResponse {
            prepay_id: wire.prepay_id,
            h5_url: wire.h5_url,
            code_url: wire.code_url,
            raw,
        })
    }
}

impl PrepayResponse {
    /// Checks that the answer carries what `kind` asks for (an answer for another kind of
    /// order is refused, not half-used).
    pub fn ensure_requested(self, kind: &PrepayKind) -> Result<PrepayResponse, Error> {
        let (field, present) = match kind {
            PrepayKind::Jsapi { .. } | PrepayKind::App => ("prepay_id", self.prepay_id.is_some()),
            PrepayKind::H5(_) => ("h5_url", self.h5_url.is_some()),
            PrepayKind::Native => ("code_url", self.code_url.is_some()),
        };
        if !present {
            return Err(malformed(
                ENDPOINT,
                format!(
                    "missing field `{field}` for a {} order",
                    kind.path_segment()
                ),
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn native() -> PrepayRequest {
        PrepayRequest::new(
            PrepayKind::Native,
            "Image形象店-深圳腾大-QQ公仔",
            "1217752501201407033233368018",
            Fen::new(9999),
            "https://www.weixin.qq.com/wxpay/pay.php",
        )
    }

    #[test]
    fn the_body_follows_the_reference() {
        let mut request = native();
        request.time_expire = Some(Utc.with_ymd_and_hms(2018, 6, 8, 2, 34, 56).unwrap());
        request.attach = Some("自定义数据".into());
        let body = request.to_body("wxd678efh567hg6787", "1230000109").unwrap();
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","time_expire":"2018-06-08T10:34:56+08:00","attach":"自定义数据","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":9999,"currency":"CNY"}}"#
        );
        let call = request.call("wxd678efh567hg6787", "1230000109").unwrap();
        assert_eq!(call.path_and_query, "/v3/pay/transactions/native");
        assert_eq!(call.method, reqwest::Method::POST);
    }

    #[test]
    fn each_kind_writes_what_it_requires() {
        let mut request = native();
        request.kind = PrepayKind::Jsapi {
            openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
        };
        let body = request.to_body("wx1", "1").unwrap();
        assert_eq!(body["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
        request.kind = PrepayKind::H5(H5Scene::wap("203.0.113.7"));
        let body = request.to_body("wx1", "1").unwrap();
        assert_eq!(body["scene_info"]["payer_client_ip"], "203.0.113.7");
        assert_eq!(body["scene_info"]["h5_info"]["type"], "Wap");
        assert_eq!(
            request.call("wx1", "1").unwrap().path_and_query,
            "/v3/pay/transactions/h5"
        );
    }

    #[test]
    fn bad_fields_are_refused_before_sending() {
        let field = |request: PrepayRequest| match request.to_body("wx1", "1") {
            Err(Error::InvalidRequest { field, .. }) => field,
            Err(Error::Amount { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut r = native();
        r.description = "商".repeat(43); // 129 bytes
        assert_eq!(field(r), "description");
        let mut r = native();
        r.out_trade_no = "T1".into();
        assert_eq!(field(r), "out_trade_no");
        let mut r = native();
        r.amount = Fen::ZERO;
        assert_eq!(field(r), "amount.total");
        let mut r = native();
        r.notify_url = "https://shop.example/notify?x=1".into();
        assert_eq!(field(r), "notify_url");
        let mut r = native();
        r.kind = PrepayKind::Jsapi {
            openid: String::new(),
        };
        assert_eq!(field(r), "payer.openid");
        let mut r = native();
        r.kind = PrepayKind::H5(H5Scene::wap("not-an-ip"));
        assert_eq!(field(r), "scene_info.payer_client_ip");
        let mut r = native();
        r.extra.insert("amount".into(), json!({"total": 1}));
        assert_eq!(field(r), "extra");
    }

    #[test]
    fn answers_carry_exactly_the_field_asked_for() {
        let answer =
            PrepayResponse::try_from(json!({"code_url": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}))
                .unwrap();
        assert_eq!(
            answer.code_url.as_deref(),
            Some("weixin://wxpay/bizpayurl?pr=p4lpSuKzz")
        );
        assert!(answer.clone().ensure_requested(&PrepayKind::Native).is_ok());
        let error = answer.ensure_requested(&PrepayKind::App).unwrap_err();
        assert!(error.to_string().contains("prepay_id"), "{error}");
        for bad in [
            json!({}),
            json!({"prepay_id": "wx1", "code_url": "weixin://x"}),
            json!({"prepay_id": ""}),
            json!({"prepay_id": 5}),
        ] {
            assert!(
                matches!(
                    PrepayResponse::try_from(bad.clone()),
                    Err(Error::Malformed {
                        context: ENDPOINT,
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
