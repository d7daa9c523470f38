//! WeChat Pay API v3 through the real `jit serve` of the example shop, V2 and V3 side by
//! side, against a standalone `jit sim --config` whose `[v3]` keys this test wrote (so it
//! can also sign as WeChat, and forge): the full flow in public-key and platform-
//! certificate modes, and the V3 twins of `hostile.rs`'s notifies.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::v3_keys::{
    API_V3_KEY, MERCHANT_KEY_PEM, MERCHANT_SERIAL_NO, PLATFORM_CERTIFICATE_PEM, PLATFORM_KEY_PEM,
    STRANGER_KEY_PEM, WECHATPAY_PUBLIC_KEY_ID, WECHATPAY_PUBLIC_KEY_PRIVATE_PEM, sealed_payment,
    signer, wechat_signer,
};
use wechatpay_v3::{MerchantPrivateKey, PlatformSigner, SignedHeaders};

use crate::binary::{Served, jit, text};
use crate::events_support::{Backend, Db, ShopApi, ShopConfig, poll, shop_app};
use crate::util::{SHOP_APPID, SHOP_KEY, SHOP_MCH_ID, client, free_port};

/// The example app's V3 instance, its merchant and appid (its app.toml `[env]`).
const V3_PAY: &str = "pays.myWechatPayV3";
const V3_MCH_ID: &str = "1900000109";
const V3_APP_ID: &str = "wx5f6c7d8e9a0b1c2d";

/// How the simulator signs, and so how the shop verifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    PublicKey,
    PlatformCertificate,
}

/// A `jit sim --config` process, killed when dropped.
struct StandaloneSim {
    child: Child,
    url: String,
}

impl Drop for StandaloneSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

impl StandaloneSim {
    /// Starts `jit sim` with both merchants of the example shop, WeChat's V3 keys fixed,
    /// signing in `mode`, its config file in `dir`.
    fn start(dir: &Path, mode: Mode) -> Self {
        let merchant_public_key = MerchantPrivateKey::from_pem(MERCHANT_KEY_PEM)
            .unwrap()
            .public_key()
            .to_pem()
            .unwrap();
        let kind = match mode {
            Mode::PublicKey => "public_key",
            Mode::PlatformCertificate => "platform_certificate",
        };
        let config = format!(
            "time_scale = 100.0\n\n\
             [[merchants]]\nappid = \"{SHOP_APPID}\"\nmch_id = \"{SHOP_MCH_ID}\"\nkey = \"{SHOP_KEY}\"\n\n\
             [[merchants]]\nappid = \"{V3_APP_ID}\"\nmch_id = \"{V3_MCH_ID}\"\nkey = {}\n\n\
             [merchants.v3]\napi_v3_key = {}\nmerchant_serial_no = \"{MERCHANT_SERIAL_NO}\"\n\
             merchant_public_key_pem = {}\n\n\
             [v3]\nmode = {{ kind = \"{kind}\" }}\npublic_key_id = \"{WECHATPAY_PUBLIC_KEY_ID}\"\n\
             public_key_private_pem = {}\nplatform_certificate_pem = {}\n\
             platform_private_key_pem = {}\n",
            toml_string(API_V3_KEY),
            toml_string(API_V3_KEY),
            toml_string(&merchant_public_key),
            toml_string(WECHATPAY_PUBLIC_KEY_PRIVATE_PEM),
            toml_string(PLATFORM_CERTIFICATE_PEM),
            toml_string(PLATFORM_KEY_PEM),
        );
        let file = dir.join("sim.toml");
        std::fs::write(&file, config).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_jit"))
            .args([
                "sim",
                "--config",
                file.to_str().unwrap(),
                "--listen",
                &listen,
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sim.log")).unwrap())
            .spawn()
            .expect("jit sim starts");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "jit sim never listened: {}",
                std::fs::read_to_string(dir.join("sim.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        StandaloneSim {
            child,
            url: format!("http://{listen}"),
        }
    }
}

/// The example shop against `sim` (its V3 instance made live by [`shop_app`]), verifying
/// WeChat as `mode` says.
fn v3_shop(backend: &Backend, sim: &StandaloneSim, mode: Mode) -> tempfile::TempDir {
    let app = shop_app(&ShopConfig {
        backend,
        gateway: Some(&sim.url),
        instance_id: "v3-shop",
        webhooks: &[],
        extra: "",
    });
    if mode == Mode::PlatformCertificate {
        let config_file = app
            .path()
            .join("elements/pays/myWechatPayV3/myWechatPayV3.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&config_file).unwrap()).unwrap();
        let settings = config["config"].as_object_mut().unwrap();
        settings.remove("wechatpayPublicKeyId");
        settings.remove("wechatpayPublicKeyPath");
        settings.insert("platformCertificates".into(), json!(true));
        std::fs::write(&config_file, config.to_string()).unwrap();
    }
    app
}

/// `jit <args>` in the app folder, off the async workers.
async fn run_jit(app: &Path, args: &[&str]) -> std::process::Output {
    let mut command = jit(args, app);
    tokio::task::spawn_blocking(move || command.output().expect("jit runs"))
        .await
        .expect("the command's task")
}

/// An order of `amount` yuan with `element`, placed at the gateway and paid by its payer
/// (`jit sim pay`); the notify records it.
async fn paid_order(
    api: &ShopApi,
    app: &Path,
    sim: &StandaloneSim,
    element: &str,
    amount: f64,
) -> String {
    let order = api
        .call(
            "create",
            json!({"subject": "Side by side", "amount": amount, "element": element}),
        )
        .await;
    assert_eq!(order["element"], element, "{order}");
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let url = api.call("getPayUrl", json!({"orderId": order_id})).await;
    assert!(
        url["payUrl"].as_str().unwrap().starts_with("weixin://"),
        "{url}"
    );
    let paid = run_jit(app, &["sim", "pay", &order_id, "--sim", &sim.url]).await;
    assert!(paid.status.success(), "{}", text(&paid));
    poll(Duration::from_secs(15), "the payment notify", async || {
        (api.status(&order_id).await == "success").then_some(())
    })
    .await;
    order_id
}

fn beijing_today() -> String {
    wechatpay_v2::time::beijing_date(chrono::Utc::now())
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test]
async fn v2_and_v3_pay_refund_and_reconcile_side_by_side_in_both_verification_modes() {
    for mode in [Mode::PublicKey, Mode::PlatformCertificate] {
        // A fresh database per simulator: the day's books are this run's only.
        let mut backends = vec![Backend::Sqlite];
        backends.extend(Backend::postgres(
            "v2_and_v3_pay_refund_and_reconcile_side_by_side_in_both_verification_modes",
        ));
        for backend in &backends {
            let label = format!("{mode:?} on {}", backend.label());
            let dir = tempfile::tempdir().unwrap();
            let sim = StandaloneSim::start(dir.path(), mode);
            let app = v3_shop(backend, &sim, mode);
            let check = run_jit(app.path(), &["check"]).await;
            assert!(check.status.success(), "{label}: {}", text(&check));
            let http = client();
            let mut served = Served::start(app.path(), &[] as &[(&str, &OsStr)]);
            served.ready(&http).await;
            let api = ShopApi::new(&served.base, &http);

            let v3_order = paid_order(&api, app.path(), &sim, V3_PAY, 66.6).await;
            let v2_order = paid_order(&api, app.path(), &sim, "pays.myWechatPay", 3.0).await;
            // The query at WeChat agrees (V3's order query, V2's orderquery).
            for order_id in [&v3_order, &v2_order] {
                let checked = api.call("check", json!({"orderId": order_id})).await;
                assert_eq!(checked["status"], "success", "{label}: {checked}");
            }

            // Refunds, each through its element and its API; each notify settles one.
            for (order_id, amount) in [(&v3_order, 6.6), (&v2_order, 1.0)] {
                let refund = api
                    .call("refund", json!({"orderId": order_id, "amount": amount}))
                    .await;
                let refund_id = refund["refundId"].as_str().unwrap().to_owned();
                poll(Duration::from_secs(15), "the refund notify", async || {
                    let refunds = api.call("listRefunds", json!({"orderId": order_id})).await;
                    refunds
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r["refundId"] == refund_id && r["status"] == "success")
                        .then_some(())
                })
                .await;
                let queried = api
                    .call("queryRefund", json!({"refundId": refund_id}))
                    .await;
                assert_eq!(queried["status"], "success", "{label}: {queried}");
            }
            let summary = api.call("query", json!({"orderId": v3_order})).await;
            assert_eq!(summary["refundedFen"], 660, "{label}: {summary}");

            // One shop, two merchants, both days clean.
            let days = api
                .call("reconcile", json!({"date": beijing_today()}))
                .await;
            let days = days.as_array().unwrap();
            assert_eq!(days.len(), 2, "{label}: {days:?}");
            for day in days {
                assert_eq!(day["mismatches"], json!([]), "{label}: {day}");
                assert_eq!(day["matched"], 2, "{label}: {day}");
            }

            // Every order's events, once each, and its record in its API.
            let db = Db::open(backend, app.path()).await;
            for order_id in [&v3_order, &v2_order] {
                let kinds: Vec<String> = db
                    .events_of(order_id)
                    .await
                    .into_iter()
                    .map(|event| event.event_type)
                    .collect();
                assert_eq!(
                    kinds,
                    ["order.paid", "refund.requested", "refund.succeeded"],
                    "{label}"
                );
            }
            drop(served);
        }
    }
}

/// The sealed payment notify of `order_id` for `total` fen of `mchid`, associated data `aad`.
fn sealed(order_id: &str, total: i64, mchid: &str, aad: &str) -> String {
    sealed_payment(
        V3_APP_ID,
        mchid,
        order_id,
        total,
        "4200000000202612010000007777",
        aad,
    )
    .to_string()
}

/// POSTs a V3 notify to the shop; its status and body.
async fn post_v3(
    http: &reqwest::Client,
    base: &str,
    headers: Option<&SignedHeaders>,
    body: &str,
) -> (StatusCode, String) {
    let mut request = http
        .post(format!(
            "{base}/api/demo/shop/pays/services/PaySvc/wechatNotifyV3"
        ))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers.map(SignedHeaders::to_pairs).unwrap_or_default() {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("the shop answers");
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn hostile_v3_notifies_are_refused_and_change_nothing() {
    let backend = Backend::Sqlite;
    let dir = tempfile::tempdir().unwrap();
    let sim = StandaloneSim::start(dir.path(), Mode::PublicKey);
    let app = v3_shop(&backend, &sim, Mode::PublicKey);
    let http = client();
    let mut served = Served::start(app.path(), &[] as &[(&str, &OsStr)]);
    served.ready(&http).await;
    let api = ShopApi::new(&served.base, &http);
    let order = api
        .call(
            "create",
            json!({"subject": "Target", "amount": 5, "element": V3_PAY}),
        )
        .await;
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    api.place_at_gateway(&order_id).await;

    let body = sealed(&order_id, 500, V3_MCH_ID, "transaction");
    let sign = |signer: &PlatformSigner, body: &str| signer.sign(body.as_bytes()).unwrap();
    let stranger = signer(WECHATPAY_PUBLIC_KEY_ID, STRANGER_KEY_PEM);
    let unknown = signer(
        "PUB_KEY_ID_0000000000000000000000000000000000",
        WECHATPAY_PUBLIC_KEY_PRIVATE_PEM,
    );
    let stale = wechat_signer()
        .sign_at(
            body.as_bytes(),
            &(chrono::Utc::now().timestamp() - 3600).to_string(),
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        )
        .unwrap();
    let mut probe = sign(&wechat_signer(), &body);
    probe.signature = format!("WECHATPAY/SIGNTEST/{}", probe.signature);
    let mut envelope: Value = serde_json::from_str(&body).unwrap();
    let ciphertext = envelope["resource"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = if ciphertext.starts_with('A') {
        "B"
    } else {
        "A"
    };
    envelope["resource"]["ciphertext"] = json!(format!("{first}{}", &ciphertext[1..]));
    let tampered_ciphertext = envelope.to_string();
    let tampered_aad = sealed(&order_id, 500, V3_MCH_ID, "transaction").replace(
        "\"associated_data\":\"transaction\"",
        "\"associated_data\":\"refund\"",
    );
    assert!(tampered_aad.contains("\"associated_data\":\"refund\""));
    let wrong_amount = sealed(&order_id, 1, V3_MCH_ID, "transaction");
    let wrong_merchant = sealed(&order_id, 500, "1900000999", "transaction");

    let cases: Vec<(&str, Option<SignedHeaders>, String)> = vec![
        (
            "forged signature",
            Some(sign(&stranger, &body)),
            body.clone(),
        ),
        ("unknown serial", Some(sign(&unknown, &body)), body.clone()),
        ("stale timestamp", Some(stale), body.clone()),
        ("SIGNTEST probe", Some(probe), body.clone()),
        (
            "tampered ciphertext",
            Some(sign(&wechat_signer(), &tampered_ciphertext)),
            tampered_ciphertext,
        ),
        (
            "tampered associated data",
            Some(sign(&wechat_signer(), &tampered_aad)),
            tampered_aad,
        ),
        (
            "wrong amount",
            Some(sign(&wechat_signer(), &wrong_amount)),
            wrong_amount,
        ),
        (
            "wrong merchant",
            Some(sign(&wechat_signer(), &wrong_merchant)),
            wrong_merchant,
        ),
        ("no signature", None, body.clone()),
    ];
    for (case, headers, body) in cases {
        let (status, reply) = post_v3(&http, &served.base, headers.as_ref(), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {reply}");
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            reply,
            json!({"code": "FAIL", "message": "notify refused"}),
            "{case}"
        );
        assert_eq!(api.status(&order_id).await, "wait", "{case}");
    }

    // WeChat's own probe, from the simulator: refused as well.
    let probe = http
        .post(format!("{}/sim/v3/signtest", sim.url))
        .json(&json!({"out_trade_no": order_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), StatusCode::ACCEPTED);
    let outcome = poll(
        Duration::from_secs(10),
        "the probe's delivery",
        async || {
            let inspection: Value = http
                .get(format!("{}/sim/inspect", sim.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            inspection["notifies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|notify| notify["kind"] == "signtest_probe" && notify["outcome"] != "pending")
                .map(|notify| notify["outcome"].as_str().unwrap_or_default().to_owned())
        },
    )
    .await;
    assert_ne!(outcome, "acknowledged");
    assert_eq!(api.status(&order_id).await, "wait");

    // A storm of the genuine notify: one transition, one event, every copy 204.
    let genuine = sign(&wechat_signer(), &body);
    let replies = futures::future::join_all(
        (0..16).map(|_| post_v3(&http, &served.base, Some(&genuine), &body)),
    )
    .await;
    for (status, reply) in &replies {
        assert_eq!(*status, StatusCode::NO_CONTENT, "{reply}");
        assert!(reply.is_empty(), "{reply}");
    }
    assert_eq!(api.status(&order_id).await, "success");
    let db = Db::open(&backend, app.path()).await;
    let kinds: Vec<String> = db
        .events_of(&order_id)
        .await
        .into_iter()
        .map(|event| event.event_type)
        .collect();
    assert_eq!(kinds, ["order.paid"]);
    let logs = served.logs();
    assert!(
        !logs.contains(API_V3_KEY),
        "the APIv3 key never reaches the log"
    );
    assert!(!logs.contains("PRIVATE KEY"));
}
