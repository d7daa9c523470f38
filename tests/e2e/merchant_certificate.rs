//! The merchant certificate through the real `jit` binary: `jit check` validates the files
//! a WeChat Pay instance's config file names (`certPath`/`keyPath` or `certP12Path` with
//! `certP12Password`, `{{VAR}}` filled, relative paths the app folder's), `jit serve`
//! refuses to start with the same problems, and neither prints a key or a password. An
//! instance with a sound certificate serves against the in-process simulator.

use std::process::Output;

use jit::{Host, Overrides};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{TOKEN, TempApp, client, jit_command, json_reply, test_overrides};

const MCH_ID: &str = "1234567890";

const E_JSON: &str = r#"{
  "type": "pays.WechatPayType",
  "title": "My WeChat Pay",
  "frontBundleEntry": "./myWechatPay.json",
  "backendBundleEntry": "."
}"#;

/// A self-signed merchant certificate with subject CN `common_name`: (cert PEM, key PEM,
/// cert DER, key DER).
fn issue(common_name: &str) -> (String, String, Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let cert = params.self_signed(&key).unwrap();
    (
        cert.pem(),
        key.serialize_pem(),
        cert.der().to_vec(),
        key.serialize_der(),
    )
}

/// The certificate and key as a PKCS#12 bundle opened by `password`.
fn pkcs12(cert_der: &[u8], key_der: &[u8], password: &str) -> Vec<u8> {
    let chain = p12_keystore::PrivateKeyChain::new(
        "Tenpay Certificate",
        p12_keystore::PrivateKey::from_der(key_der).unwrap(),
        [p12_keystore::Certificate::from_der(cert_der).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "Tenpay Certificate",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().unwrap()
}

/// The seed's instance with `certificate` beside its merchant settings, on the in-process
/// simulator.
fn app(certificate: Value) -> TempApp {
    let mut config = json!({
        "appId": "wx1234567890abcdef",
        "mchId": MCH_ID,
        "apiKey": "abcdef1234567890abcdef1234567890"
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(certificate.as_object().unwrap().clone());
    TempApp::new(
        "[gateway]\nsimulator = true\n",
        &[
            ("elements/pays/myWechatPay/e.json", E_JSON),
            (
                "elements/pays/myWechatPay/myWechatPay.json",
                &json!({ "config": config }).to_string(),
            ),
        ],
    )
}

fn jit(args: &[&str], app: &TempApp, env: &[(&str, &str)]) -> Output {
    let mut command = jit_command();
    command
        .args(args)
        .args(["--app", app.path().to_str().unwrap()])
        .env("JIT_LISTEN", "127.0.0.1:0");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the jit binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The base64 body of a PEM text: what must never be printed.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("")
}

#[test]
fn check_and_serve_validate_a_pem_pair() {
    let (cert, key, _, _) = issue(MCH_ID);
    let certs = tempfile::tempdir().unwrap();
    let cert_file = certs.path().join("apiclient_cert.pem");
    std::fs::write(&cert_file, &cert).unwrap();
    // The certificate from a variable, the key relative to the app folder.
    let app = app(json!({"certPath": "{{WECHAT_CERT_PEM}}", "keyPath": "certs/apiclient_key.pem"}));
    app.write("certs/apiclient_key.pem", &key);
    let env = [("WECHAT_CERT_PEM", cert_file.to_str().unwrap())];

    let output = jit(&["check"], &app, &env);
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );

    // Another merchant's certificate (with its own key): check and serve refuse it.
    let (other_cert, other_key, _, _) = issue("1900000999");
    std::fs::write(&cert_file, &other_cert).unwrap();
    app.write("certs/apiclient_key.pem", &other_key);
    let expected = "elements/pays/myWechatPay/myWechatPay.json: config.certPath: `certPath` names ";
    let why = "whose certificate's subject CN is \"1900000999\", not the mchId 1234567890";
    let output = jit(&["check"], &app, &env);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "check passed:\n{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains(expected) && stdout.contains(why),
        "{stdout}"
    );
    assert!(!stdout.contains(&pem_body(&other_key)), "{stdout}");

    let output = jit(&["serve"], &app, &env);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "serve started:\n{stderr}");
    assert!(
        stderr.contains(expected) && stderr.contains(why),
        "{stderr}"
    );
    assert!(!stderr.contains(&pem_body(&other_key)), "{stderr}");

    // Half a pair: the missing half is named, at the half that is set.
    let app = self::app(json!({"keyPath": "certs/apiclient_key.pem"}));
    let output = jit(&["check"], &app, &[]);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "check passed:\n{stdout}");
    assert!(
        stdout.contains("myWechatPay.json: config.keyPath: `keyPath` is set but `certPath` is not"),
        "{stdout}"
    );
}

#[test]
fn check_opens_a_pkcs12_bundle_without_printing_its_password() {
    let (_, _, cert_der, key_der) = issue(MCH_ID);
    let password = "bundle-pass-7f3a";
    let app = app(json!({
        "certP12Path": "apiclient_cert.p12",
        "certP12Password": "{{WECHAT_CERT_PASSWORD}}"
    }));
    std::fs::write(
        app.path().join("apiclient_cert.p12"),
        pkcs12(&cert_der, &key_der, password),
    )
    .unwrap();

    let output = jit(&["check"], &app, &[("WECHAT_CERT_PASSWORD", password)]);
    assert!(output.status.success(), "{}", text(&output.stdout));

    let wrong = "not-the-bundle-pass";
    let output = jit(&["check"], &app, &[("WECHAT_CERT_PASSWORD", wrong)]);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "check passed:\n{stdout}");
    assert!(
        stdout.contains("myWechatPay.json: config.certP12Path: `certP12Path` names ")
            && stdout.contains("apiclient_cert.p12, which does not open with the password in "),
        "{stdout}"
    );
    assert!(
        !stdout.contains(wrong) && !stdout.contains(password),
        "{stdout}"
    );

    // `jit show` masks the password.
    let output = jit(
        &["show", "pays.myWechatPay"],
        &app,
        &[("WECHAT_CERT_PASSWORD", password)],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(!stdout.contains(password), "{stdout}");
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        shown["merchantSettings"]["certP12Path"]["value"], "apiclient_cert.p12",
        "{shown}"
    );
}

#[tokio::test]
async fn an_instance_with_its_certificate_serves_against_the_simulator() {
    let (_, _, cert_der, key_der) = issue(MCH_ID);
    // WeChat's own default: the bundle's password is the mchId.
    let app = app(json!({"certP12Path": "apiclient_cert.p12"}));
    std::fs::write(
        app.path().join("apiclient_cert.p12"),
        pkcs12(&cert_der, &key_der, MCH_ID),
    )
    .unwrap();
    let handle = Host::new()
        .serve_in_process(
            app.path(),
            Overrides {
                database_url: Some(format!("sqlite://{}", app.path().join("shop.db").display())),
                ..test_overrides()
            },
        )
        .await
        .expect("the shop starts");
    let post = |path: &'static str, body: Value| {
        let url = format!("{}/api/acme/shop/{path}", handle.base_url());
        async move {
            let response = client()
                .post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .expect("the shop answers");
            json_reply(response).await
        }
    };
    let (status, order) = post(
        "pays/services/PaySvc/create",
        json!({"subject": "Sale", "amount": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    // The element (its client holding the certificate) was built and signs as the merchant.
    let (status, url) = post(
        "pays/services/PaySvc/getPayUrl",
        json!({"orderId": order["orderId"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{url}");
    handle.shutdown().await.unwrap();
}
