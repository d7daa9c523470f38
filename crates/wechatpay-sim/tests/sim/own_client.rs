//! The workspace's own client (`wechatpay_v2::Client`) against the simulator: the same
//! scenarios as the wechatpy conformance tests, with the client verifying every answer's
//! signature.

use std::time::Duration;

use crate::common::NotifyReceiver;
use wechatpay_sim::{
    DEFAULT_API_KEY, DEFAULT_APPID, DEFAULT_MCH_ID, Endpoint, Fault, FaultRule, MerchantConfig,
    SimConfig, SimHandle, Simulator,
};
use wechatpay_v2::{
    ApiKey, BillType, Client, ClientConfig, ClientIdentity, Error, Fen, OrderRef, RefundRef,
    RefundRequest, RefundStatus, RetryPolicy, SignType, TradeKind, TradeState, UnifiedOrderRequest,
};

/// A merchant certificate: the client needs a real PEM pair to build its TLS identity.
async fn merchant_identity() -> ClientIdentity {
    crate::pki::TestPki::generate().await.merchant.identity()
}

async fn client_for(sim: &SimHandle, configure: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut config = ClientConfig {
        base_url: sim.base_url(),
        app_id: DEFAULT_APPID.into(),
        mch_id: DEFAULT_MCH_ID.into(),
        api_key: ApiKey::new(DEFAULT_API_KEY),
        sign_type: SignType::HmacSha256,
        identity: Some(merchant_identity().await),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        ..ClientConfig::default()
    };
    configure(&mut config);
    Client::new(config).unwrap()
}

fn order(kind: TradeKind, out_trade_no: &str, fee: i64, notify_url: &str) -> UnifiedOrderRequest {
    UnifiedOrderRequest::new(
        kind,
        "simulated goods",
        out_trade_no,
        Fen::new(fee),
        "127.0.0.1",
        notify_url,
    )
}

fn native(out_trade_no: &str, fee: i64, notify_url: &str) -> UnifiedOrderRequest {
    order(
        TradeKind::Native {
            product_id: "p1".into(),
        },
        out_trade_no,
        fee,
        notify_url,
    )
}

fn business_code(error: Error) -> String {
    match error {
        Error::Business { code, .. } => code.as_str().to_string(),
        other => panic!("expected a business error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_client_runs_every_call() {
    let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0))
        .await
        .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    let client = client_for(&sim, |_| {}).await;

    let created = client
        .unified_order(&native("rc-native", 101, &receiver.url))
        .await
        .unwrap();
    let code_url = created.code_url.clone().unwrap();
    assert!(code_url.starts_with("weixin://wxpay/bizpayurl?pr="));
    let jsapi = client
        .unified_order(&order(
            TradeKind::Jsapi {
                openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
            },
            "rc-jsapi",
            1,
            &receiver.url,
        ))
        .await
        .unwrap();
    let pay_params = client.jsapi_pay_params(&jsapi.prepay_id).await.unwrap();
    assert_eq!(pay_params.package, format!("prepay_id={}", jsapi.prepay_id));
    let mweb = client
        .unified_order(&order(
            TradeKind::Mweb {
                scene_info: r#"{"h5_info":{"type":"Wap","wap_url":"https://example.com","wap_name":"demo"}}"#.into(),
            },
            "rc-mweb",
            1,
            &receiver.url,
        ))
        .await
        .unwrap();
    assert!(mweb.mweb_url.unwrap().contains(&mweb.prepay_id));
    client
        .unified_order(&order(TradeKind::App, "rc-app", 1, &receiver.url))
        .await
        .unwrap();

    sim.pay(code_url.as_str()).unwrap();
    let paid = client
        .order_query(&OrderRef::OutTradeNo("rc-native".into()))
        .await
        .unwrap();
    assert_eq!(paid.trade_state, TradeState::Success);
    assert_eq!(paid.total_fee, Some(Fen::new(101)));
    let transaction_id = paid.transaction_id.clone().unwrap();
    let by_transaction = client
        .order_query(&OrderRef::TransactionId(transaction_id))
        .await
        .unwrap();
    assert_eq!(by_transaction.out_trade_no, "rc-native");

    client.close_order("rc-mweb").await.unwrap();
    let closed = client
        .order_query(&OrderRef::OutTradeNo("rc-mweb".into()))
        .await
        .unwrap();
    assert_eq!(closed.trade_state, TradeState::Closed);

    let refund = client
        .refund(&RefundRequest {
            order: OrderRef::OutTradeNo("rc-native".into()),
            out_refund_no: "rc-r1".into(),
            total_fee: Fen::new(101),
            refund_fee: Fen::new(40),
            refund_desc: Some("退货".into()),
            notify_url: Some(receiver.url.clone()),
        })
        .await
        .unwrap();
    assert_eq!(refund.refund_fee, Fen::new(40));
    let refunds = client
        .refund_query(&RefundRef::OutRefundNo("rc-r1".into()))
        .await
        .unwrap();
    assert_eq!(refunds.refunds.len(), 1);
    assert_eq!(refunds.refunds[0].refund_status, RefundStatus::Success);
    assert_eq!(refunds.refunds[0].refund_id, refund.refund_id);

    let today =
        wechatpay_v2::time::format_date(wechatpay_v2::time::beijing_date(chrono::Utc::now()));
    let bill = client.download_bill(&today, BillType::All).await.unwrap();
    assert!(
        bill.contains("`rc-native,") && bill.contains("`rc-r1,"),
        "{bill}"
    );
    let no_bill = client
        .download_bill("20000101", BillType::All)
        .await
        .unwrap_err();
    assert!(no_bill.to_string().contains("No Bill Exist"), "{no_bill}");

    // The client's notify parsers accept what the simulator sends.
    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    let key = ApiKey::new(DEFAULT_API_KEY);
    let payment = received
        .iter()
        .find(|r| r.body.contains("transaction_id"))
        .unwrap();
    let notify = wechatpay_v2::parse_payment_notify(payment.body.as_bytes(), &key).unwrap();
    assert_eq!(notify.out_trade_no, "rc-native");
    assert_eq!(notify.total_fee, Fen::new(101));
    let refund_notify = received
        .iter()
        .find(|r| r.body.contains("req_info"))
        .unwrap();
    let decrypted = wechatpay_v2::parse_refund_notify(refund_notify.body.as_bytes(), &key).unwrap();
    assert_eq!(decrypted.out_refund_no, "rc-r1");

    let sandbox = client_for_sandbox(&sim).await;
    sandbox
        .unified_order(&native("rc-sandbox", 101, &receiver.url))
        .await
        .unwrap();
    assert_eq!(
        sandbox.sandbox_sign_key().await.unwrap(),
        sim.sandbox_key(DEFAULT_MCH_ID).unwrap()
    );
    sim.shutdown().await;
}

/// A refund is PROCESSING for a while, as WeChat's are: its notify comes when it succeeds.
#[tokio::test]
async fn a_refund_is_processing_until_it_succeeds_and_only_then_notified() {
    let processing = Duration::from_millis(1500);
    let sim = Simulator::start(
        SimConfig::default()
            .with_time_scale(1000.0)
            .with_refund_processing(processing),
    )
    .await
    .unwrap();
    let receiver = NotifyReceiver::start(0).await;
    let client = client_for(&sim, |_| {}).await;
    let created = client
        .unified_order(&native("rp-1", 300, &receiver.url))
        .await
        .unwrap();
    sim.pay(created.code_url.unwrap().as_str()).unwrap();
    receiver.wait_for(1, Duration::from_secs(10)).await;

    let requested = std::time::Instant::now();
    client
        .refund(&RefundRequest {
            order: OrderRef::OutTradeNo("rp-1".into()),
            out_refund_no: "rp-1-r1".into(),
            total_fee: Fen::new(300),
            refund_fee: Fen::new(300),
            refund_desc: None,
            notify_url: Some(receiver.url.clone()),
        })
        .await
        .unwrap();
    let refund_ref = RefundRef::OutRefundNo("rp-1-r1".into());
    let query = || client.refund_query(&refund_ref);
    let pending = query().await.unwrap();
    // Only meaningful while the refund is young: a slow machine may already be past it.
    if requested.elapsed() < processing {
        assert_eq!(pending.refunds[0].refund_status, RefundStatus::Processing);
        assert_eq!(pending.refunds[0].refund_success_time, None);
        assert_eq!(
            receiver.received().len(),
            1,
            "no refund notify before success"
        );
    }

    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        requested.elapsed() >= processing,
        "the refund notify came before the refund succeeded"
    );
    let notify = wechatpay_v2::parse_refund_notify(
        received[1].body.as_bytes(),
        &ApiKey::new(DEFAULT_API_KEY),
    )
    .unwrap();
    assert_eq!(notify.out_refund_no, "rp-1-r1");
    assert_eq!(notify.refund_status, RefundStatus::Success);
    let settled = query().await.unwrap();
    assert_eq!(settled.refunds[0].refund_status, RefundStatus::Success);
    assert_eq!(settled.refunds[0].refund_success_time, notify.success_time);
    sim.shutdown().await;
}

/// The client's sandbox mode goes where WeChat moved the sandbox: every call below
/// `/xdc/apiv2sandbox/`, the key from `/xdc/apiv2getsignkey/sign/getsignkey`; none to the
/// old `/sandboxnew/`.
#[tokio::test]
async fn the_sandbox_client_uses_the_moved_sandbox_paths() {
    let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0))
        .await
        .unwrap();
    let client = client_for_sandbox(&sim).await;
    let notify = "http://127.0.0.1:9/notify";
    let created = client
        .unified_order(&native("sbc-1", 300, notify))
        .await
        .unwrap();
    sim.pay(created.code_url.unwrap().as_str()).unwrap();
    let order = OrderRef::OutTradeNo("sbc-1".into());
    assert_eq!(
        client.order_query(&order).await.unwrap().trade_state,
        TradeState::Success
    );
    client
        .refund(&RefundRequest {
            order: order.clone(),
            out_refund_no: "sbc-1-r1".into(),
            total_fee: Fen::new(300),
            refund_fee: Fen::new(100),
            refund_desc: None,
            notify_url: None,
        })
        .await
        .unwrap();
    let refunds = client
        .refund_query(&RefundRef::OutRefundNo("sbc-1-r1".into()))
        .await
        .unwrap();
    assert_eq!(refunds.refunds[0].refund_fee, Fen::new(100));
    client
        .unified_order(&native("sbc-2", 1, notify))
        .await
        .unwrap();
    client.close_order("sbc-2").await.unwrap();

    let inspection = sim.inspect();
    let calls: Vec<(&str, &str)> = inspection
        .requests
        .iter()
        .map(|request| (request.endpoint.as_str(), request.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("getsignkey", "/xdc/apiv2getsignkey/sign/getsignkey"),
            ("unifiedorder", "/xdc/apiv2sandbox/pay/unifiedorder"),
            ("orderquery", "/xdc/apiv2sandbox/pay/orderquery"),
            ("refund", "/xdc/apiv2sandbox/secapi/pay/refund"),
            ("refundquery", "/xdc/apiv2sandbox/pay/refundquery"),
            ("unifiedorder", "/xdc/apiv2sandbox/pay/unifiedorder"),
            ("closeorder", "/xdc/apiv2sandbox/pay/closeorder"),
        ]
    );
    assert!(
        inspection
            .orders
            .iter()
            .all(|order| order.env == wechatpay_sim::Env::Sandbox),
        "the client's orders are sandbox orders"
    );
    sim.shutdown().await;
}

async fn client_for_sandbox(sim: &SimHandle) -> Client {
    client_for(sim, |config| {
        config.sandbox = true;
        config.sign_type = SignType::Md5;
    })
    .await
}

#[tokio::test]
async fn the_client_sees_every_error_and_recovers_from_transient_ones() {
    let sim = Simulator::start(SimConfig::default().with_time_scale(1000.0).with_merchant(
        MerchantConfig {
            refund_balance: Some(Fen::new(10)),
            v3: None,
            ..MerchantConfig::new("wxpoor", "20000001", "poor-merchant-key")
        },
    ))
    .await
    .unwrap();
    let notify = "http://127.0.0.1:9/notify";
    let client = client_for(&sim, |_| {}).await;

    let first = client
        .unified_order(&native("ce-1", 100, notify))
        .await
        .unwrap();
    let again = client
        .unified_order(&native("ce-1", 100, notify))
        .await
        .unwrap();
    assert_eq!(first.prepay_id, again.prepay_id);
    let error = client
        .unified_order(&native("ce-1", 200, notify))
        .await
        .unwrap_err();
    assert_eq!(business_code(error), "OUT_TRADE_NO_USED");
    let error = client
        .order_query(&OrderRef::OutTradeNo("ce-nope".into()))
        .await
        .unwrap_err();
    assert_eq!(business_code(error), "ORDERNOTEXIST");
    sim.pay("ce-1").unwrap();
    assert_eq!(
        business_code(client.close_order("ce-1").await.unwrap_err()),
        "ORDERPAID"
    );
    client
        .unified_order(&native("ce-2", 100, notify))
        .await
        .unwrap();
    client.close_order("ce-2").await.unwrap();
    assert_eq!(
        business_code(client.close_order("ce-2").await.unwrap_err()),
        "ORDERCLOSED"
    );
    let refund = |no: &str, fee: i64| RefundRequest {
        order: OrderRef::OutTradeNo("ce-1".into()),
        out_refund_no: no.into(),
        total_fee: Fen::new(100),
        refund_fee: Fen::new(fee),
        refund_desc: None,
        notify_url: None,
    };
    client.refund(&refund("ce-r1", 60)).await.unwrap();
    assert_eq!(
        business_code(client.refund(&refund("ce-r2", 50)).await.unwrap_err()),
        "PARAM_ERROR",
        "refunds together cannot exceed the paid amount"
    );
    assert_eq!(
        business_code(client.refund(&refund("ce-r1", 61)).await.unwrap_err()),
        "REFUND_FEE_MISMATCH"
    );
    let error = client
        .refund_query(&RefundRef::OutRefundNo("ce-nope".into()))
        .await
        .unwrap_err();
    assert_eq!(business_code(error), "REFUNDNOTEXIST");

    // Protocol-level refusals (return_code FAIL) arrive as Error::Protocol.
    let wrong_key = client_for(&sim, |config| config.api_key = ApiKey::new("0".repeat(32))).await;
    match wrong_key.close_order("ce-2").await.unwrap_err() {
        Error::Protocol {
            return_msg,
            err_code,
            ..
        } => {
            assert_eq!(return_msg, "签名错误");
            assert_eq!(
                err_code.map(|code| code.as_str().to_owned()).as_deref(),
                Some("SIGNERROR")
            );
        }
        other => panic!("{other:?}"),
    }
    let stranger = client_for(&sim, |config| config.mch_id = "99999999".into()).await;
    assert!(matches!(
        stranger.close_order("ce-2").await.unwrap_err(),
        Error::Protocol { .. }
    ));

    let poor = client_for(&sim, |config| {
        config.app_id = "wxpoor".into();
        config.mch_id = "20000001".into();
        config.api_key = ApiKey::new("poor-merchant-key");
    })
    .await;
    poor.unified_order(&order(TradeKind::App, "ce-poor", 100, notify))
        .await
        .unwrap();
    sim.pay("ce-poor").unwrap();
    let error = poor
        .refund(&RefundRequest {
            order: OrderRef::OutTradeNo("ce-poor".into()),
            out_refund_no: "ce-pr1".into(),
            total_fee: Fen::new(100),
            refund_fee: Fen::new(50),
            refund_desc: None,
            notify_url: None,
        })
        .await
        .unwrap_err();
    assert_eq!(business_code(error), "NOTENOUGH");

    // Transient failures: the client retries SYSTEMERROR and 5xx with the same body and
    // gets through; the simulator's log shows each attempt.
    sim.clear_inspection();
    let faults = sim.faults();
    faults
        .add(
            FaultRule::new(Fault::SystemError)
                .on(Endpoint::OrderQuery)
                .times(1),
        )
        .unwrap();
    faults
        .add(
            FaultRule::new(Fault::HttpStatus { status: 503 })
                .on(Endpoint::OrderQuery)
                .times(1),
        )
        .unwrap();
    let answer = client
        .order_query(&OrderRef::OutTradeNo("ce-1".into()))
        .await
        .unwrap();
    assert_eq!(answer.trade_state, TradeState::Refund);
    let inspection = sim.inspect();
    let attempts = inspection.requests_to("orderquery");
    assert_eq!(attempts.len(), 3, "503, then SYSTEMERROR, then the answer");
    assert!(
        attempts
            .iter()
            .all(|a| a.request_body == attempts[0].request_body)
    );
    assert_eq!(attempts[0].status, Some(503));

    // A refund whose reply is lost: the client's retry gets the same refund.
    faults
        .add(
            FaultRule::new(Fault::SystemErrorAfterCommit)
                .on(Endpoint::Refund)
                .times(1),
        )
        .unwrap();
    let retried = client.refund(&refund("ce-r3", 10)).await.unwrap();
    assert_eq!(sim.order("ce-1").unwrap().refunds.len(), 2);
    assert_eq!(
        sim.order("ce-1").unwrap().refunds[1].refund_id,
        retried.refund_id
    );

    // A hang ends in the client's timeout.
    faults
        .add(FaultRule::new(Fault::Hang).on(Endpoint::CloseOrder))
        .unwrap();
    let impatient = client_for(&sim, |config| {
        config.request_timeout = Duration::from_millis(200);
        config.retry.max_attempts = 1;
    })
    .await;
    let error = impatient.close_order("ce-2").await.unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
    sim.shutdown().await;
}
