//! wechatpy 1.8.18 as an independent peer: notifies it signs are accepted (and refused
//! once tampered), and the JSAPI client parameters we sign verify with its signature code.

use crate::support;
use crate::support::shop::{self, API_KEY, APP_ID, MCH_ID, ShopOptions};
use jit_pays::{NotifyOutcome, PayStatus, PayType, Payer};
use serde_json::json;
use wechatpay_v2::Fen;

const SIGN_NOTIFY: &str = r#"
from wechatpy.pay.utils import calculate_signature, dict_to_xml
fields = data["fields"]
sign = calculate_signature(fields, data["key"])
result = dict_to_xml(fields, sign)
"#;

const JSAPI_SIGN: &str = r#"
from wechatpy.pay.utils import calculate_signature
result = calculate_signature(data["params"], data["key"])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_signed_by_wechatpy_are_accepted_and_tampered_ones_refused() {
    let db = support::sqlite().await;
    let shop = shop::start(db, ShopOptions::default()).await;
    let order = shop
        .pay
        .create("wechatpy 支付", Fen::from_yuan_str("88.8").unwrap(), None)
        .await
        .unwrap();
    let fields = json!({
        "return_code": "SUCCESS",
        "result_code": "SUCCESS",
        "appid": APP_ID,
        "mch_id": MCH_ID,
        "nonce_str": "wechatpyNonce0123456789",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "trade_type": "NATIVE",
        "bank_type": "CMC",
        "total_fee": "8880",
        "cash_fee": "8880",
        "fee_type": "CNY",
        "transaction_id": "4200000000000000000000000001",
        "out_trade_no": order.order_id,
        "attach": "中文附加数据",
        "coupon_count": "1",
        "coupon_fee_0": "100",
        "time_end": "20261127103000",
    });
    let xml = test_support::run_python(SIGN_NOTIFY, &json!({"fields": fields, "key": API_KEY}));
    let xml = xml.as_str().unwrap().to_owned();

    let tampered = xml.replace("8880", "1");
    let reply = shop.svc.wechat_notify(tampered.as_bytes()).await;
    assert!(
        matches!(reply.outcome(), NotifyOutcome::Rejected { .. }),
        "{:?}",
        reply.outcome()
    );
    assert_eq!(
        shop.pay.get_order(&order.order_id).await.unwrap().status,
        PayStatus::Wait
    );

    let reply = shop.svc.wechat_notify(xml.as_bytes()).await;
    assert_eq!(
        *reply.outcome(),
        NotifyOutcome::Paid {
            order_id: order.order_id.clone()
        }
    );
    assert_eq!(reply.xml(), wechatpay_v2::NOTIFY_SUCCESS_REPLY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsapi_client_parameters_verify_with_wechatpy() {
    let db = support::sqlite().await;
    let shop = shop::start(db, ShopOptions::default()).await;
    let order = shop
        .pay
        .create("JSAPI", Fen::from_yuan_str("0.01").unwrap(), None)
        .await
        .unwrap();
    let payer = Payer {
        openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
        ..Payer::default()
    };
    let url = shop
        .pay
        .get_pay_url(&order.order_id, PayType::Jsapi, &payer)
        .await
        .unwrap();
    let form: serde_json::Value = serde_json::from_str(&url.form).unwrap();
    let params = json!({
        "appId": form["appId"],
        "timeStamp": form["timeStamp"],
        "nonceStr": form["nonceStr"],
        "package": form["package"],
        "signType": form["signType"],
    });
    let expected = test_support::run_python(JSAPI_SIGN, &json!({"params": params, "key": API_KEY}));
    assert_eq!(form["paySign"], expected);
}
