//! A headless Chromium for the browser tests, driven over WebDriver.
//!
//! Owns how a test gets a real browser: [`Browser::start`] runs `/usr/bin/chromedriver` on a
//! free loopback port, in a process group of its own, and opens a session of
//! `/usr/bin/chromium` (Debian's `chromium` and `chromium-driver` packages, which `.ci/run`
//! installs) through the [`fantoccini`] client, with a fresh profile directory and the flags
//! in [`CHROMIUM_FLAGS`]. Without the background-networking flags Chromium keeps reaching
//! for Google's services, and a machine whose outside network is closed refuses it.
//!
//! The methods are the few steps the tests take (open a URL, wait for a text, click, fill a
//! field, take a PNG screenshot) and panic with what the page showed when a step fails, as
//! the rest of this crate does; [`Browser::client`] gives the whole WebDriver client for
//! anything else.
//!
//! A test that needs the browser fails when chromedriver is missing under `CI=true`; outside
//! CI [`Browser::start`] prints a note and returns `None`, so the test can return early.
//! Dropping a [`Browser`] kills the process group (chromedriver and the Chromium processes it
//! started); [`Browser::close`] ends the WebDriver session cleanly first.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// Debian's ChromeDriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags every test browser runs with: headless, no sandbox (CI runs as root), and none
/// of the background connections a closed network refuses.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// How long [`Browser::wait_for_text`] and friends wait by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// One headless Chromium session and the chromedriver that runs it.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    // Kept for its Drop: the profile directory goes when the browser does.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a 1024×768 window.
    ///
    /// Returns `None` (after printing why) when `/usr/bin/chromedriver` is absent outside CI;
    /// panics when it is absent under `CI=true` or when the browser cannot be started.
    pub async fn start() -> Option<Browser> {
        if !Path::new(CHROMEDRIVER).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{CHROMEDRIVER} is missing under CI=true: .ci/run installs chromium and chromium-driver"
                );
            }
            eprintln!(
                "note: {CHROMEDRIVER} is absent; skipping this browser test (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let profile = tempfile::tempdir().expect("a temporary Chromium profile directory");
        // A port is free when we bind it and chromedriver binds it a moment later; another
        // process taking it in between makes the start fail, so try a few ports.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut driver = spawn_chromedriver(port, profile.path());
            match connect(port, profile.path()).await {
                Ok(client) => {
                    let browser = Browser {
                        client: Some(client),
                        driver,
                        _profile: profile,
                    };
                    browser
                        .client()
                        .set_window_size(1024, 768)
                        .await
                        .expect("set the browser window's size");
                    return Some(browser);
                }
                Err(error) => {
                    kill_group(&mut driver);
                    last_error = error;
                }
            }
        }
        let log =
            std::fs::read_to_string(profile.path().join("chromedriver.log")).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!("cannot start headless Chromium: {last_error}\nchromedriver log (tail):\n{tail}");
    }

    /// The WebDriver client, for steps this type has no method for.
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session is open until close()")
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The URL the browser shows now.
    pub async fn current_url(&self) -> String {
        self.client()
            .current_url()
            .await
            .expect("the current URL")
            .to_string()
    }

    /// The page's visible text (`document.body.innerText`).
    pub async fn page_text(&self) -> String {
        let value = self
            .client()
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .expect("read the page's text");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The visible text of the first element matching the CSS `selector`, or `None`.
    pub async fn text_of(&self, selector: &str) -> Option<String> {
        let element = self.client().find(Locator::Css(selector)).await.ok()?;
        element.text().await.ok()
    }

    /// Whether an element matching the CSS `selector` exists and is displayed.
    pub async fn is_visible(&self, selector: &str) -> bool {
        match self.client().find(Locator::Css(selector)).await {
            Ok(element) => element.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Waits up to `timeout` for the page's visible text to contain `needle`; panics with the
    /// page's text when it does not. Returns how long it took.
    pub async fn wait_for_text_within(&self, needle: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let text = self.page_text().await;
            if text.contains(needle) {
                return started.elapsed();
            }
            if started.elapsed() > timeout {
                panic!(
                    "the page at {} did not show {needle:?} within {timeout:?}; it shows:\n{text}",
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Browser::wait_for_text_within`] with [`DEFAULT_WAIT`].
    pub async fn wait_for_text(&self, needle: &str) -> Duration {
        self.wait_for_text_within(needle, DEFAULT_WAIT).await
    }

    /// Waits up to [`DEFAULT_WAIT`] for an element matching the CSS `selector` to exist.
    pub async fn wait_for(&self, selector: &str) {
        let started = Instant::now();
        while self.client().find(Locator::Css(selector)).await.is_err() {
            if started.elapsed() > DEFAULT_WAIT {
                panic!(
                    "no element matches {selector:?} on {} within {DEFAULT_WAIT:?}; the page shows:\n{}",
                    self.current_url().await,
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the first element matching the CSS `selector`.
    pub async fn click(&self, selector: &str) {
        self.wait_for(selector).await;
        self.client()
            .find(Locator::Css(selector))
            .await
            .expect("the element exists")
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {selector:?}: {e}"));
    }

    /// Types `value` into the (cleared) field matching the CSS `selector`.
    pub async fn fill(&self, selector: &str, value: &str) {
        self.wait_for(selector).await;
        let field = self
            .client()
            .find(Locator::Css(selector))
            .await
            .expect("the field exists");
        field.clear().await.expect("clear the field");
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {selector:?}: {e}"));
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot_png(&self) -> Vec<u8> {
        self.client().screenshot().await.expect("take a screenshot")
    }

    /// Ends the WebDriver session (Chromium exits), then stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            // The session may already be gone; the process group is killed below either way.
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn spawn_chromedriver(port: u16, profile: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let log = profile.join("chromedriver.log");
    Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: Drop kills chromedriver and every Chromium process at once.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"))
}

async fn connect(port: u16, profile: &Path) -> Result<Client, String> {
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err(format!(
                "chromedriver did not listen on port {port} within 20 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
    args.push(format!(
        "--user-data-dir={}",
        profile.join("chromium").display()
    ));
    args.push("--window-size=1024,768".to_owned());
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), "chrome".into());
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": CHROMIUM, "args": args }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .map_err(|e| format!("cannot open a Chromium session: {e}"))
}

fn kill_group(driver: &mut Child) {
    if let Ok(None) = driver.try_wait() {
        // The group id is chromedriver's pid (process_group(0)); the minus sign names the group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = driver.kill();
    }
    let _ = driver.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::Html;

    const PAGE: &str = r#"<!doctype html><html><head><title>harness</title></head><body>
<p id="greeting">hello from loopback</p>
<input id="name"><button id="go" onclick="document.getElementById('greeting').textContent = 'clicked by ' + document.getElementById('name').value">go</button>
</body></html>"#;

    async fn serve_static_page() -> String {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { Html(PAGE) }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}/")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_page_on_loopback() {
        let Some(browser) = Browser::start().await else {
            return;
        };
        let url = serve_static_page().await;
        browser.goto(&url).await;
        browser.wait_for_text("hello from loopback").await;
        assert_eq!(
            browser.text_of("#greeting").await.as_deref(),
            Some("hello from loopback")
        );
        assert_eq!(browser.text_of("#absent").await, None);
        assert!(browser.is_visible("#greeting").await);
        assert!(!browser.is_visible("#absent").await);

        browser.fill("#name", "the harness").await;
        browser.click("#go").await;
        browser.wait_for_text("clicked by the harness").await;

        let png = browser.screenshot_png().await;
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "a screenshot is a PNG file"
        );
        // The IHDR chunk holds the width and height: the window's size.
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(width, 1024, "the screenshot has the window's width");
        browser.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "did not show")]
    async fn a_text_that_never_comes_fails_with_the_page_text() {
        let Some(browser) = Browser::start().await else {
            // Keep the expected panic when there is no browser to run.
            panic!("did not show: no browser here");
        };
        let url = serve_static_page().await;
        browser.goto(&url).await;
        browser
            .wait_for_text_within("never on the page", Duration::from_millis(300))
            .await;
    }
}
