//! The WeChat notify endpoint against notifies signed by an independent implementation
//! (wechatpy 1.8.18): genuine ones are applied once, forged or tampered ones change nothing,
//! and a hundred concurrent duplicates make exactly one transition.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::util::{SHOP_APPID, SHOP_KEY, SHOP_MCH_ID, ShopServer, is_fail_reply, is_success_reply};

/// A payment notify for `order_id` signed by wechatpy with `key` (MD5, or HMAC-SHA256
/// with `sign_type` when `hmac`), as WeChat would send it.
pub fn wechatpy_notify(order_id: &str, total_fee: i64, key: &str, hmac: bool) -> String {
    let mut params = json!({
        "appid": SHOP_APPID,
        "bank_type": "CMC",
        "cash_fee": total_fee.to_string(),
        "fee_type": "CNY",
        "is_subscribe": "N",
        "mch_id": SHOP_MCH_ID,
        "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "out_trade_no": order_id,
        "result_code": "SUCCESS",
        "return_code": "SUCCESS",
        "time_end": "20261127101010",
        "total_fee": total_fee.to_string(),
        "trade_type": "NATIVE",
        "transaction_id": "4200000000202611270000000001",
    });
    if hmac {
        params["sign_type"] = json!("HMAC-SHA256");
    }
    let answer = test_support::run_python(
        r#"
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac, dict_to_xml
params = data["params"]
if data["hmac"]:
    sign = calculate_signature_hmac(params, data["key"])
else:
    sign = calculate_signature(params, data["key"])
result = dict_to_xml(params, sign)
"#,
        &json!({"params": params, "key": key, "hmac": hmac}),
    );
    answer
        .as_str()
        .expect("wechatpy returns the XML")
        .to_owned()
}

/// Counts paid transitions announced to hosted code.
fn count_paid(shop: &ShopServer) -> Arc<AtomicUsize> {
    let paid = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&paid);
    shop.handle
        .app()
        .service::<jit_pays::PayEvents>()
        .expect("the pays family provides its events")
        .on_paid(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
    paid
}

#[tokio::test]
async fn genuine_md5_and_hmac_notifies_are_applied() {
    let shop = ShopServer::start().await;
    let paid = count_paid(&shop);
    for hmac in [false, true] {
        let order_id = shop.create_order("99.99").await;
        let notify = wechatpy_notify(&order_id, 9999, SHOP_KEY, hmac);
        let (status, reply) = shop.post_notify(notify).await;
        assert_eq!(status, 200);
        assert!(is_success_reply(&reply), "hmac={hmac}: {reply}");
        assert_eq!(shop.status(&order_id).await, "success");
    }
    shop.outbox_idle().await;
    assert_eq!(paid.load(Ordering::SeqCst), 2);
    shop.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_and_tampered_notifies_change_nothing() {
    let shop = ShopServer::start().await;
    let paid = count_paid(&shop);
    let order_id = shop.create_order("20.00").await;
    let before = shop.pay_svc("query", json!({"orderId": order_id})).await;

    let forged = wechatpy_notify(&order_id, 2000, "0123456789abcdef0123456789abcdef", false);
    // Signed with the right key, but for 1 fen: the classic "paid 1 fen for 20 yuan".
    let underpaid = wechatpy_notify(&order_id, 1, SHOP_KEY, false);
    // A genuine notify altered in flight.
    let altered = wechatpy_notify(&order_id, 2000, SHOP_KEY, false)
        .replace("<total_fee>2000</total_fee>", "<total_fee>1</total_fee>");
    assert!(altered.contains("<total_fee>1</total_fee>"));
    let unsigned = wechatpy_notify(&order_id, 2000, SHOP_KEY, false)
        .split("<sign>")
        .next()
        .unwrap()
        .to_owned()
        + "</xml>";

    for (label, body) in [
        ("forged", forged),
        ("underpaid", underpaid),
        ("altered", altered),
        ("unsigned", unsigned),
    ] {
        let (status, reply) = shop.post_notify(body).await;
        assert!(
            status.is_success() || status.is_client_error(),
            "{label}: {status}"
        );
        assert!(is_fail_reply(&reply), "{label} must be refused: {reply}");
        assert!(
            !reply.contains(SHOP_KEY),
            "{label}: the reply never holds the key"
        );
    }
    let after = shop.pay_svc("query", json!({"orderId": order_id})).await;
    assert_eq!(after, before, "nothing changed");
    shop.outbox_idle().await;
    assert_eq!(paid.load(Ordering::SeqCst), 0);
    shop.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_hundred_concurrent_duplicates_make_one_transition() {
    let shop = ShopServer::start().await;
    let paid = count_paid(&shop);
    let order_id = shop.create_order("0.01").await;
    let notify = wechatpy_notify(&order_id, 1, SHOP_KEY, false);
    let replies =
        futures::future::join_all((0..100).map(|_| shop.post_notify(notify.clone()))).await;
    for (status, reply) in &replies {
        assert_eq!(*status, 200);
        assert!(
            is_success_reply(reply),
            "every duplicate is acknowledged: {reply}"
        );
    }
    let order: Value = shop.pay_svc("query", json!({"orderId": order_id})).await;
    assert_eq!(order["status"], "success");
    shop.outbox_idle().await;
    assert_eq!(paid.load(Ordering::SeqCst), 1, "exactly one transition");
    // And later repetitions still change nothing.
    let (_, reply) = shop.post_notify(notify).await;
    assert!(is_success_reply(&reply));
    assert_eq!(
        shop.pay_svc("query", json!({"orderId": order_id})).await,
        order
    );
    shop.outbox_idle().await;
    assert_eq!(paid.load(Ordering::SeqCst), 1);
    shop.handle.shutdown().await.unwrap();
}
