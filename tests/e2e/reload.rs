//! Hot reload through the real `jit serve` binary, on a copy of the example shop: a dropped-in
//! WeChat Pay instance (a new merchant) goes live without a restart; a broken e.json is
//! refused with the file and JSON path in the log while the old app keeps serving; fixing it
//! goes live; `jit reload` and SIGHUP each reload; app.toml outside `[env]` needs a restart;
//! a request in flight during a swap finishes on the app it started on. And `cacheLevel: 1`
//! through the HTTP server: one instance per request.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jit::Host;
use jit_runtime::{CallContext, CallError, Element, ElementDef, ElementError, LoadContext, Loader};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::binary::{PATIENCE, Served, jit, text};
use crate::util::{SHOP_TOKEN, TempApp, client, example_app, json_reply, test_overrides};

/// A second merchant's WeChat Pay instance, as a user drops it in.
const SECOND_PAY: &str = r#"{
  "type": "pays.WechatPayType",
  "title": "Second till",
  "frontBundleEntry": "./secondPay.json",
  "backendBundleEntry": "."
}"#;

const SECOND_PAY_CONFIG: &str = r#"{
  "config": {
    "appId": "wx0123456789abcdef",
    "mchId": "10000200",
    "apiKey": "0123456789abcdefghijklmnopqrstuv"
  }
}"#;

fn write(app: &Path, relative: &str, content: &str) {
    let path = app.join(relative);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
    std::fs::write(path, content).expect("write");
}

/// POSTs `body` to `{base}/api/demo/shop/{path}` with the shop's token.
async fn call(http: &reqwest::Client, base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = http
        .post(format!("{base}/api/demo/shop/{path}"))
        .bearer_auth(SHOP_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the shop answers");
    json_reply(response).await
}

/// `jit_reloads_total` by outcome, from `/metrics`.
async fn reloads(http: &reqwest::Client, base: &str) -> BTreeMap<String, u64> {
    let page = http
        .get(format!("{base}/metrics"))
        .bearer_auth(SHOP_TOKEN)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("a body");
    page.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("jit_reloads_total{outcome=\"")?;
            let (outcome, rest) = rest.split_once("\"}")?;
            Some((outcome.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// Polls until `outcome` was counted once more than `before` says; panics with the log
/// after the deadline.
async fn until_counted(
    http: &reqwest::Client,
    served: &Served,
    before: &BTreeMap<String, u64>,
    outcome: &str,
) -> BTreeMap<String, u64> {
    let wanted = before.get(outcome).copied().unwrap_or(0) + 1;
    let started = Instant::now();
    loop {
        let now = reloads(http, &served.base).await;
        if now.get(outcome).copied().unwrap_or(0) >= wanted {
            return now;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no `{outcome}` reload counted ({now:?}):\n{}",
            served.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an order on `element` (a path like `pays/secondPay`) and asks for its pay URL.
async fn create_and_pay_url(http: &reqwest::Client, base: &str, element: &str) -> String {
    let (status, order) = call(
        http,
        base,
        &format!("{element}/create"),
        json!({"subject": "Tea", "amount": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{element}/create: {order}");
    let order_id = order["orderId"].as_str().expect("an orderId").to_owned();
    let (status, pay) = call(
        http,
        base,
        &format!("{element}/getPayUrl"),
        json!({"orderId": order_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{element}/getPayUrl: {pay}");
    let url = pay["payUrl"].as_str().expect("a payUrl").to_owned();
    assert!(url.starts_with("weixin://wxpay/bizpayurl?pr="), "{pay}");
    order_id
}

#[tokio::test]
async fn dropped_in_folders_go_live_and_broken_ones_are_refused_without_a_restart() {
    let app = example_app();
    let dir = app.path();
    let mut served = Served::start(dir, &[]);
    let http = client();
    served.ready(&http).await;
    let base = served.base.clone();
    let counted = reloads(&http, &base).await;

    // (a) A new instance with a new merchant: its config file first, then its e.json.
    write(
        dir,
        "elements/pays/secondPay/secondPay.json",
        SECOND_PAY_CONFIG,
    );
    write(dir, "elements/pays/secondPay/e.json", SECOND_PAY);
    let counted = until_counted(&http, &served, &counted, "applied").await;
    // The simulator learned the merchant: the pay URL comes from a signed unifiedorder.
    let order_id = create_and_pay_url(&http, &base, "pays/secondPay").await;
    // Paid, its notify lands: PaySvc, kept from the first generation, routes it to the new
    // element through the generation current now (and answers for it).
    let paid = jit(&["sim", "pay", &order_id], dir)
        .output()
        .expect("jit sim pay runs");
    assert!(paid.status.success(), "{}", text(&paid));
    let started = Instant::now();
    loop {
        let (status, order) = call(
            &http,
            &base,
            "pays/services/PaySvc/query",
            json!({"orderId": order_id}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{order}");
        // The notify is signed with the new merchant's key: only the new element
        // verifies it.
        if order["status"] == "success" {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the notify never landed: {order}\n{}",
            served.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = served.logs();
    assert!(logs.contains("reload: the new app is live"), "{logs}");
    assert!(logs.contains("pays.secondPay"), "{logs}");
    assert!(logs.contains("merchant 10000200 added"), "{logs}");

    // (b) Invalid JSON: refused, named by file; the old app keeps serving.
    write(
        dir,
        "elements/pays/secondPay/e.json",
        "{ \"type\": \"pays.WechatPayType\",",
    );
    let counted = until_counted(&http, &served, &counted, "refused").await;
    let logs = served.logs();
    assert!(logs.contains("reload refused"), "{logs}");
    assert!(logs.contains("pays/secondPay/e.json: "), "{logs}");
    create_and_pay_url(&http, &base, "pays/secondPay").await;
    create_and_pay_url(&http, &base, "pays/myWechatPay").await;

    // A bad value of a known key: the log names the file and the JSON path.
    write(
        dir,
        "elements/pays/secondPay/e.json",
        &SECOND_PAY.replace("\"title\"", "\"cacheLevel\": \"often\",\n  \"title\""),
    );
    let counted = until_counted(&http, &served, &counted, "refused").await;
    let logs = served.logs();
    assert!(
        logs.contains("pays/secondPay/e.json: cacheLevel: cacheLevel must be 0"),
        "{logs}"
    );
    create_and_pay_url(&http, &base, "pays/secondPay").await;

    // (c) Fixed: it goes live.
    write(
        dir,
        "elements/pays/secondPay/e.json",
        &SECOND_PAY.replace("Second till", "Second till, fixed"),
    );
    let counted = until_counted(&http, &served, &counted, "applied").await;
    create_and_pay_url(&http, &base, "pays/secondPay").await;

    // (d) `jit reload` and SIGHUP: each one reload (nothing changed since).
    let asked = jit(&["reload"], dir).output().expect("jit reload runs");
    assert!(asked.status.success(), "{}", text(&asked));
    assert!(
        text(&asked).contains("asked `jit serve`"),
        "{}",
        text(&asked)
    );
    let counted = until_counted(&http, &served, &counted, "unchanged").await;
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".jit/serve.json")).expect("the server record"),
    )
    .expect("JSON");
    assert_eq!(record["url"], base);
    let pid = record["pid"].as_u64().expect("a pid").to_string();
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(hangup.success());
    let counted = until_counted(&http, &served, &counted, "unchanged").await;
    assert!(served.logs().contains("SIGHUP received"));

    // app.toml outside [env]: not applied, a restart is needed; the app keeps serving.
    let app_toml = std::fs::read_to_string(dir.join("app.toml")).expect("app.toml");
    std::fs::write(
        dir.join("app.toml"),
        format!("{app_toml}\n[reconciler]\nscan_interval_ms = 6000\n"),
    )
    .expect("edit app.toml");
    let counted = until_counted(&http, &served, &counted, "restart_required").await;
    assert!(served.logs().contains("restart `jit serve` to apply it"));
    std::fs::write(dir.join("app.toml"), &app_toml).expect("restore app.toml");
    let counted = until_counted(&http, &served, &counted, "unchanged").await;

    // (e) A request in flight during a swap finishes on the app it started on: its head
    // and half its body are sent, the element is removed and the removal goes live, then
    // the rest of the body is sent.
    let body = json!({"subject": "Slow tea", "amount": 2}).to_string();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let address = base.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/demo/shop/pays/secondPay/create HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {SHOP_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{first_half}",
        body.len()
    );
    slow.write_all(head.as_bytes())
        .await
        .expect("send the head");
    slow.flush().await.expect("flush");
    // Let the server resolve the route (and so pin the generation) before the swap.
    let resolved = Instant::now();
    while resolved.elapsed() < Duration::from_millis(300) {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_dir_all(dir.join("elements/pays/secondPay")).expect("remove the element");
    until_counted(&http, &served, &counted, "applied").await;
    let (status, gone) = call(
        &http,
        &base,
        "pays/secondPay/create",
        json!({"subject": "Tea", "amount": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    slow.write_all(second_half.as_bytes())
        .await
        .expect("send the rest");
    let mut answer = String::new();
    slow.read_to_string(&mut answer)
        .await
        .expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"orderId\""), "{answer}");

    served.stop_cleanly().await;
    // Stopped: the record is gone, and `jit reload` says no server runs.
    let asked = jit(&["reload"], dir).output().expect("jit reload runs");
    assert!(!asked.status.success());
    assert!(
        text(&asked).contains("no `jit serve` is running"),
        "{}",
        text(&asked)
    );
}

/// An element answering which instance it is.
struct Numbered {
    def: Arc<ElementDef>,
    instance: u64,
}

#[jit_runtime::async_trait]
impl Element for Numbered {
    fn def(&self) -> &Arc<ElementDef> {
        &self.def
    }

    async fn call(
        &self,
        _function: &str,
        _args: Map<String, Value>,
        _cx: &CallContext,
    ) -> Result<Value, CallError> {
        Ok(json!({"instance": self.instance}))
    }
}

/// Numbers the elements it builds.
struct NumberingLoader(AtomicU64);

#[jit_runtime::async_trait]
impl Loader for NumberingLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Ok(Arc::new(Numbered {
            def: cx.def().clone(),
            instance: self.0.fetch_add(1, Ordering::SeqCst) + 1,
        }))
    }
}

#[tokio::test]
async fn cache_level_1_gives_each_http_request_its_own_instance() {
    let instance_fn = r#""functionList": [{"name": "instance", "loginRequired": false}]"#;
    let app = TempApp::new(
        "",
        &[
            ("elements/numbered/Meta/e.json", r#"{"type": ""}"#),
            (
                "elements/numbered/perRequest/e.json",
                &format!(r#"{{"type": "numbered.Meta", "cacheLevel": 1, {instance_fn}}}"#),
            ),
            (
                "elements/numbered/perProcess/e.json",
                &format!(r#"{{"type": "numbered.Meta", {instance_fn}}}"#),
            ),
        ],
    );
    let handle = Host::bare()
        .loader("numbered.Meta", NumberingLoader(AtomicU64::new(0)))
        .serve_in_process(app.path(), test_overrides())
        .await
        .expect("the server starts");
    let http = client();
    let instance = |element: &'static str| {
        let http = http.clone();
        let url = format!(
            "{}/api/acme/shop/numbered/{element}/instance",
            handle.base_url()
        );
        async move {
            let (status, body) = json_reply(
                http.post(url)
                    .json(&json!({}))
                    .send()
                    .await
                    .expect("answer"),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["instance"].as_u64().expect("a number")
        }
    };
    let first = instance("perRequest").await;
    let second = instance("perRequest").await;
    assert_ne!(first, second, "two requests, two instances");
    let kept = instance("perProcess").await;
    assert_eq!(
        instance("perProcess").await,
        kept,
        "cacheLevel 0: one instance"
    );
    handle.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_in_process_reload_reports_its_outcome() {
    let app = TempApp::new(
        "",
        &[
            ("elements/numbered/Meta/e.json", r#"{"type": ""}"#),
            (
                "elements/numbered/one/e.json",
                r#"{"type": "numbered.Meta", "functionList": [{"name": "instance", "loginRequired": false}]}"#,
            ),
        ],
    );
    let handle = Host::bare()
        .loader("numbered.Meta", NumberingLoader(AtomicU64::new(0)))
        .serve_in_process(app.path(), test_overrides())
        .await
        .expect("the server starts");
    let kept = handle.app().get_element("numbered.one").await.expect("one");
    app.write(
        "elements/numbered/two/e.json",
        r#"{"type": "numbered.Meta", "functionList": [{"name": "instance", "loginRequired": false}]}"#,
    );
    match handle.reload().await {
        jit::ReloadOutcome::Applied {
            generation,
            changes,
        } => {
            assert_eq!(generation, 2);
            assert_eq!(changes.added, ["numbered.two"]);
            assert!(
                changes.kept.contains(&"numbered.one".to_owned()),
                "{changes:?}"
            );
        }
        other => panic!("not applied: {other:?}"),
    }
    // The element built before is the one served after: its instance was kept.
    let after = handle.app().get_element("numbered.one").await.expect("one");
    assert!(Arc::ptr_eq(&kept, &after));
    assert_eq!(handle.reload().await, jit::ReloadOutcome::Unchanged);
    app.write("elements/numbered/two/e.json", "{ broken");
    match handle.reload().await {
        jit::ReloadOutcome::Refused { problems } => {
            assert!(
                problems.iter().any(|p| p.contains("numbered/two/e.json")),
                "{problems:?}"
            );
        }
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(handle.app().generation(), 2, "the running app stays");
    handle.shutdown().await.expect("stops");
}
