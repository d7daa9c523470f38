//! Logs: the real `jit serve` process logs request ids and no secrets, and exits cleanly on
//! SIGTERM; values from outside reach the log escaped.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{FixtureServer, SHOP_KEY, SHOP_TOKEN, TOKEN, copy_example_app};

#[tokio::test]
async fn serve_logs_request_ids_never_secrets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_app(dir.path());
    let port = crate::util::free_port();
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

    // hyper takes raw UTF-8 in a request target: a bidi override in the path.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(
            "GET /no/such\u{202e}path HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n"
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

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
    // The request span shows the path escaped (`\u{202e}`, itself JSON-escaped).
    assert!(!logs.contains('\u{202e}'), "a raw bidi override in the log");
    assert!(logs.contains("/no/such\\\\u{202e}path"), "{logs}");
    for secret in [SHOP_KEY, SHOP_TOKEN, "not-the-token"] {
        assert!(!logs.contains(secret), "`{secret}` appears in the logs");
    }
}

/// Everything the tracing subscriber of this thread writes, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a client sends reaches the text log escaped: an element's error or a panic that
/// quotes the request, and the request line itself, cannot forge a line, paint the
/// terminal or reorder what the operator reads.
#[tokio::test(flavor = "current_thread")]
async fn request_values_reach_the_log_escaped() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // This test's runtime runs the server's tasks on this thread: they log here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = FixtureServer::start().await;
    let forged =
        "first line\nFORGED 2026-01-01T00:00:00Z  INFO jit: paid\u{1b}[31m red \u{202e}desrever";
    for kind in ["internal", "panic"] {
        let (status, _) = server
            .post(
                "fixture/services/EchoSvc/fail",
                &json!({"kind": kind, "message": forged}),
                Some(TOKEN),
            )
            .await;
        assert_eq!(status, 500, "{kind}");
    }
    server.handle.shutdown().await.unwrap();

    let logs = captured.text();
    assert!(
        logs.matches("first line\\nFORGED").count() >= 2,
        "both the element error and the panic are logged, escaped:\n{logs}"
    );
    for line in logs.lines() {
        assert!(!line.starts_with("FORGED"), "a forged line:\n{logs}");
    }
    assert!(!logs.contains('\u{1b}'), "a terminal escape:\n{logs}");
    assert!(!logs.contains('\u{202e}'), "a bidi override:\n{logs}");
}
