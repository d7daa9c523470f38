//! Platform-certificate mode and the switchover: downloading, caching by serial, refreshing
//! before expiry and on an unknown serial (rate-limited), refusing lists that are not
//! WeChat's, and accepting both kinds of signature at once.

use std::sync::Arc;
use std::time::Duration;

use wechatpay_v3::{
    ApiV3Key, CertificateRefresh, Client, Error, OrderRef, PlatformCertificates, Verification,
    Verifier, VerifyError,
};

use crate::support::*;

fn cert_client(
    gateway: &Gateway,
    preloaded: Vec<wechatpay_v3::PlatformCertificate>,
    refresh: CertificateRefresh,
) -> Client {
    let mut config = gateway.config(Verification::PlatformCertificates(preloaded));
    config.certificate_refresh = refresh;
    Client::new(config).unwrap()
}

fn query() -> OrderRef {
    OrderRef::OutTradeNo("T2026000001".into())
}

fn serials(client: &Client) -> Vec<String> {
    let mut serials: Vec<String> = client
        .verifier()
        .certificates()
        .unwrap()
        .all()
        .iter()
        .map(|c| c.serial_no().to_owned())
        .collect();
    serials.sort();
    serials
}

#[tokio::test]
async fn certificates_are_downloaded_once_and_kept() {
    let gateway = Gateway::start(platform().signer()).await;
    let client = cert_client(&gateway, Vec::new(), CertificateRefresh::default());
    client.query_order(&query()).await.unwrap();
    client.clone().query_order(&query()).await.unwrap();
    assert_eq!(gateway.certificate_downloads(), 1);
    // Downloaded when the first answer needed verifying, with a signed GET.
    let received = gateway.received();
    let download = received
        .iter()
        .find(|r| r.path_and_query == "/v3/certificates")
        .unwrap();
    assert!(
        download.authorization.is_ok(),
        "{:?}",
        download.authorization
    );
    // Platform-certificate mode does not announce a public key.
    assert!(gateway.calls()[0].headers.get("wechatpay-serial").is_none());
    assert_eq!(serials(&client), [platform().certificate.serial_no()]);
    assert_eq!(
        platform().certificate.serial_no(),
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    );
}

#[tokio::test]
async fn a_new_serial_triggers_a_download() {
    let gateway = Gateway::start(platform().signer()).await;
    let refresh = CertificateRefresh {
        min_gap: Duration::ZERO,
        ..CertificateRefresh::default()
    };
    let client = cert_client(&gateway, Vec::new(), refresh);
    client.query_order(&query()).await.unwrap();
    // WeChat rotates: a new certificate, and answers signed with it.
    let rotated = platform_identity(&[0x7A, 0x01], -60, 365 * 86400);
    gateway
        .state
        .certificates
        .lock()
        .unwrap()
        .push(rotated.certificate.clone());
    gateway.set_signer(rotated.signer());
    client.query_order(&query()).await.unwrap();
    assert_eq!(gateway.certificate_downloads(), 2);
    // Both stay usable: the old one for what is still signed with it.
    assert_eq!(serials(&client).len(), 2);
    gateway.set_signer(platform().signer());
    client.query_order(&query()).await.unwrap();
    assert_eq!(gateway.certificate_downloads(), 2);
}

#[tokio::test]
async fn unknown_serials_do_not_make_the_client_hammer_wechat() {
    let gateway = Gateway::start(platform().signer()).await;
    let client = cert_client(&gateway, Vec::new(), CertificateRefresh::default());
    client.query_order(&query()).await.unwrap();
    let stranger = platform_identity(&[0x0B, 0xAD], -60, 86400);
    for _ in 0..3 {
        gateway.push(
            Reply::json(200, transaction("T2026000001", "NOTPAY"))
                .signed(Signing::By(stranger.signer())),
        );
        let error = client.query_order(&query()).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidSignature { source: VerifyError::UnknownSerial(ref s), .. } if s == "0BAD"),
            "{error}"
        );
    }
    assert_eq!(gateway.certificate_downloads(), 1);
}

#[tokio::test]
async fn certificates_are_refreshed_before_they_expire() {
    let ending = platform_identity(&[0x01, 0xE0], -86400, 3600);
    let gateway = Gateway::start(ending.signer()).await;
    *gateway.state.certificates.lock().unwrap() = vec![ending.certificate.clone()];
    *gateway.state.certificate_list_signer.lock().unwrap() = ending.signer();
    let refresh = CertificateRefresh {
        interval: Duration::from_secs(12 * 3600),
        before_expiry: Duration::from_secs(24 * 3600),
        min_gap: Duration::ZERO,
    };
    let client = cert_client(&gateway, Vec::new(), refresh);
    client.query_order(&query()).await.unwrap();
    assert_eq!(gateway.certificate_downloads(), 1);
    // WeChat publishes the successor before the old one ends, still signing with the old.
    let successor = platform_identity(&[0x02, 0xE0], -60, 365 * 86400);
    gateway
        .state
        .certificates
        .lock()
        .unwrap()
        .push(successor.certificate.clone());
    client.query_order(&query()).await.unwrap();
    assert_eq!(
        gateway.certificate_downloads(),
        2,
        "the ending certificate was not refreshed"
    );
    assert_eq!(serials(&client), ["01E0", "02E0"]);
    // Once WeChat signs with the successor, it is already held: no download needed.
    gateway.set_signer(successor.signer());
    client.query_order(&query()).await.unwrap();
    assert_eq!(gateway.certificate_downloads(), 2);
}

#[tokio::test]
async fn a_list_not_signed_by_its_certificates_is_refused() {
    let gateway = Gateway::start(platform().signer()).await;
    let forger = platform_identity(&[0x66], -60, 86400);
    *gateway.state.certificate_list_signer.lock().unwrap() = forger.signer();
    let client = cert_client(&gateway, Vec::new(), CertificateRefresh::default());
    let error = client.download_platform_certificates().await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidSignature {
                context: "/v3/certificates",
                source: VerifyError::UnknownSerial(_)
            }
        ),
        "{error}"
    );
    assert!(client.verifier().certificates().unwrap().is_empty());
    // And a call cannot be verified without them.
    assert!(matches!(
        client.query_order(&query()).await,
        Err(Error::InvalidSignature { .. })
    ));
}

#[tokio::test]
async fn a_list_under_another_api_v3_key_is_refused() {
    let gateway = Gateway::start(platform().signer()).await;
    *gateway.state.certificate_list_key.lock().unwrap() =
        ApiV3Key::new("00000000000000000000000000000000").unwrap();
    let client = cert_client(&gateway, Vec::new(), CertificateRefresh::default());
    let error = client.download_platform_certificates().await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Decrypt {
                context: "/v3/certificates",
                ..
            }
        ),
        "{error}"
    );
    assert!(client.verifier().certificates().unwrap().is_empty());
}

#[tokio::test]
async fn certificates_given_at_start_carry_on_when_a_download_fails() {
    let gateway = Gateway::start(platform().signer()).await;
    *gateway.state.certificate_list_key.lock().unwrap() =
        ApiV3Key::new("00000000000000000000000000000000").unwrap();
    let client = cert_client(
        &gateway,
        vec![platform().certificate.clone()],
        CertificateRefresh::default(),
    );
    client.query_order(&query()).await.unwrap();
    assert_eq!(gateway.certificate_downloads(), 1);
}

#[tokio::test]
async fn expired_certificates_verify_nothing() {
    let expired = platform_identity(&[0xEE], -2 * 86400, -86400);
    let verifier = Verifier::platform_certificates(Arc::new(PlatformCertificates::with([expired
        .certificate
        .clone()])));
    let headers = expired.signer().sign(b"{}").unwrap();
    assert!(matches!(
        verifier.verify(&headers, b"{}"),
        Err(VerifyError::CertificateNotValid { .. })
    ));
    // Through a client: held from the start, dropped at the first download, refused.
    let gateway = Gateway::start(expired.signer()).await;
    let client = cert_client(
        &gateway,
        vec![expired.certificate.clone()],
        CertificateRefresh::default(),
    );
    assert!(matches!(
        client.query_order(&query()).await,
        Err(Error::InvalidSignature { .. })
    ));
    assert_eq!(serials(&client), [platform().certificate.serial_no()]);
}

#[tokio::test]
async fn the_switchover_accepts_both_keys() {
    let gateway = Gateway::public_key().await;
    let client = gateway.client(Verification::Switchover {
        public_key: wechatpay_public_key(),
        certificates: Vec::new(),
    });
    for signer in [
        public_key_signer(),
        platform().signer(),
        public_key_signer(),
    ] {
        gateway.set_signer(signer);
        client.query_order(&query()).await.unwrap();
    }
    assert_eq!(gateway.certificate_downloads(), 1);
    assert!(
        gateway
            .calls()
            .iter()
            .all(|c| c.headers["wechatpay-serial"] == PUBLIC_KEY_ID)
    );

    // Notifies too, signed either way.
    let plaintext = transaction("T2026000001", "SUCCESS").to_string();
    for signer in [public_key_signer(), platform().signer()] {
        let (headers, body) = wechatpay_v3::seal_notify(
            &signer,
            &api_v3_key(),
            "EV-1",
            wechatpay_v3::EventType::TransactionSuccess,
            "支付成功",
            "transaction",
            plaintext.as_bytes(),
        )
        .unwrap();
        let mut map = reqwest::header::HeaderMap::new();
        headers.insert_into(&mut map).unwrap();
        let notify = client.parse_payment_notify(&map, &body).await.unwrap();
        assert_eq!(notify.transaction.amount.total.get(), 9999);
    }
}

#[test]
fn the_merchant_certificate_names_the_serial_and_checks_the_key() {
    // A merchant certificate has the same shape as a platform one.
    let identity = platform_identity(&[0x40, 0x8B, 0x07], -60, 86400);
    let certificate =
        wechatpay_v3::MerchantCertificate::from_pem(identity.certificate.pem()).unwrap();
    assert_eq!(certificate.serial_no(), "408B07");
    let own = wechatpay_v3::MerchantPrivateKey::from_pem(&identity.key_pem).unwrap();
    assert!(certificate.certifies(&own));
    assert!(!certificate.certifies(&merchant_key()));
    assert!(!format!("{certificate:?}").contains("BEGIN"));
}
