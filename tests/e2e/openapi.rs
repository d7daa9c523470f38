//! The API description: `GET /api/{org}/{app}/openapi.json` checked by an independent
//! validator (openapi-spec-validator) and against the app's declarations, the `/docs`
//! page over HTTP, and `jit openapi` printing the same document.

use jit_runtime::{CallErrorKind, DataType};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::openapi_31_problems;

use crate::binary::{jit, text};
use crate::util::{
    FixtureServer, SHOP_TOKEN, ShopServer, TempApp, example_app, json_reply, test_overrides,
};

async fn get_document(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("the server answers");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{url}"
    );
    let (status, document) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    document
}

fn assert_valid(document: &Value) {
    let problems = openapi_31_problems(document);
    assert!(problems.is_empty(), "not valid OpenAPI 3.1: {problems:#?}");
}

/// What each argument's schema must say, from the runtime's data type (not from the
/// generator's own table).
fn assert_argument_schema(schema: &Value, data_type: DataType, at: &str) {
    assert_eq!(schema["x-jit-dataType"], data_type.as_str(), "{at}");
    let expected_type = match data_type {
        DataType::Stext | DataType::Ltext | DataType::Date | DataType::Datetime => {
            json!("string")
        }
        DataType::Numeric => json!(["number", "string"]),
        DataType::Integer => json!("integer"),
        DataType::Boolean => json!("boolean"),
        DataType::List => json!("array"),
        DataType::Json | DataType::Any => Value::Null,
    };
    assert_eq!(schema["type"], expected_type, "{at}: {schema}");
}

/// Every function of every instance of the example shop is a POST at its URL, with bearer
/// security exactly when it requires a login, its arguments as the body's schema (XML for
/// `bodyFormat: xml`), and the whole document passes openapi-spec-validator. Types and the
/// Meta are not listed: their functions are served on their instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_document_lists_every_function_and_validates() {
    let shop = ShopServer::start().await;
    let document = get_document(&shop.client, &shop.api("openapi.json")).await;
    assert_valid(&document);
    assert_eq!(document["openapi"], "3.1.0");

    // The validator is no rubber stamp: the same document with a broken operation fails.
    let mut broken = document.clone();
    broken["paths"]["/api/demo/shop/pays/services/PaySvc/create"]["post"]["responses"] = json!({});
    assert!(!openapi_31_problems(&broken).is_empty());

    let app = shop.handle.app();
    let definitions = app.definitions();
    let paths = document["paths"].as_object().expect("paths");
    let mut listed = 0;
    for chain in definitions.iter() {
        let element = chain.element();
        let prefix = format!("/api/demo/shop/{}/", element.full_name.to_path());
        let instance =
            !element.is_meta() && !definitions.is_used_as_type(element.full_name.as_str());
        if !instance {
            assert!(
                !paths.keys().any(|path| path.starts_with(&prefix)),
                "{} is a Meta or a Type: not listed",
                element.full_name
            );
            continue;
        }
        for function in chain.functions() {
            let path = format!("{prefix}{}", function.name);
            let operation = &paths
                .get(&path)
                .unwrap_or_else(|| panic!("{path} is not listed"))["post"];
            listed += 1;
            let security = operation["security"].as_array().expect("security");
            if function.login_required {
                assert_eq!(security, &vec![json!({"bearerAuth": []})], "{path}");
                assert!(operation["responses"]["401"].is_object(), "{path}");
            } else {
                assert!(security.is_empty(), "{path}: {security:?}");
                assert!(operation["responses"]["401"].is_null(), "{path}");
            }
            let content = &operation["requestBody"]["content"];
            let xml = function.body_format == jit_runtime::BodyFormat::Xml;
            if xml {
                assert_eq!(content["application/xml"]["schema"]["type"], "string");
                assert!(content["application/json"].is_null(), "{path}");
                assert!(operation["responses"]["200"]["content"]["application/xml"].is_object());
                continue;
            }
            // A callback (V3 notifies) takes the request as it came and chooses its answer.
            if function.body_format == jit_runtime::BodyFormat::Http {
                assert_eq!(content["application/json"]["schema"], json!({}), "{path}");
                assert!(content["application/xml"].is_null(), "{path}");
                continue;
            }
            let schema = &content["application/json"]["schema"];
            assert_eq!(schema["type"], "object", "{path}");
            assert_eq!(schema["additionalProperties"], false, "{path}");
            let properties = schema["properties"].as_object().expect("properties");
            assert_eq!(properties.len(), function.args.len(), "{path}");
            let required: Vec<&str> = function
                .args
                .iter()
                .filter(|arg| arg.required)
                .map(|arg| arg.name.as_str())
                .collect();
            let listed_required: Vec<&str> = schema["required"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(listed_required, required, "{path}");
            assert_eq!(
                operation["requestBody"]["required"],
                !required.is_empty(),
                "{path}"
            );
            for arg in &function.args {
                assert_argument_schema(
                    &properties[&arg.name],
                    arg.data_type,
                    &format!("{path} {}", arg.name),
                );
            }
        }
    }
    assert_eq!(
        paths.len(),
        listed + 1,
        "only the functions and /healthz are listed"
    );
    assert!(paths.contains_key("/healthz"));
    assert!(!paths.keys().any(|path| path.contains("/WechatPayType/")));

    // Amounts say yuan; the notify is XML and open.
    let create = &paths["/api/demo/shop/pays/services/PaySvc/create"]["post"];
    let amount =
        &create["requestBody"]["content"]["application/json"]["schema"]["properties"]["amount"];
    assert!(
        amount["description"].as_str().unwrap().contains("yuan"),
        "{amount}"
    );

    // The error codes: every category's, and the pays family's own, from where each is
    // defined.
    let codes = &document["components"]["schemas"]["ErrorCode"]["x-jit-codes"];
    let code_of = |code: &str| {
        codes
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["code"] == code)
            .unwrap_or_else(|| panic!("{code} is not listed"))
            .clone()
    };
    for kind in CallErrorKind::ALL {
        code_of(kind.code());
    }
    assert_eq!(code_of(jit_runtime::INVALID_JSON)["status"], 400);
    for specific in jit_pays::error::SPECIFIC_CODES {
        let entry = code_of(specific.code);
        assert_eq!(entry["category"], specific.kind.code());
        assert_eq!(entry["from"], "pays");
    }
    assert_eq!(code_of("ORDER_PAID")["status"], 409);
    assert_eq!(code_of("ORDER_NOT_FOUND")["status"], 404);

    // The listed URL is the one that serves the function, with the listed security.
    let (status, body) = {
        let response = shop
            .client
            .post(format!(
                "{}/api/demo/shop/pays/services/PaySvc/create",
                shop.handle.base_url()
            ))
            .bearer_auth(SHOP_TOKEN)
            .json(&json!({"subject": "OpenAPI", "amount": "0.01"}))
            .send()
            .await
            .expect("the shop answers");
        json_reply(response).await
    };
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = shop
        .client
        .post(shop.api("pays/services/PaySvc/create"))
        .json(&json!({"subject": "OpenAPI", "amount": "0.01"}))
        .send()
        .await
        .expect("the shop answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Only the app this server hosts is described.
    let response = shop
        .client
        .get(format!(
            "{}/api/demo/other/openapi.json",
            shop.handle.base_url()
        ))
        .send()
        .await
        .expect("the shop answers");
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("demo/shop")
    );
}

/// An app with an element named `docs` and a function named `openapi.json`: their URLs
/// have two segments after the app, so they stay calls of functions while the one-segment
/// `docs` and `openapi.json` are the description. Titles from e.json are escaped on the
/// page, and the page loads nothing from anywhere.
const DOCS_ELEMENT: &str = r#"{
  "type": "fixture.Meta",
  "title": "<script>alert('x')</script> & co",
  "functionList": [
    {"name": "ping", "title": "Ping <b>bold</b>", "args": [], "loginRequired": false},
    {"name": "echo", "args": [
      {"name": "text", "title": "Text to echo", "dataType": "Stext"},
      {"name": "on", "dataType": "Date", "required": false}
    ]}
  ]
}"#;

const A_TYPE: &str = r#"{
  "type": "fixture.Meta",
  "title": "A Type",
  "functionList": [{"name": "ping", "args": []}]
}"#;

const OF_THE_TYPE: &str = r#"{"type": "fixture.things.EchoType", "title": "Of the type"}"#;

fn fixture_app() -> TempApp {
    TempApp::new(
        "",
        &[
            ("elements/fixture/Meta/e.json", crate::fixture::META),
            (
                "elements/fixture/services/EchoSvc/e.json",
                crate::fixture::ECHO_SVC,
            ),
            ("elements/docs/e.json", DOCS_ELEMENT),
            ("elements/fixture/things/EchoType/e.json", A_TYPE),
            ("elements/fixture/things/mine/e.json", OF_THE_TYPE),
        ],
    )
}

#[tokio::test]
async fn the_docs_page_renders_the_same_functions_offline_and_escaped() {
    let server = FixtureServer::start_app(fixture_app(), test_overrides()).await;

    // The element `docs` is still called, not shadowed by the page.
    let (status, body) = server.post("docs/ping", &json!({}), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"pong": true}));

    let document = get_document(&server.client, &server.api("openapi.json")).await;
    assert_valid(&document);
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/acme/shop/docs/ping"));
    assert!(paths.contains_key("/api/acme/shop/fixture/things/mine/ping"));
    assert!(
        !paths.contains_key("/api/acme/shop/fixture/things/EchoType/ping"),
        "a Type is not listed"
    );
    // A host without the pays family lists none of its codes.
    let codes = document["components"]["schemas"]["ErrorCode"]["examples"].to_string();
    assert!(
        codes.contains("BAD_ARGUMENTS") && !codes.contains("ORDER_PAID"),
        "{codes}"
    );

    let response = server
        .client
        .get(server.api("docs"))
        .send()
        .await
        .expect("the page answers");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let page = response.text().await.unwrap();
    // The style sheet carries the policy's nonce; nothing else is inline or fetched.
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy");
    assert!(
        page.contains(&format!("<style nonce=\"{nonce}\">")),
        "{page}"
    );
    assert!(
        !page.contains("<script"),
        "no script, and e.json text is escaped"
    );
    assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; co"));
    assert!(page.contains("Ping &lt;b&gt;bold&lt;/b&gt;"));
    assert!(!page.contains(" src="), "nothing loaded");
    assert!(!page.contains("href=\"http"), "no link off the server");
    // Every listed function is on the page, with its security and arguments.
    for path in paths.keys().filter(|path| path.starts_with("/api/")) {
        assert!(
            page.contains(&format!("<code>{path}</code>")),
            "{path} is not on the page"
        );
    }
    assert!(page.contains("Text to echo"));
    assert!(page.contains("string YYYY-MM-DD"));
    assert!(page.contains("href=\"openapi.json\""));
    assert!(page.contains("BAD_ARGUMENTS"));
    assert!(!page.contains("fixture/things/EchoType/"));

    // Another app's page is a 404 in the API's error shape.
    let response = server
        .client
        .get(format!("{}/api/acme/other/docs", server.handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The function route stays POST only; the description is GET only.
    let response = server
        .client
        .post(server.api("openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// `jit openapi` prints exactly what the server answers for the same app, and puts
/// `[server] public_base_url` (here from the environment) in `servers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jit_openapi_prints_the_served_document() {
    let shop = ShopServer::start().await;
    let served = get_document(&shop.client, &shop.api("openapi.json")).await;

    let app = example_app();
    let output = jit(&["openapi"], app.path())
        .env_remove("JIT_PUBLIC_BASE_URL")
        .output()
        .expect("jit runs");
    assert!(output.status.success(), "{}", text(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(printed, served);
    assert!(printed.get("servers").is_none());

    let output = jit(&["openapi"], app.path())
        .env("JIT_PUBLIC_BASE_URL", "https://shop.example.com/")
        .output()
        .expect("jit runs");
    assert!(output.status.success(), "{}", text(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(
        printed["servers"],
        json!([{"url": "https://shop.example.com"}])
    );
    assert_valid(&printed);

    // A broken app is an error naming the file, not a document.
    std::fs::write(app.path().join("elements/pays/myWechatPay/e.json"), "{").unwrap();
    let output = jit(&["openapi"], app.path()).output().expect("jit runs");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        text(&output).contains("myWechatPay/e.json"),
        "{}",
        text(&output)
    );
}
