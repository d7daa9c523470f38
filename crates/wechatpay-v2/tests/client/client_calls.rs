//! Client calls against a small gateway on loopback, served by axum inside the test.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use wechatpay_v2::xml::{decode, encode};
use wechatpay_v2::{
    ApiKey, BillType, Client, ClientConfig, ClientIdentity, ErrCode, Error, Fen, OrderRef, Params,
    RefundRef, RefundRequest, RefundStatus, RetryPolicy, SignType, TradeKind, TradeState,
    TransportError, UnifiedOrderRequest, sign, sign_params, verify,
};

const APPID: &str = "wx2421b1c4370ec43b";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";
const SANDBOX_KEY: &str = "0123456789abcdef0123456789abcdef";

/// What the gateway answers next on a path.
#[derive(Clone)]
enum Reply {
    /// A signed XML document (appid, mch_id, nonce added) with these fields.
    Signed(Vec<(&'static str, &'static str)>),
    /// A signed document whose signature is then corrupted.
    BadlySigned(Vec<(&'static str, &'static str)>),
    /// A body as is.
    Raw(&'static str),
    /// Bytes as is (a GZIP bill).
    Bytes(Vec<u8>),
    /// An HTTP status with no body.
    Status(u16),
    /// Answer after a pause.
    Slow(Duration),
}

#[derive(Default)]
struct Gateway {
    script: HashMap<String, VecDeque<Reply>>,
    /// (path, raw body) of every request received.
    received: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Gateway>>;

/// The sandbox key's call since WeChat moved the sandbox from `/sandboxnew/` to
/// `/xdc/apiv2sandbox/` (the old paths get no scripted answer here: a client still using
/// them fails).
const SANDBOX_SIGN_KEY: &str = "/xdc/apiv2getsignkey/sign/getsignkey";

fn signing_key_for(path: &str) -> ApiKey {
    if path.starts_with("/xdc/apiv2sandbox/") {
        ApiKey::new(SANDBOX_KEY)
    } else {
        ApiKey::new(KEY)
    }
}

async fn handle(state: axum::extract::State<Shared>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let reply = {
        let mut gateway = state.lock().unwrap();
        gateway
            .received
            .push((path.clone(), String::from_utf8_lossy(&body).into_owned()));
        gateway.script.get_mut(&path).and_then(VecDeque::pop_front)
    };
    let key = signing_key_for(&path);
    let signed = |fields: &[(&str, &str)]| {
        let mut doc = Params::new();
        doc.insert("return_code".into(), "SUCCESS".into());
        doc.insert("appid".into(), APPID.into());
        doc.insert("mch_id".into(), MCH_ID.into());
        doc.insert("nonce_str".into(), "gatewaynonce".into());
        for (k, v) in fields {
            doc.insert((*k).into(), (*v).into());
        }
        sign_params(&mut doc, SignType::Md5, &key);
        doc
    };
    match reply {
        None => (
            StatusCode::NOT_FOUND,
            format!("no scripted reply for {path}"),
        )
            .into_response(),
        Some(Reply::Signed(fields)) => encode(&signed(&fields)).into_response(),
        Some(Reply::BadlySigned(fields)) => {
            let mut doc = signed(&fields);
            doc.insert("total_fee".into(), "1".into());
            encode(&doc).into_response()
        }
        Some(Reply::Raw(body)) => body.into_response(),
        Some(Reply::Bytes(body)) => body.into_response(),
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Reply::Slow(pause)) => {
            tokio::time::sleep(pause).await;
            encode(&signed(&[("result_code", "SUCCESS")])).into_response()
        }
    }
}

struct Harness {
    gateway: Shared,
    base_url: String,
}

impl Harness {
    async fn start() -> Harness {
        let gateway: Shared = Arc::default();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(gateway.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Harness { gateway, base_url }
    }

    fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.gateway
            .lock()
            .unwrap()
            .script
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    fn received(&self) -> Vec<(String, String)> {
        self.gateway.lock().unwrap().received.clone()
    }

    fn config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.base_url.clone(),
            app_id: APPID.into(),
            mch_id: MCH_ID.into(),
            api_key: ApiKey::new(KEY),
            sign_type: SignType::HmacSha256,
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
            ..Default::default()
        }
    }

    fn client(&self) -> Client {
        Client::new(self.config()).unwrap()
    }
}

fn native_order() -> UnifiedOrderRequest {
    UnifiedOrderRequest::new(
        TradeKind::Native {
            product_id: "P1".into(),
        },
        "腾讯充值中心-QQ会员充值",
        "T20260101000001",
        Fen::from_yuan_str("99.99").unwrap(),
        "127.0.0.1",
        "https://merchant.example/notify",
    )
}

const PREPAY_NATIVE: [(&str, &str); 4] = [
    ("result_code", "SUCCESS"),
    ("trade_type", "NATIVE"),
    ("prepay_id", "wx201410272009395522657a690389285100"),
    ("code_url", "weixin://wxpay/bizpayurl?pr=abc"),
];

#[tokio::test]
async fn unified_order_native_sends_a_signed_request_and_reads_code_url() {
    let h = Harness::start().await;
    h.script("/pay/unifiedorder", [Reply::Signed(PREPAY_NATIVE.to_vec())]);
    let answer = h.client().unified_order(&native_order()).await.unwrap();
    assert_eq!(answer.prepay_id, "wx201410272009395522657a690389285100");
    assert_eq!(
        answer.code_url.as_deref(),
        Some("weixin://wxpay/bizpayurl?pr=abc")
    );

    let received = h.received();
    assert_eq!(received.len(), 1);
    let request = decode(received[0].1.as_bytes()).unwrap();
    assert_eq!(
        verify(&request, &ApiKey::new(KEY)),
        Ok(SignType::HmacSha256)
    );
    assert_eq!(request["total_fee"], "9999");
    assert_eq!(request["trade_type"], "NATIVE");
    assert_eq!(request["product_id"], "P1");
    assert_eq!(request["appid"], APPID);
    assert_eq!(request["mch_id"], MCH_ID);
    assert_eq!(request["body"], "腾讯充值中心-QQ会员充值");
    assert_eq!(request["nonce_str"].len(), 32);
}

#[tokio::test]
async fn each_trade_type_requires_its_field_and_answer() {
    let h = Harness::start().await;
    let client = h.client();
    let mut jsapi = native_order();
    jsapi.kind = TradeKind::Jsapi { openid: "".into() };
    assert!(matches!(
        client.unified_order(&jsapi).await,
        Err(Error::InvalidRequest {
            field: "openid",
            ..
        })
    ));
    let mut mweb = native_order();
    mweb.kind = TradeKind::Mweb {
        scene_info: "{not json".into(),
    };
    assert!(matches!(
        client.unified_order(&mweb).await,
        Err(Error::InvalidRequest {
            field: "scene_info",
            ..
        })
    ));
    let mut zero = native_order();
    zero.total_fee = Fen::ZERO;
    assert!(matches!(
        client.unified_order(&zero).await,
        Err(Error::Amount {
            field: "total_fee",
            ..
        })
    ));
    let mut bad_no = native_order();
    bad_no.out_trade_no = "has space".into();
    assert!(matches!(
        client.unified_order(&bad_no).await,
        Err(Error::InvalidRequest {
            field: "out_trade_no",
            ..
        })
    ));
    // Nothing was sent for invalid requests.
    assert!(h.received().is_empty());

    // MWEB answered without mweb_url is malformed; JSAPI answered with prepay_id is fine.
    h.script(
        "/pay/unifiedorder",
        [
            Reply::Signed(vec![
                ("result_code", "SUCCESS"),
                ("trade_type", "MWEB"),
                ("prepay_id", "wx1"),
            ]),
            Reply::Signed(vec![
                ("result_code", "SUCCESS"),
                ("trade_type", "JSAPI"),
                ("prepay_id", "wx2"),
            ]),
        ],
    );
    mweb.kind = TradeKind::Mweb {
        scene_info: r#"{"h5_info":{"type":"Wap","wap_url":"https://m.example","wap_name":"shop"}}"#
            .into(),
    };
    assert!(matches!(
        client.unified_order(&mweb).await,
        Err(Error::Malformed { .. })
    ));
    jsapi.kind = TradeKind::Jsapi {
        openid: "oUpF8uMEb4qRXf22hE3X68TekukE".into(),
    };
    let answer = client.unified_order(&jsapi).await.unwrap();
    assert_eq!(answer.prepay_id, "wx2");
    let params = client.jsapi_pay_params(&answer.prepay_id).await.unwrap();
    assert_eq!(params.package, "prepay_id=wx2");
    let mut signed = Params::new();
    signed.insert("appId".into(), params.app_id.clone());
    signed.insert("timeStamp".into(), params.time_stamp.clone());
    signed.insert("nonceStr".into(), params.nonce_str.clone());
    signed.insert("package".into(), params.package.clone());
    signed.insert("signType".into(), "HMAC-SHA256".into());
    assert_eq!(
        params.pay_sign,
        sign(&signed, SignType::HmacSha256, &ApiKey::new(KEY))
    );
}

#[tokio::test]
async fn a_response_with_a_bad_signature_is_refused() {
    let h = Harness::start().await;
    h.script(
        "/pay/orderquery",
        [Reply::BadlySigned(vec![
            ("result_code", "SUCCESS"),
            ("trade_state", "SUCCESS"),
            ("out_trade_no", "T1"),
            ("transaction_id", "42"),
            ("total_fee", "9999"),
        ])],
    );
    let error = h
        .client()
        .order_query(&OrderRef::OutTradeNo("T1".into()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSignature { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(h.received().len(), 1);
}

#[tokio::test]
async fn protocol_and_business_failures_are_typed_and_not_retried() {
    let h = Harness::start().await;
    h.script(
        "/pay/closeorder",
        [
            Reply::Raw(
                "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[签名错误]]></return_msg></xml>",
            ),
            Reply::Signed(vec![
                ("result_code", "FAIL"),
                ("err_code", "ORDERPAID"),
                ("err_code_des", "订单已支付"),
            ]),
        ],
    );
    let client = h.client();
    match client.close_order("T1").await {
        Err(Error::Protocol { return_msg, .. }) => assert_eq!(return_msg, "签名错误"),
        other => panic!("{other:?}"),
    }
    match client.close_order("T1").await {
        Err(error @ Error::Business { .. }) => {
            assert_eq!(error.err_code(), Some(&ErrCode::OrderPaid));
            assert!(!error.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.received().len(), 2);
}

#[tokio::test]
async fn retryable_errors_are_retried_with_the_identical_body() {
    let h = Harness::start().await;
    h.script(
        "/pay/unifiedorder",
        [
            Reply::Signed(vec![
                ("result_code", "FAIL"),
                ("err_code", "SYSTEMERROR"),
                ("err_code_des", "系统繁忙"),
            ]),
            Reply::Status(503),
            Reply::Signed(PREPAY_NATIVE.to_vec()),
        ],
    );
    let answer = h.client().unified_order(&native_order()).await.unwrap();
    assert_eq!(answer.trade_type.as_str(), "NATIVE");
    let received = h.received();
    assert_eq!(received.len(), 3);
    // Same nonce, same signature, same out_trade_no: WeChat sees one order.
    assert!(received.iter().all(|(_, body)| *body == received[0].1));
}

#[tokio::test]
async fn retries_stop_after_the_policy_allows() {
    let h = Harness::start().await;
    h.script(
        "/pay/orderquery",
        std::iter::repeat_n(Reply::Status(500), 5),
    );
    let error = h
        .client()
        .order_query(&OrderRef::TransactionId("42".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport(TransportError::Status { status: 500, .. })
        ),
        "{error:?}"
    );
    assert_eq!(h.received().len(), 3);
}

#[tokio::test]
async fn timeouts_and_connection_failures_are_transport_errors() {
    let h = Harness::start().await;
    h.script("/pay/closeorder", [Reply::Slow(Duration::from_secs(3))]);
    let client = Client::new(ClientConfig {
        request_timeout: Duration::from_millis(200),
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..h.config()
    })
    .unwrap();
    let error = client.close_order("T1").await.unwrap_err();
    assert!(
        matches!(error, Error::Transport(TransportError::Timeout { .. })),
        "{error:?}"
    );
    assert!(error.is_retryable());

    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = Client::new(ClientConfig {
        base_url: url,
        ..h.config()
    })
    .unwrap();
    let error = client.close_order("T1").await.unwrap_err();
    assert!(
        matches!(error, Error::Transport(TransportError::Connect { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn order_query_reads_the_trade_state() {
    let h = Harness::start().await;
    h.script(
        "/pay/orderquery",
        [
            Reply::Signed(vec![
                ("result_code", "SUCCESS"),
                ("trade_state", "SUCCESS"),
                ("out_trade_no", "T1"),
                ("transaction_id", "4200000001"),
                ("total_fee", "9999"),
                ("cash_fee", "9989"),
                ("coupon_fee_0", "10"),
                ("time_end", "20260101120000"),
            ]),
            Reply::Signed(vec![
                ("result_code", "SUCCESS"),
                ("trade_state", "NOTPAY"),
                ("out_trade_no", "T2"),
            ]),
            Reply::Signed(vec![
                ("result_code", "SUCCESS"),
                ("trade_state", "TELEPORTED"),
                ("out_trade_no", "T3"),
            ]),
            Reply::Signed(vec![
                ("result_code", "SUCCESS"),
                ("trade_state", "SUCCESS"),
                ("out_trade_no", "T4"),
                ("transaction_id", "4200000004"),
            ]),
        ],
    );
    let client = h.client();
    let paid = client
        .order_query(&OrderRef::OutTradeNo("T1".into()))
        .await
        .unwrap();
    assert_eq!(paid.trade_state, TradeState::Success);
    assert_eq!(paid.total_fee, Some(Fen::new(9999)));
    assert_eq!(paid.raw["coupon_fee_0"], "10");
    let unpaid = client
        .order_query(&OrderRef::OutTradeNo("T2".into()))
        .await
        .unwrap();
    assert_eq!(unpaid.trade_state, TradeState::NotPay);
    assert_eq!(unpaid.total_fee, None);
    assert!(matches!(
        client.order_query(&OrderRef::OutTradeNo("T3".into())).await,
        Err(Error::Malformed { .. })
    ));
    // Paid without an amount: refuse rather than guess.
    assert!(matches!(
        client.order_query(&OrderRef::OutTradeNo("T4".into())).await,
        Err(Error::Malformed { .. })
    ));
}

#[tokio::test]
async fn a_response_for_another_merchant_is_refused() {
    let h = Harness::start().await;
    h.script(
        "/pay/closeorder",
        [Reply::Signed(vec![
            ("result_code", "SUCCESS"),
            ("mch_id", "99999999"),
        ])],
    );
    // The scripted mch_id overrides the gateway's; the document is validly signed.
    let error = h.client().close_order("T1").await.unwrap_err();
    assert!(matches!(error, Error::Malformed { .. }), "{error:?}");
}

#[tokio::test]
async fn sandbox_key_is_fetched_once_and_used_for_signing() {
    let h = Harness::start().await;
    h.script(
        SANDBOX_SIGN_KEY,
        [Reply::Raw(
            "<xml><return_code>SUCCESS</return_code><return_msg>ok</return_msg><sandbox_signkey>0123456789abcdef0123456789abcdef</sandbox_signkey></xml>",
        )],
    );
    h.script(
        "/xdc/apiv2sandbox/pay/closeorder",
        std::iter::repeat_n(Reply::Signed(vec![("result_code", "SUCCESS")]), 2),
    );
    h.script(
        "/xdc/apiv2sandbox/secapi/pay/refund",
        [Reply::Signed(vec![
            ("result_code", "SUCCESS"),
            ("refund_id", "50000000001"),
            ("out_refund_no", "R1"),
            ("out_trade_no", "T1"),
            ("transaction_id", "4200000001"),
            ("refund_fee", "100"),
            ("total_fee", "9999"),
        ])],
    );
    let client = Client::new(ClientConfig {
        sandbox: true,
        sign_type: SignType::Md5,
        ..h.config()
    })
    .unwrap();
    let clone = client.clone();
    client.close_order("T1").await.unwrap();
    clone.close_order("T1").await.unwrap();
    let refund = client
        .refund(&RefundRequest {
            order: OrderRef::OutTradeNo("T1".into()),
            out_refund_no: "R1".into(),
            total_fee: Fen::new(9999),
            refund_fee: Fen::new(100),
            refund_desc: Some("退货".into()),
            notify_url: None,
        })
        .await
        .unwrap();
    assert_eq!(refund.refund_fee, Fen::new(100));

    let received = h.received();
    let paths: Vec<&str> = received.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            SANDBOX_SIGN_KEY,
            "/xdc/apiv2sandbox/pay/closeorder",
            "/xdc/apiv2sandbox/pay/closeorder",
            "/xdc/apiv2sandbox/secapi/pay/refund"
        ]
    );
    let getsignkey = decode(received[0].1.as_bytes()).unwrap();
    assert_eq!(verify(&getsignkey, &ApiKey::new(KEY)), Ok(SignType::Md5));
    for (_, body) in &received[1..] {
        let request = decode(body.as_bytes()).unwrap();
        assert!(verify(&request, &ApiKey::new(SANDBOX_KEY)).is_ok());
        assert!(verify(&request, &ApiKey::new(KEY)).is_err());
    }
}

#[tokio::test]
async fn refund_needs_the_certificate_and_a_sane_amount() {
    let h = Harness::start().await;
    let client = h.client();
    let mut request = RefundRequest {
        order: OrderRef::TransactionId("4200000001".into()),
        out_refund_no: "R1".into(),
        total_fee: Fen::new(100),
        refund_fee: Fen::new(101),
        refund_desc: None,
        notify_url: None,
    };
    assert!(matches!(
        client.refund(&request).await,
        Err(Error::InvalidRequest {
            field: "refund_fee",
            ..
        })
    ));
    request.refund_fee = Fen::new(100);
    assert!(h.received().is_empty());
    // Over HTTPS the call is refused before anything is sent when no certificate is set...
    let over_tls = Client::new(ClientConfig {
        base_url: "https://127.0.0.1:9".into(),
        ..h.config()
    })
    .unwrap();
    assert!(matches!(
        over_tls.refund(&request).await,
        Err(Error::Config(message)) if message.contains("merchant certificate")
    ));
    // ...while over plain HTTP (a simulator: there is no TLS to present one in) it goes.
    h.script(
        "/secapi/pay/refund",
        [Reply::Signed(vec![
            ("result_code", "SUCCESS"),
            ("refund_id", "50000001"),
            ("out_refund_no", "R1"),
            ("out_trade_no", "T1"),
            ("transaction_id", "4200000001"),
            ("refund_fee", "100"),
            ("total_fee", "100"),
        ])],
    );
    let accepted = client.refund(&request).await.unwrap();
    assert_eq!(accepted.refund_id, "50000001");
    assert_eq!(h.received().len(), 1);

    let unusable = Client::new(ClientConfig {
        identity: Some(ClientIdentity::from_pem(b"not a cert", b"not a key")),
        ..h.config()
    });
    assert!(matches!(unusable, Err(Error::Config(_))));
    let no_roots = Client::new(ClientConfig {
        trusted_roots_pem: Some(b"not a certificate".to_vec()),
        ..h.config()
    });
    assert!(
        matches!(&no_roots, Err(Error::Config(m)) if m.contains("trusted_roots_pem")),
        "{:?}",
        no_roots.err()
    );
}

/// The round trip; reading every numbered refund is unit-tested in `calls::refund_query`.
#[tokio::test]
async fn refund_query_sends_the_reference_and_reads_the_refunds() {
    let h = Harness::start().await;
    h.script(
        "/pay/refundquery",
        [Reply::Signed(vec![
            ("result_code", "SUCCESS"),
            ("out_trade_no", "T1"),
            ("transaction_id", "4200000001"),
            ("total_fee", "9999"),
            ("refund_count", "1"),
            ("out_refund_no_0", "R1"),
            ("refund_id_0", "5001"),
            ("refund_fee_0", "100"),
            ("refund_status_0", "SUCCESS"),
        ])],
    );
    let answer = h
        .client()
        .refund_query(&RefundRef::OutRefundNo("R1".into()))
        .await
        .unwrap();
    let (path, body) = &h.received()[0];
    assert_eq!(path, "/pay/refundquery");
    let request = decode(body.as_bytes()).unwrap();
    assert_eq!(request["out_refund_no"], "R1");
    assert!(!request.contains_key("out_trade_no"));
    assert_eq!(answer.refunds.len(), 1);
    assert_eq!(answer.refunds[0].refund_status, RefundStatus::Success);
}

#[tokio::test]
async fn download_bill_returns_text_or_a_typed_error() {
    let h = Harness::start().await;
    h.script(
        "/pay/downloadbill",
        [
            Reply::Raw("交易时间,公众账号ID,商户号\n`2026-01-01 12:00:00,`wx1,`10000100\n"),
            Reply::Raw(
                "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg><error_code><![CDATA[20002]]></error_code></xml>",
            ),
        ],
    );
    let client = h.client();
    let bill = client
        .download_bill("20260101", BillType::All)
        .await
        .unwrap();
    assert!(bill.starts_with("交易时间"));
    // How an XML answer becomes an error is unit-tested in `calls::download_bill`.
    let no_bill = client.download_bill("20260102", BillType::Success).await;
    assert!(
        matches!(&no_bill, Err(Error::Business { code, .. }) if code.as_str() == "20002"),
        "{no_bill:?}"
    );
    assert!(matches!(
        client.download_bill("2026-01-01", BillType::All).await,
        Err(Error::InvalidRequest {
            field: "bill_date",
            ..
        })
    ));
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

const ONE_PAYMENT_BILL: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注\r\n\
`2026-01-01 12:00:00,`wx2421b1c4370ec43b,`10000100,`0,`,`4200000001202601011234567890,`o-1,`oUser,`NATIVE,`SUCCESS,`CFT,`CNY,`1.01,`0.00,`goods,`,`0.00606,`0.60%,`1.01,`\r\n\
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n\
`1,`1.01,`0.00,`0.00,`0.00606,`1.01,`0.00\r\n";

/// `Client::bill` asks for the GZIP form, decodes and parses it, and checks its type; the
/// plain form still works beside it.
#[tokio::test]
async fn bill_asks_for_gzip_and_parses_it() {
    let h = Harness::start().await;
    let no_bill = "<xml><return_code>FAIL</return_code><return_msg>No Bill Exist</return_msg><error_code>20002</error_code></xml>";
    let broken = ONE_PAYMENT_BILL.replace("`1.01,`0.00,`goods", "`1.0x,`0.00,`goods");
    h.script(
        "/pay/downloadbill",
        [
            Reply::Bytes(gzip(ONE_PAYMENT_BILL)),
            Reply::Bytes(gzip(ONE_PAYMENT_BILL)),
            Reply::Raw(no_bill),
            Reply::Bytes(gzip(&broken)),
            Reply::Raw(ONE_PAYMENT_BILL),
            Reply::Raw(ONE_PAYMENT_BILL),
        ],
    );
    let client = h.client();
    let bill = client.bill("20260101", BillType::Success).await.unwrap();
    assert_eq!(bill.lines.len(), 1);
    assert_eq!(bill.lines[0].row.total_fee, Fen::new(101));
    assert_eq!(bill.lines[0].number, 2);
    let request = decode(h.received()[0].1.as_bytes()).unwrap();
    assert_eq!(request["tar_type"], "GZIP");
    assert_eq!(request["bill_type"], "SUCCESS");

    let wrong_type = client.bill("20260101", BillType::All).await.unwrap_err();
    assert!(
        wrong_type
            .to_string()
            .contains("a ALL bill was asked for and a SUCCESS bill came"),
        "{wrong_type}"
    );
    let no_bill = client.bill("20260102", BillType::All).await;
    assert!(
        matches!(&no_bill, Err(Error::Business { code, .. }) if code.as_str() == "20002"),
        "{no_bill:?}"
    );
    let broken = client
        .bill("20260101", BillType::Success)
        .await
        .unwrap_err();
    assert!(
        matches!(&broken, Error::Bill(wechatpay_v2::BillError::Field { line: 2, field, .. }) if field.starts_with("应结订单金额")),
        "{broken:?}"
    );
    // Asked for as GZIP, a plain answer is refused rather than guessed at.
    assert!(matches!(
        client
            .download_bill_gzip("20260101", BillType::Success)
            .await,
        Err(Error::Malformed { .. })
    ));
    let plain = client
        .download_bill("20260101", BillType::Success)
        .await
        .unwrap();
    assert_eq!(plain, ONE_PAYMENT_BILL);
    let plain_request = decode(h.received()[5].1.as_bytes()).unwrap();
    assert!(!plain_request.contains_key("tar_type"));
}

#[tokio::test]
async fn clones_share_one_client_and_work_concurrently() {
    let h = Harness::start().await;
    h.script(
        "/pay/closeorder",
        std::iter::repeat_n(Reply::Signed(vec![("result_code", "SUCCESS")]), 16),
    );
    let client = h.client();
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.close_order(&format!("T{n}")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(h.received().len(), 16);
}

#[test]
fn configuration_is_checked_and_secrets_stay_masked() {
    assert!(matches!(
        Client::new(ClientConfig::default()),
        Err(Error::Config(_))
    ));
    let config = ClientConfig {
        app_id: APPID.into(),
        mch_id: MCH_ID.into(),
        api_key: ApiKey::new(KEY),
        identity: Some(ClientIdentity::from_pem(b"CERT", b"SECRET-PRIVATE-KEY")),
        ..Default::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains("SECRET-PRIVATE-KEY"), "{shown}");
}

const CERT_PEM: &[u8] = include_bytes!("certs/apiclient_cert.pem");
const KEY_PEM: &[u8] = include_bytes!("certs/apiclient_key.pem");
const P12: &[u8] = include_bytes!("certs/apiclient_cert.p12");
const P12_LEGACY: &[u8] = include_bytes!("certs/apiclient_cert_legacy.p12");

#[test]
fn merchant_certificates_load_from_pem_and_pkcs12() {
    let base = ClientConfig {
        base_url: "https://api.mch.weixin.qq.com".into(),
        app_id: APPID.into(),
        mch_id: MCH_ID.into(),
        api_key: ApiKey::new(KEY),
        ..Default::default()
    };
    let pem = ClientIdentity::from_pem(CERT_PEM, KEY_PEM);
    assert!(
        Client::new(ClientConfig {
            identity: Some(pem),
            ..base.clone()
        })
        .is_ok()
    );
    for bundle in [P12, P12_LEGACY] {
        let identity = ClientIdentity::from_pkcs12(bundle, "1900000109").unwrap();
        assert_eq!(format!("{identity:?}"), "ClientIdentity(***)");
        assert!(
            Client::new(ClientConfig {
                identity: Some(identity),
                ..base.clone()
            })
            .is_ok()
        );
    }
    let wrong = ClientIdentity::from_pkcs12(P12, "not-the-password").unwrap_err();
    assert!(matches!(wrong, Error::Config(_)), "{wrong:?}");
    assert!(!wrong.to_string().contains("not-the-password"));
    assert!(ClientIdentity::from_pkcs12(b"garbage", "1900000109").is_err());
}
