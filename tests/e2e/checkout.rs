//! The payer's checkout page over HTTP (`/pay/{org}/{app}/{orderId}`): what it shows and
//! hides, its 404s, its security headers, the live status route, MWEB and JSAPI, and the
//! simulator's payer page it links to in demo mode.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{SHOP_APPID, SHOP_MCH_ID, SHOP_TOKEN, ShopServer, json_reply};

/// `{base}/pay/demo/shop/{order_id}`.
fn page_url(shop: &ShopServer, order_id: &str) -> String {
    format!("{}/pay/demo/shop/{order_id}", shop.handle.base_url())
}

async fn get(shop: &ShopServer, url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = shop.client.get(url).send().await.expect("the shop answers");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

async fn create(shop: &ShopServer, subject: &str, amount: Value) -> String {
    let order = shop
        .pay_svc("create", json!({"subject": subject, "amount": amount}))
        .await;
    order["orderId"].as_str().expect("an orderId").to_owned()
}

/// The nonce of a page's CSP header, checked to be the one its inline code carries.
fn nonce_of(headers: &reqwest::header::HeaderMap, body: &str) -> String {
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self';"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(!policy.contains("http"), "no other origin: {policy}");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in {policy}"))
        .to_owned();
    assert!(nonce.len() >= 32, "{nonce}");
    for tag in ["<script", "<style"] {
        for (index, _) in body.match_indices(tag) {
            let head = &body[index..index + body[index..].find('>').unwrap()];
            assert!(
                head.contains(&format!("nonce=\"{nonce}\"")),
                "inline code without the response's nonce: {head}"
            );
        }
    }
    nonce
}

async fn pay_in_simulator(shop: &ShopServer, order_id: &str) {
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
}

async fn wait_for_status(shop: &ShopServer, order_id: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.status(order_id).await != wanted {
        assert!(
            Instant::now() < deadline,
            "{order_id} never became {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_native_order_shows_its_qr_code_subject_amount_and_status_and_nothing_else() {
    let shop = ShopServer::start().await;
    let other = create(&shop, "Another customer's secret order", json!(77.77)).await;
    let order_id = create(&shop, "Green tea <500g> & cup", json!(12.3)).await;

    let (status, headers, body) = get(&shop, &page_url(&shop, &order_id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    nonce_of(&headers, &body);

    assert!(
        body.contains("Green tea &lt;500g&gt; &amp; cup"),
        "the subject, escaped: {body}"
    );
    assert!(body.contains("¥12.30"), "the amount in yuan: {body}");
    assert!(body.contains("Waiting for payment"), "{body}");
    assert!(body.contains("data-status=\"waiting\""), "{body}");
    assert!(body.contains("<svg"), "a QR code: {body}");
    assert!(body.contains("data-expires-at="), "a countdown: {body}");

    // The page made the prepay order as getPayUrl NATIVE does; getPayUrl now reuses it.
    let pay_url = shop
        .pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    let code_url = pay_url["payUrl"].as_str().unwrap();
    assert!(code_url.starts_with("weixin://"), "{pay_url}");
    // The code URL is in the QR code only, never in the text.
    assert!(!body.contains(code_url), "{body}");

    // Nothing else of the order, of the merchant, or of another order.
    for hidden in [
        "myWechatPay",
        "pays.",
        SHOP_APPID,
        SHOP_MCH_ID,
        SHOP_TOKEN,
        "prepay",
        other.as_str(),
        "Another customer",
        "77.77",
        "sqlite",
        "/api/",
    ] {
        assert!(!body.contains(hidden), "the page shows {hidden:?}: {body}");
    }

    // Demo mode: the link to the simulator's payer page of this order.
    let simulator = shop.handle.info("simulator").unwrap();
    let link = format!("{simulator}/sim/pay/{order_id}");
    assert!(body.contains(&format!("href=\"{link}\"")), "{body}");
    let (status, headers, sim_page) = get(&shop, &link).await;
    assert_eq!(status, StatusCode::OK, "{sim_page}");
    nonce_of(&headers, &sim_page);
    assert!(
        sim_page.contains("Green tea &lt;500g&gt; &amp; cup"),
        "{sim_page}"
    );
    assert!(sim_page.contains(">Pay</button>"), "{sim_page}");
    assert!(sim_page.contains("NOTPAY"), "{sim_page}");
    // The payer's page is the simulator's: the shop routes none of /sim/*.
    let (status, _, _) = get(
        &shop,
        &format!("{}/sim/pay/{order_id}", shop.handle.base_url()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, unknown) = get(&shop, &format!("{simulator}/sim/pay/D0000")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
}

#[tokio::test]
async fn unknown_malformed_and_foreign_ids_answer_the_same_404() {
    let shop = ShopServer::start().await;
    let order_id = create(&shop, "Real order", json!(1)).await;
    let base = shop.handle.base_url().to_owned();
    let unknown = format!("{base}/pay/demo/shop/D20990101000000123456");
    let cases = [
        unknown.clone(),
        format!("{base}/pay/demo/shop/has%20space"),
        format!("{base}/pay/demo/shop/{}", "x".repeat(33)),
        format!("{base}/pay/demo/shop/%FF%FE"),
        format!("{base}/pay/demo/shop/a$b"),
        // The right id under another app's path.
        format!("{base}/pay/demo/other/{order_id}"),
        format!("{base}/pay/other/shop/{order_id}"),
    ];
    let mut pages = Vec::new();
    for url in &cases {
        let (status, headers, body) = get(&shop, url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {body}");
        let nonce = nonce_of(&headers, &body);
        pages.push(body.replace(&nonce, "NONCE"));
    }
    assert!(pages[0].contains("Payment not found"), "{}", pages[0]);
    for (url, page) in cases.iter().zip(&pages) {
        assert_eq!(page, &pages[0], "{url} answers another 404");
    }

    // The status route answers alike.
    for url in &cases {
        let response = shop
            .client
            .get(format!("{url}/status"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{url}/status");
        assert_eq!(response.text().await.unwrap(), r#"{"error":"not found"}"#);
    }

    // Unknown and malformed take time of the same order: one indexed read apart.
    let median = |url: String| {
        let client = shop.client.clone();
        async move {
            let mut times = Vec::new();
            for _ in 0..15 {
                let started = Instant::now();
                client
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                times.push(started.elapsed());
            }
            times.sort();
            times[times.len() / 2]
        }
    };
    let unknown_time = median(unknown).await;
    let malformed_time = median(format!("{base}/pay/demo/shop/a$b")).await;
    assert!(
        unknown_time < (malformed_time * 10).max(Duration::from_millis(25)),
        "unknown {unknown_time:?} vs malformed {malformed_time:?}"
    );
}

#[tokio::test]
async fn the_status_route_answers_paid_as_soon_as_the_payment_is_committed() {
    let shop = ShopServer::start().await;
    let order_id = create(&shop, "Long poll", json!(0.01)).await;
    // The page creates the prepay order the simulator pays.
    let (status, _, _) = get(&shop, &page_url(&shop, &order_id)).await;
    assert_eq!(status, StatusCode::OK);

    let status_url = format!("{}/status", page_url(&shop, &order_id));
    let response = shop.client.get(&status_url).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "waiting"})
    );

    // Asked with what the page shows, it waits for a change.
    let client = shop.client.clone();
    let waiting_url = format!("{status_url}?after=waiting");
    let mut poll = tokio::spawn(async move {
        let answer = client.get(&waiting_url).send().await.unwrap();
        (Instant::now(), answer.json::<Value>().await.unwrap())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut poll)
            .await
            .is_err(),
        "answered while nothing changed"
    );

    pay_in_simulator(&shop, &order_id).await;
    let paid = Instant::now();
    let (answered, answer) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("answered after the payment")
        .unwrap();
    assert_eq!(answer, json!({"status": "paid"}));
    wait_for_status(&shop, &order_id, "success").await;
    // The notify is sent, verified and committed, and the commit wakes the waiting request:
    // well within a second on an idle machine, never the 10 s of an unwoken long poll.
    let took = answered.duration_since(paid);
    assert!(
        took < Duration::from_secs(3),
        "answered {took:?} after the payment"
    );

    // A final status answers at once, whatever the page thinks.
    let started = Instant::now();
    let answer: Value = shop
        .client
        .get(format!("{status_url}?after=paid"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({"status": "paid"}));
    assert!(started.elapsed() < Duration::from_secs(2));

    // The paid page: no QR code, no transaction id.
    let response = shop
        .client
        .post(shop.api("pays/myWechatPay/getOrder"))
        .bearer_auth(SHOP_TOKEN)
        .json(&json!({"orderId": order_id}))
        .send()
        .await
        .unwrap();
    let (_, order) = json_reply(response).await;
    let transaction_id = order["transactionId"]
        .as_str()
        .unwrap_or_else(|| panic!("paid: {order}"))
        .to_owned();
    let (status, _, body) = get(&shop, &page_url(&shop, &order_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(">Paid<"), "{body}");
    assert!(!body.contains("<svg"), "{body}");
    assert!(
        !body.contains("/sim/pay/"),
        "no payer link once paid: {body}"
    );
    assert!(!body.contains(&transaction_id), "{body}");
}

#[tokio::test]
async fn closed_and_expired_orders_say_so() {
    let shop = ShopServer::start().await;
    let closed = create(&shop, "Cancelled", json!(2)).await;
    let response = shop
        .client
        .post(shop.api("pays/myWechatPay/cancel"))
        .bearer_auth(SHOP_TOKEN)
        .json(&json!({"orderId": closed}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _, body) = get(&shop, &page_url(&shop, &closed)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("data-status=\"closed\""), "{body}");
    assert!(body.contains(">Closed<"), "{body}");
    assert!(!body.contains("<svg"), "{body}");

    // An order past its expiry is expired for the payer before the reconciler closes it.
    let expired = create(&shop, "Too late", json!(3)).await;
    let store = shop
        .handle
        .app()
        .service::<jit_pays::PayStore>()
        .expect("the store");
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    jit_pays::db::entity::pay_log::Entity::update_many()
        .col_expr(
            jit_pays::db::entity::pay_log::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .filter(jit_pays::db::entity::pay_log::Column::OrderId.eq(expired.as_str()))
        .exec(store.connection())
        .await
        .unwrap();
    let (status, _, body) = get(&shop, &page_url(&shop, &expired)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(">Expired<"), "{body}");
    assert!(!body.contains("<svg"), "{body}");
    let answer: Value = shop
        .client
        .get(format!(
            "{}/status?after=waiting",
            page_url(&shop, &expired)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({"status": "expired"}));
}

#[tokio::test]
async fn mweb_redirects_and_jsapi_shows_the_bridge_parameters() {
    let shop = ShopServer::start().await;
    let mweb = create(&shop, "H5 order", json!(5)).await;
    let pay_url = shop
        .pay_svc(
            "getPayUrl",
            json!({"orderId": mweb, "payType": "MWEB", "clientIp": "127.0.0.1"}),
        )
        .await;
    let mweb_url = pay_url["payUrl"].as_str().unwrap().to_owned();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(page_url(&shop, &mweb))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], mweb_url.as_str());

    let jsapi = create(&shop, "In WeChat", json!(6)).await;
    let pay_url = shop
        .pay_svc(
            "getPayUrl",
            json!({"orderId": jsapi, "payType": "JSAPI", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}),
        )
        .await;
    let (status, headers, body) = get(&shop, &page_url(&shop, &jsapi)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    nonce_of(&headers, &body);
    let start = body
        .find("<pre id=\"jsapi-params\">")
        .expect("the parameters")
        + 23;
    let end = start + body[start..].find("</pre>").unwrap();
    let params: Value =
        serde_json::from_str(&body[start..end].replace("&quot;", "\"")).expect("JSON");
    for field in [
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    ] {
        assert!(params[field].is_string(), "{field} in {params}");
    }
    assert_eq!(params["appId"], SHOP_APPID);
    assert_eq!(
        params["package"],
        pay_url["payUrl"].as_str().unwrap(),
        "prepay_id=…"
    );
    assert!(
        !body.contains("oUpF8uMuAJO"),
        "no openid on the page: {body}"
    );
}
