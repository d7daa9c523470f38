//! The simulator over HTTPS, wanting the merchant's certificate on refunds as WeChat does:
//! real mutual-TLS handshakes with the workspace client and with wechatpy.

use crate::common::{default_head, params};
use crate::pki::{MerchantCert, TestPki};
use serde_json::json;
use wechatpay_sim::{
    DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, SimConfig, SimHandle, Simulator,
};
use wechatpay_v2::{
    ApiKey, Client, ClientConfig, Error, Fen, OrderRef, RefundRequest, RefundStatus, RetryPolicy,
    TradeKind, UnifiedOrderRequest,
};

async fn https_sim(pki: &TestPki) -> SimHandle {
    let sim = Simulator::start(
        SimConfig::default()
            .with_time_scale(1000.0)
            .with_tls(pki.sim_tls.clone()),
    )
    .await
    .unwrap();
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    sim
}

/// The client trusting the test CA, with `certificate` as its merchant identity.
fn client(sim: &SimHandle, pki: &TestPki, certificate: &MerchantCert) -> Client {
    Client::new(ClientConfig {
        base_url: sim.base_url(),
        app_id: DEFAULT_APPID.into(),
        mch_id: DEFAULT_MCH_ID.into(),
        api_key: ApiKey::new(DEFAULT_API_KEY),
        identity: Some(certificate.identity()),
        trusted_roots_pem: Some(pki.ca_pem.as_bytes().to_vec()),
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    })
    .unwrap()
}

/// A paid NATIVE order `out_trade_no` of `fee` fen, made and paid over HTTPS.
async fn paid_order(sim: &SimHandle, client: &Client, out_trade_no: &str, fee: i64) {
    let created = client
        .unified_order(&UnifiedOrderRequest::new(
            TradeKind::Native {
                product_id: "p1".into(),
            },
            "goods over TLS",
            out_trade_no,
            Fen::new(fee),
            "127.0.0.1",
            "http://127.0.0.1:9/notify",
        ))
        .await
        .unwrap();
    sim.pay(created.code_url.unwrap().as_str()).unwrap();
}

/// A refund of 40 fen of the 100-fen order `out_trade_no`.
fn refund_of(out_trade_no: &str, out_refund_no: &str) -> RefundRequest {
    RefundRequest {
        order: OrderRef::OutTradeNo(out_trade_no.into()),
        out_refund_no: out_refund_no.into(),
        total_fee: Fen::new(100),
        refund_fee: Fen::new(40),
        refund_desc: None,
        notify_url: None,
    }
}

#[tokio::test]
async fn refunds_over_https_need_the_merchants_own_certificate() {
    let pki = TestPki::generate().await;
    let sim = https_sim(&pki).await;
    let merchant = client(&sim, &pki, &pki.merchant);
    paid_order(&sim, &merchant, "tls-1", 100).await;

    // The merchant's own certificate: the refund goes through.
    let refund = merchant
        .refund(&refund_of("tls-1", "tls-1-r1"))
        .await
        .unwrap();
    assert_eq!(refund.refund_fee, Fen::new(40));

    // Another merchant's certificate, from the same CA: refused by the gateway.
    let error = client(&sim, &pki, &pki.other_merchant)
        .refund(&refund_of("tls-1", "tls-1-r2"))
        .await
        .unwrap_err();
    match &error {
        Error::Protocol { return_msg, .. } => {
            assert_eq!(return_msg, "商户号与API证书不匹配", "{error}")
        }
        other => panic!("expected a protocol refusal, got {other:?}"),
    }

    // A certificate from an authority the gateway does not trust: no handshake at all.
    let error = client(&sim, &pki, &pki.untrusted)
        .refund(&refund_of("tls-1", "tls-1-r3"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");

    // No certificate: WeChat's front end answers nginx's 400 before reading the call.
    // Queries need none.
    let no_certificate = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut body = default_head();
    body.extend(params(&[
        ("out_trade_no", "tls-1"),
        ("out_refund_no", "tls-1-r4"),
        ("total_fee", "100"),
        ("refund_fee", "40"),
    ]));
    wechatpay_v2::sign_params(
        &mut body,
        wechatpay_v2::SignType::Md5,
        &ApiKey::new(DEFAULT_API_KEY),
    );
    let answer = no_certificate
        .post(format!("{}/secapi/pay/refund", sim.base_url()))
        .body(wechatpay_v2::xml::encode(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("No required SSL certificate was sent")
    );
    let mut query = default_head();
    query.insert("out_trade_no".into(), "tls-1".into());
    wechatpay_v2::sign_params(
        &mut query,
        wechatpay_v2::SignType::Md5,
        &ApiKey::new(DEFAULT_API_KEY),
    );
    let answer = no_certificate
        .post(format!("{}/pay/orderquery", sim.base_url()))
        .body(wechatpay_v2::xml::encode(&query))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());

    // Only the first refund happened.
    let refunds = merchant
        .refund_query(&wechatpay_v2::RefundRef::OutTradeNo("tls-1".into()))
        .await
        .unwrap();
    assert_eq!(refunds.refunds.len(), 1);
    assert_eq!(refunds.refunds[0].refund_status, RefundStatus::Success);

    // The server's certificate is checked too: a client that does not trust the CA stops.
    let untrusting = Client::new(ClientConfig {
        trusted_roots_pem: None,
        ..merchant.config().clone()
    })
    .unwrap();
    let error = untrusting
        .order_query(&OrderRef::OutTradeNo("tls-1".into()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn wechatpy_refunds_over_mutual_tls() {
    let pki = TestPki::generate().await;
    let sim = https_sim(&pki).await;
    paid_order(&sim, &client(&sim, &pki, &pki.merchant), "tls-wp", 300).await;
    let data = json!({
        "base": sim.base_url(),
        "ca": pki.ca_file,
        "appid": DEFAULT_APPID,
        "mch_id": DEFAULT_MCH_ID,
        "key": DEFAULT_API_KEY,
        "cert": pki.merchant.cert_file,
        "cert_key": pki.merchant.key_file,
        "other_cert": pki.other_merchant.cert_file,
        "other_key": pki.other_merchant.key_file,
    });
    let out = tokio::task::spawn_blocking(move || {
        test_support::run_python(
            r#"
import os
os.environ['REQUESTS_CA_BUNDLE'] = data['ca']
from wechatpy.pay import WeChatPay
from wechatpy.exceptions import WeChatPayException

def client(cert, key):
    pay = WeChatPay(appid=data['appid'], api_key=data['key'], mch_id=data['mch_id'],
                    mch_cert=cert, mch_key=key, timeout=10)
    pay.API_BASE_URL = data['base'] + '/'
    return pay

result = {}
try:
    client(data['other_cert'], data['other_key']).refund.apply(
        total_fee=300, refund_fee=100, out_refund_no='tls-wp-r0', out_trade_no='tls-wp')
    result['other'] = 'accepted'
except WeChatPayException as e:
    result['other'] = e.errmsg
refund = client(data['cert'], data['cert_key']).refund.apply(
    total_fee=300, refund_fee=100, out_refund_no='tls-wp-r1', out_trade_no='tls-wp')
result['refund_fee'] = refund['refund_fee']
result['query'] = client(data['cert'], data['cert_key']).refund.query(out_refund_no='tls-wp-r1')
"#,
            &data,
        )
    })
    .await
    .unwrap();
    assert_eq!(out["other"], "商户号与API证书不匹配", "{out}");
    assert_eq!(out["refund_fee"], "100", "{out}");
    assert_eq!(out["query"]["refund_status_0"], "SUCCESS", "{out}");
    sim.shutdown().await;
}

#[tokio::test]
async fn unusable_tls_files_are_named_at_start() {
    let pki = TestPki::generate().await;
    let mut tls = pki.sim_tls.clone();
    tls.key_file = pki.ca_file.clone();
    let error = Simulator::start(SimConfig::default().with_tls(tls))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ca.pem"), "{error}");
    let mut tls = pki.sim_tls.clone();
    tls.cert_file = pki.ca_file.with_file_name("missing.pem");
    let error = Simulator::start(SimConfig::default().with_tls(tls))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("missing.pem"), "{error}");
}
