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
        Self::new(
            "",
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
        let app = TempApp::fixture();
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
