//! The real `jit serve` process: structured logs with request ids and no secrets, and a
//! clean exit on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{SHOP_KEY, SHOP_TOKEN, copy_example_app};

#[tokio::test]
async fn serve_logs_request_ids_never_secrets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_app(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(["serve", "--log-json", "--app"])
        .arg(dir.path())
        .env("JIT_LISTEN", format!("127.0.0.1:{port}"))
        // The most verbose level: nothing secret may appear even here.
        .env("RUST_LOG", "trace")
        .env_remove("DATABASE_URL")
        .env_remove("JIT_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit serve starts");

    let http = crate::util::client();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "jit serve never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = http
        .post(format!("{base}/api/demo/shop/pays/services/PaySvc/create"))
        .bearer_auth(SHOP_TOKEN)
        .header("x-request-id", "req-for-the-log-test")
        .json(&json!({"subject": "Log test", "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let order: serde_json::Value = response.json().await.unwrap();
    // A forged notify, and a request with a wrong token.
    let forged = crate::notify::wechatpy_notify(
        order["orderId"].as_str().unwrap(),
        100,
        "ffffffffffffffffffffffffffffffff",
        false,
    );
    http.post(format!(
        "{base}/api/demo/shop/pays/services/PaySvc/wechatNotify"
    ))
    .body(forged)
    .send()
    .await
    .unwrap();
    http.post(format!("{base}/api/demo/shop/pays/services/PaySvc/query"))
        .bearer_auth("not-the-token")
        .json(&json!({"orderId": "x"}))
        .send()
        .await
        .unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = server.wait().unwrap();
        let mut logs = String::new();
        server
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        (exit, logs)
    });
    let (exit, logs) = tokio::time::timeout(Duration::from_secs(20), exit)
        .await
        .expect("jit serve stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");

    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(!lines.is_empty(), "JSON log lines:\n{logs}");
    assert!(
        logs.contains("req-for-the-log-test"),
        "the client's request id is in the logs"
    );
    assert!(logs.contains("SIGTERM received"), "{logs}");
    for secret in [SHOP_KEY, SHOP_TOKEN, "not-the-token"] {
        assert!(!logs.contains(secret), "`{secret}` appears in the logs");
    }
}
