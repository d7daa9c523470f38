//! Every call against the loopback gateway: what is sent (path, body, signature, headers),
//! what is read back, and how errors, retries, timeouts and bad answers behave.

use std::time::Duration;

use chrono::NaiveDate;
use serde_json::{Value, json};
use wechatpay_v3::{
    AccountType, BillType, Error, ErrorCode, Fen, FundFlowBillRequest, H5Scene, OrderRef,
    PrepayKind, PrepayRequest, RefundRequest, RefundStatus, TradeBillRequest, TradeState,
    TransportError, Verification, VerifyError,
};

use crate::support::*;

fn client(gateway: &Gateway) -> wechatpay_v3::Client {
    gateway.client(Verification::PublicKey(wechatpay_public_key()))
}

fn native(out_trade_no: &str) -> PrepayRequest {
    PrepayRequest::new(
        PrepayKind::Native,
        "Image形象店-深圳腾大-QQ公仔",
        out_trade_no,
        Fen::new(9999),
        "https://shop.example/wxpay/v3/notify",
    )
}

fn body_json(received: &Received) -> Value {
    serde_json::from_slice(&received.body).unwrap()
}

fn assert_signed(received: &Received) {
    assert!(
        received.authorization.is_ok(),
        "{} {}: {:?}",
        received.method,
        received.path_and_query,
        received.authorization
    );
}

#[tokio::test]
async fn prepay_sends_each_kind_signed_and_reads_its_answer() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);

    let answer = client.prepay(&native("T2026000001")).await.unwrap();
    assert_eq!(
        answer.code_url.as_deref(),
        Some("weixin://wxpay/bizpayurl?pr=p4lpSuKzz")
    );

    let mut jsapi = native("T2026000002");
    jsapi.kind = PrepayKind::Jsapi {
        openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
    };
    assert_eq!(
        client.prepay(&jsapi).await.unwrap().prepay_id.as_deref(),
        Some("wx201410272009395522657a690389285100")
    );
    let mut app = native("T2026000003");
    app.kind = PrepayKind::App;
    assert!(client.prepay(&app).await.unwrap().prepay_id.is_some());
    let mut h5 = native("T2026000004");
    h5.kind = PrepayKind::H5(H5Scene::wap("203.0.113.7"));
    assert!(client.prepay(&h5).await.unwrap().h5_url.is_some());

    let calls = gateway.calls();
    let paths: Vec<&str> = calls.iter().map(|c| c.path_and_query.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v3/pay/transactions/native",
            "/v3/pay/transactions/jsapi",
            "/v3/pay/transactions/app",
            "/v3/pay/transactions/h5"
        ]
    );
    for call in &calls {
        assert_signed(call);
        assert_eq!(call.method, "POST");
        assert_eq!(call.headers["content-type"], "application/json");
        assert_eq!(call.headers["accept"], "application/json");
        assert_eq!(call.headers["wechatpay-serial"], PUBLIC_KEY_ID);
        assert!(
            call.headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("wechatpay-v3/"),
            "{:?}",
            call.headers["user-agent"]
        );
        let body = body_json(call);
        assert_eq!(body["appid"], APP_ID);
        assert_eq!(body["mchid"], MCH_ID);
        assert_eq!(body["amount"], json!({"total": 9999, "currency": "CNY"}));
    }
    assert_eq!(
        body_json(&calls[1])["payer"]["openid"],
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    );
    assert_eq!(
        body_json(&calls[3])["scene_info"]["payer_client_ip"],
        "203.0.113.7"
    );
}

#[tokio::test]
async fn an_answer_for_another_kind_is_refused() {
    let gateway = Gateway::public_key().await;
    gateway.push(Reply::json(200, json!({"prepay_id": "wx1"})));
    let error = client(&gateway)
        .prepay(&native("T2026000001"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Malformed { .. }), "{error}");
    assert!(error.to_string().contains("code_url"), "{error}");
}

#[tokio::test]
async fn invalid_requests_send_nothing() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let mut bad = native("T2026000001");
    bad.amount = Fen::ZERO;
    assert!(matches!(
        client.prepay(&bad).await,
        Err(Error::Amount {
            field: "amount.total",
            ..
        })
    ));
    assert!(matches!(
        client
            .query_order(&OrderRef::OutTradeNo("T 1".into()))
            .await,
        Err(Error::InvalidRequest {
            field: "out_trade_no",
            ..
        })
    ));
    let refund = RefundRequest::new(
        OrderRef::OutTradeNo("T2026000001".into()),
        "R1",
        Fen::new(2),
        Fen::new(1),
    );
    assert!(matches!(
        client.refund(&refund).await,
        Err(Error::InvalidRequest {
            field: "amount.refund",
            ..
        })
    ));
    assert!(gateway.received().is_empty());
}

#[tokio::test]
async fn queries_by_either_number() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let unpaid = client
        .query_order(&OrderRef::OutTradeNo("T2026|0001".into()))
        .await
        .unwrap();
    assert_eq!(unpaid.trade_state, TradeState::NotPay);
    assert_eq!(unpaid.out_trade_no, "T2026|0001");
    let paid = client
        .query_order(&OrderRef::TransactionId(
            "4200000891202103228088184743".into(),
        ))
        .await
        .unwrap();
    assert_eq!(paid.trade_state, TradeState::Success);
    assert_eq!(paid.amount.payer_total, Some(Fen::new(9999)));
    let calls = gateway.calls();
    assert_eq!(calls[0].method, "GET");
    assert_eq!(
        calls[0].path_and_query,
        "/v3/pay/transactions/out-trade-no/T2026%7C0001?mchid=1230000109"
    );
    assert_eq!(
        calls[1].path_and_query,
        "/v3/pay/transactions/id/4200000891202103228088184743?mchid=1230000109"
    );
    for call in &calls {
        assert_signed(call);
        assert!(call.body.is_empty());
    }
}

#[tokio::test]
async fn a_query_answer_about_another_merchant_or_order_is_refused() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let mut other = transaction("T2026000001", "NOTPAY");
    other["mchid"] = json!("1900000001");
    gateway.push(Reply::json(200, other));
    let error = client
        .query_order(&OrderRef::OutTradeNo("T2026000001".into()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("mchid"), "{error}");
    gateway.push(Reply::json(200, transaction("T2026000002", "NOTPAY")));
    let error = client
        .query_order(&OrderRef::OutTradeNo("T2026000001".into()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("another order"), "{error}");
}

#[tokio::test]
async fn close_sends_the_mchid_and_takes_a_signed_204() {
    let gateway = Gateway::public_key().await;
    client(&gateway).close_order("T2026000001").await.unwrap();
    let calls = gateway.calls();
    assert_eq!(
        calls[0].path_and_query,
        "/v3/pay/transactions/out-trade-no/T2026000001/close"
    );
    assert_eq!(calls[0].body, br#"{"mchid":"1230000109"}"#);
    assert_signed(&calls[0]);
    // An unsigned 204 is not WeChat's.
    gateway.push(Reply::raw(204, b""));
    let error = client(&gateway)
        .close_order("T2026000001")
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidSignature {
            source: VerifyError::MissingHeader(_),
            ..
        }
    ));
}

#[tokio::test]
async fn refunds_and_refund_queries() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let mut request = RefundRequest::new(
        OrderRef::TransactionId("4200000891202103228088184743".into()),
        "R2026000001",
        Fen::new(100),
        Fen::new(9999),
    );
    request.reason = Some("商品已售完".into());
    request.notify_url = Some("https://shop.example/wxpay/v3/refund".into());
    let refund = client.refund(&request).await.unwrap();
    assert_eq!(refund.status, RefundStatus::Processing);
    assert_eq!(refund.amount.refund, Fen::new(100));
    let queried = client.query_refund("R2026000001").await.unwrap();
    assert_eq!(queried.status, RefundStatus::Success);
    assert!(queried.success_time.is_some());

    let calls = gateway.calls();
    assert_eq!(calls[0].path_and_query, "/v3/refund/domestic/refunds");
    assert_eq!(
        body_json(&calls[0]),
        json!({
            "transaction_id": "4200000891202103228088184743", "out_refund_no": "R2026000001",
            "reason": "商品已售完", "notify_url": "https://shop.example/wxpay/v3/refund",
            "amount": {"refund": 100, "total": 9999, "currency": "CNY"}
        })
    );
    assert_eq!(
        calls[1].path_and_query,
        "/v3/refund/domestic/refunds/R2026000001"
    );
    calls.iter().for_each(assert_signed);

    // An answer about another refund number is not this refund.
    gateway.push(Reply::json(
        200,
        crate::support::refund("R-OTHER", "PROCESSING"),
    ));
    assert!(matches!(
        client.refund(&request).await,
        Err(Error::Malformed { .. })
    ));
}

#[tokio::test]
async fn bills_are_fetched_signed_checked_and_unzipped() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    for gzip in [false, true] {
        let request = TradeBillRequest {
            bill_date: day,
            bill_type: BillType::All,
            gzip,
        };
        assert_eq!(client.download_trade_bill(&request).await.unwrap(), BILL);
        let request = FundFlowBillRequest {
            bill_date: day,
            account_type: AccountType::Basic,
            gzip,
        };
        assert_eq!(
            client.download_fund_flow_bill(&request).await.unwrap(),
            BILL
        );
    }
    let calls = gateway.calls();
    let paths: Vec<&str> = calls.iter().map(|c| c.path_and_query.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v3/bill/tradebill?bill_date=2026-01-01&bill_type=ALL",
            "/v3/billdownload/file?token=tradebill-plain",
            "/v3/bill/fundflowbill?bill_date=2026-01-01&account_type=BASIC",
            "/v3/billdownload/file?token=fundflowbill-plain",
            "/v3/bill/tradebill?bill_date=2026-01-01&bill_type=ALL&tar_type=GZIP",
            "/v3/billdownload/file?token=tradebill-gz",
            "/v3/bill/fundflowbill?bill_date=2026-01-01&account_type=BASIC&tar_type=GZIP",
            "/v3/billdownload/file?token=fundflowbill-gz",
        ]
    );
    // The download is signed like any request, URL and query included.
    calls.iter().for_each(assert_signed);
}

#[tokio::test]
async fn a_bill_that_is_not_the_announced_one_is_refused() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let request = TradeBillRequest {
        bill_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        bill_type: BillType::Success,
        gzip: false,
    };
    let download = client.trade_bill(&request).await.unwrap();
    let mut changed = BILL.as_bytes().to_vec();
    changed[0] ^= 1;
    gateway.push(Reply::raw(200, &changed));
    assert!(matches!(
        client.download_bill(&download).await,
        Err(Error::BillDigest { .. })
    ));
}

#[tokio::test]
async fn a_download_url_elsewhere_gets_no_signed_request() {
    let gateway = Gateway::public_key().await;
    let elsewhere = Gateway::public_key().await;
    let client = client(&gateway);
    for url in [
        format!("{}/v3/billdownload/file?token=x", elsewhere.url),
        "https://api.mch.weixin.qq.com/v3/billdownload/file?token=x".to_owned(),
        "not a url".to_owned(),
    ] {
        gateway.push(Reply::json(
            200,
            json!({"hash_type": "SHA1", "hash_value": "0".repeat(40), "download_url": url}),
        ));
        let request = TradeBillRequest {
            bill_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            bill_type: BillType::All,
            gzip: false,
        };
        let error = client.download_trade_bill(&request).await.unwrap_err();
        assert!(error.to_string().contains("download_url"), "{error}");
    }
    assert!(elsewhere.received().is_empty());
}

#[tokio::test]
async fn refusals_are_typed_and_not_retried() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    for (status, code, expected) in [
        (400, "PARAM_ERROR", ErrorCode::ParamError),
        (403, "OUT_TRADE_NO_USED", ErrorCode::OutTradeNoUsed),
        (404, "ORDER_NOT_EXIST", ErrorCode::OrderNotExist),
        (
            500,
            "SOMETHING_NEW",
            ErrorCode::Other("SOMETHING_NEW".into()),
        ),
    ] {
        let before = gateway.calls().len();
        gateway.push(Reply::error(status, code));
        match client.prepay(&native("T2026000001")).await {
            Err(Error::Api {
                status: got,
                code,
                message,
                ..
            }) => {
                assert_eq!(got, status);
                assert_eq!(code, expected);
                assert!(message.contains(code.as_str()), "{message}");
            }
            other => panic!("{code}: {other:?}"),
        }
        assert_eq!(gateway.calls().len(), before + 1, "{code} was retried");
    }
}

#[tokio::test]
async fn retryable_errors_are_retried_with_the_identical_body() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    gateway.push(Reply::error(500, "SYSTEM_ERROR"));
    gateway.push(Reply::error(429, "FREQUENCY_LIMITED"));
    let mut request = native("T2026000001");
    request.attach = Some("深圳分店".into());
    let answer = client.prepay(&request).await.unwrap();
    assert!(answer.code_url.is_some());
    let calls = gateway.calls();
    assert_eq!(calls.len(), 3);
    assert!(
        calls.iter().all(|c| c.body == calls[0].body),
        "bodies differ"
    );
    calls.iter().for_each(assert_signed);
    // Each attempt is signed afresh: never the same nonce twice.
    let nonces: std::collections::HashSet<_> = calls
        .iter()
        .map(|c| c.authorization.clone().unwrap().0)
        .collect();
    assert_eq!(nonces.len(), 3);

    // A proxy's 502 without a V3 body is retried too, up to the limit.
    for _ in 0..3 {
        gateway.push(Reply::raw(502, b"<html>Bad Gateway</html>"));
    }
    let error = client.close_order("T2026000001").await.unwrap_err();
    assert!(matches!(
        error,
        Error::Transport(TransportError::Status { status: 502, .. })
    ));
    assert!(error.is_retryable());
    assert_eq!(gateway.calls().len(), 6);
}

/// Tells whether a verification error is the one a case expects.
type ExpectedRefusal = fn(&VerifyError) -> bool;

#[tokio::test]
async fn answers_that_are_not_wechats_are_refused_without_retrying() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let body = json!({"code_url": "weixin://wxpay/bizpayurl?pr=forged"});
    let now = chrono::Utc::now().timestamp();
    let stale = public_key_signer()
        .sign_at(
            body.to_string().as_bytes(),
            &(now - 600).to_string(),
            "nonce",
        )
        .unwrap();
    let mut probe = public_key_signer()
        .sign(body.to_string().as_bytes())
        .unwrap();
    probe.signature = "WECHATPAY/SIGNTEST/dGVzdA==".into();
    let forger = wechatpay_v3::PlatformSigner::new(PUBLIC_KEY_ID, platform().key.clone());
    let cases: Vec<(Reply, ExpectedRefusal)> = vec![
        (Reply::json(200, body.clone()).signed(Signing::None), |e| {
            matches!(e, VerifyError::MissingHeader(_))
        }),
        (
            Reply::json(200, body.clone()).signed(Signing::OverOtherBody(b"{}".to_vec())),
            |e| matches!(e, VerifyError::Signature(_)),
        ),
        (
            Reply::json(200, body.clone()).signed(Signing::By(forger)),
            |e| matches!(e, VerifyError::Signature(_)),
        ),
        (
            Reply::json(200, body.clone()).signed(Signing::Headers(stale)),
            |e| matches!(e, VerifyError::StaleTimestamp { .. }),
        ),
        (
            Reply::json(200, body.clone()).signed(Signing::Headers(probe)),
            |e| matches!(e, VerifyError::SignTestProbe),
        ),
        (
            Reply::json(200, body.clone()).signed(Signing::By(platform().signer())),
            |e| matches!(e, VerifyError::UnknownSerial(_)),
        ),
    ];
    for (index, (reply, expected)) in cases.into_iter().enumerate() {
        let before = gateway.calls().len();
        gateway.push(reply);
        match client.prepay(&native("T2026000001")).await {
            Err(Error::InvalidSignature { source, .. }) => {
                assert!(expected(&source), "case {index}: {source:?}")
            }
            other => panic!("case {index}: {other:?}"),
        }
        assert_eq!(
            gateway.calls().len(),
            before + 1,
            "case {index} was retried"
        );
    }
    // Public-key mode never downloads certificates, whatever serial an answer names.
    assert_eq!(gateway.certificate_downloads(), 0);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transport_errors() {
    let gateway = Gateway::public_key().await;
    let mut config = gateway.config(Verification::PublicKey(wechatpay_public_key()));
    config.request_timeout = Duration::from_millis(300);
    config.retry.max_attempts = 2;
    let client = wechatpay_v3::Client::new(config).unwrap();
    for _ in 0..2 {
        gateway.push(
            Reply::json(200, json!({"code_url": "weixin://x"})).delayed(Duration::from_secs(2)),
        );
    }
    let started = std::time::Instant::now();
    let error = client.prepay(&native("T2026000001")).await.unwrap_err();
    assert!(
        matches!(error, Error::Transport(TransportError::Timeout { .. })),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gateway.calls().len(), 2);

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = gateway.config(Verification::PublicKey(wechatpay_public_key()));
    config.base_url = format!("http://{closed}");
    config.retry.max_attempts = 1;
    let error = wechatpay_v3::Client::new(config)
        .unwrap()
        .close_order("T2026000001")
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Transport(TransportError::Connect { .. })),
        "{error}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let gateway = Gateway::public_key().await;
    let mut reply = Reply::raw(302, b"");
    reply.signing = Signing::None;
    gateway.push(reply);
    let error = client(&gateway)
        .query_order(&OrderRef::OutTradeNo("T2026000001".into()))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        Error::Transport(TransportError::Status { status: 302, .. })
    ));
    assert_eq!(gateway.calls().len(), 1);
}

#[tokio::test]
async fn clones_work_concurrently() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .query_order(&OrderRef::OutTradeNo(format!("T202600{i:04}")))
                    .await
                    .unwrap()
                    .out_trade_no
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), format!("T202600{i:04}"));
    }
    assert_eq!(gateway.calls().len(), 16);
}

#[tokio::test]
async fn pay_parameters_are_signed_with_the_merchant_key() {
    let gateway = Gateway::public_key().await;
    let client = client(&gateway);
    let jsapi = client
        .jsapi_pay_params("wx201410272009395522657a690389285100")
        .unwrap();
    let message = format!(
        "{APP_ID}\n{}\n{}\nprepay_id=wx201410272009395522657a690389285100\n",
        jsapi.time_stamp, jsapi.nonce_str
    );
    merchant_key()
        .public_key()
        .verify(message.as_bytes(), &jsapi.pay_sign)
        .unwrap();
    let app = client
        .app_pay_params("wx201410272009395522657a690389285100")
        .unwrap();
    let message = format!(
        "{APP_ID}\n{}\n{}\nwx201410272009395522657a690389285100\n",
        app.timestamp, app.noncestr
    );
    merchant_key()
        .public_key()
        .verify(message.as_bytes(), &app.sign)
        .unwrap();
    assert_eq!(app.partnerid, MCH_ID);
}

#[tokio::test]
async fn configuration_is_checked_and_never_prints_secrets() {
    let gateway = Gateway::public_key().await;
    let config = gateway.config(Verification::PublicKey(wechatpay_public_key()));
    let printed = format!("{config:?}");
    assert!(!printed.contains(API_V3_KEY), "{printed}");
    assert!(printed.contains("MerchantPrivateKey(***)"), "{printed}");
    assert!(printed.contains("ApiV3Key(***)"), "{printed}");
    let pem = merchant_key().to_pkcs8_pem().unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(!printed.contains(body));

    for (change, what) in [
        (
            (|c: &mut wechatpay_v3::ClientConfig| c.mch_id = "12a".into()) as fn(&mut _),
            "mch_id",
        ),
        (|c| c.app_id = " ".into(), "app_id"),
        (
            |c| c.merchant_serial_no = "not-hex".into(),
            "merchant_serial_no",
        ),
        (|c| c.base_url = "ftp://x".into(), "base_url"),
    ] {
        let mut config = gateway.config(Verification::PublicKey(wechatpay_public_key()));
        change(&mut config);
        let error = wechatpay_v3::Client::new(config).unwrap_err();
        assert!(error.to_string().contains(what), "{what}: {error}");
    }
}
