//! Payment notifies: verification over every field, typed reading, per-merchant keys, replies.

use wechatpay_v2::xml::encode;
use wechatpay_v2::{
    ApiKey, Error, Fen, NOTIFY_SUCCESS_REPLY, Params, SignType, TradeType, UnverifiedNotify,
    VerifyError, fail_reply, parse_payment_notify, sign_params, success_reply, xml,
};

const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn notify_fields() -> Params {
    [
        ("appid", "wx2421b1c4370ec43b"),
        ("attach", "支付测试"),
        ("bank_type", "CFT"),
        ("cash_fee", "9989"),
        ("coupon_count", "1"),
        ("coupon_fee", "10"),
        ("coupon_fee_0", "10"),
        ("coupon_id_0", "10000"),
        ("fee_type", "CNY"),
        ("is_subscribe", "Y"),
        ("mch_id", "10000100"),
        ("nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"),
        ("openid", "oUpF8uMEb4qRXf22hE3X68TekukE"),
        ("out_trade_no", "1409811653"),
        ("result_code", "SUCCESS"),
        ("return_code", "SUCCESS"),
        ("settlement_total_fee", "9999"),
        ("time_end", "20140903131540"),
        ("total_fee", "9999"),
        ("trade_type", "JSAPI"),
        ("transaction_id", "1004400740201409030005092168"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn signed_notify(sign_type: SignType) -> String {
    let mut fields = notify_fields();
    if sign_type == SignType::HmacSha256 {
        // Signed as HMAC but without announcing it, as some notifies arrive.
        let signature = wechatpay_v2::sign(&fields, sign_type, &ApiKey::new(KEY));
        fields.insert("sign".into(), signature);
    } else {
        sign_params(&mut fields, sign_type, &ApiKey::new(KEY));
    }
    encode(&fields)
}

#[test]
fn a_signed_notify_is_read_into_typed_fields_keeping_everything() {
    for sign_type in [SignType::Md5, SignType::HmacSha256] {
        let body = signed_notify(sign_type);
        let notify = parse_payment_notify(body.as_bytes(), &ApiKey::new(KEY)).unwrap();
        assert!(notify.is_paid());
        assert_eq!(notify.sign_type, sign_type);
        assert_eq!(notify.total_fee, Fen::new(9999));
        assert_eq!(notify.cash_fee, Some(Fen::new(9989)));
        assert_eq!(notify.settlement_total_fee, Some(Fen::new(9999)));
        assert_eq!(notify.trade_type, Some(TradeType::Jsapi));
        assert_eq!(notify.attach.as_deref(), Some("支付测试"));
        assert_eq!(
            notify.transaction_id.as_deref(),
            Some("1004400740201409030005092168")
        );
        assert_eq!(notify.raw["coupon_id_0"], "10000");
        assert_eq!(notify.raw.len(), notify_fields().len() + 1);
    }
}

#[test]
fn forged_and_altered_notifies_are_refused() {
    let key = ApiKey::new(KEY);
    // The classic: a 1-fen payment passed off as a large one.
    let body = signed_notify(SignType::Md5)
        .replace("<total_fee>9999</total_fee>", "<total_fee>1</total_fee>");
    assert!(matches!(
        parse_payment_notify(body.as_bytes(), &key),
        Err(Error::InvalidSignature {
            source: VerifyError::Mismatch(SignType::Md5),
            ..
        })
    ));
    // An added coupon field is covered too.
    let added =
        signed_notify(SignType::Md5).replace("</xml>", "<coupon_fee_1>5</coupon_fee_1></xml>");
    assert!(parse_payment_notify(added.as_bytes(), &key).is_err());
    // No signature at all.
    let unsigned = encode(&notify_fields());
    assert!(matches!(
        parse_payment_notify(unsigned.as_bytes(), &key),
        Err(Error::InvalidSignature {
            source: VerifyError::MissingSign,
            ..
        })
    ));
    // Another merchant's key.
    assert!(
        parse_payment_notify(
            signed_notify(SignType::Md5).as_bytes(),
            &ApiKey::new("another-merchant-key-000000000000")
        )
        .is_err()
    );
    // Hostile XML is refused before any signature work.
    let xxe = r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>"#;
    assert!(matches!(
        parse_payment_notify(xxe.as_bytes(), &key),
        Err(Error::Xml {
            source: xml::XmlError::EntityDeclaration { .. },
            ..
        })
    ));
}

#[test]
fn the_key_can_be_chosen_from_the_notify_merchant() {
    let keys = [
        ("10000100", ApiKey::new(KEY)),
        ("10000200", ApiKey::new("second-merchant-key-0000000000000")),
    ];
    let body = signed_notify(SignType::Md5);
    let unverified = UnverifiedNotify::parse(body.as_bytes()).unwrap();
    assert_eq!(unverified.mch_id(), Some("10000100"));
    assert_eq!(unverified.appid(), Some("wx2421b1c4370ec43b"));
    let key = &keys
        .iter()
        .find(|(mch, _)| Some(*mch) == unverified.mch_id())
        .unwrap()
        .1;
    let notify = unverified.verify(key).unwrap();
    assert_eq!(notify.mch_id, "10000100");
}

#[test]
fn failed_payments_and_protocol_failures() {
    let key = ApiKey::new(KEY);
    let mut failed = notify_fields();
    failed.insert("result_code".into(), "FAIL".into());
    failed.insert("err_code".into(), "PAYERROR".into());
    failed.shift_remove("transaction_id");
    sign_params(&mut failed, SignType::Md5, &key);
    let notify = parse_payment_notify(encode(&failed).as_bytes(), &key).unwrap();
    assert!(!notify.is_paid());
    assert_eq!(notify.err_code.as_deref(), Some("PAYERROR"));

    // A paid notify without transaction_id is not a payment this crate can record.
    let mut no_id = notify_fields();
    no_id.shift_remove("transaction_id");
    sign_params(&mut no_id, SignType::Md5, &key);
    assert!(matches!(
        parse_payment_notify(encode(&no_id).as_bytes(), &key),
        Err(Error::Malformed { .. })
    ));

    // A non-integer amount.
    let mut yuan = notify_fields();
    yuan.insert("total_fee".into(), "99.99".into());
    sign_params(&mut yuan, SignType::Md5, &key);
    assert!(matches!(
        parse_payment_notify(encode(&yuan).as_bytes(), &key),
        Err(Error::Malformed { .. })
    ));

    let protocol = "<xml><return_code>FAIL</return_code><return_msg>bad</return_msg></xml>";
    assert!(matches!(
        parse_payment_notify(protocol.as_bytes(), &key),
        Err(Error::Protocol { .. })
    ));
}

#[test]
fn replies_are_exact() {
    assert_eq!(
        success_reply(),
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    );
    assert_eq!(success_reply(), NOTIFY_SUCCESS_REPLY);
    let fail = fail_reply("签名失败");
    let parsed = xml::decode(fail.as_bytes()).unwrap();
    assert_eq!(parsed["return_code"], "FAIL");
    assert_eq!(parsed["return_msg"], "签名失败");
    // The shape WeChat (and the host's error replies) write: both fields in CDATA.
    assert!(
        fail.starts_with("<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA["),
        "{fail}"
    );
}

/// The host wrote its own FAIL reply, turning `]]>` into `]] >`; the one builder keeps any
/// message intact and the reply well-formed.
#[test]
fn fail_replies_are_safe_for_any_message() {
    for message in [
        "a]]>b",
        "]]>",
        "]]]]>>",
        "<xml><return_code>SUCCESS</return_code></xml>",
        "&amp; &xxe; <!DOCTYPE x>",
        "",
        " spaced \t\r\n lines ",
        "订单 T1: 金额不符",
    ] {
        let reply = fail_reply(message);
        let parsed = xml::decode(reply.as_bytes()).unwrap_or_else(|e| panic!("{message:?}: {e}"));
        assert_eq!(parsed.len(), 2, "{reply}");
        assert_eq!(parsed["return_code"], "FAIL", "{reply}");
        assert_eq!(parsed["return_msg"], message, "{reply}");
    }
    // Characters XML cannot carry at all are replaced, never written raw.
    let reply = fail_reply("nul\u{0} bell\u{7} esc\u{1b} \u{FFFE}\u{FFFF} ok");
    assert!(
        !reply.contains(['\u{0}', '\u{7}', '\u{1b}', '\u{FFFE}', '\u{FFFF}']),
        "{reply:?}"
    );
    let parsed = xml::decode(reply.as_bytes()).unwrap();
    assert_eq!(
        parsed["return_msg"],
        "nul\u{FFFD} bell\u{FFFD} esc\u{FFFD} \u{FFFD}\u{FFFD} ok"
    );
}
