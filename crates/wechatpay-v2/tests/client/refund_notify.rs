//! Refund notify decryption against the vectors published in wechatpy's and gopay's test
//! suites (real WeChat refund notifies).

use wechatpay_v2::{
    ApiKey, Error, Fen, Params, RefundStatus, decrypt_req_info, encrypt_req_info,
    parse_refund_notify,
};

/// wechatpy tests/test_crypto.py, `test_refund_notify_decrypt_message`.
const WECHATPY_KEY: &str = "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk";
const WECHATPY_NOTIFY: &str = r#"
<xml>
<return_code>SUCCESS</return_code>
<appid><![CDATA[wx4f4bc4dec97d474b]]></appid>
<mch_id><![CDATA[12345678]]></mch_id>
<nonce_str><![CDATA[c1c237efc87ee8dfcb3f9124b63a4d94]]></nonce_str>
<req_info><![CDATA[51A27s9LxbaEv52nBOrqa0FCs3HVIM31Wc3BpNqSCP5MQlS8HL1Vl7mZ21043B7PZy7adtOZGtZv44lGl0U8JXlVFL4Ltxsw6+pACjZBB0Qi1LUDjFlP2IyTxYX4eC57kxnCphDdIyRkU67kOWW/HN/efggTUlaPJkoL5kVe9Y1MZF55IHR4lwGI7WtVLtxATX1tkAVZF+/ri0WlPXo9+GkqeB2/id6Ozw09Tqp8C/TKbmKBpRhTCRU2TzfQoLa6fjbgETFHJ795aEMyUZPQYbbsz6U9Rj9lUzEh8+Oc8KYTXa9zVk+nnFr82+yjffb3d36ylTe0y/VmYf90rf9cbiJQdM00zZ8Qa99SlMTs2wjOO4Mi4Btlg1PebsLF8TkqbSZkRJDGs61UunUB8Km1b/VeBxXuv4D3H7DiVZ9Fj7lq2j07zFDpxxlhhen7kZvMWWO3lrfFpA9c4eFOqfF9SxcU9nBmHfDD1g/dsrMl6+a71xQHJ/gn80fZOefUBv92ggqutsuJ4gd4OqkmO0XUs8e4XQyLpra+LvpmahsU5lBIZuQcMq3FHrqe8hXTfp3+3qym2wGfvPI75jx41VZwmBQy9izB1Id+A5lUeXC5QJy+ryDu/dWkhB+aMjkElaI/Epmcc/IEPaI73W6Hc58hNednOM536rPnn+GDc98PdGszpLTjmaZSu8dtqwPaym66yRqFQowzFoBbooik57iHUFBCeWya7XcXYL9WKhRF3uIZM+Kfv9/Zs2pF+w9/EJpltuzPpT1GP2VTMSHz45zwphFlS2lX8wHyZ+k9n2dptzQqpOCPedt5iQAmAe1oNQMxNdPDH9g68x9UzWD1kfK/dPO+3NPAh0XG+io4x15fIknNf7JLjpAuWicMMzCdwC4hhqeYOzQ+pC9f2xJXi5YViNKIZY69oO8eoHYRitLZrHLgx3oB2zimmqX6BI+DMklKAzAqqgGmbFxcVTvxZB6cMCx+H7TTWXnjAG+6A3SrCcxg0l5+UB93pkAYR7SVJ+VaZoiBqlqnZvb7IM17n9XaaFntlzvbbFCIa7OnOQb5Lvw=]]></req_info>
</xml>"#;

/// gopay wechat/notify tests, `TestDecryptRefundNotifyReqInfo`.
const GOPAY_KEY: &str = "ziR0QKsTUfMOuochC9RfCdmfHECorQAP";
const GOPAY_REQ_INFO: &str = "YYwp8C48th0wnQzTqeI+41pflB26v+smFj9z6h9RPBgxTyZyxc+4YNEz7QEgZNWj/6rIb2MfyWMZmCc41CfjKSssoSZPXxOhUayb6KvNSZ1p6frOX1PDWzhyruXK7ouNND+gDsG4yZ0XXzsL4/pYNwLLba/71QrnkJ/BHcByk4EXnglju5DLup9pJQSnTxjomI9Rxu57m9jg5lLQFxMWXyeASZJNvof0ulnHlWJswS4OxKOkmW7VEyKyLGV6npoOm03Qsx2wkRxLsSa9gPpg4hdaReeUqh1FMbm7aWjyrVYT/MEZWg98p4GomEIYvz34XfDncTezX4bf/ZiSLXt79aE1/YTZrYfymXeCrGjlbe0rg/T2ezJHAC870u2vsVbY1/KcE2A443N+DEnAziXlBQ1AeWq3Rqk/O6/TMM0lomzgctAOiAMg+bh5+Gu1ubA9O3E+vehULydD5qx2o6i3+qA9ORbH415NyRrQdeFq5vmCiRikp5xYptWiGZA0tkoaLKMPQ4ndE5gWHqiBbGPfULZWokI+QjjhhBmwgbd6J0VqpRorwOuzC/BHdkP72DCdNcm7IDUpggnzBIy0+seWIkcHEryKjge3YDHpJeQCqrAH0CgxXHDt1xtbQbST1VqFyuhPhUjDXMXrknrGPN/oE1t0rLRq+78cI+k8xe5E6seeUXQsEe8r3358mpcDYSmXWSXVZxK6er9EF98APqHwcndyEJD2YyCh/mMVhERuX+7kjlRXSiNUWa/Cv/XAKFQuvUYA5ea2eYWtPRHa4DpyuF1SNsaqVKfgqKXZrJHfAgslVpSVqUpX4zkKszHF4kwMZO3M7J1P94Mxa7Tm9mTOJePOoHPXeEB+m9rX6pSfoi3mJDQ5inJ+Vc4gOkg/Wd/lqiy6TTyP/dHDN6/v+AuJx5AXBo/2NDD3fWhHjkqEKIuARr2ClZt9ZRQO4HkXdZo7CN06sGCHk48Tg8PmxnxKcMZm7Aoquv5yMIM2gWSWIRJhwJ8cUpafIHc+GesDlbF6Zbt+/KXkafJAQq2RklEN+WvZ/zFz113EPgWPjp16TwBoziq96MMekvWKY/vdhjol8VFtGH9F61Oy1Xwf6DJtPw==";

#[test]
fn wechatpy_refund_notify_vector() {
    let notify = parse_refund_notify(WECHATPY_NOTIFY.as_bytes(), &ApiKey::new(WECHATPY_KEY))
        .expect("wechatpy's vector decrypts");
    assert_eq!(notify.appid, "wx4f4bc4dec97d474b");
    assert_eq!(notify.mch_id, "12345678");
    assert_eq!(notify.out_refund_no, "1234");
    assert_eq!(notify.out_trade_no, "2020010418301551404339261814");
    assert_eq!(notify.transaction_id, "4200000483202001042069747825");
    assert_eq!(notify.refund_id, "50300103182020010413419046597");
}

#[test]
fn gopay_req_info_vector() {
    let info = decrypt_req_info(GOPAY_REQ_INFO, &ApiKey::new(GOPAY_KEY)).expect("decrypts");
    let get = |k: &str| info.get(k).map(String::as_str);
    assert_eq!(
        get("out_refund_no"),
        Some("50fd012ed1b311e7af7800163e32c503")
    );
    assert_eq!(
        get("out_trade_no"),
        Some("4893e76d8c8b434cb64e9cd536338e33")
    );
    assert_eq!(get("refund_id"), Some("50000404922017112502468056157"));
    assert_eq!(get("transaction_id"), Some("4200000015201711256947025404"));
    assert_eq!(get("refund_fee"), Some("6"));
    assert_eq!(get("total_fee"), Some("6"));
    assert_eq!(get("refund_status"), Some("SUCCESS"));
    assert_eq!(get("success_time"), Some("2017-11-25 15:36:17"));
    assert_eq!(get("refund_recv_accout"), Some("支付用户零钱"));
    assert_eq!(get("refund_account"), Some("REFUND_SOURCE_RECHARGE_FUNDS"));
    assert_eq!(get("refund_request_source"), Some("API"));
    assert_eq!(info.len(), 13);
}

#[test]
fn gopay_vector_as_a_whole_notify() {
    let body = format!(
        "<xml><return_code>SUCCESS</return_code><appid>wx1</appid><mch_id>1</mch_id><nonce_str>n</nonce_str><req_info><![CDATA[{GOPAY_REQ_INFO}]]></req_info></xml>"
    );
    let notify = parse_refund_notify(body.as_bytes(), &ApiKey::new(GOPAY_KEY)).unwrap();
    assert_eq!(notify.refund_fee, Fen::new(6));
    assert_eq!(notify.settlement_refund_fee, Some(Fen::new(6)));
    assert_eq!(notify.refund_status, RefundStatus::Success);
    assert_eq!(notify.refund_recv_account.as_deref(), Some("支付用户零钱"));
}

#[test]
fn wrong_key_is_refused() {
    let error = decrypt_req_info(GOPAY_REQ_INFO, &ApiKey::new(WECHATPY_KEY)).unwrap_err();
    assert!(matches!(error, Error::Malformed { .. }), "{error:?}");
    // The key never appears in the message.
    assert!(!error.to_string().contains(WECHATPY_KEY));
    assert!(decrypt_req_info("not base64!", &ApiKey::new(GOPAY_KEY)).is_err());
    assert!(decrypt_req_info("AAAA", &ApiKey::new(GOPAY_KEY)).is_err());
}

#[test]
fn encrypt_then_decrypt_round_trips() {
    let key = ApiKey::new("a-merchant-key-0123456789abcdefg");
    let mut fields = Params::new();
    fields.insert("out_refund_no".into(), "R1".into());
    fields.insert("refund_recv_accout".into(), "招商银行信用卡0403".into());
    let cipher = encrypt_req_info(&fields, &key);
    assert_eq!(decrypt_req_info(&cipher, &key).unwrap(), fields);
}
