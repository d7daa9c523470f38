//! `Numeric` arguments through the real `jit` binary over HTTP: a number in the request
//! body reaches the element exactly as written, or is refused naming the argument; never
//! silently changed on the way. A decimal string is the way to send any amount exactly.

use reqwest::StatusCode;
use serde_json::Value;

use crate::binary::{Served, use_simulator};
use crate::util::{SHOP_TOKEN, client, copy_example_app, error_code, json_reply};

/// Posts `body` as it is written (never through a `serde_json::Value`, which would round
/// the number before it is sent).
async fn post_raw(http: &reqwest::Client, url: &str, body: &str) -> (StatusCode, Value) {
    let response = http
        .post(url)
        .bearer_auth(SHOP_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("jit serve answers");
    json_reply(response).await
}

#[tokio::test]
async fn numeric_arguments_are_exact_or_refused_never_changed() {
    let app = tempfile::tempdir().expect("temp dir");
    copy_example_app(app.path());
    use_simulator(app.path());
    let http = client();
    let mut served = Served::start(app.path(), &[]);
    served.ready(&http).await;
    let api = |path: &str| format!("{}/api/demo/shop/{path}", served.base);
    let mut created = Vec::new();

    for path in ["pays/myWechatPay/create", "pays/services/PaySvc/create"] {
        // 17 significant digits: as a JSON number this reads as 1234567890123456.8 (or .75).
        let (status, body) = post_raw(
            &http,
            &api(path),
            r#"{"subject": "Too precise", "amount": 1234567890123456.78}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(error_code(&body), "BAD_ARGUMENTS", "{path}: {body}");
        let message = body["error"]["message"].as_str().expect("a message");
        assert!(
            message.contains("argument `amount`") && message.contains("decimal string"),
            "{path}: {message}"
        );
        assert!(
            !message.contains("1234567890123456"),
            "the value is not echoed: {message}"
        );

        // The issue's example: kept exactly (an order of exactly that many fen) or refused.
        let (status, body) = post_raw(
            &http,
            &api(path),
            r#"{"subject": "Exact or nothing", "amount": 123456789012345.67}"#,
        )
        .await;
        if status == StatusCode::OK {
            assert_eq!(body["amountFen"], 12345678901234567_i64, "{path}: {body}");
            created.push(body["orderId"].clone());
        } else {
            assert!(status.is_client_error(), "{path}: {status} {body}");
            assert_eq!(error_code(&body), "BAD_ARGUMENTS", "{path}: {body}");
        }

        // The same amount as a decimal string, which Numeric takes, and an everyday number.
        for (amount, fen) in [(r#""99.99""#, 9999), ("99.99", 9999), ("0.29", 29)] {
            let (status, body) = post_raw(
                &http,
                &api(path),
                &format!(r#"{{"subject": "Coffee", "amount": {amount}}}"#),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{path} {amount}: {body}");
            assert_eq!(body["amountFen"], fen, "{path} {amount}: {body}");
            created.push(body["orderId"].clone());
        }
    }

    // A refused call writes nothing: the shop holds exactly the orders created above.
    let (status, listed) = post_raw(
        &http,
        &api("pays/models/PayLogModel/query"),
        r#"{"pageSize": 100}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let mut listed: Vec<Value> = listed["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page of orders: {listed}"))
        .iter()
        .map(|order| order["orderId"].clone())
        .collect();
    listed.sort_by_key(Value::to_string);
    created.sort_by_key(Value::to_string);
    assert_eq!(listed, created);

    served.stop().await;
}
