//! A shop for tests: a temporary app with two WeChat Pay instances, the simulator as the
//! gateway over real HTTP, a real notify endpoint forwarding to PaySvc, and a real database.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use jit_pays::{
    OutboxHandle, Pay, PayEvent, PayEvents, PayStatus, PaySvc, PaysSettings, ReconcilerSettings,
};
use jit_runtime::App;
use parking_lot::Mutex;
use wechatpay_sim::{MerchantConfig, SimConfig, SimHandle, Simulator};

use super::TestDb;

/// The first instance's merchant (the simulator's default one).
pub const APP_ID: &str = wechatpay_sim::DEFAULT_APPID;
/// Its merchant id.
pub const MCH_ID: &str = wechatpay_sim::DEFAULT_MCH_ID;
/// Its key.
pub const API_KEY: &str = wechatpay_sim::DEFAULT_API_KEY;
/// The second instance's merchant.
pub const OTHER_APP_ID: &str = "wx0000000000000002";
/// Its merchant id.
pub const OTHER_MCH_ID: &str = "20000200";
/// Its key.
pub const OTHER_API_KEY: &str = "abcdefghijklmnopqrstuvwxyz012345";

/// A running shop.
pub struct Shop {
    /// The app.
    pub app: App,
    /// The gateway.
    pub sim: SimHandle,
    /// The database (kept alive).
    pub db: TestDb,
    /// `pays.myWechatPay`.
    pub pay: Arc<dyn Pay>,
    /// `pays.otherPay`.
    pub other: Arc<dyn Pay>,
    /// `pays.services.PaySvc`.
    pub svc: Arc<PaySvc>,
    /// Every event the outbox handed to the subscribers, in order
    /// ([`Shop::delivered_events`] waits for the outbox first).
    events: Arc<Mutex<Vec<PayEvent>>>,
    /// The running outbox (a test may stop it and start another).
    pub outbox: Option<OutboxHandle>,
    /// The notify endpoint's base URL.
    pub public_base_url: String,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Options for a shop.
pub struct ShopOptions {
    /// Simulator configuration (merchants are added).
    pub sim: SimConfig,
    /// Order expiry.
    pub order_expiry: Duration,
    /// Reconciler timings.
    pub reconciler: ReconcilerSettings,
    /// The outbox (the instance id, webhooks; the poll is made fast).
    pub outbox: jit_pays::OutboxSettings,
    /// More element files of the app (path below the app dir, content).
    pub files: Vec<(String, String)>,
    /// Applied to the app's builder after the family is registered (more loaders).
    pub builder: Option<Box<dyn FnOnce(jit_runtime::AppBuilder) -> jit_runtime::AppBuilder + Send>>,
    /// V3 instances trust the simulator's WeChat keys, read through this merchant's V3
    /// material (as a host running the simulator hands them over); `None`: their own.
    pub simulator_keys_of: Option<&'static str>,
}

impl Default for ShopOptions {
    fn default() -> Self {
        ShopOptions {
            // Notify retries 1000× faster than WeChat, so retried notifies come in ms.
            sim: SimConfig::default().with_time_scale(1000.0),
            order_expiry: Duration::from_secs(2 * 3600),
            reconciler: ReconcilerSettings::default(),
            outbox: jit_pays::OutboxSettings {
                poll_interval: Duration::from_millis(20),
                ..jit_pays::OutboxSettings::new("test-shop")
            },
            files: Vec::new(),
            builder: None,
            simulator_keys_of: None,
        }
    }
}

async fn notify_endpoint(State(svc): State<Arc<PaySvc>>, body: Bytes) -> String {
    svc.wechat_notify(&body).await.xml()
}

async fn refund_notify_endpoint(State(svc): State<Arc<PaySvc>>, body: Bytes) -> String {
    svc.wechat_refund_notify_from(&body, None).await.xml()
}

/// A V3 notify as the host's `http` body format hands it over.
fn notify_request(headers: &axum::http::HeaderMap, body: &Bytes) -> jit_pays::NotifyRequest {
    jit_pays::NotifyRequest::new(
        headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
        String::from_utf8_lossy(body),
    )
}

/// The answer of a V3 notify: its status, and its JSON body when it has one.
fn v3_answer(reply: &jit_pays::NotifyReply) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::from_u16(reply.v3_status()).unwrap();
    match reply.v3_body() {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    }
}

async fn notify_v3_endpoint(
    State(svc): State<Arc<PaySvc>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    v3_answer(
        &svc.wechat_notify_v3_from(&notify_request(&headers, &body), None)
            .await,
    )
}

async fn refund_notify_v3_endpoint(
    State(svc): State<Arc<PaySvc>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    v3_answer(
        &svc.wechat_refund_notify_v3_from(&notify_request(&headers, &body), None)
            .await,
    )
}

/// Where the shop serves V3 payment notifies, under its base URL.
pub const V3_NOTIFY_PATH: &str = "/api/demo/shop/pays/services/PaySvc/wechatNotifyV3";
/// Where the shop serves V3 refund notifies.
pub const V3_REFUND_NOTIFY_PATH: &str = "/api/demo/shop/pays/services/PaySvc/wechatRefundNotifyV3";

/// WeChat's V3 keys of a simulator, handed to the family as a host running it does.
#[derive(Debug)]
struct SimulatorKeys(jit_pays::SimulatorV3Keys);

impl jit_pays::SimulatedWechat for SimulatorKeys {
    fn wechat_v3_keys(&self) -> Result<jit_pays::SimulatorV3Keys, String> {
        Ok(self.0.clone())
    }
}

/// Where the shop serves refund notifies, under its base URL.
pub const REFUND_NOTIFY_PATH: &str = "/api/demo/shop/pays/services/PaySvc/wechatRefundNotify";

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes the app's files into `dir`.
pub fn write_app(dir: &std::path::Path) {
    write(
        &dir.join("app.toml"),
        &format!(
            "[app]\norg = \"demo\"\nname = \"shop\"\n\n[env]\n\
             PAYS_TEST_APP_ID = \"{APP_ID}\"\nPAYS_TEST_MCH_ID = \"{MCH_ID}\"\n\
             PAYS_TEST_API_KEY = \"{API_KEY}\"\n"
        ),
    );
    // As in the seed: mchId/apiKey in e.json, the config file wins.
    write(
        &dir.join("elements/pays/myWechatPay/e.json"),
        r#"{
  "type": "pays.WechatPayType",
  "title": "My WeChat Pay",
  "mchId": "1234567890",
  "apiKey": "your_api_key_here",
  "frontBundleEntry": "./myWechatPay.json",
  "backendBundleEntry": "."
}"#,
    );
    write(
        &dir.join("elements/pays/myWechatPay/myWechatPay.json"),
        r#"{"config": {"appId": "{{PAYS_TEST_APP_ID}}", "mchId": "{{PAYS_TEST_MCH_ID}}", "apiKey": "{{PAYS_TEST_API_KEY}}"}}"#,
    );
    write(
        &dir.join("elements/pays/otherPay/e.json"),
        &format!(
            r#"{{"type": "pays.WechatPayType", "title": "Other merchant", "mchId": "{OTHER_MCH_ID}", "apiKey": "{OTHER_API_KEY}"}}"#
        ),
    );
    write(
        &dir.join("elements/pays/otherPay/otherPay.json"),
        &format!(r#"{{"config": {{"appId": "{OTHER_APP_ID}"}}}}"#),
    );
}

/// Starts a shop on `db`.
pub async fn start(db: TestDb, options: ShopOptions) -> Shop {
    let sim = Simulator::start(options.sim.with_merchant(MerchantConfig::new(
        OTHER_APP_ID,
        OTHER_MCH_ID,
        OTHER_API_KEY,
    )))
    .await
    .expect("simulator");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_base_url = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path());
    for (path, content) in &options.files {
        write(&dir.path().join(path), content);
    }
    let mut settings = PaysSettings::new(
        public_base_url.clone(),
        format!("{public_base_url}/api/demo/shop/pays/services/PaySvc/wechatNotify"),
        sim.base_url(),
    )
    .with_refund_notify_url(format!("{public_base_url}{REFUND_NOTIFY_PATH}"))
    .with_v3_notify_urls(
        format!("{public_base_url}{V3_NOTIFY_PATH}"),
        format!("{public_base_url}{V3_REFUND_NOTIFY_PATH}"),
    );
    if let Some(mch_id) = options.simulator_keys_of {
        let material = sim
            .v3_material(mch_id)
            .expect("a merchant")
            .expect("V3 material");
        settings = settings.with_simulator(Arc::new(SimulatorKeys(jit_pays::SimulatorV3Keys {
            public_key_id: material.wechatpay_public_key_id,
            public_key_pem: material.wechatpay_public_key_pem,
            platform_certificate_pem: material.platform_certificate_pem,
            signs_with_certificate: false,
        })));
    }
    settings.order_expiry = options.order_expiry;
    settings.reconciler = options.reconciler;
    settings.gateway_timeout = Duration::from_secs(5);
    let builder = jit_runtime::AppBuilder::new(dir.path());
    let mut builder = jit_pays::register(builder, db.store.clone(), settings);
    if let Some(edit) = options.builder {
        builder = edit(builder);
    }
    let app = builder.build().await.unwrap_or_else(|e| panic!("app: {e}"));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    app.service::<PayEvents>()
        .expect("events service")
        .subscribe(move |event| sink.lock().push(event.clone()));
    let outbox = jit_pays::start_outbox(&app, options.outbox)
        .await
        .expect("outbox");
    let svc = app
        .get::<PaySvc>("pays.services.PaySvc")
        .await
        .expect("PaySvc");
    let router = Router::new()
        .route(
            "/api/demo/shop/pays/services/PaySvc/wechatNotify",
            post(notify_endpoint),
        )
        .route(REFUND_NOTIFY_PATH, post(refund_notify_endpoint))
        .route(V3_NOTIFY_PATH, post(notify_v3_endpoint))
        .route(V3_REFUND_NOTIFY_PATH, post(refund_notify_v3_endpoint))
        .with_state(svc.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let pay = app.get::<dyn Pay>("pays.myWechatPay").await.expect("pay");
    let other = app
        .get::<dyn Pay>("pays.otherPay")
        .await
        .expect("other pay");
    Shop {
        app,
        sim,
        db,
        pay,
        other,
        svc,
        events,
        outbox: Some(outbox),
        public_base_url,
        _dir: dir,
        server,
    }
}

impl Shop {
    /// An order of `amount` yuan with `pays.myWechatPay`, placed at the simulator (NATIVE),
    /// paid there, and recorded by its notify.
    pub async fn paid_order(&self, amount: &str) -> jit_pays::PayLog {
        let amount = wechatpay_v2::Fen::from_yuan_str(amount).expect("an amount");
        let order = self.pay.create("已支付订单", amount, None).await.unwrap();
        self.pay
            .get_pay_url(
                &order.order_id,
                jit_pays::PayType::Native,
                &jit_pays::Payer::default(),
            )
            .await
            .unwrap();
        self.sim.pay(order.order_id.as_str()).unwrap();
        assert_eq!(self.wait_settled(&order.order_id).await, PayStatus::Success);
        self.pay.get_order(&order.order_id).await.unwrap()
    }

    /// Waits until the order leaves `wait` (or 10 s pass) and returns its state.
    pub async fn wait_settled(&self, order_id: &str) -> PayStatus {
        for _ in 0..200 {
            let order = self.db.store.get_order(order_id).await.unwrap();
            if order.status != PayStatus::Wait {
                return order.status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PayStatus::Wait
    }

    /// Waits until the simulator holds no notify it may still deliver (or 10 s pass, then
    /// panics): from then on, no notify arrives until the next payment.
    pub async fn wait_no_pending_notifies(&self) {
        for _ in 0..1000 {
            if self.sim.inspect().pending_notifies == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the simulator still holds notifies to deliver after 10 s");
    }

    /// Waits until the outbox has handed every event written so far to the subscribers
    /// (or 10 s pass, then panics), and returns them in the order they were handed over.
    pub async fn delivered_events(&self) -> Vec<PayEvent> {
        super::wait_outbox_idle(&self.db.store).await;
        self.events.lock().clone()
    }

    /// The events handed to the subscribers so far, once the hooks (only) have none
    /// pending: for tests where a webhook endpoint may stay pending.
    pub async fn delivered_events_of_hooks(&self) -> Vec<PayEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let pending = jit_pays::outbox::pending_deliveries(self.db.store.connection())
                .await
                .unwrap();
            if pending.get("hooks").copied().unwrap_or(0) == 0 {
                return self.events.lock().clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hooks still pending"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The kinds of the events handed over for `order_id`, once the outbox is idle.
    pub async fn events_for(&self, order_id: &str) -> Vec<jit_pays::PayEventKind> {
        self.delivered_events()
            .await
            .iter()
            .filter(|e| e.order_id == order_id)
            .map(|e| e.kind)
            .collect()
    }
}

/// A payment notify as WeChat would send it for `order_id`, signed (MD5) with `key`.
pub fn signed_notify(
    appid: &str,
    mch_id: &str,
    key: &str,
    order_id: &str,
    total_fee: i64,
    transaction_id: &str,
) -> String {
    signed_notify_with_result(
        appid,
        mch_id,
        key,
        order_id,
        total_fee,
        transaction_id,
        "SUCCESS",
    )
}

/// [`signed_notify`] with the given `result_code` (`FAIL`: the payment did not succeed).
pub fn signed_notify_with_result(
    appid: &str,
    mch_id: &str,
    key: &str,
    order_id: &str,
    total_fee: i64,
    transaction_id: &str,
    result_code: &str,
) -> String {
    use wechatpay_v2::{ApiKey, Params, SignType, sign_params, xml};
    let mut params = Params::new();
    for (k, v) in [
        ("return_code", "SUCCESS"),
        ("result_code", result_code),
        ("appid", appid),
        ("mch_id", mch_id),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("is_subscribe", "N"),
        ("trade_type", "NATIVE"),
        ("bank_type", "CMC"),
        ("fee_type", "CNY"),
        ("transaction_id", transaction_id),
        ("out_trade_no", order_id),
        ("time_end", "20261127103000"),
    ] {
        params.insert(k.into(), v.into());
    }
    params.insert("total_fee".into(), total_fee.to_string());
    params.insert("cash_fee".into(), total_fee.to_string());
    sign_params(&mut params, SignType::Md5, &ApiKey::new(key));
    xml::encode(&params)
}

impl Shop {
    /// Waits until the order is paid after a local close (or 10 s pass).
    pub async fn wait_settled_flagged(&self, order_id: &str) -> PayStatus {
        for _ in 0..200 {
            let order = self.db.store.get_order(order_id).await.unwrap();
            if order.status == PayStatus::Success {
                return order.status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.db.store.get_order(order_id).await.unwrap().status
    }
}
