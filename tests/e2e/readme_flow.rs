//! The README's quick start as a test: create an order over HTTP, get its payUrl, pay it
//! through the simulator, see it `success`, refund part of it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::util::{ShopServer, jit_command, json_reply};

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

    // The payer scans and pays, on the simulator's own loopback listener.
    let simulator = shop.handle.info("simulator").expect("the simulator's URL");
    let response = shop
        .client
        .post(format!("{simulator}/sim/pay"))
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

    // Refund it, in part, as the README's next step does.
    let refund = shop
        .pay_svc(
            "refund",
            json!({"orderId": order_id, "amount": 19.99, "reason": "Out of stock"}),
        )
        .await;
    assert_eq!(refund["amountFen"], 1999, "{refund}");
    let refund_id = refund["refundId"].as_str().expect("a refundId").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refunds = shop
            .pay_svc("listRefunds", json!({"orderId": order_id}))
            .await;
        if refunds[0]["status"] == "success" {
            assert_eq!(refunds[0]["refundId"], refund_id.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "still not refunded: {refunds}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order = shop.pay_svc("query", json!({"orderId": order_id})).await;
    assert_eq!(order["refundedFen"], 1999, "{order}");
    assert_eq!(order["refundStatus"], "partial", "{order}");

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
    for said in [
        &health["payments"],
        &health["checks"]["gateway"]["detail"]["payments"],
    ] {
        assert!(
            said.as_str()
                .is_some_and(|text| text.starts_with("SIMULATED PAYMENTS")),
            "{health}"
        );
    }
    assert!(
        !health.to_string().contains(simulator),
        "no internal address in /healthz: {health}"
    );

    shop.handle.shutdown().await.unwrap();
}

/// Anyone who reaches the shop must not be able to pay its orders: the payer side is not
/// on the shop's listener, in any spelling.
#[tokio::test]
async fn the_shop_does_not_route_the_payer_side() {
    let shop = ShopServer::start().await;
    let order_id = shop.create_order("5.00").await;
    shop.pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    for path in [
        "/sim/pay",
        "/sim/fail",
        "/sim/paying",
        "/sim/inspect",
        "/sim/faults",
    ] {
        let response = shop
            .client
            .post(format!("{}{path}", shop.handle.base_url()))
            .json(&json!({"out_trade_no": order_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "POST {path}");
    }
    // The simulator itself never saw a payer action (so no notify can be on its way), and
    // the order is unpaid.
    let simulator = shop.handle.info("simulator").unwrap().to_owned();
    let inspection: serde_json::Value = shop
        .client
        .get(format!("{simulator}/sim/inspect"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = inspection["orders"]
        .as_array()
        .and_then(|orders| {
            orders
                .iter()
                .find(|order| order["out_trade_no"] == order_id.as_str())
        })
        .unwrap_or_else(|| panic!("the simulator has the order: {inspection}"));
    assert_eq!(order["state"], "NOTPAY", "{order}");
    assert_eq!(shop.status(&order_id).await, "wait");
    // The simulator listens on loopback only.
    assert!(simulator.starts_with("http://127.0.0.1:"), "{simulator}");
    shop.handle.shutdown().await.unwrap();
}

/// The README's `jit sim pay ORDER_ID`, with no flags, run in the app folder: it finds the
/// simulator the running shop started.
#[tokio::test]
async fn the_cli_pays_through_the_shop() {
    let shop = ShopServer::start().await;
    let app_dir = shop._dir.path().to_owned();
    let record = app_dir.join(".jit/simulator.json");
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&record).expect("serve records its simulator"),
    )
    .unwrap();
    assert_eq!(recorded["url"], shop.handle.info("simulator").unwrap());

    let order_id = shop.create_order("0.29").await;
    shop.pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    let sim_pay = |id: String, dir: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            jit_command()
                .args(["sim", "pay", &id])
                .current_dir(dir)
                .output()
                .expect("jit runs")
        })
    };
    let output = sim_pay(order_id.clone(), app_dir.clone()).await.unwrap();
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
    let output = sim_pay(order_id.clone(), app_dir.clone()).await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused to pay"));
    shop.handle.shutdown().await.unwrap();

    // Stopped: the record is gone, and the CLI says where it looked.
    assert!(!record.exists(), "serve removes its record when it stops");
    let output = sim_pay(order_id, app_dir).await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(".jit/simulator.json does not exist") && stderr.contains("--sim URL"),
        "{stderr}"
    );
}

/// The README's quick start, V3 variant: the same commands with `"element":
/// "pays.myWechatPayV3"`, the in-process simulator playing WeChat Pay API v3 (its notifies
/// signed with its own keys, which the instance trusts while it is the gateway).
#[tokio::test]
async fn the_quick_start_works_with_the_v3_instance() {
    let shop = ShopServer::start().await;
    let app_dir = shop._dir.path().to_owned();
    let order = shop
        .pay_svc(
            "create",
            json!({"subject": "Product Purchase", "amount": 99.99, "element": "pays.myWechatPayV3"}),
        )
        .await;
    assert_eq!(order["element"], "pays.myWechatPayV3", "{order}");
    assert_eq!(order["amountFen"], 9999, "{order}");
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let url = shop
        .pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    assert!(
        url["payUrl"]
            .as_str()
            .unwrap()
            .starts_with("weixin://wxpay/bizpayurl"),
        "{url}"
    );
    let dir = app_dir.clone();
    let id = order_id.clone();
    let output = tokio::task::spawn_blocking(move || {
        jit_command()
            .args(["sim", "pay", &id])
            .current_dir(dir)
            .output()
            .expect("jit runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.status(&order_id).await != "success" {
        assert!(Instant::now() < deadline, "the V3 notify never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refund = shop
        .pay_svc(
            "refund",
            json!({"orderId": order_id, "amount": 19.99, "reason": "Out of stock"}),
        )
        .await;
    assert_eq!(refund["element"], "pays.myWechatPayV3", "{refund}");
    let refund_id = refund["refundId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refunds = shop
            .pay_svc("listRefunds", json!({"orderId": order_id}))
            .await;
        if refunds[0]["refundId"] == refund_id && refunds[0]["status"] == "success" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the V3 refund notify never landed: {refunds}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = shop.pay_svc("query", json!({"orderId": order_id})).await;
    assert_eq!(summary["refundedFen"], 1999, "{summary}");
    assert_eq!(summary["refundStatus"], "partial", "{summary}");
    shop.handle.shutdown().await.unwrap();
}

/// The same flow on PostgreSQL when `JIT_TEST_POSTGRES_URL` names a server (CI sets it),
/// in a schema of its own.
#[tokio::test]
async fn create_pay_and_see_success_on_postgres() {
    let Ok(url) = std::env::var("JIT_TEST_POSTGRES_URL") else {
        eprintln!("JIT_TEST_POSTGRES_URL not set: the PostgreSQL run is CI's (SQLite ran above)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crate::util::copy_example_app(dir.path());
    let schema = format!("jit_e2e_{}", uuid_like());
    let overrides = jit::Overrides {
        database_url: Some(url),
        database_schema: Some(schema),
        ..crate::util::test_overrides()
    };
    let handle = jit::Host::new()
        .serve_in_process(dir.path(), overrides)
        .await
        .expect("the shop starts on PostgreSQL");
    let http = crate::util::client();
    let api = |function: &str| {
        format!(
            "{}/api/demo/shop/pays/services/PaySvc/{function}",
            handle.base_url()
        )
    };
    let call = |function: &str, arguments: serde_json::Value| {
        let request = http
            .post(api(function))
            .bearer_auth(crate::util::SHOP_TOKEN)
            .json(&arguments);
        async move { json_reply(request.send().await.unwrap()).await }
    };
    let (status, order) = call("create", json!({"subject": "PG order", "amount": 19.9})).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["amountFen"], 1990);
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let (status, _) = call("getPayUrl", json!({"orderId": order_id})).await;
    assert_eq!(status, StatusCode::OK);
    let response = http
        .post(format!("{}/sim/pay", handle.info("simulator").unwrap()))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, order) = call("query", json!({"orderId": order_id})).await;
        if order["status"] == "success" {
            break;
        }
        assert!(Instant::now() < deadline, "{order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown().await.unwrap();
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(b'a' + rng.random_range(0..26)))
        .collect()
}
