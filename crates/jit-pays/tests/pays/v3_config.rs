//! A V3 instance's settings at `jit check` (`check_merchant_settings`), at `jit show`
//! (`shown_merchant_settings`) and against a real gateway (`live_gateway_problems`): every
//! problem names its file and JSON path, none shows key material.

use serde_json::{Value, json};
use test_support::v3_keys::{
    API_V3_KEY, MERCHANT_KEY_PEM, MERCHANT_KEY_PKCS1_PEM, MERCHANT_SERIAL_NO, SHORT_KEY_PEM,
    WECHATPAY_PUBLIC_KEY_ID, WECHATPAY_PUBLIC_KEY_PEM,
};

/// An app with the V3 instance `pays.myWechatPayV3` whose config file holds `config`, and
/// `files` (path below the app folder, content).
fn definitions_with(
    config: &Value,
    files: &[(&str, &str)],
) -> (tempfile::TempDir, jit_runtime::Definitions) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("app.toml"),
        "[app]\norg = \"demo\"\nname = \"shop\"\n",
    )
    .unwrap();
    let element = root.join("elements/pays/myWechatPayV3");
    std::fs::create_dir_all(&element).unwrap();
    std::fs::write(
        element.join("e.json"),
        r#"{"type": "pays.WechatPayV3Type", "title": "V3"}"#,
    )
    .unwrap();
    std::fs::write(
        element.join("myWechatPayV3.json"),
        json!({ "config": config }).to_string(),
    )
    .unwrap();
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let definitions = jit_pays::register_loaders(jit_runtime::AppBuilder::new(root))
        .load_definitions()
        .unwrap();
    (dir, definitions)
}

fn sound_config() -> Value {
    json!({
        "appId": "wx5f6c7d8e9a0b1c2d",
        "mchId": "1900000109",
        "apiV3Key": API_V3_KEY,
        "privateKeyPath": "keys/apiclient_key.pem",
        "merchantSerialNo": MERCHANT_SERIAL_NO,
        "wechatpayPublicKeyId": WECHATPAY_PUBLIC_KEY_ID,
        "wechatpayPublicKeyPath": "keys/pub_key.pem",
    })
}

const SOUND_FILES: [(&str, &str); 2] = [
    ("keys/apiclient_key.pem", MERCHANT_KEY_PEM),
    ("keys/pub_key.pem", WECHATPAY_PUBLIC_KEY_PEM),
];

/// The problems `jit check` prints, one line each.
fn problems(definitions: &jit_runtime::Definitions) -> Vec<String> {
    match jit_pays::check_merchant_settings(definitions) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_sound_instance_resolves_and_is_shown_with_its_secret_masked() {
    let (_dir, definitions) = definitions_with(&sound_config(), &SOUND_FILES);
    assert_eq!(problems(&definitions), Vec::<String>::new());
    let settings = jit_pays::v3_merchant_settings(&definitions).unwrap();
    let (name, config) = &settings[0];
    assert_eq!(name, "pays.myWechatPayV3");
    assert_eq!(config.mch_id, "1900000109");
    assert!(matches!(
        config.verification,
        Some(jit_pays::WechatVerification::PublicKey(_))
    ));
    assert!(!config.uses_demo_key());
    let debug = format!("{config:?}");
    assert!(!debug.contains(API_V3_KEY), "{debug}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");

    let chain = definitions.chain("pays.myWechatPayV3").unwrap();
    let shown = jit_pays::shown_merchant_settings(chain).unwrap();
    assert_eq!(shown["apiV3Key"]["value"], jit_runtime::MASK);
    assert_eq!(shown["merchantSerialNo"]["value"], MERCHANT_SERIAL_NO);
    assert_eq!(shown["privateKeyPath"]["value"], "keys/apiclient_key.pem");
    assert_eq!(shown["problems"], json!([]));
    assert!(!shown.to_string().contains(API_V3_KEY));
    assert!(
        jit_pays::shown_merchant_settings(definitions.chain("pays.WechatPayV3Type").unwrap())
            .is_none()
    );
    // A V3 instance is a pay instance, of V3.
    assert!(jit_pays::is_pay_instance(&definitions, chain));
    assert_eq!(
        jit_pays::pay_api_version(chain),
        Some(jit_pays::ApiVersion::V3)
    );
    assert!(jit_pays::live_gateway_problems(&definitions).is_empty());
}

#[test]
fn a_pkcs1_key_and_platform_certificates_or_both_resolve() {
    let mut config = sound_config();
    config["platformCertificates"] = json!(true);
    let files = [
        ("keys/apiclient_key.pem", MERCHANT_KEY_PKCS1_PEM),
        ("keys/pub_key.pem", WECHATPAY_PUBLIC_KEY_PEM),
    ];
    let (_dir, definitions) = definitions_with(&config, &files);
    let settings = jit_pays::v3_merchant_settings(&definitions).unwrap();
    assert!(matches!(
        settings[0].1.verification,
        Some(jit_pays::WechatVerification::Switchover(_))
    ));

    let mut config = sound_config();
    config
        .as_object_mut()
        .unwrap()
        .remove("wechatpayPublicKeyId");
    config
        .as_object_mut()
        .unwrap()
        .remove("wechatpayPublicKeyPath");
    config["platformCertificates"] = json!(true);
    let (_dir, definitions) = definitions_with(&config, &files);
    let settings = jit_pays::v3_merchant_settings(&definitions).unwrap();
    assert!(matches!(
        settings[0].1.verification,
        Some(jit_pays::WechatVerification::PlatformCertificates)
    ));
}

#[test]
fn every_bad_v3_setting_is_reported_with_its_file_and_json_path_and_no_key_material() {
    let secret = "a-short-apiv3-secret";
    let config = json!({
        "appId": "wx5f6c7d8e9a0b1c2d",
        "mchId": "1900000109",
        "apiV3Key": secret,
        "privateKeyPath": "keys/short.pem",
        "merchantSerialNo": "not-hex!",
        "wechatpayPublicKeyId": "PUB_KEY_0001",
        "wechatpayPublicKeyPath": "keys/pub_key.pem",
        "platformCertificates": "yes",
    });
    let files = [
        ("keys/short.pem", SHORT_KEY_PEM),
        ("keys/pub_key.pem", WECHATPAY_PUBLIC_KEY_PEM),
    ];
    let (_dir, definitions) = definitions_with(&config, &files);
    let lines = problems(&definitions);
    let expected = [
        ("config.apiV3Key", "exactly 32 ASCII characters"),
        ("config.merchantSerialNo", "hexadecimal"),
        (
            "config.privateKeyPath",
            "1024-bit RSA key; at least 2048 bits",
        ),
        ("config.wechatpayPublicKeyId", "PUB_KEY_ID_"),
        ("config.platformCertificates", "true or false"),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (path, says) in expected {
        let line = lines
            .iter()
            .find(|line| line.contains(&format!("myWechatPayV3/myWechatPayV3.json: {path}: ")))
            .unwrap_or_else(|| panic!("no problem at {path}: {lines:#?}"));
        assert!(line.contains(says), "{line}");
    }
    let all = lines.join("\n");
    assert!(!all.contains(secret), "{all}");
    assert!(!all.contains("PRIVATE KEY"), "{all}");
    assert!(!all.contains("MII"), "no base64 of a key: {all}");
}

#[test]
fn missing_and_unreadable_files_are_named() {
    let mut config = sound_config();
    config.as_object_mut().unwrap().remove("privateKeyPath");
    config["wechatpayPublicKeyPath"] = json!("keys/missing.pem");
    let (_dir, definitions) = definitions_with(&config, &SOUND_FILES);
    let lines = problems(&definitions);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("config.privateKeyPath")
                && line.contains(
                    "`privateKeyPath` of WeChat Pay instance `pays.myWechatPayV3` is missing"
                )),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("config.wechatpayPublicKeyPath")
                && line.contains("missing.pem, which does not exist")),
        "{lines:#?}"
    );

    // A file that is no PEM, and half of the public key.
    let mut config = sound_config();
    config
        .as_object_mut()
        .unwrap()
        .remove("wechatpayPublicKeyId");
    let files = [
        ("keys/apiclient_key.pem", "this is not a key"),
        ("keys/pub_key.pem", WECHATPAY_PUBLIC_KEY_PEM),
    ];
    let (_dir, definitions) = definitions_with(&config, &files);
    let lines = problems(&definitions);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("config.privateKeyPath") && line.contains("not PEM")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("config.wechatpayPublicKeyPath")
                && line.contains("`wechatpayPublicKeyId` is not")),
        "{lines:#?}"
    );
}

#[test]
fn two_instances_of_one_merchant_must_share_its_apiv3_key() {
    let (dir, _) = definitions_with(&sound_config(), &SOUND_FILES);
    let other = dir.path().join("elements/pays/otherV3");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("e.json"),
        r#"{"type": "pays.WechatPayV3Type", "title": "V3 again"}"#,
    )
    .unwrap();
    let mut config = sound_config();
    config["appId"] = json!("wx0000000000000003");
    config["apiV3Key"] = json!("another32characterapiv3keyvalue!");
    std::fs::write(
        other.join("otherV3.json"),
        json!({ "config": config }).to_string(),
    )
    .unwrap();
    let definitions = jit_pays::register_loaders(jit_runtime::AppBuilder::new(dir.path()))
        .load_definitions()
        .unwrap();
    let lines = problems(&definitions);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("config.apiV3Key"), "{}", lines[0]);
    assert!(lines[0].contains("same mchId 1900000109"), "{}", lines[0]);
    assert!(!lines[0].contains("another32"), "{}", lines[0]);
}

#[test]
fn a_real_gateway_needs_a_way_to_verify_wechat_and_refuses_the_demo_key() {
    let demo_key = std::fs::read_to_string(
        test_support::workspace_root()
            .join("elements/pays/myWechatPayV3/demo_apiclient_key.simulator-only.pem"),
    )
    .unwrap();
    let mut config = sound_config();
    config
        .as_object_mut()
        .unwrap()
        .remove("wechatpayPublicKeyId");
    config
        .as_object_mut()
        .unwrap()
        .remove("wechatpayPublicKeyPath");
    let files = [("keys/apiclient_key.pem", demo_key.as_str())];
    let (_dir, definitions) = definitions_with(&config, &files);
    // Fine for the simulator, whose keys the instance then trusts.
    assert_eq!(problems(&definitions), Vec::<String>::new());
    let live: Vec<String> = jit_pays::live_gateway_problems(&definitions)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(live.len(), 2, "{live:#?}");
    assert!(
        live[0].contains("config.wechatpayPublicKeyId")
            && live[0].contains("does not say how to verify WeChat's signatures"),
        "{}",
        live[0]
    );
    assert!(
        live[1].contains("config.privateKeyPath") && live[1].contains("demo key"),
        "{}",
        live[1]
    );
}
