//! `pays.WechatPayV3Type` against the simulator over real HTTP, beside a V2 instance in
//! one shop: the whole flow in each way of trusting WeChat (the WeChat Pay public key,
//! platform certificates, the host's simulator's keys), the pay URLs of each trade type,
//! cancel, and hostile V3 notifies (forged, unknown serial, stale, SIGNTEST, tampered
//! ciphertext or associated data, wrong amount or merchant, a storm of duplicates).

use std::sync::Arc;
use std::time::Duration;

use jit_pays::{
    ApiVersion, NotifyOutcome, NotifyRequest, Pay, PayEventKind, PayStatus, PayType, Payer,
    RefundArgs, RefundStatus, RefusalReason,
};
use serde_json::{Value, json};
use test_support::v3_keys::{
    API_V3_KEY, MERCHANT_KEY_PEM, MERCHANT_KEY_PKCS1_PEM, MERCHANT_SERIAL_NO,
    PLATFORM_CERTIFICATE_PEM, PLATFORM_KEY_PEM, STRANGER_KEY_PEM, WECHATPAY_PUBLIC_KEY_ID,
    WECHATPAY_PUBLIC_KEY_PEM, WECHATPAY_PUBLIC_KEY_PRIVATE_PEM, sealed_payment, signer,
    wechat_signer,
};
use wechatpay_sim::{MerchantConfig, MerchantV3Config, SimConfig, SimV3Config, V3Mode};
use wechatpay_v2::Fen;
use wechatpay_v3::{MerchantPrivateKey, PlatformSigner, SignedHeaders};

use crate::support;
use crate::support::shop::{self, Shop, ShopOptions};

/// The V3 instance.
const V3_PAY: &str = "pays.myWechatPayV3";
/// Its appid.
const V3_APP_ID: &str = "wx5f6c7d8e9a0b1c2d";
/// Its merchant (V3 only).
const V3_MCH_ID: &str = "1900000109";

/// How the V3 instance verifies WeChat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trust {
    /// Its configured WeChat Pay public key; the simulator signs with it.
    PublicKey,
    /// Platform certificates it downloads; the simulator signs with its certificate.
    PlatformCertificates,
    /// Nothing configured: the host's simulator's keys, handed over in the settings.
    Simulator,
}

/// The instance's config file for `trust`.
fn instance_config(trust: Trust) -> String {
    let mut config = json!({
        "appId": V3_APP_ID,
        "mchId": V3_MCH_ID,
        "apiV3Key": API_V3_KEY,
        "privateKeyPath": "keys/apiclient_key.pem",
        "merchantSerialNo": MERCHANT_SERIAL_NO,
    });
    match trust {
        Trust::PublicKey => {
            config["wechatpayPublicKeyId"] = json!(WECHATPAY_PUBLIC_KEY_ID);
            config["wechatpayPublicKeyPath"] = json!("keys/pub_key.pem");
        }
        Trust::PlatformCertificates => config["platformCertificates"] = json!(true),
        Trust::Simulator => {}
    }
    json!({ "config": config }).to_string()
}

/// The merchant as the simulator knows it: its APIv3 key, serial and public key.
fn v3_merchant() -> MerchantConfig {
    let public_key = MerchantPrivateKey::from_pem(MERCHANT_KEY_PEM)
        .unwrap()
        .public_key()
        .to_pem()
        .unwrap();
    MerchantConfig {
        v3: Some(MerchantV3Config {
            api_v3_key: API_V3_KEY.to_owned(),
            merchant_serial_no: MERCHANT_SERIAL_NO.to_owned(),
            merchant_public_key_pem: public_key,
        }),
        ..MerchantConfig::new(V3_APP_ID, V3_MCH_ID, "no V2 key: this merchant speaks V3")
    }
}

fn options(trust: Trust) -> ShopOptions {
    let mode = match trust {
        Trust::PlatformCertificates => V3Mode::PlatformCertificate,
        Trust::PublicKey | Trust::Simulator => V3Mode::PublicKey,
    };
    let sim = SimConfig {
        v3: SimV3Config {
            mode,
            public_key_id: Some(WECHATPAY_PUBLIC_KEY_ID.to_owned()),
            public_key_private_pem: Some(WECHATPAY_PUBLIC_KEY_PRIVATE_PEM.to_owned()),
            platform_certificate_pem: Some(PLATFORM_CERTIFICATE_PEM.to_owned()),
            platform_private_key_pem: Some(PLATFORM_KEY_PEM.to_owned()),
        },
        ..SimConfig::default().with_time_scale(1000.0)
    }
    .with_merchant(v3_merchant());
    ShopOptions {
        sim,
        files: vec![
            (
                "elements/pays/myWechatPayV3/e.json".to_owned(),
                r#"{"type": "pays.WechatPayV3Type", "title": "My WeChat Pay V3"}"#.to_owned(),
            ),
            (
                "elements/pays/myWechatPayV3/myWechatPayV3.json".to_owned(),
                instance_config(trust),
            ),
            (
                "keys/apiclient_key.pem".to_owned(),
                MERCHANT_KEY_PEM.to_owned(),
            ),
            (
                "keys/pub_key.pem".to_owned(),
                WECHATPAY_PUBLIC_KEY_PEM.to_owned(),
            ),
        ],
        simulator_keys_of: (trust == Trust::Simulator).then_some(V3_MCH_ID),
        ..ShopOptions::default()
    }
}

async fn v3_pay(shop: &Shop) -> Arc<dyn Pay> {
    shop.app.get::<dyn Pay>(V3_PAY).await.expect("the V3 pay")
}

/// Waits until the refund leaves `processing` (or 10 s pass) and returns its state.
async fn wait_refund_settled(pay: &dyn Pay, order_id: &str, refund_id: &str) -> RefundStatus {
    for _ in 0..200 {
        let refunds = pay.list_refunds(order_id).await.unwrap();
        let refund = refunds.iter().find(|r| r.refund_id == refund_id).unwrap();
        if refund.status != RefundStatus::Processing {
            return refund.status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    RefundStatus::Processing
}

fn today() -> chrono::NaiveDate {
    wechatpay_v2::time::beijing_date(chrono::Utc::now())
}

#[tokio::test]
async fn a_v3_order_pays_refunds_and_reconciles_beside_v2_in_each_trust_mode() {
    for trust in [
        Trust::PublicKey,
        Trust::PlatformCertificates,
        Trust::Simulator,
    ] {
        for db in support::all().await {
            let label = format!("{trust:?} on {}", db.label);
            let shop = shop::start(db, options(trust)).await;
            let pay = v3_pay(&shop).await;
            assert_eq!(pay.api_version(), ApiVersion::V3, "{label}");

            // Create → pay URL (NATIVE) → the payer pays → the V3 notify records it.
            let order = pay
                .create("V3 订单", Fen::from_yuan_str("12.34").unwrap(), None)
                .await
                .unwrap();
            assert_eq!(order.element, V3_PAY);
            let url = pay
                .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
                .await
                .unwrap();
            assert!(url.pay_url.starts_with("weixin://"), "{label}: {url:?}");
            // A second call reuses the prepay order.
            let again = pay
                .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
                .await
                .unwrap();
            assert_eq!(again, url, "{label}");
            shop.sim.pay(order.order_id.as_str()).unwrap();
            assert_eq!(
                shop.wait_settled(&order.order_id).await,
                PayStatus::Success,
                "{label}: the V3 notify was verified and recorded"
            );
            let record = shop
                .db
                .store
                .find_record(&order.order_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(record.api_version, ApiVersion::V3, "{label}");
            assert_eq!(record.trade_state.as_deref(), Some("SUCCESS"), "{label}");
            let last_notify: Value =
                serde_json::from_str(record.last_notify.as_deref().unwrap()).unwrap();
            assert_eq!(last_notify["out_trade_no"], json!(order.order_id));
            // The query agrees.
            let checked = pay.check(&order.order_id).await.unwrap();
            assert_eq!(checked.status, PayStatus::Success);
            assert!(checked.transaction_id.is_some());

            // A V2 order in the same shop, the same way.
            let v2_order = shop.paid_order("1.00").await;
            assert_eq!(v2_order.element, "pays.myWechatPay");

            // Refund part of the V3 order; WeChat's V3 refund notify settles it.
            let refund = pay
                .refund(RefundArgs {
                    order_id: order.order_id.clone(),
                    amount: Some(Fen::from_yuan_str("2.34").unwrap()),
                    reason: Some("缺货".into()),
                    refund_id: None,
                })
                .await
                .unwrap();
            assert_eq!(refund.amount.get(), 234, "{label}");
            assert_eq!(
                wait_refund_settled(pay.as_ref(), &order.order_id, &refund.refund_id).await,
                RefundStatus::Success,
                "{label}: the V3 refund notify was verified and applied"
            );
            let queried = pay.query_refund(&refund.refund_id).await.unwrap();
            assert_eq!(queried.status, RefundStatus::Success);
            assert!(queried.wechat_refund_id.is_some());
            let summary = shop.svc.query(&order.order_id).await.unwrap();
            assert_eq!(summary.refunded_fen.get(), 234, "{label}");

            // Exactly one payment event, and the refund's two.
            assert_eq!(
                shop.events_for(&order.order_id).await,
                vec![
                    PayEventKind::Paid,
                    PayEventKind::RefundRequested,
                    PayEventKind::RefundSucceeded
                ],
                "{label}"
            );

            // The day reconciles clean for both merchants: V3's bill through V3's trade bill.
            let days = shop.svc.reconcile(today(), None).await.unwrap();
            assert_eq!(days.len(), 3, "{label}: {days:?}");
            for day in &days {
                assert!(day.is_clean(), "{label}: {day:?}");
            }
            let v3_day = days.iter().find(|day| day.element == V3_PAY).unwrap();
            assert_eq!(v3_day.mch_id, V3_MCH_ID);
            assert_eq!(
                (v3_day.bill_lines, v3_day.matched),
                (2, 2),
                "{label}: {v3_day:?}"
            );
        }
    }
}

#[tokio::test]
async fn v3_pay_urls_for_each_trade_type_and_a_cancel() {
    let shop = shop::start(support::sqlite().await, options(Trust::PublicKey)).await;
    let pay = v3_pay(&shop).await;
    let create = || async {
        pay.create("商品", Fen::new(100), None)
            .await
            .unwrap()
            .order_id
    };

    let jsapi = create().await;
    let missing = pay
        .get_pay_url(&jsapi, PayType::Jsapi, &Payer::default())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("openid"), "{missing}");
    let url = pay
        .get_pay_url(
            &jsapi,
            PayType::Jsapi,
            &Payer {
                openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
                ..Payer::default()
            },
        )
        .await
        .unwrap();
    assert!(url.pay_url.starts_with("prepay_id="), "{url:?}");
    let form: Value = serde_json::from_str(&url.form).unwrap();
    assert_eq!(form["signType"], "RSA");
    assert_eq!(form["appId"], V3_APP_ID);
    assert_eq!(form["package"], json!(url.pay_url));

    let app = create().await;
    let url = pay
        .get_pay_url(&app, PayType::App, &Payer::default())
        .await
        .unwrap();
    let form: Value = serde_json::from_str(&url.form).unwrap();
    assert_eq!(form["partnerid"], V3_MCH_ID);
    assert_eq!(form["package"], "Sign=WXPay");

    let h5 = create().await;
    let url = pay
        .get_pay_url(
            &h5,
            PayType::Mweb,
            &Payer {
                client_ip: Some("203.0.113.7".into()),
                ..Payer::default()
            },
        )
        .await
        .unwrap();
    assert!(url.pay_url.starts_with("http"), "{url:?}");
    // Another trade type for the same order is refused, as WeChat would.
    let changed = pay
        .get_pay_url(&h5, PayType::Native, &Payer::default())
        .await
        .unwrap_err();
    assert!(changed.to_string().contains("MWEB"), "{changed}");

    let cancelled = pay.cancel(&h5).await.unwrap();
    assert!(cancelled.closed);
    assert_eq!(cancelled.order.status, PayStatus::Close);
    let record = shop.db.store.find_record(&h5).await.unwrap().unwrap();
    assert_eq!(record.api_version, ApiVersion::V3);
    assert_eq!(record.trade_type.as_deref(), Some("MWEB"));
}

/// The sealed payment notify of `order_id` for `total` fen of `mchid`.
fn sealed(order_id: &str, total: i64, mchid: &str, transaction_id: &str) -> String {
    sealed_payment(
        V3_APP_ID,
        mchid,
        order_id,
        total,
        transaction_id,
        "transaction",
    )
    .to_string()
}

/// `body` signed by `signer`, as a request.
fn signed(signer: &PlatformSigner, body: &str) -> NotifyRequest {
    request(&signer.sign(body.as_bytes()).unwrap(), body)
}

fn request(headers: &SignedHeaders, body: &str) -> NotifyRequest {
    NotifyRequest::new(
        headers
            .to_pairs()
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect::<Vec<_>>(),
        body,
    )
}

#[tokio::test]
async fn hostile_v3_notifies_are_refused_and_change_nothing() {
    for db in support::all().await {
        let label = db.label;
        let shop = shop::start(db, options(Trust::PublicKey)).await;
        let pay = v3_pay(&shop).await;
        let order = pay.create("目标", Fen::new(500), None).await.unwrap();
        pay.get_pay_url(&order.order_id, PayType::Native, &Payer::default())
            .await
            .unwrap();
        let genuine = |total: i64, mchid: &str| {
            sealed(
                &order.order_id,
                total,
                mchid,
                "4200000000202612010000000001",
            )
        };
        let stranger = signer(WECHATPAY_PUBLIC_KEY_ID, STRANGER_KEY_PEM);
        let unknown_serial = signer(
            "PUB_KEY_ID_0000000000000000000000000000000000",
            WECHATPAY_PUBLIC_KEY_PRIVATE_PEM,
        );
        let body = genuine(500, V3_MCH_ID);
        let stale = wechat_signer()
            .sign_at(
                body.as_bytes(),
                &(chrono::Utc::now().timestamp() - 600).to_string(),
                "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
            )
            .unwrap();
        let mut probe = wechat_signer().sign(body.as_bytes()).unwrap();
        probe.signature = format!("WECHATPAY/SIGNTEST/{}", probe.signature);
        let mut envelope: Value = serde_json::from_str(&body).unwrap();
        let ciphertext = envelope["resource"]["ciphertext"]
            .as_str()
            .unwrap()
            .to_owned();
        let flipped = if ciphertext.starts_with('A') {
            "B"
        } else {
            "A"
        };
        envelope["resource"]["ciphertext"] = json!(format!("{flipped}{}", &ciphertext[1..]));
        let tampered_ciphertext = envelope.to_string();
        let mut envelope: Value = serde_json::from_str(&body).unwrap();
        envelope["resource"]["associated_data"] = json!("refund");
        let tampered_aad = envelope.to_string();

        let cases: Vec<(&str, NotifyRequest, RefusalReason)> = vec![
            (
                "forged signature",
                signed(&stranger, &body),
                RefusalReason::BadSignature,
            ),
            (
                "unknown serial",
                signed(&unknown_serial, &body),
                RefusalReason::BadSignature,
            ),
            (
                "stale timestamp",
                request(&stale, &body),
                RefusalReason::BadSignature,
            ),
            (
                "SIGNTEST probe",
                request(&probe, &body),
                RefusalReason::BadSignature,
            ),
            (
                "tampered ciphertext",
                signed(&wechat_signer(), &tampered_ciphertext),
                RefusalReason::BadSignature,
            ),
            (
                "tampered associated data",
                signed(&wechat_signer(), &tampered_aad),
                RefusalReason::BadSignature,
            ),
            (
                "body changed after signing",
                request(
                    &wechat_signer().sign(body.as_bytes()).unwrap(),
                    &genuine(1, V3_MCH_ID),
                ),
                RefusalReason::BadSignature,
            ),
            (
                "wrong amount",
                signed(&wechat_signer(), &genuine(1, V3_MCH_ID)),
                RefusalReason::AmountMismatch,
            ),
            (
                "wrong merchant",
                signed(&wechat_signer(), &genuine(500, "1900000999")),
                RefusalReason::WrongMerchant,
            ),
            (
                "no signature",
                NotifyRequest::new([("content-type", "application/json")], body.clone()),
                RefusalReason::Malformed,
            ),
        ];
        for (case, request, expected) in cases {
            let reply = shop.svc.wechat_notify_v3_from(&request, None).await;
            match reply.outcome() {
                NotifyOutcome::Rejected { kind, .. } => {
                    assert_eq!(*kind, expected, "{label}: {case}: {reply:?}")
                }
                other => panic!("{label}: {case}: {other:?}"),
            }
            assert_eq!(reply.v3_status(), 400, "{label}: {case}");
            assert_eq!(
                reply.v3_body(),
                Some(json!({"code": "FAIL", "message": "notify refused"})),
                "{label}: {case}: the reply tells a forger nothing"
            );
            assert_eq!(
                shop.db
                    .store
                    .get_order(&order.order_id)
                    .await
                    .unwrap()
                    .status,
                PayStatus::Wait,
                "{label}: {case}"
            );
        }
        assert!(shop.events_for(&order.order_id).await.is_empty(), "{label}");

        // A storm of the genuine notify: one transition, one event, every copy acknowledged.
        let genuine = signed(&wechat_signer(), &body);
        let replies = futures::future::join_all(
            (0..24).map(|_| shop.svc.wechat_notify_v3_from(&genuine, None)),
        )
        .await;
        let paid = replies
            .iter()
            .filter(|reply| matches!(reply.outcome(), NotifyOutcome::Paid { .. }))
            .count();
        assert_eq!(paid, 1, "{label}: {replies:?}");
        for reply in &replies {
            assert!(reply.acknowledged(), "{label}: {reply:?}");
            assert_eq!(reply.v3_status(), 204);
            assert_eq!(reply.v3_body(), None);
        }
        assert_eq!(
            shop.events_for(&order.order_id).await,
            vec![PayEventKind::Paid],
            "{label}"
        );
    }
}

/// A V3 notify the V2 instance's order cannot take, and a V2 notify for a V3 order: each
/// API's notify reaches only its own Type's orders.
#[tokio::test]
async fn each_api_notify_reaches_only_its_own_orders() {
    let shop = shop::start(support::sqlite().await, options(Trust::PublicKey)).await;
    let v2_order = shop.pay.create("V2", Fen::new(300), None).await.unwrap();
    let body = sealed(
        &v2_order.order_id,
        300,
        V3_MCH_ID,
        "4200000000202612010000000002",
    );
    let reply = shop
        .svc
        .wechat_notify_v3_from(&signed(&wechat_signer(), &body), None)
        .await;
    assert!(
        matches!(reply.outcome(), NotifyOutcome::Rejected { .. }),
        "{reply:?}"
    );

    let pay = v3_pay(&shop).await;
    let v3_order = pay.create("V3", Fen::new(300), None).await.unwrap();
    let xml = shop::signed_notify(
        shop::APP_ID,
        shop::MCH_ID,
        shop::API_KEY,
        &v3_order.order_id,
        300,
        "4200000000202612010000000003",
    );
    let reply = shop.svc.wechat_notify(xml.as_bytes()).await;
    assert!(
        matches!(
            reply.outcome(),
            NotifyOutcome::Rejected {
                kind: RefusalReason::Misrouted,
                ..
            }
        ),
        "{reply:?}"
    );
    for order_id in [&v2_order.order_id, &v3_order.order_id] {
        assert_eq!(
            shop.db.store.get_order(order_id).await.unwrap().status,
            PayStatus::Wait
        );
    }
}

/// The merchant key in PKCS#1 works as in PKCS#8.
#[tokio::test]
async fn a_pkcs1_merchant_key_signs_as_the_pkcs8_one() {
    let mut options = options(Trust::PublicKey);
    for (path, content) in &mut options.files {
        if path == "keys/apiclient_key.pem" {
            *content = MERCHANT_KEY_PKCS1_PEM.to_owned();
        }
    }
    let shop = shop::start(support::sqlite().await, options).await;
    let pay = v3_pay(&shop).await;
    let order = pay.create("PKCS#1", Fen::new(100), None).await.unwrap();
    let url = pay
        .get_pay_url(&order.order_id, PayType::Native, &Payer::default())
        .await
        .unwrap();
    assert!(url.pay_url.starts_with("weixin://"));
}
