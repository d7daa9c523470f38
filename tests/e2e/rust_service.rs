//! A service element whose code is Rust (`jit::Host::service`), and user code handed the
//! built app (`jit::Host::on_ready`): examples/custom_host's checkout service, on that
//! example's app, over real HTTP.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::custom_type::{checkout, discount, shop};
use crate::util::{SHOP_TOKEN, client, copy_dir, error_code, json_reply, test_overrides};

fn custom_host_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/custom_host/app"),
        dir.path(),
    );
    dir
}

fn overrides(dir: &Path) -> jit::Overrides {
    jit::Overrides {
        database_url: Some(format!("sqlite://{}", dir.join("shop.db").display())),
        ..test_overrides()
    }
}

fn discount_host() -> jit::Host {
    jit::Host::new().loader(discount::MY_WECHAT_PAY_TYPE, discount::DiscountPayLoader)
}

#[tokio::test]
async fn a_rust_service_calls_the_pay_element_with_the_callers_context() {
    let dir = custom_host_app();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Value>();
    let ready_tx = std::sync::Mutex::new(Some(ready_tx));
    let host = shop::host().on_ready(move |app| {
        let sender = ready_tx.lock().unwrap().take();
        async move {
            // User code holding the app calls an element as hosted code does.
            let id = app
                .current()
                .call(
                    "pays.myDiscountPay",
                    "generateOrderId",
                    json!({}),
                    &jit_runtime::CallContext::principal("job"),
                )
                .await
                .expect("generateOrderId from on_ready");
            if let Some(sender) = sender {
                let _ = sender.send(id);
            }
        }
    });
    let handle = host
        .serve_in_process(dir.path(), overrides(dir.path()))
        .await
        .unwrap();
    let from_ready = tokio::time::timeout(std::time::Duration::from_secs(10), ready_rx)
        .await
        .expect("on_ready ran")
        .unwrap();
    assert!(
        from_ready.as_str().is_some_and(|id| id.starts_with('D')),
        "{from_ready}"
    );

    let http = client();
    let url = format!(
        "{}/api/demo/discountshop/shop/services/CheckoutSvc/checkout",
        handle.base_url()
    );
    let (status, answer) = json_reply(
        http.post(&url)
            .bearer_auth(SHOP_TOKEN)
            .json(&json!({"cartId": "c-17", "amount": 100}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The service went through the pay element's own Type: 10 % off.
    assert_eq!(answer["amountFen"], 9000, "{answer}");
    assert_eq!(answer["cartId"], "c-17");
    assert!(
        answer["payUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with("weixin://")),
        "{answer}"
    );
    // The order exists on the pay element.
    let (status, order) = json_reply(
        http.post(format!(
            "{}/api/demo/discountshop/pays/myDiscountPay/getOrder",
            handle.base_url()
        ))
        .bearer_auth(SHOP_TOKEN)
        .json(&json!({"orderId": answer["orderId"]}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["status"], "wait", "{order}");

    // The declaration is enforced before the Rust code runs: login, then arguments.
    let (status, refused) = json_reply(
        http.post(&url)
            .json(&json!({"cartId": "c-18", "amount": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    let (status, refused) = json_reply(
        http.post(&url)
            .bearer_auth(SHOP_TOKEN)
            .json(&json!({"cartId": "c-19", "amount": "a lot"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(error_code(&refused), "BAD_ARGUMENTS");

    // An error of the element the service called reaches the caller with its own code.
    let (status, refused) = json_reply(
        http.post(&url)
            .bearer_auth(SHOP_TOKEN)
            .json(&json!({"cartId": "c-20", "amount": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_service_the_app_does_not_declare_or_that_disagrees_with_its_declaration_is_refused() {
    let dir = custom_host_app();
    let start = |host: jit::Host| {
        let dir = dir.path().to_path_buf();
        async move {
            host.serve_in_process(&dir, overrides(&dir))
                .await
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        }
    };

    // A Rust service for an element the app does not have.
    let error =
        start(shop::host().service("shop.services.CheckoutSvcs", checkout::service())).await;
    assert!(
        error.contains("`shop.services.CheckoutSvcs`")
            && error.contains("did you mean `shop.services.CheckoutSvc`"),
        "{error}"
    );

    // Declared but not implemented, and implemented but not declared: both named.
    let lopsided = jit_services::ServiceFunctions::new()
        .function("refundCart", |_, _, _| async { Ok(json!(null)) });
    let error = start(discount_host().service(checkout::CHECKOUT_SVC, lopsided)).await;
    assert!(
        error.contains("CheckoutSvc/e.json: functionList:")
            && error.contains(
                "declares function `checkout`, which its Rust service does not implement"
            )
            && error.contains("implements `refundCart`, which its functionList does not declare"),
        "{error}"
    );

    // Without the Rust code, the service element has no code at all.
    let error = start(discount_host()).await;
    assert!(
        error.contains("shop/services/CheckoutSvc/e.json"),
        "{error}"
    );
}
