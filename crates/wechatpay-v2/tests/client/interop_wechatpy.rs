//! Interop with the real wechatpy 1.8.18 from PyPI, in both directions.

use serde_json::{Value, json};
use test_support::run_python;
use wechatpay_v2::xml::{decode, encode};
use wechatpay_v2::{
    ApiKey, Params, SignType, app_pay_params, decrypt_req_info, encrypt_req_info, jsapi_pay_params,
    parse_payment_notify, sign, sign_params, verify,
};

const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn to_json(params: &Params) -> Value {
    Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn from_json(value: &Value) -> Params {
    value
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
        .collect()
}

fn order(body: &str) -> Params {
    [
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ("body", body),
        ("out_trade_no", "20150806125346"),
        ("total_fee", "9999"),
        ("spbill_create_ip", "123.12.12.123"),
        ("notify_url", "https://example.com/wxpay/notify"),
        ("trade_type", "NATIVE"),
        ("product_id", "12235413214070356458058"),
        ("attach", "深圳分店 & <special> 'quotes'"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

const BODIES: [&str; 2] = ["Ipad mini 16G white", "腾讯充值中心-QQ会员充值"];

/// wechatpy signs (calculate_signature / calculate_signature_hmac) and serialises
/// (dict_to_xml); this crate parses and verifies.
#[test]
fn documents_signed_by_wechatpy_verify_here() {
    for body in BODIES {
        for sign_type in [SignType::Md5, SignType::HmacSha256] {
            let mut params = order(body);
            if sign_type == SignType::HmacSha256 {
                params.insert("sign_type".into(), "HMAC-SHA256".into());
            }
            let out = run_python(
                r#"
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac, dict_to_xml
params = data['params']
if data['hmac']:
    sign = calculate_signature_hmac(params, data['key'])
else:
    sign = calculate_signature(params, data['key'])
result = {'sign': sign, 'xml': dict_to_xml(params, sign)}
"#,
                &json!({"params": to_json(&params), "key": KEY, "hmac": sign_type == SignType::HmacSha256}),
            );
            let xml = out["xml"].as_str().unwrap();
            let received = decode(xml.as_bytes()).expect("wechatpy's XML parses");
            assert_eq!(received.get("body").map(String::as_str), Some(body));
            assert_eq!(
                verify(&received, &ApiKey::new(KEY)),
                Ok(sign_type),
                "{body} {sign_type}"
            );
            assert_eq!(
                out["sign"],
                json!(sign(&params, sign_type, &ApiKey::new(KEY)))
            );
        }
    }
}

/// This crate signs and serialises; wechatpy parses (xmltodict) and recomputes the signature.
#[test]
fn documents_signed_here_verify_in_wechatpy() {
    for body in BODIES {
        for sign_type in [SignType::Md5, SignType::HmacSha256] {
            let mut params = order(body);
            sign_params(&mut params, sign_type, &ApiKey::new(KEY));
            let out = run_python(
                r#"
import xmltodict
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac
doc = dict(xmltodict.parse(data['xml'])['xml'])
sign = doc.pop('sign')
if doc.get('sign_type') == 'HMAC-SHA256':
    expected = calculate_signature_hmac(doc, data['key'])
else:
    expected = calculate_signature(doc, data['key'])
result = {'ok': sign == expected, 'body': doc['body'], 'attach': doc['attach']}
"#,
                &json!({"xml": encode(&params), "key": KEY}),
            );
            assert_eq!(out["ok"], json!(true), "{body} {sign_type}");
            assert_eq!(out["body"], json!(body));
            assert_eq!(out["attach"], json!(params["attach"]));
        }
    }
}

fn payment_notify(body_total_fee: &str) -> Params {
    [
        ("appid", "wx2421b1c4370ec43b"),
        ("attach", "支付测试"),
        ("bank_type", "CFT"),
        ("fee_type", "CNY"),
        ("is_subscribe", "Y"),
        ("mch_id", "10000100"),
        ("nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"),
        ("openid", "oUpF8uMEb4qRXf22hE3X68TekukE"),
        ("out_trade_no", "1409811653"),
        ("result_code", "SUCCESS"),
        ("return_code", "SUCCESS"),
        ("time_end", "20140903131540"),
        ("total_fee", body_total_fee),
        ("coupon_fee_0", "10"),
        ("coupon_count", "1"),
        ("coupon_type_0", "CASH"),
        ("coupon_id_0", "10000"),
        ("trade_type", "JSAPI"),
        ("transaction_id", "1004400740201409030005092168"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// wechatpy's `WeChatPay.parse_payment_result` accepts a notify built here (it only knows
/// MD5), and refuses it once tampered.
#[test]
fn wechatpy_parse_payment_result_accepts_notifies_built_here() {
    let key = ApiKey::new(KEY);
    let mut notify = payment_notify("1");
    sign_params(&mut notify, SignType::Md5, &key);
    let xml = encode(&notify);
    let tampered = xml.replace("<total_fee>1</total_fee>", "<total_fee>200000</total_fee>");
    assert_ne!(xml, tampered);
    let out = run_python(
        r#"
from wechatpy.pay import WeChatPay
from wechatpy.exceptions import InvalidSignatureException
pay = WeChatPay(appid='wx2421b1c4370ec43b', api_key=data['key'], mch_id='10000100')
parsed = pay.parse_payment_result(data['xml'])
try:
    pay.parse_payment_result(data['tampered'])
    tampered = 'accepted'
except InvalidSignatureException:
    tampered = 'refused'
result = {'total_fee': parsed['total_fee'], 'attach': parsed['attach'], 'tampered': tampered}
"#,
        &json!({"xml": xml, "tampered": tampered, "key": KEY}),
    );
    assert_eq!(
        out,
        json!({"total_fee": 1, "attach": "支付测试", "tampered": "refused"})
    );

    // And this crate agrees on both.
    let parsed = parse_payment_notify(xml.as_bytes(), &key).unwrap();
    assert_eq!(parsed.total_fee.get(), 1);
    assert_eq!(
        parsed.raw.get("coupon_fee_0").map(String::as_str),
        Some("10")
    );
    assert!(parse_payment_notify(tampered.as_bytes(), &key).is_err());
}

/// A notify serialised by wechatpy (dict_to_xml) with an HMAC signature and no sign_type is
/// verified as HMAC here.
#[test]
fn hmac_notify_without_sign_type_from_wechatpy_verifies() {
    let notify = payment_notify("9999");
    let out = run_python(
        r#"
from wechatpy.pay.utils import calculate_signature_hmac, dict_to_xml
result = dict_to_xml(data['params'], calculate_signature_hmac(data['params'], data['key']))
"#,
        &json!({"params": to_json(&notify), "key": KEY}),
    );
    let parsed = parse_payment_notify(out.as_str().unwrap().as_bytes(), &ApiKey::new(KEY))
        .expect("HMAC detected from the signature length");
    assert_eq!(parsed.sign_type, SignType::HmacSha256);
    assert_eq!(parsed.total_fee.get(), 9999);
}

#[test]
fn client_side_pay_parameters_match_wechatpy() {
    let key = ApiKey::new(KEY);
    let out = run_python(
        r#"
from wechatpy.pay import WeChatPay
pay = WeChatPay(appid='wxd930ea5d5a258f4f', api_key=data['key'], mch_id='10000100')
result = {
    'jsapi': pay.jsapi.get_jsapi_params('wx201410272009395522657a690389285100', timestamp='1414561699', nonce_str='5K8264ILTKCH16CQ2502SI8ZNMTM67VS'),
    'app': pay.order.get_appapi_params('wx201410272009395522657a690389285100', timestamp='1414561699', nonce_str='5K8264ILTKCH16CQ2502SI8ZNMTM67VS'),
}
"#,
        &json!({"key": KEY}),
    );
    let jsapi = jsapi_pay_params(
        "wxd930ea5d5a258f4f",
        "wx201410272009395522657a690389285100",
        SignType::Md5,
        &key,
        "1414561699",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    );
    assert_eq!(serde_json::to_value(&jsapi).unwrap(), out["jsapi"]);
    assert_eq!(jsapi.pay_sign, "FD19D752A746E5F238A6E53BD99EEBD0");
    let app = app_pay_params(
        "wxd930ea5d5a258f4f",
        "10000100",
        "wx201410272009395522657a690389285100",
        SignType::Md5,
        &key,
        "1414561699",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    );
    assert_eq!(serde_json::to_value(&app).unwrap(), out["app"]);
}

/// Refund req_info encrypted here decrypts in wechatpy, and the reverse.
#[test]
fn refund_req_info_interop() {
    let key = ApiKey::new("OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk");
    let mut fields = Params::new();
    for (k, v) in [
        ("out_refund_no", "R20260101"),
        ("out_trade_no", "T20260101"),
        ("refund_id", "50300103182020010413419046597"),
        ("transaction_id", "4200000483202001042069747825"),
        ("total_fee", "9999"),
        ("refund_fee", "100"),
        ("refund_status", "SUCCESS"),
        ("refund_recv_accout", "支付用户零钱"),
    ] {
        fields.insert(k.into(), v.into());
    }
    let req_info = encrypt_req_info(&fields, &key);
    let outer = format!(
        "<xml><return_code>SUCCESS</return_code><appid>wx1</appid><mch_id>1</mch_id><req_info><![CDATA[{req_info}]]></req_info></xml>"
    );
    let out = run_python(
        r#"
from wechatpy.crypto import WeChatRefundCrypto, RefundCrypto
import hashlib
decrypted = dict(WeChatRefundCrypto(data['key']).decrypt_message(data['xml'], 'wx1', '1'))
aes_key = hashlib.md5(data['key'].encode()).hexdigest().encode()
text = '<root><out_refund_no><![CDATA[from-wechatpy]]></out_refund_no><refund_fee>5</refund_fee></root>'
encrypted = RefundCrypto(aes_key).encrypt(text).decode()
result = {'decrypted': decrypted, 'encrypted': encrypted}
"#,
        &json!({"xml": outer, "key": key.expose_secret()}),
    );
    assert_eq!(from_json(&out["decrypted"]), fields);
    let back = decrypt_req_info(out["encrypted"].as_str().unwrap(), &key).unwrap();
    assert_eq!(
        back.get("out_refund_no").map(String::as_str),
        Some("from-wechatpy")
    );
    assert_eq!(back.get("refund_fee").map(String::as_str), Some("5"));
}
