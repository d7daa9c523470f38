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
        assert!(matches!(reply.outcome(), NotifyOutcome::Rejected { .. }));
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

/// A notify as a forger would write it: unsigned fields, `out_trade_no` and `return_msg`
/// chosen by the sender, character references decoded by the XML reader.
fn forged_notify(out_trade_no: &str, return_msg: &str) -> String {
    format!(
        "<xml><return_code>FAIL</return_code><return_msg>{return_msg}</return_msg>\
         <appid>{APP_ID}</appid><mch_id>{MCH_ID}</mch_id><out_trade_no>{out_trade_no}</out_trade_no>\
         <total_fee>1</total_fee><sign>00000000000000000000000000000000</sign></xml>"
    )
}

/// Text that would forge a log line (`&#10;` is a newline once decoded) and repaint the
/// operator's terminal (`&#27;` is ESC).
const FORGED_LINE: &str = "&#10;2026-11-30T00:00:00Z  INFO jit: order paid&#27;[31m";

// One thread, so the subscriber set for this test sees every task's events.
#[tokio::test(flavor = "current_thread")]
async fn unverified_notify_fields_reach_the_log_escaped() {
    let (captured, _guard) = support::capture_logs();
    let shop = shop::start(support::sqlite().await, ShopOptions::default()).await;
    let order = shop.pay.create("Known", Fen::new(100), None).await.unwrap();
    let peer: std::net::IpAddr = "192.0.2.10".parse().unwrap();

    // An unknown order whose number forges a line: refused by PaySvc itself.
    let unknown = forged_notify(&format!("D1{FORGED_LINE}"), "x");
    let reply = shop
        .svc
        .wechat_notify_from(unknown.as_bytes(), Some(peer))
        .await;
    let NotifyOutcome::Rejected { reason, .. } = reply.outcome() else {
        panic!("{:?}", reply.outcome())
    };
    assert!(
        reason.contains('\n'),
        "the premise: decoded text: {reason:?}"
    );
    // A known order with a return_msg that forges a line: refused by the element.
    let known = forged_notify(&order.order_id, &format!("busy{FORGED_LINE}"));
    let reply = shop
        .svc
        .wechat_notify_from(known.as_bytes(), Some(peer))
        .await;
    assert!(
        matches!(reply.outcome(), NotifyOutcome::Rejected { .. }),
        "{:?}",
        reply.outcome()
    );

    let log = captured.text();
    assert!(!log.contains('\u{1b}'), "a raw ESC reached the log:\n{log}");
    let refusals: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("payment notify refused"))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    // Each forged line stays inside its refusal's own line, escaped.
    for line in &refusals {
        assert!(
            line.contains("\\n2026-11-30T00:00:00Z  INFO jit: order paid\\u{1b}[31m"),
            "{line}"
        );
        assert!(line.contains("192.0.2.10"), "{line}");
    }
    assert!(refusals[1].contains("busy"), "{}", refusals[1]);
    assert!(
        !log.lines()
            .any(|line| line.starts_with("2026-11-30T00:00:00Z")),
        "a forged line:\n{log}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_forged_notifies_logs_at_most_the_burst_per_sender() {
    let (captured, _guard) = support::capture_logs();
    let shop = shop::start(support::sqlite().await, ShopOptions::default()).await;
    let flooder: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let bystander: std::net::IpAddr = "198.51.100.8".parse().unwrap();
    let flood = 200;
    for index in 0..flood {
        let body = forged_notify(&format!("NOSUCHORDER{index}"), "x");
        let reply = shop
            .svc
            .wechat_notify_from(body.as_bytes(), Some(flooder))
            .await;
        assert!(matches!(reply.outcome(), NotifyOutcome::Rejected { .. }));
    }
    // Through the element function as the HTTP host calls it, peer in the context.
    let cx = jit_runtime::CallContext {
        peer: Some(bystander),
        ..jit_runtime::CallContext::anonymous()
    };
    let reply = shop
        .app
        .call(
            "pays.services.PaySvc",
            "wechatNotify",
            serde_json::json!({"xml": forged_notify("NOSUCHORDER", "x")}),
            &cx,
        )
        .await
        .unwrap();
    assert!(reply.as_str().unwrap().contains("FAIL"), "{reply}");

    let log = captured.text();
    let logged = |peer: &str| {
        log.lines()
            .filter(|line| line.contains("payment notify refused") && line.contains(peer))
            .count()
    };
    let burst = 10; // RefusalLogLimiter::default()
    assert_eq!(logged("198.51.100.7"), burst, "{log}");
    // Another sender is not silenced by the flood.
    assert_eq!(logged("198.51.100.8"), 1, "{log}");
}
