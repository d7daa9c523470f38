//! Graceful shutdown: requests in flight finish, new ones are not accepted, and clients
//! that never finish cannot hold the process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{FixtureServer, SHOP_TOKEN, TOKEN, example_app_with, free_port, jit_command};

#[tokio::test]
async fn in_flight_requests_finish_before_the_server_stops() {
    let server = FixtureServer::start().await;
    let url = server.api("fixture/services/EchoSvc/slow");
    let in_flight: Vec<_> = (0..8)
        .map(|_| {
            // A fresh client per request: eight connections really in flight.
            let client = crate::util::client();
            let url = url.clone();
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"ms": 800}))
                    .send()
                    .await?;
                let status = response.status();
                let body: serde_json::Value = response.json().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
        })
        .collect();
    // Every request has reached the element before shutting down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server
            .post("fixture/services/EchoSvc/inFlight", &json!({}), Some(TOKEN))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["inFlight"] == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the requests never all ran: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let base_url = server.handle.base_url().to_owned();
    let started = Instant::now();
    server.handle.shutdown().await.expect("a clean stop");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "shutdown waited for the requests in flight"
    );
    for request in in_flight {
        let (status, body) = request
            .await
            .expect("the task ran")
            .expect("an in-flight request got its full answer");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["slept"], 800);
    }
    // The element's onAppExit ran, after the last request had finished.
    let exit_record = server
        ._app
        .path()
        .join("elements/fixture/services/EchoSvc")
        .join(crate::fixture::EXIT_RECORD);
    assert_eq!(
        std::fs::read_to_string(&exit_record).expect("onAppExit wrote its record"),
        "in flight at exit: 0"
    );
    let after = crate::util::client()
        .post(format!(
            "{base_url}/api/acme/shop/fixture/services/EchoSvc/ping"
        ))
        .json(&json!({}))
        .send()
        .await;
    assert!(
        after.is_err(),
        "a stopped server accepts nothing: {after:?}"
    );
}

/// The real `jit serve`, SIGTERM, and clients that never finish: a half-open socket (half a
/// request line) is closed at once, a request whose body never comes is cut at the
/// shutdown deadline, and the process exits.
#[tokio::test]
async fn sigterm_closes_half_open_and_stuck_connections_by_the_deadline() {
    let dir = example_app_with(|text| {
        text.replace(
            "listen = \"127.0.0.1:8080\"\n",
            "listen = \"127.0.0.1:8080\"\nshutdown_timeout_secs = 3\nrequest_timeout_secs = 300\nheader_read_timeout_secs = 300\nidle_timeout_secs = 300\n",
        )
    });
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let log = dir.path().join("serve.log");
    let mut server = jit_command()
        .args(["serve", "--app"])
        .arg(dir.path())
        .env("JIT_LISTEN", &address)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("jit serve starts");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let http = crate::util::client();
    let started = Instant::now();
    while http
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            panic!("jit serve never answered:\n{}", logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut half_open = TcpStream::connect(&address).await.unwrap();
    half_open.write_all(b"POST /api/demo/sh").await.unwrap();
    // Headers complete, a body of 1000 bytes promised, a few sent: the handler waits.
    // `Expect: 100-continue` makes the server say when the handler starts reading the
    // body, so the test knows the request is in flight rather than guessing with a sleep.
    let mut stuck = TcpStream::connect(&address).await.unwrap();
    stuck
        .write_all(
            format!(
                "POST /api/demo/shop/pays/services/PaySvc/create HTTP/1.1\r\nhost: shop\r\n\
                 authorization: Bearer {SHOP_TOKEN}\r\ncontent-type: application/json\r\n\
                 expect: 100-continue\r\ncontent-length: 1000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), stuck.read(&mut byte))
            .await
            .expect("the handler reads the body within 10 s")
            .unwrap();
        assert_eq!(read, 1, "closed before 100 Continue:\n{}", logs());
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stuck.write_all(b"{\"subject\": ").await.unwrap();

    let term = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let closed_at = |mut stream: TcpStream| async move {
        let mut buffer = [0_u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(term.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
    };
    let (half_open_closed, stuck_closed) = tokio::join!(closed_at(half_open), closed_at(stuck));
    let half_open_closed = half_open_closed.expect("the half-open connection is closed");
    let stuck_closed = stuck_closed.expect("the stuck request's connection is closed");
    assert!(
        half_open_closed < Duration::from_millis(1500),
        "half-open closed {half_open_closed:?} after SIGTERM, not at once"
    );
    assert!(
        stuck_closed >= Duration::from_millis(2500) && stuck_closed < Duration::from_secs(8),
        "the stuck request was cut {stuck_closed:?} after SIGTERM, not at the 3 s deadline"
    );
    let exit = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            if let Some(status) = server.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = server.kill();
                let _ = server.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let exit = exit.unwrap_or_else(|| panic!("jit serve did not exit:\n{}", logs()));
    assert!(exit.success(), "exit status {exit:?}:\n{}", logs());
    assert!(
        logs().contains("shutdown deadline passed"),
        "the log says why connections were cut:\n{}",
        logs()
    );
}
