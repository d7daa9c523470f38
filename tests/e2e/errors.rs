//! Every error class answered as JSON with a stable code and the right status, over real
//! HTTP against the fixture family.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::util::{FixtureServer, TOKEN, error_code, json_reply, test_overrides};

#[tokio::test]
async fn a_declared_function_answers_json() {
    let server = FixtureServer::start().await;
    let (status, body) = server
        .post(
            "fixture/services/EchoSvc/echo",
            &json!({"text": "hi", "times": 2}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["text"], "hi");
    assert_eq!(body["times"], 2);
    assert!(
        body["principal"].is_string(),
        "an authorized call has a principal: {body}"
    );
    assert!(
        body["requestId"].is_string(),
        "the request id reaches the element: {body}"
    );
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_element_and_function_are_404() {
    let server = FixtureServer::start().await;
    let (status, body) = server
        .post(
            "fixture/services/EchoSv/echo",
            &json!({"text": "hi"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fixture.services.EchoSvc"),
        "suggests the near name: {body}"
    );

    let (status, body) = server
        .post("fixture/services/EchoSvc/nope", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "FUNCTION_NOT_FOUND");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("echo"),
        "{body}"
    );

    // Another org/app than the one served.
    let response = server
        .client
        .post(format!(
            "{}/api/other/shop/fixture/services/EchoSvc/echo",
            server.handle.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "NOT_FOUND");

    // Not an API path at all.
    let response = server
        .client
        .get(format!("{}/nothing/here", server.handle.base_url()))
        .send()
        .await
        .unwrap();
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "NOT_FOUND");
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_arguments_are_400_and_name_the_argument() {
    let server = FixtureServer::start().await;
    let path = "fixture/services/EchoSvc/echo";
    for (arguments, mentions) in [
        (json!({"text": 5}), "text"),
        (json!({"text": "hi", "times": "two"}), "times"),
        (json!({"text": "hi", "colour": "red"}), "colour"),
        (json!({}), "text"),
    ] {
        let (status, body) = server.post(path, &arguments, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{arguments}: {body}");
        assert_eq!(error_code(&body), "BAD_ARGUMENTS", "{arguments}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{arguments}: the message names `{mentions}`: {body}"
        );
    }

    let (status, body) = server.post(path, &json!(["text"]), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "BAD_ARGUMENTS");

    for (content_type, raw_body, expected_status, expected_code) in [
        (
            "application/json",
            "{\"text\": ",
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
        ),
        (
            "text/plain",
            "{\"text\": \"hi\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ] {
        let response = server
            .client
            .post(server.api(path))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(raw_body)
            .send()
            .await
            .unwrap();
        let (status, body) = json_reply(response).await;
        assert_eq!(status, expected_status, "{content_type}: {body}");
        assert_eq!(error_code(&body), expected_code, "{content_type}: {body}");
    }
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let server = FixtureServer::start().await;
    let path = "fixture/services/EchoSvc/echo";
    let arguments = json!({"text": "hi"});

    let (status, body) = server.post(path, &arguments, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "MISSING_TOKEN");

    for wrong in ["wrong", "t0ken-for-test", "t0ken-for-testss", ""] {
        let (status, body) = server.post(path, &arguments, Some(wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {wrong:?}");
        assert_eq!(error_code(&body), "INVALID_TOKEN", "token {wrong:?}");
        assert!(
            !body.to_string().contains(crate::util::TOKEN),
            "never echo the real token"
        );
    }

    let response = server
        .client
        .post(server.api(path))
        .header("authorization", format!("Basic {TOKEN}"))
        .json(&arguments)
        .send()
        .await
        .unwrap();
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "INVALID_TOKEN");

    // Authorization comes before arguments: an unknown caller learns nothing about them.
    let (status, _) = server.post(path, &json!({"bogus": 1}), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A function declared `loginRequired: false` needs no token.
    let (status, body) = server
        .post("fixture/services/EchoSvc/ping", &json!({}), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pong"], true);
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn element_errors_map_to_statuses_and_internals_stay_in_the_log() {
    let server = FixtureServer::start().await;
    let (status, body) = server
        .post("fixture/services/EchoSvc/conflict", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "CONFLICT");

    let (status, body) = server
        .post("fixture/services/EchoSvc/upstream", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(&body), "UPSTREAM");

    // The category alone picks the status; the specific code is passed on as it is.
    let (status, body) = server
        .post("fixture/services/EchoSvc/refused", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "INVALID_STATE");
    let (status, body) = server
        .post("fixture/services/EchoSvc/missing", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "THING_GONE");

    let (status, body) = server
        .post("fixture/services/EchoSvc/internal", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body), "INTERNAL");
    assert!(
        !body.to_string().contains("secret-path"),
        "internal details are not sent to clients: {body}"
    );
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panic_is_a_json_500_and_the_server_lives_on() {
    let server = FixtureServer::start().await;
    for _ in 0..3 {
        let (status, body) = server
            .post("fixture/services/EchoSvc/boom", &json!({}), Some(TOKEN))
            .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error_code(&body), "INTERNAL");
        assert!(!body.to_string().contains("fixture panic"), "{body}");
    }
    let (status, _) = server
        .post("fixture/services/EchoSvc/ping", &json!({}), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let server = FixtureServer::start().await;
    let huge = "x".repeat(300 * 1024);
    let (status, body) = server
        .post(
            "fixture/services/EchoSvc/echo",
            &json!({"text": huge}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");

    // XML functions have a far smaller cap and answer in WeChat's XML.
    let response = server
        .client
        .post(server.api("fixture/services/EchoSvc/xmlEcho"))
        .header("content-type", "text/xml")
        .body(format!("<xml>{}</xml>", "y".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("<return_code><![CDATA[FAIL]]></return_code>"),
        "{text}"
    );
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn xml_functions_take_the_raw_body_and_answer_xml() {
    let server = FixtureServer::start().await;
    let body = "<xml><a>1</a></xml>";
    let response = server
        .client
        .post(server.api("fixture/services/EchoSvc/xmlEcho"))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(&format!("<length>{}</length>", body.len())),
        "{text}"
    );
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let server = FixtureServer::start().await;
    let url = server.api("fixture/services/EchoSvc/ping");
    let response = server
        .client
        .post(&url)
        .header("x-request-id", "abc-123")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");

    let response = server
        .client
        .post(&url)
        .header("x-request-id", "evil id\twith tabs")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(generated, "evil id\twith tabs");
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_past_its_timeout_is_504() {
    let server = FixtureServer::start_with(jit::Overrides {
        request_timeout: Some(Duration::from_millis(200)),
        ..test_overrides()
    })
    .await;
    let (status, body) = server
        .post(
            "fixture/services/EchoSvc/slow",
            &json!({"ms": 2000}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error_code(&body), "TIMEOUT");
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn healthz_reports_json() {
    let server = FixtureServer::start().await;
    let response = server
        .client
        .get(format!("{}/healthz", server.handle.base_url()))
        .send()
        .await
        .unwrap();
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["app"], "acme/shop");
    server.handle.shutdown().await.unwrap();
}

/// An element's error that names a file of the app, a database or an internal URL is a
/// fault of the configuration or of the server: the caller gets a 5xx with a generic
/// message (never a 400 blaming them), the log gets the detail.
#[tokio::test]
async fn error_bodies_never_show_files_databases_or_internal_urls() {
    let server = FixtureServer::start().await;
    let app_dir = std::fs::canonicalize(server._app.path()).unwrap();
    let config_file = app_dir.join("elements/fixture/services/EchoSvc/EchoSvc.json");
    let config_file = config_file.display().to_string();
    let cases = [
        (
            "bad",
            format!("{config_file}: config.mchId: `12ab` is not 8 to 10 digits"),
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
        ),
        (
            "bad",
            "cannot open postgres://shop:***@db.internal/shop".to_owned(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
        ),
        (
            "conflict",
            "sqlite:///srv/shop/shop.db is locked".to_owned(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
        ),
        (
            "upstream",
            "error sending request for url (http://127.0.0.1:39999/pay/unifiedorder)".to_owned(),
            StatusCode::BAD_GATEWAY,
            "UPSTREAM",
        ),
    ];
    for (kind, message, status, code) in cases {
        let (answered, body) = server
            .post(
                "fixture/services/EchoSvc/fail",
                &json!({"kind": kind, "message": message}),
                Some(TOKEN),
            )
            .await;
        assert_eq!(answered, status, "{message}: {body}");
        assert_eq!(error_code(&body), code, "{body}");
        let shown = body.to_string();
        for internal in [
            app_dir.display().to_string().as_str(),
            server._app.path().to_str().unwrap(),
            "postgres://",
            "sqlite:",
            "127.0.0.1",
        ] {
            assert!(!shown.contains(internal), "`{internal}` in {shown}");
        }
    }
    // An ordinary refusal of the caller's arguments is theirs to fix, and says why.
    let (status, body) = server
        .post(
            "fixture/services/EchoSvc/fail",
            &json!({"kind": "bad", "message": "argument `amount` must be positive"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["message"],
        "argument `amount` must be positive"
    );
    server.handle.shutdown().await.unwrap();
}

/// A Type (or a Meta) declares functions for its instances and serves none itself: a call
/// to one is a 404 that says so, not an internal error from building it.
#[tokio::test]
async fn a_type_serves_no_calls() {
    let shop = crate::util::ShopServer::start().await;
    for path in [
        "pays/WechatPayType/getNotifyUrl",
        "pays/WechatPayType/create",
        "pays/Meta/create",
    ] {
        let response = shop
            .client
            .post(shop.api(path))
            .bearer_auth(crate::util::SHOP_TOKEN)
            .json(&json!({"subject": "x", "amount": 1}))
            .send()
            .await
            .unwrap();
        let (status, body) = crate::util::json_reply(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(error_code(&body), "NOT_FOUND", "{path}: {body}");
    }
    let (status, body) = crate::util::json_reply(
        shop.client
            .post(shop.api("pays/WechatPayType/getNotifyUrl"))
            .bearer_auth(crate::util::SHOP_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is a Type"),
        "{status}: {body}"
    );
    let (status, body) = crate::util::json_reply(
        shop.client
            .post(shop.api("pays/Meta/create"))
            .bearer_auth(crate::util::SHOP_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["error"]["message"],
        "`pays.Meta` is a Meta, not an element that serves calls: call one of its instances",
        "{body}"
    );
    // Its instances still answer.
    let url = shop
        .pay_svc("create", json!({"subject": "x", "amount": 1}))
        .await;
    assert!(url["orderId"].is_string(), "{url}");
    shop.handle.shutdown().await.unwrap();
}
