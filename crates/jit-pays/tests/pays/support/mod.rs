//! Databases for tests: a fresh SQLite file each, and — when `JIT_TEST_POSTGRES_URL` is
//! set — a fresh PostgreSQL schema each, so tests run in parallel without sharing rows.
#![allow(dead_code)]

pub mod shop;

use jit_pays::db::{DbConfig, PayStore, connect};

/// A database under test; keeps its temporary directory alive.
pub struct TestDb {
    /// Which backend, for messages.
    pub label: &'static str,
    /// The open store.
    pub store: PayStore,
    /// How it was opened (to open a second pool on the same data).
    pub config: DbConfig,
    _dir: Option<tempfile::TempDir>,
}

/// SQLite in a fresh temporary directory.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DbConfig::sqlite_beside(dir.path(), "shop");
    let store = connect(&config).await.expect("open sqlite");
    TestDb {
        label: "sqlite",
        store,
        config,
        _dir: Some(dir),
    }
}

/// PostgreSQL in a fresh schema, if the environment names a server.
pub async fn postgres() -> Option<TestDb> {
    let url = std::env::var("JIT_TEST_POSTGRES_URL").ok()?;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut config = DbConfig::new(url);
    config.pg_schema = Some(schema);
    config.max_connections = 8;
    let store = connect(&config).await.expect("open postgres");
    Some(TestDb {
        label: "postgres",
        store,
        config,
        _dir: None,
    })
}

/// Every backend available to this run: SQLite always, PostgreSQL when configured.
pub async fn all() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    if let Some(pg) = postgres().await {
        dbs.push(pg);
    }
    dbs
}

/// What tracing wrote while a [`capture_logs`] guard was held.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().clone()).expect("logs are UTF-8")
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's tracing events (DEBUG and up) until the guard drops. Tests
/// using it run on a current-thread runtime, so every task's events are on this thread.
pub fn capture_logs() -> (CapturedLog, tracing::subscriber::DefaultGuard) {
    let captured = CapturedLog::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// Starts `app`'s outbox for a test: a fast poll, so events are handed over promptly.
pub async fn start_outbox(app: &jit_runtime::App) -> jit_pays::OutboxHandle {
    jit_pays::start_outbox(
        app,
        jit_pays::OutboxSettings {
            poll_interval: std::time::Duration::from_millis(20),
            ..jit_pays::OutboxSettings::new("test")
        },
    )
    .await
    .expect("outbox")
}

/// Waits until `store`'s outbox has no delivery pending (or 10 s pass, then panics).
pub async fn wait_outbox_idle(store: &PayStore) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let pending = jit_pays::outbox::pending_deliveries(store.connection())
            .await
            .unwrap();
        if pending.values().all(|&count| count == 0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox still has deliveries pending after 10 s: {pending:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A second pool on `db`'s data, as a second process would open it (the first keeps the
/// data alive).
pub async fn second_pool(db: &TestDb) -> TestDb {
    TestDb {
        label: db.label,
        store: jit_pays::db::connect(&db.config).await.unwrap(),
        config: db.config.clone(),
        _dir: None,
    }
}
