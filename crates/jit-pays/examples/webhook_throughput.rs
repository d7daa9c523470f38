//! Webhook deliveries per second: the outbox's dispatcher delivering `order.paid` events
//! to one local receiver over HTTP/1.1 on loopback.
//!
//! `cargo run --release -p jit-pays --example webhook_throughput -- [EVENTS] [sqlite|postgres://…]`
//!
//! Writes EVENTS paid orders' events (default 20,000) into a fresh database (SQLite in a
//! temporary directory unless a PostgreSQL URL is given) with no dispatcher running, then
//! starts the dispatcher with one webhook endpoint — an axum server in this process that
//! verifies every signature and answers 204 — and times until every delivery is recorded
//! delivered. Each delivery is claimed (a lease, one UPDATE per batch), signed, POSTed,
//! answered, and settled with its attempt row (one transaction per batch).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use jit_pays::db::store::NewOrder;
use jit_pays::db::{DbConfig, connect};
use jit_pays::{OutboxSettings, PaysSettings, WebhookEndpoint};

const SECRET: &str = "whsec_benchmark_0123456789abcdef0123456789";

async fn receive(
    State(count): State<Arc<AtomicUsize>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get(jit_webhooks::SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if jit_webhooks::verify_now(SECRET.as_bytes(), signature, &body).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    count.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let database = args.next();
    let dir = tempfile::tempdir()?;
    let config = match database.as_deref() {
        Some(url) if url.starts_with("postgres") => {
            let mut config = DbConfig::new(url);
            config.pg_schema = Some(format!("webhook_bench_{}", std::process::id()));
            config.max_connections = 8;
            config
        }
        _ => DbConfig::sqlite_beside(dir.path(), "bench"),
    };
    let store = connect(&config).await?;

    // The receiver.
    let received = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    let router = Router::new()
        .route("/events", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let endpoint = WebhookEndpoint {
        url: url.clone(),
        secret: SECRET.into(),
        kinds: None,
        timeout: Duration::from_secs(10),
        retry_for: Duration::from_secs(3600),
    };
    let settings = OutboxSettings {
        webhooks: vec![endpoint],
        ..OutboxSettings::new("bench")
    };
    // Route new events to the hooks and the endpoint before writing them.
    store.outbox().set_routes(settings.routes());

    eprintln!("writing {events} paid orders and their events…");
    let at = Utc::now();
    for n in 0..events {
        let order_id = format!("W{n:020}");
        store
            .insert_order(NewOrder {
                order_id: order_id.clone(),
                subject: "Webhook benchmark".into(),
                amount_fen: 100,
                element: "pays.myWechatPay".into(),
                expires_at: at + chrono::Duration::hours(2),
                first_check_at: at + chrono::Duration::hours(1),
            })
            .await?;
        store
            .mark_paid(&order_id, Some(&format!("T{n:027}")), at)
            .await?;
    }

    std::fs::write(
        dir.path().join("app.toml"),
        "[app]\norg = \"bench\"\nname = \"webhooks\"\n",
    )?;
    let app = jit_pays::register(
        jit_runtime::AppBuilder::new(dir.path()),
        store.clone(),
        PaysSettings::new(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/notify",
            "http://127.0.0.1:1",
        ),
    )
    .build()
    .await?;
    let start = Instant::now();
    let outbox = jit_pays::start_outbox(&app, settings).await?;
    loop {
        let pending = jit_pays::outbox::pending_deliveries(store.connection()).await?;
        if pending.values().all(|&count| count == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    outbox.stop().await;
    let got = received.load(Ordering::Relaxed);
    println!(
        "{got} webhook deliveries in {:.2} s: {:.0} webhooks/s",
        elapsed.as_secs_f64(),
        got as f64 / elapsed.as_secs_f64()
    );
    if got != events {
        return Err(format!("the receiver took {got} events, expected {events}").into());
    }
    Ok(())
}
