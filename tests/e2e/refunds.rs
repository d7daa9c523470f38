//! Refunds as a shop runs them: the real `jit serve` on the example app with its in-process
//! simulator, over HTTP, on SQLite and (when `JIT_TEST_POSTGRES_URL` is set) PostgreSQL.
//! Full, partial and several partial refunds; an idempotent retry; bad input refused; a
//! refund held processing and settled through `jit sim refund-settle`, its notify reaching
//! the shop's `wechatRefundNotify`; a refund WeChat closes; the events they raise.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::{Served, jit, text};
use crate::events_support::{Backend, Db, ShopApi, ShopConfig, TOKEN, poll, shop_app};
use crate::util::{client, json_reply};

/// `jit <args>` in the app folder, off the async workers.
async fn run_jit(app: &Path, args: &[&str]) -> Output {
    let mut command = jit(args, app);
    tokio::task::spawn_blocking(move || command.output().expect("jit runs"))
        .await
        .expect("the command's task")
}

/// An order of `amount` yuan, paid by the payer through `jit sim pay`.
async fn paid_order(api: &ShopApi, app: &Path, amount: &str) -> String {
    let amount: Value = serde_json::from_str(amount).unwrap();
    let order = api
        .call(
            "create",
            json!({"subject": "Refund test", "amount": amount}),
        )
        .await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    api.place_at_gateway(&order_id).await;
    let paid = run_jit(app, &["sim", "pay", &order_id]).await;
    assert!(paid.status.success(), "{}", text(&paid));
    poll(Duration::from_secs(10), "the payment notify", async || {
        (api.status(&order_id).await == "success").then_some(())
    })
    .await;
    order_id
}

/// Waits until `refund_id` of `order_id` is `status` (listRefunds); returns it.
async fn refund_becomes(api: &ShopApi, order_id: &str, refund_id: &str, status: &str) -> Value {
    poll(
        Duration::from_secs(10),
        "the refund's outcome",
        async || {
            let refunds = api.call("listRefunds", json!({"orderId": order_id})).await;
            refunds
                .as_array()
                .unwrap()
                .iter()
                .find(|refund| refund["refundId"] == refund_id && refund["status"] == status)
                .cloned()
        },
    )
    .await
}

/// `refund` as a client sends it, whatever the answer.
async fn try_refund(base: &str, arguments: Value) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{base}/api/demo/shop/pays/services/PaySvc/refund"))
        .bearer_auth(TOKEN)
        .json(&arguments)
        .send()
        .await
        .unwrap();
    json_reply(response).await
}

async fn refunds_end_to_end(backend: Backend) {
    let label = backend.label();
    let dir = shop_app(&ShopConfig {
        backend: &backend,
        gateway: None,
        instance_id: "refunds-e2e",
        webhooks: &[],
        extra: "",
    });
    let app = dir.path();
    let http = client();
    let mut served = Served::start(app, &[]);
    served.ready(&http).await;
    let api = ShopApi::new(&served.base, &http);

    // A partial refund, then the rest with no amount: the order ends fully refunded.
    let order_id = paid_order(&api, app, "100").await;
    let first = api
        .call(
            "refund",
            json!({"orderId": order_id, "amount": 30, "reason": "少发一件"}),
        )
        .await;
    let first_id = first["refundId"].as_str().unwrap().to_owned();
    assert_eq!(first["amountFen"], 3000, "{label}: {first}");
    let settled = refund_becomes(&api, &order_id, &first_id, "success").await;
    assert!(settled["wechatRefundId"].is_string(), "{label}: {settled}");
    let summary = api.call("query", json!({"orderId": order_id})).await;
    assert_eq!(summary["refundedFen"], 3000, "{label}: {summary}");
    assert_eq!(summary["refundStatus"], "partial", "{label}: {summary}");
    assert_eq!(summary["status"], "success", "{label}: {summary}");

    // The rest is held processing at WeChat, queried, then settled by hand: its notify
    // reaches the shop on its own.
    let planned = run_jit(app, &["sim", "refund-plan", &order_id, "processing"]).await;
    assert!(planned.status.success(), "{label}: {}", text(&planned));
    let rest = api
        .call("refund", json!({"orderId": order_id, "refundId": "REST-1"}))
        .await;
    assert_eq!(rest["amountFen"], 7000, "{label}: {rest}");
    assert_eq!(rest["status"], "processing", "{label}: {rest}");
    let queried = api.call("queryRefund", json!({"refundId": "REST-1"})).await;
    assert_eq!(queried["status"], "processing", "{label}: {queried}");
    // A retry of the same refund is the same refund.
    let retried = api
        .call("refund", json!({"orderId": order_id, "refundId": "REST-1"}))
        .await;
    assert_eq!(retried["refundId"], "REST-1", "{label}");
    let settle = run_jit(app, &["sim", "refund-settle", "REST-1", "success"]).await;
    assert!(settle.status.success(), "{label}: {}", text(&settle));
    refund_becomes(&api, &order_id, "REST-1", "success").await;
    let summary = api.call("query", json!({"orderId": order_id})).await;
    assert_eq!(summary["refundedFen"], 10000, "{label}: {summary}");
    assert_eq!(summary["refundStatus"], "full", "{label}: {summary}");

    // Nothing is left; bad input is refused and writes nothing.
    let unpaid = api
        .call("create", json!({"subject": "Unpaid", "amount": 5}))
        .await;
    let unpaid_id = unpaid["orderId"].as_str().unwrap();
    for (arguments, status, says) in [
        (
            json!({"orderId": order_id}),
            StatusCode::BAD_REQUEST,
            "nothing left",
        ),
        (
            json!({"orderId": order_id, "amount": 0}),
            StatusCode::BAD_REQUEST,
            "amount",
        ),
        (
            json!({"orderId": unpaid_id}),
            StatusCode::CONFLICT,
            "ORDER_NOT_PAID",
        ),
        (
            json!({"orderId": "D-NO-SUCH"}),
            StatusCode::NOT_FOUND,
            "ORDER_NOT_FOUND",
        ),
        (
            json!({"orderId": order_id, "amount": -1}),
            StatusCode::BAD_REQUEST,
            "amount",
        ),
    ] {
        let (got, body) = try_refund(&served.base, arguments.clone()).await;
        assert_eq!(got, status, "{label}: {arguments}: {body}");
        assert!(
            body.to_string().contains(says),
            "{label}: {arguments}: {body}"
        );
    }
    let refunds = api.call("listRefunds", json!({"orderId": order_id})).await;
    assert_eq!(refunds.as_array().unwrap().len(), 2, "{label}: {refunds}");

    // A refund WeChat closes gives its money back to the order, to be refunded again.
    let second_order = paid_order(&api, app, "8.8").await;
    let planned = run_jit(app, &["sim", "refund-plan", &second_order, "REFUNDCLOSE"]).await;
    assert!(planned.status.success(), "{label}: {}", text(&planned));
    let closed = api.call("refund", json!({"orderId": second_order})).await;
    let closed_id = closed["refundId"].as_str().unwrap().to_owned();
    refund_becomes(&api, &second_order, &closed_id, "closed").await;
    let again = api.call("refund", json!({"orderId": second_order})).await;
    assert_eq!(again["amountFen"], 880, "{label}: {again}");
    let again_id = again["refundId"].as_str().unwrap().to_owned();
    refund_becomes(&api, &second_order, &again_id, "success").await;

    // Every transition raised its event, in order, through the outbox.
    let db = Db::open(&backend, app).await;
    let kinds: Vec<String> = db
        .events_of(&second_order)
        .await
        .into_iter()
        .map(|event| event.event_type)
        .collect();
    assert_eq!(
        kinds,
        [
            "order.paid",
            "refund.requested",
            "refund.failed",
            "refund.requested",
            "refund.succeeded"
        ],
        "{label}"
    );
    db.close().await;
    served.stop_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_through_the_shop_on_sqlite() {
    refunds_end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_through_the_shop_on_postgres() {
    if let Some(backend) = Backend::postgres("refunds_through_the_shop") {
        refunds_end_to_end(backend).await;
    }
}
