//! The README's quick start as a test: create an order over HTTP, get its payUrl, pay it
//! through the simulator, see it `success`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::util::{ShopServer, json_reply};

#[tokio::test]
async fn create_pay_and_see_success() {
    let shop = ShopServer::start().await;

    let order = shop
        .pay_svc(
            "create",
            json!({"subject": "Product Purchase", "amount": 99.99}),
        )
        .await;
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    assert_eq!(order["status"], "wait");
    assert_eq!(
        order["amountFen"], 9999,
        "99.99 yuan is exactly 9999 fen: {order}"
    );

    let pay_url = shop
        .pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    let url = pay_url["payUrl"].as_str().expect("a payUrl");
    assert!(url.starts_with("weixin://wxpay/bizpayurl?pr="), "{pay_url}");

    // The payer scans and pays, through the shop's forward to its in-process simulator.
    let response = shop
        .client
        .post(format!("{}/sim/pay", shop.handle.base_url()))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .unwrap();
    let (status, paid) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["ok"], true);

    // The simulator's signed notify reaches the shop on its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let order = shop.pay_svc("query", json!({"orderId": order_id})).await;
        if order["status"] == "success" {
            assert_eq!(order["amount"], "99.99");
            assert!(order["payTime"].is_string(), "{order}");
            break;
        }
        assert!(Instant::now() < deadline, "still not paid: {order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The health check sees the database and the simulator.
    let response = shop
        .client
        .get(format!("{}/healthz", shop.handle.base_url()))
        .send()
        .await
        .unwrap();
    let (status, health) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["checks"]["database"]["status"], "ok");
    assert_eq!(health["checks"]["gateway"]["detail"]["simulator"], true);

    shop.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_cli_pays_through_the_shop() {
    let shop = ShopServer::start().await;
    let order_id = shop.create_order("0.29").await;
    shop.pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    let base_url = shop.handle.base_url().to_owned();
    let id = order_id.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_jit"))
            .args(["sim", "pay", &id, "--sim", &base_url])
            .output()
            .expect("jit runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("paid order {order_id}")),
        "{stdout}"
    );
    assert!(stdout.contains("total_fee 29 fen"), "{stdout}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.status(&order_id).await != "success" {
        assert!(Instant::now() < deadline, "the notify never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Paying again is refused by the simulator and the CLI says why.
    let base_url = shop.handle.base_url().to_owned();
    let id = order_id.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_jit"))
            .args(["sim", "pay", &id, "--sim", &base_url])
            .output()
            .expect("jit runs")
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused to pay"));
    shop.handle.shutdown().await.unwrap();
}
