//! `bodyFormat: http`: a function that takes the request itself (method, headers, raw
//! body) and chooses its answer's status, over real HTTP, with a Rust service behind it.
//! The callbacks that are verified over their headers (WeChat Pay V3's) are built on it.

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::util::{SHOP_TOKEN, client, copy_example_app, test_overrides};

const CALLBACK: &str = "shop.services.Callback";

/// The example shop with a service element whose functions take the raw request.
fn app_with_callback() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_example_app(dir.path());
    let folder = dir.path().join("elements/shop/services/Callback");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("e.json"),
        json!({
            "title": "Callback",
            "type": "services.NormalType",
            "functionList": [
                {"name": "receive", "args": [{"name": "request", "dataType": "JSON"}],
                 "loginRequired": false, "bodyFormat": "http"},
                {"name": "misbehave", "args": [{"name": "request", "dataType": "JSON"}],
                 "loginRequired": false, "bodyFormat": "http"},
                {"name": "guarded", "args": [{"name": "request", "dataType": "JSON"}],
                 "bodyFormat": "http"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    dir
}

/// Answers what it was given: the request's argument back as the body, with the status
/// the request's `x-answer-status` header asks for (and no body for a 204).
async fn echo(
    _app: jit_runtime::App,
    args: Map<String, Value>,
    _cx: jit_runtime::CallContext,
) -> Result<Value, jit_runtime::CallError> {
    let request = args["request"].clone();
    let status: u16 = request["headers"]["x-answer-status"]
        .as_str()
        .and_then(|status| status.parse().ok())
        .unwrap_or(200);
    let body = if status == 204 { Value::Null } else { request };
    Ok(json!({"status": status, "body": body}))
}

fn host() -> jit::Host {
    let functions = jit_services::ServiceFunctions::new()
        .function("receive", echo)
        .function("guarded", echo)
        // Not the `{"status", "body"}` an http function must answer.
        .function("misbehave", |_app, _args, _cx| async move {
            Ok(json!({"status": 200, "body": null, "headers": {"x": "y"}}))
        });
    jit::Host::new().service(CALLBACK, functions)
}

#[tokio::test]
async fn an_http_function_gets_the_request_and_chooses_the_status() {
    let dir = app_with_callback();
    let overrides = jit::Overrides {
        database_url: Some(format!("sqlite://{}", dir.path().join("shop.db").display())),
        ..test_overrides()
    };
    let handle = host()
        .serve_in_process(dir.path(), overrides)
        .await
        .unwrap();
    let url = |function: &str| {
        format!(
            "{}/api/demo/shop/shop/services/Callback/{function}",
            handle.base_url()
        )
    };
    let http = client();
    let body = r#"{"id":"EV-1","amount":{"total":1}}"#;

    // The function sees the method, the headers (lower-case, a repeated one joined) and the
    // body as sent, never the caller's credentials; its status is the answer's.
    let response = http
        .post(url("receive"))
        .header("Content-Type", "application/json")
        .header("Wechatpay-Serial", "PUB_KEY_ID_0114")
        .header("X-Answer-Status", "202")
        .header("X-Repeated", "a")
        .header("X-Repeated", "b")
        .header("Authorization", "Bearer a-caller-secret")
        .header("Cookie", "session=also-secret")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "POST", "{seen}");
    assert_eq!(seen["body"], body, "{seen}");
    assert_eq!(
        seen["headers"]["wechatpay-serial"], "PUB_KEY_ID_0114",
        "{seen}"
    );
    assert_eq!(seen["headers"]["x-repeated"], "a, b", "{seen}");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert!(seen["headers"].get("cookie").is_none(), "{seen}");
    let text = seen.to_string();
    assert!(
        !text.contains("secret"),
        "credentials reached the function: {text}"
    );

    // No body when the function answers none; 4xx/5xx pass through as chosen.
    let response = http
        .post(url("receive"))
        .header("X-Answer-Status", "204")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = http
        .post(url("receive"))
        .header("X-Answer-Status", "401")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A status outside 200..=599 or a result of another shape is the function's bug: a
    // 500 that says so, not a quiet 200.
    for (function, status) in [("receive", "100"), ("receive", "600"), ("misbehave", "200")] {
        let response = http
            .post(url(function))
            .header("X-Answer-Status", status)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{function} answering {status}"
        );
    }

    // Not UTF-8: refused before the function runs.
    let response = http
        .post(url("receive"))
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // `loginRequired` still guards an http function; the token is checked, then withheld.
    let response = http.post(url("guarded")).body(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http
        .post(url("guarded"))
        .bearer_auth(SHOP_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.unwrap();
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");

    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_raw_format_with_other_than_one_argument_or_an_unknown_format_is_refused_at_check() {
    let dir = app_with_callback();
    let folder = dir.path().join("elements/shop/services/Callback");
    std::fs::write(
        folder.join("e.json"),
        json!({
            "type": "services.NormalType",
            "functionList": [
                {"name": "receive", "args": [], "bodyFormat": "http"},
                {"name": "other", "args": [{"name": "a", "dataType": "JSON"}], "bodyFormat": "yaml"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(["check", "--app"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("Callback/e.json"), "{text}");
    // serde reports the first shape error of the file: the unknown value, at its path.
    assert!(text.contains("bodyFormat"), "{text}");
    assert!(text.contains("yaml"), "{text}");
}
