//! `unifiedorder`: creates the prepay order a buyer pays.

use super::Endpoint;
use super::validate::{
    check_max_len, check_merchant_no, check_time, insert_opt, invalid, positive, require_non_empty,
};
use crate::fields::Fields;
use crate::types::TradeType;
use crate::{Error, Fen, Params};

pub(crate) const ENDPOINT: Endpoint = Endpoint {
    path: "/pay/unifiedorder",
    needs_merchant_certificate: false,
};

/// What is bought, and how. Each trade type carries the field it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeKind {
    /// In WeChat (official account page or mini program): the buyer's `openid` for this appid.
    Jsapi {
        /// The buyer's openid.
        openid: String,
    },
    /// QR code: the merchant's product id. Answered with `code_url`.
    Native {
        /// The product id.
        product_id: String,
    },
    /// H5 in a mobile browser: the `scene_info` JSON. Answered with `mweb_url`.
    Mweb {
        /// `scene_info` JSON, e.g. `{"h5_info":{"type":"Wap","wap_url":"…","wap_name":"…"}}`.
        scene_info: String,
    },
    /// Native app (the client must be configured with the open-platform appid).
    App,
}

impl TradeKind {
    /// The `trade_type` value.
    pub fn trade_type(&self) -> TradeType {
        match self {
            TradeKind::Jsapi { .. } => TradeType::Jsapi,
            TradeKind::Native { .. } => TradeType::Native,
            TradeKind::Mweb { .. } => TradeType::Mweb,
            TradeKind::App => TradeType::App,
        }
    }
}

/// A `unifiedorder` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderRequest {
    /// Trade type and the field it requires.
    pub kind: TradeKind,
    /// What is bought, shown to the buyer (≤ 128 characters).
    pub body: String,
    /// The merchant's order number (≤ 32 of digits, letters, `_-|*`).
    pub out_trade_no: String,
    /// The amount; must be positive.
    pub total_fee: Fen,
    /// The buyer's IP address.
    pub spbill_create_ip: String,
    /// Where the payment notify goes (http or https URL without query).
    pub notify_url: String,
    /// Goods detail JSON.
    pub detail: Option<String>,
    /// Merchant data echoed in queries and notifies (≤ 127 characters).
    pub attach: Option<String>,
    /// Device or shop id.
    pub device_info: Option<String>,
    /// Currency; WeChat defaults to CNY.
    pub fee_type: Option<String>,
    /// Order creation time, `yyyyMMddHHmmss` Beijing time ([`beijing_time`](crate::beijing_time)).
    pub time_start: Option<String>,
    /// Order expiry time, `yyyyMMddHHmmss` Beijing time ([`beijing_time`](crate::beijing_time)).
    pub time_expire: Option<String>,
    /// Coupon tag.
    pub goods_tag: Option<String>,
    /// `no_credit` to refuse credit cards.
    pub limit_pay: Option<String>,
    /// Further fields sent as they are (signed like the others).
    pub extra: Params,
}

impl UnifiedOrderRequest {
    /// A request with the required fields; the optional ones are `None`.
    pub fn new(
        kind: TradeKind,
        body: impl Into<String>,
        out_trade_no: impl Into<String>,
        total_fee: Fen,
        spbill_create_ip: impl Into<String>,
        notify_url: impl Into<String>,
    ) -> Self {
        UnifiedOrderRequest {
            kind,
            body: body.into(),
            out_trade_no: out_trade_no.into(),
            total_fee,
            spbill_create_ip: spbill_create_ip.into(),
            notify_url: notify_url.into(),
            detail: None,
            attach: None,
            device_info: None,
            fee_type: None,
            time_start: None,
            time_expire: None,
            goods_tag: None,
            limit_pay: None,
            extra: Params::new(),
        }
    }

    /// Checks every field and builds the parameters (without appid, mch_id, nonce, sign).
    pub fn to_params(&self) -> Result<Params, Error> {
        require_non_empty("body", &self.body)?;
        check_max_len("body", &self.body, 128)?;
        check_merchant_no("out_trade_no", &self.out_trade_no, 32)?;
        let total_fee = positive("total_fee", self.total_fee)?;
        require_non_empty("spbill_create_ip", &self.spbill_create_ip)?;
        require_non_empty("notify_url", &self.notify_url)?;
        if !(self.notify_url.starts_with("http://") || self.notify_url.starts_with("https://")) {
            return Err(invalid("notify_url", "must be an http:// or https:// URL"));
        }
        if self.notify_url.contains('?') {
            return Err(invalid("notify_url", "must not carry query parameters"));
        }
        if let Some(attach) = &self.attach {
            check_max_len("attach", attach, 127)?;
        }
        check_time("time_start", &self.time_start)?;
        check_time("time_expire", &self.time_expire)?;

        let mut params = Params::new();
        params.insert("body".into(), self.body.clone());
        params.insert("out_trade_no".into(), self.out_trade_no.clone());
        params.insert("total_fee".into(), total_fee.to_fen_string());
        params.insert("spbill_create_ip".into(), self.spbill_create_ip.clone());
        params.insert("notify_url".into(), self.notify_url.clone());
        params.insert("trade_type".into(), self.kind.trade_type().as_str().into());
        match &self.kind {
            TradeKind::Jsapi { openid } => {
                require_non_empty("openid", openid)?;
                params.insert("openid".into(), openid.clone());
            }
            TradeKind::Native { product_id } => {
                require_non_empty("product_id", product_id)?;
                check_max_len("product_id", product_id, 32)?;
                params.insert("product_id".into(), product_id.clone());
            }
            TradeKind::Mweb { scene_info } => {
                require_non_empty("scene_info", scene_info)?;
                serde_json::from_str::<serde_json::Value>(scene_info)
                    .map_err(|e| invalid("scene_info", format!("not JSON: {e}")))?;
                params.insert("scene_info".into(), scene_info.clone());
            }
            TradeKind::App => {}
        }
        insert_opt(&mut params, "detail", &self.detail);
        insert_opt(&mut params, "attach", &self.attach);
        insert_opt(&mut params, "device_info", &self.device_info);
        insert_opt(&mut params, "fee_type", &self.fee_type);
        insert_opt(&mut params, "time_start", &self.time_start);
        insert_opt(&mut params, "time_expire", &self.time_expire);
        insert_opt(&mut params, "goods_tag", &self.goods_tag);
        insert_opt(&mut params, "limit_pay", &self.limit_pay);
        for (key, value) in &self.extra {
            if matches!(
                key.as_str(),
                "sign" | "sign_type" | "appid" | "mch_id" | "nonce_str"
            ) {
                return Err(invalid("extra", format!("`{key}` is set by the client")));
            }
            params.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Ok(params)
    }
}

/// The answer to `unifiedorder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderResponse {
    /// The trade type WeChat confirmed.
    pub trade_type: TradeType,
    /// The prepay id (valid for 2 hours).
    pub prepay_id: String,
    /// NATIVE: the URL to show as a QR code.
    pub code_url: Option<String>,
    /// MWEB: the URL to send the buyer's browser to.
    pub mweb_url: Option<String>,
    /// Every field received.
    pub raw: Params,
}

impl UnifiedOrderResponse {
    /// Refuses an answer for another trade type than the one requested.
    pub(crate) fn ensure_requested(self, requested: &TradeKind) -> Result<Self, Error> {
        let expected = requested.trade_type();
        if self.trade_type != expected {
            return Err(Error::Malformed {
                context: ENDPOINT.path,
                reason: format!("trade_type is {}, requested {expected}", self.trade_type),
            });
        }
        Ok(self)
    }
}

/// Reads a checked answer: `trade_type`, `prepay_id`, and the URL its trade type requires
/// (`code_url` for NATIVE, `mweb_url` for MWEB).
impl TryFrom<Params> for UnifiedOrderResponse {
    type Error = Error;

    fn try_from(raw: Params) -> Result<Self, Error> {
        let f = Fields::new(&raw, ENDPOINT.path);
        let trade_type: TradeType = f.parsed("trade_type")?;
        let code_url = f.optional("code_url");
        let mweb_url = f.optional("mweb_url");
        match trade_type {
            TradeType::Native if code_url.is_none() => {
                f.required("code_url")?;
            }
            TradeType::Mweb if mweb_url.is_none() => {
                f.required("mweb_url")?;
            }
            _ => {}
        }
        Ok(UnifiedOrderResponse {
            trade_type,
            prepay_id: f.required("prepay_id")?,
            code_url,
            mweb_url,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, malformed};

    fn native() -> UnifiedOrderRequest {
        UnifiedOrderRequest::new(
            TradeKind::Native {
                product_id: "P1".into(),
            },
            "goods",
            "T1",
            Fen::new(1),
            "127.0.0.1",
            "https://shop.example/notify",
        )
    }

    #[test]
    fn reads_each_trade_types_url() {
        let native = UnifiedOrderResponse::try_from(answer(&[
            ("result_code", "SUCCESS"),
            ("trade_type", "NATIVE"),
            ("prepay_id", "wx1"),
            ("code_url", "weixin://wxpay/bizpayurl?pr=abc"),
        ]))
        .unwrap();
        assert_eq!(native.trade_type, TradeType::Native);
        assert_eq!(native.prepay_id, "wx1");
        assert_eq!(
            native.code_url.as_deref(),
            Some("weixin://wxpay/bizpayurl?pr=abc")
        );
        assert_eq!(native.raw["result_code"], "SUCCESS");

        let jsapi = UnifiedOrderResponse::try_from(answer(&[
            ("trade_type", "JSAPI"),
            ("prepay_id", "wx2"),
        ]))
        .unwrap();
        assert_eq!((jsapi.code_url, jsapi.mweb_url), (None, None));
    }

    #[test]
    fn refuses_an_answer_without_what_its_trade_type_needs() {
        for (pairs, field) in [
            (
                &[("trade_type", "NATIVE"), ("prepay_id", "wx1")][..],
                "code_url",
            ),
            (
                &[("trade_type", "MWEB"), ("prepay_id", "wx1")][..],
                "mweb_url",
            ),
            (&[("trade_type", "JSAPI")][..], "prepay_id"),
            (&[("prepay_id", "wx1")][..], "trade_type"),
        ] {
            let (context, reason) =
                malformed(UnifiedOrderResponse::try_from(answer(pairs)).unwrap_err());
            assert_eq!(context, "/pay/unifiedorder");
            assert!(reason.contains(field), "{reason}");
        }
        let (_, reason) = malformed(
            UnifiedOrderResponse::try_from(answer(&[("trade_type", "SCAN"), ("prepay_id", "wx1")]))
                .unwrap_err(),
        );
        assert!(reason.contains("SCAN"), "{reason}");
    }

    #[test]
    fn an_answer_for_another_trade_type_is_refused() {
        let jsapi = UnifiedOrderResponse::try_from(answer(&[
            ("trade_type", "JSAPI"),
            ("prepay_id", "wx2"),
        ]))
        .unwrap();
        let (_, reason) = malformed(jsapi.ensure_requested(&native().kind).unwrap_err());
        assert_eq!(reason, "trade_type is JSAPI, requested NATIVE");
    }

    /// The client counted fourteen digits where the simulator parsed a date: both now parse.
    #[test]
    fn order_times_must_be_real_beijing_times() {
        for bad in ["99999999999999", "20261301000000", "20260230120000"] {
            let mut request = native();
            request.time_start = Some(bad.into());
            match request.to_params() {
                Err(Error::InvalidRequest { field, reason }) => {
                    assert_eq!(field, "time_start");
                    assert!(reason.contains("yyyyMMddHHmmss"), "{reason}");
                }
                other => panic!("{bad}: {other:?}"),
            }
            let mut request = native();
            request.time_expire = Some(bad.into());
            assert!(matches!(
                request.to_params(),
                Err(Error::InvalidRequest {
                    field: "time_expire",
                    ..
                })
            ));
        }
        let mut request = native();
        request.time_start = Some("20260101120000".into());
        request.time_expire = Some("20260101140000".into());
        let params = request.to_params().unwrap();
        assert_eq!(params["time_expire"], "20260101140000");
    }
}
