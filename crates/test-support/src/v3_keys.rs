//! Fixed WeChat Pay API v3 material for tests, both sides: a merchant (its private key, in
//! PKCS#8 and PKCS#1, its certificate serial, its APIv3 key) and WeChat (the WeChat Pay
//! public key with its private half and id, a platform certificate with its key), plus a
//! stranger's key to forge with and a key too short to use. Generated once with openssl
//! (`keys/`), for tests only: a simulator configured with them (`[v3]`,
//! `[merchants.v3]`) signs as WeChat does, and a test can sign hostile notifies with the
//! same keys ([`wechat_signer`], [`sealed_payment`]).

use serde_json::{Value, json};
use wechatpay_v3::{ApiV3Key, EncryptedResource, EventType, PlatformPrivateKey, PlatformSigner};

/// The merchant's private key, PKCS#8 (`BEGIN PRIVATE KEY`).
pub const MERCHANT_KEY_PEM: &str = include_str!("../keys/merchant_key.pem");
/// The same key, PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub const MERCHANT_KEY_PKCS1_PEM: &str = include_str!("../keys/merchant_key_pkcs1.pem");
/// The serial of the merchant's certificate (any hexadecimal: the simulator takes it as
/// configured).
pub const MERCHANT_SERIAL_NO: &str = "3775B6A45ACD588826D15E583A95F5DD40000001";
/// The merchant's APIv3 key: 32 ASCII characters.
pub const API_V3_KEY: &str = "v3TestKeyOfTheMerchant0123456789";

/// The WeChat Pay public key's id.
pub const WECHATPAY_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000001092026120100000000000001";
/// The WeChat Pay public key, as the merchant platform hands it out (`pub_key.pem`).
pub const WECHATPAY_PUBLIC_KEY_PEM: &str = include_str!("../keys/wechatpay_public_key.pem");
/// Its private half, which WeChat (the simulator, a hostile test) signs with.
pub const WECHATPAY_PUBLIC_KEY_PRIVATE_PEM: &str =
    include_str!("../keys/wechatpay_public_key_private.pem");

/// A platform certificate (self-signed, valid until 2046).
pub const PLATFORM_CERTIFICATE_PEM: &str = include_str!("../keys/platform_certificate.pem");
/// Its serial, as `Wechatpay-Serial` names it.
pub const PLATFORM_CERTIFICATE_SERIAL: &str = "5C2E7D0F1A3B4C5D6E7F80910A1B2C3D4E5F6071";
/// The key the platform certificate certifies.
pub const PLATFORM_KEY_PEM: &str = include_str!("../keys/platform_key.pem");

/// A key nobody trusts: what a forger signs with.
pub const STRANGER_KEY_PEM: &str = include_str!("../keys/stranger_key.pem");
/// A 1024-bit RSA key: too short for WeChat Pay.
pub const SHORT_KEY_PEM: &str = include_str!("../keys/short_key.pem");

/// Signs as WeChat does with the WeChat Pay public key ([`WECHATPAY_PUBLIC_KEY_ID`]).
pub fn wechat_signer() -> PlatformSigner {
    signer(WECHATPAY_PUBLIC_KEY_ID, WECHATPAY_PUBLIC_KEY_PRIVATE_PEM)
}

/// Signs as the key `private_pem` under the serial (or public key id) `serial`: WeChat's
/// keys under another name, or a forger's under WeChat's.
pub fn signer(serial: &str, private_pem: &str) -> PlatformSigner {
    PlatformSigner::new(
        serial,
        PlatformPrivateKey::from_pem(private_pem).expect("a fixed test key"),
    )
}

/// The body of a `TRANSACTION.SUCCESS` notify as WeChat sends it: the paid transaction of
/// `out_trade_no` (`total` fen, of merchant `mchid` and `appid`, under `transaction_id`)
/// encrypted with [`API_V3_KEY`], associated data `aad` (WeChat's is `transaction`).
pub fn sealed_payment(
    appid: &str,
    mchid: &str,
    out_trade_no: &str,
    total: i64,
    transaction_id: &str,
    aad: &str,
) -> Value {
    let now = wechatpay_v3::time::rfc3339_beijing(chrono::Utc::now());
    let transaction = json!({
        "appid": appid, "mchid": mchid, "out_trade_no": out_trade_no,
        "transaction_id": transaction_id, "trade_type": "NATIVE",
        "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "success_time": now,
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}
    });
    let resource = EncryptedResource::encrypt(
        &ApiV3Key::new(API_V3_KEY).expect("a 32-byte key"),
        Some("transaction"),
        aad,
        transaction.to_string().as_bytes(),
    );
    json!({
        "id": "EV-2026120100001", "create_time": now,
        "event_type": EventType::TransactionSuccess.as_str(),
        "resource_type": "encrypt-resource", "resource": resource, "summary": "支付成功",
    })
}
