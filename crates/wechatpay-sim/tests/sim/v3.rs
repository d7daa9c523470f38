//! API v3 beside V2: the `wechatpay-v3` client against the simulator in each signing mode,
//! V3 notifies received and verified by a loopback merchant, the SIGNTEST probe, V3 error
//! codes and faults on V3 endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use wechatpay_sim::{
    DEFAULT_APPID, DEFAULT_MCH_ID, Endpoint, Fault, FaultRule, SimConfig, SimHandle, Simulator,
    V3Material, V3Mode,
};
use wechatpay_v3::{
    ApiV3Key, Client, ClientConfig, Error, Fen, H5Scene, MerchantPrivateKey, OrderRef, PrepayKind,
    PrepayRequest, RefundRequest, RefundStatus, RetryPolicy, TradeState, Verification, VerifyError,
    WechatPayPublicKey,
};

const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

async fn start(mode: V3Mode) -> (SimHandle, V3Material) {
    let sim = Simulator::start(
        SimConfig::default()
            .with_time_scale(1000.0)
            .with_v3_mode(mode),
    )
    .await
    .unwrap();
    let material = sim.v3_material(DEFAULT_MCH_ID).unwrap().unwrap();
    (sim, material)
}

fn public_key(material: &V3Material) -> WechatPayPublicKey {
    WechatPayPublicKey::from_pem(
        &material.wechatpay_public_key_id,
        &material.wechatpay_public_key_pem,
    )
    .unwrap()
}

/// How a merchant verifies under each mode: with what the merchant platform hands out.
fn verification(mode: V3Mode, material: &V3Material) -> Verification {
    match mode {
        V3Mode::PublicKey => Verification::PublicKey(public_key(material)),
        V3Mode::PlatformCertificate => Verification::PlatformCertificates(Vec::new()),
        V3Mode::Switchover { .. } => Verification::Switchover {
            public_key: public_key(material),
            certificates: Vec::new(),
        },
    }
}

fn client(sim: &SimHandle, material: &V3Material, verification: Verification) -> Client {
    let mut config = ClientConfig::new(
        DEFAULT_APPID,
        DEFAULT_MCH_ID,
        material.merchant_serial_no.clone(),
        MerchantPrivateKey::from_pem(material.merchant_private_key_pem.as_ref().unwrap()).unwrap(),
        ApiV3Key::new(&material.api_v3_key).unwrap(),
        verification,
    );
    config.base_url = sim.base_url();
    config.retry = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(5),
    };
    Client::new(config).unwrap()
}

fn api_error(error: &Error) -> (u16, String) {
    match error {
        Error::Api { status, code, .. } => (*status, code.to_string()),
        other => panic!("expected a V3 error answer, got {other:?}"),
    }
}

fn prepay(kind: PrepayKind, out_trade_no: &str, notify_url: &str) -> PrepayRequest {
    PrepayRequest::new(
        kind,
        "Sim V3 order",
        out_trade_no,
        Fen::new(888),
        notify_url,
    )
}

/// Prepay of each kind, queries both ways, payment, close, refund and its query.
async fn full_flow(mode: V3Mode) {
    let (sim, material) = start(mode).await;
    let merchant = client(&sim, &material, verification(mode, &material));
    let url = "http://127.0.0.1:9/notify";
    let tag = format!("{:?}", mode)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>();

    let native = merchant
        .prepay(&prepay(PrepayKind::Native, &format!("N{tag}01"), url))
        .await
        .unwrap();
    assert!(
        native
            .code_url
            .unwrap()
            .starts_with("weixin://wxpay/bizpayurl?pr=")
    );
    let jsapi = merchant
        .prepay(&prepay(
            PrepayKind::Jsapi {
                openid: OPENID.into(),
            },
            &format!("J{tag}01"),
            url,
        ))
        .await
        .unwrap();
    let prepay_id = jsapi.prepay_id.unwrap();
    assert!(prepay_id.starts_with("wx"), "{prepay_id}");
    assert!(
        merchant
            .prepay(&prepay(PrepayKind::App, &format!("A{tag}01"), url))
            .await
            .unwrap()
            .prepay_id
            .is_some()
    );
    let h5 = merchant
        .prepay(&prepay(
            PrepayKind::H5(H5Scene::wap("203.0.113.9")),
            &format!("H{tag}01"),
            url,
        ))
        .await
        .unwrap();
    assert!(h5.h5_url.unwrap().contains("checkmweb"));
    // The same order again: the same prepay id.
    let again = merchant
        .prepay(&prepay(
            PrepayKind::Jsapi {
                openid: OPENID.into(),
            },
            &format!("J{tag}01"),
            url,
        ))
        .await
        .unwrap();
    assert_eq!(again.prepay_id.as_deref(), Some(prepay_id.as_str()));

    let native_no = format!("N{tag}01");
    let unpaid = merchant
        .query_order(&OrderRef::OutTradeNo(native_no.clone()))
        .await
        .unwrap();
    assert_eq!(unpaid.trade_state, TradeState::NotPay);
    assert_eq!(unpaid.amount.total, Fen::new(888));

    // The payer's side works for V3 orders as for V2.
    let paid = sim.pay(native_no.as_str()).unwrap();
    let by_no = merchant
        .query_order(&OrderRef::OutTradeNo(native_no.clone()))
        .await
        .unwrap();
    assert_eq!(by_no.trade_state, TradeState::Success);
    let transaction_id = by_no.transaction_id.clone().unwrap();
    assert_eq!(Some(&transaction_id), paid.transaction_id.as_ref());
    let by_id = merchant
        .query_order(&OrderRef::TransactionId(transaction_id.clone()))
        .await
        .unwrap();
    assert_eq!(by_id.out_trade_no, native_no);
    assert_eq!(by_id.amount.payer_total, Some(Fen::new(888)));

    merchant.close_order(&format!("J{tag}01")).await.unwrap();
    let closed = merchant
        .query_order(&OrderRef::OutTradeNo(format!("J{tag}01")))
        .await
        .unwrap();
    assert_eq!(closed.trade_state, TradeState::Closed);
    let error = merchant.close_order(&native_no).await.unwrap_err();
    assert_eq!(api_error(&error), (400, "ORDERPAID".into()));

    let refund = merchant
        .refund(&RefundRequest::new(
            OrderRef::TransactionId(transaction_id),
            format!("R{tag}01"),
            Fen::new(300),
            Fen::new(888),
        ))
        .await
        .unwrap();
    assert_eq!(refund.out_trade_no, native_no);
    assert_eq!(refund.amount.refund, Fen::new(300));
    let queried = merchant.query_refund(&format!("R{tag}01")).await.unwrap();
    assert_eq!(queried.refund_id, refund.refund_id);
    assert_eq!(queried.status, RefundStatus::Success);
    assert!(queried.success_time.is_some());

    let missing = merchant
        .query_order(&OrderRef::OutTradeNo("NOSUCHORDER1".into()))
        .await
        .unwrap_err();
    assert_eq!(api_error(&missing), (404, "ORDER_NOT_EXIST".into()));
    let missing = merchant.query_refund("NOSUCHREFUND").await.unwrap_err();
    assert_eq!(api_error(&missing), (404, "RESOURCE_NOT_EXISTS".into()));

    // The orders are the simulator's own: inspection sees them as V3 orders.
    let order = sim.order(&native_no).unwrap();
    assert_eq!(order.api_version, wechatpay_sim::ApiVersion::V3);
    assert_eq!(order.trade_type, "NATIVE");
    assert_eq!(sim.order(&format!("H{tag}01")).unwrap().trade_type, "MWEB");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_v3_client_runs_the_whole_flow_in_public_key_mode() {
    full_flow(V3Mode::PublicKey).await;
}

#[tokio::test]
async fn the_v3_client_runs_the_whole_flow_in_platform_certificate_mode() {
    full_flow(V3Mode::PlatformCertificate).await;
}

#[tokio::test]
async fn the_v3_client_runs_the_whole_flow_during_a_switchover() {
    full_flow(V3Mode::Switchover {
        public_key_percent: 50,
    })
    .await;
}

#[tokio::test]
async fn platform_certificates_download_decrypted_in_certificate_mode_only() {
    let (sim, material) = start(V3Mode::PlatformCertificate).await;
    let merchant = client(
        &sim,
        &material,
        Verification::PlatformCertificates(Vec::new()),
    );
    let certificates = merchant.download_platform_certificates().await.unwrap();
    assert_eq!(certificates.len(), 1);
    assert_eq!(
        certificates[0].serial_no(),
        material.platform_certificate_serial
    );
    assert_eq!(
        certificates[0].pem().trim(),
        material.platform_certificate_pem.trim()
    );

    // A public-key merchant has no platform certificates.
    sim.set_v3_mode(V3Mode::PublicKey).unwrap();
    let error = merchant.download_platform_certificates().await.unwrap_err();
    assert_eq!(api_error(&error), (404, "RESOURCE_NOT_EXISTS".into()));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_holding_only_the_other_key_refuses_the_answers() {
    // The simulator signs with its platform certificate; a merchant that only knows the
    // public key cannot verify that serial.
    let (sim, material) = start(V3Mode::PlatformCertificate).await;
    let merchant = client(
        &sim,
        &material,
        Verification::PublicKey(public_key(&material)),
    );
    let error = merchant
        .prepay(&prepay(
            PrepayKind::App,
            "WRONGKEY01",
            "http://127.0.0.1:9/n",
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSignature { .. }), "{error:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn requests_with_a_bad_authorization_answer_sign_error() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let verify = Verification::PublicKey(public_key(&material));
    // Signed by another key under the right serial.
    let mut config = ClientConfig::new(
        DEFAULT_APPID,
        DEFAULT_MCH_ID,
        material.merchant_serial_no.clone(),
        MerchantPrivateKey::from_rsa(rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap())
            .unwrap(),
        ApiV3Key::new(&material.api_v3_key).unwrap(),
        verify.clone(),
    );
    config.base_url = sim.base_url();
    let forger = Client::new(config).unwrap();
    let error = forger
        .query_order(&OrderRef::OutTradeNo("ANYORDER01".into()))
        .await
        .unwrap_err();
    assert_eq!(api_error(&error), (401, "SIGN_ERROR".into()));

    // The right key under another serial.
    let mut config = client(&sim, &material, verify.clone()).config().clone();
    config.merchant_serial_no = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into();
    let error = Client::new(config)
        .unwrap()
        .query_order(&OrderRef::OutTradeNo("ANYORDER01".into()))
        .await
        .unwrap_err();
    assert_eq!(api_error(&error), (401, "SIGN_ERROR".into()));

    // The right key and serial, ten minutes late: a replay.
    let key =
        MerchantPrivateKey::from_pem(material.merchant_private_key_pem.as_ref().unwrap()).unwrap();
    let path = format!("/v3/pay/transactions/out-trade-no/ANYORDER01?mchid={DEFAULT_MCH_ID}");
    let stale = (chrono::Utc::now().timestamp() - 600).to_string();
    let authorization = wechatpay_v3::Authorization::sign(
        &key,
        DEFAULT_MCH_ID,
        &material.merchant_serial_no,
        "GET",
        &path,
        &stale,
        "STALENONCE",
        b"",
    )
    .unwrap();
    let answer = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .header("Authorization", authorization.to_header_value().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    // The same request signed now is answered (404: no such order).
    let fresh = wechatpay_v3::Authorization::sign(
        &key,
        DEFAULT_MCH_ID,
        &material.merchant_serial_no,
        "GET",
        &path,
        &chrono::Utc::now().timestamp().to_string(),
        "FRESHNONCE",
        b"",
    )
    .unwrap();
    let answer = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .header("Authorization", fresh.to_header_value().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    sim.clear_inspection();

    // No Authorization at all.
    let answer = reqwest::get(format!(
        "{}/v3/pay/transactions/out-trade-no/ANYORDER01?mchid={DEFAULT_MCH_ID}",
        sim.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().contains_key("wechatpay-signature"));
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "SIGN_ERROR");

    // Refusals are logged with their code.
    let logged = sim.inspect().requests;
    assert!(
        logged
            .iter()
            .all(|record| record.err_code.as_deref() == Some("SIGN_ERROR")),
        "{logged:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v3_order_book_refusals_carry_v3_codes() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let merchant = client(
        &sim,
        &material,
        Verification::PublicKey(public_key(&material)),
    );
    let url = "http://127.0.0.1:9/n";
    merchant
        .prepay(&prepay(PrepayKind::Native, "USEDNO0001", url))
        .await
        .unwrap();
    // The same number with another amount.
    let mut other = prepay(PrepayKind::Native, "USEDNO0001", url);
    other.amount = Fen::new(1);
    let error = merchant.prepay(&other).await.unwrap_err();
    assert_eq!(api_error(&error), (403, "OUT_TRADE_NO_USED".into()));
    merchant.close_order("USEDNO0001").await.unwrap();
    let error = merchant
        .prepay(&prepay(PrepayKind::Native, "USEDNO0001", url))
        .await
        .unwrap_err();
    assert_eq!(api_error(&error), (400, "ORDER_CLOSED".into()));
    // Refunding an unpaid order.
    merchant
        .prepay(&prepay(PrepayKind::Native, "UNPAID0001", url))
        .await
        .unwrap();
    let error = merchant
        .refund(&RefundRequest::new(
            OrderRef::OutTradeNo("UNPAID0001".into()),
            "RUNPAID01",
            Fen::new(1),
            Fen::new(888),
        ))
        .await
        .unwrap_err();
    assert_eq!(api_error(&error).0, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_strike_v3_endpoints_as_they_strike_v2() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let merchant = client(
        &sim,
        &material,
        Verification::PublicKey(public_key(&material)),
    );
    let url = "http://127.0.0.1:9/n";
    sim.faults()
        .add(
            FaultRule::new(Fault::SystemError)
                .on(Endpoint::UnifiedOrder)
                .times(1),
        )
        .unwrap();
    let error = merchant
        .prepay(&prepay(PrepayKind::App, "FAULTED001", url))
        .await
        .unwrap_err();
    assert_eq!(api_error(&error), (500, "SYSTEM_ERROR".into()));
    assert!(error.is_retryable());
    assert!(
        sim.order("FAULTED001").is_none(),
        "refused before the order book"
    );
    // Used up: the next call goes through.
    merchant
        .prepay(&prepay(PrepayKind::App, "FAULTED001", url))
        .await
        .unwrap();

    // After commit: the close happened though the answer says SYSTEM_ERROR.
    sim.faults()
        .add(
            FaultRule::new(Fault::SystemErrorAfterCommit)
                .on(Endpoint::CloseOrder)
                .times(1),
        )
        .unwrap();
    let error = merchant.close_order("FAULTED001").await.unwrap_err();
    assert_eq!(api_error(&error), (500, "SYSTEM_ERROR".into()));
    assert_eq!(
        sim.order("FAULTED001").unwrap().state,
        wechatpay_sim::TradeState::Closed
    );

    // A failing front end: an HTML page, no V3 document.
    sim.faults()
        .add(
            FaultRule::new(Fault::HttpStatus { status: 502 })
                .on(Endpoint::OrderQuery)
                .times(1),
        )
        .unwrap();
    let error = merchant
        .query_order(&OrderRef::OutTradeNo("FAULTED001".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport(wechatpay_v3::TransportError::Status { status: 502, .. })
        ),
        "{error:?}"
    );
    sim.shutdown().await;
}

/// One notify the loopback merchant received, and what its verification said.
#[derive(Debug, Clone)]
struct Opened {
    event_type: String,
    outcome: Result<serde_json::Value, String>,
    probe: bool,
}

/// A merchant's V3 notify endpoint: verifies and decrypts every delivery with the
/// `wechatpay-v3` client, answers 204 when it verified and 500 with a FAIL document when
/// not (refusing the first `reject_first` good ones too).
#[derive(Clone)]
struct V3Receiver {
    url: String,
    opened: Arc<Mutex<Vec<Opened>>>,
}

struct ReceiverState {
    client: Client,
    opened: Arc<Mutex<Vec<Opened>>>,
    reject_first: Mutex<usize>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let event_type = envelope["event_type"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let opened = state.client.open_notify(&headers, &body).await;
    let (outcome, probe) = match opened {
        Ok(notify) => (
            Ok(serde_json::from_slice(&notify.plaintext).unwrap()),
            false,
        ),
        Err(Error::InvalidSignature { source, .. }) => {
            let probe = matches!(source, VerifyError::SignTestProbe);
            (Err(source.to_string()), probe)
        }
        Err(other) => (Err(other.to_string()), false),
    };
    let good = outcome.is_ok();
    state.opened.lock().push(Opened {
        event_type,
        outcome,
        probe,
    });
    let reject = {
        let mut left = state.reject_first.lock();
        let reject = good && *left > 0;
        if reject {
            *left -= 1;
        }
        reject
    };
    if good && !reject {
        (StatusCode::NO_CONTENT, String::new())
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            wechatpay_v3::fail_reply("not accepted"),
        )
    }
}

impl V3Receiver {
    async fn start(client: Client, reject_first: usize) -> V3Receiver {
        let opened = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ReceiverState {
            client,
            opened: Arc::clone(&opened),
            reject_first: Mutex::new(reject_first),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v3/notify", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/v3/notify", post(receive))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        V3Receiver { url, opened }
    }

    async fn wait_for(&self, count: usize) -> Vec<Opened> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let opened = self.opened.lock().clone();
            if opened.len() >= count {
                return opened;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} notifies, got {opened:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn notifies_verify_and_decrypt(mode: V3Mode) {
    let (sim, material) = start(mode).await;
    let merchant = client(&sim, &material, verification(mode, &material));
    // The first good delivery is refused: WeChat's schedule (scaled) delivers it again.
    let receiver =
        V3Receiver::start(client(&sim, &material, verification(mode, &material)), 1).await;
    let mut request = prepay(PrepayKind::Native, "NOTIFYV301", &receiver.url);
    request.attach = Some("cart=7".into());
    merchant.prepay(&request).await.unwrap();
    sim.pay("NOTIFYV301").unwrap();
    let opened = receiver.wait_for(2).await;
    for delivery in &opened {
        assert_eq!(delivery.event_type, "TRANSACTION.SUCCESS");
        let transaction = delivery.outcome.as_ref().unwrap();
        assert_eq!(transaction["out_trade_no"], "NOTIFYV301");
        assert_eq!(transaction["trade_state"], "SUCCESS");
        assert_eq!(transaction["amount"]["total"], 888);
        assert_eq!(transaction["attach"], "cart=7");
    }
    let inspection = common::settled(&sim).await;
    let deliveries: Vec<_> = inspection
        .notifies
        .iter()
        .filter(|record| record.kind == "pay_v3")
        .collect();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(deliveries[0].outcome, "http_error");
    assert_eq!(deliveries[1].outcome, "acknowledged");
    assert_eq!(deliveries[1].reply_status, Some(204));

    // The refund notify, to the refund's own notify_url.
    let mut refund = RefundRequest::new(
        OrderRef::OutTradeNo("NOTIFYV301".into()),
        "RNOTIFYV301",
        Fen::new(88),
        Fen::new(888),
    );
    refund.notify_url = Some(receiver.url.clone());
    merchant.refund(&refund).await.unwrap();
    let opened = receiver.wait_for(3).await;
    assert_eq!(opened[2].event_type, "REFUND.SUCCESS");
    let notice = opened[2].outcome.as_ref().unwrap();
    assert_eq!(notice["out_refund_no"], "RNOTIFYV301");
    assert_eq!(notice["refund_status"], "SUCCESS");
    assert_eq!(notice["amount"]["refund"], 88);
    sim.shutdown().await;
}

#[tokio::test]
async fn v3_notifies_verify_and_decrypt_in_public_key_mode() {
    notifies_verify_and_decrypt(V3Mode::PublicKey).await;
}

#[tokio::test]
async fn v3_notifies_verify_and_decrypt_in_platform_certificate_mode() {
    notifies_verify_and_decrypt(V3Mode::PlatformCertificate).await;
}

#[tokio::test]
async fn v3_notifies_verify_and_decrypt_during_a_switchover() {
    notifies_verify_and_decrypt(V3Mode::Switchover {
        public_key_percent: 50,
    })
    .await;
}

#[tokio::test]
async fn a_signtest_probe_is_sent_once_and_refused_cleanly() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let verify = Verification::PublicKey(public_key(&material));
    let merchant = client(&sim, &material, verify.clone());
    let receiver = V3Receiver::start(client(&sim, &material, verify), 0).await;
    merchant
        .prepay(&prepay(PrepayKind::App, "PROBEDV301", &receiver.url))
        .await
        .unwrap();
    sim.send_signtest_probe("PROBEDV301").unwrap();
    let opened = receiver.wait_for(1).await;
    assert!(opened[0].probe, "{opened:?}");
    assert!(opened[0].outcome.is_err());
    let inspection = common::settled(&sim).await;
    let probes: Vec<_> = inspection
        .notifies
        .iter()
        .filter(|record| record.kind == "signtest_probe")
        .collect();
    assert_eq!(probes.len(), 1, "a probe is never retried: {probes:?}");
    assert_eq!(probes[0].outcome, "http_error");
    // Only V3 orders are probed.
    assert!(sim.send_signtest_probe("NOSUCHORDER").is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn configured_v3_material_is_checked_at_start() {
    let mut merchant = wechatpay_sim::MerchantConfig::default_merchant();
    merchant.v3 = Some(wechatpay_sim::MerchantV3Config {
        api_v3_key: "too short".into(),
        merchant_serial_no: "ABC123".into(),
        merchant_public_key_pem: "not a key".into(),
    });
    let error = Simulator::start(SimConfig::default().with_merchants([merchant]))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("merchants[0].v3.api_v3_key"), "{error}");

    let error = SimConfig::from_toml_str(
        "[[merchants]]\nappid = \"wx1\"\nmch_id = \"1900000001\"\nkey = \"k\"\n\n[merchants.v3]\napi_v3_key = \"a12d3924fd499edac8a5efc5b8c9a7d2\"\nmerchant_serial_no = \"AB12\"\nmerchant_public_key_pem = \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("merchants[0].v3.merchant_public_key_pem"),
        "{error}"
    );

    let error = SimConfig::from_toml_str(
        "[v3]\nmode = { kind = \"switchover\", public_key_percent = 101 }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("v3.mode.public_key_percent"), "{error}");
    let config = SimConfig::from_toml_str(
        "[v3]\nmode = { kind = \"platform_certificate\" }\npublic_key_id = \"PUB_KEY_ID_0110000100\"\n",
    )
    .unwrap();
    assert_eq!(config.v3.mode, V3Mode::PlatformCertificate);
}

#[tokio::test]
async fn a_configured_merchant_key_is_used_and_never_handed_out() {
    let key =
        MerchantPrivateKey::from_rsa(rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap())
            .unwrap();
    let mut merchant = wechatpay_sim::MerchantConfig::default_merchant();
    merchant.v3 = Some(wechatpay_sim::MerchantV3Config {
        api_v3_key: "a12d3924fd499edac8a5efc5b8c9a7d2".into(),
        merchant_serial_no: "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB".into(),
        merchant_public_key_pem: key.public_key().to_pem().unwrap(),
    });
    let sim = Simulator::start(SimConfig::default().with_merchants([merchant]))
        .await
        .unwrap();
    let material = sim.v3_material(DEFAULT_MCH_ID).unwrap().unwrap();
    assert_eq!(material.merchant_private_key_pem, None);
    assert_eq!(material.api_v3_key, "a12d3924fd499edac8a5efc5b8c9a7d2");
    let mut config = ClientConfig::new(
        DEFAULT_APPID,
        DEFAULT_MCH_ID,
        "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB",
        key,
        ApiV3Key::new(&material.api_v3_key).unwrap(),
        Verification::PublicKey(public_key(&material)),
    );
    config.base_url = sim.base_url();
    let merchant = Client::new(config).unwrap();
    merchant
        .prepay(&prepay(
            PrepayKind::App,
            "CONFIGURED1",
            "http://127.0.0.1:9/n",
        ))
        .await
        .unwrap();
    assert!(!format!("{material:?}").contains("a12d3924"));
    sim.shutdown().await;
}

use crate::common;

/// Runs a `wechatpayv3` snippet off the async runtime (the simulator serves it meanwhile).
async fn wechatpayv3(snippet: &str, data: serde_json::Value) -> serde_json::Value {
    let snippet = format!("{WECHATPAYV3_PRELUDE}\n{snippet}");
    tokio::task::spawn_blocking(move || test_support::run_wechatpayv3_python(&snippet, &data))
        .await
        .expect("the python runner does not panic")
}

/// A `wechatpayv3` client of each kind pointed at the simulator, verifying with the public
/// key or with the platform certificate it was handed (so it downloads nothing at start).
const WECHATPAYV3_PRELUDE: &str = r#"
import json, os, tempfile
from wechatpayv3 import WeChatPay, WeChatPayType

def client(kind):
    kwargs = dict(wechatpay_type=kind, mchid=data['mchid'], private_key=data['merchant_key'],
                  cert_serial_no=data['serial'], appid=data['appid'],
                  apiv3_key=data['apiv3_key'], notify_url=data['notify_url'])
    if data['mode'] == 'public_key':
        kwargs.update(public_key=data['public_key'], public_key_id=data['public_key_id'])
    else:
        cert_dir = tempfile.mkdtemp()
        with open(os.path.join(cert_dir, data['platform_serial'] + '.pem'), 'w') as f:
            f.write(data['platform_cert'])
        kwargs['cert_dir'] = cert_dir
    pay = WeChatPay(**kwargs)
    pay._core._gate_way = data['base']
    return pay

def answer(call):
    # JSON answers come back as text, others (a 204) as bytes.
    code, message = call
    if isinstance(message, bytes):
        return [code, message.decode()]
    return [code, json.loads(message) if message else None]
"#;

async fn python_client_flow(mode: V3Mode, name: &str) {
    let (sim, material) = start(mode).await;
    let data = serde_json::json!({
        "mode": name,
        "base": sim.base_url(),
        "mchid": DEFAULT_MCH_ID,
        "appid": DEFAULT_APPID,
        "serial": material.merchant_serial_no,
        "merchant_key": material.merchant_private_key_pem,
        "apiv3_key": material.api_v3_key,
        "public_key": material.wechatpay_public_key_pem,
        "public_key_id": material.wechatpay_public_key_id,
        "platform_serial": material.platform_certificate_serial,
        "platform_cert": material.platform_certificate_pem,
        "notify_url": "http://127.0.0.1:9/notify",
    });
    let created = wechatpayv3(
        r#"
amount = {'total': 666, 'currency': 'CNY'}
result = {
    'native': answer(client(WeChatPayType.NATIVE).pay(description='py native', out_trade_no='PYNATIVE01', amount=amount)),
    'jsapi': answer(client(WeChatPayType.JSAPI).pay(description='py jsapi', out_trade_no='PYJSAPI001', amount=amount, payer={'openid': 'oPy1'})),
    'app': answer(client(WeChatPayType.APP).pay(description='py app', out_trade_no='PYAPP00001', amount=amount)),
    'h5': answer(client(WeChatPayType.H5).pay(description='py h5', out_trade_no='PYH5000001', amount=amount, scene_info={'payer_client_ip': '203.0.113.7', 'h5_info': {'type': 'Wap'}})),
    'query': answer(client(WeChatPayType.NATIVE).query(out_trade_no='PYNATIVE01')),
    'close': answer(client(WeChatPayType.JSAPI).close(out_trade_no='PYJSAPI001')),
}
"#,
        data.clone(),
    )
    .await;
    assert_eq!(created["native"][0], 200, "{created}");
    assert!(
        created["native"][1]["code_url"]
            .as_str()
            .unwrap()
            .starts_with("weixin://")
    );
    assert_eq!(created["jsapi"][0], 200, "{created}");
    assert!(created["jsapi"][1]["prepay_id"].is_string());
    assert!(created["app"][1]["prepay_id"].is_string(), "{created}");
    assert!(created["h5"][1]["h5_url"].is_string(), "{created}");
    assert_eq!(created["query"][1]["trade_state"], "NOTPAY");
    assert_eq!(created["close"][0], 204, "{created}");
    assert_eq!(
        sim.order("PYJSAPI001").unwrap().state,
        wechatpay_sim::TradeState::Closed
    );

    let paid = sim.pay("PYNATIVE01").unwrap();
    let mut data = data;
    data["transaction_id"] = serde_json::json!(paid.transaction_id);
    let after = wechatpayv3(
        r#"
pay = client(WeChatPayType.NATIVE)
result = {
    'by_id': answer(pay.query(transaction_id=data['transaction_id'])),
    'refund': answer(pay.refund(out_refund_no='PYREFUND01', out_trade_no='PYNATIVE01', amount={'refund': 66, 'total': 666, 'currency': 'CNY'})),
    'refund_query': answer(pay.query_refund(out_refund_no='PYREFUND01')),
    'missing': answer(pay.query(out_trade_no='PYMISSING1')),
}
"#,
        data,
    )
    .await;
    assert_eq!(after["by_id"][1]["trade_state"], "SUCCESS", "{after}");
    assert_eq!(after["by_id"][1]["out_trade_no"], "PYNATIVE01");
    assert_eq!(after["refund"][0], 200, "{after}");
    assert_eq!(after["refund"][1]["amount"]["refund"], 66);
    assert_eq!(after["refund_query"][1]["out_refund_no"], "PYREFUND01");
    assert_eq!(after["missing"][0], 404);
    assert_eq!(after["missing"][1]["code"], "ORDER_NOT_EXIST");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_wechatpayv3_python_client_works_against_the_simulator_with_the_public_key() {
    python_client_flow(V3Mode::PublicKey, "public_key").await;
}

#[tokio::test]
async fn the_wechatpayv3_python_client_works_against_the_simulator_with_platform_certificates() {
    python_client_flow(V3Mode::PlatformCertificate, "certificate").await;
}

#[tokio::test]
async fn a_switchover_signs_a_share_each_way() {
    let (sim, material) = start(V3Mode::Switchover {
        public_key_percent: 50,
    })
    .await;
    let key =
        MerchantPrivateKey::from_pem(material.merchant_private_key_pem.as_ref().unwrap()).unwrap();
    let http = reqwest::Client::new();
    let mut serials = std::collections::BTreeMap::<String, usize>::new();
    for n in 0..40 {
        let path = format!("/v3/pay/transactions/out-trade-no/SHARE{n:05}?mchid={DEFAULT_MCH_ID}");
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let authorization = wechatpay_v3::Authorization::sign(
            &key,
            DEFAULT_MCH_ID,
            &material.merchant_serial_no,
            "GET",
            &path,
            &timestamp,
            &format!("NONCE{n}"),
            b"",
        )
        .unwrap();
        let answer = http
            .get(format!("{}{path}", sim.base_url()))
            .header("Authorization", authorization.to_header_value().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404);
        let serial = answer.headers()["wechatpay-serial"]
            .to_str()
            .unwrap()
            .to_owned();
        *serials.entry(serial).or_default() += 1;
    }
    assert_eq!(serials.len(), 2, "both keys sign: {serials:?}");
    assert!(serials.contains_key(&material.wechatpay_public_key_id));
    assert!(serials.contains_key(&material.platform_certificate_serial));

    // All one way, then all the other.
    for (percent, serial) in [
        (100, &material.wechatpay_public_key_id),
        (0, &material.platform_certificate_serial),
    ] {
        sim.set_v3_mode(V3Mode::Switchover {
            public_key_percent: percent,
        })
        .unwrap();
        let path = format!("/v3/pay/transactions/out-trade-no/ONEWAY0001?mchid={DEFAULT_MCH_ID}");
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let authorization = wechatpay_v3::Authorization::sign(
            &key,
            DEFAULT_MCH_ID,
            &material.merchant_serial_no,
            "GET",
            &path,
            &timestamp,
            "NONCEONEWAY",
            b"",
        )
        .unwrap();
        let answer = http
            .get(format!("{}{path}", sim.base_url()))
            .header("Authorization", authorization.to_header_value().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["wechatpay-serial"], serial.as_str());
    }
    assert!(
        sim.set_v3_mode(V3Mode::Switchover {
            public_key_percent: 101
        })
        .is_err()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v3_trade_bills_download_signed_with_their_sha1_plain_and_gzip() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let merchant = client(
        &sim,
        &material,
        Verification::PublicKey(public_key(&material)),
    );
    merchant
        .prepay(&prepay(
            PrepayKind::Native,
            "BILLV30001",
            "http://127.0.0.1:9/n",
        ))
        .await
        .unwrap();
    sim.pay("BILLV30001").unwrap();
    let today = wechatpay_v2::time::beijing_date(wechatpay_v2::time::beijing_now());
    for gzip in [false, true] {
        let request = wechatpay_v3::TradeBillRequest {
            bill_date: today,
            bill_type: wechatpay_v3::BillType::All,
            gzip,
        };
        let download = merchant.trade_bill(&request).await.unwrap();
        assert!(
            download
                .download_url
                .starts_with(&format!("{}/v3/billdownload/file?token=", sim.base_url())),
            "{}",
            download.download_url
        );
        let text = merchant.download_bill(&download).await.unwrap();
        assert!(text.contains("`BILLV30001"), "{text}");
        assert!(text.starts_with("交易时间"), "{text}");
    }
    // A day without payments has no bill.
    let error = merchant
        .trade_bill(&wechatpay_v3::TradeBillRequest {
            bill_date: today - chrono::Days::new(3),
            bill_type: wechatpay_v3::BillType::All,
            gzip: false,
        })
        .await
        .unwrap_err();
    assert_eq!(api_error(&error), (400, "NO_STATEMENT_EXIST".into()));
    // An unknown token is no file.
    let mut forged = merchant
        .trade_bill(&wechatpay_v3::TradeBillRequest {
            bill_date: today,
            bill_type: wechatpay_v3::BillType::Success,
            gzip: false,
        })
        .await
        .unwrap();
    forged.download_url = format!("{}/v3/billdownload/file?token=NOSUCHTOKEN", sim.base_url());
    let error = merchant.download_bill(&forged).await.unwrap_err();
    assert_eq!(api_error(&error), (404, "RESOURCE_NOT_EXISTS".into()));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_control_surface_serves_v3_material_modes_and_probes() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let served: serde_json::Value = http
        .get(format!("{base}/sim/v3/material/{DEFAULT_MCH_ID}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["merchant_serial_no"], material.merchant_serial_no);
    assert_eq!(
        served["wechatpay_public_key_id"],
        material.wechatpay_public_key_id
    );
    assert_eq!(
        served["platform_certificate_pem"],
        material.platform_certificate_pem
    );
    let missing = http
        .get(format!("{base}/sim/v3/material/999"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let set = http
        .put(format!("{base}/sim/v3/mode"))
        .json(&serde_json::json!({"kind": "switchover", "public_key_percent": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let mode: V3Mode = http
        .get(format!("{base}/sim/v3/mode"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        mode,
        V3Mode::Switchover {
            public_key_percent: 20
        }
    );
    let refused = http
        .put(format!("{base}/sim/v3/mode"))
        .json(&serde_json::json!({"kind": "switchover", "public_key_percent": 200}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);

    let probe = http
        .post(format!("{base}/sim/v3/signtest"))
        .json(&serde_json::json!({"out_trade_no": "NOSUCHORDER"}))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 404);
    let merchant = client(&sim, &material, verification(mode, &material));
    let receiver =
        V3Receiver::start(client(&sim, &material, verification(mode, &material)), 0).await;
    merchant
        .prepay(&prepay(PrepayKind::App, "HTTPPROBE1", &receiver.url))
        .await
        .unwrap();
    let probe = http
        .post(format!("{base}/sim/v3/signtest"))
        .json(&serde_json::json!({"out_trade_no": "HTTPPROBE1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 202);
    let opened = receiver.wait_for(1).await;
    assert!(opened[0].probe, "{opened:?}");
    sim.shutdown().await;
}

/// POSTs `body` to `path`, signed by the simulator-made merchant key.
async fn signed_post(
    sim: &SimHandle,
    material: &V3Material,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let key =
        MerchantPrivateKey::from_pem(material.merchant_private_key_pem.as_ref().unwrap()).unwrap();
    let body = body.to_string();
    let authorization = wechatpay_v3::Authorization::sign(
        &key,
        DEFAULT_MCH_ID,
        &material.merchant_serial_no,
        "POST",
        path,
        &chrono::Utc::now().timestamp().to_string(),
        &format!("N{}", rand::random::<u32>()),
        body.as_bytes(),
    )
    .unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .header("Authorization", authorization.to_header_value().unwrap())
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

#[tokio::test]
async fn bad_prepay_bodies_are_refused_naming_the_field() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let good = serde_json::json!({
        "appid": DEFAULT_APPID, "mchid": DEFAULT_MCH_ID, "description": "d",
        "out_trade_no": "BADBODY001", "notify_url": "https://example.com/n",
        "amount": {"total": 100, "currency": "CNY"},
        "payer": {"openid": OPENID},
    });
    let path = "/v3/pay/transactions/jsapi";
    let cases: [(&str, serde_json::Value, u16, &str, &str); 6] = [
        (
            "/amount/total",
            serde_json::json!(0),
            400,
            "PARAM_ERROR",
            "amount.total",
        ),
        (
            "/amount/total",
            serde_json::json!("100"),
            400,
            "PARAM_ERROR",
            "amount.total",
        ),
        (
            "/payer/openid",
            serde_json::json!(""),
            400,
            "PARAM_ERROR",
            "payer.openid",
        ),
        (
            "/out_trade_no",
            serde_json::json!("a b"),
            400,
            "PARAM_ERROR",
            "out_trade_no",
        ),
        (
            "/mchid",
            serde_json::json!("1900000001"),
            400,
            "INVALID_REQUEST",
            "mchid",
        ),
        (
            "/appid",
            serde_json::json!("wxother"),
            400,
            "APPID_MCHID_NOT_MATCH",
            "appid",
        ),
    ];
    for (pointer, value, status, code, named) in cases {
        let mut body = good.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        let (got, answer) = signed_post(&sim, &material, path, &body).await;
        assert_eq!(
            (got, answer["code"].as_str().unwrap()),
            (status, code),
            "{pointer}: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("notify_url");
    let (status, answer) = signed_post(&sim, &material, path, &missing).await;
    assert_eq!(status, 400);
    assert!(
        answer["message"].as_str().unwrap().contains("notify_url"),
        "{answer}"
    );
    // Nothing was created by the refusals; the good body still works.
    assert!(sim.order("BADBODY001").is_none());
    let (status, answer) = signed_post(&sim, &material, path, &good).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["prepay_id"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_v3_notify_can_arrive_before_the_prepay_answer() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let verify = Verification::PublicKey(public_key(&material));
    let merchant = client(&sim, &material, verify.clone());
    let receiver = V3Receiver::start(client(&sim, &material, verify), 0).await;
    sim.faults()
        .add(
            FaultRule::new(Fault::NotifyBeforeReply)
                .on(Endpoint::UnifiedOrder)
                .times(1),
        )
        .unwrap();
    merchant
        .prepay(&prepay(PrepayKind::Native, "EARLYV3001", &receiver.url))
        .await
        .unwrap();
    // Delivered (and verified) before the prepay call returned.
    let opened = receiver.opened.lock().clone();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(
        opened[0].outcome.as_ref().unwrap()["trade_state"],
        "SUCCESS"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v3_fund_flow_bills_list_the_days_money_with_a_running_balance() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let merchant = client(
        &sim,
        &material,
        Verification::PublicKey(public_key(&material)),
    );
    merchant
        .prepay(&prepay(
            PrepayKind::Native,
            "FLOWV30001",
            "http://127.0.0.1:9/n",
        ))
        .await
        .unwrap();
    let paid = sim.pay("FLOWV30001").unwrap();
    merchant
        .refund(&RefundRequest::new(
            OrderRef::OutTradeNo("FLOWV30001".into()),
            "RFLOWV3001",
            Fen::new(300),
            Fen::new(888),
        ))
        .await
        .unwrap();
    let today = wechatpay_v2::time::beijing_date(wechatpay_v2::time::beijing_now());
    for gzip in [false, true] {
        let text = merchant
            .download_fund_flow_bill(&wechatpay_v3::FundFlowBillRequest {
                bill_date: today,
                account_type: wechatpay_v3::AccountType::Basic,
                gzip,
            })
            .await
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("记账时间,微信支付业务单号"), "{text}");
        let income: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(
            income[1],
            format!("`{}", paid.transaction_id.as_deref().unwrap())
        );
        assert_eq!(
            (income[5], income[6], income[7], income[10]),
            ("`收入", "`8.88", "`8.88", "`FLOWV30001")
        );
        let expense: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(
            (expense[5], expense[6], expense[7], expense[10]),
            ("`支出", "`3.00", "`5.88", "`RFLOWV3001")
        );
        assert_eq!(lines[4], "`2,`1,`8.88,`1,`3.00");
    }
    // The operation account never moves here.
    let error = merchant
        .fund_flow_bill(&wechatpay_v3::FundFlowBillRequest {
            bill_date: today,
            account_type: wechatpay_v3::AccountType::Operation,
            gzip: false,
        })
        .await
        .unwrap_err();
    assert_eq!(api_error(&error), (400, "NO_STATEMENT_EXIST".into()));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_remote_sim_reads_v3_material_and_sets_the_mode() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let remote = wechatpay_sim::RemoteSim::new(sim.base_url());
    let fetched = remote.v3_material(DEFAULT_MCH_ID).await.unwrap();
    assert_eq!(fetched.api_v3_key, material.api_v3_key);
    assert_eq!(
        fetched.merchant_private_key_pem,
        material.merchant_private_key_pem
    );
    remote
        .set_v3_mode(V3Mode::PlatformCertificate)
        .await
        .unwrap();
    // Now answers are signed by the platform certificate.
    let merchant = client(
        &sim,
        &material,
        Verification::PlatformCertificates(Vec::new()),
    );
    merchant
        .prepay(&prepay(
            PrepayKind::App,
            "REMOTEV301",
            "http://127.0.0.1:9/n",
        ))
        .await
        .unwrap();
    let refused = remote.send_signtest_probe("NOSUCHORDER").await.unwrap_err();
    assert!(refused.to_string().contains("404"), "{refused}");
    assert!(remote.v3_material("999").await.is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn notify_faults_strike_v3_notifies() {
    let (sim, material) = start(V3Mode::PublicKey).await;
    let verify = Verification::PublicKey(public_key(&material));
    let merchant = client(&sim, &material, verify.clone());
    let receiver = V3Receiver::start(client(&sim, &material, verify), 0).await;
    sim.faults()
        .add(
            FaultRule::new(Fault::DuplicateNotify { copies: 3 })
                .on(Endpoint::PayNotify)
                .times(1),
        )
        .unwrap();
    merchant
        .prepay(&prepay(PrepayKind::Native, "DUPV300001", &receiver.url))
        .await
        .unwrap();
    sim.pay("DUPV300001").unwrap();
    let opened = receiver.wait_for(3).await;
    assert!(
        opened.iter().all(|delivery| delivery.outcome.is_ok()),
        "{opened:?}"
    );

    sim.faults()
        .add(
            FaultRule::new(Fault::DropNotify)
                .on(Endpoint::PayNotify)
                .times(1),
        )
        .unwrap();
    merchant
        .prepay(&prepay(PrepayKind::Native, "DROPV30001", &receiver.url))
        .await
        .unwrap();
    sim.pay("DROPV30001").unwrap();
    let inspection = common::settled(&sim).await;
    let dropped: Vec<_> = inspection
        .notifies
        .iter()
        .filter(|record| record.out_trade_no == "DROPV30001")
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].outcome, "dropped");
    assert_eq!(dropped[0].kind, "pay_v3");
    assert_eq!(receiver.opened.lock().len(), 3, "nothing more arrived");
    sim.shutdown().await;
}
