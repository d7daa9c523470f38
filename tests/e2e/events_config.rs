//! `[events]`, `[[webhooks]]` and `[reconciler]` mistakes through the real binary: `jit
//! check` prints each with its file and key, and `jit serve` refuses to start on it, and
//! neither ever prints a webhook's secret.

use std::ffi::OsStr;

use crate::binary::{refused_to_start, text};
use crate::util::{example_app_with, jit_command};

/// A secret long enough, which must never be printed.
const SECRET: &str = "never-printed-0123456789abcdef0123";

/// `jit check` on the example shop with `extra` appended to its app.toml and `SECRET` in
/// `TEST_WEBHOOK_SECRET`: its output, and whether it passed.
fn check_with(extra: &str) -> (bool, String, tempfile::TempDir) {
    let app = example_app_with(|text| format!("{text}\n{extra}\n"));
    let output = jit_command()
        .args(["check", "--app"])
        .arg(app.path())
        .env("TEST_WEBHOOK_SECRET", SECRET)
        .output()
        .expect("jit check runs");
    (output.status.success(), text(&output), app)
}

#[test]
fn check_and_serve_name_the_webhook_key_that_is_wrong() {
    let cases = [
        (
            "[[webhooks]]\nurl = \"http://127.0.0.1:9000/hook\"\nsecret = \"short-secret\"\n",
            "app.toml: webhooks[0].secret: is shorter than 32 characters",
        ),
        (
            "[[webhooks]]\nurl = \"http://127.0.0.1:9000/hook\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:9001/hook\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n\
             events = [\"order.paid\", \"order.shipped\"]\n",
            "app.toml: webhooks[1].events[1]: unknown event type `order.shipped`; known types: \
             order.paid, order.paid_after_close, order.closed, order.timeout, order.payment_conflict",
        ),
        (
            // The simulator is the example shop's gateway: no real endpoint.
            "[[webhooks]]\nurl = \"https://erp.example.com/jit/events\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n",
            "app.toml: webhooks[0].url: `https://erp.example.com/jit/events` is not on this machine, \
             and payments are SIMULATED",
        ),
        (
            "[events]\nretry_for_hours = 1000\n",
            "app.toml: events.retry_for_hours: expected an integer from 1 to 720 (hours), found 1000",
        ),
        (
            "[reconciler]\nscan_interval = 5\n",
            "app.toml: reconciler.scan_interval: unknown key",
        ),
    ];
    for (extra, expected) in cases {
        let (passed, said, app) = check_with(extra);
        assert!(!passed, "check passed on:\n{extra}\n{said}");
        assert!(said.contains(expected), "`{expected}` missing:\n{said}");
        assert!(!said.contains(SECRET), "the secret was printed:\n{said}");
        let refused = refused_to_start(app.path(), &[("TEST_WEBHOOK_SECRET", OsStr::new(SECRET))]);
        assert!(refused.contains(expected), "serve:\n{refused}");
        assert!(
            !refused.contains(SECRET),
            "serve printed the secret:\n{refused}"
        );
    }
}

#[test]
fn a_sound_events_configuration_checks() {
    let (passed, said, _app) = check_with(
        "[events]\nretry_for_hours = 48\npoll_interval_ms = 500\n\
         [reconciler]\nfirst_check_after_secs = 30\n\
         [[webhooks]]\nurl = \"http://localhost:9000/hook\"\nsecret = \"{{TEST_WEBHOOK_SECRET}}\"\n\
         events = [\"order.paid\", \"order.paid_after_close\"]\ntimeout_ms = 2000\n",
    );
    assert!(passed, "{said}");
    assert!(said.starts_with("ok: app demo/shop"), "{said}");
}

/// `[reconciler]` reaches the running server: with a first check after 1 s (the default
/// is a minute) and a 100 ms scan, an order nobody pays is queried at the simulator within
/// seconds, and again after its 1 s back-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_table_times_jit_serves_queries() {
    let app = example_app_with(|text| {
        format!(
            "{text}\n[reconciler]\nfirst_check_after_secs = 1\nmax_backoff_secs = 1\n\
             scan_interval_ms = 100\n"
        )
    });
    let mut served = crate::binary::Served::start(app.path(), &[]);
    let http = crate::util::client();
    served.ready(&http).await;
    let call = |function: &str, body: serde_json::Value| {
        http.post(format!(
            "{}/api/demo/shop/pays/services/PaySvc/{function}",
            served.base
        ))
        .bearer_auth(crate::util::SHOP_TOKEN)
        .json(&body)
        .send()
    };
    let order: serde_json::Value = call(
        "create",
        serde_json::json!({"subject": "Unpaid", "amount": 1}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    let answer = call("getPayUrl", serde_json::json!({"orderId": order_id}))
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app.path().join(".jit/simulator.json")).unwrap(),
    )
    .unwrap();
    let inspect = format!("{}/sim/inspect", record["url"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let inspection: serde_json::Value = http
            .get(&inspect)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let queries = inspection["orders"]
            .as_array()
            .and_then(|orders| {
                orders
                    .iter()
                    .find(|o| o["out_trade_no"] == order_id.as_str())
            })
            .map_or(0, |order| order["queries"]["count"].as_u64().unwrap_or(0));
        if queries >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reconciler queried the order {queries} time(s): {inspection}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    served.stop_cleanly().await;
}

/// The server says which instance it is and where events go, each URL redacted.
#[tokio::test]
async fn the_server_names_its_instance_and_its_endpoints() {
    let app = example_app_with(|text| {
        format!(
            "{text}\n[[webhooks]]\nurl = \"http://127.0.0.1:9/hook?token=tok-not-shown\"\n\
             secret = \"{SECRET}\"\n"
        )
    });
    let overrides = jit::Overrides {
        instance_id: Some("shop-7".to_owned()),
        database_url: Some(format!("sqlite://{}", app.path().join("shop.db").display())),
        ..crate::util::test_overrides()
    };
    let handle = jit::Host::new()
        .serve_in_process(app.path(), overrides)
        .await
        .expect("the shop starts");
    assert_eq!(handle.info("instance"), Some("shop-7"));
    assert_eq!(
        handle.info("webhooks"),
        Some("http://127.0.0.1:9/hook?token=***")
    );
    handle.shutdown().await.unwrap();
}
