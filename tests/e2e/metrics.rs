//! `GET /metrics`: the real binary's scrape parses with an independent Prometheus text
//! parser (`prometheus-parse`), its counters move as an order is created and paid, it
//! opens only to a configured token, `[server] metrics_listen` serves it without one, and
//! every metric the Grafana dashboard and the documented alert rules use is in a scrape.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::{Served, jit, text};
use crate::util::{
    SHOP_TOKEN, TempApp, client, example_app_with, fixture_host, free_port, test_overrides,
};

/// The dedicated scrape token of these tests, passed through a `{{VAR}}` placeholder.
const METRICS_TOKEN: &str = "scrape-0123456789abcdef";

/// One scrape, as text and as the parser read it.
struct Scrape {
    text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    fn parse(text: String) -> Self {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("the scrape parses");
        assert!(!parsed.samples.is_empty(), "an empty scrape:\n{text}");
        // Every line of a counter is a sample: none was skipped as unreadable.
        for counter in ["jit_http_requests_total", "jit_pays_gateway_calls_total"] {
            let lines = text
                .lines()
                .filter(|line| line.starts_with(&format!("{counter}{{")))
                .count();
            let samples = parsed
                .samples
                .iter()
                .filter(|sample| sample.metric == counter)
                .count();
            assert_eq!(
                lines, samples,
                "{counter}: lines the parser skipped:\n{text}"
            );
        }
        Self {
            samples: parsed.samples,
            text,
        }
    }

    /// The value of the counter or gauge `metric` whose labels include `labels`; 0 when
    /// no such series is there.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
            })
            .map(|sample| match &sample.value {
                prometheus_parse::Value::Counter(value)
                | prometheus_parse::Value::Gauge(value)
                | prometheus_parse::Value::Untyped(value) => *value,
                other => panic!("{metric} is not a counter or gauge: {other:?}"),
            })
            .sum()
    }

    /// How many observations the histogram `metric` holds over series matching `labels`.
    fn observations(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
            })
            .map(|sample| match &sample.value {
                prometheus_parse::Value::Histogram(buckets) => buckets
                    .iter()
                    .map(|bucket| bucket.count)
                    .fold(0.0, f64::max),
                other => panic!("{metric} is not a histogram: {other:?}"),
            })
            .sum()
    }

    /// Every metric name the text shows a sample of (histograms by their `_bucket`,
    /// `_sum` and `_count` names too).
    fn names(&self) -> BTreeSet<String> {
        self.text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| line.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect()
    }
}

async fn get(url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    (status, response.text().await.expect("a body"))
}

async fn scrape(url: &str, token: Option<&str>) -> Scrape {
    let (status, body) = get(url, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Scrape::parse(body)
}

async fn pay_svc(base: &str, function: &str, arguments: Value) -> Value {
    let response = client()
        .post(format!(
            "{base}/api/demo/shop/pays/services/PaySvc/{function}"
        ))
        .bearer_auth(SHOP_TOKEN)
        .json(&arguments)
        .send()
        .await
        .expect("the shop answers");
    assert!(response.status().is_success(), "{function}: {response:?}");
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn the_binary_counts_an_order_created_and_paid() {
    let metrics_port = free_port();
    let dir = example_app_with(|text| {
        text.replace(
            "[server]\n",
            &format!(
                "[server]\nmetrics_token = \"{{{{JIT_METRICS_TOKEN}}}}\"\n\
                 metrics_listen = \"127.0.0.1:{metrics_port}\"\n"
            ),
        )
        // Reconciler passes every 200 ms, so its metrics show within the test.
        .replace("# [reconciler]\n", "[reconciler]\nscan_interval_ms = 200\n")
    });
    let app = dir.path();
    let mut served = Served::start(app, &[("JIT_METRICS_TOKEN", OsStr::new(METRICS_TOKEN))]);
    served.ready(&client()).await;
    let main = format!("{}/metrics", served.base);
    let open = format!("http://127.0.0.1:{metrics_port}/metrics");

    // The main listener: a configured token or nothing.
    for token in [None, Some("wrong-token"), Some("scrape-0123456789abcde")] {
        let (status, body) = get(&main, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert!(!body.contains("jit_"), "{body}");
    }
    let before = scrape(&main, Some(METRICS_TOKEN)).await;
    // Any API token opens it too.
    scrape(&main, Some(SHOP_TOKEN)).await;

    let order = pay_svc(
        &served.base,
        "create",
        json!({"subject": "Metrics", "amount": 1.5}),
    )
    .await;
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    pay_svc(&served.base, "getPayUrl", json!({"orderId": order_id})).await;
    let paid = jit(&["sim", "pay", &order_id], app)
        .output()
        .expect("jit sim pay runs");
    assert!(paid.status.success(), "{}", text(&paid));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let order = pay_svc(&served.base, "query", json!({"orderId": order_id})).await;
        if order["status"] == "success" {
            break;
        }
        assert!(Instant::now() < deadline, "still not paid: {order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The scrape of the token-less listener, after a reconciler pass or two.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = scrape(&open, None).await;

    let moved = |metric: &str, labels: &[(&str, &str)]| {
        after.value(metric, labels) - before.value(metric, labels)
    };
    let payment_paid = [("kind", "payment"), ("outcome", "paid")];
    assert_eq!(moved("jit_pays_notifies_total", &payment_paid), 1.0);
    assert_eq!(
        moved("jit_pays_transitions_total", &[("event", "order.paid")]),
        1.0
    );
    assert_eq!(
        moved(
            "jit_pays_gateway_calls_total",
            &[("endpoint", "unifiedorder"), ("result", "ok")]
        ),
        1.0
    );
    let create = [
        ("route", "/api/:org/:app/*path"),
        ("function", "pays.services.PaySvc.create"),
        ("status", "200"),
    ];
    assert_eq!(
        moved("jit_http_requests_total", &create),
        1.0,
        "{:?}",
        after
            .samples
            .iter()
            .filter(|sample| sample.metric == "jit_http_requests_total")
            .collect::<Vec<_>>()
    );
    let notify = [("function", "pays.services.PaySvc.wechatNotify")];
    assert!(moved("jit_http_requests_total", &notify) >= 1.0);
    assert!(after.observations("jit_http_request_duration_seconds", &notify) >= 1.0);
    assert!(
        after.observations(
            "jit_pays_gateway_call_duration_seconds",
            &[("endpoint", "unifiedorder")]
        ) >= 1.0
    );
    assert!(after.observations("jit_pays_notify_writer_batch_size", &[]) >= 1.0);
    assert!(after.observations("jit_pays_notify_writer_commit_duration_seconds", &[]) >= 1.0);
    assert!(moved("jit_pays_order_cache_lookups_total", &[]) >= 1.0);
    assert!(moved("jit_pays_reconciler_rounds_total", &[("result", "ok")]) >= 1.0);
    assert!(after.value("jit_pays_reconciler_last_round_timestamp_seconds", &[]) > 0.0);
    assert!(after.value("jit_pays_notify_refusals_total", &[]) == 0.0);
    // No order id, token or path of a request in any label.
    for secret in [
        order_id.as_str(),
        METRICS_TOKEN,
        SHOP_TOKEN,
        "/pays/services",
    ] {
        assert!(!after.text.contains(secret), "{secret} in the scrape");
    }

    // A forged notify is refused and counted by its kind of refusal.
    let forged = format!(
        "<xml><return_code>SUCCESS</return_code><appid>x</appid><mch_id>y</mch_id>\
         <out_trade_no>{order_id}</out_trade_no><result_code>SUCCESS</result_code>\
         <sign>00</sign></xml>"
    );
    let response = client()
        .post(format!(
            "{}/api/demo/shop/pays/services/PaySvc/wechatNotify",
            served.base
        ))
        .header("content-type", "text/xml")
        .body(forged)
        .send()
        .await
        .expect("the shop answers");
    assert_eq!(response.status(), StatusCode::OK);
    let refused = scrape(&open, None).await;
    assert_eq!(
        refused.value(
            "jit_pays_notify_refusals_total",
            &[("kind", "payment"), ("reason", "bad_signature")]
        ),
        1.0,
        "{}",
        refused.text
    );

    // The token-less listener serves /metrics alone.
    let (status, _) = get(&format!("http://127.0.0.1:{metrics_port}/healthz"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Every metric the dashboard and the alert rules name is in a scrape.
    let names = refused.names();
    for name in documented_metric_names() {
        assert!(
            names.contains(&name),
            "{name} is used by docs/grafana/jit-dashboard.json or docs/operations.md but not \
             in a scrape"
        );
    }
    served.stop_cleanly().await;
}

/// The `jit_…` names in the Grafana dashboard's queries and in the alert rules of
/// docs/operations.md (its `expr:` lines).
fn documented_metric_names() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("docs/grafana/jit-dashboard.json"))
            .expect("the dashboard is in the repository"),
    )
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    collect_exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 8, "{queries:?}");
    let operations =
        std::fs::read_to_string(root.join("docs/operations.md")).expect("docs/operations.md");
    let rules: Vec<String> = operations
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr:"))
        .map(str::to_owned)
        .collect();
    assert!(rules.len() >= 4, "the alert rules: {rules:?}");
    let names: BTreeSet<String> = queries
        .iter()
        .chain(&rules)
        .flat_map(|query| metric_names(query))
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    names
}

fn collect_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => into.push(expr.clone()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, into)),
        _ => {}
    }
}

/// The identifiers in a PromQL expression that start with `jit_`.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("jit_") {
        let preceded = rest[..start]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn without_any_token_configured_metrics_answer_401() {
    let app = TempApp::new("", &[]);
    let overrides = jit::Overrides {
        tokens: Some(Vec::new()),
        ..test_overrides()
    };
    let handle = fixture_host()
        .serve_in_process(app.path(), overrides)
        .await
        .expect("an app without elements starts");
    let url = format!("{}/metrics", handle.base_url());
    for token in [None, Some("anything-at-all-0123456789")] {
        let (status, body) = get(&url, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("METRICS_TOKEN_NOT_CONFIGURED"), "{body}");
    }
    handle.shutdown().await.expect("stops");
}

#[tokio::test]
async fn odd_metrics_settings_stop_jit_check_and_the_start() {
    for (setting, expected) in [
        (
            "metrics_token = \"short\"",
            "server.metrics_token: is shorter than 16 characters",
        ),
        (
            "metrics_listen = \"0.0.0.0:9464\"",
            "server.metrics_listen: `0.0.0.0:9464` is not a loopback address",
        ),
        (
            "metrics_listen = \"0.0.0.0:9464\"\nmetrics_listen_public = true",
            "server.metrics_listen: `0.0.0.0:9464` is not a loopback address, and payments are SIMULATED",
        ),
    ] {
        let dir =
            example_app_with(|text| text.replace("[server]\n", &format!("[server]\n{setting}\n")));
        let check = jit(&["check"], dir.path())
            .output()
            .expect("jit check runs");
        assert!(!check.status.success(), "{setting}: {}", text(&check));
        assert!(
            text(&check).contains(expected),
            "{setting}: {}",
            text(&check)
        );
        let refused = crate::binary::refused_to_start(dir.path(), &[]);
        assert!(refused.contains(expected), "{setting}: {refused}");
        assert!(!refused.contains("short\""), "{refused}");
    }
}
