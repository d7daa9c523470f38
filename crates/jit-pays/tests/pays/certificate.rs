//! The merchant certificate settings of a WeChat Pay instance (`certP12Path` with
//! `certP12Password`, or `certPath` with `keyPath`): resolved like every merchant setting,
//! the files read and checked at `jit check` (`check_merchant_settings`) and at build, each
//! problem naming the config file and JSON path and never a key or a password.
//!
//! Certificates are made here with rcgen, PKCS#12 bundles with p12-keystore's writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jit_pays::{MerchantCertificate, Pay, PaysSettings, WechatPay, WechatPayConfig};
use serde_json::json;

use crate::support;

const MCH_ID: &str = "1900000109";
const API_KEY: &str = "abcdef1234567890abcdef1234567890";

/// A merchant certificate and its key, as WeChat issues them (self-signed here).
struct Issued {
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

fn issue(common_name: &str) -> Issued {
    issue_with(common_name, |_| {})
}

fn issue_with(common_name: &str, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Issued {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Test Merchant");
    edit(&mut params);
    let cert = params.self_signed(&key).unwrap();
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// `issued` as a PKCS#12 bundle opened by `password`.
fn pkcs12(issued: &Issued, password: &str) -> Vec<u8> {
    let chain = p12_keystore::PrivateKeyChain::new(
        "Tenpay Certificate",
        p12_keystore::PrivateKey::from_der(&issued.key_der).unwrap(),
        [p12_keystore::Certificate::from_der(&issued.cert_der).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "Tenpay Certificate",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().unwrap()
}

/// A temporary app `demo/shop` with instance `pays.myWechatPay` whose config file holds
/// the merchant and `certificate` (more keys of its `config` object).
struct App {
    dir: tempfile::TempDir,
}

impl App {
    fn new(certificate: serde_json::Value) -> Self {
        Self::with_toml("", certificate)
    }

    fn with_toml(app_toml_extra: &str, certificate: serde_json::Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.toml"),
            format!("[app]\norg = \"demo\"\nname = \"shop\"\n{app_toml_extra}"),
        )
        .unwrap();
        let element = dir.path().join("elements/pays/myWechatPay");
        std::fs::create_dir_all(&element).unwrap();
        std::fs::write(
            element.join("e.json"),
            r#"{"type": "pays.WechatPayType", "title": "Pay", "frontBundleEntry": "./myWechatPay.json"}"#,
        )
        .unwrap();
        let mut config = json!({"appId": "wx1234567890abcdef", "mchId": MCH_ID, "apiKey": API_KEY});
        config
            .as_object_mut()
            .unwrap()
            .extend(certificate.as_object().unwrap().clone());
        std::fs::write(
            element.join("myWechatPay.json"),
            json!({ "config": config }).to_string(),
        )
        .unwrap();
        App { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `relative` below the app folder.
    fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    fn definitions(&self) -> jit_runtime::Definitions {
        jit_pays::register_loaders(jit_runtime::AppBuilder::new(self.path()))
            .load_definitions()
            .unwrap()
    }

    /// What `jit check` reports for the app's merchant settings, one line each.
    fn problems(&self) -> Vec<String> {
        match jit_pays::check_merchant_settings(&self.definitions()) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn config(&self) -> WechatPayConfig {
        let settings = jit_pays::merchant_settings(&self.definitions()).unwrap();
        settings.into_iter().next().unwrap().1
    }
}

/// Exactly one problem, at `json_path` of the instance's config file, containing every
/// one of `expected` and none of `secrets`.
#[track_caller]
fn assert_one_problem(problems: &[String], json_path: &str, expected: &[&str], secrets: &[&str]) {
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let line = &problems[0];
    assert!(
        line.contains(&format!("myWechatPay/myWechatPay.json: {json_path}: ")),
        "file and JSON path missing: {line}"
    );
    for part in expected {
        assert!(line.contains(part), "`{part}` missing: {line}");
    }
    for secret in secrets {
        assert!(!line.contains(secret), "a secret was shown: {line}");
    }
}

/// The base64 body of a PEM text, the part that must never be shown.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("")
}

#[test]
fn a_pem_pair_naming_the_mch_id_passes_relative_to_the_app_folder() {
    let issued = issue(MCH_ID);
    let app = App::new(json!({
        "certPath": "certs/apiclient_cert.pem",
        "keyPath": "certs/apiclient_key.pem"
    }));
    app.write("certs/apiclient_cert.pem", &issued.cert_pem);
    app.write("certs/apiclient_key.pem", &issued.key_pem);
    assert_eq!(app.problems(), Vec::<String>::new());

    let config = app.config();
    let Some(MerchantCertificate::Pem { cert, key }) = &config.certificate else {
        panic!("the PEM form: {config:?}");
    };
    assert_eq!(cert.path, app.path().join("certs/apiclient_cert.pem"));
    assert_eq!(key.path, app.path().join("certs/apiclient_key.pem"));
    assert_eq!(key.source.json_path, "config.keyPath");
    assert!(config.load_certificate().unwrap().is_some());

    let definitions = app.definitions();
    let shown =
        jit_pays::shown_merchant_settings(definitions.chain("pays.myWechatPay").unwrap()).unwrap();
    assert_eq!(shown["certPath"]["value"], "certs/apiclient_cert.pem");
    assert!(
        shown["keyPath"]["from"]
            .as_str()
            .unwrap()
            .ends_with("myWechatPay.json: config.keyPath"),
        "{shown}"
    );
    assert_eq!(shown["problems"], json!([]));
}

#[test]
fn a_pkcs12_bundle_opens_with_the_mch_id_or_its_configured_password() {
    let issued = issue(MCH_ID);
    // WeChat's default: the password is the mchId.
    let app = App::new(json!({"certP12Path": "apiclient_cert.p12"}));
    app.write("apiclient_cert.p12", pkcs12(&issued, MCH_ID));
    assert_eq!(app.problems(), Vec::<String>::new());
    assert!(matches!(
        app.config().certificate,
        Some(MerchantCertificate::Pkcs12 { password: None, .. })
    ));
    assert!(app.config().load_certificate().unwrap().is_some());

    // A changed password, given as certP12Password, from app.toml's [env], the bundle at
    // an absolute path: shown masked.
    let password = "bundle-password-42";
    let elsewhere = tempfile::tempdir().unwrap();
    let bundle = elsewhere.path().join("merchant.p12");
    std::fs::write(&bundle, pkcs12(&issued, password)).unwrap();
    let app = App::with_toml(
        &format!(
            "[env]\nTEST_CERT_P12 = {:?}\nTEST_CERT_PASSWORD = \"{password}\"\n",
            bundle.display().to_string()
        ),
        json!({"certP12Path": "{{TEST_CERT_P12}}", "certP12Password": "{{TEST_CERT_PASSWORD}}"}),
    );
    assert_eq!(app.problems(), Vec::<String>::new());
    let config = app.config();
    let Some(MerchantCertificate::Pkcs12 { bundle: found, .. }) = &config.certificate else {
        panic!("the PKCS#12 form: {config:?}");
    };
    assert_eq!(found.path, bundle);
    assert!(!format!("{config:?}").contains(password));
    let definitions = app.definitions();
    let chain = definitions.chain("pays.myWechatPay").unwrap();
    let shown = jit_pays::shown_merchant_settings(chain).unwrap();
    assert_eq!(shown["certP12Password"]["value"], jit_runtime::MASK);
    assert!(!shown.to_string().contains(password), "{shown}");
    // The Type declares it secret, so `jit show`'s own view of the config masks it too.
    assert!(
        !chain.to_json_masked().to_string().contains(password),
        "{}",
        chain.to_json_masked()
    );
}

#[test]
fn a_wrong_pkcs12_password_is_named_but_never_shown() {
    let issued = issue(MCH_ID);
    let real = "the-real-bundle-password";
    let wrong = "a-wrong-bundle-password";
    let app = App::new(json!({"certP12Path": "apiclient_cert.p12", "certP12Password": wrong}));
    app.write("apiclient_cert.p12", pkcs12(&issued, real));
    assert_one_problem(
        &app.problems(),
        "config.certP12Path",
        &[
            "apiclient_cert.p12, which does not open with the password in ",
            "myWechatPay.json: config.certP12Password",
        ],
        &[real, wrong],
    );

    // Without certP12Password the mchId is tried, and the message says so.
    let app = App::new(json!({"certP12Path": "apiclient_cert.p12"}));
    app.write("apiclient_cert.p12", pkcs12(&issued, real));
    assert_one_problem(
        &app.problems(),
        "config.certP12Path",
        &[
            "does not open with the mchId as password",
            "certP12Password",
        ],
        &[real],
    );
}

#[test]
fn a_certificate_of_another_merchant_is_refused() {
    let other = issue("1900000999");
    let app = App::new(json!({"certPath": "cert.pem", "keyPath": "key.pem"}));
    app.write("cert.pem", &other.cert_pem);
    app.write("key.pem", &other.key_pem);
    assert_one_problem(
        &app.problems(),
        "config.certPath",
        &[
            "subject CN is \"1900000999\", not the mchId 1900000109",
            "cert.pem",
        ],
        &[&pem_body(&other.key_pem)],
    );

    let app = App::new(json!({"certP12Path": "apiclient_cert.p12"}));
    app.write("apiclient_cert.p12", pkcs12(&other, MCH_ID));
    assert_one_problem(
        &app.problems(),
        "config.certP12Path",
        &["subject CN is \"1900000999\", not the mchId 1900000109"],
        &[],
    );
}

#[test]
fn missing_garbage_and_mismatched_files_are_named_without_their_content() {
    let issued = issue(MCH_ID);
    // Missing: both files reported at once.
    let app = App::new(json!({"certPath": "certs/cert.pem", "keyPath": "certs/key.pem"}));
    let problems = app.problems();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].contains("myWechatPay.json: config.certPath: `certPath` names ")
            && problems[0].contains("certs/cert.pem, which does not exist"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains("myWechatPay.json: config.keyPath: `keyPath` names ")
            && problems[1].contains("certs/key.pem, which does not exist"),
        "{}",
        problems[1]
    );

    // A folder is not a file.
    std::fs::create_dir_all(app.path().join("certs/cert.pem")).unwrap();
    app.write("certs/key.pem", &issued.key_pem);
    assert_one_problem(
        &app.problems(),
        "config.certPath",
        &["which is not a file"],
        &[],
    );

    // Garbage in the key file: named, its content not shown.
    let garbage =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA!!\n-----END PRIVATE KEY-----\n";
    let app = App::new(json!({"certPath": "cert.pem", "keyPath": "key.pem"}));
    app.write("cert.pem", &issued.cert_pem);
    app.write("key.pem", garbage);
    assert_one_problem(
        &app.problems(),
        "config.keyPath",
        &["key.pem, which holds no PEM private key"],
        &["c2VjcmV0LWtleS1tYXRlcmlhbA"],
    );

    // Garbage in the certificate file; the key swapped into its place is recognised.
    app.write("cert.pem", "not a certificate at all");
    app.write("key.pem", &issued.key_pem);
    assert_one_problem(
        &app.problems(),
        "config.certPath",
        &["cert.pem, which holds no PEM certificate"],
        &[],
    );
    app.write("cert.pem", &issued.key_pem);
    assert_one_problem(
        &app.problems(),
        "config.certPath",
        &["holds a private key, not a certificate", "swapped"],
        &[&pem_body(&issued.key_pem)],
    );

    // Another key than the certificate's.
    let stranger = issue(MCH_ID);
    app.write("cert.pem", &issued.cert_pem);
    app.write("key.pem", &stranger.key_pem);
    assert_one_problem(
        &app.problems(),
        "config.keyPath",
        &["does not belong to the certificate in", "cert.pem"],
        &[&pem_body(&stranger.key_pem)],
    );

    // A bundle that is not PKCS#12.
    let app = App::new(json!({"certP12Path": "apiclient_cert.p12"}));
    app.write("apiclient_cert.p12", b"\x00\x01 garbage, not DER");
    assert_one_problem(
        &app.problems(),
        "config.certP12Path",
        &["apiclient_cert.p12, which is not a PKCS#12 bundle"],
        &[],
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let expired = issue_with(MCH_ID, |params| {
        params.not_before = rcgen::date_time_ymd(2015, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let app = App::new(json!({"certPath": "cert.pem", "keyPath": "key.pem"}));
    app.write("cert.pem", &expired.cert_pem);
    app.write("key.pem", &expired.key_pem);
    assert_one_problem(
        &app.problems(),
        "config.certPath",
        &["is valid from", "2020", "not today"],
        &[],
    );
}

#[test]
fn the_two_forms_together_or_half_a_form_are_refused() {
    let secret = "password-without-a-bundle";
    for (settings, json_path, expected) in [
        (
            json!({"certP12Path": "a.p12", "certPath": "cert.pem", "keyPath": "key.pem"}),
            "config.certP12Path",
            "are both set",
        ),
        (
            json!({"certPath": "cert.pem"}),
            "config.certPath",
            "`certPath` is set but `keyPath` is not",
        ),
        (
            json!({"keyPath": "key.pem"}),
            "config.keyPath",
            "`keyPath` is set but `certPath` is not",
        ),
        (
            json!({"certP12Password": secret, "certPath": "cert.pem", "keyPath": "key.pem"}),
            "config.certP12Password",
            "`certP12Password` is set but `certP12Path` is not",
        ),
        (
            json!({"certP12Path": ""}),
            "config.certP12Path",
            "`certP12Path` is empty",
        ),
        (
            json!({"certP12Path": 12}),
            "config.certP12Path",
            "`certP12Path` must be a string, found a number",
        ),
    ] {
        let app = App::new(settings.clone());
        // Files that would pass, so only the settings' shape is at fault.
        let issued = issue(MCH_ID);
        app.write("cert.pem", &issued.cert_pem);
        app.write("key.pem", &issued.key_pem);
        app.write("a.p12", pkcs12(&issued, MCH_ID));
        assert_one_problem(&app.problems(), json_path, &[expected], &[secret]);
        if json_path == "config.certP12Path" && expected == "are both set" {
            assert!(
                app.problems()[0].contains("config.certPath, ")
                    && app.problems()[0].contains("config.keyPath"),
                "the other form is located: {:?}",
                app.problems()
            );
        }
    }
}

fn pays_settings(gateway: &str) -> Arc<PaysSettings> {
    Arc::new(PaysSettings::new(
        "https://shop.example.com/",
        "https://shop.example.com/api/demo/shop/pays/services/PaySvc/wechatNotify",
        gateway,
    ))
}

async fn wechat_pay(config: WechatPayConfig, gateway: &str) -> WechatPay {
    let db = support::sqlite().await;
    let masked = json!({});
    let pay = WechatPay::new(
        "pays.myWechatPay".to_owned(),
        config,
        masked,
        "https://shop.example.com/notify".to_owned(),
        Arc::new(db.store.clone()),
        pays_settings(gateway),
    )
    .unwrap();
    std::mem::forget(db);
    pay
}

#[tokio::test]
async fn a_refund_needs_the_certificate_unless_the_gateway_is_plain_http() {
    let issued = issue(MCH_ID);
    let app = App::new(json!({"certPath": "cert.pem", "keyPath": "key.pem"}));
    app.write("cert.pem", &issued.cert_pem);
    app.write("key.pem", &issued.key_pem);
    let pay = wechat_pay(app.config(), "https://api.mch.weixin.qq.com").await;
    assert!(pay.has_merchant_certificate());
    pay.require_merchant_certificate().unwrap();

    let without = App::new(json!({}));
    assert_eq!(without.problems(), Vec::<String>::new());
    let pay = wechat_pay(without.config(), "https://api.mch.weixin.qq.com").await;
    assert!(!pay.has_merchant_certificate());
    let error = pay.require_merchant_certificate().unwrap_err();
    assert_eq!(error.code(), "INTERNAL", "{error}");
    let message = error.to_string();
    assert!(
        message.contains("`pays.myWechatPay` has no merchant API certificate")
            && message.contains("certP12Path")
            && message.contains("`certPath` and `keyPath`"),
        "{message}"
    );
    // The in-process simulator serves plain HTTP and asks for no certificate.
    let pay = wechat_pay(without.config(), "http://127.0.0.1:9").await;
    pay.require_merchant_certificate().unwrap();
}

#[tokio::test]
async fn the_element_is_not_built_with_a_certificate_that_went_bad_after_the_check() {
    let issued = issue(MCH_ID);
    let app = App::new(json!({"certPath": "cert.pem", "keyPath": "key.pem"}));
    app.write("cert.pem", &issued.cert_pem);
    app.write("key.pem", &issued.key_pem);
    assert_eq!(app.problems(), Vec::<String>::new());
    std::fs::remove_file(app.path().join("key.pem")).unwrap();

    let db = support::sqlite().await;
    let built = jit_pays::register(
        jit_runtime::AppBuilder::new(app.path()),
        db.store.clone(),
        PaysSettings::new(
            "https://shop.example.com/",
            "https://shop.example.com/notify",
            "http://127.0.0.1:9",
        ),
    )
    .build()
    .await
    .unwrap();
    let error = match built.get::<dyn Pay>("pays.myWechatPay").await {
        Ok(_) => panic!("the element was built without its key file"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("config.keyPath") && error.contains("key.pem, which does not exist"),
        "{error}"
    );
}
