//! `pays.models.PayLogModel` row hooks in a Rust host: a `jit::Host` stacking
//! `jit_pays::pay_log_hooks_loader` on the official model serves the example shop over
//! real HTTP; orders created, paid and closed through the API reach `onCreate` and
//! `onUpdate` after their commit, each once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jit_pays::{PAY_LOG_MODEL, PayLog, PayLogHooks, PayStatus, RowEvent, pay_log_hooks_loader};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{SHOP_TOKEN, client, example_app, json_reply, test_overrides};

/// One hook call: (hook, order id, event type, order status).
type Call = (String, String, String, PayStatus);

/// Every hook call.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn push(&self, hook: &str, row: &PayLog, event: &RowEvent) {
        self.0.lock().unwrap().push((
            hook.to_owned(),
            row.order_id.clone(),
            event.kind.clone(),
            row.status,
        ));
    }

    async fn wait_for(&self, order_id: &str, count: usize) -> Vec<(String, String, PayStatus)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let of: Vec<_> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, id, _, _)| id == order_id)
                .map(|(hook, _, kind, status)| (hook.clone(), kind.clone(), *status))
                .collect();
            if of.len() >= count {
                return of;
            }
            assert!(Instant::now() < deadline, "{of:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[jit_runtime::async_trait]
impl PayLogHooks for Calls {
    async fn on_create(
        &self,
        row: &PayLog,
        event: &RowEvent,
    ) -> Result<(), jit_runtime::CallError> {
        self.push("onCreate", row, event);
        Ok(())
    }

    async fn on_update(
        &self,
        row: &PayLog,
        event: &RowEvent,
    ) -> Result<(), jit_runtime::CallError> {
        self.push("onUpdate", row, event);
        Ok(())
    }
}

#[tokio::test]
async fn a_rust_host_s_row_hooks_see_orders_made_over_http() {
    let dir = example_app();
    let calls = Calls::default();
    let host = jit::Host::new().loader(PAY_LOG_MODEL, pay_log_hooks_loader(calls.clone()));
    let overrides = jit::Overrides {
        database_url: Some(format!("sqlite://{}", dir.path().join("shop.db").display())),
        ..test_overrides()
    };
    let handle = host.serve_in_process(dir.path(), overrides).await.unwrap();
    let http = client();
    let api = |path: &str| format!("{}/api/demo/shop/{path}", handle.base_url());
    let call = |path: String, arguments: Value| {
        let request = http.post(path).bearer_auth(SHOP_TOKEN).json(&arguments);
        async move { json_reply(request.send().await.unwrap()).await }
    };

    // Created, then paid at the simulator.
    let (status, order) = call(
        api("pays/myWechatPay/create"),
        json!({"subject": "Hooked box", "amount": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let paid_id = order["orderId"].as_str().unwrap().to_owned();
    let (status, pay_url) = call(
        api("pays/myWechatPay/getPayUrl"),
        json!({"orderId": paid_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pay_url}");
    let response = http
        .post(format!("{}/sim/pay", handle.info("simulator").unwrap()))
        .json(&json!({"out_trade_no": paid_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        calls.wait_for(&paid_id, 2).await,
        [
            (
                "onCreate".to_owned(),
                "order.created".to_owned(),
                PayStatus::Wait
            ),
            (
                "onUpdate".to_owned(),
                "order.paid".to_owned(),
                PayStatus::Success
            ),
        ]
    );

    // Created, then cancelled.
    let (status, order) = call(
        api("pays/myWechatPay/create"),
        json!({"subject": "Given up", "amount": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let closed_id = order["orderId"].as_str().unwrap().to_owned();
    let (status, cancelled) = call(
        api("pays/myWechatPay/cancel"),
        json!({"orderId": closed_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(
        calls.wait_for(&closed_id, 2).await,
        [
            (
                "onCreate".to_owned(),
                "order.created".to_owned(),
                PayStatus::Wait
            ),
            (
                "onUpdate".to_owned(),
                "order.closed".to_owned(),
                PayStatus::Close
            ),
        ]
    );

    // The model's own functions still answer over HTTP, through the wrapping element.
    let (status, got) = call(
        api("pays/models/PayLogModel/get"),
        json!({"orderId": paid_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["status"], "success", "{got}");

    // Each change once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.0.lock().unwrap().len(), 4);
    handle.shutdown().await.unwrap();
}

/// `test-probe-plugin`, built once per run of this test binary.
fn probe_plugin() -> &'static std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let mut built =
            test_support::build_cdylibs(&["test-probe-plugin"], !cfg!(debug_assertions));
        built.remove("test_probe_plugin").expect("built above")
    })
}

/// The hook calls the probe plugin logged so far, one JSON object each.
fn logged_hooks(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Waits until the probe logged `count` calls about `order_id` (15 s at most).
async fn wait_logged(log: &std::path::Path, order_id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let of: Vec<Value> = logged_hooks(log)
            .into_iter()
            .filter(|line| line["orderId"] == order_id)
            .collect();
        if of.len() >= count {
            return of;
        }
        assert!(Instant::now() < deadline, "{of:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_native_plugin_shadowing_the_model_gets_the_row_hooks_in_jit_serve() {
    let library = tokio::task::spawn_blocking(probe_plugin)
        .await
        .expect("building the probe plugin");
    let dir = example_app();
    crate::binary::use_simulator(dir.path());
    // The app's own pays.models.PayLogModel: the official definition, its code the probe.
    let file_name = test_support::library_file_name("test_probe_plugin");
    let folder = dir.path().join("elements/pays/models/PayLogModel");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(library, folder.join(&file_name)).unwrap();
    let mut e_json: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("crates/jit-pays/elements/pays/models/PayLogModel/e.json"),
        )
        .unwrap(),
    )
    .unwrap();
    e_json["backendBundleEntry"] = json!(file_name);
    std::fs::write(folder.join("e.json"), e_json.to_string()).unwrap();
    let log = dir.path().join("hooks.log");

    let http = client();
    let mut served =
        crate::binary::Served::start(dir.path(), &[("JIT_TEST_PLUGIN_HOOK_LOG", log.as_os_str())]);
    served.ready(&http).await;
    let base = served.base.clone();
    let call = |path: &str, arguments: Value| {
        let request = http
            .post(format!("{base}/api/demo/shop/{path}"))
            .bearer_auth(SHOP_TOKEN)
            .json(&arguments);
        async move { json_reply(request.send().await.unwrap()).await }
    };

    // Created, then cancelled: onCreate and onUpdate of the plugin, after each commit.
    let (status, order) = call(
        "pays/myWechatPay/create",
        json!({"subject": "Plugin hooked", "amount": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}\n{}", served.logs());
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let (status, cancelled) = call("pays/myWechatPay/cancel", json!({"orderId": order_id})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let logged = wait_logged(&log, &order_id, 2).await;
    let calls: Vec<(&str, &str, &str, &str)> = logged
        .iter()
        .map(|line| {
            (
                line["hook"].as_str().unwrap(),
                line["element"].as_str().unwrap(),
                line["eventType"].as_str().unwrap(),
                line["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (
                "onCreate",
                "pays.models.PayLogModel",
                "order.created",
                "wait"
            ),
            (
                "onUpdate",
                "pays.models.PayLogModel",
                "order.closed",
                "close"
            ),
        ]
    );

    // A hook that fails: onException with the failure, then the same event again.
    let (status, order) = call(
        "pays/myWechatPay/create",
        json!({"subject": "hook refuses", "amount": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let refused_id = order["orderId"].as_str().unwrap().to_owned();
    let logged = wait_logged(&log, &refused_id, 3).await;
    assert_eq!(logged[0]["hook"], "onCreate");
    assert_eq!(logged[1]["hook"], "onException", "{logged:#?}");
    assert_eq!(logged[1]["failedHook"], "onCreate");
    assert_eq!(logged[1]["error"]["code"], "HOOK_REFUSED", "{logged:#?}");
    assert_eq!(logged[2]["hook"], "onCreate", "retried");
    assert_eq!(logged[2]["eventId"], logged[0]["eventId"], "the same event");

    // The model's functions still answer through the plugin's element.
    let (status, got) = call("pays/models/PayLogModel/get", json!({"orderId": order_id})).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["status"], "close", "{got}");
    served.stop().await;
}
