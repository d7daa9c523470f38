//! `jit events ls | show | replay` through the real binary, on the database of a real
//! `jit serve` (the example shop, the simulator as its gateway) that paid an order and
//! delivered its `order.paid` event to a webhook receiver on loopback, run by the test.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::webhook_receiver::{Answer, Received, WebhookReceiver};

use crate::binary::{Served, jit, text};
use crate::util::{SHOP_TOKEN, client, example_app_with};

/// The endpoint's secret, given to `jit` through a `{{TEST_WEBHOOK_SECRET}}` placeholder.
const SECRET: &str = "e2e-webhook-secret-0123456789abcdef";
/// The instance id `jit serve` runs under (JIT_INSTANCE_ID).
const INSTANCE: &str = "evhost-e2e-1";

/// How long the receiver is given for each request awaited.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

/// Asserts the request was signed with [`SECRET`] over its exact body, on arrival.
fn assert_signed(request: &Received) {
    if let Err(err) = &request.verified {
        panic!("the signature does not verify: {err}: {request:?}");
    }
}

/// The example shop with `[events]` polling fast and one endpoint for payments, and the
/// environment every `jit` command on it runs with (the same for `serve` and `events`).
struct Shop {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Shop {
    /// On SQLite beside app.toml, or on `postgres` (a server URL) in a schema of its own.
    fn new(webhook_url: &str, postgres: Option<&str>) -> Self {
        let dir = example_app_with(|text| {
            format!(
                "{text}\n[events]\npoll_interval_ms = 100\n\n[[webhooks]]\nurl = \"{webhook_url}\"\n\
                 secret = \"{{{{TEST_WEBHOOK_SECRET}}}}\"\nevents = [\"order.paid\"]\ntimeout_ms = 5000\n"
            )
        });
        let mut env = vec![
            ("TEST_WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
            ("JIT_INSTANCE_ID".to_owned(), INSTANCE.to_owned()),
        ];
        if let Some(url) = postgres {
            let schema = format!("jit_events_cli_{}", uuid::Uuid::new_v4().simple());
            env.push(("JIT_DATABASE_URL".to_owned(), url.to_owned()));
            env.push(("JIT_DATABASE_SCHEMA".to_owned(), schema));
        }
        Self { dir, env }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self) -> Vec<(&str, &OsStr)> {
        self.env
            .iter()
            .map(|(name, value)| (name.as_str(), OsStr::new(value)))
            .collect()
    }

    /// `jit <args> --app <app>`, off the async workers (the receiver runs there).
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = jit(args, self.path());
        command.envs(self.env());
        tokio::task::spawn_blocking(move || command.output().expect("jit runs"))
            .await
            .expect("the command's task")
    }

    /// Runs `jit <args>`, which must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "jit {args:?} failed:\n{}",
            text(&output)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    /// `jit events ls --json <args>`.
    async fn listed(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["events", "ls", "--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all).await;
        serde_json::from_str::<Value>(&stdout)
            .unwrap_or_else(|err| panic!("ls --json prints JSON ({err}): {stdout}"))
            .as_array()
            .expect("an array")
            .clone()
    }

    /// Polls `jit events ls --json` until `done` holds for its single event.
    async fn wait_for_event(&self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.listed(&[]).await;
            if let [event] = events.as_slice()
                && done(event)
            {
                return event.clone();
            }
            assert!(Instant::now() < deadline, "never reached: {events:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Creates an order through the shop's API and pays it through its simulator.
async fn pay_an_order(served: &Served, app: &Path) -> String {
    let http = client();
    let call = |function: &str, body: Value| {
        http.post(format!(
            "{}/api/demo/shop/pays/services/PaySvc/{function}",
            served.base
        ))
        .bearer_auth(SHOP_TOKEN)
        .json(&body)
        .send()
    };
    let order: Value = call("create", json!({"subject": "Events", "amount": 12.34}))
        .await
        .expect("create answers")
        .json()
        .await
        .expect("JSON");
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    let answer = call("getPayUrl", json!({"orderId": order_id}))
        .await
        .expect("getPayUrl answers");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(app.join(".jit/simulator.json")).expect("the simulator file"),
    )
    .unwrap();
    let simulator = record["url"].as_str().expect("the simulator's URL");
    let paid: Value = http
        .post(format!("{simulator}/sim/pay"))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .unwrap();
    assert_eq!(paid["ok"], true, "{paid}");
    order_id
}

/// The status of `consumer`'s delivery in an event of `ls --json`.
fn delivery<'a>(event: &'a Value, consumer: &str) -> &'a Value {
    event["deliveries"]
        .as_array()
        .and_then(|deliveries| deliveries.iter().find(|d| d["consumer"] == consumer))
        .unwrap_or_else(|| panic!("no delivery to {consumer}: {event}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_and_replay_the_event_of_a_paid_order() {
    list_show_and_replay(None).await;
}

/// The same on PostgreSQL when `JIT_TEST_POSTGRES_URL` names a server (CI sets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_and_replay_the_event_of_a_paid_order_on_postgres() {
    let Ok(url) = std::env::var("JIT_TEST_POSTGRES_URL") else {
        eprintln!("JIT_TEST_POSTGRES_URL not set: the PostgreSQL run is CI's (SQLite ran above)");
        return;
    };
    list_show_and_replay(Some(&url)).await;
}

async fn list_show_and_replay(postgres: Option<&str>) {
    // The endpoint fails at first: the event waits, undelivered, and is retried.
    let receiver = WebhookReceiver::start(SECRET).await;
    receiver.answer_with(Answer::Status(500));
    let url = receiver.url();
    let shop = Shop::new(&url, postgres);
    let dir = shop.path();
    let mut served = Served::start(dir, &shop.env());
    served.ready(&client()).await;
    let order_id = pay_an_order(&served, dir).await;

    let first = receiver.wait_for(1, DELIVERY_WAIT).await;
    let event_id = first[0].event_id.clone();
    assert_eq!(first[0].event_type, "order.paid");
    assert_signed(&first[0]);

    // The failed attempt is recorded: `--undelivered` lists the event, pending.
    let event = shop
        .wait_for_event(|event| delivery(event, &url)["attempts"].as_i64() >= Some(1))
        .await;
    // The stock binary runs no Rust hooks: nothing subscribed, so no hooks delivery.
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1, "{event}");
    assert_eq!(event["id"], event_id.as_str());
    assert_eq!(event["type"], "order.paid");
    assert_eq!(event["order_id"], order_id.as_str());
    let undelivered = shop.listed(&["--undelivered"]).await;
    assert_eq!(undelivered.len(), 1, "{undelivered:?}");
    let lines = shop.ok(&["events", "ls", "--undelivered"]).await;
    assert!(
        lines.contains(&format!("{}:pending(", url)) && !lines.contains("hooks"),
        "{lines}"
    );

    // The endpoint recovers; the retry (within seconds) delivers the same event.
    receiver.answer_with(Answer::Status(200));
    let event = shop
        .wait_for_event(|event| delivery(event, &url)["status"] == "delivered")
        .await;
    let retried = receiver.received();
    assert!(retried.len() >= 2, "{retried:?}");
    assert!(retried.iter().all(|request| request.event_id == event_id));
    assert_eq!(retried[0].body, retried[1].body, "the same stored envelope");
    assert!(shop.listed(&["--undelivered"]).await.is_empty());

    // ls: one line, every column; filters.
    let lines = shop.ok(&["events", "ls"]).await;
    let line = lines.lines().next().expect("a line");
    assert_eq!(lines.lines().count(), 1, "{lines}");
    for part in [
        event_id.as_str(),
        "order.paid",
        order_id.as_str(),
        event["created_beijing"].as_str().unwrap(),
        &format!("{}:delivered", url),
    ] {
        assert!(line.contains(part), "`{part}` missing: {line}");
    }
    assert_eq!(shop.listed(&["--type", "order.paid"]).await.len(), 1);
    assert!(shop.listed(&["--type", "order.closed"]).await.is_empty());
    assert_eq!(shop.listed(&["--order", &order_id]).await.len(), 1);
    assert!(
        shop.listed(&["--order", "D00000000000000000000"])
            .await
            .is_empty()
    );
    let created = event["created_beijing"].as_str().unwrap().to_owned();
    assert_eq!(shop.listed(&["--since", &created]).await.len(), 1);
    assert!(
        shop.listed(&["--since", "2100-01-01T00:00:00Z"])
            .await
            .is_empty()
    );

    // show: the payload and every attempt.
    let shown: Value =
        serde_json::from_str(&shop.ok(&["events", "show", &event_id, "--json"]).await).unwrap();
    assert_eq!(shown["payload"]["id"], event_id.as_str());
    assert_eq!(shown["payload"]["order"]["orderId"], order_id.as_str());
    assert_eq!(shown["payload"]["order"]["amountFen"], 1234);
    let attempts = shown["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 2, "{shown}");
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["instance"], INSTANCE);
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|error| error.contains("500")),
        "{shown}"
    );
    assert_eq!(attempts.last().unwrap()["status_code"], 200);
    let page = shop.ok(&["events", "show", &event_id]).await;
    for part in [
        "payload:",
        &format!("\"orderId\": \"{order_id}\""),
        "deliveries:",
        "attempts:",
        &format!("#1 {}  HTTP 500", url),
        &format!("instance {INSTANCE}"),
        "(Beijing time)",
    ] {
        assert!(page.contains(part), "`{part}` missing:\n{page}");
    }
    assert!(!page.contains(SECRET) && !lines.contains(SECRET));

    // replay to the endpoint: it comes again, same id, same body, freshly signed; the
    // hooks are not replayed.
    let before = receiver.received().len();
    let replayed = shop
        .ok(&["events", "replay", &event_id, "--endpoint", &url])
        .await;
    assert!(replayed.contains("queued 1 deliveries"), "{replayed}");
    let again = receiver.wait_for(before + 1, DELIVERY_WAIT).await;
    let last = again.last().unwrap();
    assert_eq!(last.event_id, event_id);
    assert_eq!(last.body, first[0].body);
    assert_signed(last);
    let event = shop
        .wait_for_event(|event| delivery(event, &url)["status"] == "delivered")
        .await;
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1, "{event}");

    // replay --since to every consumer: the hooks and the endpoint.
    let replayed = shop.ok(&["events", "replay", "--since", &created]).await;
    assert!(
        replayed.contains("queued 2 deliveries of 1 event(s) for hooks, http://127.0.0.1:"),
        "{replayed}"
    );
    let again = receiver.wait_for(before + 2, DELIVERY_WAIT).await;
    assert_eq!(again.last().unwrap().event_id, event_id);

    served.stop_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ids_times_and_endpoints_are_clear_errors() {
    let shop = Shop::new("http://127.0.0.1:9/hook", None);
    let dir = shop.path();

    // No server: the CLI opens (and creates) the database as serve would.
    assert!(shop.listed(&[]).await.is_empty());
    assert!(dir.join("shop.db").exists());
    assert!(
        !dir.join(".jit/simulator.json").exists(),
        "no simulator is started"
    );

    let unknown = "01a00000-0000-7000-8000-000000000000";
    for args in [
        vec!["events", "show", unknown],
        vec!["events", "replay", unknown],
    ] {
        let output = shop.run(&args).await;
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let said = text(&output);
        assert!(
            said.contains(&format!("no event `{unknown}`")) && said.contains("jit events ls"),
            "{said}"
        );
    }

    for args in [
        vec!["events", "ls", "--since", "yesterday"],
        vec!["events", "replay", "--since", "2026-11-31 00:00:00"],
    ] {
        let output = shop.run(&args).await;
        assert!(!output.status.success());
        let said = text(&output);
        assert!(
            said.contains("--since") && said.contains("RFC 3339"),
            "{said}"
        );
    }

    let output = shop
        .run(&[
            "events",
            "replay",
            "--since",
            "2026-01-01T00:00:00Z",
            "--endpoint",
            "https://elsewhere.example/hook",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let said = text(&output);
    assert!(
        said.contains("--endpoint `https://elsewhere.example/hook` is not a configured consumer")
            && said.contains("hooks, http://127.0.0.1:9/hook"),
        "{said}"
    );
    // `hooks` and the configured URL are consumers (nothing to queue: no event).
    for endpoint in ["hooks", "http://127.0.0.1:9/hook"] {
        let said = shop
            .ok(&[
                "events",
                "replay",
                "--since",
                "2026-01-01T00:00:00Z",
                "--endpoint",
                endpoint,
            ])
            .await;
        assert!(said.contains("queued 0 deliveries of 0 event(s)"), "{said}");
    }
}
