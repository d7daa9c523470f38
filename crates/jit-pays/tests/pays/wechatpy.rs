//! wechatpy 1.8.18 as an independent peer: notifies it signs are accepted (and refused
//! once tampered), the JSAPI client parameters we sign verify with its signature code, and
//! refund notifies encrypted by Python alone are applied.

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

/// A refund notify built by Python alone: wechatpy's own AES-ECB cipher (from its refund
/// crypto) with standard PKCS#7, the MD5 of the API key as the key, and wechatpy's XML
/// writer — nothing of ours.
const ENCRYPT_REFUND_NOTIFY: &str = r#"
import base64, hashlib
from cryptography.hazmat.primitives import padding
from wechatpy.crypto.cryptography import AesEcbCipher
from wechatpy.pay.utils import dict_to_xml
key = hashlib.md5(data["key"].encode()).hexdigest().encode()
inner = "<root>" + "".join(
    "<{0}><![CDATA[{1}]]></{0}>".format(k, v) for k, v in data["info"].items()
) + "</root>"
padder = padding.PKCS7(128).padder()
plain = padder.update(inner.encode("utf-8")) + padder.finalize()
req_info = base64.b64encode(AesEcbCipher(key).encrypt(plain)).decode()
outer = dict(data["outer"], req_info=req_info)
result = dict_to_xml(outer)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_notifies_encrypted_by_python_are_applied_and_wrong_keys_refused() {
    let db = support::sqlite().await;
    let shop = shop::start(db, ShopOptions::default()).await;
    shop.sim
        .faults()
        .add(
            wechatpay_sim::FaultRule::new(wechatpay_sim::Fault::DropNotify)
                .on(wechatpay_sim::Endpoint::RefundNotify),
        )
        .unwrap();
    let paid = shop.paid_order("20").await;
    let order = paid.clone();
    let refund = shop
        .pay
        .refund(jit_pays::RefundArgs {
            order_id: order.order_id.clone(),
            amount: Some(Fen::from_yuan_str("5").unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    let notify = |key: &str| {
        let data = json!({
            "key": key,
            "info": {
                "transaction_id": paid.transaction_id,
                "out_trade_no": order.order_id,
                "refund_id": refund.wechat_refund_id,
                "out_refund_no": refund.refund_id,
                "total_fee": "2000",
                "refund_fee": "500",
                "settlement_refund_fee": "500",
                "refund_status": "SUCCESS",
                "success_time": "2026-12-01 10:00:00",
                "refund_recv_accout": "支付用户的零钱",
                "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
                "refund_request_source": "API",
            },
            "outer": {
                "return_code": "SUCCESS",
                "appid": APP_ID,
                "mch_id": MCH_ID,
                "nonce_str": "pythonRefundNonce01",
            },
        });
        test_support::run_python(ENCRYPT_REFUND_NOTIFY, &data)
            .as_str()
            .unwrap()
            .to_owned()
    };
    let wrong = shop
        .svc
        .wechat_refund_notify_from(notify("0123456789abcdef0123456789abcdef").as_bytes(), None)
        .await;
    assert!(
        matches!(wrong.outcome(), NotifyOutcome::Rejected { .. }),
        "{:?}",
        wrong.outcome()
    );
    let right = shop
        .svc
        .wechat_refund_notify_from(notify(API_KEY).as_bytes(), None)
        .await;
    assert!(
        matches!(
            right.outcome(),
            NotifyOutcome::Refund {
                status: jit_pays::RefundStatus::Success,
                ..
            }
        ),
        "{:?}",
        right.outcome()
    );
    let order = shop.pay.get_order(&order.order_id).await.unwrap();
    assert_eq!(order.refunded_fen, Fen::from_yuan_str("5").unwrap());
}
