//! The console in a real browser (headless Chromium, `test_support::browser`): a wrong token
//! is refused; the right one logs in; the merchant finds a paid order by its id, sees the
//! notify that paid it, and runs `check` through its confirmation; without the cookie the
//! console only shows its login page.
//!
//! With `JIT_WRITE_SCREENSHOTS=1` the order page's screenshot is written to
//! docs/console.png.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use test_support::browser::Browser;

use crate::util::{SHOP_TOKEN, ShopServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_find_the_order_see_its_notify_and_check_it() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let shop = ShopServer::start().await;
    let order_id = shop.create_order("12.34").await;
    shop.pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    let paid = shop
        .client
        .post(format!(
            "{}/sim/pay",
            shop.handle.info("simulator").unwrap()
        ))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shop.status(&order_id).await != "success" {
        assert!(
            std::time::Instant::now() < deadline,
            "the notify never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("{}/admin/demo/shop/", shop.handle.base_url());

    // No cookie: the console is its login page.
    browser.goto(&base).await;
    browser.wait_for_text("Log in to demo/shop").await;
    assert!(
        browser
            .current_url()
            .await
            .ends_with("/admin/demo/shop/login")
    );

    // A wrong token is refused, and no cookie is set.
    browser.fill("input[name=token]", "not-the-token").await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_text("That is not one of this app's API tokens.")
        .await;
    let cookies = browser.client().get_all_cookies().await.unwrap();
    assert!(cookies.is_empty(), "{cookies:?}");

    // The right one: the dashboard, with today's payment; the cookie is HttpOnly.
    browser.fill("input[name=token]", SHOP_TOKEN).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Dashboard").await;
    browser.wait_for_text("paid today").await;
    let cookies = browser.client().get_all_cookies().await.unwrap();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(cookies[0].name(), "jit_console");
    assert_eq!(cookies[0].http_only(), Some(true));
    assert_ne!(cookies[0].value(), SHOP_TOKEN);
    let script_sees: serde_json::Value = browser
        .client()
        .execute("return document.cookie;", vec![])
        .await
        .unwrap();
    assert_eq!(script_sees, json!(""), "scripts cannot read the session");

    // Find the order by its id, open it, see the notify that paid it.
    browser.click("header a[href$='/orders']").await;
    browser.fill("input[name=id]", &order_id).await;
    browser.click("form.search button[type=submit]").await;
    browser.wait_for_text("1 order(s)").await;
    browser
        .click(&format!("#orders a[href$='{order_id}']"))
        .await;
    browser.wait_for_text(&format!("Order {order_id}")).await;
    let notifies = browser.text_of("#notifies").await.unwrap_or_default();
    assert!(
        notifies.contains("payment") && notifies.contains("paid") && notifies.contains("yes"),
        "{notifies}"
    );

    // Run check, through its confirmation.
    browser.click("#action-check").await;
    browser.wait_for_text("Check this order with WeChat?").await;
    browser.click("#confirm").await;
    browser.wait_for_text("The check is done").await;
    assert_eq!(browser.text_of("#status").await.as_deref(), Some("success"));
    let order_page = browser.current_url().await;

    if std::env::var("JIT_WRITE_SCREENSHOTS").as_deref() == Ok("1") {
        let png = browser.screenshot_png().await;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.png");
        std::fs::write(&path, png).unwrap();
    }

    // Without the cookie the console is unusable: every page is the login page again.
    browser.client().delete_all_cookies().await.unwrap();
    browser.goto(&order_page).await;
    browser.wait_for_text("Log in to demo/shop").await;
    let text = browser.page_text().await;
    assert!(!text.contains(&order_id), "{text}");

    browser.close().await;
    shop.handle.shutdown().await.unwrap();
}
