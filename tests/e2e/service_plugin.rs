//! Service elements written as native plugins, through the real `jit` binary.
//!
//! The first test follows a user's steps exactly, with the example shop already serving:
//! `jit new service` in the shop's folder (the running server refuses the element while its
//! library is missing and keeps serving), `cargo build` of the crate it wrote, the library
//! copied into the element's folder, and, without a restart, the new function called over
//! HTTP, where it calls `pays.myWechatPay` (an order is created and its payment link comes
//! back).
//!
//! The others install test plugins as service elements and check, over HTTP, the rules of
//! calls from plugins to the app: arguments checked, `loginRequired` honoured for the
//! request's caller, call cycles refused; and that a plugin of ABI version 1 still loads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::library_file_name;

use crate::binary::{Served, jit as jit_command, text};
use crate::util::{SHOP_TOKEN, client, copy_example_app, error_code, post_json};

/// The service `jit new service` creates in the first test.
const SERVICE: &str = "shop.services.CheckoutSvc";

/// Builds the crate whose manifest is `manifest` as a user would (`cargo build`, release
/// when these tests are optimised), with the same Rust compiler as the `jit` binary, into a
/// target dir under the workspace's (kept between runs, so only the first build is slow),
/// and returns the shared library cargo reports.
fn cargo_build(manifest: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("service-plugin-target");
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(manifest)
        .env("CARGO_TARGET_DIR", &target_dir);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact"
                && message["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "cdylib"))
        })
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .find(|file| {
            file.to_string_lossy()
                .ends_with(std::env::consts::DLL_SUFFIX)
        })
        .unwrap_or_else(|| {
            panic!(
                "cargo reported no shared library for {}",
                manifest.display()
            )
        })
}

/// The user's first steps: `jit new service` in the app, then `cargo build` of the crate it
/// wrote. Returns the library built.
fn create_and_build_service(app: &Path) -> PathBuf {
    let output = jit_command(&["new", "service", SERVICE], app)
        .output()
        .expect("jit new runs");
    let printed = text(&output);
    assert!(
        output.status.success(),
        "jit new service failed:\n{printed}"
    );
    // What it tells the user to do next.
    for step in [
        "cargo build --release --manifest-path plugins/checkout_svc/Cargo.toml",
        &format!(
            "cp plugins/checkout_svc/target/release/{} elements/shop/services/CheckoutSvc/",
            library_file_name("checkout_svc")
        ),
        "jit check && jit serve",
    ] {
        assert!(printed.contains(step), "`{step}` not in:\n{printed}");
    }
    // Nothing is overwritten by a second run.
    let again = jit_command(&["new", "service", SERVICE], app)
        .output()
        .expect("jit new runs");
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("already has an element `shop.services.CheckoutSvc`"),
        "{}",
        text(&again)
    );

    // Before its library is in place, `jit check` says which file is missing.
    let output = jit_command(&["check"], app)
        .output()
        .expect("jit check runs");
    let report = text(&output);
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains(&format!(
            "elements/shop/services/CheckoutSvc/e.json: backendBundleEntry: {SERVICE}: plugin library"
        )) && report.contains("does not exist"),
        "{report}"
    );

    cargo_build(&app.join("plugins/checkout_svc/Cargo.toml"))
}

/// The user's last step: the built library copied into the element's folder, where its
/// e.json's backendBundleEntry names it; a running `jit serve` picks it up.
fn install_service_library(app: &Path, library: &Path) {
    let file_name = library_file_name("checkout_svc");
    std::fs::copy(
        library,
        app.join("elements/shop/services/CheckoutSvc")
            .join(file_name),
    )
    .expect("copy the library into the element's folder");
}

#[tokio::test]
async fn a_service_from_jit_new_pays_for_a_cart_through_the_running_shop() {
    let app = tempfile::tempdir().expect("temp dir");
    copy_example_app(app.path());
    let http = client();
    let mut served = Served::start(app.path(), &[]);
    served.ready(&http).await;
    let base = served.base.clone();
    let post = |path: &str, arguments: Value, token: Option<&str>| {
        let url = format!("{base}/api/demo/shop/{path}");
        let http = &http;
        let token = token.map(str::to_owned);
        async move { post_json(http, url, &arguments, token.as_deref()).await }
    };
    let checkout = || {
        post(
            "shop/services/CheckoutSvc/checkout",
            json!({"cartId": "demo-cart"}),
            Some(SHOP_TOKEN),
        )
    };
    let (status, before) = checkout().await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{before}");

    // Written while the shop serves: the new element has no library yet, so the server
    // refuses it, says why, and keeps serving the app it has.
    let app_dir = app.path().to_owned();
    let library = tokio::task::spawn_blocking(move || create_and_build_service(&app_dir))
        .await
        .expect("creating and building the service");
    wait_for(
        || served.logs().contains("reload refused"),
        "a refused reload",
    )
    .await;
    let logs = served.logs();
    assert!(
        logs.contains("CheckoutSvc/e.json: backendBundleEntry:") && logs.contains("does not exist"),
        "{logs}"
    );
    let (status, id) = post(
        "pays/myWechatPay/generateOrderId",
        json!({}),
        Some(SHOP_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the old app keeps serving: {id}");

    // The library dropped in: live without a restart.
    install_service_library(app.path(), &library);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (status, paid) = loop {
        let (status, answer) = checkout().await;
        if status != StatusCode::NOT_FOUND || std::time::Instant::now() > deadline {
            break (status, answer);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let output = jit_command(&["check"], app.path())
        .output()
        .expect("jit check runs");
    assert!(output.status.success(), "{}", text(&output));

    assert_eq!(status, StatusCode::OK, "{paid}\n{}", served.logs());
    assert_eq!(paid["cartId"], "demo-cart", "{paid}");
    assert_eq!(paid["amountYuan"], "12.50", "{paid}");
    assert!(
        paid["payUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with("weixin://wxpay/bizpayurl?pr=")),
        "{paid}"
    );
    // The order exists in the shop, owned by pays.myWechatPay.
    let order_id = paid["orderId"].as_str().expect("an orderId").to_owned();
    let (status, order) = post(
        "pays/myWechatPay/check",
        json!({"orderId": order_id}),
        Some(SHOP_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["element"], "pays.myWechatPay", "{order}");
    assert_eq!(order["amountYuan"], "12.50", "{order}");
    assert_eq!(order["status"], "wait", "{order}");

    // The plugin's own refusal, and the runtime's checks before the plugin is entered.
    let (status, missing) = post(
        "shop/services/CheckoutSvc/checkout",
        json!({"cartId": "no-such-cart"}),
        Some(SHOP_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(error_code(&missing), "CART_NOT_FOUND", "{missing}");
    let (status, anonymous) = post(
        "shop/services/CheckoutSvc/checkout",
        json!({"cartId": "demo-cart"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{anonymous}");

    served.stop_cleanly().await;
}

/// Polls `done` every 100 ms for up to 30 s.
async fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The test plugins the rule checks install.
struct TestPlugins {
    probe: PathBuf,
    abi1: PathBuf,
}

fn test_plugins() -> &'static TestPlugins {
    static BUILT: OnceLock<TestPlugins> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut built = test_support::build_cdylibs(
            &["test-probe-plugin", "test-abi1-plugin"],
            !cfg!(debug_assertions),
        );
        let mut take = |name: &str| built.remove(name).expect("built above");
        TestPlugins {
            probe: take("test_probe_plugin"),
            abi1: take("test_abi1_plugin"),
        }
    })
}

/// Writes a `services.NormalType` instance at `elements/shop/services/<name>/` whose
/// library is a copy of `library`.
fn install_service(app: &Path, name: &str, library: &Path, file_name: &str, functions: Value) {
    let folder = app.join("elements/shop/services").join(name);
    std::fs::create_dir_all(&folder).expect("create the element's folder");
    std::fs::copy(library, folder.join(file_name)).expect("copy the library");
    let e_json = json!({
        "type": "services.NormalType",
        "backendBundleEntry": file_name,
        "functionList": functions
    });
    std::fs::write(
        folder.join("e.json"),
        serde_json::to_string_pretty(&e_json).expect("json"),
    )
    .expect("write the e.json");
}

/// `callElement` (declared with `loginRequired` as given) and `bounce` of the probe plugin.
fn probe_functions(call_needs_login: bool) -> Value {
    json!([
        {"name": "callElement", "loginRequired": call_needs_login, "args": [
            {"name": "element", "dataType": "Stext"},
            {"name": "function", "dataType": "Stext"},
            {"name": "args", "dataType": "JSON", "required": false}
        ]},
        {"name": "bounce", "args": [{"name": "to", "dataType": "Stext"}]}
    ])
}

#[tokio::test]
async fn calls_from_plugins_follow_the_http_rules_and_old_plugins_still_load() {
    let app = tempfile::tempdir().expect("temp dir");
    copy_example_app(app.path());
    let plugins = tokio::task::spawn_blocking(test_plugins)
        .await
        .expect("building the test plugins");
    let probe_file = library_file_name("test_probe_plugin");
    install_service(
        app.path(),
        "Probe",
        &plugins.probe,
        &probe_file,
        probe_functions(true),
    );
    install_service(
        app.path(),
        "PublicProbe",
        &plugins.probe,
        &probe_file,
        probe_functions(false),
    );
    install_service(
        app.path(),
        "OldSvc",
        &plugins.abi1,
        &library_file_name("test_abi1_plugin"),
        json!([{"name": "echo", "args": [{"name": "note", "dataType": "Stext"}]}]),
    );
    let output = jit_command(&["check"], app.path())
        .output()
        .expect("jit check runs");
    assert!(output.status.success(), "{}", text(&output));

    let http = client();
    let mut served = Served::start(app.path(), &[]);
    served.ready(&http).await;
    let base = served.base.clone();
    let post = |path: &str, arguments: Value, token: Option<&str>| {
        let url = format!("{base}/api/demo/shop/shop/services/{path}");
        let http = &http;
        let token = token.map(str::to_owned);
        async move { post_json(http, url, &arguments, token.as_deref()).await }
    };
    let create = |amount: Value| {
        json!({
            "element": "pays.myWechatPay",
            "function": "create",
            "args": {"subject": "From a plugin", "amount": amount}
        })
    };

    // A plugin reaches pays.myWechatPay for its caller.
    let (status, order) = post("Probe/callElement", create(json!("3.20")), Some(SHOP_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{order}\n{}", served.logs());
    assert_eq!(order["amountYuan"], "3.20", "{order}");
    assert_eq!(order["element"], "pays.myWechatPay", "{order}");

    // Its arguments are checked against create's declaration.
    let (status, bad) = post(
        "Probe/callElement",
        create(json!("a lot")),
        Some(SHOP_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(error_code(&bad), "BAD_ARGUMENTS", "{bad}");

    // An anonymous request reaches a function needing no login; the plugin calls create,
    // which needs one, for that same anonymous caller.
    let (status, anonymous) = post("PublicProbe/callElement", create(json!("3.20")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{anonymous}");
    assert_eq!(error_code(&anonymous), "UNAUTHORIZED", "{anonymous}");
    assert!(
        anonymous["error"]["message"].as_str().is_some_and(
            |message| message.contains("`pays.myWechatPay.create` requires a logged-in caller")
        ),
        "{anonymous}"
    );

    // Two plugin elements calling each other without end: refused, and the server serves on.
    let (status, cycle) = post(
        "Probe/bounce",
        json!({"to": "shop.services.PublicProbe"}),
        Some(SHOP_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{cycle}");
    assert_eq!(error_code(&cycle), "CALL_DEPTH_EXCEEDED", "{cycle}");

    // A plugin built for ABI version 1 loads and is served.
    let (status, echoed) = post("OldSvc/echo", json!({"note": "old"}), Some(SHOP_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{echoed}");
    assert_eq!(echoed["abi"], 1, "{echoed}");
    assert_eq!(echoed["args"], json!({"note": "old"}), "{echoed}");
    assert_eq!(
        echoed["element"]["fullName"], "shop.services.OldSvc",
        "{echoed}"
    );

    // The path the cycle took is in the server's log, not in the answer.
    let logs = served.logs();
    assert!(
        logs.contains("shop.services.PublicProbe.bounce → shop.services.Probe.bounce →"),
        "{logs}"
    );
    served.stop_cleanly().await;
}

#[test]
fn check_says_what_a_service_element_without_code_lacks() {
    let app = tempfile::tempdir().expect("temp dir");
    copy_example_app(app.path());
    let folder = app.path().join("elements/shop/services/GreetSvc");
    std::fs::create_dir_all(&folder).expect("create the element's folder");
    let e_json = json!({
        "type": "services.NormalType",
        "functionList": [{"name": "hello", "args": []}]
    });
    std::fs::write(folder.join("e.json"), e_json.to_string()).expect("write e.json");

    let output = jit_command(&["check"], app.path())
        .output()
        .expect("jit check runs");
    let report = text(&output);
    assert!(!output.status.success(), "jit check accepted it:\n{report}");
    let line = report
        .lines()
        .find(|line| line.starts_with(&folder.join("e.json").display().to_string()))
        .unwrap_or_else(|| panic!("nothing about GreetSvc:\n{report}"));
    for part in [
        "no loader is registered for any element of its chain shop.services.GreetSvc → \
         services.NormalType → services.Meta",
        "give `shop.services.GreetSvc` code of its own: a native plugin library in its folder \
         named by its backendBundleEntry (`jit new service shop.services.GreetSvc` writes one",
    ] {
        assert!(line.contains(part), "`{part}` not in: {line}");
    }
}
