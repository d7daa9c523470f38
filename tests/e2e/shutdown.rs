//! Graceful shutdown: requests in flight finish, new ones are not accepted.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::util::{FixtureServer, TOKEN};

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
    // Let every request reach the element before shutting down.
    tokio::time::sleep(Duration::from_millis(300)).await;
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
