//! The real `jit` binary as a child process, for tests about what the binary does: a
//! command with no inherited log level, database or gateway, `jit serve` waited for until it
//! answers or refuses to start, and app folders whose gateway is the simulator.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::free_port;

/// How long a `jit` process may take to answer or to exit on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// `program <args> --app <app>` with nothing inherited that would change what it does.
pub fn command_for(program: &Path, args: &[&str], app: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .arg("--app")
        .arg(app)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .env_remove("JIT_DATABASE_URL")
        .env_remove("JIT_GATEWAY_BASE_URL")
        .env_remove("JIT_LISTEN")
        .env_remove("JIT_INSTANCE_ID");
    command
}

/// `jit <args> --app <app>`.
pub fn jit(args: &[&str], app: &Path) -> Command {
    command_for(Path::new(env!("CARGO_BIN_EXE_jit")), args, app)
}

/// Stdout then stderr, as text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Makes the app's gateway the in-process simulator (`[gateway] simulator = true`) unless
/// its app.toml already chooses one, keeping everything else of app.toml.
pub fn use_simulator(app: &Path) {
    let file = app.join("app.toml");
    let text = std::fs::read_to_string(&file).expect("read app.toml");
    let mut table: toml::Table = text.parse().expect("app.toml is TOML");
    let gateway = table
        .entry("gateway")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("[gateway] is a table");
    if !gateway.contains_key("simulator") && !gateway.contains_key("base_url") {
        gateway.insert("simulator".into(), toml::Value::Boolean(true));
    }
    std::fs::write(&file, table.to_string()).expect("write app.toml");
}

/// The child's exit status, or `None` (the child killed) if it runs longer than `limit`.
pub fn wait_at_most(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().expect("poll the child") {
            return Some(exit);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `jit serve` process, killed if a test fails before stopping it.
pub struct Served {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Served {
    /// Starts `jit serve` on `app` at a free loopback port with `env` added; its stderr
    /// goes to a file in `app`, shown when something goes wrong.
    pub fn start(app: &Path, env: &[(&str, &OsStr)]) -> Self {
        Self::start_logging_to(app, env, "serve.log")
    }

    /// Like [`Served::start`], its stderr going to `log_name` in `app` (a restarted
    /// process keeps the earlier run's log).
    pub fn start_logging_to(app: &Path, env: &[(&str, &OsStr)], log_name: &str) -> Self {
        let port = free_port();
        let log = app.join(log_name);
        let child = jit(&["serve"], app)
            .env("JIT_LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the log file"))
            .spawn()
            .expect("jit serve starts");
        Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// What the process logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/healthz` answers; panics (with the logs) if the process exits first.
    pub async fn ready(&mut self, http: &reqwest::Client) {
        let started = Instant::now();
        while http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .is_err()
        {
            let child = self.child.as_mut().expect("running");
            if let Some(exit) = child.try_wait().expect("poll jit serve") {
                panic!(
                    "jit serve exited with {exit} before answering:\n{}",
                    self.logs()
                );
            }
            assert!(
                started.elapsed() < PATIENCE,
                "jit serve never answered:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process outright (SIGKILL on Unix: no shutdown, nothing flushed or
    /// stopped) and waits until it is gone; returns what it logged.
    pub fn kill(mut self) -> String {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill jit serve");
        child.wait().expect("reap jit serve");
        self.logs()
    }

    /// Stops the process (SIGTERM on Unix) and waits for it to exit.
    pub async fn stop(self) {
        self.stop_with_status().await;
    }

    /// Like [`Served::stop`], and the process must also exit successfully.
    pub async fn stop_cleanly(self) {
        let (exit, logs) = self.stop_with_status().await;
        assert!(exit.success(), "exit status {exit}:\n{logs}");
    }

    /// Stops the process; its exit status and its logs.
    async fn stop_with_status(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        #[cfg(not(unix))]
        let _ = child.kill();
        let exit = tokio::task::spawn_blocking(move || wait_at_most(&mut child, PATIENCE))
            .await
            .expect("the waiting task");
        let logs = self.logs();
        let exit = exit.unwrap_or_else(|| panic!("jit serve did not stop:\n{logs}"));
        (exit, logs)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `jit serve` on `app` (with `env` added), which must refuse to start: exit with a
/// failure, before answering anything. Returns what it printed.
pub fn refused_to_start(app: &Path, env: &[(&str, &OsStr)]) -> String {
    let mut server = jit(&["serve"], app)
        .env("JIT_LISTEN", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit serve starts");
    let exit = wait_at_most(&mut server, PATIENCE);
    let output = server.wait_with_output().expect("collect the output");
    let report = text(&output);
    let exit = exit.unwrap_or_else(|| panic!("jit serve did not refuse to start:\n{report}"));
    assert!(!exit.success(), "jit serve started:\n{report}");
    report
}
