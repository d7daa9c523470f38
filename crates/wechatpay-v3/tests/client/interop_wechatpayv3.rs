//! Interop with the real wechatpayv3 2.0.4 from PyPI, in both directions: request
//! signatures, WeChat's signatures on answers and notifies (public key and platform
//! certificate), AEAD resources, whole notifies through its `callback`, and pay parameters.
//! Keys and the certificate are made by Python's `cryptography` at test time.

use std::sync::OnceLock;

use serde_json::{Value, json};
use test_support::run_wechatpayv3_python;
use wechatpay_v3::aead;
use wechatpay_v3::{
    ApiV3Key, Authorization, EncryptedResource, EventType, MerchantPrivateKey, MerchantPublicKey,
    PlatformCertificate, PlatformCertificates, PlatformPrivateKey, PlatformSigner, SignedHeaders,
    Verifier, WechatPayPublicKey, app_pay_params, jsapi_pay_params, parse_payment_notify,
    seal_notify,
};

const MCH_ID: &str = "1230000109";
const APP_ID: &str = "wxd678efh567hg6787";
const MERCHANT_SERIAL: &str = "444F4864EA9B34415E2F5E8D2B5A6F4E8C7D6B5A";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0112300001092025010100000000000000";
const API_V3_KEY: &str = "a12d3924fd499edac8a5efc5b8c9a7d2";

/// The Python prelude every snippet starts with: the keys and a `wechatpayv3` client in the
/// mode asked for (`public_key` or `certificate`, reading the certificate from a directory
/// so nothing is downloaded).
const PRELUDE: &str = r#"
import base64, json, os, tempfile
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.utils import aes_decrypt, build_authorization, rsa_sign, rsa_verify, load_private_key, load_public_key, load_certificate
keys = data['keys']

def client(mode):
    if mode == 'public_key':
        return WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=data['mchid'],
                         private_key=keys['merchant_pkcs8'], cert_serial_no=data['serial'],
                         appid=data['appid'], apiv3_key=data['apiv3_key'],
                         public_key=keys['platform_public'], public_key_id=data['public_key_id'])
    cert_dir = tempfile.mkdtemp()
    with open(os.path.join(cert_dir, keys['platform_serial'] + '.pem'), 'w') as f:
        f.write(keys['platform_cert'])
    return WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=data['mchid'],
                     private_key=keys['merchant_pkcs8'], cert_serial_no=data['serial'],
                     appid=data['appid'], apiv3_key=data['apiv3_key'], cert_dir=cert_dir)
"#;

/// PEM keys and a platform certificate made by Python's `cryptography`.
struct Keys {
    json: Value,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let json = run_wechatpayv3_python(
            r#"
import datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

def pkcs8(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()

merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
platform = rsa.generate_private_key(public_exponent=65537, key_size=2048)
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'Tenpay.com Root CA')])
serial = 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(platform.public_key()).serial_number(serial)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(platform, hashes.SHA256()))
result = {
    'merchant_pkcs8': pkcs8(merchant),
    'merchant_pkcs1': merchant.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()).decode(),
    'merchant_public': merchant.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    'platform_pkcs8': pkcs8(platform),
    'platform_public': platform.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    'platform_cert': cert.public_bytes(serialization.Encoding.PEM).decode(),
    'platform_serial': format(serial, 'X'),
}
"#,
            &json!(null),
        );
        Keys { json }
    })
}

fn key_pem(name: &str) -> &'static str {
    keys().json[name].as_str().unwrap()
}

/// Runs a snippet after the prelude, with the keys and constants in `data`.
fn python(snippet: &str, extra: Value) -> Value {
    let mut data = json!({
        "keys": keys().json, "mchid": MCH_ID, "appid": APP_ID, "serial": MERCHANT_SERIAL,
        "public_key_id": PUBLIC_KEY_ID, "apiv3_key": API_V3_KEY,
    });
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    run_wechatpayv3_python(&format!("{PRELUDE}\n{snippet}"), &data)
}

fn merchant_key() -> MerchantPrivateKey {
    MerchantPrivateKey::from_pem(key_pem("merchant_pkcs8")).unwrap()
}

fn platform_signer(serial: &str) -> PlatformSigner {
    PlatformSigner::new(
        serial,
        PlatformPrivateKey::from_pem(key_pem("platform_pkcs8")).unwrap(),
    )
}

fn api_v3_key() -> ApiV3Key {
    ApiV3Key::new(API_V3_KEY).unwrap()
}

fn headers_json(headers: &SignedHeaders) -> Value {
    Value::Object(
        headers
            .to_pairs()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::String(value)))
            .collect(),
    )
}

fn verifiers() -> [Verifier; 2] {
    [
        Verifier::public_key(
            WechatPayPublicKey::from_pem(PUBLIC_KEY_ID, key_pem("platform_public")).unwrap(),
        ),
        Verifier::platform_certificates(std::sync::Arc::new(PlatformCertificates::with([
            PlatformCertificate::from_pem(key_pem("platform_cert")).unwrap(),
        ]))),
    ]
}

const BODIES: [&str; 2] = [
    r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":1,"currency":"CNY"}}"#,
    "",
];

#[test]
fn pythons_keys_load_here_in_every_pem_form() {
    let pkcs8 = MerchantPrivateKey::from_pem(key_pem("merchant_pkcs8")).unwrap();
    let pkcs1 = MerchantPrivateKey::from_pem(key_pem("merchant_pkcs1")).unwrap();
    let public = MerchantPublicKey::from_pem(key_pem("merchant_public")).unwrap();
    assert_eq!(pkcs8.public_key(), public);
    assert_eq!(pkcs1.public_key(), public);
    let certificate = PlatformCertificate::from_pem(key_pem("platform_cert")).unwrap();
    assert_eq!(certificate.serial_no(), key_pem("platform_serial"));
    assert_eq!(
        certificate.serial_no(),
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    );
}

/// wechatpayv3 builds the Authorization header; this crate parses and verifies it.
#[test]
fn pythons_request_signatures_verify_here() {
    let public = MerchantPublicKey::from_pem(key_pem("merchant_public")).unwrap();
    for (method, path, body) in [
        ("POST", "/v3/pay/transactions/native", BODIES[0]),
        (
            "GET",
            "/v3/pay/transactions/out-trade-no/T2026%7C01?mchid=1230000109",
            BODIES[1],
        ),
    ] {
        let out = python(
            r#"
key = load_private_key(keys['merchant_pkcs8'])
result = build_authorization(data['path'], data['method'], data['mchid'], data['serial'], key, data=data['body'] or None)
"#,
            json!({"method": method, "path": path, "body": body}),
        );
        let auth = Authorization::parse(out.as_str().unwrap()).unwrap();
        assert_eq!(auth.mchid, MCH_ID);
        assert_eq!(auth.serial_no, MERCHANT_SERIAL);
        auth.verify(&public, method, path, body.as_bytes()).unwrap();
        assert!(
            auth.verify(
                &public,
                method,
                "/v3/pay/transactions/jsapi",
                body.as_bytes()
            )
            .is_err()
        );
    }
}

/// This crate signs requests (with the PKCS#8 and the PKCS#1 form of the key); wechatpayv3's
/// `rsa_sign` over the same message gives the same signature (PKCS#1 v1.5 is deterministic)
/// and `cryptography` verifies ours.
#[test]
fn our_request_signatures_verify_in_python() {
    for pem in ["merchant_pkcs8", "merchant_pkcs1"] {
        let key = MerchantPrivateKey::from_pem(key_pem(pem)).unwrap();
        for body in BODIES {
            let auth = Authorization::sign(
                &key,
                MCH_ID,
                MERCHANT_SERIAL,
                "POST",
                "/v3/pay/transactions/native",
                "1554208460",
                "593BEC0C930BF1AFEB40B4A08C8FB242",
                body.as_bytes(),
            )
            .unwrap();
            let out = python(
                r#"
key = load_private_key(keys['merchant_pkcs8'])
message = 'POST\n/v3/pay/transactions/native\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n%s\n' % data['body']
public = load_public_key(keys['merchant_public'])
try:
    public.verify(base64.b64decode(data['signature']), message.encode('utf-8'), PKCS1v15(), hashes.SHA256())
    verified = True
except Exception:
    verified = False
result = {'verified': verified, 'theirs': rsa_sign(key, message)}
"#,
                json!({"body": body, "signature": auth.signature}),
            );
            assert_eq!(out["verified"], json!(true), "{pem}");
            assert_eq!(out["theirs"], json!(auth.signature), "{pem}");
        }
    }
}

/// wechatpayv3 signs as WeChat (`rsa_sign` over `TIMESTAMP\nNONCE\nBODY\n`); this crate
/// verifies with the public key and with the certificate.
#[test]
fn python_signed_answers_verify_here() {
    let now = chrono::Utc::now().timestamp().to_string();
    for body in BODIES {
        let out = python(
            r#"
key = load_private_key(keys['platform_pkcs8'])
result = rsa_sign(key, '%s\n%s\n%s\n' % (data['timestamp'], 'c5ac7061fccab6bf3e254dcf98995b8c', data['body']))
"#,
            json!({"timestamp": now, "body": body}),
        );
        for (verifier, serial) in verifiers()
            .iter()
            .zip([PUBLIC_KEY_ID, key_pem("platform_serial")])
        {
            let mut headers = SignedHeaders {
                timestamp: now.clone(),
                nonce: "c5ac7061fccab6bf3e254dcf98995b8c".into(),
                signature: out.as_str().unwrap().to_owned(),
                serial: serial.to_owned(),
                signature_type: None,
            };
            verifier.verify(&headers, body.as_bytes()).unwrap();
            headers.nonce.push('0');
            assert!(verifier.verify(&headers, body.as_bytes()).is_err());
        }
    }
}

/// This crate signs as WeChat; wechatpayv3's own response check (`_verify_signature`, which
/// picks the key by `Wechatpay-Serial`) accepts it in both modes and refuses it altered.
#[test]
fn our_signed_answers_verify_in_python() {
    for (mode, serial) in [
        ("public_key", PUBLIC_KEY_ID),
        ("certificate", key_pem("platform_serial")),
    ] {
        for body in BODIES {
            let headers = platform_signer(serial).sign(body.as_bytes()).unwrap();
            let out = python(
                r#"
core = client(data['mode'])._core
result = {'ok': core._verify_signature(data['headers'], data['body']),
          'altered': core._verify_signature(data['headers'], data['body'] + ' ')}
"#,
                json!({"mode": mode, "headers": headers_json(&headers), "body": body}),
            );
            assert_eq!(
                out,
                json!({"ok": true, "altered": false}),
                "{mode} {body:?}"
            );
        }
    }
}

/// Resources both ways: wechatpayv3's `aes_decrypt` opens ours, this crate opens what
/// `cryptography`'s AESGCM seals, Chinese text and empty associated data included.
#[test]
fn resources_decrypt_both_ways() {
    for (plaintext, aad) in [
        (
            r#"{"out_trade_no":"T1","description":"深圳分店 QQ公仔"}"#,
            "transaction",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIID\n-----END CERTIFICATE-----\n",
            "certificate",
        ),
        ("{}", ""),
    ] {
        let ours = EncryptedResource::encrypt(
            &api_v3_key(),
            Some("transaction"),
            aad,
            plaintext.as_bytes(),
        );
        let out = python(
            r#"
r = data['resource']
opened = aes_decrypt(r['nonce'], r['ciphertext'], r['associated_data'], data['apiv3_key'])
wrong = aes_decrypt(r['nonce'], r['ciphertext'], r['associated_data'] + 'x', data['apiv3_key'])
nonce = 'fdasflkja484'
sealed = base64.b64encode(AESGCM(data['apiv3_key'].encode()).encrypt(nonce.encode(), data['plaintext'].encode(), data['aad'].encode())).decode()
result = {'opened': opened, 'wrong': wrong, 'nonce': nonce, 'sealed': sealed}
"#,
            json!({"resource": ours, "plaintext": plaintext, "aad": aad}),
        );
        assert_eq!(out["opened"], json!(plaintext));
        assert_eq!(out["wrong"], Value::Null);
        let theirs = aead::decrypt(
            &api_v3_key(),
            out["nonce"].as_str().unwrap(),
            aad,
            out["sealed"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(theirs, plaintext.as_bytes());
    }
}

/// A whole notify sealed here goes through wechatpayv3's `callback` (signature by serial,
/// then decryption) in both modes; altered, it is refused.
#[test]
fn python_reads_our_notifies() {
    let plaintext = json!({
        "appid": APP_ID, "mchid": MCH_ID, "out_trade_no": "1217752501201407033233368018",
        "transaction_id": "4200000891202103228088184743", "trade_type": "NATIVE",
        "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "success_time": "2026-01-01T12:00:00+08:00", "payer": {"openid": "o1"},
        "amount": {"total": 100, "payer_total": 100, "currency": "CNY", "payer_currency": "CNY"}
    });
    for (mode, serial) in [
        ("public_key", PUBLIC_KEY_ID),
        ("certificate", key_pem("platform_serial")),
    ] {
        let (headers, body) = seal_notify(
            &platform_signer(serial),
            &api_v3_key(),
            "EV-2018022511223320873",
            EventType::TransactionSuccess,
            "支付成功",
            "transaction",
            plaintext.to_string().as_bytes(),
        )
        .unwrap();
        let body = String::from_utf8(body).unwrap();
        let out = python(
            r#"
pay = client(data['mode'])
read = pay.callback(data['headers'], data['body'])
altered = pay.callback(data['headers'], data['body'].replace('支付成功', '支付失败'))
result = {'read': read, 'altered': altered}
"#,
            json!({"mode": mode, "headers": headers_json(&headers), "body": body}),
        );
        assert_eq!(out["read"]["event_type"], "TRANSACTION.SUCCESS", "{mode}");
        assert_eq!(out["read"]["resource"], plaintext, "{mode}");
        assert_eq!(out["altered"], Value::Null, "{mode}");
    }
}

/// A notify sealed by Python as WeChat would (AESGCM, then `rsa_sign` of the raw body) is
/// read here with either verifier.
#[test]
fn we_read_pythons_notifies() {
    let plaintext = json!({
        "appid": APP_ID, "mchid": MCH_ID, "out_trade_no": "T2026000001",
        "transaction_id": "4200000891202103228088184743", "trade_state": "SUCCESS",
        "success_time": "2026-01-01T12:00:00+08:00", "amount": {"total": 8800, "payer_total": 8800}
    });
    for serial in [PUBLIC_KEY_ID, key_pem("platform_serial")] {
        let out = python(
            r#"
import time
nonce = 'a1b2c3d4e5f6'
sealed = base64.b64encode(AESGCM(data['apiv3_key'].encode()).encrypt(nonce.encode(), json.dumps(data['plaintext'], ensure_ascii=False).encode(), b'transaction')).decode()
body = json.dumps({'id': 'EV-1', 'create_time': '2026-01-01T12:00:01+08:00', 'resource_type': 'encrypt-resource',
                   'event_type': 'TRANSACTION.SUCCESS', 'summary': '支付成功',
                   'resource': {'original_type': 'transaction', 'algorithm': 'AEAD_AES_256_GCM', 'ciphertext': sealed,
                                'associated_data': 'transaction', 'nonce': nonce}}, ensure_ascii=False)
timestamp = str(int(time.time()))
signature = rsa_sign(load_private_key(keys['platform_pkcs8']), '%s\n%s\n%s\n' % (timestamp, 'n0nce', body))
result = {'body': body, 'headers': {'Wechatpay-Timestamp': timestamp, 'Wechatpay-Nonce': 'n0nce',
          'Wechatpay-Signature': signature, 'Wechatpay-Serial': data['serial_no']}}
"#,
            json!({"plaintext": plaintext, "serial_no": serial}),
        );
        let headers = SignedHeaders {
            timestamp: out["headers"]["Wechatpay-Timestamp"]
                .as_str()
                .unwrap()
                .into(),
            nonce: out["headers"]["Wechatpay-Nonce"].as_str().unwrap().into(),
            signature: out["headers"]["Wechatpay-Signature"]
                .as_str()
                .unwrap()
                .into(),
            serial: serial.into(),
            signature_type: None,
        };
        let body = out["body"].as_str().unwrap().as_bytes();
        let verifier = verifiers().into_iter().find(|v| v.knows(serial)).unwrap();
        let notify = parse_payment_notify(&verifier, &api_v3_key(), &headers, body).unwrap();
        assert_eq!(notify.transaction.amount.total.get(), 8800);
        assert_eq!(notify.summary, "支付成功");
    }
}

/// JSAPI and APP pay parameters equal wechatpayv3's `sign` of the same four lines.
#[test]
fn pay_parameters_equal_pythons() {
    let key = merchant_key();
    let jsapi = jsapi_pay_params(
        APP_ID,
        "wx201410272009395522657a690389285100",
        &key,
        "1414561699",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    )
    .unwrap();
    let app = app_pay_params(
        APP_ID,
        MCH_ID,
        "wx201410272009395522657a690389285100",
        &key,
        "1414561699",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    )
    .unwrap();
    let out = python(
        r#"
pay = client('public_key')
result = {
    'jsapi': pay.sign([data['appid'], '1414561699', '5K8264ILTKCH16CQ2502SI8ZNMTM67VS', 'prepay_id=wx201410272009395522657a690389285100']),
    'app': pay.sign([data['appid'], '1414561699', '5K8264ILTKCH16CQ2502SI8ZNMTM67VS', 'wx201410272009395522657a690389285100']),
}
"#,
        json!({}),
    );
    assert_eq!(out["jsapi"], json!(jsapi.pay_sign));
    assert_eq!(out["app"], json!(app.sign));
}
