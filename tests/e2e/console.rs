//! The merchant's console over real HTTP, on the example shop (`jit serve` in-process, its
//! simulator as the gateway, SQLite): the login and its cookie, what happens without the
//! cookie or with a wrong CSRF token, wrong tokens refused and then limited, the search
//! filters, the order page (pay log, WeChat record, every notify with its outcome, refunds,
//! events), the dashboard, and the actions check, cancel and refund through the elements.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::util::{SHOP_APPID, SHOP_MCH_ID, SHOP_TOKEN, ShopServer};

/// A client that shows redirects instead of following them and keeps no cookies.
fn browserless() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The shop's console, and the session cookie once logged in.
struct Console {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Console {
    fn of(shop: &ShopServer) -> Self {
        Console {
            base: format!("{}/admin/demo/shop/", shop.handle.base_url()),
            http: browserless(),
            cookie: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let mut request = self.http.get(self.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, response.text().await.unwrap(), headers)
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, response.text().await.unwrap(), headers)
    }

    /// Logs in with `token`; returns the `Set-Cookie` header.
    async fn login(&mut self, token: &str) -> String {
        let (status, body, headers) = self.post("login", &[("token", token)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(headers[LOCATION], "/admin/demo/shop/");
        let set = headers[SET_COOKIE].to_str().unwrap().to_owned();
        self.cookie = Some(set.split(';').next().unwrap().to_owned());
        set
    }

    /// The CSRF token the page at `path` carries in its forms.
    async fn csrf(&self, path: &str) -> String {
        let (status, body, _) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        csrf_of(&body)
    }
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF field: {page}"))
        + marker.len();
    page[start..start + 64].to_owned()
}

/// The text of a table cell `id`'s row, roughly: the page from `id` on.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}: {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</table>").unwrap_or(rest.len())]
}

/// A payment notify for `order_id` with a made-up signature, as a forger sends it.
fn forged_notify(order_id: &str, total_fee: i64) -> String {
    format!(
        "<xml><appid>{SHOP_APPID}</appid><mch_id>{SHOP_MCH_ID}</mch_id>\
         <nonce_str>abc</nonce_str><result_code>SUCCESS</result_code>\
         <return_code>SUCCESS</return_code><out_trade_no>{order_id}</out_trade_no>\
         <total_fee>{total_fee}</total_fee><trade_type>NATIVE</trade_type>\
         <transaction_id>4200000000000000000000000001</transaction_id>\
         <time_end>20261201101010</time_end><sign>0123456789ABCDEF0123456789ABCDEF</sign></xml>"
    )
}

/// Places `order_id` at the simulator and pays it there (the simulator notifies the shop).
async fn pay_at_simulator(shop: &ShopServer, order_id: &str) {
    shop.pay_svc("getPayUrl", json!({"orderId": order_id}))
        .await;
    let response = shop
        .client
        .post(format!(
            "{}/sim/pay",
            shop.handle.info("simulator").unwrap()
        ))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        response.text().await
    );
}

async fn wait_status(shop: &ShopServer, order_id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.status(order_id).await != status {
        assert!(
            Instant::now() < deadline,
            "{order_id} never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the order page shows `text` (notify log rows arrive off the request path).
async fn wait_page(console: &Console, path: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body, _) = console.get(path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body.contains(text) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {text}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_redirect_to_the_login_and_actions_answer_401() {
    let shop = ShopServer::start().await;
    let order_id = shop.create_order("1.00").await;
    let console = Console::of(&shop);
    for path in [
        "".to_owned(),
        "orders".to_owned(),
        format!("orders/{order_id}"),
        format!("orders/{order_id}/confirm/check"),
    ] {
        let (status, _, headers) = console.get(&path).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "GET {path}");
        assert_eq!(headers[LOCATION], "/admin/demo/shop/login", "GET {path}");
    }
    for path in [
        format!("orders/{order_id}/check"),
        format!("orders/{order_id}/cancel"),
        format!("orders/{order_id}/refund"),
        "logout".to_owned(),
    ] {
        let (status, _, _) = console.post(&path, &[("csrf", "x")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "POST {path}");
    }
    // A made-up cookie is no session.
    let forged = Console {
        cookie: Some(format!("jit_console={}", "ab".repeat(32))),
        ..Console::of(&shop)
    };
    assert_eq!(forged.get("").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        forged
            .post(&format!("orders/{order_id}/cancel"), &[("csrf", "x")])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(shop.status(&order_id).await, "wait");

    // The login page is a page like the others: strict CSP, no token in it.
    let (status, body, headers) = console.get("login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"token\""), "{body}");
    let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    // Another app's console does not exist here.
    let (status, _, _) = Console {
        base: format!("{}/admin/demo/other/", shop.handle.base_url()),
        ..Console::of(&shop)
    }
    .get("login")
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    shop.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_sets_a_strict_session_cookie_never_the_token_and_logout_ends_it() {
    let shop = ShopServer::start().await;
    let mut console = Console::of(&shop);
    let set_cookie = console.login(SHOP_TOKEN).await;
    let parts: Vec<&str> = set_cookie.split("; ").collect();
    let value = parts[0].strip_prefix("jit_console=").unwrap();
    assert_eq!(value.len(), 64, "{set_cookie}");
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!set_cookie.contains(SHOP_TOKEN), "{set_cookie}");
    assert!(parts.contains(&"HttpOnly"), "{set_cookie}");
    assert!(parts.contains(&"SameSite=Strict"), "{set_cookie}");
    assert!(parts.contains(&"Path=/admin/demo/shop/"), "{set_cookie}");
    // Plain HTTP here: `Secure` would keep the browser from sending it back.
    assert!(!parts.contains(&"Secure"), "{set_cookie}");

    let (status, body, _) = console.get("").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Dashboard") && !body.contains(SHOP_TOKEN));

    // A second login is a second session: logging one out leaves the other.
    let mut other = Console::of(&shop);
    other.login(SHOP_TOKEN).await;
    assert_ne!(other.cookie, console.cookie);

    // Logout needs the session's CSRF token too.
    let (status, _, _) = console.post("logout", &[("csrf", &"0".repeat(64))]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = console.csrf("").await;
    assert_ne!(
        csrf,
        csrf_of(&other.get("").await.1),
        "one token per session"
    );
    let (status, _, headers) = console.post("logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, _, headers) = console.get("").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the old cookie is no session"
    );
    assert_eq!(headers[LOCATION], "/admin/demo/shop/login");
    assert_eq!(other.get("").await.0, StatusCode::OK);
    shop.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_refused_then_limited_per_peer() {
    let shop = ShopServer::start().await;
    let console = Console::of(&shop);
    for wrong in ["", "demo-toke", "demo-token-", "Bearer demo-token"] {
        let (status, body, headers) = console.post("login", &[("token", wrong)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}: {body}");
        assert!(headers.get(SET_COOKIE).is_none(), "{wrong:?}");
        assert!(body.contains("not one of this app"), "{body}");
        if !wrong.is_empty() {
            assert!(
                !body.contains(wrong),
                "the wrong token is not echoed: {body}"
            );
        }
    }
    // The fifth wrong token in a minute, then even the right one waits.
    let (status, _, _) = console.post("login", &[("token", "nope")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body, headers) = console.post("login", &[("token", SHOP_TOKEN)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.get(SET_COOKIE).is_none());
    assert!(headers.contains_key(reqwest::header::RETRY_AFTER));
    shop.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_order_page_dashboard_and_actions() {
    let shop = ShopServer::start().await;
    let mut console = Console::of(&shop);
    console.login(SHOP_TOKEN).await;

    let paid = shop.create_order("1.00").await;
    let forged_at = shop.create_order("2.50").await;
    let to_cancel = shop.create_order("10.00").await;
    pay_at_simulator(&shop, &paid).await;
    wait_status(&shop, &paid, "success").await;
    let (status, reply) = shop.post_notify(forged_notify(&forged_at, 250)).await;
    assert!(reply.contains("FAIL"), "{status} {reply}");

    // Search: id prefix, status, amount range, date range, a wrong field named.
    let (status, body, _) = console.get(&format!("orders?id={paid}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&paid) && !body.contains(&forged_at), "{body}");
    let (_, body, _) = console.get("orders?status=success").await;
    assert!(body.contains(&paid) && !body.contains(&to_cancel), "{body}");
    let (_, body, _) = console.get("orders?min=2&max=5").await;
    assert!(body.contains(&forged_at), "{body}");
    assert!(
        !body.contains(&paid) && !body.contains(&to_cancel),
        "{body}"
    );
    let today = wechatpay_v2::time::beijing_date(chrono::Utc::now()).format("%Y-%m-%d");
    let (_, body, _) = console
        .get(&format!("orders?from={today}&to={today}"))
        .await;
    assert!(body.contains("3 order(s)"), "{body}");
    let tomorrow = (wechatpay_v2::time::beijing_date(chrono::Utc::now()) + chrono::Days::new(1))
        .format("%Y-%m-%d");
    let (_, body, _) = console.get(&format!("orders?from={tomorrow}")).await;
    assert!(body.contains("0 order(s)"), "{body}");
    let (status, body, _) = console.get("orders?min=1.234").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("min: `1.234`"), "{body}");

    // The paid order: its row, its record, its notify (verified), its event.
    let page = wait_page(&console, &format!("orders/{paid}"), "paid</span>").await;
    assert!(section(&page, "status").contains("success"), "{page}");
    let record = section(&page, "wechat-record");
    assert!(
        record.contains("SUCCESS") && record.contains("NATIVE"),
        "{record}"
    );
    let notifies = section(&page, "notifies");
    assert!(
        notifies.contains("payment") && notifies.contains("yes"),
        "{notifies}"
    );
    assert!(section(&page, "events").contains("order.paid"), "{page}");
    assert!(page.contains("id=\"action-refund\""), "{page}");
    assert!(
        !page.contains("id=\"action-cancel\""),
        "a paid order cannot be cancelled"
    );

    // The forged notify: refused, and why.
    let page = wait_page(&console, &format!("orders/{forged_at}"), "bad_signature").await;
    let notifies = section(&page, "notifies");
    assert!(
        notifies.contains("refused") && notifies.contains("no"),
        "{notifies}"
    );
    assert!(notifies.contains("signature"), "{notifies}");
    assert!(!page.contains(crate::util::SHOP_KEY));

    // The dashboard: today's paid count and sum, waiting orders, refusals by reason.
    let (_, dashboard, _) = console.get("").await;
    assert!(
        section(&dashboard, "paid-today").contains(">1<"),
        "{dashboard}"
    );
    assert!(
        section(&dashboard, "paid-sum").contains("¥1.00"),
        "{dashboard}"
    );
    assert!(
        section(&dashboard, "waiting").contains(">2<"),
        "{dashboard}"
    );
    assert!(section(&dashboard, "stuck").contains(">0<"), "{dashboard}");
    assert!(
        section(&dashboard, "refusals").contains("bad_signature"),
        "{dashboard}"
    );

    // Actions: the confirmation page's form, a wrong CSRF token refused, then the action.
    let confirm = format!("orders/{to_cancel}/confirm/cancel");
    let (status, page, _) = console.get(&confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!(
        "action=\"/admin/demo/shop/orders/{to_cancel}/cancel\""
    )));
    let csrf = csrf_of(&page);
    let cancel = format!("orders/{to_cancel}/cancel");
    let (status, _, _) = console.post(&cancel, &[("csrf", &"f".repeat(64))]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = console.post(&cancel, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token is a wrong token");
    assert_eq!(shop.status(&to_cancel).await, "wait");
    let (status, body, headers) = console.post(&cancel, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        headers[LOCATION],
        format!("/admin/demo/shop/orders/{to_cancel}?done=cancel")
    );
    assert_eq!(shop.status(&to_cancel).await, "close");
    let (_, page, _) = console
        .get(&format!("orders/{to_cancel}?done=cancel"))
        .await;
    assert!(page.contains("id=\"done\""), "{page}");

    // Check: paid at WeChat, its notify lost; the console's check finds the payment.
    shop.pay_svc("getPayUrl", json!({"orderId": forged_at}))
        .await;
    let sim = shop.handle.info("simulator").unwrap().to_owned();
    let fault = shop
        .client
        .post(format!("{sim}/sim/faults"))
        .json(&json!({"endpoint": "pay_notify", "fault": {"kind": "drop_notify"}}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success(), "{:?}", fault.text().await);
    let response = shop
        .client
        .post(format!("{sim}/sim/pay"))
        .json(&json!({"out_trade_no": forged_at}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(shop.status(&forged_at).await, "wait");
    let (status, body, _) = console
        .post(&format!("orders/{forged_at}/check"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(shop.status(&forged_at).await, "success");

    // Refund: more than was paid is the element's refusal, shown; then a part of it.
    let refund = format!("orders/{paid}/refund");
    let (status, page, _) = console
        .post(&refund, &[("csrf", &csrf), ("amount", "5.00")])
        .await;
    assert!(status.is_client_error(), "{status}: {page}");
    assert!(page.contains("The refund was refused"), "{page}");
    let (status, body, _) = console
        .post(
            &refund,
            &[
                ("csrf", &csrf),
                ("amount", "0.40"),
                ("reason", "broken lid"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let page = wait_page(&console, &format!("orders/{paid}"), "broken lid").await;
    assert!(section(&page, "refunds").contains("0.40"), "{page}");
    shop.handle.shutdown().await.unwrap();
}
