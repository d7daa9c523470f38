//! The published signature vectors of the reference.

use wechatpay_v2::{ApiKey, Params, SignType, VerifyError, sign, verify};

const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn official_example() -> Params {
    params(&[
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("device_info", "1000"),
        ("body", "test"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
    ])
}

#[test]
fn official_example_md5() {
    let key = ApiKey::new(KEY);
    assert_eq!(
        sign(&official_example(), SignType::Md5, &key),
        "9A0A8659F005D6984697E2CA0A9CF3B7"
    );
}

#[test]
fn official_example_hmac_sha256() {
    let key = ApiKey::new(KEY);
    assert_eq!(
        sign(&official_example(), SignType::HmacSha256, &key),
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    );
}

#[test]
fn test1_test2_vectors() {
    let key = ApiKey::new(KEY);
    let p = params(&[("test1", "test1"), ("test2", "test2")]);
    assert_eq!(
        sign(&p, SignType::Md5, &key),
        "1E3A8D73B5A4AEE787C0F68B5DAB8520"
    );
    assert_eq!(
        sign(&p, SignType::HmacSha256, &key),
        "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659"
    );
}

#[test]
fn jsapi_pay_sign_vector() {
    let key = ApiKey::new(KEY);
    let p = params(&[
        ("appId", "wxd930ea5d5a258f4f"),
        ("timeStamp", "1414561699"),
        ("nonceStr", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("package", "prepay_id=wx201410272009395522657a690389285100"),
        ("signType", "MD5"),
    ]);
    assert_eq!(
        sign(&p, SignType::Md5, &key),
        "FD19D752A746E5F238A6E53BD99EEBD0"
    );
}

#[test]
fn verify_picks_the_algorithm_from_the_signature_length_without_sign_type() {
    let key = ApiKey::new(KEY);
    let mut md5 = official_example();
    md5.insert("sign".into(), "9A0A8659F005D6984697E2CA0A9CF3B7".into());
    assert_eq!(verify(&md5, &key), Ok(SignType::Md5));

    // An HMAC-signed notify without sign_type (seen in the wild) must verify as HMAC.
    let mut hmac = official_example();
    hmac.insert(
        "sign".into(),
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6".into(),
    );
    assert_eq!(verify(&hmac, &key), Ok(SignType::HmacSha256));
    // Lower-case hex is the same signature.
    hmac.insert(
        "sign".into(),
        "6a9ae1657590fd6257d693a078e1c3e4bb6ba4dc30b23e0ee2496e54170dacd6".into(),
    );
    assert_eq!(verify(&hmac, &key), Ok(SignType::HmacSha256));
}

#[test]
fn verify_refusals_name_their_reason() {
    let key = ApiKey::new(KEY);
    assert_eq!(
        verify(&official_example(), &key),
        Err(VerifyError::MissingSign)
    );

    let mut wrong = official_example();
    wrong.insert("sign".into(), "9A0A8659F005D6984697E2CA0A9CF3B8".into());
    assert_eq!(
        verify(&wrong, &key),
        Err(VerifyError::Mismatch(SignType::Md5))
    );

    let mut other_key = official_example();
    other_key.insert("sign".into(), "9A0A8659F005D6984697E2CA0A9CF3B7".into());
    assert_eq!(
        verify(&other_key, &ApiKey::new("another-key")),
        Err(VerifyError::Mismatch(SignType::Md5))
    );

    let mut short = official_example();
    short.insert("sign".into(), "ABC".into());
    assert_eq!(
        verify(&short, &key),
        Err(VerifyError::UnrecognizedSignLength(3))
    );

    let mut unknown = official_example();
    unknown.insert("sign_type".into(), "SHA1".into());
    unknown.insert("sign".into(), "9A0A8659F005D6984697E2CA0A9CF3B7".into());
    assert!(matches!(
        verify(&unknown, &key),
        Err(VerifyError::UnknownSignType(_))
    ));

    // sign_type says MD5 but the signature is an HMAC one: refused, not silently switched.
    let mut declared = official_example();
    declared.insert("sign_type".into(), "MD5".into());
    let hmac_sign = sign(&declared, SignType::HmacSha256, &key);
    declared.insert("sign".into(), hmac_sign);
    assert_eq!(
        verify(&declared, &key),
        Err(VerifyError::Mismatch(SignType::Md5))
    );
}

#[test]
fn unknown_fields_are_covered_by_the_signature() {
    let key = ApiKey::new(KEY);
    let mut doc = official_example();
    doc.insert("coupon_fee_0".into(), "100".into());
    doc.insert("promotion_detail".into(), r#"{"promotion_id":"1"}"#.into());
    let signature = sign(&doc, SignType::Md5, &key);
    doc.insert("sign".into(), signature);
    assert_eq!(verify(&doc, &key), Ok(SignType::Md5));
    doc.insert("coupon_fee_0".into(), "1".into());
    assert!(verify(&doc, &key).is_err());
}
