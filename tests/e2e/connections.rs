//! Slow, idle and too many clients: each connection is bounded in time and their number is
//! capped, over raw sockets against the real server.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{FixtureServer, TOKEN, TempApp, test_overrides};

/// The fixture server with these `[server]` settings.
async fn server_with(settings: &str) -> FixtureServer {
    FixtureServer::start_app(
        TempApp::fixture_with(&format!("[server]\n{settings}\n")),
        test_overrides(),
    )
    .await
}

/// Reads until the server closes the connection; returns what it sent and when it closed,
/// or `None` when it is still open after `patience`.
async fn wait_for_close(stream: &mut TcpStream, patience: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut received = Vec::new();
    let deadline = Instant::now() + patience;
    loop {
        let mut chunk = [0_u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((received, Instant::now())),
            Ok(Ok(read)) => received.extend_from_slice(&chunk[..read]),
        }
    }
}

const HEALTH_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: shop\r\n\r\n";

#[tokio::test]
async fn half_a_request_line_is_cut_off_after_the_header_timeout() {
    let server = server_with("header_read_timeout_secs = 1\nidle_timeout_secs = 30").await;
    let mut stream = TcpStream::connect(server.handle.local_addr())
        .await
        .unwrap();
    let sent = Instant::now();
    stream.write_all(b"POST /api/acme/sh").await.unwrap();
    let (received, closed) = wait_for_close(&mut stream, Duration::from_secs(8))
        .await
        .expect("the server closes a connection that never completes its request head");
    let held = closed - sent;
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(4),
        "closed after {held:?}"
    );
    assert!(received.is_empty(), "no answer to half a request");

    // A client that trickles its head a byte at a time is bounded by the same deadline,
    // counted from its first byte: activity does not extend it.
    let mut stream = TcpStream::connect(server.handle.local_addr())
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = async {
        for byte in b"GET /healthz HTTP/1.1\r\nhost: shop\r\nx-slow: "
            .iter()
            .cycle()
        {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(8) {
                panic!("the trickling client was never cut off");
            }
        }
    };
    trickle.await;
    let held = started.elapsed();
    assert!(held < Duration::from_secs(4), "cut off after {held:?}");
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_and_a_busy_one_is_not() {
    let server = server_with("header_read_timeout_secs = 5\nidle_timeout_secs = 1").await;
    let mut stream = TcpStream::connect(server.handle.local_addr())
        .await
        .unwrap();
    stream.write_all(HEALTH_REQUEST).await.unwrap();
    let mut answer = vec![0_u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    let answered = Instant::now();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
    let (_, closed) = wait_for_close(&mut stream, Duration::from_secs(8))
        .await
        .expect("an idle kept-alive connection is closed");
    let idle = closed - answered;
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
        "closed after {idle:?} idle"
    );

    // A request that takes longer than both timeouts is not cut: the request timeout
    // governs it.
    let (status, body) = server
        .post(
            "fixture/services/EchoSvc/slow",
            &json!({"ms": 2500}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let server = server_with("max_connections = 2\nheader_read_timeout_secs = 30").await;
    let address = server.handle.local_addr();
    // Both slots are taken by kept-alive clients: each was answered once, so each is
    // accepted and holds its slot, idle.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = TcpStream::connect(address).await.unwrap();
        holder.write_all(HEALTH_REQUEST).await.unwrap();
        let mut answer = vec![0_u8; 4096];
        let read = holder.read(&mut answer).await.unwrap();
        assert!(
            answer[..read].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer[..read])
        );
        holders.push(holder);
    }

    let mut third = TcpStream::connect(address).await.unwrap();
    third.write_all(HEALTH_REQUEST).await.unwrap();
    let mut answer = vec![0_u8; 4096];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut answer)).await;
    assert!(
        early.is_err(),
        "a third connection is not served while two are open"
    );

    drop(holders.pop());
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut answer))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
    drop(holders);
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn elements_see_the_callers_address() {
    let server = FixtureServer::start().await;
    let (status, body) = server
        .post(
            "fixture/services/EchoSvc/echo",
            &json!({"text": "hi"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["peer"], "127.0.0.1", "{body}");
    server.handle.shutdown().await.unwrap();
}
