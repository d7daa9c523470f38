//! The checkout page in a real browser (headless Chromium through test-support's
//! harness), served by the real `jit` binary: the QR code on the screen is the order's
//! `code_url`, and paying it with `jit sim pay` turns the page to "Paid" without a reload.
//!
//! `JIT_WRITE_SCREENSHOTS=1` also writes the page's screenshot to docs/checkout.png.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::Browser;

use crate::binary::{Served, jit, text};
use crate::util::{SHOP_TOKEN, client, copy_example_app, json_reply};

/// Every QR code found in a PNG screenshot, decoded.
fn qr_codes_in(png: &[u8]) -> Vec<String> {
    let image = image::load_from_memory(png)
        .expect("the screenshot is an image")
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    prepared
        .detect_grids()
        .into_iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, content)| content))
        .collect()
}

async fn call(http: &reqwest::Client, base: &str, path: &str, arguments: Value) -> Value {
    let response = http
        .post(format!("{base}/api/demo/shop/{path}"))
        .bearer_auth(SHOP_TOKEN)
        .json(&arguments)
        .send()
        .await
        .expect("the shop answers");
    let (status, body) = json_reply(response).await;
    assert!(status.is_success(), "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_order_is_scanned_from_the_screen_and_turns_paid_without_a_reload() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = tempfile::tempdir().expect("temp dir");
    copy_example_app(app.path());
    let http = client();
    let mut served = Served::start(app.path(), &[]);
    served.ready(&http).await;

    let order = call(
        &http,
        &served.base,
        "pays/services/PaySvc/create",
        json!({"subject": "Jasmine tea, 250 g", "amount": 38.5}),
    )
    .await;
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();

    // A phone-sized window, as a payer would see it.
    browser
        .client()
        .set_window_size(480, 760)
        .await
        .expect("resize the window");
    browser
        .goto(&format!("{}/pay/demo/shop/{order_id}", served.base))
        .await;
    browser.wait_for("#qr svg").await;
    browser.wait_for_text("Waiting for payment").await;
    let page = browser.page_text().await;
    assert!(page.contains("Jasmine tea, 250 g"), "{page}");
    assert!(page.contains("¥38.50"), "{page}");
    assert!(page.contains("Pay in the simulator"), "demo mode: {page}");

    // The code on the screen is the order's code_url (getPayUrl reuses the page's prepay).
    let png = browser.screenshot_png().await;
    let pay_url = call(
        &http,
        &served.base,
        "pays/services/PaySvc/getPayUrl",
        json!({"orderId": order_id}),
    )
    .await;
    let code_url = pay_url["payUrl"].as_str().expect("a payUrl").to_owned();
    assert!(code_url.starts_with("weixin://"), "{pay_url}");
    assert_eq!(
        qr_codes_in(&png),
        vec![code_url],
        "the QR code on the screen"
    );
    if std::env::var_os("JIT_WRITE_SCREENSHOTS").is_some_and(|value| value == "1") {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/checkout.png");
        std::fs::write(&target, &png).expect("write docs/checkout.png");
    }

    // A mark in the page's window: a reload would lose it.
    browser
        .client()
        .execute("window.checkoutMark = 'same page'; return true;", vec![])
        .await
        .expect("mark the page");

    // The payer pays, with the real binary, as the README says.
    let output = jit(&["sim", "pay", &order_id], app.path())
        .output()
        .expect("jit sim pay runs");
    assert!(output.status.success(), "{}", text(&output));
    let paid_at = Instant::now();

    browser
        .wait_for_text_within("Paid", Duration::from_secs(10))
        .await;
    let took = paid_at.elapsed();
    assert_eq!(
        browser.text_of("#status").await.as_deref(),
        Some("Paid"),
        "the status badge"
    );
    let mark = browser
        .client()
        .execute("return window.checkoutMark || null;", vec![])
        .await
        .expect("read the mark");
    assert_eq!(mark, json!("same page"), "the page was not reloaded");
    // The notify's commit wakes the page's waiting status request: well within a second on
    // an idle machine; the bound leaves room for a loaded CI.
    assert!(took < Duration::from_secs(3), "took {took:?} to show Paid");
    assert!(
        !browser.is_visible("#qr svg").await,
        "the QR code is hidden once paid"
    );

    // Demo mode from the browser: the page's link leads to the simulator's payer page,
    // whose "Pay" button pays the order.
    let order = call(
        &http,
        &served.base,
        "pays/services/PaySvc/create",
        json!({"subject": "Oolong tea", "amount": 12}),
    )
    .await;
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    let checkout = format!("{}/pay/demo/shop/{order_id}", served.base);
    browser.goto(&checkout).await;
    browser.wait_for("#qr svg").await;
    let link = browser
        .client()
        .execute(
            "return document.getElementById('simulator-pay').href;",
            vec![],
        )
        .await
        .expect("the simulator link");
    let link = link.as_str().expect("a URL").to_owned();
    assert!(link.ends_with(&format!("/sim/pay/{order_id}")), "{link}");
    browser.goto(&link).await;
    browser.wait_for_text("Oolong tea").await;
    browser.click("button[data-out-trade-no]").await;
    browser
        .wait_for_text("Paid. The shop is being notified.")
        .await;
    browser.goto(&checkout).await;
    browser.wait_for_text("Paid").await;

    browser.close().await;
    served.stop().await;
}
