//! A native Type plugin through the stock `jit` binary: the example discount plugin built
//! with cargo, dropped into a copy of the example shop, checked, listed and served by the
//! real process, called over real HTTP and paid through the simulator; and the libraries
//! `jit check` and `jit serve` must refuse before running anything of them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::library_file_name;

use crate::binary::{PATIENCE as PROCESS_PATIENCE, Served, jit as jit_command, wait_at_most};
use crate::util::{SHOP_TOKEN, client, copy_example_app, error_code, free_port, json_reply};

/// The libraries the tests install, built once per run of this test binary.
struct Libraries {
    /// `example-discount-plugin`.
    discount: PathBuf,
    /// `test-bad-plugin`: a well-formed header claiming ABI version 999.
    wrong_abi: PathBuf,
    /// A `cdylib` exporting a function but no `JIT_PLUGIN_HEADER`.
    no_header: PathBuf,
}

fn libraries() -> &'static Libraries {
    static BUILT: OnceLock<Libraries> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut built = test_support::build_cdylibs(
            &["example-discount-plugin", "test-bad-plugin"],
            !cfg!(debug_assertions),
        );
        // Per process, so two runs of this binary at once never write the same file.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("plugin-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch dir");
        let no_header = dir.join(library_file_name("no_header"));
        test_support::compile_cdylib(
            "#[unsafe(no_mangle)]\npub extern \"C\" fn unrelated_function() -> u32 { 7 }\n",
            "no_header",
            &no_header,
        );
        let mut take = |name: &str| built.remove(name).expect("built above");
        Libraries {
            discount: take("example_discount_plugin"),
            wrong_abi: take("test_bad_plugin"),
            no_header,
        }
    })
}

/// The example shop in a temporary folder with a plugin Type extending
/// `pays.WechatPayType` at `elements/pays/<type_folder>/`, its library `library` copied
/// there as `file_name`.
fn shop_with_plugin_type(
    type_folder: &str,
    library: Option<&Path>,
    file_name: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_example_app(dir.path());
    let folder = dir.path().join("elements/pays").join(type_folder);
    std::fs::create_dir_all(&folder).expect("create the Type's folder");
    if let Some(library) = library {
        std::fs::copy(library, folder.join(file_name)).expect("install the library");
    }
    let e_json = json!({
        "title": "WeChat Pay with a discount",
        "type": "pays.WechatPayType",
        "backendBundleEntry": file_name,
        "discountPercent": 10
    });
    std::fs::write(
        folder.join("e.json"),
        serde_json::to_string_pretty(&e_json).expect("json"),
    )
    .expect("write the Type's e.json");
    dir
}

/// The shop with the example plugin as `pays.DiscountWechatPayType` (10 % off) and an
/// instance `pays.myDiscountPay` configured like the shop's `pays.myWechatPay`, laid out
/// as docs/plugins.md tells a user to.
fn shop_with_discount_plugin() -> tempfile::TempDir {
    let file_name = library_file_name("example_discount_plugin");
    let dir = shop_with_plugin_type(
        "DiscountWechatPayType",
        Some(&libraries().discount),
        &file_name,
    );
    let pays = dir.path().join("elements/pays");
    let instance = pays.join("myDiscountPay");
    std::fs::create_dir_all(&instance).expect("create the instance's folder");
    let e_json = json!({
        "type": "pays.DiscountWechatPayType",
        "title": "WeChat Pay, 10% off",
        "mchId": "10000100",
        "frontBundleEntry": "./myDiscountPay.json",
        "backendBundleEntry": "."
    });
    std::fs::write(
        instance.join("e.json"),
        serde_json::to_string_pretty(&e_json).expect("json"),
    )
    .expect("write the instance's e.json");
    std::fs::copy(
        pays.join("myWechatPay/myWechatPay.json"),
        instance.join("myDiscountPay.json"),
    )
    .expect("copy the instance's configuration");
    dir
}

#[test]
fn check_and_ls_accept_the_plugin_and_show_its_chain() {
    let app = shop_with_discount_plugin();

    let output = jit_command(&["check"], app.path())
        .output()
        .expect("the jit binary runs");
    assert!(
        output.status.success(),
        "jit check refused the example plugin:\n{}{}",
        lossy(&output.stdout),
        lossy(&output.stderr)
    );

    let output = jit_command(&["ls"], app.path())
        .output()
        .expect("the jit binary runs");
    let listing = lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{listing}{}",
        lossy(&output.stderr)
    );
    // Each element's chain, element first, as `jit ls` prints it.
    for chain in [
        "pays.DiscountWechatPayType → pays.WechatPayType → pays.Meta",
        "pays.myDiscountPay → pays.DiscountWechatPayType → pays.WechatPayType → pays.Meta",
    ] {
        assert!(
            listing.lines().any(|line| line.contains(chain)),
            "`{chain}` not in:\n{listing}"
        );
    }
}

#[tokio::test]
async fn serve_creates_through_the_plugin_pays_and_refuses_to_cancel_a_paid_order() {
    let app = tokio::task::spawn_blocking(shop_with_discount_plugin)
        .await
        .expect("building the plugin");
    let http = client();
    let mut served = Served::start(app.path(), &[]);
    served.ready(&http).await;
    let base = served.base.clone();
    let call = |path: &str, arguments: Value| {
        let request = http
            .post(format!("{base}/api/demo/shop/{path}"))
            .bearer_auth(SHOP_TOKEN)
            .json(&arguments);
        async move { json_reply(request.send().await.expect("jit serve answers")).await }
    };

    // create on the plugin's instance: 10 % off 99.99, in whole fen, created by the parent.
    let (status, order) = call(
        "pays/myDiscountPay/create",
        json!({"subject": "Coffee", "amount": 99.99}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["amountFen"], 8999, "{order}");
    assert_eq!(order["status"], "wait", "{order}");
    assert_eq!(
        order["discount"],
        json!({"percent": 10, "originalAmount": "99.99", "discountedAmount": "89.99"})
    );
    let order_id = order["orderId"].as_str().expect("an orderId").to_owned();

    // getPayUrl is the parent's, reached through the plugin's element.
    let (status, pay_url) =
        call("pays/myDiscountPay/getPayUrl", json!({"orderId": order_id})).await;
    assert_eq!(status, StatusCode::OK, "{pay_url}");
    assert!(
        pay_url["payUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with("weixin://wxpay/bizpayurl?pr=")),
        "{pay_url}"
    );

    // The payer pays through the simulator `jit serve` started, with the real CLI, which
    // finds it through the app folder.
    let app_dir = app.path().to_owned();
    let id = order_id.clone();
    let paid = tokio::task::spawn_blocking(move || {
        crate::util::jit_command()
            .args(["sim", "pay", &id, "--app"])
            .arg(app_dir)
            .output()
            .expect("jit sim pay runs")
    })
    .await
    .expect("the paying task");
    let paid_out = lossy(&paid.stdout);
    assert!(paid.status.success(), "{paid_out}{}", lossy(&paid.stderr));
    assert!(
        paid_out.contains("total_fee 8999 fen"),
        "the payer paid the discounted amount: {paid_out}"
    );

    // The simulator's notify reaches the shop and lands on the plugin's order.
    let deadline = Instant::now() + PROCESS_PATIENCE;
    loop {
        let (status, queried) =
            call("pays/services/PaySvc/query", json!({"orderId": order_id})).await;
        assert_eq!(status, StatusCode::OK, "{queried}");
        if queried["status"] == "success" {
            assert_eq!(queried["amount"], "89.99", "{queried}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the order never became success: {queried}\n{}",
            served.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The plugin's rule: a paid order is not cancelled, and stays paid.
    let (status, refused) = call("pays/myDiscountPay/cancel", json!({"orderId": order_id})).await;
    assert!(status.is_client_error(), "HTTP {status}: {refused}");
    assert_eq!(error_code(&refused), "REJECTED", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("already paid")),
        "{refused}"
    );
    let (_, queried) = call("pays/services/PaySvc/query", json!({"orderId": order_id})).await;
    assert_eq!(queried["status"], "success", "{queried}");

    // An unpaid order passes the rule and is cancelled by the parent.
    let (status, unpaid) = call(
        "pays/myDiscountPay/create",
        json!({"subject": "Tea", "amount": 0.29}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{unpaid}");
    assert_eq!(
        unpaid["amountFen"], 26,
        "10 % off 29 fen, rounded down: {unpaid}"
    );
    let unpaid_id = unpaid["orderId"].as_str().expect("an orderId").to_owned();
    let (status, cancelled) =
        call("pays/myDiscountPay/cancel", json!({"orderId": unpaid_id})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let (_, queried) = call("pays/services/PaySvc/query", json!({"orderId": unpaid_id})).await;
    assert_eq!(cancelled["closed"], true, "{cancelled}");
    assert_eq!(
        queried["status"], "close",
        "the cancel took effect: {queried}"
    );

    served.stop_cleanly().await;
}

/// A plugin library `jit` must refuse: what to install and the reason it must give.
struct Refusal {
    type_folder: &'static str,
    file_name: String,
    library: Option<PathBuf>,
    /// Written as the library when `library` is `None`.
    content: &'static str,
    reason: &'static str,
}

fn assert_refused_by_check_and_serve(refusal: Refusal) {
    let app = shop_with_plugin_type(
        refusal.type_folder,
        refusal.library.as_deref(),
        &refusal.file_name,
    );
    let folder = app.path().join("elements/pays").join(refusal.type_folder);
    if refusal.library.is_none() {
        std::fs::write(folder.join(&refusal.file_name), refusal.content).expect("write the file");
    }
    // The test plugin's entry points leave a trace in the temporary dir when called.
    let scratch = app.path().join("tmp");
    std::fs::create_dir_all(&scratch).expect("create the scratch dir");
    let element = format!("pays.{}", refusal.type_folder);
    let expected = [
        format!("e.json: backendBundleEntry: {element}: "),
        refusal.file_name.clone(),
        refusal.reason.to_owned(),
    ];

    let output = jit_command(&["check"], app.path())
        .env("TMPDIR", &scratch)
        .output()
        .expect("jit check runs");
    let report = crate::binary::text(&output);
    assert!(!output.status.success(), "jit check accepted it:\n{report}");
    let line = report
        .lines()
        .find(|line| line.contains(&expected[0]))
        .unwrap_or_else(|| panic!("no problem reported for {element}:\n{report}"));
    for part in &expected {
        assert!(line.contains(part.as_str()), "`{part}` not in: {line}");
    }
    assert!(
        line.starts_with(&folder.join("e.json").display().to_string()),
        "the problem names the Type's e.json: {line}"
    );

    let port = free_port();
    let mut server = jit_command(&["serve"], app.path())
        .env("JIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TMPDIR", &scratch)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit serve starts");
    let exit = wait_at_most(&mut server, PROCESS_PATIENCE);
    let output = server.wait_with_output().expect("collect the output");
    let report = crate::binary::text(&output);
    let exit = exit.unwrap_or_else(|| panic!("jit serve did not refuse to start:\n{report}"));
    assert!(!exit.success(), "jit serve started with it:\n{report}");
    for part in &expected {
        assert!(report.contains(part.as_str()), "`{part}` not in:\n{report}");
    }
    assert!(
        !app.path().join("shop.db").exists(),
        "the refused app opened its database"
    );

    let traces: Vec<_> = std::fs::read_dir(&scratch)
        .expect("read the scratch dir")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("jit-bad-plugin-"))
        .collect();
    assert!(
        traces.is_empty(),
        "an entry point of the refused plugin ran: {traces:?}"
    );
}

#[test]
fn a_header_with_a_wrong_abi_version_is_refused() {
    assert_refused_by_check_and_serve(Refusal {
        type_folder: "WrongAbiType",
        file_name: library_file_name("test_bad_plugin"),
        library: Some(libraries().wrong_abi.clone()),
        content: "",
        reason: "refused: header field `abi_version` is 999, expected 1 or 2",
    });
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    assert_refused_by_check_and_serve(Refusal {
        type_folder: "TextFileType",
        file_name: library_file_name("notes"),
        library: None,
        content: "these are notes, not machine code\n",
        reason: "is not a loadable library",
    });
}

#[test]
fn a_library_without_the_header_symbol_is_refused() {
    assert_refused_by_check_and_serve(Refusal {
        type_folder: "NoHeaderType",
        file_name: library_file_name("no_header"),
        library: Some(libraries().no_header.clone()),
        content: "",
        reason: "is not a jit plugin: it exports no `JIT_PLUGIN_HEADER` symbol",
    });
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
