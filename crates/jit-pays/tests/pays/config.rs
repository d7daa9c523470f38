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
    let settings = PaysSettings::new(
        "https://shop.example.com/",
        "https://shop.example.com/api/demo/shop/pays/services/PaySvc/wechatNotify",
        "http://127.0.0.1:9",
    );
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
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx0123456789abcdef", "mchId": "1900000109", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
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
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx0123456789abcdef", "mchId": "1900000109"}"#,
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
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx0123456789abcdef", "mchId": "19000x", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
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
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx0123456789abcdef", "mchId": "1900000109", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
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

/// The seed's own instance: e.json with `"apiKey": "your_api_key_here"` and its config file.
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

/// The definitions of an app with one instance `pays.myWechatPay`.
fn definitions_with(
    e_json: &str,
    config_json: Option<&str>,
) -> (tempfile::TempDir, jit_runtime::Definitions) {
    let dir = app_dir();
    let element = write_element(dir.path(), "pays/myWechatPay", e_json);
    if let Some(config) = config_json {
        std::fs::write(element.join("myWechatPay.json"), config).unwrap();
    }
    let definitions = jit_pays::register_loaders(jit_runtime::AppBuilder::new(dir.path()))
        .load_definitions()
        .unwrap();
    (dir, definitions)
}

#[test]
fn the_seeds_literal_instance_resolves_to_its_config_file() {
    let (_dir, definitions) = definitions_with(SEED_E_JSON, Some(SEED_CONFIG));
    jit_pays::check_merchant_settings(&definitions).expect("the seed's instance is sound");
    let settings = jit_pays::merchant_settings(&definitions).unwrap();
    assert_eq!(settings.len(), 1, "one instance: {settings:?}");
    let (name, config) = &settings[0];
    assert_eq!(name, "pays.myWechatPay");
    assert_eq!(config.app_id, "wx1234567890abcdef");
    assert_eq!(config.mch_id, "1234567890");
    // The config file's key, not e.json's placeholder text.
    assert_eq!(
        config.api_key.expose_secret(),
        "abcdef1234567890abcdef1234567890"
    );

    let chain = definitions.chain("pays.myWechatPay").unwrap();
    let shown = jit_pays::shown_merchant_settings(chain).unwrap();
    assert_eq!(shown["apiKey"]["value"], jit_runtime::MASK);
    assert_eq!(shown["mchId"]["value"], "1234567890");
    let from = shown["apiKey"]["from"].as_str().unwrap();
    assert!(from.ends_with("myWechatPay.json: config.apiKey"), "{from}");
    assert_eq!(shown["problems"], serde_json::json!([]));
    assert!(
        !shown
            .to_string()
            .contains("abcdef1234567890abcdef1234567890")
    );
    // Only instances are shown and checked.
    let type_chain = definitions.chain("pays.WechatPayType").unwrap();
    assert!(jit_pays::shown_merchant_settings(type_chain).is_none());
}

#[test]
fn every_bad_merchant_setting_is_reported_with_its_file_and_json_path() {
    let secret = "short-secret-value";
    let config = format!(
        r#"{{"config": {{"appId": "wx1234567890ABCDEF", "mchId": "12ab", "apiKey": "{secret}"}}}}"#
    );
    let (_dir, definitions) = definitions_with(SEED_E_JSON, Some(&config));
    let errors = jit_pays::check_merchant_settings(&definitions).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{errors}");
    for (line, path) in lines
        .iter()
        .zip(["config.appId", "config.mchId", "config.apiKey"])
    {
        assert!(
            line.contains(&format!("myWechatPay/myWechatPay.json: {path}: ")),
            "{line}"
        );
    }
    assert!(
        lines[0].contains("16 lower-case hexadecimal"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("8 to 10 digits") && lines[1].contains("\"12ab\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("exactly 32 letters and digits"),
        "{}",
        lines[2]
    );
    assert!(!errors.to_string().contains(secret), "{errors}");
    for error in errors.iter() {
        assert_eq!(error.kind, jit_runtime::LoadErrorKind::Config);
    }

    // A key of 32 characters that are not all letters and digits, a number for mchId,
    // and a missing appId (no config file: e.json is named).
    let (_dir, definitions) = definitions_with(
        r#"{"type": "pays.WechatPayType", "title": "Pay", "mchId": 1900000109, "apiKey": "abcdef1234567890abcdef123456789!"}"#,
        None,
    );
    let errors = jit_pays::check_merchant_settings(&definitions).unwrap_err();
    let text = errors.to_string();
    assert!(
        text.contains("myWechatPay/e.json: appId: `appId`"),
        "{text}"
    );
    assert!(
        text.contains("is missing: set it in myWechatPay.json"),
        "{text}"
    );
    assert!(
        text.contains("myWechatPay/e.json: mchId: `mchId` must be a string, found a number"),
        "{text}"
    );
    assert!(
        text.contains("myWechatPay/e.json: apiKey: `apiKey` must be"),
        "{text}"
    );
    assert!(!text.contains("abcdef1234567890abcdef123456789!"), "{text}");
}

/// A configuration problem is the operator's, never the caller's: PaySvc answers it as an
/// internal error whose message names no file, and logs the detail.
#[tokio::test(flavor = "current_thread")]
async fn pay_svc_answers_a_bad_merchant_setting_as_internal_without_file_paths() {
    let (log, _guard) = support::capture_logs();
    let app = app_with(
        r#"{"type": "pays.WechatPayType", "title": "Pay", "appId": "wx0123456789abcdef", "mchId": "12ab", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
        None,
    )
    .await;
    let cx = jit_runtime::CallContext::principal("t");
    for arguments in [
        serde_json::json!({"subject": "Sale", "amount": 1}),
        serde_json::json!({"subject": "Sale", "amount": 1, "element": "pays.myWechatPay"}),
    ] {
        let error = app
            .call("pays.services.PaySvc", "create", arguments, &cx)
            .await
            .unwrap_err();
        assert_eq!(error.kind, jit_runtime::CallErrorKind::Internal, "{error}");
        assert!(!error.message.contains("e.json"), "{error}");
        assert!(!error.message.contains('/'), "{error}");
    }
    let log = log.text();
    assert!(log.contains("myWechatPay/e.json: mchId"), "{log}");

    // Naming an element that is not a pay instance is the caller's mistake, said without
    // a path.
    let error = app
        .call(
            "pays.services.PaySvc",
            "create",
            serde_json::json!({"subject": "Sale", "amount": 1, "element": "pays.WechatPayType"}),
            &cx,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.kind,
        jit_runtime::CallErrorKind::BadArguments,
        "{error}"
    );
    assert!(
        error.message.contains("a pay Type, not an instance"),
        "{error}"
    );
    let error = app
        .call(
            "pays.services.PaySvc",
            "create",
            serde_json::json!({"subject": "Sale", "amount": 1, "element": "pays.myWechatPy"}),
            &cx,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.kind,
        jit_runtime::CallErrorKind::BadArguments,
        "{error}"
    );
    assert!(
        error.message.contains("did you mean `pays.myWechatPay`"),
        "{error}"
    );
}

#[test]
fn instances_of_one_merchant_share_its_key() {
    let (dir, _) = definitions_with(SEED_E_JSON, Some(SEED_CONFIG));
    // The same merchant under another appId and the same key: sound.
    write_element(
        dir.path(),
        "pays/miniProgramPay",
        r#"{"type": "pays.WechatPayType", "title": "Mini program", "appId": "wxfedcba0987654321", "mchId": "1234567890", "apiKey": "abcdef1234567890abcdef1234567890"}"#,
    );
    let load = || {
        jit_pays::register_loaders(jit_runtime::AppBuilder::new(dir.path()))
            .load_definitions()
            .unwrap()
    };
    let settings = jit_pays::merchant_settings(&load()).unwrap();
    assert_eq!(settings.len(), 2, "{settings:?}");

    // The same merchant with another key: one of the two would fail every signature.
    let other_key = "ffffffffffffffffffffffffffffffff";
    write_element(
        dir.path(),
        "pays/staleKeyPay",
        &format!(
            r#"{{"type": "pays.WechatPayType", "title": "Stale", "appId": "wx1234567890abcdef", "mchId": "1234567890", "apiKey": "{other_key}"}}"#
        ),
    );
    let errors = jit_pays::check_merchant_settings(&load()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let text = errors.to_string();
    assert!(
        text.contains("staleKeyPay/e.json: apiKey: `apiKey` differs from the key of `pays.miniProgramPay`, which has the same mchId 1234567890"),
        "{text}"
    );
    assert!(
        !text.contains(other_key) && !text.contains("abcdef1234567890abcdef1234567890"),
        "{text}"
    );
}
