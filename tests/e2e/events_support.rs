//! What the payment-events tests (issue 12) share: the example shop configured with
//! webhooks on SQLite or PostgreSQL, a client for its HTTP API, notifies signed as WeChat
//! signs them, a direct look at the database, a test-held write lock, and polling with a
//! deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::sqlx::{self, Connection, Executor, Row};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use wechatpay_v2::{ApiKey, Params, SignType};

use crate::util::{SHOP_APPID, SHOP_KEY, SHOP_MCH_ID, example_app, json_reply, v3_instance_live};

/// The shop's bearer token in these tests: not a published one, so a gateway that is not
/// the in-process simulator accepts it.
pub const TOKEN: &str = "events-e2e-token-b1946ac92492d2347c6235b4d2611184";

/// The webhook secret every endpoint of these tests shares (at least 32 characters).
pub const WEBHOOK_SECRET: &str = "whsec_events_e2e_5f4dcc3b5aa765d61d8327deb882cf99";

/// The database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    /// `shop.db` beside the app's app.toml.
    Sqlite,
    /// The server of `JIT_TEST_POSTGRES_URL`, in a schema of the test's own.
    Postgres { url: String, schema: String },
}

impl Backend {
    /// PostgreSQL in a fresh schema, when `JIT_TEST_POSTGRES_URL` names a server; else
    /// `None`, with a note that the PostgreSQL run of `test` is skipped.
    pub fn postgres(test: &str) -> Option<Backend> {
        match std::env::var("JIT_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres {
                url,
                schema: format!("jit_ev_{}", uuid::Uuid::new_v4().simple()),
            }),
            _ => {
                eprintln!(
                    "JIT_TEST_POSTGRES_URL not set: skipping {test} on PostgreSQL (CI runs it)"
                );
                None
            }
        }
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// The URL a test's own connections open for the app in `app_dir`.
    fn url(&self, app_dir: &Path) -> String {
        match self {
            Backend::Sqlite => format!("sqlite://{}", app_dir.join("shop.db").display()),
            Backend::Postgres { url, .. } => url.clone(),
        }
    }
}

/// How one `jit serve` of the example shop is configured, beyond the example's app.toml.
pub struct ShopConfig<'a> {
    /// Its database.
    pub backend: &'a Backend,
    /// `[gateway] base_url` (a simulator the test runs); `None`: the in-process simulator.
    pub gateway: Option<&'a str>,
    /// `[server] instance_id`.
    pub instance_id: &'a str,
    /// One `[[webhooks]]` per URL, each with [`WEBHOOK_SECRET`].
    pub webhooks: &'a [String],
    /// More app.toml tables, as TOML text (`[reconciler]`, ...).
    pub extra: &'a str,
}

/// The example shop in a temporary folder, its app.toml configured by `config`.
pub fn shop_app(config: &ShopConfig<'_>) -> tempfile::TempDir {
    let dir = example_app();
    if config.gateway.is_some() {
        // Not the simulator: the V3 instance needs its own keys, as the V2 one its token.
        v3_instance_live(dir.path());
    }
    write_app_toml(dir.path(), config);
    dir
}

fn write_app_toml(dir: &Path, config: &ShopConfig<'_>) {
    let file = dir.join("app.toml");
    let mut table: toml::Table = std::fs::read_to_string(&file)
        .expect("read app.toml")
        .parse()
        .expect("app.toml is TOML");
    section(&mut table, "env").insert("JIT_API_TOKEN".into(), TOKEN.into());
    section(&mut table, "server").insert("instance_id".into(), config.instance_id.into());
    if let Backend::Postgres { url, schema } = config.backend {
        let database = section(&mut table, "database");
        database.insert("url".into(), url.as_str().into());
        database.insert("schema".into(), schema.as_str().into());
    }
    if let Some(base_url) = config.gateway {
        let gateway = section(&mut table, "gateway");
        gateway.remove("simulator");
        gateway.insert("base_url".into(), base_url.into());
    }
    let mut text = table.to_string();
    for url in config.webhooks {
        text.push_str(&format!(
            "\n[[webhooks]]\nurl = \"{url}\"\nsecret = \"{WEBHOOK_SECRET}\"\n"
        ));
    }
    text.push('\n');
    text.push_str(config.extra);
    std::fs::write(&file, text).expect("write app.toml");
}

/// The table `[name]` of `table`, created if missing.
fn section<'t>(table: &'t mut toml::Table, name: &str) -> &'t mut toml::Table {
    table
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap_or_else(|| panic!("[{name}] is a table"))
}

/// The shop's `PaySvc` over HTTP, at one instance's base URL.
#[derive(Clone)]
pub struct ShopApi {
    base: String,
    http: reqwest::Client,
}

impl ShopApi {
    /// The API of the instance at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str, http: &reqwest::Client) -> Self {
        ShopApi {
            base: base.to_owned(),
            http: http.clone(),
        }
    }

    fn url(&self, function: &str) -> String {
        format!(
            "{}/api/demo/shop/pays/services/PaySvc/{function}",
            self.base
        )
    }

    /// Calls `function` with the token; panics unless it answers 200.
    pub async fn call(&self, function: &str, arguments: Value) -> Value {
        let response = self
            .http
            .post(self.url(function))
            .bearer_auth(TOKEN)
            .json(&arguments)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{function} at {}: {error}", self.base));
        let (status, body) = json_reply(response).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{function} at {}: {body}",
            self.base
        );
        body
    }

    /// Creates an order of 0.01 yuan; returns its id.
    pub async fn create_order(&self) -> String {
        let order = self
            .call("create", json!({"subject": "Events test", "amount": 0.01}))
            .await;
        assert_eq!(order["amountFen"], 1, "{order}");
        order["orderId"].as_str().expect("an orderId").to_owned()
    }

    /// Places the order at the gateway (`unifiedorder`), as showing its QR code does.
    pub async fn place_at_gateway(&self, order_id: &str) {
        self.call("getPayUrl", json!({"orderId": order_id})).await;
    }

    /// The order's status (`wait`, `success`, ...).
    pub async fn status(&self, order_id: &str) -> String {
        let order = self.call("query", json!({"orderId": order_id})).await;
        order["status"].as_str().expect("a status").to_owned()
    }

    /// Where WeChat posts payment notifies.
    pub fn notify_url(&self) -> String {
        self.url("wechatNotify")
    }

    /// POSTs a notify body; the HTTP status and the reply.
    pub async fn notify(&self, body: &str) -> (StatusCode, String) {
        let response = self
            .http
            .post(self.notify_url())
            .header("content-type", "text/xml")
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|error| panic!("notify at {}: {error}", self.base));
        let status = response.status();
        (status, response.text().await.expect("a reply"))
    }
}

/// WeChat's SUCCESS notify for `order_id` (1 fen, as [`ShopApi::create_order`] makes it),
/// paid under `transaction_id`, signed (MD5) with the example merchant's key.
pub fn paid_notify(order_id: &str, transaction_id: &str) -> String {
    let mut params = Params::new();
    for (key, value) in [
        ("appid", SHOP_APPID),
        ("bank_type", "CMC"),
        ("cash_fee", "1"),
        ("fee_type", "CNY"),
        ("is_subscribe", "N"),
        ("mch_id", SHOP_MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("out_trade_no", order_id),
        ("result_code", "SUCCESS"),
        ("return_code", "SUCCESS"),
        ("time_end", "20261127101010"),
        ("total_fee", "1"),
        ("trade_type", "NATIVE"),
        ("transaction_id", transaction_id),
    ] {
        params.insert(key.to_owned(), value.to_owned());
    }
    wechatpay_v2::sign_params(
        &mut params,
        SignType::Md5,
        &ApiKey::new(SHOP_KEY.to_owned()),
    );
    wechatpay_v2::xml::encode(&params)
}

/// A transaction id of WeChat's shape, distinct per `n`.
pub fn transaction_id(n: usize) -> String {
    format!("42000000002026112700{n:08}")
}

/// Polls `probe` until it gives `Some`, every 50 ms, for at most `limit`; panics naming
/// `what` when the time is up.
pub async fn poll<T>(limit: Duration, what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One row of `pays_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub order_id: String,
}

/// One row of `pays_webhook_delivery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRow {
    pub event_id: String,
    pub endpoint: String,
    pub instance: String,
    pub status_code: Option<i32>,
}

/// The shop's database, read directly (the tests' own view, beside the CLI's).
pub struct Db {
    connection: DatabaseConnection,
}

impl Db {
    /// Opens the database the app in `app_dir` uses (its tables exist: `jit serve` ran).
    pub async fn open(backend: &Backend, app_dir: &Path) -> Db {
        let mut options = ConnectOptions::new(backend.url(app_dir));
        options.max_connections(2).sqlx_logging(false);
        if let Backend::Postgres { schema, .. } = backend {
            options.set_schema_search_path(schema.clone());
        }
        let connection = Database::connect(options)
            .await
            .unwrap_or_else(|error| panic!("open the {} database: {error}", backend.label()));
        Db { connection }
    }

    async fn rows(&self, sql: &str) -> Vec<sea_orm::QueryResult> {
        let backend = self.connection.get_database_backend();
        self.connection
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// Every event, oldest first.
    pub async fn events(&self) -> Vec<EventRow> {
        self.rows("SELECT id, event_type, order_id FROM pays_event ORDER BY id")
            .await
            .iter()
            .map(|row| EventRow {
                id: row.try_get("", "id").expect("id"),
                event_type: row.try_get("", "event_type").expect("event_type"),
                order_id: row.try_get("", "order_id").expect("order_id"),
            })
            .collect()
    }

    /// The events of one order, oldest first.
    pub async fn events_of(&self, order_id: &str) -> Vec<EventRow> {
        let mut events = self.events().await;
        events.retain(|event| event.order_id == order_id);
        events
    }

    /// Each order's status, by order id.
    pub async fn statuses(&self) -> std::collections::BTreeMap<String, String> {
        self.rows("SELECT order_id, status FROM pays_pay_log")
            .await
            .iter()
            .map(|row| {
                (
                    row.try_get("", "order_id").expect("order_id"),
                    row.try_get("", "status").expect("status"),
                )
            })
            .collect()
    }

    /// Every recorded delivery attempt (each webhook attempt; a hooks attempt only when
    /// it failed), oldest first.
    pub async fn attempts(&self) -> Vec<AttemptRow> {
        self.rows(
            "SELECT event_id, endpoint, instance, status_code FROM pays_webhook_delivery ORDER BY id",
        )
        .await
        .iter()
        .map(|row| AttemptRow {
            event_id: row.try_get("", "event_id").expect("event_id"),
            endpoint: row.try_get("", "endpoint").expect("endpoint"),
            instance: row.try_get("", "instance").expect("instance"),
            status_code: row.try_get("", "status_code").expect("status_code"),
        })
        .collect()
    }

    /// Event deliveries not yet made (pending or dead), any consumer.
    pub async fn undelivered(&self) -> i64 {
        let rows = self
            .rows("SELECT COUNT(*) AS n FROM pays_event_delivery WHERE status <> 'delivered'")
            .await;
        rows[0].try_get("", "n").expect("a count")
    }

    /// Closes the pool.
    pub async fn close(self) {
        let _ = self.connection.close().await;
    }
}

/// The database's write lock (SQLite) or an order's row lock (PostgreSQL), held by the
/// test on a connection of its own until [`WriteLock::release`].
pub enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    /// SQLite: `BEGIN IMMEDIATE` (no other connection writes until released).
    /// PostgreSQL: a transaction holding `order_id`'s row `FOR UPDATE` (no transition of
    /// that order commits until released).
    pub async fn take(backend: &Backend, app_dir: &Path, order_id: &str) -> WriteLock {
        match backend {
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&backend.url(app_dir))
                    .await
                    .expect("open the SQLite database");
                connection
                    .execute("BEGIN IMMEDIATE")
                    .await
                    .expect("take SQLite's write lock");
                WriteLock::Sqlite(connection)
            }
            Backend::Postgres { url, schema } => {
                let mut connection = sqlx::PgConnection::connect(url)
                    .await
                    .expect("open PostgreSQL");
                // The schema's name is the test's own (letters, digits, `_`).
                let use_schema = format!("SET search_path TO {schema}");
                connection
                    .execute(sqlx::AssertSqlSafe(use_schema))
                    .await
                    .expect("use the test's schema");
                connection.execute("BEGIN").await.expect("BEGIN");
                let locked =
                    sqlx::query("SELECT id FROM pays_pay_log WHERE order_id = $1 FOR UPDATE")
                        .bind(order_id)
                        .fetch_all(&mut connection)
                        .await
                        .expect("lock the order's row");
                assert_eq!(locked.len(), 1, "order {order_id} exists");
                WriteLock::Postgres(connection)
            }
        }
    }

    /// PostgreSQL: how many other sessions wait for this lock (the notify's write, once
    /// it is in flight). SQLite keeps no such record: `None`.
    pub async fn waiters(&mut self) -> Option<i64> {
        match self {
            WriteLock::Sqlite(_) => None,
            WriteLock::Postgres(connection) => Some(
                sqlx::query(
                    "SELECT COUNT(*) AS n FROM pg_stat_activity \
                     WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))",
                )
                .fetch_one(connection)
                .await
                .expect("read pg_stat_activity")
                .get::<i64, _>("n"),
            ),
        }
    }

    /// Rolls the test's transaction back, releasing the lock.
    pub async fn release(self) {
        match self {
            WriteLock::Sqlite(mut connection) => {
                connection.execute("ROLLBACK").await.expect("ROLLBACK");
                let _ = connection.close().await;
            }
            WriteLock::Postgres(mut connection) => {
                connection.execute("ROLLBACK").await.expect("ROLLBACK");
                let _ = connection.close().await;
            }
        }
    }
}

/// `jit events ls --json <args> --app <app>`: the events it lists.
pub async fn events_ls(app: &Path, args: &[&str]) -> Vec<Value> {
    let app: PathBuf = app.to_owned();
    let args: Vec<String> = ["events", "ls", "--json"]
        .iter()
        .copied()
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::binary::jit(&args, &app)
            .output()
            .expect("jit events ls runs")
    })
    .await
    .expect("the CLI's task");
    let text = crate::binary::text(&output);
    assert!(output.status.success(), "jit events ls failed:\n{text}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    match serde_json::from_str(&stdout) {
        Ok(Value::Array(events)) => events,
        _ => panic!("jit events ls --json printed no JSON array:\n{text}"),
    }
}
