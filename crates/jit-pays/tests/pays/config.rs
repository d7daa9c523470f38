//! Instance configuration: where values come from, and clear errors for bad ones.

use crate::support;
use jit_pays::{Pay, PaysSettings};

/// A temporary app `demo/shop` with no element yet.
fn app_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.toml"),
        "[app]\norg = \"demo\"\nname = \"shop\"\n",
    )
    .unwrap();
    dir
}

/// Writes `elements/<folder>/e.json` below `root`; returns the folder.
fn write_element(root: &std::path::Path, folder: &str, e_json: &str) -> std::path::PathBuf {
    let element = root.join("elements").join(folder);
    std::fs::create_dir_all(&element).unwrap();
    std::fs::write(element.join("e.json"), e_json).unwrap();
    element
}

async fn app_with(instance_e_json: &str, config_json: Option<&str>) -> jit_runtime::App {
    let dir = app_dir();
    let root = dir.path().to_owned();
    let element = write_element(&root, "pays/myWechatPay", instance_e_json);
    if let Some(config) = config_json {
        std::fs::write(element.join("myWechatPay.json"), config).unwrap();
    }
    let db = support::sqlite().await;
    let settings = PaysSettings::new("https://shop.example.com/", "http://127.0.0.1:9");
    let app = jit_pays::register(
        jit_runtime::AppBuilder::new(&root),
        db.store.clone(),
        settings,
    )
    .build()
    .await
    .unwrap();
    // The app reads everything at build; the folders may go.
    std::mem::forget(dir);
    std::mem::forget(db);
    app
}

// One thread, so the log capture sees the build's events.
#[tokio::test(flavor = "current_thread")]
async fn the_config_file_wins_over_e_json_and_secrets_stay_masked() {
    let (log, _guard) = support::capture_logs();
    let app = app_with(
        r#"{"type": "pays.WechatPayType", "title": "Pay", "mchId": "1234567890", "apiKey": "your_api_key_here"}"#,
        Some(r#"{"config": {"appId": "wx1234567890abcdef", "mchId": "1900000109", "apiKey": "abcdef1234567890abcdef1234567890"}}"#),
    )
    .await;
    let pay = app.get::<dyn Pay>("pays.myWechatPay").await.unwrap();
    assert_eq!(pay.full_name(), "pays.myWechatPay");
    assert_eq!(pay.app_id(), "wx1234567890abcdef");
    assert_eq!(pay.mch_id(), "1900000109");
    assert_eq!(pay.api_key().expose(), "abcdef1234567890abcdef1234567890");
    assert_eq!(pay.config()["apiKey"], "******");
    assert_eq!(
        pay.get_notify_url(),
        "https://shop.example.com/api/demo/shop/pays/services/PaySvc/wechatNotify"
    );
    // The stale e.json values are pointed out; the key's values never are.
    let log = log.text();
    assert!(
        log.contains("`mchId` in e.json (1234567890) differs from the config file's (1900000109)"),
        "{log}"
    );
    assert!(
        log.contains("`apiKey` in e.json differs from the config file's"),
        "{log}"
    );
    assert!(!log.contains("abcdef1234567890abcdef1234567890"), "{log}");
    assert!(!log.contains("your_api_key_here"), "{log}");
    assert!(!log.contains("`appId` in e.json"), "{log}");
}

#[tokio::test]
async fn e_json_alone_is_enough_when_it_has_everything() {
    let app = app_with(
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx1", "mchId": "1900000109", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
        None,
    )
    .await;
    let pay = app.get::<dyn Pay>("pays.myWechatPay").await.unwrap();
    assert_eq!(pay.mch_id(), "1900000109");
}

#[tokio::test]
async fn a_missing_app_id_names_the_element_file_and_key() {
    let app = app_with(
        r#"{"type": "pays.WechatPayType", "title": "Pay", "mchId": "1900000109", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
        None,
    )
    .await;
    let err = app
        .get::<dyn Pay>("pays.myWechatPay")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("appId"), "{err}");
    assert!(err.contains("myWechatPay/e.json"), "{err}");
    assert!(err.contains("myWechatPay.json"), "{err}");
}

#[tokio::test]
async fn a_bad_api_key_is_refused_without_showing_it() {
    let app = app_with(
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx1", "mchId": "1900000109"}"#,
        Some(r#"{"config": {"apiKey": "tooshort-secret"}}"#),
    )
    .await;
    let err = app
        .get::<dyn Pay>("pays.myWechatPay")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("apiKey") && err.contains("32"), "{err}");
    assert!(!err.contains("tooshort-secret"), "{err}");

    let app = app_with(
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx1", "mchId": "19000x", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
        None,
    )
    .await;
    let err = app
        .get::<dyn Pay>("pays.myWechatPay")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("mchId"), "{err}");
}

#[test]
fn register_loaders_is_enough_to_check_an_app_without_a_database() {
    let dir = app_dir();
    let root = dir.path();
    let write = |folder: &str, e_json: &str| {
        write_element(root, folder, e_json);
    };
    write(
        "pays/myWechatPay",
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx1", "mchId": "1900000109", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
    );
    let check = || jit_pays::register_loaders(jit_runtime::AppBuilder::new(root)).check();
    let definitions = check().expect("every pays instance has a loader");
    assert!(definitions.chain("pays.services.PaySvc").is_some());

    // An instance of a family that registers nothing is reported.
    write("fam/Meta", r#"{"title": "family"}"#);
    write("fam/BaseType", r#"{"type": "fam.Meta"}"#);
    write("fam/inst", r#"{"type": "fam.BaseType"}"#);
    let errors = check().expect_err("fam.inst has no loader");
    let missing: Vec<String> = errors
        .of_kind(jit_runtime::LoadErrorKind::NoLoader)
        .map(ToString::to_string)
        .collect();
    assert_eq!(missing.len(), 1, "{errors}");
    assert!(
        missing[0].contains("fam.inst → fam.BaseType → fam.Meta"),
        "{errors}"
    );
}
