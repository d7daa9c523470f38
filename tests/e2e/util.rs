//! The harness: temporary apps on disk, an in-process server, and an HTTP client.

use std::path::Path;
use std::time::Duration;

use jit::{Host, Overrides, ServerHandle};
use reqwest::StatusCode;
use serde_json::Value;

use crate::fixture;

/// The bearer token the fixture app accepts.
pub const TOKEN: &str = "t0ken-for-tests";

/// An app directory in a temporary folder, removed on drop.
pub struct TempApp {
    dir: tempfile::TempDir,
}

impl TempApp {
    /// An app `acme/shop` with `files` (relative path → content) and `app_toml_extra`
    /// appended to its app.toml.
    pub fn new(app_toml_extra: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let app_toml = format!(
            "[app]\norg = \"acme\"\nname = \"shop\"\n\n[env]\nTEST_TOKEN = \"{TOKEN}\"\n\n[auth]\ntokens = [\"{{{{TEST_TOKEN}}}}\"]\n\n{app_toml_extra}\n"
        );
        std::fs::write(dir.path().join("app.toml"), app_toml).expect("write app.toml");
        let app = Self { dir };
        for (path, content) in files {
            app.write(path, content);
        }
        app
    }

    /// The fixture family's app.
    pub fn fixture() -> Self {
        Self::fixture_with("")
    }

    /// The fixture family's app with `app_toml_extra` appended to its app.toml.
    pub fn fixture_with(app_toml_extra: &str) -> Self {
        Self::new(
            app_toml_extra,
            &[
                ("elements/fixture/Meta/e.json", fixture::META),
                (
                    "elements/fixture/services/EchoSvc/e.json",
                    fixture::ECHO_SVC,
                ),
            ],
        )
    }

    /// Writes a file below the app dir, creating folders.
    pub fn write(&self, relative: &str, content: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
        std::fs::write(path, content).expect("write file");
    }

    /// The app dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A host with only the fixture family.
pub fn fixture_host() -> Host {
    Host::bare().loader("fixture.Meta", fixture::FixtureLoader)
}

/// Overrides for tests: a random loopback port.
pub fn test_overrides() -> Overrides {
    Overrides {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        ..Overrides::default()
    }
}

/// A running fixture server and the app it serves.
pub struct FixtureServer {
    pub handle: ServerHandle,
    /// Kept so the app dir outlives the server.
    pub _app: TempApp,
    pub client: reqwest::Client,
}

impl FixtureServer {
    pub async fn start() -> Self {
        Self::start_with(test_overrides()).await
    }

    pub async fn start_with(overrides: Overrides) -> Self {
        Self::start_app(TempApp::fixture(), overrides).await
    }

    /// Serves `app` (the fixture's app with its own app.toml, say) with the fixture host.
    pub async fn start_app(app: TempApp, overrides: Overrides) -> Self {
        let handle = fixture_host()
            .serve_in_process(app.path(), overrides)
            .await
            .expect("the fixture server starts");
        Self {
            handle,
            _app: app,
            client: client(),
        }
    }

    /// `{base}/api/acme/shop/{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/acme/shop/{path}", self.handle.base_url())
    }

    /// POSTs JSON with an optional token; returns the status and the JSON body.
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.post(self.api(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        json_reply(request.send().await.expect("the server answers")).await
    }
}

/// A client that never reuses a connection across tests and gives up after 30 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The status and the JSON body of a response (panics when the body is not JSON).
pub async fn json_reply(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("HTTP {status}: body is not JSON ({err}): {text}"));
    (status, body)
}

/// POSTs `arguments` as JSON to `url`, with the bearer `token` when given, and reads the
/// JSON answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: String,
    arguments: &Value,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = http.post(url).json(arguments);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    json_reply(request.send().await.expect("the server answers")).await
}

/// Asserts the error shape `{"error": {"code", "message"}}` and returns the code.
pub fn error_code(body: &Value) -> &str {
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {body}"));
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// The example shop (the repository's app.toml and elements/) copied into a temporary
/// folder, served by the stock host: SQLite beside the copy, the simulator in-process.
pub struct ShopServer {
    pub handle: ServerHandle,
    /// Kept so the app dir (and its database) outlives the server.
    pub _dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

/// The example app's token, merchant and key (its app.toml `[env]`).
pub const SHOP_TOKEN: &str = "demo-token";
pub const SHOP_APPID: &str = "wx2421b1c4370ec43b";
pub const SHOP_MCH_ID: &str = "10000100";
pub const SHOP_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

impl ShopServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_example_app(dir.path());
        let overrides = Overrides {
            // Explicit, so a DATABASE_URL in the environment cannot point tests elsewhere.
            database_url: Some(format!("sqlite://{}", dir.path().join("shop.db").display())),
            ..test_overrides()
        };
        let handle = Host::new()
            .serve_in_process(dir.path(), overrides)
            .await
            .expect("the example shop starts");
        Self {
            handle,
            _dir: dir,
            client: client(),
        }
    }

    /// `{base}/api/demo/shop/{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/demo/shop/{path}", self.handle.base_url())
    }

    /// Waits until the outbox has handed every event written so far to its consumers
    /// (hooks subscribed in this process included), or panics after 10 s.
    pub async fn outbox_idle(&self) {
        let store = self
            .handle
            .app()
            .service::<jit_pays::PayStore>()
            .expect("the pays family provides its store");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let pending = jit_pays::outbox::pending_deliveries(store.connection())
                .await
                .expect("the store answers");
            if pending.values().all(|&count| count == 0) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "deliveries still pending: {pending:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The notify URL.
    pub fn notify_url(&self) -> String {
        self.api("pays/services/PaySvc/wechatNotify")
    }

    /// Calls a PaySvc function with the shop's token; panics unless it answers 200.
    pub async fn pay_svc(&self, function: &str, arguments: Value) -> Value {
        let response = self
            .client
            .post(self.api(&format!("pays/services/PaySvc/{function}")))
            .bearer_auth(SHOP_TOKEN)
            .json(&arguments)
            .send()
            .await
            .expect("the shop answers");
        let (status, body) = json_reply(response).await;
        assert_eq!(status, StatusCode::OK, "{function}: {body}");
        body
    }

    /// Creates an order; returns its id.
    pub async fn create_order(&self, amount: &str) -> String {
        let amount: Value = serde_json::from_str(amount).expect("a JSON number");
        let order = self
            .pay_svc(
                "create",
                serde_json::json!({"subject": "Test order", "amount": amount}),
            )
            .await;
        order["orderId"].as_str().expect("an orderId").to_owned()
    }

    /// The order's status (`wait`, `success`, ...).
    pub async fn status(&self, order_id: &str) -> String {
        let order = self
            .pay_svc("query", serde_json::json!({"orderId": order_id}))
            .await;
        order["status"].as_str().expect("a status").to_owned()
    }

    /// POSTs a raw notify body; returns the HTTP status and the reply text.
    pub async fn post_notify(&self, body: impl Into<reqwest::Body>) -> (StatusCode, String) {
        let response = self
            .client
            .post(self.notify_url())
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .expect("the shop answers");
        let status = response.status();
        (status, response.text().await.expect("a body"))
    }
}

/// The repository's example app in a temporary folder.
pub fn example_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_example_app(dir.path());
    dir
}

/// The repository's example app in a temporary folder, its app.toml passed through `edit`.
pub fn example_app_with(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = example_app();
    let app_toml = dir.path().join("app.toml");
    let text = std::fs::read_to_string(&app_toml).expect("read app.toml");
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(&app_toml, edited).expect("write app.toml");
    dir
}

/// Makes the example app's V3 instance (`pays.myWechatPayV3`) fit for a gateway that is
/// not the in-process simulator, as a merchant going live would: its own private key in
/// place of the published demo key (the test merchant's, `test_support::v3_keys`), its
/// APIv3 key and serial, and the WeChat Pay public key to verify WeChat with.
pub fn v3_instance_live(app: &Path) {
    use test_support::v3_keys::{
        API_V3_KEY, MERCHANT_KEY_PEM, MERCHANT_SERIAL_NO, WECHATPAY_PUBLIC_KEY_ID,
        WECHATPAY_PUBLIC_KEY_PEM,
    };
    std::fs::create_dir_all(app.join("keys")).expect("create keys/");
    std::fs::write(app.join("keys/apiclient_key.pem"), MERCHANT_KEY_PEM).expect("write the key");
    std::fs::write(app.join("keys/pub_key.pem"), WECHATPAY_PUBLIC_KEY_PEM).expect("write the key");
    let app_toml = app.join("app.toml");
    let mut table: toml::Table = std::fs::read_to_string(&app_toml)
        .expect("read app.toml")
        .parse()
        .expect("app.toml is TOML");
    let env = table
        .get_mut("env")
        .and_then(toml::Value::as_table_mut)
        .expect("the example's [env]");
    for (name, value) in [
        ("WECHAT_V3_API_KEY", API_V3_KEY),
        ("WECHAT_V3_PRIVATE_KEY_PATH", "keys/apiclient_key.pem"),
        ("WECHAT_V3_SERIAL_NO", MERCHANT_SERIAL_NO),
    ] {
        env.insert(name.into(), value.into());
    }
    std::fs::write(&app_toml, table.to_string()).expect("write app.toml");
    let config_file = app.join("elements/pays/myWechatPayV3/myWechatPayV3.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_file).expect("read the V3 config"))
            .expect("JSON");
    config["config"]["wechatpayPublicKeyId"] = WECHATPAY_PUBLIC_KEY_ID.into();
    config["config"]["wechatpayPublicKeyPath"] = "keys/pub_key.pem".into();
    std::fs::write(&config_file, config.to_string()).expect("write the V3 config");
}

/// The example app's `[gateway]` choice, as its app.toml writes it.
pub const EXAMPLE_GATEWAY: &str = "\nsimulator = true\n";

/// The real `jit` binary with none of the variables that change its configuration
/// inherited from the environment the tests run in.
pub fn jit_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_jit"));
    for variable in [
        "RUST_LOG",
        "JIT_LOG_FORMAT",
        "JIT_LISTEN",
        "JIT_PUBLIC_BASE_URL",
        "JIT_DATABASE_URL",
        "DATABASE_URL",
        "JIT_DATABASE_SCHEMA",
        "JIT_GATEWAY_BASE_URL",
        "JIT_API_TOKENS",
        "JIT_SIM_URL",
    ] {
        command.env_remove(variable);
    }
    command
}

/// A free loopback port (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Copies the repository's example app (app.toml and elements/) into `target`.
pub fn copy_example_app(target: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("app.toml"), target.join("app.toml")).expect("copy app.toml");
    for entry in walk(&root.join("elements")) {
        let relative = entry.strip_prefix(root).expect("below the root");
        let destination = target.join(relative);
        std::fs::create_dir_all(destination.parent().expect("a parent")).expect("create dirs");
        std::fs::copy(&entry, destination).expect("copy an element file");
    }
}

/// Copies the folder `from` (files and sub-folders) into `to`, creating it.
pub fn copy_dir(from: &Path, to: &Path) {
    for file in walk(from) {
        let destination = to.join(file.strip_prefix(from).expect("below the folder"));
        std::fs::create_dir_all(destination.parent().expect("a parent")).expect("create dirs");
        std::fs::copy(&file, destination).expect("copy a file");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The `return_code` of a WeChat reply, CDATA or not.
fn return_code(text: &str) -> Option<String> {
    let plain = text.replace("<![CDATA[", "").replace("]]>", "");
    let start = plain.find("<return_code>")? + "<return_code>".len();
    let end = plain[start..].find("</return_code>")? + start;
    Some(plain[start..end].trim().to_owned())
}

/// WeChat's SUCCESS reply.
pub fn is_success_reply(text: &str) -> bool {
    return_code(text).as_deref() == Some("SUCCESS")
}

/// Any FAIL reply.
pub fn is_fail_reply(text: &str) -> bool {
    return_code(text).as_deref() == Some("FAIL")
}
