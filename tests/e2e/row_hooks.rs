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

/// Every hook call: (hook, order id, event type, order status).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(String, String, String, PayStatus)>>>);

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
