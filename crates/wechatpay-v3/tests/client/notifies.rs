//! Notifies through the client, honest and hostile: forged signature, wrong serial, stale
//! timestamp, SIGNTEST probe, tampered ciphertext, associated data or nonce, a body changed
//! after signing, the V2 key in place of the APIv3 key, and a storm of duplicates.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use wechatpay_v3::aead::AeadError;
use wechatpay_v3::{
    ApiV3Key, Client, EncryptedResource, Error, EventType, PlatformSigner, RefundStatus,
    SignedHeaders, Verification, VerifyError, seal_notify,
};

use crate::support::*;

fn paid_plaintext() -> String {
    transaction("T2026000001", "SUCCESS").to_string()
}

fn sealed(signer: &PlatformSigner) -> (SignedHeaders, Vec<u8>) {
    seal_notify(
        signer,
        &api_v3_key(),
        "EV-2018022511223320873",
        EventType::TransactionSuccess,
        "支付成功",
        "transaction",
        paid_plaintext().as_bytes(),
    )
    .unwrap()
}

fn map(headers: &SignedHeaders) -> HeaderMap {
    let mut map = HeaderMap::new();
    headers.insert_into(&mut map).unwrap();
    map
}

async fn public_key_client() -> (Gateway, Client) {
    let gateway = Gateway::public_key().await;
    let client = gateway.client(Verification::PublicKey(wechatpay_public_key()));
    (gateway, client)
}

/// The envelope of a sealed notify, changed by `change`, re-signed by the honest signer: the
/// signature passes and only the decryption can notice.
fn resigned(change: impl Fn(&mut Value)) -> (SignedHeaders, Vec<u8>) {
    let (_, body) = sealed(&public_key_signer());
    let mut envelope: Value = serde_json::from_slice(&body).unwrap();
    change(&mut envelope);
    let body = envelope.to_string().into_bytes();
    (public_key_signer().sign(&body).unwrap(), body)
}

fn invalid_signature(result: Result<wechatpay_v3::PaymentNotify, Error>) -> VerifyError {
    match result {
        Err(Error::InvalidSignature { source, .. }) => source,
        other => panic!("expected InvalidSignature, got {other:?}"),
    }
}

#[tokio::test]
async fn an_honest_notify_is_read_in_either_mode() {
    let (_gateway, client) = public_key_client().await;
    let (headers, body) = sealed(&public_key_signer());
    let notify = client
        .parse_payment_notify(&map(&headers), &body)
        .await
        .unwrap();
    assert_eq!(notify.id, "EV-2018022511223320873");
    assert_eq!(notify.summary, "支付成功");
    assert_eq!(notify.transaction.out_trade_no, "T2026000001");
    assert_eq!(notify.transaction.mchid, MCH_ID);
    assert_eq!(notify.transaction.amount.total.get(), 9999);

    let gateway = Gateway::start(platform().signer()).await;
    let client = gateway.client(Verification::PlatformCertificates(Vec::new()));
    let (headers, body) = sealed(&platform().signer());
    let notify = client
        .parse_payment_notify(&map(&headers), &body)
        .await
        .unwrap();
    assert_eq!(
        notify.transaction.transaction_id.as_deref(),
        Some("4200000891202103228088184743")
    );
    assert_eq!(gateway.certificate_downloads(), 1);
}

#[tokio::test]
async fn forged_signatures_and_wrong_serials_are_refused() {
    let (_gateway, client) = public_key_client().await;
    // Another key claiming the public key's id.
    let forger = PlatformSigner::new(PUBLIC_KEY_ID, platform().key.clone());
    let (headers, body) = sealed(&forger);
    assert!(matches!(
        invalid_signature(client.parse_payment_notify(&map(&headers), &body).await),
        VerifyError::Signature(_)
    ));
    // A serial the merchant does not hold.
    let (mut headers, body) = sealed(&public_key_signer());
    headers.serial = "PUB_KEY_ID_0199999999".into();
    assert_eq!(
        invalid_signature(client.parse_payment_notify(&map(&headers), &body).await),
        VerifyError::UnknownSerial("PUB_KEY_ID_0199999999".into())
    );
    // Missing headers.
    let (_, body) = sealed(&public_key_signer());
    assert!(matches!(
        invalid_signature(client.parse_payment_notify(&HeaderMap::new(), &body).await),
        VerifyError::MissingHeader(_)
    ));
}

#[tokio::test]
async fn stale_notifies_are_replays() {
    let (_gateway, client) = public_key_client().await;
    let (_, body) = sealed(&public_key_signer());
    let an_hour_ago = (chrono::Utc::now().timestamp() - 3600).to_string();
    let headers = public_key_signer()
        .sign_at(&body, &an_hour_ago, "nonce")
        .unwrap();
    assert!(matches!(
        invalid_signature(client.parse_payment_notify(&map(&headers), &body).await),
        VerifyError::StaleTimestamp { .. }
    ));
}

#[tokio::test]
async fn signtest_probes_are_refused_cleanly() {
    let (gateway, client) = public_key_client().await;
    let (mut headers, body) = sealed(&public_key_signer());
    headers.signature = format!("WECHATPAY/SIGNTEST/{}", BASE64.encode(b"probe"));
    let error = client
        .parse_payment_notify(&map(&headers), &body)
        .await
        .unwrap_err();
    assert!(error.is_signtest_probe(), "{error}");
    // In platform-certificate mode too, and without downloading anything for it.
    let cert_gateway = Gateway::start(platform().signer()).await;
    let cert_client = cert_gateway.client(Verification::PlatformCertificates(vec![
        platform().certificate.clone(),
    ]));
    let (mut headers, body) = sealed(&platform().signer());
    headers.signature = "WECHATPAY/SIGNTEST/".into();
    headers.serial = "FFFF".into();
    let error = cert_client
        .parse_payment_notify(&map(&headers), &body)
        .await
        .unwrap_err();
    assert!(error.is_signtest_probe(), "{error}");
    drop(gateway);
}

#[tokio::test]
async fn a_body_changed_after_signing_fails_the_signature() {
    let (_gateway, client) = public_key_client().await;
    let (headers, body) = sealed(&public_key_signer());
    let mut envelope: Value = serde_json::from_slice(&body).unwrap();
    envelope["summary"] = json!("支付成功 ");
    let changed = envelope.to_string().into_bytes();
    assert!(matches!(
        invalid_signature(client.parse_payment_notify(&map(&headers), &changed).await),
        VerifyError::Signature(_)
    ));
    // Re-serialised but equal JSON is still not the signed bytes.
    let mut spaced = body.clone();
    spaced.insert(1, b' ');
    assert!(matches!(
        invalid_signature(client.parse_payment_notify(&map(&headers), &spaced).await),
        VerifyError::Signature(_)
    ));
}

/// What a tampering changes, and how.
type Tampering = (&'static str, fn(&mut Value));

#[tokio::test]
async fn tampered_resources_fail_decryption() {
    let (_gateway, client) = public_key_client().await;
    let tamperings: [Tampering; 4] = [
        ("ciphertext", |e| {
            let mut sealed = BASE64
                .decode(e["resource"]["ciphertext"].as_str().unwrap())
                .unwrap();
            sealed[3] ^= 0x40;
            e["resource"]["ciphertext"] = json!(BASE64.encode(sealed));
        }),
        ("associated data", |e| {
            e["resource"]["associated_data"] = json!("refund")
        }),
        ("nonce", |e| e["resource"]["nonce"] = json!("aaaaaaaaaaaa")),
        ("tag", |e| {
            let mut sealed = BASE64
                .decode(e["resource"]["ciphertext"].as_str().unwrap())
                .unwrap();
            let last = sealed.len() - 1;
            sealed[last] ^= 1;
            e["resource"]["ciphertext"] = json!(BASE64.encode(sealed));
        }),
    ];
    for (what, change) in tamperings {
        let (headers, body) = resigned(change);
        match client.parse_payment_notify(&map(&headers), &body).await {
            Err(Error::Decrypt {
                source: AeadError::Authentication,
                ..
            }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // A resource that is not AEAD_AES_256_GCM.
    let (headers, body) = resigned(|e| e["resource"]["algorithm"] = json!("AEAD_SM4_GCM"));
    assert!(matches!(
        client.parse_payment_notify(&map(&headers), &body).await,
        Err(Error::Decrypt {
            source: AeadError::UnsupportedAlgorithm(_),
            ..
        })
    ));
    // Signed, but not a notify at all.
    let body = b"<xml><return_code>SUCCESS</return_code></xml>".to_vec();
    let headers = public_key_signer().sign(&body).unwrap();
    assert!(matches!(
        client.parse_payment_notify(&map(&headers), &body).await,
        Err(Error::Malformed {
            context: "notify",
            ..
        })
    ));
}

#[tokio::test]
async fn the_v2_key_does_not_open_v3_resources() {
    let gateway = Gateway::public_key().await;
    let mut config = gateway.config(Verification::PublicKey(wechatpay_public_key()));
    // A V2 API key is also 32 characters: the classic mix-up.
    config.api_v3_key = ApiV3Key::new("192006250b4c09247ec02edce69f6a2d").unwrap();
    let client = Client::new(config).unwrap();
    let (headers, body) = sealed(&public_key_signer());
    assert!(matches!(
        client.parse_payment_notify(&map(&headers), &body).await,
        Err(Error::Decrypt {
            source: AeadError::Authentication,
            ..
        })
    ));
}

#[tokio::test]
async fn refund_notifies_are_read() {
    let (_gateway, client) = public_key_client().await;
    let plaintext = json!({
        "mchid": MCH_ID, "out_trade_no": "T2026000001",
        "transaction_id": "4200000891202103228088184743", "out_refund_no": "R2026000001",
        "refund_id": "50000000382019052709732678859", "refund_status": "ABNORMAL",
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": 9999, "refund": 100, "payer_total": 9999, "payer_refund": 100}
    });
    let (headers, body) = seal_notify(
        &public_key_signer(),
        &api_v3_key(),
        "EV-2",
        EventType::RefundAbnormal,
        "退款异常",
        "refund",
        plaintext.to_string().as_bytes(),
    )
    .unwrap();
    let notify = client
        .parse_refund_notify(&map(&headers), &body)
        .await
        .unwrap();
    assert_eq!(notify.refund.refund_status, RefundStatus::Abnormal);
    assert_eq!(notify.refund.out_refund_no, "R2026000001");
    // A payment reading of a refund notify is refused.
    assert!(matches!(
        client.parse_payment_notify(&map(&headers), &body).await,
        Err(Error::Malformed {
            context: "payment notify",
            ..
        })
    ));
}

#[tokio::test]
async fn a_duplicate_storm_reads_the_same_notify_every_time() {
    let (_gateway, client) = public_key_client().await;
    let (headers, body) = sealed(&public_key_signer());
    let headers = map(&headers);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (client, headers, body) = (client.clone(), headers.clone(), body.clone());
            tokio::spawn(async move { client.parse_payment_notify(&headers, &body).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let notify = task.await.unwrap().unwrap();
        ids.insert((notify.id, notify.transaction.transaction_id));
    }
    // One notify, however often it comes: the id is what a caller deduplicates on.
    assert_eq!(ids.len(), 1);
}

#[test]
fn resources_made_here_have_the_wire_shape() {
    let resource =
        EncryptedResource::encrypt(&api_v3_key(), Some("transaction"), "transaction", b"{}");
    let json = serde_json::to_value(&resource).unwrap();
    for field in [
        "algorithm",
        "ciphertext",
        "associated_data",
        "original_type",
        "nonce",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert_eq!(json["algorithm"], "AEAD_AES_256_GCM");
}
