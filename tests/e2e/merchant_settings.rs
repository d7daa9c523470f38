//! A WeChat Pay instance's merchant settings through the stock host: the seed's own
//! instance pays against the in-process simulator, `jit check` and `jit serve` refuse
//! settings WeChat would refuse, `jit show` shows what the element uses, and failures that
//! are the operator's reach API callers without files or internal URLs.

use std::process::{Command, Output};

use std::sync::Arc;

use jit::{GatewayTarget, Host, Overrides};
use jit_runtime::{Element, ElementError, LoadContext, Loader};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{
    TOKEN, TempApp, client, copy_example_app, error_code, json_reply, test_overrides,
};

/// The seed document's instance, verbatim: e.json carries `"apiKey": "your_api_key_here"`,
/// the config file the real values.
const SEED_E_JSON: &str = r#"{
  "type": "pays.WechatPayType",
  "title": "My WeChat Pay",
  "mchId": "1234567890",
  "apiKey": "your_api_key_here",
  "frontBundleEntry": "./myWechatPay.json",
  "backendBundleEntry": "."
}"#;
const SEED_CONFIG: &str = r#"{
  "config": {
    "appId": "wx1234567890abcdef",
    "mchId": "1234567890",
    "apiKey": "abcdef1234567890abcdef1234567890"
  }
}"#;
const SEED_KEY: &str = "abcdef1234567890abcdef1234567890";

fn seed_app(gateway: &str) -> TempApp {
    TempApp::new(
        gateway,
        &[
            ("elements/pays/myWechatPay/e.json", SEED_E_JSON),
            ("elements/pays/myWechatPay/myWechatPay.json", SEED_CONFIG),
        ],
    )
}

fn jit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jit"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .env_remove("JIT_DATABASE_URL")
        .env("JIT_LISTEN", "127.0.0.1:0");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the jit binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn serve(app: &TempApp, gateway: Option<GatewayTarget>) -> jit::ServerHandle {
    Host::new()
        .serve_in_process(
            app.path(),
            Overrides {
                database_url: Some(format!("sqlite://{}", app.path().join("shop.db").display())),
                gateway,
                ..test_overrides()
            },
        )
        .await
        .expect("the shop starts")
}

async fn post(handle: &jit::ServerHandle, path: &str, body: Value) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}/api/acme/shop/{path}", handle.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the shop answers");
    json_reply(response).await
}

#[tokio::test]
async fn the_seeds_own_instance_pays_against_the_in_process_simulator() {
    let app = seed_app("[gateway]\nsimulator = true\n");
    let handle = serve(&app, None).await;
    let (status, order) = post(
        &handle,
        "pays/services/PaySvc/create",
        json!({"subject": "Product Purchase", "amount": 99.99}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    // The simulator registered the merchant the element signs as (the config file's key,
    // not e.json's placeholder): unifiedorder is accepted, no SIGNERROR.
    let (status, url) = post(
        &handle,
        "pays/services/PaySvc/getPayUrl",
        json!({"orderId": order["orderId"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{url}");
    assert!(
        url["payUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with("weixin://wxpay/bizpayurl")),
        "{url}"
    );
    handle.shutdown().await.unwrap();
}

#[test]
fn show_prints_the_merchant_settings_the_element_uses_key_masked() {
    let app = seed_app("[gateway]\nsimulator = true\n");
    let output = jit(
        &[
            "show",
            "pays.myWechatPay",
            "--app",
            app.path().to_str().unwrap(),
        ],
        &[],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let shown: Value = serde_json::from_str(&stdout).expect("show prints JSON");
    let merchant = &shown["merchantSettings"];
    assert_eq!(
        merchant["appId"]["value"], "wx1234567890abcdef",
        "{merchant}"
    );
    assert_eq!(merchant["mchId"]["value"], "1234567890", "{merchant}");
    assert_eq!(merchant["apiKey"]["value"], "******", "{merchant}");
    assert!(
        merchant["apiKey"]["from"]
            .as_str()
            .is_some_and(|from| from.ends_with("myWechatPay.json: config.apiKey")),
        "{merchant}"
    );
    assert!(!stdout.contains(SEED_KEY), "the key is masked:\n{stdout}");
}

#[test]
fn check_and_serve_refuse_merchant_settings_wechat_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_app(dir.path());
    let app = dir.path().to_str().unwrap();
    let secret = "not-a-key-but-secret";
    let bad = [
        ("WECHAT_MCH_ID", "12ab"),
        ("WECHAT_APP_ID", "wx123"),
        ("WECHAT_API_KEY", secret),
    ];
    let expected = [
        "elements/pays/myWechatPay/myWechatPay.json: config.mchId: `mchId` must be the merchant id: 8 to 10 digits (found \"12ab\")",
        "elements/pays/myWechatPay/myWechatPay.json: config.appId: `appId` must be",
        "elements/pays/myWechatPay/myWechatPay.json: config.apiKey: `apiKey` must be the merchant's API key: exactly 32 letters and digits",
    ];

    let output = jit(&["check", "--app", app], &bad);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "check passed:\n{stdout}");
    for line in expected {
        assert!(stdout.contains(line), "`{line}` missing from:\n{stdout}");
    }
    assert!(!stdout.contains(secret), "the key was printed:\n{stdout}");

    // Only the mchId is wrong: that one line, nothing else.
    let output = jit(&["check", "--app", app], &bad[..1]);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "check passed:\n{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    // serve stops before taking any order, with the same problems.
    let output = jit(&["serve", "--app", app], &bad);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "serve started:\n{stderr}");
    for line in expected {
        assert!(stderr.contains(line), "`{line}` missing from:\n{stderr}");
    }
    assert!(!stderr.contains(secret), "the key was printed:\n{stderr}");

    // The example itself is sound.
    let output = jit(&["check", "--app", app], &[]);
    assert!(output.status.success(), "{}", text(&output.stdout));
}

#[tokio::test]
async fn operator_failures_reach_callers_without_files_or_internal_urls() {
    // A gateway that is not there: a closed loopback port.
    let port = crate::util::free_port();
    let gateway = format!("http://127.0.0.1:{port}");
    let app = seed_app(&format!("[gateway]\nbase_url = \"{gateway}\"\n"));
    app.write(
        "elements/pays/OtherPayType/e.json",
        r#"{"type": "pays.WechatPayType", "title": "A Type of the app"}"#,
    );
    app.write(
        "elements/pays/otherPay/e.json",
        r#"{"type": "pays.OtherPayType", "title": "Other", "appId": "wx1234567890abcdef", "mchId": "1234567891", "apiKey": "abcdef1234567890abcdef1234567891"}"#,
    );
    let handle = serve(&app, Some(GatewayTarget::Remote(gateway.clone()))).await;
    let app_dir = app.path().to_str().unwrap().to_owned();

    let (status, order) = post(
        &handle,
        "pays/services/PaySvc/create",
        json!({"subject": "Sale", "amount": 1, "element": "pays.myWechatPay"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    for path in [
        "pays/services/PaySvc/getPayUrl",
        "pays/myWechatPay/getPayUrl",
    ] {
        let (status, body) = post(&handle, path, json!({"orderId": order["orderId"]})).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
        assert_eq!(error_code(&body), "UPSTREAM", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("the gateway could not be reached"),
            "{path}: {body}"
        );
        assert!(
            !message.contains(&port.to_string()) && !message.contains("http"),
            "{path}: the gateway's URL reached the caller: {body}"
        );
    }

    // A Type of the app named as the element: the caller's mistake, without the app's path.
    let (status, body) = post(
        &handle,
        "pays/services/PaySvc/create",
        json!({"subject": "Sale", "amount": 1, "element": "pays.OtherPayType"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.to_string().contains(&app_dir), "{body}");
    handle.shutdown().await.unwrap();
}

/// A Type of the host whose own setting is wrong: its build fails as a loader's does, with
/// the element's file in the message. `jit check` cannot know the Type's settings, so the
/// failure surfaces at the first call.
struct MisconfiguredTypeLoader;

#[jit_runtime::async_trait]
impl Loader for MisconfiguredTypeLoader {
    async fn load(&self, cx: LoadContext) -> Result<Arc<dyn Element>, ElementError> {
        Err(ElementError::InvalidSetting {
            key: "tier".into(),
            message: format!(
                "{}: `tier` must be gold or silver",
                cx.def().source.display()
            ),
        })
    }
}

#[tokio::test]
async fn an_instance_that_cannot_be_built_is_an_internal_error_not_the_callers() {
    let app = seed_app("[gateway]\nsimulator = true\n");
    app.write(
        "elements/pays/TieredPayType/e.json",
        r#"{"type": "pays.WechatPayType", "title": "Tiered", "tier": "bronze"}"#,
    );
    app.write(
        "elements/pays/tieredPay/e.json",
        r#"{"type": "pays.TieredPayType", "title": "Tiered shop", "appId": "wx1234567890abcdef", "mchId": "1234567890", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
    );
    let handle = Host::new()
        .loader("pays.TieredPayType", MisconfiguredTypeLoader)
        .serve_in_process(
            app.path(),
            Overrides {
                database_url: Some(format!("sqlite://{}", app.path().join("shop.db").display())),
                ..test_overrides()
            },
        )
        .await
        .expect("the shop starts: its merchant settings are sound");
    let app_dir = app.path().to_str().unwrap().to_owned();
    for (path, body) in [
        (
            "pays/services/PaySvc/create",
            json!({"subject": "Sale", "amount": 1, "element": "pays.tieredPay"}),
        ),
        (
            "pays/tieredPay/create",
            json!({"subject": "Sale", "amount": 1}),
        ),
    ] {
        let (status, body) = post(&handle, path, body).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
        assert_eq!(error_code(&body), "INTERNAL", "{body}");
        assert!(
            !body.to_string().contains(&app_dir) && !body.to_string().contains("e.json"),
            "{path}: a file reached the caller: {body}"
        );
    }
    // The sound instance next to it is unaffected.
    let (status, order) = post(
        &handle,
        "pays/services/PaySvc/create",
        json!({"subject": "Sale", "amount": 1, "element": "pays.myWechatPay"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    handle.shutdown().await.unwrap();
}
