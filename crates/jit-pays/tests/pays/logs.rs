//! What the family logs about refused and accepted notifies: the reason, never a key.

use crate::support;
use crate::support::shop::{self, API_KEY, APP_ID, MCH_ID, OTHER_API_KEY, ShopOptions};
use jit_pays::{NotifyOutcome, PayType, Payer};
use wechatpay_v2::Fen;

// One thread, so the subscriber set for this test sees every task's events.
#[tokio::test(flavor = "current_thread")]
async fn refusals_are_logged_with_their_reason_and_without_keys() {
    let (captured, _guard) = support::capture_logs();

    let shop = shop::start(support::sqlite().await, ShopOptions::default()).await;
    let order = shop
        .pay
        .create("Logged", Fen::new(1000), None)
        .await
        .unwrap();
    let id = order.order_id.as_str();
    for body in [
        shop::signed_notify(APP_ID, MCH_ID, OTHER_API_KEY, id, 1000, "T1"),
        shop::signed_notify(APP_ID, MCH_ID, API_KEY, id, 1, "T1"),
    ] {
        let reply = shop.svc.wechat_notify(body.as_bytes()).await;
        assert!(matches!(reply.outcome, NotifyOutcome::Rejected { .. }));
    }
    let url = shop
        .pay
        .get_pay_url(id, PayType::Native, &Payer::default())
        .await
        .unwrap();
    shop.sim.pay(url.pay_url.as_str()).unwrap();
    shop.wait_settled(id).await;

    let log = captured.text();
    assert!(log.contains("payment notify refused"), "{log}");
    assert!(log.contains("signature mismatch"), "{log}");
    assert!(log.contains("another amount"), "{log}");
    assert!(log.contains("order paid"), "{log}");
    assert!(!log.contains(API_KEY), "a key reached the log:\n{log}");
    assert!(
        !log.contains(OTHER_API_KEY),
        "a key reached the log:\n{log}"
    );
}
