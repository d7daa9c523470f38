//! A Rust Type extending `pays.WechatPayType`, registered through the host builder: the
//! loader of examples/custom_host, on that example's app, over real HTTP.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "../../examples/custom_host/discount.rs"]
pub(crate) mod discount;

#[path = "../../examples/custom_host/checkout.rs"]
pub(crate) mod checkout;

#[path = "../../examples/custom_host/shop.rs"]
pub(crate) mod shop;

use crate::util::{SHOP_TOKEN, client, copy_dir, error_code, json_reply, test_overrides};

#[tokio::test]
async fn the_custom_type_discounts_refuses_early_cancels_and_delegates_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/custom_host/app"),
        dir.path(),
    );
    let host = shop::host();
    let overrides = jit::Overrides {
        database_url: Some(format!("sqlite://{}", dir.path().join("shop.db").display())),
        ..test_overrides()
    };
    let handle = host.serve_in_process(dir.path(), overrides).await.unwrap();
    let http = client();
    let api = |path: &str| format!("{}/api/demo/discountshop/{path}", handle.base_url());
    let call = |path: String, arguments: Value| {
        let request = http.post(path).bearer_auth(SHOP_TOKEN).json(&arguments);
        async move { json_reply(request.send().await.unwrap()).await }
    };

    // Typed access from hosted code sees the custom Type.
    let pay = handle
        .app()
        .get::<dyn jit_pays::Pay>("pays.myDiscountPay")
        .await
        .expect("the instance is a pay element");
    assert_eq!(pay.mch_id(), "10000100");

    // create on the element itself: 10 % off, in whole fen.
    let (status, order) = call(
        api("pays/myDiscountPay/create"),
        json!({"subject": "Members' box", "amount": 100}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["amountFen"], 9000, "{order}");
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    // Through PaySvc, naming the element: the same override applies.
    let (status, via_svc) = call(
        api("pays/services/PaySvc/create"),
        json!({"subject": "Members' box", "amount": 0.29, "element": "pays.myDiscountPay"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{via_svc}");
    assert_eq!(
        via_svc["amountFen"], 26,
        "0.29 yuan less 10 % is 26 fen, rounded down"
    );

    // The extra rule before cancel.
    let (status, refused) = call(
        api("pays/myDiscountPay/cancel"),
        json!({"orderId": order_id}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(error_code(&refused), "BAD_ARGUMENTS");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only after 300s")
    );

    // Everything else is the official Type: pay URL, the simulator, the notify, query.
    let (status, pay_url) = call(
        api("pays/myDiscountPay/getPayUrl"),
        json!({"orderId": order_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pay_url}");
    assert!(pay_url["payUrl"].as_str().unwrap().starts_with("weixin://"));
    let response = http
        .post(format!("{}/sim/pay", handle.info("simulator").unwrap()))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .unwrap();
    let (status, paid) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(
        paid["order"]["total_fee"], 9000,
        "WeChat charged the discounted amount"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, order) = call(
            api("pays/services/PaySvc/query"),
            json!({"orderId": order_id}),
        )
        .await;
        if order["status"] == "success" {
            break;
        }
        assert!(Instant::now() < deadline, "{order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_app_shadowing_the_official_type_builds_its_instances_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    crate::util::copy_example_app(dir.path());
    // The app's own pays.WechatPayType: the official definition (as `jit show` prints it)
    // without `cancel` over HTTP, and a 50 % discount setting.
    let official: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("crates/jit-pays/elements/pays/WechatPayType/e.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut shadow = official.clone();
    shadow["title"] = json!("Our WeChat Pay");
    shadow["discountPercent"] = json!(50);
    shadow["functionList"] = Value::Array(
        official["functionList"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|function| function["name"] != "cancel")
            .cloned()
            .collect(),
    );
    let folder = dir.path().join("elements/pays/WechatPayType");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("e.json"),
        serde_json::to_string_pretty(&shadow).unwrap(),
    )
    .unwrap();

    // Its Rust side: a loader for the same fullName, stacked on the official one, which
    // stays reachable through load_with_parent.
    let host = jit::Host::new().loader("pays.WechatPayType", discount::DiscountPayLoader);
    let overrides = jit::Overrides {
        database_url: Some(format!("sqlite://{}", dir.path().join("shop.db").display())),
        ..test_overrides()
    };
    let handle = host.serve_in_process(dir.path(), overrides).await.unwrap();
    let app = handle.app();
    let chain = app.chain("pays.myWechatPay").unwrap();
    assert_eq!(
        chain.defs()[1].layer,
        "shop",
        "the app's definition is on the chain"
    );
    assert!(
        chain.defs()[1].overrides.is_some(),
        "and it overrides the official one"
    );

    let http = client();
    let api = |function: &str| {
        format!(
            "{}/api/demo/shop/pays/myWechatPay/{function}",
            handle.base_url()
        )
    };
    let response = http
        .post(api("create"))
        .bearer_auth(SHOP_TOKEN)
        .json(&json!({"subject": "Half price", "amount": 10}))
        .send()
        .await
        .unwrap();
    let (status, order) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["amountFen"], 500);

    let response = http
        .post(api("cancel"))
        .bearer_auth(SHOP_TOKEN)
        .json(&json!({"orderId": order["orderId"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "FUNCTION_NOT_FOUND");
    handle.shutdown().await.unwrap();
}
