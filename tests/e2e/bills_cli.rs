//! `jit bills download` and `jit reconcile` through the real binary, against a real
//! `jit serve` of the example shop whose gateway is its built-in simulator: orders paid
//! through the shop's API and the simulator, the day's bill downloaded from that simulator
//! (found through `.jit/simulator.json`), a clean reconciliation (exit 0), then deliberate
//! mismatches — a payment only WeChat knows, an amount changed in the shop's database —
//! reported (exit 3, JSON) and raised once each as `reconcile.mismatch` events.

use std::path::Path;
use std::process::Output;

use chrono::Utc;
use serde_json::{Value, json};
use wechatpay_v2::{Client, ClientConfig, Fen, TradeKind, UnifiedOrderRequest};

use crate::binary::{Served, jit, text};
use crate::util::{SHOP_APPID, SHOP_KEY, SHOP_MCH_ID, SHOP_TOKEN, client, example_app};

/// The environment every `jit` of a test runs with: none on SQLite; the server and a
/// schema of its own on PostgreSQL.
type Env = Vec<(String, String)>;

async fn run(app: &Path, env: &Env, args: &[&str]) -> Output {
    let mut command = jit(args, app);
    command.envs(env.iter().map(|(name, value)| (name, value)));
    tokio::task::spawn_blocking(move || command.output().expect("jit runs"))
        .await
        .expect("the command's task")
}

fn simulator_url(app: &Path) -> String {
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(app.join(".jit/simulator.json")).expect("the simulator file"),
    )
    .unwrap();
    record["url"]
        .as_str()
        .expect("the simulator's URL")
        .to_owned()
}

/// Creates an order of `amount` yuan through the shop's API and pays it at its simulator.
async fn pay_an_order(served: &Served, app: &Path, amount: f64) -> String {
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
    let order: Value = call("create", json!({"subject": "Bills", "amount": amount}))
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
    let paid: Value = http
        .post(format!("{}/sim/pay", simulator_url(app)))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .unwrap();
    assert_eq!(paid["ok"], true, "{paid}");
    // The notify reaches the shop: the order is paid there.
    for _ in 0..100 {
        let (status, _) = query(served, &order_id).await;
        if status == "success" {
            return order_id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("order {order_id} never became paid in the shop");
}

async fn query(served: &Served, order_id: &str) -> (String, Value) {
    let answer: Value = client()
        .post(format!(
            "{}/api/demo/shop/pays/services/PaySvc/query",
            served.base
        ))
        .bearer_auth(SHOP_TOKEN)
        .json(&json!({"orderId": order_id}))
        .send()
        .await
        .expect("query answers")
        .json()
        .await
        .unwrap();
    (answer["status"].as_str().unwrap_or("").to_owned(), answer)
}

async fn reconcile_json(app: &Path, env: &Env, date: &str) -> (Option<i32>, Value) {
    let output = run(app, env, &["reconcile", "--date", date, "--json"]).await;
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("reconcile --json prints JSON ({err}): {}", text(&output)));
    (output.status.code(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_and_reconcile_a_day_clean_then_with_mismatches() {
    download_and_reconcile(None).await;
}

/// The same on PostgreSQL when `JIT_TEST_POSTGRES_URL` names a server (CI sets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_and_reconcile_a_day_clean_then_with_mismatches_on_postgres() {
    let Ok(url) = std::env::var("JIT_TEST_POSTGRES_URL") else {
        eprintln!("JIT_TEST_POSTGRES_URL not set: the PostgreSQL run is CI's (SQLite ran above)");
        return;
    };
    download_and_reconcile(Some(&url)).await;
}

async fn download_and_reconcile(postgres: Option<&str>) {
    let dir = example_app();
    let app = dir.path();
    let mut env: Env = Vec::new();
    let mut db_config = jit_pays::db::DbConfig::sqlite_beside(app, "shop");
    if let Some(url) = postgres {
        let schema = format!("jit_bills_cli_{}", uuid::Uuid::new_v4().simple());
        env.push(("JIT_DATABASE_URL".to_owned(), url.to_owned()));
        env.push(("JIT_DATABASE_SCHEMA".to_owned(), schema.clone()));
        db_config = jit_pays::db::DbConfig::new(url);
        db_config.pg_schema = Some(schema);
    }
    let served_env: Vec<(&str, &std::ffi::OsStr)> = env
        .iter()
        .map(|(name, value)| (name.as_str(), std::ffi::OsStr::new(value)))
        .collect();
    let mut served = Served::start(app, &served_env);
    served.ready(&client()).await;
    let date = wechatpay_v2::time::beijing_date(Utc::now())
        .format("%Y-%m-%d")
        .to_string();

    let first = pay_an_order(&served, app, 12.34).await;
    let second = pay_an_order(&served, app, 0.5).await;

    let output = run(app, &env, &["bills", "download", "--date", &date]).await;
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("pays.myWechatPay ALL bill of") && stdout.contains("2 lines"),
        "{stdout}"
    );

    let (code, report) = reconcile_json(app, &env, &date).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["clean"], true);
    let day = &report["days"][0];
    assert_eq!(
        (day["matched"].as_u64(), day["billLines"].as_u64()),
        (Some(2), Some(2))
    );

    // A payment only WeChat knows: ordered and paid at the simulator directly.
    let stranger = "E2ESTRANGER00001";
    let direct = Client::new(ClientConfig {
        base_url: simulator_url(app),
        app_id: SHOP_APPID.to_owned(),
        mch_id: SHOP_MCH_ID.to_owned(),
        api_key: SHOP_KEY.into(),
        ..ClientConfig::default()
    })
    .unwrap();
    direct
        .unified_order(&UnifiedOrderRequest::new(
            TradeKind::Native {
                product_id: "p".into(),
            },
            "paid elsewhere",
            stranger,
            Fen::new(777),
            "127.0.0.1",
            "http://127.0.0.1:9/notify",
        ))
        .await
        .unwrap();
    let paid = client()
        .post(format!("{}/sim/pay", simulator_url(app)))
        .json(&json!({"out_trade_no": stranger}))
        .send()
        .await
        .unwrap();
    assert!(paid.status().is_success());
    // An amount changed in the shop's books.
    let store = jit_pays::db::connect(&db_config)
        .await
        .expect("the shop's database");
    use sea_orm::ConnectionTrait;
    store
        .connection()
        .execute_unprepared(&format!(
            "UPDATE pays_pay_log SET amount_fen = 1235 WHERE order_id = '{first}'"
        ))
        .await
        .unwrap();

    let output = run(app, &env, &["bills", "download", "--date", &date]).await;
    assert!(output.status.success(), "{}", text(&output));
    let (code, report) = reconcile_json(app, &env, &date).await;
    assert_eq!(code, Some(3), "mismatches remain: {report:#}");
    assert_eq!(report["clean"], false);
    let day = &report["days"][0];
    let mismatches = day["mismatches"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = mismatches
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["orderId"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("amount_mismatch", first.as_str()),
            ("missing_locally", stranger)
        ],
        "{report:#}"
    );
    assert_eq!(mismatches[0]["local"]["amountFen"], 1235);
    assert_eq!(mismatches[0]["bill"]["amountFen"], 1234);
    assert_eq!(mismatches[1]["bill"]["amountFen"], 777);
    assert_eq!(day["matched"], 1, "{second} still agrees");
    assert_eq!(day["eventsRaised"], 2);

    // The table, and a second run: the same mismatches, no new event.
    let output = run(app, &env, &["reconcile", "--date", &date]).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("missing_locally")
            && table.contains(stranger)
            && table.contains("12.35 success")
            && table.contains("12.34 SUCCESS (line"),
        "{table}"
    );
    assert!(table.contains("(0 new events)"), "{table}");

    let output = run(
        app,
        &env,
        &["events", "ls", "--json", "--type", "reconcile.mismatch"],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let events: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut orders: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["order_id"].as_str().unwrap())
        .collect();
    orders.sort_unstable();
    let mut expected = vec![first.as_str(), stranger];
    expected.sort_unstable();
    assert_eq!(orders, expected, "{events:#}");

    // A date with a typo is refused, naming the argument.
    let output = run(app, &env, &["reconcile", "--date", "2026-02-30"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--date"), "{}", text(&output));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_bills_setting_fails_jit_check_and_the_start() {
    let dir =
        crate::util::example_app_with(|text| format!("{text}\n[bills]\ndownload_at = \"25:00\"\n"));
    let app = dir.path();
    let output = run(app, &Vec::new(), &["check"]).await;
    assert!(!output.status.success());
    let said = text(&output);
    assert!(
        said.contains("bills.download_at") && said.contains("HH:MM"),
        "{said}"
    );
    let said = crate::binary::refused_to_start(app, &[]);
    assert!(said.contains("bills.download_at"), "{said}");
}
